# SPDX-License-Identifier: MIT
# cmake -DSOURCE_DIR=<repo> -DWORK_DIR=<dir> -P header_version_test.cmake: dpt_header_version()
# reads cuDNN's and NCCL's version #defines, and the minimums of cmake/DptCuda.cmake refuse an old
# release (cuDNN 7.6, NCCL 2.12) while accepting the ones they name.
list(APPEND CMAKE_MODULE_PATH "${SOURCE_DIR}/cmake")
include(DptHeaderVersion)
file(MAKE_DIRECTORY "${WORK_DIR}")

function(expect_version header_text prefix patch_name expected)
  file(WRITE "${WORK_DIR}/version.h" "${header_text}")
  dpt_header_version(got "${WORK_DIR}/version.h" ${prefix} ${patch_name})
  if(NOT got STREQUAL "${expected}")
    message(FATAL_ERROR "dpt_header_version(${prefix}) of:\n${header_text}\ngave '${got}', expected '${expected}'")
  endif()
endfunction()

expect_version("#define CUDNN_MAJOR 9\n#define CUDNN_MINOR 19\n#define CUDNN_PATCHLEVEL 0\n#define CUDNN_VERSION (CUDNN_MAJOR * 10000)\n"
               CUDNN CUDNN_PATCHLEVEL "9.19.0")
expect_version("#define NCCL_MAJOR 2\n#define NCCL_MINOR 28\n#define NCCL_PATCH 9\n#define NCCL_SUFFIX \"\"\n"
               NCCL NCCL_PATCH "2.28.9")
expect_version("#define NCCL_MAJOR\t2\n#define NCCL_MINOR\t12\n#define NCCL_PATCH\t12\n" NCCL NCCL_PATCH "2.12.12")
# No version at all (cuDNN 7 keeps it in cudnn.h), or a missing file: "".
expect_version("#define CUDNN_H_\n" CUDNN CUDNN_PATCHLEVEL "")
dpt_header_version(missing "${WORK_DIR}/absent.h" NCCL NCCL_PATCH)
if(NOT missing STREQUAL "")
  message(FATAL_ERROR "a missing header gave '${missing}'")
endif()

# The minimums DptCuda.cmake sets, read from it so the test follows them.
file(STRINGS "${SOURCE_DIR}/cmake/DptCuda.cmake" mins REGEX "^set\\(DPT_(CUDNN|NCCL)_MIN_VERSION")
string(REGEX MATCH "DPT_CUDNN_MIN_VERSION ([0-9.]+)" _ "${mins}")
set(cudnn_min ${CMAKE_MATCH_1})
string(REGEX MATCH "DPT_NCCL_MIN_VERSION ([0-9.]+)" _ "${mins}")
set(nccl_min ${CMAKE_MATCH_1})
if(NOT cudnn_min OR NOT nccl_min)
  message(FATAL_ERROR "no DPT_CUDNN_MIN_VERSION / DPT_NCCL_MIN_VERSION in DptCuda.cmake: '${mins}'")
endif()
foreach(case "7.6.5;${cudnn_min};TRUE" "8.0.0;${cudnn_min};FALSE" "9.19.0;${cudnn_min};FALSE"
             "2.12.12;${nccl_min};TRUE" "2.14.3;${nccl_min};FALSE" "2.30.0;${nccl_min};FALSE")
  list(GET case 0 version)
  list(GET case 1 min)
  list(GET case 2 refused)
  if(version VERSION_LESS min)
    set(is_refused TRUE)
  else()
    set(is_refused FALSE)
  endif()
  if(NOT is_refused STREQUAL refused)
    message(FATAL_ERROR "${version} against minimum ${min}: refused ${is_refused}, expected ${refused}")
  endif()
endforeach()
message(STATUS "header versions and minimums (cuDNN ${cudnn_min}, NCCL ${nccl_min}) as expected")
