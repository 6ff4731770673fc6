// SPDX-License-Identifier: MIT
// `train`: trains a model on a dataset; see `train --help` and README.md.
#include <cstdio>
#include <exception>

#include "nn/train/config.h"
#include "nn/train/trainer.h"
#include "runtime/context.h"
#include "runtime/logging.h"

namespace {

int run(const dpt::nn::TrainConfig& config) {
  const dpt::Device device = dpt::resolve_device(config.device);
  const dpt::Context ctx = dpt::Context::create(device, config.threads);
  dpt::nn::Trainer trainer(config, ctx);
  const dpt::nn::TrainResult result = trainer.run();
  if (result.last_eval) {
    std::printf("test accuracy %.4f  test loss %.4f  (%lld steps, %.1f samples/s)\n",
                result.last_eval->accuracy, result.last_eval->loss,
                static_cast<long long>(result.steps), result.samples_per_sec);
  } else {
    std::printf("final training loss %.4f  (%lld steps, %.1f samples/s)\n", result.last_loss,
                static_cast<long long>(result.steps), result.samples_per_sec);
  }
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  try {
    const auto config = dpt::nn::parse_train_args(argc, argv);
    if (!config) return 0;  // --help or --version
    return run(*config);
  } catch (const std::exception& e) {
    dpt::log(dpt::LogLevel::kError, "train: ", e.what());
    return 1;
  }
}
