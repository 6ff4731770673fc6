// SPDX-License-Identifier: MIT
// DeviceTimer on a GPU: each interval is a pair of timed events on the device's compute stream;
// the pairs are kept (and reused from step to step) until take_ms() reads them all at once.
#include "runtime/cuda/device_timer_cuda.h"

#include <vector>

#include "runtime/cuda/cuda_check.h"
#include "runtime/cuda/stream.h"

namespace dpt::cuda {
namespace {

class CudaDeviceTimer final : public DeviceTimer::Impl {
 public:
  explicit CudaDeviceTimer(int device) : device_(device) {}

  void begin() override {
    if (used_ == pairs_.size()) pairs_.push_back({Event::create_timed(), Event::create_timed()});
    pairs_[used_].start.record(compute_stream(device_));
  }

  void end() override { pairs_[used_++].stop.record(compute_stream(device_)); }

  double take_ms() override {
    double ms = 0.0;
    if (used_ > 0) {
      // The stream runs in order: once the last stop has completed, every event before it has.
      pairs_[used_ - 1].stop.synchronize();
      for (std::size_t i = 0; i < used_; ++i) ms += pairs_[i].stop.elapsed_ms_since(pairs_[i].start);
    }
    used_ = 0;
    return ms;
  }

 private:
  struct Pair {
    Event start;
    Event stop;
  };
  int device_;
  std::vector<Pair> pairs_;
  std::size_t used_ = 0;  // pairs recorded since the last take_ms()
};

}  // namespace

std::unique_ptr<DeviceTimer::Impl> make_device_timer(int device) {
  return std::make_unique<CudaDeviceTimer>(device);
}

}  // namespace dpt::cuda
