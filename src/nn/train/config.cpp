// SPDX-License-Identifier: MIT
// One table of fields drives the CLI (CLI11), the TOML file (toml++), validation and the dump, so a
// new option is one line here and cannot be reachable from one side only.
#include "nn/train/config.h"

#include <toml++/toml.h>

#include <CLI/CLI.hpp>
#include <algorithm>
#include <array>
#include <charconv>
#include <cmath>
#include <fstream>
#include <functional>
#include <iomanip>
#include <iostream>
#include <limits>
#include <set>
#include <sstream>
#include <utility>

#include "nn/train/cli_integer.h"
#include "runtime/build_info.h"

namespace dpt::nn {
namespace {

std::string normalise_key(std::string key) {
  std::replace(key.begin(), key.end(), '_', '-');
  return key;
}

// " (key 'steps')" when line `line` (from 1) of `text` starts with a bare key and '=', else "":
// toml++ reports an integer beyond 64 bits as a syntax error with the position and value only.
std::string key_on_line(std::string_view text, std::size_t line) {
  for (std::size_t i = 1; i < line && !text.empty(); ++i) {
    const std::size_t newline = text.find('\n');
    text = newline == std::string_view::npos ? std::string_view() : text.substr(newline + 1);
  }
  text = text.substr(0, text.find('\n'));
  const std::size_t start = text.find_first_not_of(" \t");
  if (start == std::string_view::npos) return {};
  const std::size_t end = text.find_first_not_of(
      "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_-", start);
  if (end == start || end == std::string_view::npos) return {};
  const std::size_t equals = text.find_first_not_of(" \t", end);
  if (equals == std::string_view::npos || text[equals] != '=') return {};
  return detail::str(" (key '", text.substr(start, end - start), "')");
}

std::string where(const std::string& origin, const toml::node& node) {
  const auto& src = node.source();
  if (src.begin.line == 0) return origin;
  return detail::str(origin, ':', src.begin.line);
}

// Reads one TOML value as T, or throws naming the key, the expected type and what was found.
template <typename T>
T toml_value(const toml::node& node, const std::string& key, const std::string& origin) {
  if constexpr (std::is_same_v<T, bool>) {
    if (auto v = node.value_exact<bool>()) return *v;
    DPT_FAIL(where(origin, node), ": key '", key, "' expects true or false, found ", node.type());
  } else if constexpr (std::is_same_v<T, std::string>) {
    if (auto v = node.value_exact<std::string>()) return *v;
    DPT_FAIL(where(origin, node), ": key '", key, "' expects a string, found ", node.type());
  } else if constexpr (std::is_floating_point_v<T>) {
    if (auto v = node.value<double>(); v && (node.is_floating_point() || node.is_integer())) {
      return static_cast<T>(*v);
    }
    DPT_FAIL(where(origin, node), ": key '", key, "' expects a number, found ", node.type());
  } else {
    if (auto v = node.value_exact<std::int64_t>()) {
      DPT_CHECK(std::in_range<T>(*v), where(origin, node), ": key '", key, "' must be in [",
                +std::numeric_limits<T>::min(), ", ", +std::numeric_limits<T>::max(), "], found ",
                *v);
      return static_cast<T>(*v);
    }
    DPT_FAIL(where(origin, node), ": key '", key, "' expects an integer, found ", node.type());
  }
}

template <typename T>
std::string format_value(const T& v) {
  std::ostringstream out;
  if constexpr (std::is_same_v<T, bool>) {
    out << (v ? "true" : "false");
  } else if constexpr (std::is_same_v<T, std::string>) {
    out << std::quoted(v);
  } else if constexpr (std::is_floating_point_v<T>) {
    // The shortest text that reads back to the same double (0.05, not 0.050000000000000003).
    std::array<char, 64> text{};
    const auto end = std::to_chars(text.data(), text.data() + text.size(), v).ptr;
    out << std::string_view(text.data(), static_cast<std::size_t>(end - text.data()));
    if (out.str().find_first_of(".eEn") == std::string::npos) out << ".0";
  } else {
    out << v;
  }
  return out.str();
}

struct Field {
  std::string name;  // flag and key, e.g. "batch-size"
  std::function<CLI::Option*(CLI::App&, TrainConfig&)> add_option;
  std::function<void(const toml::node&, const std::string&, TrainConfig&)> from_toml;
  std::function<void(const TrainConfig&, TrainConfig&)> copy;
  std::function<std::string(const TrainConfig&)> dump;  // empty string: omit
};

template <typename T>
Field field(std::string name, T TrainConfig::*member, std::string help) {
  Field f;
  f.name = name;
  f.add_option = [name, member, help](CLI::App& app, TrainConfig& c) -> CLI::Option* {
    if constexpr (std::is_same_v<T, bool>) {
      return app.add_flag("--" + name, c.*member, help);
    } else if constexpr (std::is_integral_v<T>) {
      return app.add_option("--" + name, c.*member, help)
          ->capture_default_str()
          ->check(integer_in_range<T>());
    } else {
      return app.add_option("--" + name, c.*member, help)->capture_default_str();
    }
  };
  f.from_toml = [name, member](const toml::node& node, const std::string& origin, TrainConfig& c) {
    c.*member = toml_value<T>(node, name, origin);
  };
  f.copy = [member](const TrainConfig& src, TrainConfig& dst) { dst.*member = src.*member; };
  f.dump = [member](const TrainConfig& c) { return format_value(c.*member); };
  return f;
}

Field optional_field(std::string name, std::optional<double> TrainConfig::*member, std::string help) {
  Field f;
  f.name = name;
  f.add_option = [name, member, help](CLI::App& app, TrainConfig& c) -> CLI::Option* {
    return app.add_option("--" + name, c.*member, help);
  };
  f.from_toml = [name, member](const toml::node& node, const std::string& origin, TrainConfig& c) {
    c.*member = toml_value<double>(node, name, origin);
  };
  f.copy = [member](const TrainConfig& src, TrainConfig& dst) { dst.*member = src.*member; };
  f.dump = [member](const TrainConfig& c) {
    return (c.*member).has_value() ? format_value(*(c.*member)) : std::string();
  };
  return f;
}

const std::vector<Field>& fields() {
  // Immutable table of descriptors built once; holds no resources.
  static const std::vector<Field> table = {
      field("data", &TrainConfig::data, "Dataset file (HDF5, see `dpt-data import-fashion-mnist`)"),
      field("model", &TrainConfig::model,
            "Model: cnn, mlp, resnet (residual CNN), gpt (on a text dataset), or custom (layers "
            "from the config file's [model] table)"),
      field("dropout", &TrainConfig::dropout,
            "cnn/mlp: dropout probability before the classifier; gpt: of every dropout layer"),
      field("n-layer", &TrainConfig::n_layer, "gpt: transformer blocks"),
      field("n-head", &TrainConfig::n_head, "gpt: attention heads (must divide n-embd)"),
      field("n-embd", &TrainConfig::n_embd, "gpt: width"),
      field("block-size", &TrainConfig::block_size, "gpt: context, tokens per training window"),
      field("vocab-size", &TrainConfig::vocab_size, "gpt: vocabulary size (0 = the dataset's)"),
      field("bias", &TrainConfig::bias, "gpt: biases in Linear and LayerNorm layers"),
      field("train-samples", &TrainConfig::train_samples,
            "Use only the first N training samples (0 = all)"),
      field("test-samples", &TrainConfig::test_samples,
            "Evaluate on the first N test samples (0 = all)"),
      field("augment", &TrainConfig::augment,
            "Training augmentation: none, or flip (horizontal, p = 1/2, keyed by sample)"),
      field("epochs", &TrainConfig::epochs, "Passes over the training data"),
      field("steps", &TrainConfig::steps, "Stop after N optimizer steps (0 = run all epochs)"),
      field("batch-size", &TrainConfig::batch_size, "Global batch: samples per optimizer step"),
      field("micro-batch", &TrainConfig::micro_batch,
            "Samples per forward/backward on a rank (0 = the rank's share / accumulate)"),
      field("accumulate", &TrainConfig::accumulate,
            "Micro-batches per step on each rank; gradients are all-reduced after the last"),
      optional_field("bucket-mb", &TrainConfig::bucket_mb,
                     "Gradient all-reduce bucket cap in MiB (the first bucket: at most 1 MiB); "
                     "not given: 25 MiB, and small models are split into about 4 buckets"),
      field("no-overlap", &TrainConfig::no_overlap,
            "All-reduce gradients after backward instead of overlapping it (for comparison)"),
      field("exact", &TrainConfig::exact,
            "Exact mode: bitwise identical results on any number of ranks and threads (micro-"
            "shards of --shard-size samples, gradients summed in fixed point)"),
      field("shard-size", &TrainConfig::shard_size,
            "Exact mode: samples per micro-shard (0 = the largest divisor of batch-size up to "
            "32); the number of ranks must divide batch-size / shard-size"),
      field("zero", &TrainConfig::zero,
            "ZeRO stage: 0 = every rank keeps the whole optimizer state; 1 = each rank keeps and "
            "updates 1/N of it (reduce-scatter of gradients, all-gather of parameters: the bytes "
            "of one all-reduce)"),
      field("allow-inexact-resume", &TrainConfig::allow_inexact_resume,
            "Resume on another number of ranks even where the continuation cannot be bitwise "
            "(a warning instead of an error)"),
      field("log-all-ranks", &TrainConfig::log_all_ranks,
            "Every rank prints progress, prefixed with its rank (default: rank 0 only)"),
      field("collective-timeout", &TrainConfig::collective_timeout,
            "Seconds a collective may wait for the other ranks before the job ends naming the "
            "ranks that did not arrive (0 = wait forever); also NCCL's timeout"),
      field("check-collectives", &TrainConfig::check_collectives,
            "Debug: before every collective, compare its kind and size across ranks and stop "
            "with both sides named when they differ"),
      field("nonfinite", &TrainConfig::nonfinite,
            "A step whose reduced gradients hold NaN or Inf: abort (name step, rank, parameter) "
            "or skip (parameters unchanged)"),
      field("nonfinite-skip-limit", &TrainConfig::nonfinite_skip_limit,
            "nonfinite = skip: abort after this many skipped steps"),
      field("check-params-every", &TrainConfig::check_params_every,
            "Steps between checks that every rank holds the same parameters (0 = never)"),
      field("optimizer", &TrainConfig::optimizer, "sgd or adamw"),
      field("lr", &TrainConfig::lr, "Peak learning rate"),
      field("momentum", &TrainConfig::momentum, "SGD momentum"),
      field("dampening", &TrainConfig::dampening, "SGD dampening"),
      field("nesterov", &TrainConfig::nesterov, "SGD: Nesterov momentum"),
      optional_field("weight-decay", &TrainConfig::weight_decay,
                     "Weight decay (default 0 for sgd, 0.01 for adamw, as PyTorch)"),
      field("beta1", &TrainConfig::beta1, "AdamW beta1"),
      field("beta2", &TrainConfig::beta2, "AdamW beta2"),
      field("eps", &TrainConfig::eps, "AdamW epsilon"),
      field("clip-grad-norm", &TrainConfig::clip_grad_norm,
            "Clip the global gradient norm to this value (0 = off)"),
      field("precision", &TrainConfig::precision,
            "fp32, bf16 or fp16: the format of the inputs of GEMMs and convolutions (forward and "
            "backward); parameters, gradients, optimizer state, loss and softmax stay fp32"),
      field("loss-scale", &TrainConfig::loss_scale,
            "fp16: the first loss scale (halved on a step whose gradients overflow, that step "
            "skipped; doubled after loss-scale-growth-interval steps without)"),
      field("loss-scale-growth-interval", &TrainConfig::loss_scale_growth_interval,
            "fp16: steps without overflow before the loss scale doubles"),
      field("grad-reduce", &TrainConfig::grad_reduce,
            "fp32 or bf16: the format of the gradient all-reduce (bf16: half the bytes, each "
            "rank's gradient and every partial sum rounded to bf16)"),
      field("tf32", &TrainConfig::tf32,
            "GPU: let fp32 GEMMs and convolutions round their inputs to TF32 on tensor cores "
            "(faster, about 1e-3 from fp32; refused on the CPU)"),
      field("lr-schedule", &TrainConfig::lr_schedule, "constant, cosine or step"),
      field("warmup-steps", &TrainConfig::warmup_steps, "Linear warm-up steps"),
      field("min-lr", &TrainConfig::min_lr, "cosine: final learning rate"),
      field("lr-step-size", &TrainConfig::lr_step_size, "step: steps between decays"),
      field("lr-gamma", &TrainConfig::lr_gamma, "step: decay factor"),
      field("checkpoint-dir", &TrainConfig::checkpoint_dir,
            "Directory for checkpoints (step-<n>.h5 and `latest`); created if missing"),
      field("checkpoint-every", &TrainConfig::checkpoint_every,
            "Steps between checkpoints (0 = only at the end and on SIGTERM/SIGUSR1)"),
      field("keep-last", &TrainConfig::keep_last, "Checkpoints to keep (0 = all)"),
      field("async-checkpoint", &TrainConfig::async_checkpoint,
            "Write checkpoints on a background thread: a checkpoint step only copies the state "
            "(waiting first for the previous write, if still running)"),
      field("resume", &TrainConfig::resume,
            "auto (newest good checkpoint in --checkpoint-dir, or start fresh) or a checkpoint "
            "file"),
      field("seed", &TrainConfig::seed, "Seed of initialisation, data order and dropout"),
      field("threads", &TrainConfig::threads, "CPU threads (0 = all cores available)"),
      field("device", &TrainConfig::device,
            "auto (a GPU when one is visible, else the CPU), cpu, cuda (GPU local_rank % count) "
            "or cuda:N"),
      field("log-every", &TrainConfig::log_every,
            "Steps between progress lines (--metrics gets a line every step)"),
      field("metrics", &TrainConfig::metrics, "Write JSON-lines metrics to this file"),
      field(
          "timeline", &TrainConfig::timeline,
          "Write a Chrome trace (chrome://tracing, Perfetto) of every rank's layers, all-reduces, "
          "optimizer and data waits"),
      field("timeline-steps", &TrainConfig::timeline_steps, "Steps recorded in --timeline"),
      field("eval", &TrainConfig::eval, "Evaluate on the test split after each epoch"),
      field("eval-every", &TrainConfig::eval_every,
            "Also evaluate every N steps (0 = after each epoch and at the end only)"),
      field("quiet", &TrainConfig::quiet, "No progress output"),
  };
  return table;
}

const Field* find_field(const std::string& key) {
  const std::string name = normalise_key(key);
  for (const Field& f : fields()) {
    if (f.name == name) return &f;
  }
  return nullptr;
}

std::vector<LayerSpec> parse_layers(const toml::node& node, const std::string& origin) {
  const toml::array* array = node.as_array();
  DPT_CHECK(array != nullptr, where(origin, node),
            ": key 'model.layers' expects an array of tables, found ", node.type());
  std::vector<LayerSpec> layers;
  for (std::size_t i = 0; i < array->size(); ++i) {
    const toml::node& item = *array->get(i);
    const toml::table* t = item.as_table();
    DPT_CHECK(t != nullptr, where(origin, item), ": model.layers[", i, "] expects a table, found ",
              item.type());
    LayerSpec spec;
    for (auto&& [k, v] : *t) {
      const std::string key(k.str());
      const std::string name = detail::str("model.layers[", i, "].", key);
      if (key == "type") spec.type = toml_value<std::string>(v, name, origin);
      else if (key == "in") spec.in = toml_value<std::int64_t>(v, name, origin);
      else if (key == "out") spec.out = toml_value<std::int64_t>(v, name, origin);
      else if (key == "kernel") spec.kernel = toml_value<int>(v, name, origin);
      else if (key == "stride") spec.stride = toml_value<int>(v, name, origin);
      else if (key == "padding") spec.padding = toml_value<int>(v, name, origin);
      else if (key == "p") spec.p = toml_value<float>(v, name, origin);
      else if (key == "bias") spec.bias = toml_value<bool>(v, name, origin);
      else
        DPT_FAIL(where(origin, v), ": unknown key '", name,
                 "' (expected type, in, out, kernel, stride, padding, p, bias)");
    }
    DPT_CHECK(!spec.type.empty(), where(origin, item), ": model.layers[", i, "] has no 'type'");
    layers.push_back(spec);
  }
  DPT_CHECK(!layers.empty(), origin, ": model.layers is empty");
  return layers;
}

}  // namespace

GptConfig gpt_config(const TrainConfig& c) {
  GptConfig g;
  g.n_layer = c.n_layer;
  g.n_head = c.n_head;
  g.n_embd = c.n_embd;
  g.block_size = c.block_size;
  g.vocab_size = c.vocab_size;
  g.dropout = static_cast<float>(c.dropout);
  g.bias = c.bias;
  return g;
}

DType TrainConfig::compute_format() const {
  if (precision == "bf16") return DType::kBF16;
  if (precision == "fp16") return DType::kF16;
  return DType::kF32;
}

double TrainConfig::resolved_weight_decay() const {
  if (weight_decay) return *weight_decay;
  return optimizer == "adamw" ? 0.01 : 0.0;
}

std::int64_t TrainConfig::resolved_shard_size() const {
  if (shard_size > 0) return shard_size;
  std::int64_t size = std::min<std::int64_t>(32, batch_size);
  while (batch_size % size != 0) --size;
  return size;
}

std::int64_t TrainConfig::resolved_micro_batch(int world_size) const {
  if (exact) {
    const std::int64_t m = resolved_shard_size();
    const std::int64_t shards = batch_size / m;
    DPT_CHECK(world_size >= 1 && batch_size % world_size == 0, "config: 'batch-size' (",
              batch_size, ") must be divisible by the number of ranks (", world_size, ")");
    DPT_CHECK(shards % world_size == 0, "config: exact mode cuts 'batch-size' ", batch_size,
              " into ", shards, " shards of ", m, " ('shard-size'", shard_size > 0 ? "" : ", default",
              "), which ", world_size, " ranks cannot share equally: choose a 'shard-size' that "
              "divides ", batch_size / world_size, " (batch-size / ranks)");
    DPT_CHECK(micro_batch == 0 || micro_batch == m, "config: exact mode computes each shard of ",
              m, " samples on its own; 'micro-batch' (", micro_batch,
              ") must be 0 or the shard size");
    DPT_CHECK(accumulate == 1 || accumulate == shards / world_size, "config: exact mode runs ",
              shards / world_size, " shards per rank on ", world_size, " rank(s); 'accumulate' (",
              accumulate, ") must be 1 or that number");
    return m;
  }
  DPT_CHECK(world_size >= 1 && batch_size % world_size == 0, "config: 'batch-size' (",
            batch_size, ") must be divisible by the number of ranks (", world_size, ")");
  const std::int64_t local = batch_size / world_size;
  if (micro_batch == 0) {
    DPT_CHECK(local % accumulate == 0, "config: each rank's share of the batch (", batch_size,
              " / ", world_size, " ranks = ", local, ") must be divisible by 'accumulate' (",
              accumulate, ")");
    return local / accumulate;
  }
  DPT_CHECK(local % micro_batch == 0, "config: 'batch-size' (", batch_size,
            ") must be divisible by ranks x 'micro-batch' (", world_size, " x ", micro_batch,
            ")");
  DPT_CHECK(accumulate == 1 || local / micro_batch == accumulate, "config: 'accumulate' (",
            accumulate, ") disagrees with 'micro-batch' (", micro_batch, "): ", world_size,
            " rank(s) x ", micro_batch, " x ", accumulate, " != batch-size ", batch_size);
  return micro_batch;
}

void apply_toml(const std::string& toml_text, const std::string& origin, TrainConfig& config) {
  toml::table root;
  try {
    root = toml::parse(toml_text, origin);
  } catch (const toml::parse_error& e) {
    DPT_FAIL(origin, ':', e.source().begin.line, ':', e.source().begin.column,
             key_on_line(toml_text, e.source().begin.line), ": TOML syntax error: ",
             e.description());
  }
  for (auto&& [k, v] : root) {
    const std::string key(k.str());
    if (key == "model" && v.is_table()) {
      for (auto&& [mk, mv] : *v.as_table()) {
        const std::string mkey(mk.str());
        if (mkey == "layers") {
          config.layers = parse_layers(mv, origin);
          config.model = "custom";
          continue;
        }
        // The gpt's keys, nanoGPT's names: [model] n_layer = 6 is the key n-layer = 6.
        static const std::set<std::string> gpt_keys = {
            "n_layer", "n_head", "n_embd", "block_size", "vocab_size", "dropout", "bias"};
        DPT_CHECK(gpt_keys.count(mkey) > 0, where(origin, mv), ": unknown key 'model.", mkey,
                  "' (the [model] table takes 'layers', or the gpt's n_layer, n_head, n_embd, "
                  "block_size, vocab_size, dropout and bias)");
        find_field(mkey)->from_toml(mv, origin, config);
        // A table of the gpt's keys names the model, as `layers` names a custom one (TOML has
        // no room for both model = "gpt" and a [model] table).
        if (mkey != "dropout") config.model = "gpt";
      }
      continue;
    }
    const Field* f = find_field(key);
    DPT_CHECK(f != nullptr, where(origin, v), ": unknown key '", key,
              "' (run `train --help` for the keys; each flag is a key)");
    f->from_toml(v, origin, config);
  }
}

void validate(const TrainConfig& c) {
  DPT_CHECK(!c.data.empty(), "config: 'data' (--data) is required: the dataset file");
  const auto names = reference_model_names();
  DPT_CHECK(c.model == "custom" || c.model == "gpt" || c.model == "resnet" ||
                std::find(names.begin(), names.end(), c.model) != names.end(),
            "config: 'model' must be cnn, mlp, resnet, gpt or custom, got '", c.model, "'");
  if (c.model == "gpt") {
    GptConfig gpt = gpt_config(c);
    if (gpt.vocab_size == 0) gpt.vocab_size = 1;  // the dataset's: checked when it is read
    validate(gpt);
    DPT_CHECK(c.augment == "none", "config: 'augment' ", c.augment,
              " is for images; gpt reads text");
  }
  DPT_CHECK(c.model != "resnet" || c.dropout == 0.0, "config: 'dropout' (", c.dropout,
            ") has no place in the resnet model");
  if (c.model != "gpt") {
    // The gpt's keys would be ignored by any other model: a mistake, not a choice.
    const TrainConfig d;
    const char* set = c.n_layer != d.n_layer         ? "n-layer"
                      : c.n_head != d.n_head         ? "n-head"
                      : c.n_embd != d.n_embd         ? "n-embd"
                      : c.block_size != d.block_size ? "block-size"
                      : c.vocab_size != d.vocab_size ? "vocab-size"
                      : c.bias != d.bias             ? "bias"
                                                     : nullptr;
    DPT_CHECK(set == nullptr, "config: '", set ? set : "",
              "' is a key of the gpt model, but "
              "'model' is ",
              c.model);
  }
  DPT_CHECK(c.vocab_size >= 0, "config: 'vocab-size' must be >= 0, got ", c.vocab_size);
  DPT_CHECK(c.eval_every >= 0, "config: 'eval-every' must be >= 0, got ", c.eval_every);
  DPT_CHECK(c.model != "custom" || !c.layers.empty(),
            "config: model 'custom' needs a [model] table with layers in the config file");
  DPT_CHECK(c.dropout >= 0.0 && c.dropout < 1.0, "config: 'dropout' must be in [0, 1), got ",
            c.dropout);
  DPT_CHECK(c.model != "custom" || c.dropout == 0.0, "config: 'dropout' (", c.dropout,
            ") applies to the cnn and mlp models only; a custom model places its own: "
            "{ type = \"dropout\", p = ", c.dropout, " } in the [model] layers");
  DPT_CHECK(c.train_samples >= 0, "config: 'train-samples' must be >= 0, got ", c.train_samples);
  DPT_CHECK(c.test_samples >= 0, "config: 'test-samples' must be >= 0, got ", c.test_samples);
  DPT_CHECK(c.augment == "none" || c.augment == "flip",
            "config: 'augment' must be none or flip, got '", c.augment, "'");
  DPT_CHECK(c.epochs >= 1, "config: 'epochs' must be >= 1, got ", c.epochs);
  DPT_CHECK(c.steps >= 0, "config: 'steps' must be >= 0, got ", c.steps);
  DPT_CHECK(c.batch_size >= 1, "config: 'batch-size' must be >= 1, got ", c.batch_size);
  DPT_CHECK(c.micro_batch >= 0 && c.micro_batch <= c.batch_size,
            "config: 'micro-batch' must be in [0, batch-size=", c.batch_size, "], got ",
            c.micro_batch);
  DPT_CHECK(c.accumulate >= 1, "config: 'accumulate' must be >= 1, got ", c.accumulate);
  DPT_CHECK(c.shard_size >= 0 && c.batch_size % std::max<std::int64_t>(c.shard_size, 1) == 0,
            "config: 'shard-size' must be 0 or a divisor of batch-size (", c.batch_size, "), got ",
            c.shard_size);
  DPT_CHECK(c.shard_size == 0 || c.exact,
            "config: 'shard-size' applies to exact mode only: add 'exact' (--exact)");
  DPT_CHECK(c.zero == 0 || c.zero == 1, "config: 'zero' must be 0 or 1 (ZeRO stage 1 shards the "
            "optimizer state), got ", c.zero);
  // Micro-batch and accumulate against one rank; in exact mode `accumulate` counts shards per
  // rank, which depends on the world size: checked when the world is known.
  if (!c.exact) (void)c.resolved_micro_batch(1);
  DPT_CHECK(!c.exact || c.micro_batch == 0 || c.micro_batch == c.resolved_shard_size(),
            "config: exact mode computes each shard of ", c.resolved_shard_size(),
            " samples on its own; 'micro-batch' (", c.micro_batch, ") must be 0 or the shard size");
  DPT_CHECK(!c.bucket_mb || (*c.bucket_mb > 0.0 && *c.bucket_mb <= 4096.0),
            "config: 'bucket-mb' must be in (0, 4096], got ", c.bucket_mb.value_or(0.0));
  DPT_CHECK(c.optimizer == "sgd" || c.optimizer == "adamw",
            "config: 'optimizer' must be sgd or adamw, got '", c.optimizer, "'");
  DPT_CHECK(c.lr > 0.0 && c.lr < 100.0, "config: 'lr' must be in (0, 100), got ", c.lr);
  DPT_CHECK(c.momentum >= 0.0 && c.momentum < 1.0, "config: 'momentum' must be in [0, 1), got ",
            c.momentum);
  DPT_CHECK(c.dampening >= 0.0 && c.dampening <= 1.0,
            "config: 'dampening' must be in [0, 1], got ", c.dampening);
  DPT_CHECK(!c.nesterov || (c.momentum > 0.0 && c.dampening == 0.0),
            "config: 'nesterov' needs 'momentum' > 0 and 'dampening' 0");
  DPT_CHECK(c.resolved_weight_decay() >= 0.0, "config: 'weight-decay' must be >= 0, got ",
            c.resolved_weight_decay());
  DPT_CHECK(c.beta1 >= 0.0 && c.beta1 < 1.0, "config: 'beta1' must be in [0, 1), got ", c.beta1);
  DPT_CHECK(c.beta2 >= 0.0 && c.beta2 < 1.0, "config: 'beta2' must be in [0, 1), got ", c.beta2);
  DPT_CHECK(c.eps > 0.0, "config: 'eps' must be > 0, got ", c.eps);
  DPT_CHECK(c.clip_grad_norm >= 0.0, "config: 'clip-grad-norm' must be >= 0, got ",
            c.clip_grad_norm);
  DPT_CHECK(c.precision == "fp32" || c.precision == "bf16" || c.precision == "fp16",
            "config: 'precision' must be fp32, bf16 or fp16, got '", c.precision, "'");
  int scale_exponent = 0;
  DPT_CHECK(std::isfinite(c.loss_scale) && c.loss_scale >= 1.0 && c.loss_scale <= 0x1p64 &&
                std::frexp(c.loss_scale, &scale_exponent) == 0.5,
            "config: 'loss-scale' must be a power of two in [1, 2^64], got ", c.loss_scale);
  DPT_CHECK(c.loss_scale_growth_interval >= 1,
            "config: 'loss-scale-growth-interval' must be >= 1, got ",
            c.loss_scale_growth_interval);
  DPT_CHECK(c.grad_reduce == "fp32" || c.grad_reduce == "bf16",
            "config: 'grad-reduce' must be fp32 or bf16, got '", c.grad_reduce, "'");
  DPT_CHECK(c.grad_reduce == "fp32" || (!c.exact && c.zero == 0),
            "config: 'grad-reduce = bf16' works with neither exact mode (its gradient sums are "
            "exact fixed point) nor --zero 1 (a reduce-scatter in fp32)");
  const TrainConfig defaults;
  DPT_CHECK(c.precision == "fp16" ||
                (c.loss_scale == defaults.loss_scale &&
                 c.loss_scale_growth_interval == defaults.loss_scale_growth_interval),
            "config: 'loss-scale' and 'loss-scale-growth-interval' apply to precision fp16 only "
            "(bf16 has fp32's range and needs no scaling), precision is ",
            c.precision);
  DPT_CHECK(c.lr_schedule == "constant" || c.lr_schedule == "cosine" || c.lr_schedule == "step",
            "config: 'lr-schedule' must be constant, cosine or step, got '", c.lr_schedule, "'");
  DPT_CHECK(c.warmup_steps >= 0, "config: 'warmup-steps' must be >= 0, got ", c.warmup_steps);
  DPT_CHECK(c.min_lr >= 0.0 && c.min_lr <= c.lr, "config: 'min-lr' must be in [0, lr], got ",
            c.min_lr);
  DPT_CHECK(c.lr_step_size >= 1, "config: 'lr-step-size' must be >= 1, got ", c.lr_step_size);
  DPT_CHECK(c.lr_gamma > 0.0 && c.lr_gamma <= 1.0, "config: 'lr-gamma' must be in (0, 1], got ",
            c.lr_gamma);
  DPT_CHECK(c.threads >= 0 && c.threads <= 4096, "config: 'threads' must be in [0, 4096], got ",
            c.threads);
  DPT_CHECK(c.checkpoint_every >= 0, "config: 'checkpoint-every' must be >= 0, got ",
            c.checkpoint_every);
  DPT_CHECK(c.keep_last >= 0, "config: 'keep-last' must be >= 0, got ", c.keep_last);
  DPT_CHECK(c.checkpoint_every == 0 || !c.checkpoint_dir.empty(),
            "config: 'checkpoint-every' needs 'checkpoint-dir' (where to write them)");
  DPT_CHECK(!c.async_checkpoint || !c.checkpoint_dir.empty(),
            "config: 'async-checkpoint' needs 'checkpoint-dir' (where to write them)");
  DPT_CHECK(c.resume != "auto" || !c.checkpoint_dir.empty(),
            "config: 'resume = auto' needs 'checkpoint-dir' (where to look for checkpoints)");
  DPT_CHECK(c.timeline_steps >= 1, "config: 'timeline-steps' must be >= 1, got ",
            c.timeline_steps);
  DPT_CHECK(c.log_every >= 1, "config: 'log-every' must be >= 1, got ", c.log_every);
  DPT_CHECK(c.collective_timeout >= 0.0 && c.collective_timeout <= 7.0 * 24 * 3600,
            "config: 'collective-timeout' must be in [0, 604800] seconds (0 = none), got ",
            c.collective_timeout);
  DPT_CHECK(c.nonfinite == "abort" || c.nonfinite == "skip",
            "config: 'nonfinite' must be abort or skip, got '", c.nonfinite, "'");
  DPT_CHECK(c.nonfinite_skip_limit >= 1, "config: 'nonfinite-skip-limit' must be >= 1, got ",
            c.nonfinite_skip_limit);
  DPT_CHECK(c.check_params_every >= 0, "config: 'check-params-every' must be >= 0, got ",
            c.check_params_every);
}

std::string to_toml(const TrainConfig& config) {
  std::ostringstream out;
  for (const Field& f : fields()) {
    if (f.name == "model" && config.model == "custom") continue;
    const std::string value = f.dump(config);
    if (!value.empty()) out << f.name << " = " << value << '\n';
  }
  if (config.model == "custom") {
    out << "\n[model]\nlayers = [\n";
    for (const LayerSpec& s : config.layers) {
      out << "  { type = " << std::quoted(s.type) << ", in = " << s.in << ", out = " << s.out
          << ", kernel = " << s.kernel << ", stride = " << s.stride << ", padding = " << s.padding
          << ", p = " << format_value(static_cast<double>(s.p))
          << ", bias = " << format_value(s.bias) << " },\n";
    }
    out << "]\n";
  }
  return out.str();
}

std::optional<TrainConfig> parse_train_args(int argc, const char* const* argv, bool print_help,
                                            const char* command) {
  CLI::App app{"dptrain: data-parallel training of neural networks (one process, or N ranks "
               "under mpirun)",
               command};
  app.set_version_flag("--version", build_description());
  app.get_formatter()->column_width(34);
  app.footer(
      "Also: `train verify [the flags above]` (the steps on every rank against one rank: per "
      "parameter the largest differences, exit 2 beyond the mode's bound), `train eval "
      "--checkpoint C --data D`, `train export --checkpoint C --out M` and `train sample "
      "--checkpoint C --prompt TEXT` (a gpt's text; see their --help).");
  std::string config_path;
  app.add_option("--config", config_path,
                 "TOML file; every flag is also a key (e.g. batch-size = 256), flags override it")
      ->check(CLI::ExistingFile);
  TrainConfig from_flags;
  std::vector<std::pair<const Field*, CLI::Option*>> options;
  for (const Field& f : fields()) options.emplace_back(&f, f.add_option(app, from_flags));

  try {
    app.parse(argc, argv);
  } catch (const CLI::CallForHelp& e) {
    if (print_help) app.exit(e);
    return std::nullopt;
  } catch (const CLI::CallForVersion& e) {
    if (print_help) app.exit(e);
    return std::nullopt;
  } catch (const CLI::ParseError& e) {
    DPT_FAIL("command line: ", e.what(), " (run `train --help`)");
  }

  TrainConfig config;
  if (!config_path.empty()) {
    std::ifstream in(config_path);
    DPT_CHECK_KIND(ErrorKind::kIo, in.good(), "config: cannot read '", config_path, "'");
    std::stringstream text;
    text << in.rdbuf();
    apply_toml(text.str(), config_path, config);
  }
  for (const auto& [f, option] : options) {
    if (option->count() > 0) f->copy(from_flags, config);
  }
  DPT_CHECK(!(config.model == "custom" && config.layers.empty()),
            "config: model 'custom' needs a [model] table with layers in the --config file");
  validate(config);
  return config;
}

}  // namespace dpt::nn
