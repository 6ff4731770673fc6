// SPDX-License-Identifier: MIT
// Reference tensors written by PyTorch (tests/kernels/make_transformer_fixtures.py,
// tests/nn/make_autocast_fixtures.py): a text file of "name d0,d1,..." lines, each followed by
// a line of the tensor's values in row-major order.
#pragma once

#include <map>
#include <string>
#include <vector>

#include "runtime/tensor.h"

namespace dpt::test {

struct FixtureTensor {
  Shape shape;
  std::vector<double> values;
};

// Every tensor of the fixture file at `relative_path` in the source tree (as
// "tests/nn/fixtures/autocast_bf16.txt"), by name; throws naming the file when it cannot be read
// or a name has no values. The tree is $DPT_SOURCE_DIR where set (CTest sets it; a GPU kit sets
// it to the kit, which carries the fixtures at the same relative paths), else the tree the tests
// were built from.
std::map<std::string, FixtureTensor> read_fixture(const std::string& relative_path);

// The values as an f32 tensor of the fixture's shape.
Tensor to_tensor(const FixtureTensor& f);

}  // namespace dpt::test
