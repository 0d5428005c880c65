# The C engine reproduces each shipped model's accuracy as training measured it with PyTorch
# (skips without ../shared/data). Each case: test name | model | dataset file under data/ |
# key of the figure in config.json metrics (dev_by_file / reports; "-": metrics.dev_accuracy) | floor.
set(GRU_ACCURACY_CASES
    "sst2-en|sst2-en|sst2/dev.tsv|-|0.90"
    "sst2-en-glove_phrases|sst2-en-glove|sst2/dev.tsv|data/sst2/dev.tsv|0.85"
    "waimai-zh|waimai-zh|waimai_10k/dev.tsv|-|0.87"
    "zh_waimai|zh|waimai_10k/dev.tsv|data/waimai_10k/dev.tsv|0.88"
    "zh_shopping|zh|online_shopping_10_cats/dev.tsv|data/online_shopping_10_cats/dev.tsv|0.92"
    "zh_weibo|zh|weibo2018/dev.tsv|data/weibo2018/dev.tsv|0.77"
    "zh_hotels|zh|chnsenticorp_htl/dev.tsv|data/chnsenticorp_htl/dev.tsv|0.86")
foreach(case ${GRU_ACCURACY_CASES})
  string(REPLACE "|" ";" parts ${case})
  list(GET parts 0 name)
  list(GET parts 1 model)
  list(GET parts 2 file)
  list(GET parts 3 key)
  list(GET parts 4 floor)
  set(key_args "")
  if(NOT key STREQUAL "-")
    set(key_args --key ${key})
  endif()
  add_test(NAME accuracy_${name}
           COMMAND ${GRU_PYTHON} ${CMAKE_CURRENT_SOURCE_DIR}/accuracy/test_accuracy.py
                   --predict $<TARGET_FILE:gru-predict> --model ${GRU_MODELS_DIR}/${model}
                   --data ${GRU_SHARED_DIR}/data/${file} ${key_args} --min-accuracy ${floor})
  set_tests_properties(accuracy_${name} PROPERTIES LABELS "e2e" SKIP_RETURN_CODE 77)
endforeach()

# English on whole sentences (sst2-en-glove; sst2-en was trained on all of train, proxy included):
# the sentence-disjoint proxy split (tools/sst2_proxy.py, generated
# into the build tree) that selected the model (sent_dev: metrics.dev_accuracy) and reports it
# (sent_test: recorded under the path training was given, build/sst2-proxy/sent_test.tsv).
set(GRU_PROXY_DIR ${CMAKE_BINARY_DIR}/sst2-proxy)
add_test(NAME accuracy_sst2-en-glove_sentences
         COMMAND sh -c "\"$0\" \"$1\" --data \"$2\" --out \"$3\" || exit $?; for f in sent_dev sent_test; do k=; [ $f = sent_test ] && k='--key build/sst2-proxy/sent_test.tsv'; \"$0\" \"$4\" --predict \"$5\" --model \"$6\" --data \"$3/$f.tsv\" $k --min-accuracy 0.82 || exit $?; done"
                 ${GRU_PYTHON} ${CMAKE_SOURCE_DIR}/tools/sst2_proxy.py
                 ${GRU_SHARED_DIR}/data/sst2/train.tsv ${GRU_PROXY_DIR}
                 ${CMAKE_CURRENT_SOURCE_DIR}/accuracy/test_accuracy.py
                 $<TARGET_FILE:gru-predict> ${GRU_MODELS_DIR}/sst2-en-glove)
set_tests_properties(accuracy_sst2-en-glove_sentences PROPERTIES LABELS "e2e" SKIP_RETURN_CODE 77)
