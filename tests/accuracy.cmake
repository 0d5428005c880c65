# The C engine reproduces each shipped model's dev accuracy (skips without ../shared/data).
set(GRU_ACCURACY_CASES "sst2-en|sst2|0.82" "waimai-zh|waimai_10k|0.87")
foreach(case ${GRU_ACCURACY_CASES})
  string(REPLACE "|" ";" parts ${case})
  list(GET parts 0 model)
  list(GET parts 1 dataset)
  list(GET parts 2 floor)
  add_test(NAME accuracy_${model}
           COMMAND ${GRU_PYTHON} ${CMAKE_CURRENT_SOURCE_DIR}/accuracy/test_accuracy.py
                   --predict $<TARGET_FILE:gru-predict> --model ${GRU_MODELS_DIR}/${model}
                   --data ${GRU_SHARED_DIR}/data/${dataset}/dev.tsv --min-accuracy ${floor})
  set_tests_properties(accuracy_${model} PROPERTIES LABELS "e2e" SKIP_RETURN_CODE 77)
endforeach()
