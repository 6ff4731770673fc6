// SPDX-License-Identifier: MIT
// The model a training configuration names, built for the samples it trains on: cnn, mlp and
// custom models for images of sample_shape [C,H,W]; gpt for token windows (sample_shape [T]).
// Used by training and by the commands that rebuild a checkpoint's model (eval, sample), which
// read their data as the trainer does.
#pragma once

#include <string>

#include "nn/sequential.h"
#include "nn/train/config.h"
#include "runtime/io/dataset.h"

namespace dpt::nn {

// gpt needs config.vocab_size resolved (> 0): the trainer sets it from the dataset, and the
// checkpoint's config carries it.
Sequential build_model_of_config(const TrainConfig& config, const Shape& sample_shape,
                                 Device device = Device::cpu());

// True for gpt: samples are token windows, each position a target (a window of T tokens has T
// labels; an image has one).
bool is_language_model(const TrainConfig& config);
// Labels per sample: block_size for a language model's windows, 1 for an image.
std::int64_t targets_per_sample(const TrainConfig& config);

// `split` of the dataset at `path`, read as config's model needs it: a language model's text in
// windows of block_size tokens, images as they are. A model of the other kind is refused first,
// naming the model and the file. limit as DatasetSplit::load.
io::DatasetSplit load_split_for(const TrainConfig& config, const std::string& path,
                                const std::string& split, std::int64_t limit);

}  // namespace dpt::nn
