// SPDX-License-Identifier: MIT
// Context creation: resolves the thread count and hands it to OpenMP (and through it oneDNN).
#include "runtime/context.h"

#include <omp.h>
#include <sched.h>

#include "runtime/check.h"

namespace dpt {

int available_cores() {
  cpu_set_t set;
  CPU_ZERO(&set);
  if (sched_getaffinity(0, sizeof set, &set) == 0) {
    const int count = CPU_COUNT(&set);
    if (count > 0) return count;
  }
  return 1;
}

Context Context::create(Device device, int threads) {
  DPT_CHECK(threads >= 0, "context: threads must be >= 0 (0 = all cores), got ", threads);
  if (threads == 0) threads = available_cores();
  // OpenMP loops and oneDNN's OpenMP runtime both read this: one knob for all CPU compute.
  omp_set_num_threads(threads);
  // One host thread drives one GPU: every later CUDA call of this thread goes to it.
  activate_device(device);
  return Context(device, threads);
}

void Context::set_allow_tf32(bool on) {
  DPT_CHECK(!on || device_.type == DeviceType::kCuda,
            "context: TF32 is a GPU tensor-core format; a context on ", to_string(device_),
            " computes fp32 in fp32 and cannot allow it");
  allow_tf32_ = on;
}

}  // namespace dpt
