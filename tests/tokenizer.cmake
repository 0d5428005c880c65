# tests/tokenizer.cmake: the C and Python tokenizers must agree on the shared data sets
# (tests/tok_agree.py). Without the data directory the script prints "SKIP: ..." and exits 77.
add_test(NAME tok_agree
         COMMAND ${GRU_PYTHON} ${CMAKE_CURRENT_SOURCE_DIR}/tok_agree.py
                 --tokenize $<TARGET_FILE:gru-tokenize> --data ${GRU_SHARED_DIR}/data)
set_tests_properties(tok_agree PROPERTIES LABELS "unit" SKIP_RETURN_CODE 77 TIMEOUT 300)
