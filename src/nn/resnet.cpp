// SPDX-License-Identifier: MIT
// build_resnet: stem, two residual stages, classifier.
#include "nn/resnet.h"

#include <memory>

#include "nn/chain.h"
#include "nn/layers/conv2d.h"
#include "nn/layers/linear.h"
#include "nn/layers/simple.h"

namespace dpt::nn {
namespace {

std::unique_ptr<Module> conv3x3(std::int64_t in, std::int64_t out) {
  return std::make_unique<Conv2d>(in, out, 3, 1, 1, true);
}

// x + conv(relu(conv(x))), children named 0, 1, 2 as in nn.Sequential.
std::unique_ptr<Module> residual_block(std::int64_t channels) {
  auto block = std::make_unique<Residual>();
  block->add("0", conv3x3(channels, channels));
  block->add("1", std::make_unique<ReLU>());
  block->add("2", conv3x3(channels, channels));
  return block;
}

}  // namespace

Sequential build_resnet(const Shape& sample_shape, std::int64_t classes, Device device) {
  DPT_CHECK(sample_shape.size() == 3 && sample_shape[1] % 4 == 0 && sample_shape[2] % 4 == 0,
            "model resnet: expects images [C,H,W] with H and W divisible by 4, got ",
            to_string(sample_shape));
  DPT_CHECK(classes > 0, "model resnet: needs classes > 0, got ", classes);
  Sequential model;
  model.add(conv3x3(sample_shape[0], 32));  // layers.0
  model.add(std::make_unique<ReLU>());
  model.add(residual_block(32));  // layers.2
  model.add(std::make_unique<ReLU>());
  model.add(std::make_unique<MaxPool2d>(2));
  model.add(conv3x3(32, 64));  // layers.5
  model.add(std::make_unique<ReLU>());
  model.add(residual_block(64));  // layers.7
  model.add(std::make_unique<ReLU>());
  model.add(std::make_unique<MaxPool2d>(2));
  model.add(std::make_unique<Flatten>());
  model.add(std::make_unique<Linear>(64 * (sample_shape[1] / 4) * (sample_shape[2] / 4), classes));
  model.finalize(sample_shape, device);
  return model;
}

}  // namespace dpt::nn
