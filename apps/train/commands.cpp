// SPDX-License-Identifier: MIT
// `train eval`, `train export` and `train sample`: the model of a checkpoint, rebuilt from the
// configuration the checkpoint carries.
#include "commands.h"

#include <CLI/CLI.hpp>
#include <algorithm>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <optional>

#include "nn/train/checkpoint.h"
#include "nn/train/cli_integer.h"
#include "nn/train/evaluate.h"
#include "nn/train/model_of_config.h"
#include "nn/train/sampling.h"
#include "runtime/context.h"
#include "runtime/io/checkpoint_dir.h"
#include "runtime/io/checkpoint_file.h"
#include "runtime/io/dataset.h"
#include "runtime/io/vocabulary.h"
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

// The checkpoint's model (config: the checkpoint's, config_of_checkpoint), with its parameters
// loaded, for samples of `sample_shape`.
nn::Sequential load_model(const io::CheckpointState& state, const nn::TrainConfig& config,
                          const std::string& path, const Shape& sample_shape) {
  nn::Sequential model = nn::build_model_of_config(config, sample_shape);
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
                 "Write the logits [N, classes] of every sample (a gpt: [windows x T, vocab]) to "
                 "this HDF5 file (one rank)");
  if (!parse(app, argc, argv, comm.rank() == 0)) return 0;
  DPT_CHECK(samples >= 0, "train eval: --samples must be >= 0, got ", samples);
  checkpoint = checkpoint_path(checkpoint);

  if (threads <= 0) threads = std::max(1, available_cores() / comm.local_size());
  const Context ctx = Context::create(Device::cpu(), threads);
  const io::CheckpointState state = io::read_model_file(checkpoint);
  const nn::TrainConfig config = nn::config_of_checkpoint(state, checkpoint);
  const io::DatasetSplit dataset = nn::load_split_for(config, data, split, samples);
  nn::Sequential model = load_model(state, config, checkpoint, dataset.sample_shape());
  std::vector<float> logits;
  const nn::EvalResult r =
      nn::evaluate_model(ctx, comm, model, dataset, logits_path.empty() ? nullptr : &logits);
  if (!logits_path.empty()) {
    // One row per target: a sample, or each position of a language model's windows.
    const std::int64_t n = dataset.size() * nn::targets_per_sample(config);
    const std::int64_t classes =
        static_cast<std::int64_t>(logits.size()) / std::max<std::int64_t>(1, n);
    io::write_tensor_file(logits_path, {{"logits", Tensor::from_vector({n, classes}, logits)}});
  }
  if (comm.rank() == 0) {
    if (nn::is_language_model(config)) {
      std::printf(
          "%s step %lld on %s:%s: loss %.4f  perplexity %.3f  accuracy %.4f  (%lld "
          "tokens)\n",
          checkpoint.c_str(), static_cast<long long>(state.step), data.c_str(), split.c_str(),
          r.loss, std::exp(r.loss), r.accuracy, static_cast<long long>(r.samples));
    } else {
      std::printf("%s step %lld on %s:%s: accuracy %.4f  loss %.4f  (%lld samples)\n",
                  checkpoint.c_str(), static_cast<long long>(state.step), data.c_str(),
                  split.c_str(), r.accuracy, r.loss, static_cast<long long>(r.samples));
    }
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

int run_sample(int argc, const char* const* argv, comm::Communicator& comm) {
  CLI::App app{"Generate text with a language model's checkpoint (or exported model)",
               "train sample"};
  std::string checkpoint, prompt = "\n";
  nn::SampleOptions options;
  int threads = 0;
  app.add_option("--checkpoint", checkpoint,
                 "Checkpoint or exported model file of a gpt, or a checkpoint directory")
      ->required();
  app.add_option("--prompt", prompt,
                 "Text to continue (every character must be in the "
                 "model's vocabulary)")
      ->capture_default_str();
  app.add_option("--tokens", options.tokens, "Tokens to generate")
      ->capture_default_str()
      ->check(nn::integer_in_range<std::int64_t>());
  app.add_option("--temperature", options.temperature,
                 "Divides the logits (< 1: more likely "
                 "tokens, > 1: more varied)")
      ->capture_default_str();
  app.add_option("--top-k", options.top_k, "Draw only from the K likeliest tokens (0 = all)")
      ->capture_default_str()
      ->check(nn::integer_in_range<std::int64_t>());
  app.add_option("--seed", options.seed, "Seed of the draws: the same seed gives the same text")
      ->capture_default_str();
  app.add_option("--threads", threads, "CPU threads (0 = this process's cores)");
  if (!parse(app, argc, argv, comm.rank() == 0)) return 0;
  DPT_CHECK(options.tokens >= 0, "train sample: --tokens must be >= 0, got ", options.tokens);
  DPT_CHECK(options.temperature > 0.0, "train sample: --temperature must be > 0, got ",
            options.temperature);
  DPT_CHECK(options.top_k >= 0, "train sample: --top-k must be >= 0, got ", options.top_k);
  if (comm.rank() != 0) return 0;  // one rank generates
  checkpoint = checkpoint_path(checkpoint);
  const io::CheckpointState state = io::read_model_file(checkpoint);
  const nn::TrainConfig config = nn::config_of_checkpoint(state, checkpoint);
  DPT_CHECK(nn::is_language_model(config) && !state.vocabulary.empty(),
            "train sample: ", checkpoint, " holds a ", config.model,
            " model, not a language model with its "
            "vocabulary (train one with --model gpt on a text dataset)");
  const std::optional<io::Tokenizer> tokenizer = io::parse_tokenizer(state.tokenizer);
  DPT_CHECK(tokenizer.has_value(), checkpoint, ": /model tokenizer '", state.tokenizer,
            "' is neither char nor byte");
  const io::Vocabulary vocabulary =
      io::Vocabulary::from_stored(*tokenizer, state.vocabulary, checkpoint);
  const std::vector<std::int32_t> prompt_ids = vocabulary.encode(prompt, "--prompt");
  DPT_CHECK(!prompt_ids.empty(), "train sample: --prompt is empty: give at least one character");

  if (threads <= 0) threads = std::max(1, available_cores());
  const Context ctx = Context::create(Device::cpu(), threads);
  nn::Sequential model = load_model(state, config, checkpoint, {config.block_size});
  const std::vector<std::int32_t> ids =
      nn::generate(ctx, model, prompt_ids, config.block_size, options);
  const std::string text = vocabulary.decode(ids.data(), ids.size());
  std::fwrite(text.data(), 1, text.size(), stdout);
  std::fputc('\n', stdout);
  return 0;
}

}  // namespace dpt::apps
