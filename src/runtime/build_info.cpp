// SPDX-License-Identifier: MIT
// The text forms of the build facts (the facts themselves are generated: build_facts.cpp.in).
#include "runtime/build_info.h"

namespace dpt {

std::string build_description() {
  std::string text;
  for (const BuildFact& fact : build_facts()) {
    if (fact.key == "version") {
      text.insert(0, "dptrain " + std::string(fact.value));
    } else {
      text += "\n  " + std::string(fact.key) + ": " + std::string(fact.value);
    }
  }
  return text;
}

}  // namespace dpt
