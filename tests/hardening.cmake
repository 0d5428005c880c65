# tests/hardening.cmake: the hardening evidence of issue 6 against the real gru-serve.
#  - e2e_bad_input (LABELS e2e): >= 40 kinds of hostile or malformed input, each with its status
#    and JSON error body, the server answering a valid request after each; RSS bounded; slow
#    clients (slowloris) and clients that vanish mid-body or mid-batch.
#  - e2e_faults (LABELS e2e): SIGTERM under mixed load, broken model directories, saturation.
#  - valgrind_e2e (LABELS valgrind): one end-to-end run under memcheck, zero errors and zero
#    definite leaks; skipped (exit 77) without valgrind.
# Known, still open bugs are expected failures that print "KNOWN BUG" (see the test files).
if(NOT TARGET gru-serve)
  return()
endif()

set(GRU_HARD_ENV
    "GRU_SERVE=$<TARGET_FILE:gru-serve>"
    "GRU_PREDICT=$<TARGET_FILE:gru-predict>"
    "GRU_MODELS=${GRU_MODELS_DIR}"
    "OPENBLAS_NUM_THREADS=1"
    "PYTHONDONTWRITEBYTECODE=1")

add_test(NAME e2e_bad_input COMMAND ${GRU_PYTHON} ${CMAKE_CURRENT_SOURCE_DIR}/e2e/test_bad_input.py
         WORKING_DIRECTORY ${CMAKE_CURRENT_SOURCE_DIR}/e2e)
set_tests_properties(e2e_bad_input PROPERTIES LABELS e2e TIMEOUT 600 PROCESSORS 2
                     ENVIRONMENT "${GRU_HARD_ENV};GRU_E2E_HTTP_THREADS=2")

add_test(NAME e2e_faults COMMAND ${GRU_PYTHON} ${CMAKE_CURRENT_SOURCE_DIR}/e2e/test_faults.py
         WORKING_DIRECTORY ${CMAKE_CURRENT_SOURCE_DIR}/e2e)
# Saturation and SIGTERM under load want the machine to themselves.
set_tests_properties(e2e_faults PROPERTIES LABELS e2e TIMEOUT 300 PROCESSORS 2 RUN_SERIAL TRUE
                     ENVIRONMENT "${GRU_HARD_ENV};GRU_E2E_HTTP_THREADS=2")

# Not in sanitizer builds: memcheck cannot run an ASan binary.
if(GRU_SANITIZE)
  return()
endif()
add_test(NAME valgrind_e2e COMMAND ${GRU_PYTHON} ${CMAKE_CURRENT_SOURCE_DIR}/valgrind/run_valgrind.py)
set_tests_properties(valgrind_e2e PROPERTIES LABELS valgrind TIMEOUT 900 SKIP_RETURN_CODE 77
                     ENVIRONMENT "${GRU_HARD_ENV};GRU_E2E_HTTP_THREADS=2")
