# SPDX-License-Identifier: MIT
# dpt_git_revision(<out-var> <source-dir> [<git>]): the commit <source-dir> is checked out at, as 12
# hex digits, with "-dirty" when tracked files differ from it; "unknown" without git, outside a
# checkout, in a repository without commits, or when <source-dir> is not the top of the checkout
# that git finds (a source tarball unpacked inside some other repository must not take its
# revision). Untracked files do not count: build directories and scratch files live there.
include_guard(GLOBAL)

function(dpt_git_revision out source_dir)
  if(ARGC GREATER 2 AND ARGV2)
    set(git "${ARGV2}")
  else()
    find_program(DPT_GIT_PROGRAM NAMES git)
    set(git "${DPT_GIT_PROGRAM}")
  endif()
  set(revision unknown)
  if(git)
    execute_process(COMMAND "${git}" -C "${source_dir}" rev-parse --show-toplevel
                    OUTPUT_VARIABLE top RESULT_VARIABLE rc OUTPUT_STRIP_TRAILING_WHITESPACE
                    ERROR_QUIET)
    if(rc EQUAL 0 AND NOT top STREQUAL "")
      file(REAL_PATH "${top}" top)
      file(REAL_PATH "${source_dir}" source)
    endif()
    if(rc EQUAL 0 AND top STREQUAL source)
      execute_process(COMMAND "${git}" -C "${source_dir}" rev-parse --short=12 --verify -q HEAD
                      OUTPUT_VARIABLE head RESULT_VARIABLE rc OUTPUT_STRIP_TRAILING_WHITESPACE
                      ERROR_QUIET)
      if(rc EQUAL 0 AND head MATCHES "^[0-9a-f]+$")
        set(revision "${head}")
        # --no-optional-locks: status refreshes the index, and must not take its lock (and fail,
        # or make a git command of the user's fail) while building.
        execute_process(COMMAND "${git}" --no-optional-locks -C "${source_dir}" status
                                --porcelain --untracked-files=no
                        OUTPUT_VARIABLE changes RESULT_VARIABLE rc ERROR_QUIET)
        if(NOT rc EQUAL 0)
          set(revision "${head}-unknown-state")
        elseif(NOT changes STREQUAL "")
          set(revision "${head}-dirty")
        endif()
      endif()
    endif()
  endif()
  set(${out} "${revision}" PARENT_SCOPE)
endfunction()
