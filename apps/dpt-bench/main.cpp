// SPDX-License-Identifier: MIT
// `dpt-bench allreduce`: the gradient all-reduce of dptrain's Communicator (queued on the
// communication thread, as training uses it) beside the backend's own call (MPI_Allreduce), for
// message sizes from 4 KB to 256 MB, with the bandwidth formulas of nccl-tests:
//   algbw = bytes / time,  busbw = algbw * 2 (n - 1) / n   (n ranks)
// Each time is the slowest rank's mean over the iterations. With --device cuda the buffer is GPU
// memory, the Communicator is NCCL's (event hand-over from the compute stream, polled wait) and the
// baseline is a bare ncclAllReduce. Run under mpirun:
//   launch/dptrun -n 2 build/bin/dpt-bench allreduce [--device cuda]
// `dpt-bench exact-precision` (one rank): exact_precision.h.
#include <CLI/CLI.hpp>
#include <algorithm>
#include <cstdio>
#include <exception>
#include <memory>
#include <string>

#include "comm/communicator.h"
#include "exact_precision.h"
#include "comm/gpu_placement.h"
#include "runtime/context.h"
#include "runtime/device.h"
#include "runtime/logging.h"
#include "runtime/tensor.h"
#include "runtime/timeline.h"

namespace {

struct Options {
  std::int64_t min_bytes = 4 << 10;
  std::int64_t max_bytes = 256 << 20;
  int factor = 4;
  double seconds_per_size = 0.5;  // iterations per size: about this long, 3 to 200
  std::string device = "cpu";     // where the buffer lives: cpu (MPI) or cuda / auto (NCCL)
};

// Slowest rank's value.
double max_over_ranks(dpt::comm::Communicator& comm, double value) {
  comm.all_reduce(&value, 1, dpt::comm::ReduceOp::kMax);
  return value;
}

int run_allreduce(const Options& o, dpt::comm::Communicator& comm, dpt::Device device) {
  const int n = comm.world_size();
  const double bus_factor = n > 1 ? 2.0 * (n - 1) / n : 1.0;
  if (comm.rank() == 0) {
    std::printf(
        "# dpt-bench allreduce: %d rank(s), %d node(s), backend %s, %s memory, float32 sum in "
        "place\n",
        n, comm.node_count(), comm.backend().c_str(), dpt::to_string(device).c_str());
    std::printf("# %12s %12s %6s | %11s %9s %9s | %11s %9s %9s | %7s\n", "bytes", "floats", "iters",
                "comm us", "algbw", "busbw", "native us", "algbw", "busbw", "comm/native");
    std::printf("# %12s %12s %6s | %11s %9s %9s | %11s %9s %9s | %7s\n", "", "", "", "", "GB/s",
                "GB/s", "", "GB/s", "GB/s", "busbw");
  }
  dpt::Tensor buffer_tensor = dpt::Tensor::full({o.max_bytes / 4}, 1.0f, device);
  float* const buffer = buffer_tensor.data<float>();
  for (std::int64_t bytes = o.min_bytes; bytes <= o.max_bytes; bytes *= o.factor) {
    const std::int64_t count = bytes / 4;
    // Size the iteration count from one warm-up call of each kind (the same on every rank).
    const double probe = max_over_ranks(comm, [&] {
      const double start = dpt::steady_now_seconds();
      comm.all_reduce_async(buffer, count, dpt::comm::ReduceOp::kSum)->wait();
      comm.native_all_reduce_seconds(buffer, count);
      return dpt::steady_now_seconds() - start;
    }());
    const int iters =
        std::clamp(static_cast<int>(o.seconds_per_size / std::max(probe, 1e-9)), 3, 200);

    comm.barrier();
    const double start = dpt::steady_now_seconds();
    for (int i = 0; i < iters; ++i) {
      comm.all_reduce_async(buffer, count, dpt::comm::ReduceOp::kSum)->wait();
    }
    const double ours = max_over_ranks(comm, (dpt::steady_now_seconds() - start) / iters);
    comm.barrier();
    double native_sum = 0.0;
    for (int i = 0; i < iters; ++i)
      native_sum += comm.native_all_reduce_seconds(buffer, count);
    const double native = max_over_ranks(comm, native_sum / iters);
    // Sums of ones grow by n each call; reset so the values stay finite for any iteration count.
    dpt::Tensor::view_of(buffer_tensor, 0, {count}).fill(1.0f);

    if (comm.rank() == 0) {
      const double alg = static_cast<double>(bytes) / ours / 1e9;
      const double alg_native = static_cast<double>(bytes) / native / 1e9;
      std::printf("  %12lld %12lld %6d | %11.1f %9.3f %9.3f | %11.1f %9.3f %9.3f | %6.1f%%\n",
                  static_cast<long long>(bytes), static_cast<long long>(count), iters, ours * 1e6,
                  alg, alg * bus_factor, native * 1e6, alg_native, alg_native * bus_factor,
                  100.0 * native / ours);
      std::fflush(stdout);
    }
  }
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  dpt::comm::Environment environment(&argc, &argv);
  int world_size = 1;
  try {
    auto comm = dpt::comm::make_communicator("auto");
    world_size = comm->world_size();
    CLI::App app{"dptrain micro-benchmarks", "dpt-bench"};
    app.require_subcommand(1);
    Options o;
    CLI::App* allreduce = app.add_subcommand(
        "allreduce", "Communicator all-reduce vs the backend's own (MPI_Allreduce), 4 KB-256 MB");
    allreduce->add_option("--min-bytes", o.min_bytes, "Smallest message")->capture_default_str();
    allreduce->add_option("--max-bytes", o.max_bytes, "Largest message")->capture_default_str();
    allreduce->add_option("--factor", o.factor, "Size step (multiplier)")->capture_default_str();
    allreduce->add_option("--seconds", o.seconds_per_size, "Time spent per size")
        ->capture_default_str();
    allreduce
        ->add_option("--device", o.device,
                     "cpu (host buffer, MPI) or cuda / cuda:N / auto (GPU buffer, NCCL)")
        ->capture_default_str();
    dpt::bench::ExactPrecisionOptions precision;
    CLI::App* exact_precision = app.add_subcommand(
        "exact-precision",
        "Errors of the float (shard order, pairwise) and exact sums of micro-shard gradients "
        "against their float64 sum (one rank)");
    exact_precision->add_option("--data", precision.data, "Dataset file (HDF5)")->required();
    exact_precision->add_option("--model", precision.model, "Reference model (cnn, mlp)")
        ->capture_default_str();
    exact_precision
        ->add_option("--checkpoint", precision.checkpoint,
                     "Take the model, seed and step from this checkpoint (instead of --model)")
        ->excludes(exact_precision->get_option("--model"));
    exact_precision->add_option("--batch", precision.batch, "Global batch")->capture_default_str();
    exact_precision
        ->add_option("--shard-size", precision.shard_sizes,
                     "Micro-shard sizes, one measurement each (each must divide --batch)")
        ->capture_default_str();
    exact_precision->add_option("--seed", precision.seed, "Initialisation and data-order seed")
        ->capture_default_str();
    exact_precision->add_option("--threads", precision.threads, "CPU threads")
        ->capture_default_str();
    try {
      app.parse(argc, argv);
    } catch (const CLI::ParseError& e) {
      return comm->rank() == 0 ? app.exit(e) : (e.get_exit_code() == 0 ? 0 : 1);
    }
    if (exact_precision->parsed()) {
      DPT_CHECK(comm->world_size() == 1, "dpt-bench exact-precision runs on one rank, not ",
                comm->world_size(), " (it sums every shard itself)");
      return dpt::bench::run_exact_precision(precision);
    }
    DPT_CHECK(o.min_bytes >= 4 && o.min_bytes <= o.max_bytes && o.factor >= 2,
              "dpt-bench allreduce: need 4 <= --min-bytes <= --max-bytes and --factor >= 2");
    const dpt::Device device = dpt::device_for_local_rank(o.device, comm->local_rank());
    dpt::comm::check_one_rank_per_gpu(*comm, device);
    const dpt::Context ctx = dpt::Context::create(device, 1);  // makes the GPU current
    if (device.type == dpt::DeviceType::kCuda) {
      comm = dpt::comm::make_device_communicator(std::move(comm), device.index);
    }
    return run_allreduce(o, *comm, device);
  } catch (const std::exception& e) {
    dpt::log(dpt::LogLevel::kError, "dpt-bench: ", e.what());
    if (world_size > 1 || environment.mpi_active()) dpt::comm::abort_all(1);
    return 1;
  }
}
