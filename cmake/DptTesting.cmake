# SPDX-License-Identifier: MIT
# dpt_add_test(NAME n SOURCES ... LIBS ... LABELS ... [TIMEOUT s]): one GoogleTest binary, one CTest
# entry, run from the build directory so tests find build/bin.
include_guard(GLOBAL)

function(dpt_add_test)
  cmake_parse_arguments(T "" "NAME;TIMEOUT" "SOURCES;LIBS;LABELS" ${ARGN})
  add_executable(${T_NAME} ${T_SOURCES})
  target_link_libraries(${T_NAME} PRIVATE ${T_LIBS} dpt_test_support GTest::gtest dpt_flags)
  set_target_properties(${T_NAME} PROPERTIES RUNTIME_OUTPUT_DIRECTORY ${PROJECT_BINARY_DIR}/tests)
  add_test(NAME ${T_NAME} COMMAND ${T_NAME} WORKING_DIRECTORY ${PROJECT_BINARY_DIR})
  if(NOT T_TIMEOUT)
    set(T_TIMEOUT 600)
  endif()
  set_tests_properties(${T_NAME} PROPERTIES LABELS "${T_LABELS}" TIMEOUT ${T_TIMEOUT}
                       ENVIRONMENT "DPT_BIN_DIR=${PROJECT_BINARY_DIR}/bin;DPT_SOURCE_DIR=${PROJECT_SOURCE_DIR}")
endfunction()
