// SPDX-License-Identifier: MIT
// `train`: trains a model on a dataset, in one process or on every rank of an MPI job; `train
// eval`, `train export` and `train sample` work on checkpoints, `train verify` compares N ranks
// with one. See `train --help` and README.md.
#include <algorithm>
#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <exception>
#include <memory>
#include <new>
#include <string>

#include "comm/communicator.h"
#include "comm/gpu_placement.h"
#include "commands.h"
#include "nn/train/config.h"
#include "nn/train/trainer.h"
#include "nn/train/verify.h"
#include "runtime/context.h"
#include "runtime/fault.h"
#include "runtime/logging.h"
#include "runtime/memory.h"
#include "runtime/stop_signals.h"

namespace {

// `train verify`: the report on rank 0, the verdict (0 within the mode's bound, 2 beyond it) on
// every rank.
int verify(const dpt::nn::TrainConfig& config, const dpt::Context& ctx,
           dpt::comm::Communicator& comm) {
  const dpt::nn::VerifyReport report = dpt::nn::verify_training(config, ctx, comm);
  std::int32_t status = report.within_bound() ? 0 : 2;
  if (comm.rank() == 0) std::printf("%s\n", dpt::nn::format_report(report).c_str());
  comm.broadcast(&status, sizeof status, 0);
  return status;
}

int train(dpt::nn::TrainConfig config, std::unique_ptr<dpt::comm::Communicator>& world,
          bool verify_only) {
  world->set_collective_timeout(config.collective_timeout);
  world->set_check_collectives(config.check_collectives);
  if (config.threads == 0) {
    // The node's cores are shared by the ranks on it.
    config.threads = std::max(1, dpt::available_cores() / world->local_size());
  }
  // The CPU, GPU local_rank % count ("cuda", "auto" with a GPU) or the GPU named by "cuda:N".
  const dpt::Device device = dpt::device_for_local_rank(config.device, world->local_rank());
  // One GPU per rank, decided by the GPUs' identities (two ranks on one GPU cannot run NCCL).
  dpt::comm::check_one_rank_per_gpu(*world, device);
  dpt::Context ctx = dpt::Context::create(device, config.threads);
  // Exact mode: the kernels give the same bits for any thread count (docs/design.md, Exact mode).
  ctx.set_thread_invariant(config.exact);
  // --tf32: TF32 tensor cores for fp32 GEMMs and convolutions, which only a GPU has.
  DPT_CHECK(!config.tf32 || device.type == dpt::DeviceType::kCuda,
            "config: 'tf32' lets GPU GEMMs and convolutions round fp32 inputs to TF32; this rank "
            "runs on ",
            dpt::to_string(device), ", which has no TF32: drop --tf32 or run on a GPU");
  ctx.set_allow_tf32(config.tf32);
  if (device.type == dpt::DeviceType::kCuda) {
    // Gradients live on the GPU: NCCL reduces them, the MPI world stays for host collectives.
    world = dpt::comm::make_device_communicator(std::move(world), device.index);
  }
  dpt::comm::Communicator& comm = *world;
  if (verify_only) return verify(config, ctx, comm);
  dpt::nn::Trainer trainer(config, ctx, comm);
  const dpt::nn::TrainResult result = trainer.run();
  // Stopped by SIGTERM/SIGUSR1 after a checkpoint: the status a shell reports for that signal,
  // so that job scripts (and `until train --resume auto ...`) see that training is not finished.
  const int status = result.stop_signal != 0 ? 128 + result.stop_signal : 0;
  if (comm.rank() != 0) return status;
  if (result.steps == result.first_step) {
    std::printf("nothing to train: resumed at step %lld, the last step\n",
                static_cast<long long>(result.steps));
  } else if (result.last_eval) {
    std::printf("test accuracy %.4f  test loss %.4f  (%lld steps, %.1f samples/s)\n",
                result.last_eval->accuracy, result.last_eval->loss,
                static_cast<long long>(result.steps), result.samples_per_sec);
  } else {
    std::printf("final training loss %.4f  (%lld steps, %.1f samples/s)\n", result.last_loss,
                static_cast<long long>(result.steps), result.samples_per_sec);
  }
  return status;
}

// The rank the launcher gave this process, for errors raised before the communicator exists
// (-1 when none is known).
int launcher_rank() {
  for (const char* name : {"OMPI_COMM_WORLD_RANK", "PMIX_RANK", "PMI_RANK", "SLURM_PROCID"}) {
    if (const char* value = std::getenv(name)) {
      char* end = nullptr;
      const long rank = std::strtol(value, &end, 10);
      if (end != value && *end == '\0' && rank >= 0 && rank < (1L << 30)) return static_cast<int>(rank);
    }
  }
  return -1;
}

// Note [Out of memory ends the process at once]
// An allocation that failed may have failed inside a library too, and some cannot recover: an
// OpenBLAS thread whose buffer cannot be allocated retries forever, and OpenBLAS's exit handler
// joins it, so a normal exit hangs (measured under `ulimit -v`). So after an out-of-memory error
// (ours or std::bad_alloc) the process logs one line naming the rank and ends through abort_all:
// MPI_Abort under MPI (every rank ends), std::_Exit otherwise, skipping library exit handlers.
[[noreturn]] void out_of_memory(std::string what) {
  const int rank = dpt::process_rank() >= 0 ? dpt::process_rank() : std::max(0, launcher_rank());
  const std::string prefix = "out of memory: ";
  if (what.rfind(prefix, 0) == 0) what.erase(0, prefix.size());
  dpt::log(dpt::LogLevel::kError, "train: out of memory on rank ", rank, ": ", what);
  dpt::comm::abort_all(1);
}

}  // namespace

int main(int argc, char** argv) {
  // MPI (when launched by mpirun or srun) lives exactly as long as this object.
  dpt::comm::Environment environment(&argc, &argv);
  // SIGTERM and SIGUSR1 stop training after the current step, with a checkpoint.
  const dpt::StopSignals stop_signals;
  // A file-size limit must fail the write (EFBIG, reported with the path), not kill the process.
  std::signal(SIGXFSZ, SIG_IGN);
  int world_size = 1;
  // Until the communicator says, errors name the rank the launcher gave.
  if (environment.mpi_active()) dpt::set_process_rank(launcher_rank());
  std::unique_ptr<dpt::comm::Communicator> comm;
  try {
    dpt::fault::load_from_environment();  // a malformed DPT_FAULT fails before any work
    comm = dpt::comm::make_communicator("auto");
    world_size = comm->world_size();
    const char* command = argc > 1 ? argv[1] : "";
    if (std::strcmp(command, "eval") == 0) return dpt::apps::run_eval(argc - 1, argv + 1, *comm);
    if (std::strcmp(command, "export") == 0) return dpt::apps::run_export(argc - 1, argv + 1, *comm);
    if (std::strcmp(command, "sample") == 0)
      return dpt::apps::run_sample(argc - 1, argv + 1, *comm);
    // `train verify` takes the training flags and config keys.
    const bool verify_only = std::strcmp(command, "verify") == 0;
    const auto config =
        verify_only ? dpt::nn::parse_train_args(argc - 1, argv + 1, comm->rank() == 0,
                                                "train verify")
                    : dpt::nn::parse_train_args(argc, argv, comm->rank() == 0);
    if (!config) return 0;  // --help or --version
    return train(*config, comm, verify_only);
  } catch (const std::bad_alloc& e) {
    out_of_memory(std::string("a C++ allocation failed (") + e.what() + ")");
  } catch (const dpt::OutOfMemoryError& e) {
    out_of_memory(e.what());
  } catch (const std::exception& e) {
    // What this rank's communication did last: where the ranks were when it failed.
    const std::string record = comm ? comm->flight_record(8) : std::string();
    dpt::log(dpt::LogLevel::kError, "train: ", e.what(),
             record.empty() ? "" : "\n  this rank's last collectives:", record);
    // Other ranks may be blocked in a collective waiting for this one: end the whole job.
    if (world_size > 1 || environment.mpi_active()) dpt::comm::abort_all(1);
    // Under an address-space limit an OpenBLAS worker may be retrying its buffer forever (Note
    // [Out of memory ends the process at once]): a normal exit would join it and hang.
    if (dpt::memory_limits().address_space_limit) dpt::comm::abort_all(1);
    return 1;
  }
}
