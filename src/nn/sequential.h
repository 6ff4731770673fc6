// SPDX-License-Identifier: MIT
// Sequential: the model. Holds the layers in order, names parameters as PyTorch's nn.Sequential
// would ("layers.<i>.weight"), keeps all parameters and all gradients in two flat buffers (one
// optimizer call per step, and the all-reduce buckets are plain ranges), and reports each layer's
// gradients as ready during backward.
#pragma once

#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "nn/module.h"

namespace dpt::nn {

class Sequential {
 public:
  Sequential() = default;
  Sequential(Sequential&&) noexcept = default;
  Sequential& operator=(Sequential&&) noexcept = default;

  // Appends a module named `name` (its parameters become "<name>.weight" ...); by default
  // "layers.<i>", as PyTorch's nn.Sequential names its i-th module.
  void add(std::unique_ptr<Module> module, std::string name = {});

  // Fuses each ReLU into a preceding Linear/Conv2d, names the parameters, checks that every layer
  // accepts its input for samples of `sample_shape` ([C,H,W] or [features]) and places parameters
  // and gradients in the flat buffers on `device`. Call once, after the last add().
  void finalize(const Shape& sample_shape, Device device = Device::cpu());
  // Each parameter as its Init says (PyTorch's default for Linear and Conv2d: uniform in
  // +-1/sqrt(fan_in)), from (seed, parameter index, element) only.
  void init_parameters(std::uint64_t seed);

  Tensor forward(const Context& ctx, const Tensor& x, const StepInfo& info);
  // Backward from the gradient of the loss with respect to the output. After each layer, calls the
  // gradient-ready hook with the index of each of its parameters (last layer first).
  void backward(const Context& ctx, const Tensor& dy, const StepInfo& info);
  void set_grad_ready_hook(std::function<void(int param_index)> hook) { grad_ready_ = std::move(hook); }
  // Called in forward before each layer that has parameters, with the first and last index of
  // its parameters: a sharded optimizer waits there for their all-gather (Note [Sharded
  // optimizer] in parallel/data_parallel.h).
  void set_params_needed_hook(std::function<void(int first_param, int last_param)> hook) {
    params_needed_ = std::move(hook);
  }

  const std::vector<Parameter*>& parameters() const { return params_; }
  Tensor& flat_params() { return flat_params_; }
  Tensor& flat_grads() { return flat_grads_; }
  // Makes every parameter's gradient a view of `flat` (same size, dtype and device as the flat
  // gradient buffer), which becomes flat_grads(): exact mode gives each micro-shard a gradient
  // buffer of its own (Note [Shard gradients] in parallel/data_parallel.cpp).
  void use_gradient_buffer(const Tensor& flat);
  // Where each parameter starts in both flat buffers (elements; Note [Parameter alignment]).
  const std::vector<std::int64_t>& parameter_offsets() const { return param_offsets_; }
  // Trainable values (without the alignment gaps of the flat buffers, Note [Parameter alignment]).
  std::int64_t num_parameters() const { return num_parameters_; }
  std::size_t num_layers() const { return layers_.size(); }
  Shape output_shape(std::int64_t batch) const;
  // One line per layer with its output shape and parameter count.
  std::string summary() const;
  // Bytes the layers hold now for backward (Module::saved_for_backward), each allocation once and
  // the parameters' own buffers not at all; and the most a training forward has left held so far
  // (the activation memory: the peak is at the end of a forward, before backward frees it).
  std::int64_t saved_activation_bytes() const;
  std::int64_t peak_activation_bytes() const { return peak_activation_bytes_; }

 private:
  // "layers.3 Linear(2048 -> 2048, relu)" when info's timeline records, else "" (no cost).
  std::string span_name(const StepInfo& info, std::size_t layer) const;

  std::vector<std::unique_ptr<Module>> layers_;
  std::vector<std::string> names_;  // of each layer: the prefix of its parameters
  int next_index_ = 0;              // Module::assign_indices
  std::vector<Parameter*> params_;
  std::vector<std::vector<int>> layer_params_;  // parameter indices of each layer
  std::int64_t num_parameters_ = 0;
  Shape sample_shape_;
  Tensor flat_params_, flat_grads_;
  std::vector<std::int64_t> param_offsets_;  // of each parameter in the flat buffers
  std::function<void(int)> grad_ready_;
  std::function<void(int, int)> params_needed_;
  bool finalized_ = false;
  std::int64_t peak_activation_bytes_ = 0;
};

}  // namespace dpt::nn
