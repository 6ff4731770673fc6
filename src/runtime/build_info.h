// SPDX-License-Identifier: MIT
// What this binary was built from and with: the version, the git revision, the compiler, the build
// type and flags, the sanitizers and the backends. Ranks that differ in any of these may compute
// different bits, so the start-up agreement compares them (nn/train/agreement.h); `train
// --version` and the metrics summary show them. The values are fixed at build time
// (cmake/DptBuildInfo.cmake writes them into one generated file, build_facts.cpp).
#pragma once

#include <span>
#include <string>
#include <string_view>

namespace dpt {

struct BuildFact {
  std::string_view key;    // version, revision, compiler, type, flags, sanitizers, backends
  std::string_view value;  // never empty ("none", "unknown")
};

// In the order above.
std::span<const BuildFact> build_facts();

// "dptrain <version>" and one "  <key>: <value>" line per other fact (for --version).
std::string build_description();

}  // namespace dpt
