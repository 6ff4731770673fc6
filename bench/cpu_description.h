// SPDX-License-Identifier: MIT
// "CPU: <model>, <widest vector ISA>" from /proc/cpuinfo, as bench/machine.py prints it for the
// Python benchmarks' tables: machines of one kind differ by ISA (AVX2 only, or AVX-512), and
// figures of different CPUs do not compare. Shared by the C++ benchmarks of bench/.
#pragma once

#include <fstream>
#include <set>
#include <sstream>
#include <string>
#include <utility>

namespace dpt::bench {

inline std::string cpu_description() {
  std::ifstream in("/proc/cpuinfo");
  std::string line, model = "unknown", isa = "no AVX2";
  std::set<std::string> flags;
  while (std::getline(in, line)) {
    const auto colon = line.find(':');
    if (colon == std::string::npos) continue;
    std::string key = line.substr(0, colon);
    key.erase(key.find_last_not_of(" \t") + 1);
    const std::string value = colon + 2 <= line.size() ? line.substr(colon + 2) : "";
    if (key == "model name" && model == "unknown") model = value;
    if (key == "flags" && flags.empty()) {
      std::istringstream words(value);
      for (std::string w; words >> w;) flags.insert(w);
    }
  }
  if (flags.count("avx512f")) {
    std::string extras;
    for (const auto& [flag, name] :
         {std::pair{"avx512_bf16", "BF16"}, std::pair{"avx512_fp16", "FP16"},
          std::pair{"amx_tile", "AMX"}}) {
      if (flags.count(flag)) extras += (extras.empty() ? "" : ", ") + std::string(name);
    }
    isa = "AVX-512" + (extras.empty() ? "" : " (" + extras + ")");
  } else if (flags.count("avx2")) {
    isa = "AVX2, no AVX-512";
  }
  return "CPU: " + model + ", " + isa;
}

}  // namespace dpt::bench
