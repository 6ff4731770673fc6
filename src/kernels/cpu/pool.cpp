// SPDX-License-Identifier: MIT
// Max pooling forward/backward on oneDNN, on the user's NCHW layout. The forward records the argmax
// in oneDNN's workspace, which the caller keeps and hands to the backward.
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

struct Pool : CacheEntry {
  dnnl::primitive prim;
  memory src, dst, workspace;  // src/dst are diff_src/diff_dst for the backward
  std::unordered_map<int, memory> args;
  std::size_t workspace_bytes = 0;
};

std::string pool_key(const char* op, const PoolShape& s) {
  return detail::str(op, ':', s.n, ',', s.c, ',', s.h, ',', s.w, ';', s.kh, ',', s.kw, ';', s.sh,
                     ',', s.sw, ',', s.ph, ',', s.pw);
}

struct PoolDescs {
  memory::desc src, dst;
  memory::dims strides, kernel, padding;
};

PoolDescs pool_descs(const PoolShape& s) {
  return PoolDescs{memory::desc({s.n, s.c, s.h, s.w}, kF32, tag::nchw),
                   memory::desc({s.n, s.c, s.oh, s.ow}, kF32, tag::nchw),
                   {s.sh, s.sw}, {s.kh, s.kw}, {s.ph, s.pw}};
}

dnnl::pooling_forward::primitive_desc forward_pd(dnnl::engine& engine, const PoolDescs& d) {
  const dnnl::pooling_forward::desc desc(dnnl::prop_kind::forward_training,
                                         dnnl::algorithm::pooling_max, d.src, d.dst, d.strides,
                                         d.kernel, d.padding, d.padding);
  return dnnl::pooling_forward::primitive_desc(desc, base_attr(), engine);
}

Pool& forward_entry(CpuBackendState& st, const PoolShape& s) {
  return st.cached<Pool>(pool_key("maxpool_fwd", s), [&] {
    try {
      auto entry = std::make_unique<Pool>();
      const PoolDescs d = pool_descs(s);
      const auto pd = forward_pd(st.engine(), d);
      entry->prim = dnnl::pooling_forward(pd);
      entry->src = memory(d.src, st.engine(), DNNL_MEMORY_NONE);
      entry->dst = memory(d.dst, st.engine(), DNNL_MEMORY_NONE);
      entry->workspace = memory(pd.workspace_desc(), st.engine(), DNNL_MEMORY_NONE);
      entry->workspace_bytes = pd.workspace_desc().get_size();
      entry->args = {{DNNL_ARG_SRC, entry->src},
                     {DNNL_ARG_DST, entry->dst},
                     {DNNL_ARG_WORKSPACE, entry->workspace}};
      add_scratchpad(st.engine(), pd.scratchpad_desc(), entry->args);
      return entry;
    } catch (const dnnl::error& err) {
      throw_dnnl("max_pool2d_forward", err);
    }
  });
}

}  // namespace

std::size_t max_pool2d_workspace_bytes(const Context& ctx, const PoolShape& s) {
  return forward_entry(state_of(ctx), s).workspace_bytes;
}

void max_pool2d_forward(const Context& ctx, const PoolShape& s, const float* x, float* y,
                        void* workspace) {
  CpuBackendState& st = state_of(ctx);
  Pool& e = forward_entry(st, s);
  e.src.set_data_handle(const_cast<float*>(x));
  e.dst.set_data_handle(y);
  e.workspace.set_data_handle(workspace);
  e.prim.execute(st.stream(), e.args);
  st.stream().wait();
}

void max_pool2d_backward(const Context& ctx, const PoolShape& s, const float* dy,
                         const void* workspace, float* dx) {
  CpuBackendState& st = state_of(ctx);
  Pool& e = st.cached<Pool>(pool_key("maxpool_bwd", s), [&] {
    try {
      auto entry = std::make_unique<Pool>();
      const PoolDescs d = pool_descs(s);
      const auto hint = forward_pd(st.engine(), d);
      const dnnl::pooling_backward::desc desc(dnnl::algorithm::pooling_max, d.src, d.dst,
                                              d.strides, d.kernel, d.padding, d.padding);
      const dnnl::pooling_backward::primitive_desc pd(desc, base_attr(), st.engine(), hint);
      entry->prim = dnnl::pooling_backward(pd);
      entry->src = memory(d.src, st.engine(), DNNL_MEMORY_NONE);
      entry->dst = memory(d.dst, st.engine(), DNNL_MEMORY_NONE);
      entry->workspace = memory(pd.workspace_desc(), st.engine(), DNNL_MEMORY_NONE);
      entry->workspace_bytes = pd.workspace_desc().get_size();
      entry->args = {{DNNL_ARG_DIFF_SRC, entry->src},
                     {DNNL_ARG_DIFF_DST, entry->dst},
                     {DNNL_ARG_WORKSPACE, entry->workspace}};
      add_scratchpad(st.engine(), pd.scratchpad_desc(), entry->args);
      return entry;
    } catch (const dnnl::error& err) {
      throw_dnnl("max_pool2d_backward", err);
    }
  });
  e.src.set_data_handle(dx);
  e.dst.set_data_handle(const_cast<float*>(dy));
  e.workspace.set_data_handle(const_cast<void*>(workspace));
  e.prim.execute(st.stream(), e.args);
  st.stream().wait();
}

}  // namespace dpt::kernels::cpu
