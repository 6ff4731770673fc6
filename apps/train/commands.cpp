// SPDX-License-Identifier: MIT
// `train eval` and `train export`: the model of a checkpoint, rebuilt from the configuration the
// checkpoint carries.
#include "commands.h"

#include <CLI/CLI.hpp>
#include <algorithm>
#include <cstdio>
#include <filesystem>
#include <optional>

#include "nn/train/checkpoint.h"
#include "nn/train/cli_integer.h"
#include "nn/train/evaluate.h"
#include "runtime/context.h"
#include "runtime/io/checkpoint_dir.h"
#include "runtime/io/checkpoint_file.h"
#include "runtime/io/dataset.h"
#include "runtime/logging.h"

namespace dpt::apps {
namespace {

// Parses a subcommand's flags; false when --help was printed.
bool parse(CLI::App& app, int argc, const char* const* argv, bool print_help) {
  try {
    app.parse(argc, argv);
  } catch (const CLI::CallForHelp& e) {
    if (print_help) app.exit(e);
    return false;
  } catch (const CLI::ParseError& e) {
    DPT_FAIL("command line: ", e.what(), " (run `", app.get_name(), " --help`)");
  }
  return true;
}

// A checkpoint file, or a checkpoint directory standing for the file its `latest` names.
std::string checkpoint_path(const std::string& path) {
  if (!std::filesystem::is_directory(path)) return path;
  const std::optional<io::CheckpointRef> latest = io::CheckpointDir(path).latest();
  DPT_CHECK_KIND(ErrorKind::kIo, latest.has_value(), "checkpoint directory ", path,
                 " has no `latest`: name a checkpoint file instead");
  return latest->path;
}

// The checkpoint's model, with its parameters loaded, for samples of `sample_shape`.
nn::Sequential load_model(const io::CheckpointState& state, const std::string& path,
                          const Shape& sample_shape) {
  const nn::TrainConfig config = nn::config_of_checkpoint(state, path);
  nn::Sequential model = nn::build_model(nn::layers_of(config), sample_shape);
  nn::restore_checkpoint(state, path, model, /*optimizer=*/nullptr);
  return model;
}

}  // namespace

int run_eval(int argc, const char* const* argv, comm::Communicator& comm) {
  CLI::App app{"Evaluate a checkpoint (or an exported model) on a dataset split", "train eval"};
  std::string checkpoint, data, split = "test", logits_path;
  std::int64_t samples = 0;
  int threads = 0;
  app.add_option("--checkpoint", checkpoint,
                 "Checkpoint or exported model file, or a checkpoint directory (its latest)")
      ->required();
  app.add_option("--data", data, "Dataset file (HDF5)")->required();
  app.add_option("--split", split, "Split to evaluate")->capture_default_str();
  app.add_option("--samples", samples, "Evaluate the first N samples (0 = all)")
      ->check(nn::integer_in_range<std::int64_t>());
  app.add_option("--threads", threads, "CPU threads (0 = the node's cores / ranks on it)");
  app.add_option("--logits", logits_path,
                 "Write the logits [N, classes] of every sample to this HDF5 file (one rank)");
  if (!parse(app, argc, argv, comm.rank() == 0)) return 0;
  DPT_CHECK(samples >= 0, "train eval: --samples must be >= 0, got ", samples);
  checkpoint = checkpoint_path(checkpoint);

  if (threads <= 0) threads = std::max(1, available_cores() / comm.local_size());
  const Context ctx = Context::create(Device::cpu(), threads);
  const io::CheckpointState state = io::read_model_file(checkpoint);
  const io::DatasetSplit dataset = io::DatasetSplit::load(data, split, samples);
  nn::Sequential model =
      load_model(state, checkpoint, {dataset.channels(), dataset.height(), dataset.width()});
  std::vector<float> logits;
  const nn::EvalResult r =
      nn::evaluate_model(ctx, comm, model, dataset, logits_path.empty() ? nullptr : &logits);
  if (!logits_path.empty()) {
    const std::int64_t n = dataset.size();
    const std::int64_t classes =
        static_cast<std::int64_t>(logits.size()) / std::max<std::int64_t>(1, n);
    io::write_tensor_file(logits_path, {{"logits", Tensor::from_vector({n, classes}, logits)}});
  }
  if (comm.rank() == 0) {
    std::printf("%s step %lld on %s:%s: accuracy %.4f  loss %.4f  (%lld samples)\n",
                checkpoint.c_str(), static_cast<long long>(state.step), data.c_str(), split.c_str(),
                r.accuracy, r.loss, static_cast<long long>(r.samples));
  }
  return 0;
}

int run_export(int argc, const char* const* argv, comm::Communicator& comm) {
  CLI::App app{"Write the model of a checkpoint alone (PyTorch names and shapes)", "train export"};
  std::string checkpoint, out;
  app.add_option("--checkpoint", checkpoint,
                 "Checkpoint file, or a checkpoint directory (its latest)")
      ->required();
  app.add_option("--out", out, "Model file to write (HDF5)")->required();
  if (!parse(app, argc, argv, comm.rank() == 0)) return 0;
  if (comm.rank() != 0) return 0;
  checkpoint = checkpoint_path(checkpoint);
  const io::CheckpointState state = io::read_model_file(checkpoint);
  (void)nn::config_of_checkpoint(state, checkpoint);  // refuse a checkpoint whose config is bad
  io::write_model_file(out, state);
  std::printf("wrote %s: %zu parameter tensors of %s step %lld\n", out.c_str(), state.model.size(),
              checkpoint.c_str(), static_cast<long long>(state.step));
  return 0;
}

}  // namespace dpt::apps
