# SPDX-License-Identifier: MIT
# dpt_add_test(NAME n SOURCES ... LIBS ... LABELS ... [TIMEOUT s] [MPI_RANKS 1 2 4]): one GoogleTest
# binary and its CTest entries, run from the build directory so tests find build/bin. Without
# MPI_RANKS: one entry `n`. With MPI_RANKS: the binary gets the MPI test main
# (tests/testing/mpi_test_main.cpp) and one entry `n_np<k>` per rank count k, run under mpiexec and
# labelled `mpi`; in a DPT_MPI=OFF build a single entry `n` runs it as a world of one.
include_guard(GLOBAL)

# Physical cores: Open MPI's default slot count. More ranks than that need --oversubscribe.
cmake_host_system_information(RESULT DPT_PHYSICAL_CORES QUERY NUMBER_OF_PHYSICAL_CORES)

# The environment every test entry gets. Open MPI refuses to run as root (as in containers and CI)
# unless both variables are set; they are harmless otherwise.
set(DPT_TEST_ENVIRONMENT
    "DPT_BIN_DIR=${PROJECT_BINARY_DIR}/bin;DPT_SOURCE_DIR=${PROJECT_SOURCE_DIR}"
    "OMPI_ALLOW_RUN_AS_ROOT=1;OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1")

# dpt_mpi_command(<out-var> <ranks> <program> [args...]): the mpiexec command line for <ranks>.
function(dpt_mpi_command out ranks)
  set(pre ${MPIEXEC_PREFLAGS})
  if(ranks GREATER DPT_PHYSICAL_CORES)
    list(APPEND pre --oversubscribe)
  endif()
  set(${out} ${MPIEXEC_EXECUTABLE} ${MPIEXEC_NUMPROC_FLAG} ${ranks} ${pre} ${ARGN}
      ${MPIEXEC_POSTFLAGS} PARENT_SCOPE)
endfunction()

# dpt_add_mpi_test(NAME n TARGET t RANKS k [LABELS ...] [TIMEOUT s] [ENVIRONMENT ...]): one more
# mpiexec entry for an existing test binary (e.g. the same suite under a different environment).
function(dpt_add_mpi_test)
  cmake_parse_arguments(M "" "NAME;TARGET;RANKS;TIMEOUT" "LABELS;ENVIRONMENT" ${ARGN})
  if(NOT M_TIMEOUT)
    set(M_TIMEOUT 600)
  endif()
  set(environment ${DPT_TEST_ENVIRONMENT} ${M_ENVIRONMENT})
  dpt_mpi_command(command ${M_RANKS} $<TARGET_FILE:${M_TARGET}>)
  add_test(NAME ${M_NAME} COMMAND ${command} WORKING_DIRECTORY ${PROJECT_BINARY_DIR})
  set_tests_properties(${M_NAME} PROPERTIES LABELS "${M_LABELS};mpi" TIMEOUT ${M_TIMEOUT}
                       PROCESSORS ${M_RANKS}
                       ENVIRONMENT "${environment}")
endfunction()

function(dpt_add_test)
  cmake_parse_arguments(T "" "NAME;TIMEOUT" "SOURCES;LIBS;LABELS;MPI_RANKS" ${ARGN})
  add_executable(${T_NAME} ${T_SOURCES})
  if(T_MPI_RANKS)
    # An object library: its main() is linked before dpt_test_support's archive is searched, so
    # the plain test main is never pulled in.
    target_link_libraries(${T_NAME} PRIVATE dpt_mpi_test_main)
  endif()
  target_link_libraries(${T_NAME} PRIVATE ${T_LIBS} dpt_test_support GTest::gtest dpt_flags)
  set_target_properties(${T_NAME} PROPERTIES RUNTIME_OUTPUT_DIRECTORY ${PROJECT_BINARY_DIR}/tests)
  if(NOT T_TIMEOUT)
    set(T_TIMEOUT 600)
  endif()
  if(T_MPI_RANKS AND DPT_HAVE_MPI)
    list(REMOVE_ITEM T_LABELS mpi)
    foreach(ranks IN LISTS T_MPI_RANKS)
      dpt_add_mpi_test(NAME ${T_NAME}_np${ranks} TARGET ${T_NAME} RANKS ${ranks}
                       LABELS ${T_LABELS} TIMEOUT ${T_TIMEOUT})
    endforeach()
    return()
  endif()
  add_test(NAME ${T_NAME} COMMAND ${T_NAME} WORKING_DIRECTORY ${PROJECT_BINARY_DIR})
  set_tests_properties(${T_NAME} PROPERTIES LABELS "${T_LABELS}" TIMEOUT ${T_TIMEOUT}
                       ENVIRONMENT "${DPT_TEST_ENVIRONMENT}")
endfunction()
