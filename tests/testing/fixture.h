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

// Every tensor of the fixture file at `path`, by name; throws naming the file when it cannot be
// read or a name has no values.
std::map<std::string, FixtureTensor> read_fixture(const std::string& path);

// The values as an f32 tensor of the fixture's shape.
Tensor to_tensor(const FixtureTensor& f);

}  // namespace dpt::test
