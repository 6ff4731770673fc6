# SPDX-License-Identifier: MIT
# Run at every build (src/runtime/CMakeLists.txt, target dpt_build_info_text):
#   cmake -DFACTS=<build_facts.cmake> -DTEMPLATE=<build_facts.cpp.in> -DOUTPUT=<build_facts.cpp>
#         -DSOURCE_DIR=<repo> [-DGIT=<git>] -P DptBuildInfo.cmake
# FACTS holds what configure knew (compiler, flags, sanitizers, backends); the git revision is read
# now, so that a commit or an edit after configuring shows. configure_file() leaves OUTPUT alone
# when its text is unchanged, so an unchanged build recompiles nothing.
include("${FACTS}")
include("${CMAKE_CURRENT_LIST_DIR}/DptGitRevision.cmake")
dpt_git_revision(DPT_BUILD_REVISION "${SOURCE_DIR}" "${GIT}")
configure_file("${TEMPLATE}" "${OUTPUT}" @ONLY)
