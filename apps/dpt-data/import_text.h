// SPDX-License-Identifier: MIT
// dpt-data import-text: text files -> a text dataset (docs/formats.md, "Text datasets").
#pragma once

#include <string>
#include <vector>

#include "runtime/io/vocabulary.h"

namespace dpt::data {

struct ImportTextOptions {
  std::string out;
  std::vector<std::string> files;  // concatenated in this order, nothing in between
  io::Tokenizer tokenizer = io::Tokenizer::kChar;
  double val_fraction = 0.1;  // the last this much of the tokens -> /test
};

// Writes the dataset and prints one summary line; every problem is a dpt::Error naming the file.
void import_text(const ImportTextOptions& options);

}  // namespace dpt::data
