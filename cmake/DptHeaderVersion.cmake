# SPDX-License-Identifier: MIT
# dpt_header_version(): a library's version from the #defines of its header (cuDNN and NCCL ship no
# CMake package to ask). Tested by tests/cmake/header_version_test.cmake.
include_guard(GLOBAL)

# "MAJOR.MINOR.PATCH" from `header`'s #defines PREFIX_MAJOR, PREFIX_MINOR and PATCH_NAME into
# `out` ("" when the header has none of them).
function(dpt_header_version out header prefix patch_name)
  set(version "")
  if(EXISTS "${header}")
    file(STRINGS "${header}" lines REGEX "^#define[ \t]+(${prefix}_MAJOR|${prefix}_MINOR|${patch_name})[ \t]")
    foreach(part MAJOR MINOR PATCH)
      set(name ${prefix}_${part})
      if(part STREQUAL "PATCH")
        set(name ${patch_name})
      endif()
      string(REGEX MATCH "#define[ \t]+${name}[ \t]+([0-9]+)" match "${lines}")
      if(NOT match)
        set(version "")
        break()
      endif()
      list(APPEND version ${CMAKE_MATCH_1})
    endforeach()
    list(JOIN version "." version)
  endif()
  set(${out} "${version}" PARENT_SCOPE)
endfunction()
