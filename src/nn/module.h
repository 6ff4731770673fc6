// SPDX-License-Identifier: MIT
// Module: a layer with an explicit forward and backward (no autograd tape). A module keeps what its
// backward needs from the last forward; Sequential runs them in order and reports gradients ready.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "runtime/context.h"
#include "runtime/timeline.h"
#include "runtime/tensor.h"

namespace dpt::nn {

// How a parameter starts (Sequential::init_parameters), each element drawn from Philox keyed by
// (seed, parameter index, element) only.
enum class Init {
  kUniformFanIn,  // uniform in +-1/sqrt(fan_in): PyTorch's default for Linear and Conv2d
  kNormal,        // normal(0, init_std): GPT-2's weights and embeddings
  kZeros,
  kOnes,
};

struct Parameter {
  std::string name;  // PyTorch name, e.g. "layers.0.weight"
  Tensor value;
  Tensor grad;       // same shape; a view into the model's flat gradient buffer
  std::int64_t fan_in = 0;  // for PyTorch's default initialisation bound 1/sqrt(fan_in)
  Init init = Init::kUniformFanIn;
  float init_std = 0.0f;  // for Init::kNormal
};

// What a forward pass needs beyond its input: mode and the keys of its randomness.
struct StepInfo {
  bool training = true;
  std::uint64_t seed = 0;
  std::uint32_t step = 0;           // optimizer step (dropout key)
  std::int64_t first_sample = 0;    // global position of the micro-batch's first sample
  bool accumulate_grads = false;    // add into the gradients instead of overwriting them
  // The format of GEMM and convolution inputs: kF32, or kBF16 / kF16 under --precision (Note
  // [Mixed precision in layers], nn/layers/weight_layer.cpp).
  DType compute = DType::kF32;
  Timeline* timeline = nullptr;     // when set and recording: one span per layer (--timeline)
};

class Module {
 public:
  Module() = default;
  Module(const Module&) = delete;
  Module& operator=(const Module&) = delete;
  virtual ~Module() = default;

  // "Linear(784 -> 2048)": for summaries and errors.
  virtual std::string describe() const = 0;
  // Output shape for an input shape (both with the batch dimension first).
  virtual Shape output_shape(const Shape& input) const = 0;
  virtual Tensor forward(const Context& ctx, const Tensor& x, const StepInfo& info) = 0;
  // Gradient with respect to the input, given the gradient of the output; writes (or, with
  // info.accumulate_grads, adds to) the parameter gradients. Returns an undefined tensor when
  // need_dx is false (the first layer).
  virtual Tensor backward(const Context& ctx, const Tensor& dy, const StepInfo& info,
                          bool need_dx) = 0;
  // The module's parameters, in PyTorch's order (weight, then bias). (optional)
  virtual std::vector<Parameter*> parameters() { return {}; }
  // Layers that can apply a following ReLU inside their own kernel say yes and then do. (optional)
  virtual bool fuse_relu() { return false; }
  // Appends the tensors a training forward keeps for backward (activations, masks, indices) that
  // are defined now: for the activation memory in the summary. (optional)
  virtual void saved_for_backward(std::vector<const Tensor*>& /*out*/) const {}

  // The module's number in the model, unique among all modules at any depth (depth-first order;
  // for a flat Sequential, the layer's position): keys dropout masks and names the module in
  // errors. A module holding others numbers itself, then them, and returns the next free number.
  virtual int assign_indices(int first) {
    index_ = first;
    return first + 1;
  }
  int index() const { return index_; }

 private:
  int index_ = 0;
};

}  // namespace dpt::nn
