// SPDX-License-Identifier: MIT
// The facts of the start-up agreement and their comparison (see agreement.h).
#include "nn/train/agreement.h"

#include <algorithm>
#include <iomanip>
#include <limits>
#include <sstream>

#include "runtime/build_info.h"

namespace dpt::nn {

std::vector<std::string> lines_of(const std::string& text) {
  std::vector<std::string> lines;
  std::istringstream in(text);
  for (std::string line; std::getline(in, line);) lines.push_back(line);
  return lines;
}

std::string data_fact(const io::DatasetSplit& split) {
  std::ostringstream s;
  // max_digits10: two float32 normalisation values that differ print differently.
  s << split.identity() << std::setprecision(std::numeric_limits<float>::max_digits10)
    << " mean=" << split.meta().mean << " std=" << split.meta().std << " xxh64=" << std::hex
    << std::setw(16) << std::setfill('0') << split.content_checksum();
  return s.str();
}

std::string setup_facts(const TrainConfig& config, const Sequential& model,
                        const io::DatasetSplit& train, const io::DatasetSplit* test) {
  std::ostringstream facts;
  for (const BuildFact& fact : build_facts()) {
    facts << "build." << fact.key << " = " << fact.value << '\n';
  }
  for (const std::string& line : lines_of(to_toml(config))) {
    if (!line.empty()) facts << "config." << line << '\n';
  }
  for (const Parameter* p : model.parameters()) {
    facts << "model." << p->name << " = " << dpt::to_string(p->value.shape()) << '\n';
  }
  facts << "data.train = " << data_fact(train) << '\n';
  if (test != nullptr) facts << "data.test = " << data_fact(*test) << '\n';
  return facts.str();
}

std::string disagreements(const std::vector<std::string>& all) {
  std::ostringstream differences;
  if (all.empty()) return {};
  const std::vector<std::string> reference = lines_of(all[0]);
  for (std::size_t r = 1; r < all.size(); ++r) {
    const std::vector<std::string> mine = lines_of(all[r]);
    for (std::size_t i = 0; i < std::max(mine.size(), reference.size()); ++i) {
      const std::string a = i < reference.size() ? reference[i] : "(missing)";
      const std::string b = i < mine.size() ? mine[i] : "(missing)";
      if (a != b) differences << "\n  rank 0: " << a << "\n  rank " << r << ": " << b;
    }
  }
  return differences.str();
}

}  // namespace dpt::nn
