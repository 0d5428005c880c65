# tests/explain.cmake: leave-one-out and edits (test_explain) on the engine's other two paths too:
# layer 0 without the per-vocabulary table, and the recurrent product through OpenBLAS.
add_test(NAME test_explain_no_table COMMAND test_explain)
set_tests_properties(test_explain_no_table PROPERTIES LABELS unit
                     ENVIRONMENT "OPENBLAS_NUM_THREADS=1;GRU_PROJ_TABLE_MAX_MB=0")
add_test(NAME test_explain_blas COMMAND test_explain)
set_tests_properties(test_explain_blas PROPERTIES LABELS unit
                     ENVIRONMENT "OPENBLAS_NUM_THREADS=1;GRU_PACKED=0")
