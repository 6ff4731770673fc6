// SPDX-License-Identifier: MIT
// The start-up agreement: what every rank must share before the first step, one "key = value" line
// per fact, compared with rank 0's. Two ranks that differ in any of these would train on different
// terms and silently diverge (or crash in a collective):
//   build.<fact>   the build id (runtime/build_info.h): version, revision, compiler, flags,
//                  sanitizers, backends
//   config.<key>   the resolved config (to_toml)
//   model.<name>   each parameter's shape
//   data.<split>   file, shape, classes, normalisation and a checksum of the content each rank read
#pragma once

#include <string>
#include <vector>

#include "nn/sequential.h"
#include "nn/train/config.h"
#include "runtime/io/dataset.h"

namespace dpt::nn {

// The lines of `text` (facts, TOML dumps), without their newlines.
std::vector<std::string> lines_of(const std::string& text);

// "<identity> mean=<m> std=<s> xxh64=<16 hex digits>" (io::DatasetSplit::content_checksum).
std::string data_fact(const io::DatasetSplit& split);

// This rank's facts; `test` may be null (no evaluation).
std::string setup_facts(const TrainConfig& config, const Sequential& model,
                        const io::DatasetSplit& train, const io::DatasetSplit* test);

// Every line of rank r's facts (all[r]) that differs from rank 0's, as "\n  rank 0: <line>\n  rank
// r: <line>" ("(missing)" where one side has fewer lines); empty when all agree.
std::string disagreements(const std::vector<std::string>& all);

}  // namespace dpt::nn
