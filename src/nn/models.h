// SPDX-License-Identifier: MIT
// The model zoo: reference models by name, and any Sequential described as a list of layer specs
// (what the TOML config's [[model.layers]] tables become).
#pragma once

#include <string>
#include <string_view>
#include <vector>

#include "nn/sequential.h"

namespace dpt::nn {

struct LayerSpec {
  std::string type;          // linear, conv2d, maxpool2d, relu, flatten, dropout
  std::int64_t in = 0;       // in_features / in_channels
  std::int64_t out = 0;      // out_features / out_channels
  int kernel = 0;
  int stride = 0;            // 0: the layer's default (1 for conv2d, kernel for maxpool2d)
  int padding = 0;
  float p = 0.5f;            // dropout probability
  bool bias = true;
};

// "cnn" and "mlp" of docs/design.md; dropout > 0 inserts Dropout(dropout) before the classifier.
std::vector<LayerSpec> reference_model(std::string_view name, float dropout = 0.0f);
// Names accepted by reference_model(), for --help and errors.
std::vector<std::string> reference_model_names();

Sequential build_model(const std::vector<LayerSpec>& layers, const Shape& sample_shape,
                       Device device = Device::cpu());

}  // namespace dpt::nn
