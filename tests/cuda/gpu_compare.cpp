// SPDX-License-Identifier: MIT
#include "gpu_compare.h"

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <iomanip>
#include <vector>

#include "testing/test_util.h"

namespace dpt::test {
namespace {
const Device kGpu = Device::cuda(0);
}  // namespace

::testing::AssertionResult on_gpu(const Tensor& t) {
  if (!t.defined()) return ::testing::AssertionFailure() << "tensor is undefined";
  if (t.device() != kGpu) {
    return ::testing::AssertionFailure() << "tensor is on " << to_string(t.device())
                                         << ", expected cuda:0";
  }
  return ::testing::AssertionSuccess();
}

// The GPU tensor holds bit for bit the CPU tensor's floats.
::testing::AssertionResult bitwise_equal(const Tensor& gpu, const Tensor& cpu) {
  if (auto r = on_gpu(gpu); !r) return r;
  if (gpu.shape() != cpu.shape()) {
    return ::testing::AssertionFailure() << "shape " << to_string(gpu.shape()) << " vs "
                                         << to_string(cpu.shape());
  }
  const std::vector<float> a = gpu.to_vector(), e = cpu.to_vector();
  std::size_t mismatches = 0, first = 0;
  for (std::size_t i = 0; i < a.size(); ++i) {
    std::uint32_t ua = 0, ue = 0;
    std::memcpy(&ua, &a[i], sizeof ua);
    std::memcpy(&ue, &e[i], sizeof ue);
    if (ua != ue && mismatches++ == 0) first = i;
  }
  if (mismatches == 0) return ::testing::AssertionSuccess();
  return ::testing::AssertionFailure()
         << mismatches << " of " << a.size() << " elements differ; first at " << first
         << ": cuda " << std::setprecision(9) << a[first] << " cpu " << e[first];
}

// Elementwise |gpu - cpu| <= atol + rtol * |cpu|.
::testing::AssertionResult close(const Tensor& gpu, const Tensor& cpu, double rtol, double atol) {
  if (auto r = on_gpu(gpu); !r) return r;
  return all_close(gpu.to(Device::cpu()), cpu, rtol, atol);
}

// |gpu - cpu| <= rtol * max |cpu| for every element: for sums of products (GEMM, convolution),
// whose rounding error scales with the magnitude of the terms, not of the result.
::testing::AssertionResult close_to_max(const Tensor& gpu, const Tensor& cpu, double rtol) {
  double max_abs = 0.0;
  for (const float v : cpu.to_vector()) max_abs = std::max(max_abs, static_cast<double>(std::abs(v)));
  return close(gpu, cpu, 0.0, std::max(rtol * max_abs, 1e-30));
}

}  // namespace dpt::test
