// SPDX-License-Identifier: MIT
// The reference models as layer specs, and the factory from specs to modules.
#include "nn/models.h"

#include "nn/layers/conv2d.h"
#include "nn/layers/linear.h"
#include "nn/layers/simple.h"

namespace dpt::nn {
namespace {

LayerSpec conv(std::int64_t in, std::int64_t out) {
  return LayerSpec{"conv2d", in, out, 3, 1, 1, 0.0f, true};
}
LayerSpec linear(std::int64_t in, std::int64_t out) {
  return LayerSpec{"linear", in, out, 0, 0, 0, 0.0f, true};
}
LayerSpec simple(const char* type) { return LayerSpec{type, 0, 0, 0, 0, 0, 0.0f, true}; }
LayerSpec maxpool(int kernel) { return LayerSpec{"maxpool2d", 0, 0, kernel, 0, 0, 0.0f, true}; }

std::unique_ptr<Module> make_layer(const LayerSpec& s, std::size_t index) {
  const auto where = [&] { return detail::str("model layer ", index, " (", s.type, ")"); };
  if (s.type == "linear") {
    DPT_CHECK(s.in > 0 && s.out > 0, where(), ": needs in > 0 and out > 0, got in=", s.in,
              " out=", s.out);
    return std::make_unique<Linear>(s.in, s.out, s.bias);
  }
  if (s.type == "conv2d") {
    DPT_CHECK(s.in > 0 && s.out > 0 && s.kernel > 0, where(),
              ": needs in > 0, out > 0 and kernel > 0, got in=", s.in, " out=", s.out,
              " kernel=", s.kernel);
    return std::make_unique<Conv2d>(s.in, s.out, s.kernel, s.stride == 0 ? 1 : s.stride,
                                    s.padding, s.bias);
  }
  if (s.type == "maxpool2d") {
    DPT_CHECK(s.kernel > 0, where(), ": needs kernel > 0, got ", s.kernel);
    return std::make_unique<MaxPool2d>(s.kernel, s.stride, s.padding);
  }
  if (s.type == "relu") return std::make_unique<ReLU>();
  if (s.type == "flatten") return std::make_unique<Flatten>();
  if (s.type == "dropout") return std::make_unique<Dropout>(s.p);
  DPT_FAIL(where(), ": unknown layer type '", s.type,
           "' (expected linear, conv2d, maxpool2d, relu, flatten or dropout)");
}

}  // namespace

std::vector<std::string> reference_model_names() { return {"cnn", "mlp"}; }

std::vector<LayerSpec> reference_model(std::string_view name, float dropout) {
  std::vector<LayerSpec> layers;
  if (name == "cnn") {
    layers = {conv(1, 32),  simple("relu"), maxpool(2),      conv(32, 64), simple("relu"),
              maxpool(2),   conv(64, 64),   simple("relu"),  simple("flatten")};
    if (dropout > 0.0f) layers.push_back(LayerSpec{"dropout", 0, 0, 0, 0, 0, dropout, true});
    layers.push_back(linear(3136, 10));
  } else if (name == "mlp") {
    layers = {simple("flatten"), linear(784, 2048),  simple("relu"), linear(2048, 2048),
              simple("relu"),    linear(2048, 2048), simple("relu")};
    if (dropout > 0.0f) layers.push_back(LayerSpec{"dropout", 0, 0, 0, 0, 0, dropout, true});
    layers.push_back(linear(2048, 10));
  } else {
    DPT_FAIL("model: unknown name '", name, "' (expected cnn, mlp, or a [model] table "
             "with [[model.layers]] in the config)");
  }
  return layers;
}

Sequential build_model(const std::vector<LayerSpec>& layers, const Shape& sample_shape,
                       Device device) {
  Sequential model;
  for (std::size_t i = 0; i < layers.size(); ++i) model.add(make_layer(layers[i], i));
  model.finalize(sample_shape, device);
  return model;
}

}  // namespace dpt::nn
