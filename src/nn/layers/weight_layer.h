// SPDX-License-Identifier: MIT
// WeightLayer: what Linear and Conv2d share. A weight and an optional bias (PyTorch names and
// initialisation bound), an optional fused ReLU, the tensors saved for backward, and the backward
// sequence; subclasses supply the three kernels and the shapes.
#pragma once

#include "nn/module.h"

namespace dpt::nn {

class WeightLayer : public Module {
 public:
  Tensor forward(const Context& ctx, const Tensor& x, const StepInfo& info) final;
  Tensor backward(const Context& ctx, const Tensor& dy, const StepInfo& info, bool need_dx) final;
  std::vector<Parameter*> parameters() final;
  bool fuse_relu() final {
    relu_ = true;
    return true;
  }
  void saved_for_backward(std::vector<const Tensor*>& out) const override {
    if (input_.defined()) out.push_back(&input_);
    if (weight_in_.defined()) out.push_back(&weight_in_);
    if (output_.defined()) out.push_back(&output_);
  }

 protected:
  WeightLayer(Shape weight_shape, std::int64_t bias_size, bool bias, std::int64_t fan_in);

  bool relu() const { return relu_; }
  const Tensor& weight() const { return weight_.value; }
  const Tensor& bias() const { return bias_.value; }  // undefined without bias

  // y = layer(x) (+ bias), with the ReLU applied when relu(); w is the weight in x's format.
  virtual void run_forward(const Context& ctx, const Tensor& x, const Tensor& w, Tensor& y) = 0;
  // Gradients of weight and bias from the saved input and dy (relu already undone).
  virtual void run_backward_weights(const Context& ctx, const Tensor& x, const Tensor& dy,
                                    Tensor& dw, Tensor& db, bool accumulate) = 0;
  // dx from dy and the weight w in dy's format.
  virtual void run_backward_data(const Context& ctx, const Tensor& dy, const Tensor& w,
                                 Tensor& dx) = 0;
  // Samples per group for the backward of an input of shape x (see backward()): the whole batch
  // unless the layer's kernels work in groups.
  virtual std::int64_t backward_group(const Context& /*ctx*/, const Shape& x) const {
    return x[0];
  }

 private:
  bool relu_ = false;
  Parameter weight_, bias_;
  // Saved by a training forward for backward: the input and weight as the kernels read them (in
  // the compute format), the output (for the fused ReLU's gradient), and that format.
  Tensor input_, weight_in_, output_;
  DType compute_ = DType::kF32;
};

}  // namespace dpt::nn
