// SPDX-License-Identifier: MIT
// oneDNN engine/stream setup and the helpers shared by the cached oneDNN primitives.
#include "kernels/cpu/backend_state.h"

#include "runtime/check.h"

namespace dpt::kernels::cpu {

CpuBackendState::CpuBackendState(const Context& /*ctx*/)
    : engine_(dnnl::engine::kind::cpu, 0), stream_(engine_) {}

CpuBackendState& state_of(const Context& ctx) { return ctx.backend_state<CpuBackendState>(); }

Operand Operand::make(dnnl::engine& engine, const dnnl::memory::desc& user_md,
                      const dnnl::memory::desc& prim_md, bool to_primitive, bool accumulate) {
  Operand op;
  op.user = dnnl::memory(user_md, engine, DNNL_MEMORY_NONE);
  if (prim_md == user_md && !accumulate) {
    op.inner = op.user;
    return op;
  }
  op.inner = dnnl::memory(prim_md, engine);
  if (to_primitive) {
    op.reorder = dnnl::reorder(op.user, op.inner);
  } else {
    dnnl::primitive_attr attr;
    if (accumulate) {
      dnnl::post_ops po;
      po.append_sum(1.0f);
      attr.set_post_ops(po);
    }
    op.reorder = dnnl::reorder(dnnl::reorder::primitive_desc(engine, prim_md, engine, user_md, attr));
  }
  return op;
}

dnnl::primitive_attr base_attr() {
  dnnl::primitive_attr attr;
  attr.set_scratchpad_mode(dnnl::scratchpad_mode::user);
  return attr;
}

void add_scratchpad(dnnl::engine& engine, const dnnl::memory::desc& md,
                    std::unordered_map<int, dnnl::memory>& args) {
  args.insert({DNNL_ARG_SCRATCHPAD, dnnl::memory(md, engine)});
}

void sgemm(const char* op, char transa, char transb, std::int64_t m, std::int64_t n, std::int64_t k,
           const float* a, std::int64_t lda, const float* b, std::int64_t ldb, float beta, float* c,
           std::int64_t ldc) {
  const dnnl_status_t status =
      dnnl_sgemm(transa, transb, m, n, k, 1.0f, a, lda, b, ldb, beta, c, ldc);
  DPT_CHECK_KIND(ErrorKind::kInternal, status == dnnl_success, op, ": dnnl_sgemm failed (status ",
                 static_cast<int>(status), ") for ", m, "x", n, "x", k);
}

void throw_dnnl(const char* op, const dnnl::error& e) {
  ::dpt::detail::throw_error(ErrorKind::kInternal, "oneDNN", detail::str(op, ": oneDNN failed: ", e.what()),
                             __FILE__, __LINE__);
}

}  // namespace dpt::kernels::cpu
