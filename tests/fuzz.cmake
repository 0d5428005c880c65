# Fuzzing. Every harness tests/fuzz/fuzz_<name>.c is built twice:
#  - fuzz_<name>_replay (any compiler): runs the committed corpus tests/fuzz/corpus/<name>/
#    (seeds and every crash ever found) once, as a ctest with LABELS unit;
#  - fuzz_<name> (clang with -DGRU_FUZZ=ON): the libFuzzer binary; ctest runs it for
#    GRU_FUZZ_SECONDS on a copy of the corpus, with LABELS fuzz.
# Build for fuzzing:  cmake -S . -B build-fuzz -DCMAKE_C_COMPILER=clang -DGRU_FUZZ=ON
set(GRU_FUZZ_SECONDS 60 CACHE STRING "Seconds each fuzzer runs under ctest -L fuzz")
file(GLOB FUZZ_HARNESSES CONFIGURE_DEPENDS ${CMAKE_CURRENT_SOURCE_DIR}/fuzz/fuzz_*.c)
foreach(src ${FUZZ_HARNESSES})
  get_filename_component(name ${src} NAME_WE)
  string(REPLACE "fuzz_" "" short ${name})
  set(corpus ${CMAKE_CURRENT_SOURCE_DIR}/fuzz/corpus/${short})
  add_executable(${name}_replay ${src} ${CMAKE_CURRENT_SOURCE_DIR}/fuzz/driver.c)
  target_link_libraries(${name}_replay PRIVATE gru_api gru_model PkgConfig::JANSSON)
  target_include_directories(${name}_replay PRIVATE ${CMAKE_SOURCE_DIR}/model ${CMAKE_SOURCE_DIR}/api)
  add_test(NAME ${name}_replay COMMAND ${name}_replay ${corpus})
  set_tests_properties(${name}_replay PROPERTIES LABELS unit)
  if(GRU_FUZZ)
    add_executable(${name} ${src})
    target_link_libraries(${name} PRIVATE gru_api gru_model PkgConfig::JANSSON)
    target_include_directories(${name} PRIVATE ${CMAKE_SOURCE_DIR}/model ${CMAKE_SOURCE_DIR}/api)
    target_link_options(${name} PRIVATE -fsanitize=fuzzer)
    add_test(NAME ${name}
             COMMAND ${CMAKE_COMMAND} -E env ASAN_OPTIONS=detect_leaks=1
                     ${CMAKE_CURRENT_SOURCE_DIR}/fuzz/run_fuzzer.sh $<TARGET_FILE:${name}> ${corpus} ${GRU_FUZZ_SECONDS})
    set_tests_properties(${name} PROPERTIES LABELS fuzz TIMEOUT 1800)
  endif()
endforeach()
