// SPDX-License-Identifier: MIT
// The one place in kernels/ that knows the backends: validates shapes, dtypes and devices with
// messages naming the op, then calls the backend of ctx.device(): cpu:: always, cuda:: in builds
// with DPT_HAVE_CUDA (the only #if of kernels/, STYLE.md Decision 3).
#include <cstdint>
#include <string>

#include "kernels/cpu/gemm_choice.h"
#include "kernels/cpu/kernels_cpu.h"
#include "kernels/cuda/kernels_cuda.h"
#include "kernels/ops.h"
#include "kernels/shapes.h"
#include "runtime/check.h"
#include "runtime/config.h"

// The CUDA branch of an op: compiled into CUDA builds only; elsewhere is_cpu() has thrown before.
#if DPT_HAVE_CUDA
#define DPT_ON_CUDA(...) __VA_ARGS__
#else
#define DPT_ON_CUDA(...) static_cast<void>(0)
#endif

namespace dpt::kernels {
namespace {

// True for a CPU context, false for a CUDA one; a CUDA context in a build without CUDA throws.
bool is_cpu(const Context& ctx, [[maybe_unused]] const char* op) {
  switch (ctx.device().type) {
    case DeviceType::kCpu: return true;
    case DeviceType::kCuda: break;
  }
#if DPT_HAVE_CUDA
  return false;
#else
  DPT_FAIL(op, ": device ", to_string(ctx.device()),
           " is not built into this binary (configure with -DDPT_CUDA=ON)");
#endif
}

// A defined tensor of `dtype` on the context's device.
void expect_tensor(const Context& ctx, const char* op, const char* name, const Tensor& t,
                   DType dtype = DType::kF32) {
  DPT_CHECK(t.defined(), op, ": ", name, " is undefined");
  DPT_CHECK(t.dtype() == dtype, op, ": ", name, " must be ", to_string(dtype), ", found ",
            to_string(t.dtype()));
  DPT_CHECK(t.device() == ctx.device(), op, ": ", name, " is on ", to_string(t.device()),
            " but the context runs on ", to_string(ctx.device()));
}

void expect_rank(const char* op, const char* name, const Tensor& t, int rank) {
  DPT_CHECK(t.rank() == rank, op, ": ", name, " must have rank ", rank, ", found shape ",
            to_string(t.shape()));
}

void expect_shape(const char* op, const char* name, const Tensor& t, const Shape& expected) {
  DPT_CHECK(t.shape() == expected, op, ": ", name, " must have shape ", to_string(expected),
            ", found ", to_string(t.shape()));
}

void expect_same_numel(const char* op, const char* a_name, const Tensor& a, const char* b_name,
                       const Tensor& b) {
  DPT_CHECK(a.numel() == b.numel(), op, ": ", a_name, " ", to_string(a.shape()), " and ", b_name,
            " ", to_string(b.shape()), " differ in element count");
}

void expect_distinct(const char* op, const char* a_name, const Tensor& a, const char* b_name,
                     const Tensor& b) {
  DPT_CHECK(a.raw_data() != b.raw_data() || a.numel() == 0, op, ": ", a_name, " and ", b_name,
            " must not alias");
}

bool is_half(DType dtype) { return dtype == DType::kBF16 || dtype == DType::kF16; }

// The two input operands of a GEMM or convolution (Note [Mixed-precision operands] in ops.h): both
// f32, or both bf16, or both f16.
void expect_operands(const Context& ctx, const char* op, const char* a_name, const Tensor& a,
                     const char* b_name, const Tensor& b) {
  DPT_CHECK(a.defined(), op, ": ", a_name, " is undefined");
  DPT_CHECK(a.dtype() == DType::kF32 || is_half(a.dtype()), op, ": ", a_name,
            " must be f32, bf16 or f16, found ", to_string(a.dtype()));
  expect_tensor(ctx, op, a_name, a, a.dtype());
  // The second operand in the first's format: "w must be bf16, found f32".
  expect_tensor(ctx, op, b_name, b, a.dtype());
}

// bf16 operands the CPU multiplies as they are (Note [Native bf16 GEMMs] in cpu/linear.cpp).
bool cpu_native_bf16(const Context& ctx, const Tensor& a) {
  return a.dtype() == DType::kBF16 && ctx.device().type == DeviceType::kCpu &&
         !ctx.thread_invariant() && cpu::native_bf16_gemm();
}

// An operand's values in f32: the tensor itself, or its half values widened (exactly). The CPU's
// emulation of half GEMMs; a GPU takes half operands as they are (Note [Half and TF32 GEMMs] in
// cuda/linear.cpp, Note [Half convolutions on cuDNN] in cuda/conv.cpp).
Tensor as_f32(const Context& ctx, const Tensor& t) {
  if (t.dtype() == DType::kF32) return t;
  Tensor wide = Tensor::empty(t.shape(), DType::kF32, t.device());
  cast(ctx, t, wide);
  return wide;
}

// Checks x[N,C,H,W] and w[O,C,KH,KW] and returns the backend's shape record.
Shape conv_output(const char* op, const Shape& x, const Shape& w, const Conv2dParams& p);
Shape pool_output(const char* op, const Shape& x, const Pool2dParams& p);

ConvShape conv_shape(const char* op, const Shape& x, const Shape& w, const Conv2dParams& p) {
  const Shape y = conv_output(op, x, w, p);
  return ConvShape{x[0], x[1], x[2], x[3], w[0], w[2], w[3], y[2], y[3],
                   p.stride_h, p.stride_w, p.pad_h, p.pad_w};
}

PoolShape pool_shape(const char* op, const Shape& x, const Pool2dParams& p) {
  const Shape y = pool_output(op, x, p);
  return PoolShape{x[0], x[1], x[2], x[3], y[2], y[3],
                   p.kernel_h, p.kernel_w, p.stride_h, p.stride_w, p.pad_h, p.pad_w};
}

// Bytes of the argmax workspace of the context's backend (both write one byte per output today).
std::int64_t pool_workspace_bytes(const Context& ctx, const char* op, const PoolShape& s) {
  if (is_cpu(ctx, op)) return static_cast<std::int64_t>(cpu::max_pool2d_workspace_bytes(s));
  DPT_ON_CUDA(return static_cast<std::int64_t>(cuda::max_pool2d_workspace_bytes(s)));
  return 0;  // not reached: is_cpu() threw
}

}  // namespace

// ---- dense layers -----------------------------------------------------------------------------

void linear_forward(const Context& ctx, const Tensor& x, const Tensor& w, const Tensor& b,
                    Tensor& y, bool relu) {
  constexpr const char* op = "linear_forward";
  expect_operands(ctx, op, "x", x, "w", w);
  expect_tensor(ctx, op, "y", y);
  expect_rank(op, "x", x, 2);
  expect_rank(op, "w", w, 2);
  const std::int64_t n = x.dim(0), k = x.dim(1), m = w.dim(0);
  DPT_CHECK(w.dim(1) == k, op, ": w ", to_string(w.shape()), " does not match x ",
            to_string(x.shape()), " (expected w [M,", k, "])");
  if (b.defined()) {
    expect_tensor(ctx, op, "b", b);
    expect_shape(op, "b", b, {m});
  }
  expect_shape(op, "y", y, {n, m});
  expect_distinct(op, "x", x, "y", y);
  const float* bias = b.defined() ? b.data<float>() : nullptr;
  if (cpu_native_bf16(ctx, x)) {
    cpu::linear_forward_bf16(ctx, x.data<BFloat16>(), w.data<BFloat16>(), bias, y.data<float>(), n,
                             k, m, relu);
    return;
  }
  if (is_cpu(ctx, op)) {
    const Tensor xf = as_f32(ctx, x), wf = as_f32(ctx, w);
    cpu::linear_forward(ctx, xf.data<float>(), wf.data<float>(), bias, y.data<float>(), n, k, m,
                        relu);
  } else {
    DPT_ON_CUDA(cuda::linear_forward(ctx, x.dtype(), x.raw_data(), w.raw_data(), bias,
                                     y.data<float>(), n, k, m, relu));
  }
}

void linear_backward_data(const Context& ctx, const Tensor& dy, const Tensor& w, Tensor& dx) {
  constexpr const char* op = "linear_backward_data";
  expect_operands(ctx, op, "dy", dy, "w", w);
  expect_tensor(ctx, op, "dx", dx);
  expect_rank(op, "dy", dy, 2);
  expect_rank(op, "w", w, 2);
  const std::int64_t n = dy.dim(0), m = dy.dim(1), k = w.dim(1);
  DPT_CHECK(w.dim(0) == m, op, ": w ", to_string(w.shape()), " does not match dy ",
            to_string(dy.shape()), " (expected w [", m, ",K])");
  expect_shape(op, "dx", dx, {n, k});
  expect_distinct(op, "dy", dy, "dx", dx);
  if (cpu_native_bf16(ctx, dy)) {
    cpu::linear_backward_data_bf16(ctx, dy.data<BFloat16>(), w.data<BFloat16>(), dx.data<float>(),
                                   n, k, m);
    return;
  }
  if (is_cpu(ctx, op)) {
    const Tensor dyf = as_f32(ctx, dy), wf = as_f32(ctx, w);
    cpu::linear_backward_data(ctx, dyf.data<float>(), wf.data<float>(), dx.data<float>(), n, k, m);
  } else {
    DPT_ON_CUDA(cuda::linear_backward_data(ctx, dy.dtype(), dy.raw_data(), w.raw_data(),
                                           dx.data<float>(), n, k, m));
  }
}

void linear_backward_weights(const Context& ctx, const Tensor& x, const Tensor& dy, Tensor& dw,
                             Tensor& db, bool accumulate) {
  constexpr const char* op = "linear_backward_weights";
  expect_operands(ctx, op, "x", x, "dy", dy);
  expect_tensor(ctx, op, "dw", dw);
  expect_rank(op, "x", x, 2);
  expect_rank(op, "dy", dy, 2);
  const std::int64_t n = x.dim(0), k = x.dim(1), m = dy.dim(1);
  DPT_CHECK(dy.dim(0) == n, op, ": dy ", to_string(dy.shape()), " and x ", to_string(x.shape()),
            " differ in batch size");
  expect_shape(op, "dw", dw, {m, k});
  if (db.defined()) {
    expect_tensor(ctx, op, "db", db);
    expect_shape(op, "db", db, {m});
  }
  float* bias_grad = db.defined() ? db.data<float>() : nullptr;
  if (cpu_native_bf16(ctx, x)) {
    cpu::linear_backward_weights_bf16(ctx, x.data<BFloat16>(), dy.data<BFloat16>(),
                                      dw.data<float>(), bias_grad, n, k, m, accumulate);
    return;
  }
  if (is_cpu(ctx, op)) {
    const Tensor xf = as_f32(ctx, x), dyf = as_f32(ctx, dy);
    cpu::linear_backward_weights(ctx, xf.data<float>(), dyf.data<float>(), dw.data<float>(),
                                 bias_grad, n, k, m, accumulate);
  } else {
    DPT_ON_CUDA(cuda::linear_backward_weights(ctx, x.dtype(), x.raw_data(), dy.raw_data(),
                                              dw.data<float>(), bias_grad, n, k, m, accumulate));
  }
}

// ---- convolution -------------------------------------------------------------------------------

namespace {
Shape conv_output(const char* op, const Shape& x, const Shape& w, const Conv2dParams& p) {
  DPT_CHECK(x.size() == 4, op, ": x must be [N,C,H,W], found ", to_string(x));
  DPT_CHECK(w.size() == 4, op, ": w must be [O,C,KH,KW], found ", to_string(w));
  DPT_CHECK(w[1] == x[1], op, ": w ", to_string(w), " expects ", w[1], " input channels, x ",
            to_string(x), " has ", x[1]);
  DPT_CHECK(p.stride_h >= 1 && p.stride_w >= 1 && p.pad_h >= 0 && p.pad_w >= 0, op,
            ": strides must be >= 1 and paddings >= 0, found stride ", p.stride_h, "x",
            p.stride_w, " pad ", p.pad_h, "x", p.pad_w);
  DPT_CHECK(w[0] >= 1 && w[1] >= 1 && w[2] >= 1 && w[3] >= 1, op, ": empty kernel ", to_string(w));
  const std::int64_t span_h = x[2] + 2 * p.pad_h - w[2], span_w = x[3] + 2 * p.pad_w - w[3];
  DPT_CHECK(span_h >= 0 && span_w >= 0, op, ": kernel ", w[2], "x", w[3],
            " does not fit the padded input ", x[2] + 2 * p.pad_h, "x", x[3] + 2 * p.pad_w);
  return {x[0], w[0], span_h / p.stride_h + 1, span_w / p.stride_w + 1};
}
}  // namespace

Shape conv2d_output_shape(const Shape& x, const Shape& w, const Conv2dParams& p) {
  return conv_output("conv2d_output_shape", x, w, p);
}

void conv2d_forward(const Context& ctx, const Tensor& x, const Tensor& w, const Tensor& b,
                    Tensor& y, const Conv2dParams& p, bool relu) {
  constexpr const char* op = "conv2d_forward";
  expect_operands(ctx, op, "x", x, "w", w);
  expect_tensor(ctx, op, "y", y);
  const ConvShape s = conv_shape(op, x.shape(), w.shape(), p);
  if (b.defined()) {
    expect_tensor(ctx, op, "b", b);
    expect_shape(op, "b", b, {s.o});
  }
  expect_shape(op, "y", y, {s.n, s.o, s.oh, s.ow});
  expect_distinct(op, "x", x, "y", y);
  const float* bias = b.defined() ? b.data<float>() : nullptr;
  if (cpu_native_bf16(ctx, x)) {
    cpu::conv2d_forward_bf16(ctx, s, x.data<BFloat16>(), w.data<BFloat16>(), bias,
                             y.data<float>(), relu);
    return;
  }
  if (is_cpu(ctx, op)) {
    const Tensor xf = as_f32(ctx, x), wf = as_f32(ctx, w);
    cpu::conv2d_forward(ctx, s, xf.data<float>(), wf.data<float>(), bias, y.data<float>(), relu);
  } else {
    DPT_ON_CUDA(cuda::conv2d_forward(ctx, s, x.dtype(), x.raw_data(), w.raw_data(), bias,
                                     y.data<float>(), relu));
  }
}

std::int64_t conv2d_sample_group(const Context& ctx, const Shape& x, const Shape& w,
                                 const Conv2dParams& p) {
  const ConvShape s = conv_shape("conv2d_sample_group", x, w, p);
  if (ctx.device().type != DeviceType::kCpu || ctx.thread_invariant()) return s.n;
  return cpu::conv_sample_group(s);
}

void conv2d_backward_data(const Context& ctx, const Tensor& dy, const Tensor& w, Tensor& dx,
                          const Conv2dParams& p) {
  constexpr const char* op = "conv2d_backward_data";
  expect_operands(ctx, op, "dy", dy, "w", w);
  expect_tensor(ctx, op, "dx", dx);
  const ConvShape s = conv_shape(op, dx.shape(), w.shape(), p);
  expect_shape(op, "dy", dy, {s.n, s.o, s.oh, s.ow});
  expect_distinct(op, "dy", dy, "dx", dx);
  if (cpu_native_bf16(ctx, dy)) {
    cpu::conv2d_backward_data_bf16(ctx, s, dy.data<BFloat16>(), w.data<BFloat16>(),
                                   dx.data<float>());
    return;
  }
  if (is_cpu(ctx, op)) {
    const Tensor dyf = as_f32(ctx, dy), wf = as_f32(ctx, w);
    cpu::conv2d_backward_data(ctx, s, dyf.data<float>(), wf.data<float>(), dx.data<float>());
  } else {
    DPT_ON_CUDA(cuda::conv2d_backward_data(ctx, s, dy.dtype(), dy.raw_data(), w.raw_data(),
                                           dx.data<float>()));
  }
}

void conv2d_backward_weights(const Context& ctx, const Tensor& x, const Tensor& dy, Tensor& dw,
                             Tensor& db, const Conv2dParams& p, bool accumulate) {
  constexpr const char* op = "conv2d_backward_weights";
  expect_operands(ctx, op, "x", x, "dy", dy);
  expect_tensor(ctx, op, "dw", dw);
  const ConvShape s = conv_shape(op, x.shape(), dw.shape(), p);
  expect_shape(op, "dy", dy, {s.n, s.o, s.oh, s.ow});
  if (db.defined()) {
    expect_tensor(ctx, op, "db", db);
    expect_shape(op, "db", db, {s.o});
  }
  float* bias_grad = db.defined() ? db.data<float>() : nullptr;
  if (cpu_native_bf16(ctx, x)) {
    cpu::conv2d_backward_weights_bf16(ctx, s, x.data<BFloat16>(), dy.data<BFloat16>(),
                                      dw.data<float>(), bias_grad, accumulate);
    return;
  }
  if (is_cpu(ctx, op)) {
    const Tensor xf = as_f32(ctx, x), dyf = as_f32(ctx, dy);
    cpu::conv2d_backward_weights(ctx, s, xf.data<float>(), dyf.data<float>(), dw.data<float>(),
                                 bias_grad, accumulate);
  } else {
    DPT_ON_CUDA(cuda::conv2d_backward_weights(ctx, s, x.dtype(), x.raw_data(), dy.raw_data(),
                                              dw.data<float>(), bias_grad, accumulate));
  }
}

// ---- pooling ------------------------------------------------------------------------------------

namespace {
Shape pool_output(const char* op, const Shape& x, const Pool2dParams& p) {
  DPT_CHECK(x.size() == 4, op, ": x must be [N,C,H,W], found ", to_string(x));
  DPT_CHECK(p.kernel_h >= 1 && p.kernel_w >= 1 && p.stride_h >= 1 && p.stride_w >= 1, op,
            ": kernel and stride must be >= 1, found kernel ", p.kernel_h, "x", p.kernel_w,
            " stride ", p.stride_h, "x", p.stride_w);
  // As torch.nn.MaxPool2d: padding at most half the kernel, so no window is only padding.
  DPT_CHECK(p.pad_h >= 0 && p.pad_w >= 0 && 2 * p.pad_h <= p.kernel_h && 2 * p.pad_w <= p.kernel_w,
            op, ": padding ", p.pad_h, "x", p.pad_w, " must be in [0, kernel/2] for kernel ",
            p.kernel_h, "x", p.kernel_w);
  const std::int64_t span_h = x[2] + 2 * p.pad_h - p.kernel_h;
  const std::int64_t span_w = x[3] + 2 * p.pad_w - p.kernel_w;
  DPT_CHECK(span_h >= 0 && span_w >= 0, op, ": window ", p.kernel_h, "x", p.kernel_w,
            " does not fit the padded input ", x[2] + 2 * p.pad_h, "x", x[3] + 2 * p.pad_w);
  // The workspace stores each argmax's offset in its window in one byte.
  DPT_CHECK(p.kernel_h * p.kernel_w <= 256, op, ": window ", p.kernel_h, "x", p.kernel_w,
            " has more than 256 elements");
  return {x[0], x[1], span_h / p.stride_h + 1, span_w / p.stride_w + 1};
}
}  // namespace

Shape pool2d_output_shape(const Shape& x, const Pool2dParams& p) {
  return pool_output("pool2d_output_shape", x, p);
}

void max_pool2d_forward(const Context& ctx, const Tensor& x, Tensor& y, Tensor& workspace,
                        const Pool2dParams& p) {
  constexpr const char* op = "max_pool2d_forward";
  expect_tensor(ctx, op, "x", x);
  expect_tensor(ctx, op, "y", y);
  const PoolShape s = pool_shape(op, x.shape(), p);
  expect_shape(op, "y", y, {s.n, s.c, s.oh, s.ow});
  expect_distinct(op, "x", x, "y", y);
  const std::int64_t bytes = pool_workspace_bytes(ctx, op, s);
  if (!workspace.defined() || workspace.dtype() != DType::kU8 || workspace.numel() != bytes ||
      workspace.device() != ctx.device()) {
    workspace = Tensor::empty({bytes}, DType::kU8, ctx.device());
  }
  if (is_cpu(ctx, op)) {
    cpu::max_pool2d_forward(s, x.data<float>(), y.data<float>(), workspace.data<std::uint8_t>());
  } else {
    DPT_ON_CUDA(cuda::max_pool2d_forward(ctx, s, x.data<float>(), y.data<float>(),
                                         workspace.data<std::uint8_t>()));
  }
}

void max_pool2d_backward(const Context& ctx, const Tensor& dy, const Tensor& workspace, Tensor& dx,
                         const Pool2dParams& p) {
  constexpr const char* op = "max_pool2d_backward";
  expect_tensor(ctx, op, "dy", dy);
  expect_tensor(ctx, op, "dx", dx);
  expect_tensor(ctx, op, "workspace", workspace, DType::kU8);
  const PoolShape s = pool_shape(op, dx.shape(), p);
  expect_shape(op, "dy", dy, {s.n, s.c, s.oh, s.ow});
  expect_distinct(op, "dy", dy, "dx", dx);
  const std::int64_t bytes = pool_workspace_bytes(ctx, op, s);
  DPT_CHECK(workspace.numel() == bytes, op, ": workspace has ", workspace.numel(),
            " bytes, the forward of this shape writes ", bytes, " (pass the forward's workspace)");
  if (is_cpu(ctx, op)) {
    cpu::max_pool2d_backward(s, dy.data<float>(), workspace.data<std::uint8_t>(), dx.data<float>());
  } else {
    DPT_ON_CUDA(cuda::max_pool2d_backward(ctx, s, dy.data<float>(), workspace.data<std::uint8_t>(),
                                          dx.data<float>()));
  }
}

// ---- elementwise --------------------------------------------------------------------------------

void relu_forward(const Context& ctx, const Tensor& x, Tensor& y) {
  constexpr const char* op = "relu_forward";
  expect_tensor(ctx, op, "x", x);
  expect_tensor(ctx, op, "y", y);
  expect_shape(op, "y", y, x.shape());
  if (is_cpu(ctx, op)) {
    cpu::relu_forward(x.data<float>(), y.data<float>(), x.numel());
  } else {
    DPT_ON_CUDA(cuda::relu_forward(ctx, x.data<float>(), y.data<float>(), x.numel()));
  }
}

void relu_backward(const Context& ctx, const Tensor& y, const Tensor& dy, Tensor& dx) {
  constexpr const char* op = "relu_backward";
  expect_tensor(ctx, op, "y", y);
  expect_tensor(ctx, op, "dy", dy);
  expect_tensor(ctx, op, "dx", dx);
  expect_shape(op, "dy", dy, y.shape());
  expect_shape(op, "dx", dx, y.shape());
  if (is_cpu(ctx, op)) {
    cpu::relu_backward(y.data<float>(), dy.data<float>(), dx.data<float>(), y.numel());
  } else {
    DPT_ON_CUDA(
        cuda::relu_backward(ctx, y.data<float>(), dy.data<float>(), dx.data<float>(), y.numel()));
  }
}

void dropout_forward(const Context& ctx, const Tensor& x, Tensor& y, Tensor& mask, float p,
                     const DropoutKey& key) {
  constexpr const char* op = "dropout_forward";
  expect_tensor(ctx, op, "x", x);
  expect_tensor(ctx, op, "y", y);
  expect_tensor(ctx, op, "mask", mask);
  DPT_CHECK(p >= 0.0f && p < 1.0f, op, ": p must be in [0, 1), found ", p);
  DPT_CHECK(x.rank() >= 1, op, ": x must have a batch dimension, found shape ",
            to_string(x.shape()));
  DPT_CHECK(key.first_sample >= 0, op, ": first_sample must be >= 0, found ", key.first_sample);
  expect_shape(op, "y", y, x.shape());
  expect_shape(op, "mask", mask, x.shape());
  const std::int64_t samples = x.dim(0);
  const std::int64_t per_sample = samples == 0 ? 0 : x.numel() / samples;
  DPT_CHECK(per_sample <= 4 * static_cast<std::int64_t>(UINT32_MAX), op, ": ", per_sample,
            " elements per sample exceed the dropout counter");
  if (is_cpu(ctx, op)) {
    cpu::dropout_forward(x.data<float>(), y.data<float>(), mask.data<float>(), samples, per_sample,
                         p, key);
  } else {
    DPT_ON_CUDA(cuda::dropout_forward(ctx, x.data<float>(), y.data<float>(), mask.data<float>(),
                                      samples, per_sample, p, key));
  }
}

void dropout_backward(const Context& ctx, const Tensor& dy, const Tensor& mask, Tensor& dx) {
  constexpr const char* op = "dropout_backward";
  expect_tensor(ctx, op, "dy", dy);
  expect_tensor(ctx, op, "mask", mask);
  expect_tensor(ctx, op, "dx", dx);
  expect_shape(op, "mask", mask, dy.shape());
  expect_shape(op, "dx", dx, dy.shape());
  if (is_cpu(ctx, op)) {
    cpu::dropout_backward(dy.data<float>(), mask.data<float>(), dx.data<float>(), dy.numel());
  } else {
    DPT_ON_CUDA(cuda::dropout_backward(ctx, dy.data<float>(), mask.data<float>(), dx.data<float>(),
                                       dy.numel()));
  }
}

void scale(const Context& ctx, Tensor& y, float alpha) {
  constexpr const char* op = "scale";
  expect_tensor(ctx, op, "y", y);
  if (is_cpu(ctx, op)) {
    cpu::scale(y.data<float>(), alpha, y.numel());
  } else {
    DPT_ON_CUDA(cuda::scale(ctx, y.data<float>(), alpha, y.numel()));
  }
}

void cast(const Context& ctx, const Tensor& x, Tensor& y) {
  constexpr const char* op = "cast";
  DPT_CHECK(x.defined() && y.defined(), op, ": x or y is undefined");
  expect_tensor(ctx, op, "x", x, x.dtype());
  expect_tensor(ctx, op, "y", y, y.dtype());
  expect_same_numel(op, "x", x, "y", y);
  const bool to_half = x.dtype() == DType::kF32 && is_half(y.dtype());
  const bool from_half = is_half(x.dtype()) && y.dtype() == DType::kF32;
  DPT_CHECK(to_half || from_half, op, ": converts f32 to bf16 or f16 and back, not ",
            to_string(x.dtype()), " to ", to_string(y.dtype()));
  expect_distinct(op, "x", x, "y", y);
  if (is_cpu(ctx, op)) {
    if (to_half) {
      cpu::float_to_half(x.data<float>(), y.raw_data(), y.dtype(), x.numel());
    } else {
      cpu::half_to_float(x.raw_data(), x.dtype(), y.data<float>(), x.numel());
    }
  } else if (to_half) {
    DPT_ON_CUDA(cuda::float_to_half(ctx, x.data<float>(), y.raw_data(), y.dtype(), x.numel()));
  } else {
    DPT_ON_CUDA(cuda::half_to_float(ctx, x.raw_data(), x.dtype(), y.data<float>(), x.numel()));
  }
}

void round_to_format(const Context& ctx, const Tensor& x, Tensor& y, DType format) {
  constexpr const char* op = "round_to_format";
  expect_tensor(ctx, op, "x", x);
  expect_tensor(ctx, op, "y", y);
  expect_same_numel(op, "x", x, "y", y);
  DPT_CHECK(is_half(format), op, ": rounds to bf16 or f16, not ", to_string(format));
  if (is_cpu(ctx, op)) {
    cpu::round_to_format(x.data<float>(), y.data<float>(), format, x.numel());
  } else {
    DPT_ON_CUDA(cuda::round_to_format(ctx, x.data<float>(), y.data<float>(), format, x.numel()));
  }
}

void axpy(const Context& ctx, float alpha, const Tensor& x, Tensor& y) {
  constexpr const char* op = "axpy";
  expect_tensor(ctx, op, "x", x);
  expect_tensor(ctx, op, "y", y);
  expect_same_numel(op, "x", x, "y", y);
  expect_distinct(op, "x", x, "y", y);
  if (is_cpu(ctx, op)) {
    cpu::axpy(alpha, x.data<float>(), y.data<float>(), x.numel());
  } else {
    DPT_ON_CUDA(cuda::axpy(ctx, alpha, x.data<float>(), y.data<float>(), x.numel()));
  }
}

double sum_squares(const Context& ctx, const Tensor& x) {
  constexpr const char* op = "sum_squares";
  expect_tensor(ctx, op, "x", x);
  if (is_cpu(ctx, op)) return cpu::sum_squares(x.data<float>(), x.numel());
  DPT_ON_CUDA(return cuda::sum_squares(ctx, x.data<float>(), x.numel()));
  return 0.0;  // not reached: is_cpu() threw
}

void sum_squares_chunks(const Context& ctx, const Tensor& x, std::vector<double>& chunks) {
  constexpr const char* op = "sum_squares_chunks";
  expect_tensor(ctx, op, "x", x);
  chunks.assign(static_cast<std::size_t>((x.numel() + kSumSquaresChunk - 1) / kSumSquaresChunk),
                0.0);
  if (is_cpu(ctx, op)) {
    cpu::sum_squares_chunks(x.data<float>(), x.numel(), chunks.data());
  } else {
    DPT_ON_CUDA(cuda::sum_squares_chunks(ctx, x.data<float>(), x.numel(), chunks.data()));
  }
}

// ---- transformer layers -------------------------------------------------------------------------

namespace {

// Checks tokens i32 [B,T], wte [V,C] and wpe [P,C] with P >= T; returns {B, T, C, V}.
struct EmbeddingDims {
  std::int64_t b, t, c, v;
};
EmbeddingDims check_embedding(const Context& ctx, const char* op, const Tensor& tokens,
                              const Tensor& wte, const char* wte_name, const Tensor& wpe,
                              const char* wpe_name) {
  expect_tensor(ctx, op, "tokens", tokens, DType::kI32);
  expect_tensor(ctx, op, wte_name, wte);
  expect_tensor(ctx, op, wpe_name, wpe);
  expect_rank(op, "tokens", tokens, 2);
  expect_rank(op, wte_name, wte, 2);
  expect_rank(op, wpe_name, wpe, 2);
  const EmbeddingDims dims{tokens.dim(0), tokens.dim(1), wte.dim(1), wte.dim(0)};
  DPT_CHECK(wpe.dim(1) == dims.c, op, ": ", wpe_name, " ", to_string(wpe.shape()), " and ",
            wte_name, " ", to_string(wte.shape()), " differ in channels");
  DPT_CHECK(dims.t <= wpe.dim(0), op, ": tokens ", to_string(tokens.shape()), " has T = ", dims.t,
            " positions but ", wpe_name, " ", to_string(wpe.shape()), " has only ", wpe.dim(0));
  return dims;
}

// Every token in [0, V), else an error naming the first bad value and its position. The tokens
// are read on the host: a CPU context's tensors are host memory.
void check_tokens_on_host(const char* op, const Tensor& tokens, std::int64_t v) {
  const std::int32_t* tok = tokens.data<std::int32_t>();
  const std::int64_t t = tokens.dim(1);
  for (std::int64_t i = 0; i < tokens.numel(); ++i) {
    DPT_CHECK(tok[i] >= 0 && tok[i] < v, op, ": tokens[b=", i / t, ", t=", i % t, "] = ", tok[i],
              " is outside the vocabulary [0, ", v, ")");
  }
}

// Checks qkv [B,T,3C] and the head count; returns the shape record.
AttentionShape attention_shape(const Context& ctx, const char* op, const Tensor& qkv, int heads,
                               float dropout_p) {
  expect_tensor(ctx, op, "qkv", qkv);
  expect_rank(op, "qkv", qkv, 3);
  const std::int64_t width = qkv.dim(2);
  DPT_CHECK(width > 0 && width % 3 == 0, op, ": qkv ", to_string(qkv.shape()),
            " must be [B,T,3C] (last dimension a positive multiple of 3)");
  const std::int64_t c = width / 3;
  DPT_CHECK(heads >= 1 && c % heads == 0, op, ": ", heads, " heads do not divide C = ", c,
            " (qkv ", to_string(qkv.shape()), ")");
  DPT_CHECK(dropout_p >= 0.0f && dropout_p < 1.0f, op, ": dropout_p must be in [0, 1), found ",
            dropout_p);
  return AttentionShape{qkv.dim(0), qkv.dim(1), c, heads, c / heads};
}

}  // namespace

void embedding_forward(const Context& ctx, const Tensor& tokens, const Tensor& wte,
                       const Tensor& wpe, Tensor& y) {
  constexpr const char* op = "embedding_forward";
  const EmbeddingDims e = check_embedding(ctx, op, tokens, wte, "wte", wpe, "wpe");
  expect_tensor(ctx, op, "y", y);
  expect_shape(op, "y", y, {e.b, e.t, e.c});
  if (is_cpu(ctx, op)) {
    check_tokens_on_host(op, tokens, e.v);
    cpu::embedding_forward(tokens.data<std::int32_t>(), wte.data<float>(), wpe.data<float>(),
                           y.data<float>(), e.b, e.t, e.c);
  } else {
    check_tokens_on_host(op, tokens.to(Device::cpu()), e.v);  // a synchronising copy
    DPT_ON_CUDA(cuda::embedding_forward(ctx, tokens.data<std::int32_t>(), wte.data<float>(),
                                        wpe.data<float>(), y.data<float>(), e.b, e.t, e.c));
  }
}

void embedding_backward(const Context& ctx, const Tensor& tokens, const Tensor& dy, Tensor& dwte,
                        Tensor& dwpe, bool accumulate_wte, bool accumulate_wpe) {
  constexpr const char* op = "embedding_backward";
  const EmbeddingDims e = check_embedding(ctx, op, tokens, dwte, "dwte", dwpe, "dwpe");
  expect_tensor(ctx, op, "dy", dy);
  expect_shape(op, "dy", dy, {e.b, e.t, e.c});
  expect_distinct(op, "dwte", dwte, "dwpe", dwpe);
  if (is_cpu(ctx, op)) {
    check_tokens_on_host(op, tokens, e.v);
    cpu::embedding_backward(tokens.data<std::int32_t>(), dy.data<float>(), dwte.data<float>(),
                            dwpe.data<float>(), e.b, e.t, e.c, e.v, accumulate_wte,
                            accumulate_wpe);
  } else {
    check_tokens_on_host(op, tokens.to(Device::cpu()), e.v);  // a synchronising copy
    DPT_ON_CUDA(cuda::embedding_backward(ctx, tokens.data<std::int32_t>(), dy.data<float>(),
                                         dwte.data<float>(), dwpe.data<float>(), e.b, e.t, e.c,
                                         e.v, accumulate_wte, accumulate_wpe));
  }
}

void layer_norm_forward(const Context& ctx, const Tensor& x, const Tensor& gamma,
                        const Tensor& beta, Tensor& y, Tensor& mean, Tensor& rstd, float eps) {
  constexpr const char* op = "layer_norm_forward";
  expect_tensor(ctx, op, "x", x);
  expect_tensor(ctx, op, "gamma", gamma);
  expect_tensor(ctx, op, "y", y);
  expect_tensor(ctx, op, "mean", mean);
  expect_tensor(ctx, op, "rstd", rstd);
  DPT_CHECK(x.rank() >= 1 && x.dim(x.rank() - 1) >= 1, op, ": x ", to_string(x.shape()),
            " has no channel dimension");
  const std::int64_t c = x.dim(x.rank() - 1), rows = x.numel() / c;
  expect_shape(op, "gamma", gamma, {c});
  if (beta.defined()) {
    expect_tensor(ctx, op, "beta", beta);
    expect_shape(op, "beta", beta, {c});
  }
  expect_shape(op, "y", y, x.shape());
  expect_shape(op, "mean", mean, {rows});
  expect_shape(op, "rstd", rstd, {rows});
  expect_distinct(op, "x", x, "y", y);
  DPT_CHECK(eps >= 0.0f, op, ": eps must be >= 0, found ", eps);
  const float* bias = beta.defined() ? beta.data<float>() : nullptr;
  if (is_cpu(ctx, op)) {
    cpu::layer_norm_forward(x.data<float>(), gamma.data<float>(), bias, y.data<float>(),
                            mean.data<float>(), rstd.data<float>(), rows, c, eps);
  } else {
    DPT_ON_CUDA(cuda::layer_norm_forward(ctx, x.data<float>(), gamma.data<float>(), bias,
                                         y.data<float>(), mean.data<float>(), rstd.data<float>(),
                                         rows, c, eps));
  }
}

void layer_norm_backward(const Context& ctx, const Tensor& x, const Tensor& gamma,
                         const Tensor& mean, const Tensor& rstd, const Tensor& dy, Tensor& dx,
                         Tensor& dgamma, Tensor& dbeta, bool accumulate) {
  constexpr const char* op = "layer_norm_backward";
  expect_tensor(ctx, op, "x", x);
  expect_tensor(ctx, op, "gamma", gamma);
  expect_tensor(ctx, op, "mean", mean);
  expect_tensor(ctx, op, "rstd", rstd);
  expect_tensor(ctx, op, "dy", dy);
  expect_tensor(ctx, op, "dx", dx);
  expect_tensor(ctx, op, "dgamma", dgamma);
  DPT_CHECK(x.rank() >= 1 && x.dim(x.rank() - 1) >= 1, op, ": x ", to_string(x.shape()),
            " has no channel dimension");
  const std::int64_t c = x.dim(x.rank() - 1), rows = x.numel() / c;
  expect_shape(op, "gamma", gamma, {c});
  expect_shape(op, "mean", mean, {rows});
  expect_shape(op, "rstd", rstd, {rows});
  expect_shape(op, "dy", dy, x.shape());
  expect_shape(op, "dx", dx, x.shape());
  expect_shape(op, "dgamma", dgamma, {c});
  if (dbeta.defined()) {
    expect_tensor(ctx, op, "dbeta", dbeta);
    expect_shape(op, "dbeta", dbeta, {c});
  }
  expect_distinct(op, "dy", dy, "dx", dx);
  expect_distinct(op, "x", x, "dx", dx);
  float* bias_grad = dbeta.defined() ? dbeta.data<float>() : nullptr;
  if (is_cpu(ctx, op)) {
    cpu::layer_norm_backward(x.data<float>(), gamma.data<float>(), mean.data<float>(),
                             rstd.data<float>(), dy.data<float>(), dx.data<float>(),
                             dgamma.data<float>(), bias_grad, rows, c, accumulate);
  } else {
    DPT_ON_CUDA(cuda::layer_norm_backward(ctx, x.data<float>(), gamma.data<float>(),
                                          mean.data<float>(), rstd.data<float>(), dy.data<float>(),
                                          dx.data<float>(), dgamma.data<float>(), bias_grad, rows,
                                          c, accumulate));
  }
}

void gelu_forward(const Context& ctx, const Tensor& x, Tensor& y) {
  constexpr const char* op = "gelu_forward";
  expect_tensor(ctx, op, "x", x);
  expect_tensor(ctx, op, "y", y);
  expect_shape(op, "y", y, x.shape());
  if (is_cpu(ctx, op)) {
    cpu::gelu_forward(x.data<float>(), y.data<float>(), x.numel());
  } else {
    DPT_ON_CUDA(cuda::gelu_forward(ctx, x.data<float>(), y.data<float>(), x.numel()));
  }
}

void gelu_backward(const Context& ctx, const Tensor& x, const Tensor& dy, Tensor& dx) {
  constexpr const char* op = "gelu_backward";
  expect_tensor(ctx, op, "x", x);
  expect_tensor(ctx, op, "dy", dy);
  expect_tensor(ctx, op, "dx", dx);
  expect_shape(op, "dy", dy, x.shape());
  expect_shape(op, "dx", dx, x.shape());
  if (is_cpu(ctx, op)) {
    cpu::gelu_backward(x.data<float>(), dy.data<float>(), dx.data<float>(), x.numel());
  } else {
    DPT_ON_CUDA(cuda::gelu_backward(ctx, x.data<float>(), dy.data<float>(), dx.data<float>(),
                                    x.numel()));
  }
}

void add(const Context& ctx, const Tensor& a, const Tensor& b, Tensor& y) {
  constexpr const char* op = "add";
  expect_tensor(ctx, op, "a", a);
  expect_tensor(ctx, op, "b", b);
  expect_tensor(ctx, op, "y", y);
  expect_shape(op, "b", b, a.shape());
  expect_shape(op, "y", y, a.shape());
  if (is_cpu(ctx, op)) {
    cpu::add(a.data<float>(), b.data<float>(), y.data<float>(), a.numel());
  } else {
    DPT_ON_CUDA(cuda::add(ctx, a.data<float>(), b.data<float>(), y.data<float>(), a.numel()));
  }
}

void attention_forward(const Context& ctx, const Tensor& qkv, Tensor& y, Tensor& att,
                       Tensor& att_mask, int heads, float dropout_p, const DropoutKey& key) {
  constexpr const char* op = "attention_forward";
  const AttentionShape s = attention_shape(ctx, op, qkv, heads, dropout_p);
  expect_tensor(ctx, op, "y", y);
  expect_tensor(ctx, op, "att", att);
  expect_shape(op, "y", y, {s.b, s.t, s.c});
  expect_shape(op, "att", att, {s.b, s.heads, s.t, s.t});
  expect_distinct(op, "qkv", qkv, "y", y);
  float* mask = nullptr;
  if (dropout_p > 0.0f) {
    expect_tensor(ctx, op, "att_mask", att_mask);
    expect_shape(op, "att_mask", att_mask, att.shape());
    expect_distinct(op, "att", att, "att_mask", att_mask);
    DPT_CHECK(key.first_sample >= 0, op, ": first_sample must be >= 0, found ", key.first_sample);
    DPT_CHECK(s.heads * s.t * s.t <= 4 * static_cast<std::int64_t>(UINT32_MAX), op, ": ",
              s.heads * s.t * s.t, " attention elements per sample exceed the dropout counter");
    mask = att_mask.data<float>();
  }
  if (is_cpu(ctx, op)) {
    cpu::attention_forward(ctx, s, qkv.data<float>(), y.data<float>(), att.data<float>(), mask,
                           dropout_p, key);
  } else {
    DPT_ON_CUDA(cuda::attention_forward(ctx, s, qkv.data<float>(), y.data<float>(),
                                        att.data<float>(), mask, dropout_p, key));
  }
}

void attention_backward(const Context& ctx, const Tensor& qkv, const Tensor& att,
                        const Tensor& att_mask, const Tensor& dy, Tensor& dqkv, int heads,
                        float dropout_p) {
  constexpr const char* op = "attention_backward";
  const AttentionShape s = attention_shape(ctx, op, qkv, heads, dropout_p);
  expect_tensor(ctx, op, "att", att);
  expect_tensor(ctx, op, "dy", dy);
  expect_tensor(ctx, op, "dqkv", dqkv);
  expect_shape(op, "att", att, {s.b, s.heads, s.t, s.t});
  expect_shape(op, "dy", dy, {s.b, s.t, s.c});
  expect_shape(op, "dqkv", dqkv, qkv.shape());
  expect_distinct(op, "qkv", qkv, "dqkv", dqkv);
  expect_distinct(op, "dy", dy, "dqkv", dqkv);
  const float* mask = nullptr;
  if (dropout_p > 0.0f) {
    expect_tensor(ctx, op, "att_mask", att_mask);
    expect_shape(op, "att_mask", att_mask, att.shape());
    mask = att_mask.data<float>();
  }
  if (is_cpu(ctx, op)) {
    cpu::attention_backward(ctx, s, qkv.data<float>(), att.data<float>(), mask, dy.data<float>(),
                            dqkv.data<float>(), dropout_p);
  } else {
    DPT_ON_CUDA(cuda::attention_backward(ctx, s, qkv.data<float>(), att.data<float>(), mask,
                                         dy.data<float>(), dqkv.data<float>(), dropout_p));
  }
}

// ---- integrity checks ---------------------------------------------------------------------------

void find_nonfinite(const Context& ctx, const Tensor& x, Tensor& index) {
  constexpr const char* op = "find_nonfinite";
  expect_tensor(ctx, op, "x", x);
  expect_tensor(ctx, op, "index", index, DType::kI32);
  expect_shape(op, "index", index, {1});
  DPT_CHECK(x.numel() < (std::int64_t{1} << 31), op, ": x has ", x.numel(),
            " elements, more than an int32 index can name");
  if (is_cpu(ctx, op)) {
    index.data<std::int32_t>()[0] =
        static_cast<std::int32_t>(cpu::first_nonfinite(x.data<float>(), x.numel()));
    return;
  }
  DPT_ON_CUDA(cuda::find_nonfinite(ctx, x.data<float>(), x.numel(), index.data<std::int32_t>()));
}

std::int64_t first_nonfinite_on_host(const float* x, std::int64_t n) {
  DPT_CHECK(n >= 0 && (x != nullptr || n == 0), "first_nonfinite_on_host: ", n,
            " values at ", static_cast<const void*>(x));
  return cpu::first_nonfinite_serial(x, n);
}

std::uint64_t hash_bits(const Context& ctx, const Tensor& x) {
  constexpr const char* op = "hash_bits";
  expect_tensor(ctx, op, "x", x);
  if (is_cpu(ctx, op)) return cpu::hash_bits(x.data<float>(), x.numel());
  DPT_ON_CUDA(return cuda::hash_bits(ctx, x.data<float>(), x.numel()));
  return 0;  // not reached: is_cpu() threw
}

// ---- loss ---------------------------------------------------------------------------------------

namespace {

// The checks both loss entries share; returns dlogits' data (null when not asked for).
float* check_softmax_cross_entropy(const Context& ctx, const char* op, const Tensor& logits,
                                   const Tensor& labels, Tensor* dlogits) {
  expect_tensor(ctx, op, "logits", logits);
  expect_tensor(ctx, op, "labels", labels, DType::kI32);
  expect_rank(op, "logits", logits, 2);
  const std::int64_t n = logits.dim(0), classes = logits.dim(1);
  DPT_CHECK(classes >= 1, op, ": logits ", to_string(logits.shape()), " has no classes");
  expect_shape(op, "labels", labels, {n});
  if (dlogits == nullptr || !dlogits->defined()) return nullptr;
  expect_tensor(ctx, op, "dlogits", *dlogits);
  expect_shape(op, "dlogits", *dlogits, logits.shape());
  expect_distinct(op, "logits", logits, "dlogits", *dlogits);
  return dlogits->data<float>();
}

}  // namespace

LossResult softmax_cross_entropy(const Context& ctx, const Tensor& logits, const Tensor& labels,
                                 Tensor* dlogits) {
  constexpr const char* op = "softmax_cross_entropy";
  float* grad = check_softmax_cross_entropy(ctx, op, logits, labels, dlogits);
  const std::int64_t n = logits.dim(0), classes = logits.dim(1);
  if (is_cpu(ctx, op)) {
    return cpu::softmax_cross_entropy(logits.data<float>(), labels.data<std::int32_t>(), grad, n,
                                      classes);
  }
  DPT_ON_CUDA(return cuda::softmax_cross_entropy(ctx, logits.data<float>(),
                                                 labels.data<std::int32_t>(), grad, n, classes));
  return {};  // not reached: is_cpu() threw
}

void softmax_cross_entropy_rows(const Context& ctx, const Tensor& logits, const Tensor& labels,
                                Tensor* dlogits, LossRows rows) {
  constexpr const char* op = "softmax_cross_entropy_rows";
  float* grad = check_softmax_cross_entropy(ctx, op, logits, labels, dlogits);
  const std::int64_t n = logits.dim(0), classes = logits.dim(1);
  DPT_CHECK(n == 0 || (rows.loss != nullptr && rows.hit != nullptr), op,
            ": null LossRows for ", n, " samples");
  if (is_cpu(ctx, op)) {
    cpu::softmax_cross_entropy_rows(logits.data<float>(), labels.data<std::int32_t>(), grad, n,
                                    classes, rows.loss, rows.hit);
    return;
  }
  DPT_ON_CUDA(cuda::softmax_cross_entropy_rows(ctx, logits.data<float>(),
                                               labels.data<std::int32_t>(), grad, n, classes,
                                               rows.loss, rows.hit));
}

// ---- optimizers ---------------------------------------------------------------------------------

void sgd_step(const Context& ctx, Tensor& param, const Tensor& grad, Tensor& momentum_buf,
              const SgdHyper& h, bool first_step) {
  constexpr const char* op = "sgd_step";
  expect_tensor(ctx, op, "param", param);
  expect_tensor(ctx, op, "grad", grad);
  expect_shape(op, "grad", grad, param.shape());
  DPT_CHECK(h.momentum >= 0.0 && h.lr >= 0.0 && h.weight_decay >= 0.0, op,
            ": lr, momentum and weight_decay must be >= 0, found ", h.lr, ", ", h.momentum, ", ",
            h.weight_decay);
  DPT_CHECK(!h.nesterov || (h.momentum > 0.0 && h.dampening == 0.0), op,
            ": nesterov needs momentum > 0 and dampening 0 (as torch.optim.SGD)");
  float* buf = nullptr;
  if (h.momentum != 0.0) {
    expect_tensor(ctx, op, "momentum_buf", momentum_buf);
    expect_shape(op, "momentum_buf", momentum_buf, param.shape());
    buf = momentum_buf.data<float>();
  }
  if (is_cpu(ctx, op)) {
    cpu::sgd_step(param.data<float>(), grad.data<float>(), buf, param.numel(), h, first_step);
  } else {
    DPT_ON_CUDA(cuda::sgd_step(ctx, param.data<float>(), grad.data<float>(), buf, param.numel(), h,
                               first_step));
  }
}

void adamw_step(const Context& ctx, Tensor& param, const Tensor& grad, Tensor& exp_avg,
                Tensor& exp_avg_sq, const AdamWHyper& h, std::int64_t step_count) {
  constexpr const char* op = "adamw_step";
  expect_tensor(ctx, op, "param", param);
  expect_tensor(ctx, op, "grad", grad);
  expect_tensor(ctx, op, "exp_avg", exp_avg);
  expect_tensor(ctx, op, "exp_avg_sq", exp_avg_sq);
  expect_shape(op, "grad", grad, param.shape());
  expect_shape(op, "exp_avg", exp_avg, param.shape());
  expect_shape(op, "exp_avg_sq", exp_avg_sq, param.shape());
  DPT_CHECK(step_count >= 1, op, ": step_count is 1-based, found ", step_count);
  DPT_CHECK(h.beta1 >= 0.0 && h.beta1 < 1.0 && h.beta2 >= 0.0 && h.beta2 < 1.0, op,
            ": betas must be in [0, 1), found ", h.beta1, ", ", h.beta2);
  if (is_cpu(ctx, op)) {
    cpu::adamw_step(param.data<float>(), grad.data<float>(), exp_avg.data<float>(),
                    exp_avg_sq.data<float>(), param.numel(), h, step_count);
  } else {
    DPT_ON_CUDA(cuda::adamw_step(ctx, param.data<float>(), grad.data<float>(),
                                 exp_avg.data<float>(), exp_avg_sq.data<float>(), param.numel(), h,
                                 step_count));
  }
}

CpuGemmFacts cpu_gemm_facts() {
  const cpu::GemmChoice& c = cpu::gemm_choice();
  return CpuGemmFacts{c.isa, c.openblas_core, cpu::to_string(c.backward_data), c.reason};
}

}  // namespace dpt::kernels
