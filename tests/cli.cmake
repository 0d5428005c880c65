# End-to-end tests of gru-predict on each shipped model.
foreach(model en sst2-en zh waimai-zh)
  add_test(NAME cli_${model}
           COMMAND ${GRU_PYTHON} ${CMAKE_CURRENT_SOURCE_DIR}/cli/test_cli.py
                   --predict $<TARGET_FILE:gru-predict> --model ${GRU_MODELS_DIR}/${model})
  set_tests_properties(cli_${model} PROPERTIES LABELS "e2e" SKIP_RETURN_CODE 77)
endforeach()
