// SPDX-License-Identifier: MIT
#include "nn/train/verify.h"

#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <cstring>
#include <iomanip>
#include <sstream>

#include "nn/train/trainer.h"
#include "runtime/check.h"

namespace dpt::nn {

void fold_difference(const Tensor& a, const Tensor& b, double& max_abs, double& max_rel,
                     bool& bitwise) {
  const std::vector<float> x = a.to_vector(), y = b.to_vector();
  DPT_ASSERT(x.size() == y.size());
  double diff = 0.0, scale = 0.0;
  for (std::size_t i = 0; i < x.size(); ++i) {
    const double u = x[i], v = y[i];
    if (std::isfinite(v)) scale = std::max(scale, std::fabs(v));
    if (u == v || (std::isnan(u) && std::isnan(v))) continue;
    const double d = std::fabs(u - v);
    diff = std::isfinite(d) ? std::max(diff, d) : INFINITY;
  }
  if (std::memcmp(x.data(), y.data(), x.size() * sizeof(float)) != 0) bitwise = false;
  max_abs = std::max(max_abs, diff);
  max_rel = std::max(max_rel, scale > 0.0 ? diff / scale : (diff > 0.0 ? INFINITY : 0.0));
}

namespace {

int corrupt_rank() {
  const char* text = std::getenv("DPT_VERIFY_CORRUPT_RANK");
  return text != nullptr && *text != '\0' ? std::atoi(text) : -1;
}

}  // namespace

bool VerifyReport::within_bound() const {
  for (const ParameterDifference& p : parameters) {
    if (exact && !(p.grad_bitwise && p.param_bitwise)) return false;
    if (!(p.grad_rel <= bound && p.param_rel <= bound)) return false;
  }
  return losses_distributed.size() == losses_one_rank.size();
}

VerifyReport verify_training(TrainConfig config, const Context& ctx, comm::Communicator& comm) {
  // Verification writes nothing and starts from the initialisation.
  config.checkpoint_dir.clear();
  config.checkpoint_every = 0;
  config.resume.clear();
  config.metrics.clear();
  config.timeline.clear();
  config.eval = false;
  if (config.steps == 0) config.steps = 1;
  // Verify compares rank 0's reduced gradients with one rank's, and a sharded optimizer keeps the
  // reduced gradients of its own range only.
  DPT_CHECK(config.zero == 0,
            "train verify compares every reduced gradient on rank 0, which --zero 1 does not keep "
            "(each rank has its own range): verify without --zero (zero_test shows --zero 1 "
            "computes what the unsharded run does)");

  VerifyReport report;
  report.world_size = comm.world_size();
  report.exact = config.exact;
  report.bound = config.exact ? 0.0 : kInexactRelativeBound;
  Trainer distributed(config, ctx, comm);
  if (comm.rank() == corrupt_rank()) distributed.corrupt_gradients_for_testing();
  // Rank 0's world of one: the same config, so the same initialisation and data order, with the
  // whole global batch on this rank.
  // On a GPU the world of one reduces device memory, so it is NCCL's too (over a local host
  // world), as `train` makes it.
  std::unique_ptr<comm::Communicator> alone;
  std::unique_ptr<Trainer> reference;
  if (comm.rank() == 0) {
    alone = comm::make_communicator("local");
    if (ctx.device().type == DeviceType::kCuda) {
      alone = comm::make_device_communicator(std::move(alone), ctx.device().index);
    }
    reference = std::make_unique<Trainer>(config, ctx, *alone);
  }

  const auto& params = distributed.model().parameters();
  report.parameters.resize(params.size());
  for (std::size_t i = 0; i < params.size(); ++i) report.parameters[i].name = params[i]->name;
  for (;;) {
    const std::optional<double> loss = distributed.step();
    if (!loss) break;
    ++report.steps;
    if (!reference) continue;
    const std::optional<double> reference_loss = reference->step();
    DPT_ASSERT(reference_loss.has_value());
    report.losses_distributed.push_back(*loss);
    report.losses_one_rank.push_back(*reference_loss);
    const auto& mine = reference->model().parameters();
    for (std::size_t i = 0; i < params.size(); ++i) {
      ParameterDifference& d = report.parameters[i];
      fold_difference(params[i]->grad, mine[i]->grad, d.grad_abs, d.grad_rel, d.grad_bitwise);
      fold_difference(params[i]->value, mine[i]->value, d.param_abs, d.param_rel,
                      d.param_bitwise);
    }
  }
  return report;
}

std::string format_report(const VerifyReport& r) {
  std::ostringstream out;
  out << "verify: " << r.steps << " step(s) on " << r.world_size << " rank(s) against one rank, "
      << (r.exact ? "exact mode (bound: bitwise identical)"
                  : "default mode (bound: relative difference <= 1e-4; --exact for bitwise)")
      << '\n';
  for (std::size_t s = 0; s < r.losses_distributed.size(); ++s) {
    out << "  step " << s + 1 << "  loss " << std::setprecision(17) << r.losses_distributed[s]
        << (r.losses_distributed[s] == r.losses_one_rank[s] ? "  (identical)" : "  one rank: ");
    if (r.losses_distributed[s] != r.losses_one_rank[s]) out << r.losses_one_rank[s];
    out << '\n';
  }
  std::size_t width = 9;
  for (const ParameterDifference& p : r.parameters) width = std::max(width, p.name.size());
  out << "  " << std::left << std::setw(static_cast<int>(width)) << "parameter"
      << "  gradient (max abs / rel)          parameter (max abs / rel)\n";
  auto cell = [](bool bitwise, double abs, double rel) {
    std::ostringstream c;
    if (bitwise) {
      c << "bitwise identical";
    } else {
      c << std::scientific << std::setprecision(2) << abs << " / " << rel;
    }
    return c.str();
  };
  for (const ParameterDifference& p : r.parameters) {
    out << "  " << std::left << std::setw(static_cast<int>(width)) << p.name << "  "
        << std::setw(32) << cell(p.grad_bitwise, p.grad_abs, p.grad_rel) << "  "
        << cell(p.param_bitwise, p.param_abs, p.param_rel) << '\n';
  }
  out << (r.within_bound() ? "PASS: within the bound of the mode"
                           : "FAIL: differences beyond the bound of the mode");
  return out.str();
}

}  // namespace dpt::nn
