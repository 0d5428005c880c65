# tests/e2e.cmake: end-to-end tests of gru-serve (Python standard library harness in tests/e2e/,
# the real binary on a free loopback port), label "e2e"; the unit tests of server/ sources link
# gru_srv_core here (it exists only when gru-serve is built).
if(NOT TARGET gru-serve)
  message(STATUS "gru-serve is not built: no end-to-end tests")
  return()
endif()

# Server unit tests (tests/unit/test_bq.c, test_cfg.c, test_route.c) test server/ sources.
foreach(t test_bq test_cfg test_route)
  if(TARGET ${t})
    target_link_libraries(${t} PRIVATE gru_srv_core)
  endif()
endforeach()

set(GRU_E2E_ENV
    "GRU_SERVE=$<TARGET_FILE:gru-serve>"
    "GRU_PREDICT=$<TARGET_FILE:gru-predict>"
    "GRU_MODELS=${GRU_MODELS_DIR}"
    "OPENBLAS_NUM_THREADS=1"
    "PYTHONDONTWRITEBYTECODE=1")

# name script [http-threads] [processors]
function(gru_add_e2e_test name script threads procs)
  add_test(NAME ${name} COMMAND ${GRU_PYTHON} ${CMAKE_CURRENT_SOURCE_DIR}/e2e/${script}
           WORKING_DIRECTORY ${CMAKE_CURRENT_SOURCE_DIR}/e2e)
  set_tests_properties(${name} PROPERTIES LABELS e2e TIMEOUT 180 PROCESSORS ${procs}
                       ENVIRONMENT "${GRU_E2E_ENV};GRU_E2E_HTTP_THREADS=${threads}")
endfunction()

# Routes, errors and KServe run in both libmicrohttpd modes: one polling thread, and a pool.
gru_add_e2e_test(e2e_routes_single test_routes.py 1 1)
gru_add_e2e_test(e2e_routes_pool test_routes.py 2 1)
gru_add_e2e_test(e2e_kserve_single test_kserve.py 1 1)
gru_add_e2e_test(e2e_kserve_pool test_kserve.py 2 1)
gru_add_e2e_test(e2e_parity test_parity.py 2 1)
gru_add_e2e_test(e2e_routing test_routing.py 2 1)
gru_add_e2e_test(e2e_fold test_fold.py 1 1)
# Concurrency scenarios: give them the machine.
gru_add_e2e_test(e2e_batching test_batching.py 2 2)
gru_add_e2e_test(e2e_drain test_drain.py 2 2)
# Operations (issue 13): request ids, trace context and versions; API key files; hot reload
# (SIGHUP and the repository routes) under a bounded concurrent load.
gru_add_e2e_test(e2e_trace test_trace.py 2 1)
gru_add_e2e_test(e2e_keys test_keys.py 2 1)
gru_add_e2e_test(e2e_reload test_reload.py 2 2)
# POST /v1/explain and /v1/tokenize: parity of every variant with /v1/sentiment, offsets, limits.
gru_add_e2e_test(e2e_explain test_explain.py 2 1)
