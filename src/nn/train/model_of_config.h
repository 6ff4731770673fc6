// SPDX-License-Identifier: MIT
// The model a training configuration names, built for the samples it trains on: cnn, mlp and
// custom models for images of sample_shape [C,H,W]; gpt for token windows (sample_shape [T]).
// Used by training and by the commands that rebuild a checkpoint's model (eval, sample).
#pragma once

#include "nn/sequential.h"
#include "nn/train/config.h"

namespace dpt::nn {

// gpt needs config.vocab_size resolved (> 0): the trainer sets it from the dataset, and the
// checkpoint's config carries it.
Sequential build_model_of_config(const TrainConfig& config, const Shape& sample_shape,
                                 Device device = Device::cpu());

// True for gpt: samples are token windows, each position a target (a window of T tokens has T
// labels; an image has one).
bool is_language_model(const TrainConfig& config);

}  // namespace dpt::nn
