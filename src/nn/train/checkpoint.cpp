// SPDX-License-Identifier: MIT
// Training state <-> checkpoint contents, with the fit checks that make a restore all-or-nothing.
#include "nn/train/checkpoint.h"

#include <cmath>
#include <map>
#include <nlohmann/json.hpp>

#include "kernels/ops.h"
#include "runtime/check.h"

namespace dpt::nn {
namespace {

#define DPT_FIT_CHECK(cond, ...) DPT_CHECK_KIND(::dpt::ErrorKind::kIo, cond, __VA_ARGS__)

// Offset of a parameter inside the model's flat buffer; optimizer slots share that layout.
std::int64_t offset_in(const Tensor& flat, const Tensor& view) {
  return static_cast<std::int64_t>(view.data<float>() - flat.data<float>());
}

// "" when every value of the host tensor t is finite, else "NaN at element 17" (the first). The
// kernels' block scan (vectorised, one thread: it also runs on the checkpoint writer's thread)
// finds it in about one read of a 118 MB snapshot.
std::string first_nonfinite_of(const Tensor& t) {
  const float* v = t.data<float>();
  const std::int64_t i = kernels::first_nonfinite_on_host(v, t.numel());
  if (i == t.numel()) return {};
  return detail::str(std::isnan(v[i]) ? "NaN" : (v[i] > 0 ? "+Inf" : "-Inf"), " at element ", i,
                     " of ", t.numel());
}

// A checkpoint never holds a NaN or Inf: one that did would carry the damage into every run
// resumed from it (resume auto would even prefer it as the newest).
void check_finite_to_write(const std::vector<io::NamedTensor>& tensors, const char* group,
                           std::int64_t step) {
  for (const io::NamedTensor& t : tensors) {
    const std::string found = first_nonfinite_of(t.value);
    DPT_CHECK(found.empty(), "not writing the checkpoint of step ", step, ": ", group, t.name,
              " holds ", found);
  }
}

void check_finite_to_read(const std::vector<io::NamedTensor>& tensors, const char* group,
                          const std::string& path) {
  for (const io::NamedTensor& t : tensors) {
    const std::string found = first_nonfinite_of(t.value);
    DPT_FIT_CHECK(found.empty(), path, ": ", group, t.name, " holds ", found,
                  ": refusing to resume from a checkpoint with non-finite values");
  }
}

}  // namespace

std::vector<LayerSpec> layers_of(const TrainConfig& config) {
  // Built by functions of their own (nn/gpt.h, nn/resnet.h), not from layer specs.
  if (config.model == "gpt" || config.model == "resnet") return {};
  return config.model == "custom"
             ? config.layers
             : reference_model(config.model, static_cast<float>(config.dropout));
}

std::string layers_to_json(const std::vector<LayerSpec>& layers) {
  nlohmann::json list = nlohmann::json::array();
  for (const LayerSpec& s : layers) {
    nlohmann::json j = {{"type", s.type}};
    if (s.type == "linear" || s.type == "conv2d") {
      j["in"] = s.in;
      j["out"] = s.out;
      j["bias"] = s.bias;
    }
    if (s.type == "conv2d" || s.type == "maxpool2d") {
      j["kernel"] = s.kernel;
      j["stride"] = s.stride != 0 ? s.stride : (s.type == "conv2d" ? 1 : s.kernel);
      j["padding"] = s.padding;
    }
    if (s.type == "dropout") j["p"] = s.p;
    list.push_back(j);
  }
  return list.dump();
}

CheckpointSnapshot take_checkpoint_snapshot(const TrainConfig& config,
                                            const std::vector<LayerSpec>& layers, Sequential& model,
                                            Optimizer& optimizer, double next_lr,
                                            const TrainPosition& position, int world_size,
                                            HostSnapshotter& snapshotter,
                                            const std::vector<Tensor>& full_slots) {
  io::CheckpointState s;
  s.step = position.step;
  s.epoch = position.epoch;
  s.samples_seen = position.step * config.batch_size;
  s.world_size = world_size;
  s.global_batch = config.batch_size;
  s.seed = config.seed;
  s.config = to_toml(config);
  s.model_layers = layers_to_json(layers);
  // The tensors to copy, in the order of s.model then s.slots (checkpoints are written from host
  // memory whatever the training device).
  std::vector<Tensor> sources;
  const Tensor& flat = model.flat_params();
  for (const Parameter* p : model.parameters()) {
    s.model.push_back({p->name, Tensor()});
    sources.push_back(p->value);
  }

  s.optimizer_kind = optimizer.kind_name();
  s.optimizer_steps = optimizer.step_count();
  s.lr = next_lr;
  s.lr_schedule = config.lr_schedule;
  s.hyper = {{"momentum", config.momentum},
             {"dampening", config.dampening},
             {"nesterov", config.nesterov ? 1.0 : 0.0},
             {"beta1", config.beta1},
             {"beta2", config.beta2},
             {"eps", config.eps},
             {"weight_decay", config.resolved_weight_decay()}};
  s.slot_names = optimizer.slot_names();
  DPT_CHECK(full_slots.empty() || full_slots.size() == s.slot_names.size(),
            "capture_checkpoint: ", full_slots.size(), " gathered slots for the optimizer's ",
            s.slot_names.size());
  for (const Parameter* p : model.parameters()) {
    for (std::size_t i = 0; i < s.slot_names.size(); ++i) {
      const Tensor& state = full_slots.empty() ? optimizer.slot(s.slot_names[i]) : full_slots[i];
      s.slots.push_back({p->name + "/" + s.slot_names[i], Tensor()});
      sources.push_back(Tensor::view_of(state, offset_in(flat, p->value), p->value.shape()));
    }
  }
  HostSnapshot copies = snapshotter.take(sources);
  std::size_t next = 0;
  for (io::NamedTensor& t : s.model) t.value = std::move(copies.copies[next++]);
  for (io::NamedTensor& t : s.slots) t.value = std::move(copies.copies[next++]);
  return CheckpointSnapshot{std::move(s), std::move(copies.fence)};
}

io::CheckpointState capture_checkpoint(const TrainConfig& config,
                                       const std::vector<LayerSpec>& layers, Sequential& model,
                                       Optimizer& optimizer, double next_lr,
                                       const TrainPosition& position, int world_size,
                                       const std::vector<Tensor>& full_slots, bool check_finite) {
  HostSnapshotter snapshotter(model.flat_params().device());
  CheckpointSnapshot snapshot = take_checkpoint_snapshot(
      config, layers, model, optimizer, next_lr, position, world_size, snapshotter, full_slots);
  snapshot.fence.wait_on_host();
  snapshot.fence.order_compute_after();
  if (check_finite) check_checkpoint_finite(snapshot.state);
  return std::move(snapshot.state);
}

void check_checkpoint_finite(const io::CheckpointState& state) {
  check_finite_to_write(state.model, "/model/", state.step);
  check_finite_to_write(state.slots, "/optimizer/", state.step);
}

void restore_checkpoint(const io::CheckpointState& state, const std::string& path,
                        Sequential& model, Optimizer* optimizer) {
  // ---- check everything first
  std::map<std::string, const Tensor*> stored;
  for (const io::NamedTensor& t : state.model) stored.emplace(t.name, &t.value);
  for (const Parameter* p : model.parameters()) {
    const auto it = stored.find(p->name);
    DPT_FIT_CHECK(it != stored.end(), path, ": /model/", p->name,
                  " is missing: the model has this parameter, shape ",
                  dpt::to_string(p->value.shape()));
    DPT_FIT_CHECK(it->second->shape() == p->value.shape(), path, ": /model/", p->name,
                  ": expected shape ", dpt::to_string(p->value.shape()), ", found ",
                  dpt::to_string(it->second->shape()));
  }
  DPT_FIT_CHECK(stored.size() == model.parameters().size(), path, ": /model holds ", stored.size(),
                " parameters, the model has ", model.parameters().size());

  std::map<std::string, const Tensor*> slots;
  if (optimizer != nullptr) {
    DPT_FIT_CHECK(state.optimizer_kind == optimizer->kind_name(), path,
                  ": attribute 'kind' of /optimizer: expected \"", optimizer->kind_name(),
                  "\" (--optimizer), found \"", state.optimizer_kind, "\"");
    const std::vector<std::string> wanted = optimizer->slot_names();
    for (const std::string& slot : wanted) {
      DPT_FIT_CHECK(std::find(state.slot_names.begin(), state.slot_names.end(), slot) !=
                        state.slot_names.end(),
                    path, ": optimizer slot '", slot, "' is missing (the ", optimizer->kind_name(),
                    " optimizer as configured keeps it; e.g. SGD keeps momentum_buffer only "
                    "with momentum > 0)");
    }
    for (const io::NamedTensor& t : state.slots) slots.emplace(t.name, &t.value);
    for (const Parameter* p : model.parameters()) {
      for (const std::string& slot : wanted) {
        const std::string name = p->name + "/" + slot;
        const auto it = slots.find(name);
        DPT_FIT_CHECK(it != slots.end(), path, ": /optimizer/", name, " is missing");
        DPT_FIT_CHECK(it->second->shape() == p->value.shape(), path, ": /optimizer/", name,
                      ": expected shape ", dpt::to_string(p->value.shape()), ", found ",
                      dpt::to_string(it->second->shape()));
      }
    }
  }

  check_finite_to_read(state.model, "/model/", path);
  if (optimizer != nullptr) check_finite_to_read(state.slots, "/optimizer/", path);

  // ---- then apply
  for (Parameter* p : model.parameters()) {
    p->value.copy_from(*stored.at(p->name));
  }
  if (optimizer == nullptr) return;
  const Tensor& flat = model.flat_params();
  for (const std::string& slot : optimizer->slot_names()) {
    Tensor& dst = optimizer->slot(slot);
    for (const Parameter* p : model.parameters()) {
      Tensor::view_of(dst, offset_in(flat, p->value), p->value.shape())
          .copy_from(*slots.at(p->name + "/" + slot));
    }
  }
  optimizer->set_step_count(state.optimizer_steps);
}

TrainConfig config_of_checkpoint(const io::CheckpointState& state, const std::string& path) {
  TrainConfig config;
  apply_toml(state.config, path + ": attribute 'config' of /", config);
  validate(config);
  return config;
}

}  // namespace dpt::nn
