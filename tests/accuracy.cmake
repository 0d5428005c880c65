# The C engine reproduces each shipped model's accuracy as training measured it with PyTorch
# (skips without ../shared/data). Each case: test name | model | dataset file under data/ |
# key of the figure in config.json metrics (dev_by_file / reports; "-": metrics.dev_accuracy) | floor.
set(GRU_ACCURACY_CASES
    "sst2-en|sst2-en|sst2/dev.tsv|-|0.90"
    "en_phrases|en|sst2/dev.tsv|data/sst2/dev.tsv|0.90"
    "waimai-zh|waimai-zh|waimai_10k/dev.tsv|-|0.87"
    "zh_waimai|zh|waimai_10k/dev.tsv|data/waimai_10k/dev.tsv|0.89"
    "zh_shopping|zh|online_shopping_10_cats/dev.tsv|data/online_shopping_10_cats/dev.tsv|0.92"
    "zh_weibo|zh|weibo2018/dev.tsv|data/weibo2018/dev.tsv|0.83"
    "zh_hotels|zh|chnsenticorp_htl/dev.tsv|data/chnsenticorp_htl/dev.tsv|0.88")
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

# English on whole sentences (en; sst2-en was trained on all of train, proxy included): the
# sentence-disjoint split (tools/sst2_proxy.py --train-with-test, generated into the build tree)
# whose sent_dev selected the model (metrics.dev_accuracy); its sent_test sentences were in the
# final training (the model card reports the recipe's sent_test figure from runs without them).
set(GRU_FINAL_DIR ${CMAKE_BINARY_DIR}/sst2-final)
add_test(NAME accuracy_en_sentences
         COMMAND sh -c "\"$0\" \"$1\" --data \"$2\" --out \"$3\" --train-with-test || exit $?; \"$0\" \"$4\" --predict \"$5\" --model \"$6\" --data \"$3/sent_dev.tsv\" --min-accuracy 0.84"
                 ${GRU_PYTHON} ${CMAKE_SOURCE_DIR}/tools/sst2_proxy.py
                 ${GRU_SHARED_DIR}/data/sst2/train.tsv ${GRU_FINAL_DIR}
                 ${CMAKE_CURRENT_SOURCE_DIR}/accuracy/test_accuracy.py
                 $<TARGET_FILE:gru-predict> ${GRU_MODELS_DIR}/en)
set_tests_properties(accuracy_en_sentences PROPERTIES LABELS "e2e" SKIP_RETURN_CODE 77)

# The check set of user-style English sentences (tests/data/en_check.tsv, in the repository: runs
# without ../shared/data), against the figure training reported for it.
add_test(NAME accuracy_en_check
         COMMAND ${GRU_PYTHON} ${CMAKE_CURRENT_SOURCE_DIR}/accuracy/test_accuracy.py
                 --predict $<TARGET_FILE:gru-predict> --model ${GRU_MODELS_DIR}/en
                 --data ${CMAKE_CURRENT_SOURCE_DIR}/data/en_check.tsv --key tests/data/en_check.tsv
                 --min-accuracy 0.78)
set_tests_properties(accuracy_en_check PROPERTIES LABELS "e2e" SKIP_RETURN_CODE 77)
