// SPDX-License-Identifier: MIT
// Convolution forward (bias + ReLU fused), backward-data and backward-weights (+ bias) on oneDNN.
// oneDNN picks the layouts it computes fastest in (format_tag::any, blocked nChw8c on AVX2); the
// user's NCHW/OIHW tensors are reordered in and out by cached reorders into cached buffers.
#include <string>
#include <unordered_map>

#include "kernels/cpu/backend_state.h"
#include "kernels/cpu/kernels_cpu.h"
#include "runtime/check.h"

namespace dpt::kernels::cpu {
namespace {

using dnnl::memory;
using tag = dnnl::memory::format_tag;
constexpr auto kF32 = dnnl::memory::data_type::f32;

struct ConvDescs {
  memory::desc src_user, wei_user, bias_user, dst_user;
  memory::desc src_any, wei_any, dst_any;
  memory::dims strides, padding;
};

ConvDescs conv_descs(const ConvShape& s) {
  ConvDescs d;
  d.src_user = memory::desc({s.n, s.c, s.h, s.w}, kF32, tag::nchw);
  d.wei_user = memory::desc({s.o, s.c, s.kh, s.kw}, kF32, tag::oihw);
  d.bias_user = memory::desc({s.o}, kF32, tag::x);
  d.dst_user = memory::desc({s.n, s.o, s.oh, s.ow}, kF32, tag::nchw);
  d.src_any = memory::desc({s.n, s.c, s.h, s.w}, kF32, tag::any);
  d.wei_any = memory::desc({s.o, s.c, s.kh, s.kw}, kF32, tag::any);
  d.dst_any = memory::desc({s.n, s.o, s.oh, s.ow}, kF32, tag::any);
  d.strides = {s.sh, s.sw};
  d.padding = {s.ph, s.pw};
  return d;
}

std::string conv_key(const char* op, const ConvShape& s, int flags) {
  return detail::str(op, ':', s.n, ',', s.c, ',', s.h, ',', s.w, ';', s.o, ',', s.kh, ',', s.kw,
                     ';', s.sh, ',', s.sw, ',', s.ph, ',', s.pw, ';', flags);
}

// The forward primitive_desc, also the hint the backward primitive_descs require.
dnnl::convolution_forward::primitive_desc forward_pd(dnnl::engine& engine, const ConvDescs& d,
                                                     bool bias, bool relu) {
  const auto desc =
      bias ? dnnl::convolution_forward::desc(
                 dnnl::prop_kind::forward_training, dnnl::algorithm::convolution_direct, d.src_any,
                 d.wei_any, d.bias_user, d.dst_any, d.strides, d.padding, d.padding)
           : dnnl::convolution_forward::desc(dnnl::prop_kind::forward_training,
                                             dnnl::algorithm::convolution_direct, d.src_any,
                                             d.wei_any, d.dst_any, d.strides, d.padding, d.padding);
  dnnl::primitive_attr attr = base_attr();
  if (relu) {
    dnnl::post_ops po;
    po.append_eltwise(1.0f, dnnl::algorithm::eltwise_relu, 0.0f, 0.0f);
    attr.set_post_ops(po);
  }
  return dnnl::convolution_forward::primitive_desc(desc, attr, engine);
}

struct ConvForward : CacheEntry {
  dnnl::primitive prim;
  Operand src, wei, dst;
  memory bias;
  std::unordered_map<int, memory> args;
};

struct ConvBackwardData : CacheEntry {
  dnnl::primitive prim;
  Operand diff_dst, wei, diff_src;
  std::unordered_map<int, memory> args;
};

struct ConvBackwardWeights : CacheEntry {
  dnnl::primitive prim;
  Operand src, diff_dst, diff_wei;
  memory diff_bias_user;   // the user's db, used directly when not accumulating
  memory diff_bias_inner;  // scratch db when accumulating (then added to the user's)
  std::unordered_map<int, memory> args;
};

}  // namespace

void conv2d_forward(const Context& ctx, const ConvShape& s, const float* x, const float* w,
                    const float* b, float* y, bool relu) {
  CpuBackendState& st = state_of(ctx);
  const bool bias = b != nullptr;
  auto& e = st.cached<ConvForward>(conv_key("conv_fwd", s, bias * 2 + relu), "conv2d_forward", [&] {
    auto entry = std::make_unique<ConvForward>();
    const ConvDescs d = conv_descs(s);
    const auto pd = forward_pd(st.engine(), d, bias, relu);
    entry->prim = dnnl::convolution_forward(pd);
    entry->src = Operand::make(st.engine(), d.src_user, pd.src_desc(), true);
    entry->wei = Operand::make(st.engine(), d.wei_user, pd.weights_desc(), true);
    entry->dst = Operand::make(st.engine(), d.dst_user, pd.dst_desc(), false);
    entry->args = {{DNNL_ARG_SRC, entry->src.inner},
                   {DNNL_ARG_WEIGHTS, entry->wei.inner},
                   {DNNL_ARG_DST, entry->dst.inner}};
    if (bias) {
      entry->bias = memory(d.bias_user, st.engine(), DNNL_MEMORY_NONE);
      entry->args.insert({DNNL_ARG_BIAS, entry->bias});
    }
    add_scratchpad(st.engine(), pd.scratchpad_desc(), entry->args);
    return entry;
  });
  e.src.bind(x);
  e.wei.bind(w);
  e.dst.bind(y);
  if (bias) e.bias.set_data_handle(const_cast<float*>(b));
  dnnl::stream& strm = st.stream();
  dnnl_call("conv2d_forward", [&] {
    e.src.to_inner(strm);
    e.wei.to_inner(strm);
    e.prim.execute(strm, e.args);
    e.dst.to_user(strm);
    strm.wait();
  });
}

void conv2d_backward_data(const Context& ctx, const ConvShape& s, const float* dy, const float* w,
                          float* dx) {
  CpuBackendState& st = state_of(ctx);
  auto& e =
      st.cached<ConvBackwardData>(conv_key("conv_bwd_data", s, 0), "conv2d_backward_data", [&] {
        auto entry = std::make_unique<ConvBackwardData>();
        const ConvDescs d = conv_descs(s);
        const auto hint = forward_pd(st.engine(), d, false, false);
        const dnnl::convolution_backward_data::desc desc(dnnl::algorithm::convolution_direct,
                                                         d.src_any, d.wei_any, d.dst_any, d.strides,
                                                         d.padding, d.padding);
        const dnnl::convolution_backward_data::primitive_desc pd(desc, base_attr(), st.engine(),
                                                                 hint);
        entry->prim = dnnl::convolution_backward_data(pd);
        entry->diff_dst = Operand::make(st.engine(), d.dst_user, pd.diff_dst_desc(), true);
        entry->wei = Operand::make(st.engine(), d.wei_user, pd.weights_desc(), true);
        entry->diff_src = Operand::make(st.engine(), d.src_user, pd.diff_src_desc(), false);
        entry->args = {{DNNL_ARG_DIFF_DST, entry->diff_dst.inner},
                       {DNNL_ARG_WEIGHTS, entry->wei.inner},
                       {DNNL_ARG_DIFF_SRC, entry->diff_src.inner}};
        add_scratchpad(st.engine(), pd.scratchpad_desc(), entry->args);
        return entry;
      });
  e.diff_dst.bind(dy);
  e.wei.bind(w);
  e.diff_src.bind(dx);
  dnnl::stream& strm = st.stream();
  dnnl_call("conv2d_backward_data", [&] {
    e.diff_dst.to_inner(strm);
    e.wei.to_inner(strm);
    e.prim.execute(strm, e.args);
    e.diff_src.to_user(strm);
    strm.wait();
  });
}

void conv2d_backward_weights(const Context& ctx, const ConvShape& s, const float* x,
                             const float* dy, float* dw, float* db, bool accumulate) {
  CpuBackendState& st = state_of(ctx);
  const bool bias = db != nullptr;
  auto& e = st.cached<ConvBackwardWeights>(
      conv_key("conv_bwd_weights", s, bias * 2 + accumulate), "conv2d_backward_weights", [&] {
        auto entry = std::make_unique<ConvBackwardWeights>();
        const ConvDescs d = conv_descs(s);
        const auto hint = forward_pd(st.engine(), d, bias, false);
        auto make_pd = [&](const memory::desc& src_md) {
          const auto desc = bias ? dnnl::convolution_backward_weights::desc(
                                       dnnl::algorithm::convolution_direct, src_md, d.wei_any,
                                       d.bias_user, d.dst_any, d.strides, d.padding, d.padding)
                                 : dnnl::convolution_backward_weights::desc(
                                       dnnl::algorithm::convolution_direct, src_md, d.wei_any,
                                       d.dst_any, d.strides, d.padding, d.padding);
          return dnnl::convolution_backward_weights::primitive_desc(desc, base_attr(), st.engine(),
                                                                    hint);
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
        entry->src = Operand::make(st.engine(), d.src_user, pd.src_desc(), true);
        entry->diff_dst = Operand::make(st.engine(), d.dst_user, pd.diff_dst_desc(), true);
        // Backward primitives take no post-ops, so accumulation goes through the output reorder's
        // sum post-op (dw += result) instead of a separate scratch-and-add pass.
        entry->diff_wei =
            Operand::make(st.engine(), d.wei_user, pd.diff_weights_desc(), false, accumulate);
        entry->args = {{DNNL_ARG_SRC, entry->src.inner},
                       {DNNL_ARG_DIFF_DST, entry->diff_dst.inner},
                       {DNNL_ARG_DIFF_WEIGHTS, entry->diff_wei.inner}};
        if (bias) {
          entry->diff_bias_user = memory(d.bias_user, st.engine(), DNNL_MEMORY_NONE);
          entry->diff_bias_inner =
              accumulate ? memory(d.bias_user, st.engine()) : entry->diff_bias_user;
          entry->args.insert({DNNL_ARG_DIFF_BIAS, entry->diff_bias_inner});
        }
        add_scratchpad(st.engine(), pd.scratchpad_desc(), entry->args);
        return entry;
      });
  e.src.bind(x);
  e.diff_dst.bind(dy);
  e.diff_wei.bind(dw);
  if (bias) e.diff_bias_user.set_data_handle(db);
  dnnl::stream& strm = st.stream();
  dnnl_call("conv2d_backward_weights", [&] {
    e.src.to_inner(strm);
    e.diff_dst.to_inner(strm);
    e.prim.execute(strm, e.args);
    e.diff_wei.to_user(strm);
    strm.wait();
  });
  if (bias && accumulate) {
    const auto* inner = static_cast<const float*>(e.diff_bias_inner.get_data_handle());
    for (std::int64_t i = 0; i < s.o; ++i) db[i] += inner[i];
  }
}

}  // namespace dpt::kernels::cpu
