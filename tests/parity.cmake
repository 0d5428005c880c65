# The engine's second path: layer 0 without the per-vocabulary projection table (used when the
# table would exceed the load options' budget), checked against the same PyTorch references.
# test_parity takes its load options from the environment (tools/tool_options.h).
add_test(NAME test_parity_no_table COMMAND test_parity)
set_tests_properties(test_parity_no_table PROPERTIES LABELS unit
                     ENVIRONMENT "OPENBLAS_NUM_THREADS=1;GRU_PROJ_TABLE_MAX_MB=0")
# The third path: the recurrent product through OpenBLAS instead of the packed AVX2 kernel
# (model/mm.h; what a CPU without AVX2+FMA runs), against the same references.
add_test(NAME test_parity_blas COMMAND test_parity)
set_tests_properties(test_parity_blas PROPERTIES LABELS unit
                     ENVIRONMENT "OPENBLAS_NUM_THREADS=1;GRU_PACKED=0")
