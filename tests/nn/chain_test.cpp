// SPDX-License-Identifier: MIT
// Modules of modules: nested names, numbering, residual sums and their gradients, hooks once per
// top-level module, and the resnet model.
#include "nn/chain.h"

#include <gtest/gtest.h>

#include <memory>
#include <string>
#include <vector>

#include "gradient_check.h"
#include "kernels/ops.h"
#include "nn/layers/linear.h"
#include "nn/layers/simple.h"
#include "nn/resnet.h"
#include "testing/test_util.h"

namespace dpt::nn {
namespace {

Context cpu() { return Context::create(Device::cpu(), 1); }

// Linear(4, 6) + ReLU, x + Linear(ReLU(Linear(x))), ReLU, Linear(6, 3).
Sequential residual_mlp() {
  Sequential m;
  m.add(std::make_unique<Linear>(4, 6));
  m.add(std::make_unique<ReLU>());
  auto block = std::make_unique<Residual>();
  block->add("0", std::make_unique<Linear>(6, 6));
  block->add("1", std::make_unique<ReLU>());
  block->add("2", std::make_unique<Linear>(6, 6));
  m.add(std::move(block));
  m.add(std::make_unique<ReLU>());
  m.add(std::make_unique<Linear>(6, 3));
  m.finalize({4});
  return m;
}

TEST(Chain, NamesNestAsPyTorchsAndEmptyNamesAddNoLevel) {
  Sequential m = residual_mlp();
  std::vector<std::string> names;
  for (const Parameter* p : m.parameters()) names.push_back(p->name);
  EXPECT_EQ(names,
            (std::vector<std::string>{"layers.0.weight", "layers.0.bias", "layers.2.0.weight",
                                      "layers.2.0.bias", "layers.2.2.weight", "layers.2.2.bias",
                                      "layers.4.weight", "layers.4.bias"}));

  auto inner = std::make_unique<Chain>("Inner");
  inner->add("c_fc", std::make_unique<Linear>(2, 2, false));
  auto outer = std::make_unique<Chain>("Outer");
  outer->add("", std::make_unique<Residual>());  // an empty residual adds x to x
  outer->add("mlp", std::move(inner));
  Sequential named;
  named.add(std::move(outer), "transformer.h.0");
  named.finalize({2});
  ASSERT_EQ(named.parameters().size(), 1u);
  EXPECT_EQ(named.parameters()[0]->name, "transformer.h.0.mlp.c_fc.weight");
}

TEST(Chain, ModulesAreNumberedUniquelyDepthFirst) {
  // The numbers key dropout masks, so two dropouts in different blocks must not share one. Chain
  // A is module 0 and its dropout 1, chain B is 2 and its dropout 3: the same masks as a flat
  // model whose dropouts at 1 and 3 drop and those at 0 and 2 pass everything.
  auto first = std::make_unique<Chain>("A");
  first->add("", std::make_unique<Dropout>(0.5f));
  auto second = std::make_unique<Chain>("B");
  second->add("", std::make_unique<Dropout>(0.5f));
  Sequential nested;
  nested.add(std::move(first));
  nested.add(std::move(second));
  nested.finalize({64});
  Sequential flat;
  for (float p : {0.0f, 0.5f, 0.0f, 0.5f}) flat.add(std::make_unique<Dropout>(p));
  flat.finalize({64});
  const Context ctx = cpu();
  StepInfo info;
  info.seed = 5;
  const Tensor x = Tensor::full({2, 64}, 1.0f);
  const std::vector<float> y = nested.forward(ctx, x, info).to_vector();
  EXPECT_EQ(y, flat.forward(ctx, x, info).to_vector());
  int zeros = 0;
  for (float v : y) zeros += v == 0.0f ? 1 : 0;
  EXPECT_GT(zeros, 80);  // two independent masks drop about 96 of 128; one mask twice about 64
}

TEST(Residual, AddsItsInputAndRejectsABranchThatChangesTheShape) {
  const Context ctx = cpu();
  Sequential m;
  auto block = std::make_unique<Residual>();
  block->add("0", std::make_unique<Linear>(3, 3, false));
  m.add(std::move(block));
  m.finalize({3});
  m.parameters()[0]->value.fill(0.0f);  // the branch is 0: y = x
  const Tensor x = test::random_tensor({2, 3}, 1);
  EXPECT_EQ(m.forward(ctx, x, StepInfo{}).to_vector(), x.to_vector());

  Sequential bad;
  auto wrong = std::make_unique<Residual>();
  wrong->add("0", std::make_unique<Linear>(3, 4));
  bad.add(std::move(wrong));
  try {
    bad.finalize({3});
    FAIL() << "a residual branch from 3 to 4 features was accepted";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("same shape"), std::string::npos) << e.what();
  }
}

TEST(Residual, GradientMatchesFiniteDifferences) {
  const Context ctx = cpu();
  Sequential m = residual_mlp();
  m.init_parameters(4);
  const Tensor x = test::random_tensor({5, 4}, 6);
  Tensor labels = Tensor::empty({5}, DType::kI32);
  for (int i = 0; i < 5; ++i) labels.data<std::int32_t>()[i] = i % 3;
  auto loss_at = [&]() {
    return kernels::softmax_cross_entropy(ctx, m.forward(ctx, x, StepInfo{}), labels, nullptr)
        .loss_sum;
  };
  const Tensor logits = m.forward(ctx, x, StepInfo{});
  Tensor dlogits = Tensor::empty(logits.shape());
  kernels::softmax_cross_entropy(ctx, logits, labels, &dlogits);
  m.backward(ctx, dlogits, StepInfo{});
  test::expect_gradients_match_differences(m, m.flat_grads().to_vector(), loss_at);
}

TEST(Residual, HooksReportEachTopLevelModulesParametersOnceInBackwardOrder) {
  const Context ctx = cpu();
  Sequential m = residual_mlp();
  m.init_parameters(1);
  std::vector<int> order;
  m.set_grad_ready_hook([&](int index) { order.push_back(index); });
  const Tensor y = m.forward(ctx, test::random_tensor({2, 4}, 2), StepInfo{});
  m.backward(ctx, test::random_tensor(y.shape(), 3), StepInfo{});
  EXPECT_EQ(order, (std::vector<int>{7, 6, 5, 4, 3, 2, 1, 0}));
}

TEST(Resnet, NamesShapesAndGradientFlowThroughTheSkip) {
  Sequential m = build_resnet({1, 28, 28});
  std::vector<std::string> names;
  for (const Parameter* p : m.parameters()) names.push_back(p->name);
  EXPECT_EQ(names, (std::vector<std::string>{
                       "layers.0.weight", "layers.0.bias", "layers.2.0.weight", "layers.2.0.bias",
                       "layers.2.2.weight", "layers.2.2.bias", "layers.5.weight", "layers.5.bias",
                       "layers.7.0.weight", "layers.7.0.bias", "layers.7.2.weight",
                       "layers.7.2.bias", "layers.11.weight", "layers.11.bias"}));
  EXPECT_EQ(m.output_shape(3), (Shape{3, 10}));
  // 320 + 2 x 9248 + 18496 + 2 x 36928 + 31370, as torch counts the same layers.
  EXPECT_EQ(m.num_parameters(), 320 + 2 * 9248 + 18496 + 2 * 36928 + 31370);
  EXPECT_THROW(build_resnet({1, 30, 30}), Error);
}

}  // namespace
}  // namespace dpt::nn
