# tests/browser.cmake: the web page at GET / in a real browser (tests/browser/page.test.js):
# Debian's headless chromium driven by playwright-core from npm, against the real gru-serve with
# the shipped models. Label "browser"; skipped (77) without node, chromium or node_modules.
# Screenshots: <build>/tests/browser/*.png.
if(NOT TARGET gru-serve)
  return()
endif()
add_test(NAME browser_page COMMAND sh ${CMAKE_CURRENT_SOURCE_DIR}/browser/run.sh
         WORKING_DIRECTORY ${CMAKE_CURRENT_BINARY_DIR})
set_tests_properties(browser_page PROPERTIES
  LABELS browser SKIP_RETURN_CODE 77 TIMEOUT 240 PROCESSORS 2
  ENVIRONMENT "GRU_SERVE=$<TARGET_FILE:gru-serve>;GRU_MODELS=${GRU_MODELS_DIR};GRU_PYTHON=${GRU_PYTHON};GRU_BROWSER_OUT=${CMAKE_CURRENT_BINARY_DIR}/browser;OPENBLAS_NUM_THREADS=1")
