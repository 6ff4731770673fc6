// SPDX-License-Identifier: MIT
// Sequential: fusion, naming, flat buffers, initialisation, forward and backward with hooks.
#include "nn/sequential.h"

#include <algorithm>
#include <cmath>
#include <sstream>

#include "nn/layers/simple.h"
#include "runtime/philox.h"

namespace dpt::nn {

void Sequential::add(std::unique_ptr<Module> module, std::string name) {
  DPT_CHECK(!finalized_, "Sequential: add() after finalize()");
  next_index_ = module->assign_indices(next_index_);
  names_.push_back(name.empty() ? "layers." + std::to_string(layers_.size()) : std::move(name));
  layers_.push_back(std::move(module));
}

void Sequential::finalize(const Shape& sample_shape, Device device) {
  DPT_CHECK(!finalized_, "Sequential: finalize() called twice");
  DPT_CHECK(!layers_.empty(), "Sequential: the model has no layers");
  for (std::size_t i = 1; i < layers_.size(); ++i) {
    auto* relu = dynamic_cast<ReLU*>(layers_[i].get());
    if (relu != nullptr && layers_[i - 1]->fuse_relu()) relu->set_fused();
  }
  // Shape check with a batch of one: every error names the layer that rejects its input.
  Shape shape{1};
  shape.insert(shape.end(), sample_shape.begin(), sample_shape.end());
  for (auto& layer : layers_) shape = layer->output_shape(shape);

  // Note [Parameter alignment]: each parameter starts at a multiple of kParamAlignment floats
  // (256 bytes), as separately allocated tensors would. cuBLASLt's fused bias epilogue and
  // cuDNN's vectorised kernels need aligned pointers; the gaps hold zeros in parameters,
  // gradients and optimizer state, and stay zero under every optimizer update.
  constexpr std::int64_t kParamAlignment = 64;
  std::int64_t total = 0;
  std::vector<std::int64_t> offsets;
  for (std::size_t i = 0; i < layers_.size(); ++i) {
    std::vector<int> indices;
    for (Parameter* p : layers_[i]->parameters()) {
      p->name = names_[i] + "." + p->name;
      indices.push_back(static_cast<int>(params_.size()));
      params_.push_back(p);
      total = (total + kParamAlignment - 1) / kParamAlignment * kParamAlignment;
      offsets.push_back(total);
      total += p->value.numel();
      num_parameters_ += p->value.numel();
    }
    layer_params_.push_back(std::move(indices));
  }
  flat_params_ = Tensor::zeros({total}, DType::kF32, device);
  flat_grads_ = Tensor::zeros({total}, DType::kF32, device);
  for (std::size_t i = 0; i < params_.size(); ++i) {
    Parameter* p = params_[i];
    const Shape shape_of_p = p->value.shape();
    p->value = Tensor::view_of(flat_params_, offsets[i], shape_of_p);
    p->grad = Tensor::view_of(flat_grads_, offsets[i], shape_of_p);
  }
  param_offsets_ = std::move(offsets);
  sample_shape_ = sample_shape;
  finalized_ = true;
}

void Sequential::use_gradient_buffer(const Tensor& flat) {
  DPT_CHECK(finalized_, "Sequential: use_gradient_buffer() before finalize()");
  DPT_CHECK(flat.numel() == flat_grads_.numel() && flat.dtype() == flat_grads_.dtype() &&
                flat.device() == flat_grads_.device(),
            "Sequential: a gradient buffer of ", flat.numel(), " values on ",
            dpt::to_string(flat.device()), " cannot replace the model's ", flat_grads_.numel(),
            " on ", dpt::to_string(flat_grads_.device()));
  flat_grads_ = flat;
  for (std::size_t i = 0; i < params_.size(); ++i) {
    params_[i]->grad = Tensor::view_of(flat_grads_, param_offsets_[i], params_[i]->value.shape());
  }
}

void Sequential::init_parameters(std::uint64_t seed) {
  DPT_CHECK(finalized_, "Sequential: init_parameters() before finalize()");
  // Drawn on the host (the same numbers on every device), then copied to the parameters' device.
  for (std::size_t i = 0; i < params_.size(); ++i) {
    Parameter& p = *params_[i];
    const PhiloxStream stream{seed, RngPurpose::kInit, static_cast<std::uint32_t>(i), 0};
    Tensor host = Tensor::empty(p.value.shape());
    float* v = host.data<float>();
    const std::int64_t n = p.value.numel();
    switch (p.init) {
      case Init::kUniformFanIn: {
        const float bound = 1.0f / std::sqrt(static_cast<float>(p.fan_in));
        for (std::int64_t e = 0; e < n; ++e) {
          v[e] = (2.0f * stream.uniform(static_cast<std::uint32_t>(e)) - 1.0f) * bound;
        }
        break;
      }
      case Init::kNormal:
        // Box-Muller on the element's own pair of draws (2e, 2e + 1), in double.
        for (std::int64_t e = 0; e < n; ++e) {
          const auto k = static_cast<std::uint32_t>(2 * e);
          const double u1 = 1.0 - static_cast<double>(stream.uniform(k));  // (0, 1]
          const double u2 = static_cast<double>(stream.uniform(k + 1));
          const double z = std::sqrt(-2.0 * std::log(u1)) * std::cos(6.283185307179586 * u2);
          v[e] = static_cast<float>(z * static_cast<double>(p.init_std));
        }
        break;
      case Init::kZeros:
        std::fill(v, v + n, 0.0f);
        break;
      case Init::kOnes:
        std::fill(v, v + n, 1.0f);
        break;
    }
    p.value.copy_from(host);
  }
}

std::string Sequential::span_name(const StepInfo& info, std::size_t layer) const {
  if (info.timeline == nullptr || !info.timeline->recording()) return {};
  return detail::str(names_[layer], " ", layers_[layer]->describe());
}

Tensor Sequential::forward(const Context& ctx, const Tensor& x, const StepInfo& info) {
  DPT_CHECK(finalized_, "Sequential: forward() before finalize()");
  Tensor h = x;
  for (std::size_t i = 0; i < layers_.size(); ++i) {
    const TimelineScope span(info.timeline, "forward", span_name(info, i));
    if (params_needed_ && !layer_params_[i].empty()) {
      const auto [first, last] =
          std::minmax_element(layer_params_[i].begin(), layer_params_[i].end());
      params_needed_(*first, *last);
    }
    h = layers_[i]->forward(ctx, h, info);
  }
  if (info.training)
    peak_activation_bytes_ = std::max(peak_activation_bytes_, saved_activation_bytes());
  return h;
}

std::int64_t Sequential::saved_activation_bytes() const {
  std::vector<const Tensor*> saved;
  for (const auto& layer : layers_) layer->saved_for_backward(saved);
  std::vector<const Storage*> counted = {flat_params_.storage(), flat_grads_.storage()};
  std::int64_t bytes = 0;
  for (const Tensor* t : saved) {
    if (std::find(counted.begin(), counted.end(), t->storage()) != counted.end()) continue;
    counted.push_back(t->storage());
    bytes += static_cast<std::int64_t>(t->storage()->size_bytes());
  }
  return bytes;
}

void Sequential::backward(const Context& ctx, const Tensor& dy, const StepInfo& info) {
  // Below the first layer with parameters no gradient is needed: that layer computes no input
  // gradient (mlp: the first Linear after Flatten, a 784-wide GEMM saved per step) and the
  // parameter-free layers under it are not run backward at all.
  std::size_t first_with_params = layers_.size();
  for (std::size_t i = 0; i < layers_.size(); ++i) {
    if (!layer_params_[i].empty()) {
      first_with_params = i;
      break;
    }
  }
  Tensor g = dy;
  for (std::size_t i = layers_.size(); i-- > first_with_params;) {
    {
      const TimelineScope span(info.timeline, "backward", span_name(info, i));
      g = layers_[i]->backward(ctx, g, info, /*need_dx=*/i > first_with_params);
    }
    if (grad_ready_) {
      const auto& indices = layer_params_[i];
      for (auto it = indices.rbegin(); it != indices.rend(); ++it) grad_ready_(*it);
    }
  }
}

Shape Sequential::output_shape(std::int64_t batch) const {
  Shape shape{batch};
  shape.insert(shape.end(), sample_shape_.begin(), sample_shape_.end());
  for (const auto& layer : layers_) shape = layer->output_shape(shape);
  return shape;
}

std::string Sequential::summary() const {
  std::ostringstream out;
  Shape shape{1};
  shape.insert(shape.end(), sample_shape_.begin(), sample_shape_.end());
  for (std::size_t i = 0; i < layers_.size(); ++i) {
    shape = layers_[i]->output_shape(shape);
    std::int64_t count = 0;
    for (Parameter* p : layers_[i]->parameters()) count += p->value.numel();
    out << "  " << names_[i] << "  " << layers_[i]->describe() << "  -> " << to_string(shape);
    if (count > 0) out << "  (" << count << " parameters)";
    out << '\n';
  }
  out << "  total " << flat_params_.numel() << " parameters";
  return out.str();
}

}  // namespace dpt::nn
