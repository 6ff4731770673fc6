// SPDX-License-Identifier: MIT
#include "nn/train/step_loss.h"

#include <algorithm>
#include <cstring>

#include "runtime/check.h"
#include "runtime/exact_sum.h"

namespace dpt::nn {

void StepLoss::begin_step(std::int64_t rows) {
  DPT_CHECK(rows >= 0, "StepLoss: ", rows, " rows");
  if (rows > capacity_ || !buffer_.defined()) {
    const std::int64_t bytes =
        rows * static_cast<std::int64_t>(sizeof(double) + sizeof(std::int32_t));
    buffer_ = Tensor::empty({std::max<std::int64_t>(bytes, 1)}, DType::kU8, device_);
    capacity_ = rows;
  }
  rows_ = rows;
  groups_.clear();
}

kernels::LossRows StepLoss::micro_batch(std::int64_t first, std::int64_t count) {
  const std::int64_t end = groups_.empty() ? 0 : groups_.back().first + groups_.back().second;
  DPT_CHECK(first == end && count >= 0 && first + count <= rows_, "StepLoss: micro-batch rows [",
            first, ", ", first + count, ") do not follow [0, ", end, ") within ", rows_, " rows");
  groups_.emplace_back(first, count);
  auto* base = static_cast<unsigned char*>(buffer_.raw_data());
  auto* loss = reinterpret_cast<double*>(base);
  auto* hit = reinterpret_cast<std::int32_t*>(base + capacity_ * sizeof(double));
  return kernels::LossRows{loss + first, hit + first};
}

LossTotals StepLoss::read(const Tensor& labels, std::int64_t classes) {
  const std::int64_t rows = groups_.empty() ? 0 : groups_.back().first + groups_.back().second;
  LossTotals totals;
  if (rows == 0) return totals;
  // The step's one device-to-host copy (none on the CPU).
  const Tensor host = device_.type == DeviceType::kCpu ? buffer_ : buffer_.to(Device::cpu());
  const auto* base = static_cast<const unsigned char*>(host.raw_data());
  std::vector<double> loss(static_cast<std::size_t>(rows));
  std::vector<std::int32_t> hit(static_cast<std::size_t>(rows));
  std::memcpy(loss.data(), base, loss.size() * sizeof(double));
  std::memcpy(hit.data(), base + capacity_ * sizeof(double), hit.size() * sizeof(std::int32_t));
  for (std::int64_t i = 0; i < rows; ++i) {
    if (hit[static_cast<std::size_t>(i)] != -1) continue;
    const Tensor label = Tensor::view_of(labels, i, {1}).to(Device::cpu());
    DPT_FAIL("softmax_cross_entropy: label ", label.data<std::int32_t>()[0], " of sample ", i,
             " is outside [0, ", classes, ")");
  }
  for (const auto& [first, count] : groups_) {
    double micro = 0.0;  // as softmax_cross_entropy's loss_sum of this micro-batch
    for (std::int64_t i = first; i < first + count; ++i) micro += loss[static_cast<std::size_t>(i)];
    totals.sum += micro;
  }
  for (std::int64_t i = 0; i < rows; ++i) {
    std::int64_t fixed = 0;
    if (exact::to_fixed_loss(loss[static_cast<std::size_t>(i)], &fixed)) {
      totals.fixed_sum += fixed;
    } else {
      ++totals.unrepresented;
    }
    totals.correct += hit[static_cast<std::size_t>(i)] == 1 ? 1 : 0;
  }
  return totals;
}

}  // namespace dpt::nn
