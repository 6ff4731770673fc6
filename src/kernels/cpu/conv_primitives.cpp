// SPDX-License-Identifier: MIT
// Building and running the oneDNN convolution primitives. oneDNN picks the layouts it computes
// fastest in (format_tag::any, blocked nChw8c on AVX2); the user's NCHW/OIHW tensors are reordered
// in and out by cached reorders into cached buffers.
#include "kernels/cpu/conv_primitives.h"

#include "runtime/check.h"

namespace dpt::kernels::cpu {
namespace {

using dnnl::memory;
using tag = dnnl::memory::format_tag;
constexpr auto kF32 = dnnl::memory::data_type::f32;
constexpr auto kBF16 = dnnl::memory::data_type::bf16;

// The descriptors of one shape. The inputs of each pass (src and weights forward, diff_dst and
// weights for the data gradient, src and diff_dst for the weight gradient) are of the input type,
// f32 or bf16 (Note [Native bf16 GEMMs] in linear.cpp); outputs, bias and gradients are f32.
struct ConvDescs {
  memory::desc src_user, wei_user, bias_user, dst_user;      // src, wei: input type; dst: f32
  memory::desc diff_src_user, diff_dst_user, diff_wei_user;  // f32, input type, f32
  memory::desc src_any, wei_any, dst_any, diff_src_any, diff_dst_any, diff_wei_any;
  memory::dims strides, padding;
};

ConvDescs conv_descs(const ConvShape& s, bool bf16) {
  const auto in = bf16 ? kBF16 : kF32;
  const memory::dims x{s.n, s.c, s.h, s.w}, w{s.o, s.c, s.kh, s.kw}, y{s.n, s.o, s.oh, s.ow};
  ConvDescs d;
  d.src_user = memory::desc(x, in, tag::nchw);
  d.wei_user = memory::desc(w, in, tag::oihw);
  d.bias_user = memory::desc({s.o}, kF32, tag::x);
  d.dst_user = memory::desc(y, kF32, tag::nchw);
  d.diff_src_user = memory::desc(x, kF32, tag::nchw);
  d.diff_dst_user = memory::desc(y, in, tag::nchw);
  d.diff_wei_user = memory::desc(w, kF32, tag::oihw);
  d.src_any = memory::desc(x, in, tag::any);
  d.wei_any = memory::desc(w, in, tag::any);
  d.dst_any = memory::desc(y, kF32, tag::any);
  d.diff_src_any = memory::desc(x, kF32, tag::any);
  d.diff_dst_any = memory::desc(y, in, tag::any);
  d.diff_wei_any = memory::desc(w, kF32, tag::any);
  d.strides = {s.sh, s.sw};
  d.padding = {s.ph, s.pw};
  return d;
}

// The forward primitive_desc, also the hint the backward primitive_descs require.
// As the hint of a backward pass, `dst` is the output gradient's type (the forward's output in
// the input type), else the forward's f32 output.
dnnl::convolution_forward::primitive_desc forward_pd(dnnl::engine& engine, const ConvDescs& d,
                                                     bool bias, bool relu, bool hint = false) {
  const memory::desc& dst = hint ? d.diff_dst_any : d.dst_any;
  const auto desc =
      bias ? dnnl::convolution_forward::desc(
                 dnnl::prop_kind::forward_training, dnnl::algorithm::convolution_direct, d.src_any,
                 d.wei_any, d.bias_user, dst, d.strides, d.padding, d.padding)
           : dnnl::convolution_forward::desc(dnnl::prop_kind::forward_training,
                                             dnnl::algorithm::convolution_direct, d.src_any,
                                             d.wei_any, dst, d.strides, d.padding, d.padding);
  dnnl::primitive_attr attr = base_attr();
  if (relu) {
    dnnl::post_ops po;
    po.append_eltwise(1.0f, dnnl::algorithm::eltwise_relu, 0.0f, 0.0f);
    attr.set_post_ops(po);
  }
  return dnnl::convolution_forward::primitive_desc(desc, attr, engine);
}

}  // namespace

std::string conv_key(const char* op, const ConvShape& s, int flags) {
  return detail::str(op, ':', s.n, ',', s.c, ',', s.h, ',', s.w, ';', s.o, ',', s.kh, ',', s.kw,
                     ';', s.sh, ',', s.sw, ',', s.ph, ',', s.pw, ';', flags);
}

std::unique_ptr<ConvForward> make_conv_forward(dnnl::engine& engine, const ConvShape& s, bool bias,
                                               bool relu, bool bf16) {
  auto entry = std::make_unique<ConvForward>();
  const ConvDescs d = conv_descs(s, bf16);
  const auto pd = forward_pd(engine, d, bias, relu);
  entry->prim = dnnl::convolution_forward(pd);
  entry->src = Operand::make(engine, d.src_user, pd.src_desc(), true);
  entry->wei = Operand::make(engine, d.wei_user, pd.weights_desc(), true);
  entry->dst = Operand::make(engine, d.dst_user, pd.dst_desc(), false);
  entry->args = {{DNNL_ARG_SRC, entry->src.inner},
                 {DNNL_ARG_WEIGHTS, entry->wei.inner},
                 {DNNL_ARG_DST, entry->dst.inner}};
  entry->has_bias = bias;
  if (bias) {
    entry->bias = memory(d.bias_user, engine, DNNL_MEMORY_NONE);
    entry->args.insert({DNNL_ARG_BIAS, entry->bias});
  }
  add_scratchpad(engine, pd.scratchpad_desc(), entry->args);
  return entry;
}

void ConvForward::run(dnnl::stream& strm, const void* x, const void* w, const float* b, float* y,
                      bool reorder_weights) {
  src.bind(x);
  wei.bind(w);
  dst.bind(y);
  if (has_bias) bias.set_data_handle(const_cast<float*>(b));
  dnnl_call("conv2d_forward", [&] {
    src.to_inner(strm);
    if (reorder_weights) wei.to_inner(strm);
    prim.execute(strm, args);
    dst.to_user(strm);
    strm.wait();
  });
}

std::unique_ptr<ConvBackwardData> make_conv_backward_data(dnnl::engine& engine, const ConvShape& s,
                                                          bool bf16) {
  auto entry = std::make_unique<ConvBackwardData>();
  const ConvDescs d = conv_descs(s, bf16);
  const auto hint = forward_pd(engine, d, false, false, /*hint=*/true);
  const dnnl::convolution_backward_data::desc desc(dnnl::algorithm::convolution_direct,
                                                   d.diff_src_any, d.wei_any, d.diff_dst_any,
                                                   d.strides, d.padding, d.padding);
  const dnnl::convolution_backward_data::primitive_desc pd(desc, base_attr(), engine, hint);
  entry->prim = dnnl::convolution_backward_data(pd);
  entry->diff_dst = Operand::make(engine, d.diff_dst_user, pd.diff_dst_desc(), true);
  entry->wei = Operand::make(engine, d.wei_user, pd.weights_desc(), true);
  entry->diff_src = Operand::make(engine, d.diff_src_user, pd.diff_src_desc(), false);
  entry->args = {{DNNL_ARG_DIFF_DST, entry->diff_dst.inner},
                 {DNNL_ARG_WEIGHTS, entry->wei.inner},
                 {DNNL_ARG_DIFF_SRC, entry->diff_src.inner}};
  add_scratchpad(engine, pd.scratchpad_desc(), entry->args);
  return entry;
}

void ConvBackwardData::run(dnnl::stream& strm, const void* dy, const void* w, float* dx,
                           bool reorder_weights) {
  diff_dst.bind(dy);
  wei.bind(w);
  diff_src.bind(dx);
  dnnl_call("conv2d_backward_data", [&] {
    diff_dst.to_inner(strm);
    if (reorder_weights) wei.to_inner(strm);
    prim.execute(strm, args);
    diff_src.to_user(strm);
    strm.wait();
  });
}

std::unique_ptr<ConvBackwardWeights> make_conv_backward_weights(dnnl::engine& engine,
                                                                const ConvShape& s, bool bias,
                                                                bool accumulate, bool bf16) {
  auto entry = std::make_unique<ConvBackwardWeights>();
  const ConvDescs d = conv_descs(s, bf16);
  const auto hint = forward_pd(engine, d, bias, false, /*hint=*/true);
  auto make_pd = [&](const memory::desc& src_md) {
    const auto desc = bias ? dnnl::convolution_backward_weights::desc(
                                 dnnl::algorithm::convolution_direct, src_md, d.diff_wei_any,
                                 d.bias_user, d.diff_dst_any, d.strides, d.padding, d.padding)
                           : dnnl::convolution_backward_weights::desc(
                                 dnnl::algorithm::convolution_direct, src_md, d.diff_wei_any,
                                 d.diff_dst_any, d.strides, d.padding, d.padding);
    return dnnl::convolution_backward_weights::primitive_desc(desc, base_attr(), engine, hint);
  };
  // With fewer than 8 input channels (the first layer) the blocked layout pads channels to 8:
  // the reorder writes 8x the input. Ask for the plain layout first, which AVX2 kernels take
  // for such layers; fall back to oneDNN's choice if no kernel does.
  auto pd = [&] {
    if (s.c < 8) {
      try {
        return make_pd(d.src_user);
      } catch (const dnnl::error&) {
      }
    }
    return make_pd(d.src_any);
  }();
  entry->prim = dnnl::convolution_backward_weights(pd);
  entry->src = Operand::make(engine, d.src_user, pd.src_desc(), true);
  entry->diff_dst = Operand::make(engine, d.diff_dst_user, pd.diff_dst_desc(), true);
  // Backward primitives take no post-ops, so accumulation goes through the output reorder's
  // sum post-op (dw += result) instead of a separate scratch-and-add pass.
  entry->diff_wei =
      Operand::make(engine, d.diff_wei_user, pd.diff_weights_desc(), false, accumulate);
  entry->args = {{DNNL_ARG_SRC, entry->src.inner},
                 {DNNL_ARG_DIFF_DST, entry->diff_dst.inner},
                 {DNNL_ARG_DIFF_WEIGHTS, entry->diff_wei.inner}};
  entry->has_bias = bias;
  entry->accumulate = accumulate;
  if (bias) {
    entry->diff_bias_user = memory(d.bias_user, engine, DNNL_MEMORY_NONE);
    entry->diff_bias_inner = accumulate ? memory(d.bias_user, engine) : entry->diff_bias_user;
    entry->args.insert({DNNL_ARG_DIFF_BIAS, entry->diff_bias_inner});
  }
  add_scratchpad(engine, pd.scratchpad_desc(), entry->args);
  return entry;
}

void ConvBackwardWeights::run(dnnl::stream& strm, std::int64_t o, const void* x, const void* dy,
                              float* dw, float* db) {
  src.bind(x);
  diff_dst.bind(dy);
  diff_wei.bind(dw);
  if (has_bias) diff_bias_user.set_data_handle(db);
  dnnl_call("conv2d_backward_weights", [&] {
    src.to_inner(strm);
    diff_dst.to_inner(strm);
    prim.execute(strm, args);
    diff_wei.to_user(strm);
    strm.wait();
  });
  if (has_bias && accumulate) {
    const auto* inner = static_cast<const float*>(diff_bias_inner.get_data_handle());
    for (std::int64_t i = 0; i < o; ++i) db[i] += inner[i];
  }
}

}  // namespace dpt::kernels::cpu
