// SPDX-License-Identifier: MIT
// The non-finite gradient policy: a local check of each bucket before its all-reduce, one small
// all-reduce of the findings before the optimizer, and the message naming step, ranks and
// parameters.
#include "nn/train/nonfinite.h"

#include <algorithm>
#include <sstream>

#include "kernels/ops.h"
#include "runtime/check.h"
#include "runtime/logging.h"

namespace dpt::nn {

// Note [Non-finite gradients]
// ~~~~~~~~~~~~~~~~~~~~~~~~~~~
// A NaN or Inf in one rank's gradients reaches every rank through the all-reduce (a sum with a NaN
// or Inf term is NaN or Inf, the exact sum counts them: runtime/exact_sum.h), so deciding from the
// reduced gradients gives every rank the same decision. Reading them again would be one more pass
// over all gradients per step (1-4 ms for mlp's 10 M, outside the noise of a 60 ms step). Instead
// each rank checks each bucket just before its all-reduce starts, while backward has just written
// it (cache-hot, and the rank and parameter are known there for the message), and the ranks
// all-reduce one integer: how many of them found one. That integer is the decision; it is zero
// exactly when the reduced gradients hold no NaN or Inf that came from a rank. The one case it
// misses is a sum of finite values that overflows in the reduction: under skip, on several ranks,
// the reduced gradients are checked too (one pass); under abort the overflowed step goes through,
// and its infinite parameters are caught by the parameter check (param_check.h: every
// --check-params-every steps and before every checkpoint, which never holds a non-finite value)
// and by the loss, which becomes NaN one step later. Skip leaves parameters and optimizer state
// untouched (the optimizer does not run, its step count does not advance), as PyTorch's
// GradScaler skips optimizer.step() on found_inf. On a GPU the decision costs a host wait for the
// step's all-reduces before the optimizer is queued (the flags come back to the host).

NonfinitePolicy parse_nonfinite_policy(const std::string& text) {
  if (text == "skip") return NonfinitePolicy::kSkip;
  DPT_CHECK(text == "abort", "nonfinite: expected abort or skip, got '", text, "'");
  return NonfinitePolicy::kAbort;
}

std::string describe_flat_element(const Sequential& model, std::int64_t flat_index) {
  const std::vector<std::int64_t>& offsets = model.parameter_offsets();
  const auto after = std::upper_bound(offsets.begin(), offsets.end(), flat_index);
  DPT_ASSERT(after != offsets.begin());
  const auto i = static_cast<std::size_t>(after - offsets.begin() - 1);
  const Parameter& p = *model.parameters()[i];
  const std::int64_t element = flat_index - offsets[i];
  if (element >= p.value.numel()) {
    return detail::str(p.name, " (alignment padding after its ", p.value.numel(), " elements)");
  }
  return detail::str(p.name, " (element ", element, " of ", p.value.numel(), ")");
}

namespace {
// t readable on the host: itself on the CPU (no copy, no allocation in the step), a copy otherwise.
Tensor on_host(const Tensor& t) {
  return t.device().type == DeviceType::kCpu ? t : t.to(Device::cpu());
}
}  // namespace

NonfiniteGuard::NonfiniteGuard(const Context& ctx, comm::Communicator& comm, Sequential& model,
                               DataParallel& ddp, NonfinitePolicy policy, std::int64_t skip_limit)
    : ctx_(ctx),
      comm_(comm),
      model_(model),
      ddp_(ddp),
      policy_(policy),
      skip_limit_(skip_limit),
      local_grads_(ddp.local_gradients()) {
  const auto buffers = static_cast<std::int64_t>(local_grads_.size());
  const auto buckets = static_cast<std::int64_t>(ddp.buckets().size());
  found_ = Tensor::zeros({buckets * buffers}, DType::kI32, ctx.device());
  reduced_found_ = Tensor::zeros({1}, DType::kI32, ctx.device());
  ddp_.set_launch_hook([this](std::size_t bucket) { scan(bucket); });
}

NonfiniteGuard::~NonfiniteGuard() { ddp_.set_launch_hook(nullptr); }

void NonfiniteGuard::scan(std::size_t bucket) {
  const GradBucket& b = ddp_.buckets()[bucket];
  const auto buffers = static_cast<std::int64_t>(local_grads_.size());
  for (std::int64_t s = 0; s < buffers; ++s) {
    const Tensor values = Tensor::view_of(local_grads_[static_cast<std::size_t>(s)], b.offset,
                                          {b.count});
    Tensor slot = Tensor::view_of(found_, static_cast<std::int64_t>(bucket) * buffers + s, {1});
    kernels::find_nonfinite(ctx_, values, slot);
  }
}

std::string NonfiniteGuard::local_finding(const Tensor& found) const {
  const auto* first = found.data<std::int32_t>();
  const auto buffers = static_cast<std::int64_t>(local_grads_.size());
  // Buckets in launch order: the first is the one backward completed first.
  for (std::size_t b = 0; b < ddp_.buckets().size(); ++b) {
    const GradBucket& bucket = ddp_.buckets()[b];
    for (std::int64_t s = 0; s < buffers; ++s) {
      const std::int32_t at = first[static_cast<std::int64_t>(b) * buffers + s];
      if (at >= bucket.count) continue;
      std::string text = detail::str("rank ", comm_.rank(), ": NaN or Inf in ",
                                     describe_flat_element(model_, bucket.offset + at),
                                     " before the all-reduce (bucket ", b);
      if (buffers > 1) text += detail::str(", micro-shard ", s);
      return text + ")";
    }
  }
  return {};
}

bool NonfiniteGuard::skip_step(std::int64_t step, bool loss_scaled) {
  ddp_.complete();  // the flags are read on the host: first let a stalled all-reduce time out
  const Tensor found = on_host(found_);
  const std::string local = local_finding(found);
  // [0] ranks whose own gradients held a NaN or Inf, [1] ranks whose reduced gradients do.
  std::int64_t counts[2] = {local.empty() ? 0 : 1, 0};
  std::string reduced;
  if ((policy_ == NonfinitePolicy::kSkip || loss_scaled) && comm_.world_size() > 1) {
    // A sum of finite values can overflow: Note [Non-finite gradients].
    // A sharded optimizer's rank holds the reduced gradients of its own range only (Note
    // [Sharded optimizer]); the ranges cover the buffer, and the counts are summed below.
    const Tensor reduced_grads = ddp_.owned_range(model_.flat_grads());
    kernels::find_nonfinite(ctx_, reduced_grads, reduced_found_);
    const std::int32_t at = on_host(reduced_found_).data<std::int32_t>()[0];
    if (at < reduced_grads.numel()) {
      counts[1] = 1;
      reduced = describe_flat_element(
          model_, ddp_.shard_starts()[static_cast<std::size_t>(ddp_.sharded() ? comm_.rank() : 0)] + at);
    }
  }
  if (comm_.world_size() > 1) comm_.all_reduce(counts, 2, comm::ReduceOp::kSum);
  if (counts[0] == 0 && counts[1] == 0) return false;
  if (loss_scaled) {
    log_rank0(LogLevel::kDebug, "step ", step,
              ": gradients overflowed under the loss scale: step "
              "skipped, scale halved");
    return true;
  }

  std::ostringstream what;
  what << "non-finite gradients at step " << step;
  if (counts[0] > 0) {
    const std::vector<std::string> all =
        comm_.world_size() > 1 ? comm_.all_gather(local) : std::vector<std::string>{local};
    for (const std::string& line : all) {
      if (!line.empty()) what << "\n  " << line;
    }
  } else {
    what << ": every rank's own gradients were finite, the sum overflowed in the all-reduce "
            "(first in "
         << (reduced.empty() ? std::string("another rank's range of the sharded optimizer")
                             : reduced)
         << ")";
  }
  if (policy_ == NonfinitePolicy::kAbort) {
    DPT_FAIL(what.str(), "\n(--nonfinite abort; --nonfinite skip skips such steps)");
  }
  ++skipped_;
  DPT_CHECK(skipped_ <= skip_limit_, what.str(), "\nand ", skip_limit_,
            " step(s) were skipped already: stopping (--nonfinite-skip-limit ", skip_limit_, ")");
  log_rank0(LogLevel::kWarning, what.str(), "\nskipping the step (--nonfinite skip): parameters "
            "unchanged; ", skipped_, " of at most ", skip_limit_, " skipped");
  return true;
}

}  // namespace dpt::nn
