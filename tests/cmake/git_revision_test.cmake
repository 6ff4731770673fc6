# SPDX-License-Identifier: MIT
# cmake -DSOURCE_DIR=<repo> -DWORK_DIR=<dir> -P git_revision_test.cmake: dpt_git_revision() (the
# revision in the build id) gives the commit's 12 hex digits, "-dirty" once a tracked file
# changes (not for an untracked one), and "unknown" outside a checkout and for a directory inside
# someone else's checkout (a source tarball unpacked there).
list(APPEND CMAKE_MODULE_PATH "${SOURCE_DIR}/cmake")
include(DptGitRevision)
file(REMOVE_RECURSE "${WORK_DIR}")
file(MAKE_DIRECTORY "${WORK_DIR}/outside" "${WORK_DIR}/repo/sub")

function(expect dir expected)
  dpt_git_revision(got "${dir}")
  if(NOT got MATCHES "^${expected}$")
    message(FATAL_ERROR "dpt_git_revision(${dir}) gave '${got}', expected '${expected}'")
  endif()
endfunction()

# A directory that no checkout holds (the work directory sits in the build tree; a build tree
# inside a checkout is git-ignored but still in it, so make one with GIT_CEILING_DIRECTORIES).
set(ENV{GIT_CEILING_DIRECTORIES} "${WORK_DIR}")
expect("${WORK_DIR}/outside" unknown)

find_program(git NAMES git)
if(NOT git)
  message(STATUS "no git: only the 'unknown' case is tested")
  return()
endif()
function(run)
  execute_process(COMMAND "${git}" -c user.name=dpt -c user.email=dpt@localhost ${ARGN}
                  WORKING_DIRECTORY "${WORK_DIR}/repo" RESULT_VARIABLE rc OUTPUT_QUIET
                  ERROR_VARIABLE err)
  if(NOT rc EQUAL 0)
    message(FATAL_ERROR "git ${ARGN}: ${err}")
  endif()
endfunction()
run(init -q)
expect("${WORK_DIR}/repo" unknown)  # no commit yet
file(WRITE "${WORK_DIR}/repo/sub/a.txt" "one\n")
run(add sub/a.txt)
run(commit -q -m first)
execute_process(COMMAND "${git}" rev-parse HEAD WORKING_DIRECTORY "${WORK_DIR}/repo"
                OUTPUT_VARIABLE head OUTPUT_STRIP_TRAILING_WHITESPACE)
string(SUBSTRING "${head}" 0 12 short)
expect("${WORK_DIR}/repo" "${short}")
file(WRITE "${WORK_DIR}/repo/untracked.txt" "scratch\n")
expect("${WORK_DIR}/repo" "${short}")
file(WRITE "${WORK_DIR}/repo/sub/a.txt" "two\n")
expect("${WORK_DIR}/repo" "${short}-dirty")
run(commit -q -a -m second)
execute_process(COMMAND "${git}" rev-parse --short=12 HEAD WORKING_DIRECTORY "${WORK_DIR}/repo"
                OUTPUT_VARIABLE second OUTPUT_STRIP_TRAILING_WHITESPACE)
if(second STREQUAL short)
  message(FATAL_ERROR "the second commit has the first one's hash")
endif()
expect("${WORK_DIR}/repo" "${second}")
# A source tree inside another checkout does not take that checkout's revision.
expect("${WORK_DIR}/repo/sub" unknown)
