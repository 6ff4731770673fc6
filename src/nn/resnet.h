// SPDX-License-Identifier: MIT
// "resnet": a small residual CNN for 28x28-class images without batch normalisation (so that a
// sample's result never depends on the other samples of its rank's batch): a 3x3 stem, two stages
// of one residual block each (x + conv(relu(conv(x)))) followed by a ReLU and 2x2 max pooling,
// and a linear classifier. Names follow a PyTorch nn.Sequential whose residual blocks are
// nn.Sequential subclasses returning x + super().forward(x): "layers.2.0.weight".
#pragma once

#include "nn/sequential.h"

namespace dpt::nn {

// For samples [C,H,W] with H and W divisible by 4; `classes` outputs.
Sequential build_resnet(const Shape& sample_shape, std::int64_t classes = 10,
                        Device device = Device::cpu());

}  // namespace dpt::nn
