// SPDX-License-Identifier: MIT
// The desync check: per-tensor hashes (kernels::hash_bits), one all-reduce of their fold, the
// per-tensor comparison only when the folds differ.
#include "nn/train/param_check.h"

#include <sstream>

#include "kernels/integrity_math.h"
#include "kernels/ops.h"
#include "nn/train/nonfinite.h"
#include "runtime/check.h"

namespace dpt::nn {

// Note [Parameter check]
// ~~~~~~~~~~~~~~~~~~~~~~
// Ranks start from rank 0's parameters and apply bitwise identical gradients, so their parameters
// and optimizer state stay bitwise equal; nothing else looks, so a flipped bit in one rank's memory
// or a rank that computed something else would leave the ranks training different models with
// exit status 0. Every --check-params-every steps (100 by default), before every checkpoint and
// at the end of training each rank hashes every parameter and optimizer slot (Note [Parameter
// hash] in kernels/integrity_math.h: any one changed element changes the hash) and the ranks
// all-reduce the fold of those hashes: max of each 32-bit half and of its negation, so that
// min == max everywhere means agreement. One pass over parameters and optimizer state, about 1 ms
// per 10 M values, every 100 steps: far below the noise of a step. Only when they differ are the
// per-tensor hashes gathered, to name the first tensor that differs and which ranks hold what.
// Optimizer state is included: a desynchronised momentum desynchronises the parameters one step
// later, but the check should name where it happened. The same pass checks that parameters are
// finite, so that an overflow that made them Inf (Note [Non-finite gradients]) stops the job.

std::vector<HashedTensor> hashed_tensors(Sequential& model, Optimizer* optimizer) {
  std::vector<HashedTensor> tensors;
  const Tensor& flat = model.flat_params();
  for (const Parameter* p : model.parameters()) tensors.push_back({p->name, p->value});
  if (optimizer == nullptr) return tensors;
  for (const std::string& slot : optimizer->slot_names()) {
    const Tensor& state = optimizer->slot(slot);
    for (const Parameter* p : model.parameters()) {
      const auto offset = static_cast<std::int64_t>(
          static_cast<const char*>(p->value.raw_data()) - static_cast<const char*>(flat.raw_data())) /
          static_cast<std::int64_t>(sizeof(float));
      tensors.push_back({detail::str(p->name, " (optimizer ", slot, ")"),
                         Tensor::view_of(state, offset, p->value.shape())});
    }
  }
  return tensors;
}

std::string describe_param_difference(const std::vector<std::string>& names,
                                      const std::vector<std::vector<std::uint64_t>>& hashes,
                                      std::int64_t after_step) {
  for (std::size_t t = 0; t < names.size(); ++t) {
    std::vector<std::size_t> differ, agree;
    for (std::size_t r = 0; r < hashes.size(); ++r) {
      DPT_CHECK(hashes[r].size() == names.size(), "parameter check: rank ", r, " hashed ",
                hashes[r].size(), " tensors, expected ", names.size());
      (hashes[r][t] == hashes[0][t] ? agree : differ).push_back(r);
    }
    if (differ.empty()) continue;
    auto list = [](const std::vector<std::size_t>& ranks) {
      std::ostringstream out;
      out << (ranks.size() == 1 ? "rank " : "ranks ");
      for (std::size_t i = 0; i < ranks.size(); ++i) out << (i ? ", " : "") << ranks[i];
      return out.str();
    };
    std::ostringstream what;
    what << "parameters differ between ranks after step " << after_step << ": first at "
         << names[t] << "; " << list(differ) << (differ.size() == 1 ? " differs" : " differ")
         << " from rank 0";
    if (agree.size() > 1) what << " (" << list(agree) << " agree)";
    return what.str();
  }
  return {};
}

ParamCheck::ParamCheck(const Context& ctx, comm::Communicator& comm, Sequential& model,
                       Optimizer* optimizer)
    : ctx_(ctx),
      comm_(comm),
      model_(model),
      tensors_(hashed_tensors(model, optimizer)),
      nonfinite_at_(Tensor::zeros({1}, DType::kI32, ctx.device())) {}

void ParamCheck::check(std::int64_t after_step) {
  std::vector<std::uint64_t> hashes;
  hashes.reserve(tensors_.size());
  std::uint64_t fold = 0;
  for (const HashedTensor& t : tensors_) {
    hashes.push_back(kernels::hash_bits(ctx_, t.value));
    fold = kernels::hash_step(fold, hashes.back());
  }
  kernels::find_nonfinite(ctx_, model_.flat_params(), nonfinite_at_);
  const Tensor at = nonfinite_at_.device().type == DeviceType::kCpu ? nonfinite_at_
                                                                    : nonfinite_at_.to(Device::cpu());
  const std::int32_t nonfinite_at = at.data<std::int32_t>()[0];
  const bool nonfinite = nonfinite_at < model_.flat_params().numel();

  if (comm_.world_size() > 1) {
    const auto hi = static_cast<std::int64_t>(fold >> 32), lo = static_cast<std::int64_t>(fold & 0xffffffffu);
    std::int64_t reduced[5] = {hi, lo, -hi, -lo, nonfinite ? 1 : 0};
    comm_.all_reduce(reduced, 5, comm::ReduceOp::kMax);
    if (reduced[0] != -reduced[2] || reduced[1] != -reduced[3]) {
      std::ostringstream mine;
      for (std::uint64_t h : hashes) mine << h << ' ';
      std::vector<std::vector<std::uint64_t>> all;
      for (const std::string& text : comm_.all_gather(mine.str())) {
        std::istringstream in(text);
        all.emplace_back();
        for (std::uint64_t h = 0; in >> h;) all.back().push_back(h);
      }
      std::vector<std::string> names;
      for (const HashedTensor& t : tensors_) names.push_back(t.name);
      DPT_FAIL(describe_param_difference(names, all, after_step));
    }
    // Equal hashes: equal parameters, so every rank found the same non-finite element or none.
  }
  DPT_CHECK(!nonfinite, "parameter ", describe_flat_element(model_, nonfinite_at),
            " holds a NaN or Inf after step ", after_step,
            " (not from a NaN or Inf gradient, which the step's own check catches: an overflow "
            "in the gradient sum or the update)");
}

}  // namespace dpt::nn
