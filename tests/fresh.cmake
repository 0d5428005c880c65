# tests/fresh.cmake: README's two commands on a fresh Debian 12 system (tests/fresh/fresh_test.sh):
# a clean container, README's prerequisite line, `make run`, requests, SIGTERM, `make test`.
# Label "fresh": not in `make test` (it runs make test itself, in the container: about 8 minutes);
# `make fresh` and .ci/run run it. Skipped (77) without podman or root, as inside that container.
add_test(NAME fresh_system COMMAND bash ${CMAKE_CURRENT_SOURCE_DIR}/fresh/fresh_test.sh --repo ${CMAKE_SOURCE_DIR})
set_tests_properties(fresh_system PROPERTIES LABELS fresh SKIP_RETURN_CODE 77 TIMEOUT 5400 RUN_SERIAL TRUE)
