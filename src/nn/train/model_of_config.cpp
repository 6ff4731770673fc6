// SPDX-License-Identifier: MIT
// build_model_of_config: the reference, custom and gpt models from one config.
#include "nn/train/model_of_config.h"

#include "nn/gpt.h"
#include "nn/resnet.h"
#include "nn/train/checkpoint.h"

namespace dpt::nn {

bool is_language_model(const TrainConfig& config) { return config.model == "gpt"; }

std::int64_t targets_per_sample(const TrainConfig& config) {
  return is_language_model(config) ? config.block_size : 1;
}

io::DatasetSplit load_split_for(const TrainConfig& config, const std::string& path,
                                const std::string& split, std::int64_t limit) {
  const bool text = io::dataset_kind(path) == io::DatasetKind::kTokens;
  DPT_CHECK(text == is_language_model(config), "model '", config.model, "' ",
            text ? "classifies images, but dataset '" : "reads text, but dataset '", path,
            text ? "' holds text (train it with --model gpt)"
                 : "' holds images (import a text corpus with `dpt-data import-text`)");
  return io::DatasetSplit::load(path, split, limit, text ? config.block_size : 0);
}

Sequential build_model_of_config(const TrainConfig& config, const Shape& sample_shape,
                                 Device device) {
  if (config.model == "resnet") return build_resnet(sample_shape, 10, device);
  if (!is_language_model(config)) return build_model(layers_of(config), sample_shape, device);
  DPT_CHECK(sample_shape.size() == 1, "model gpt reads token windows [T], not samples of shape ",
            to_string(sample_shape));
  const GptConfig gpt = gpt_config(config);
  DPT_CHECK(gpt.vocab_size > 0,
            "model gpt: vocab-size is not resolved (0): it comes from the "
            "dataset, or the checkpoint's config");
  return build_gpt(gpt, sample_shape[0], device);
}

}  // namespace dpt::nn
