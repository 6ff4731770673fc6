// SPDX-License-Identifier: MIT
// make_communicator(), make_device_communicator() and abort_all(): the one place that names the
// implementations and the only "#if DPT_HAVE_MPI" / "#if DPT_HAVE_CUDA" of comm/ (docs/STYLE.md:
// backends are chosen by files, not #if).
#include "comm/communicator.h"

#include <cstdio>
#include <cstdlib>
#include <utility>

#include "comm/local_communicator.h"
#include "runtime/check.h"
#include "runtime/config.h"
#if DPT_HAVE_MPI
#include "comm/mpi/mpi_backend.h"
#endif
#if DPT_HAVE_CUDA
#include "comm/nccl/nccl_backend.h"
#endif

namespace dpt::comm {
namespace {

bool mpi_running() noexcept {
#if DPT_HAVE_MPI
  return mpi::is_running();
#else
  return false;
#endif
}

std::unique_ptr<Communicator> make_mpi() {
#if DPT_HAVE_MPI
  DPT_CHECK(mpi::is_running(),
            "make_communicator(\"mpi\"): MPI is not initialised; create a "
            "dpt::comm::Environment in main and start the program with mpirun");
  return mpi::make_communicator();
#else
  DPT_FAIL("make_communicator(\"mpi\"): dptrain was built with DPT_MPI=OFF");
#endif
}

}  // namespace

std::unique_ptr<Communicator> make_communicator(const std::string& kind) {
  DPT_CHECK(kind == "auto" || kind == "local" || kind == "mpi", "make_communicator: unknown kind '",
            kind, "' (expected auto, local or mpi)");
  const bool use_mpi = kind == "mpi" || (kind == "auto" && mpi_running());
  std::unique_ptr<Communicator> comm =
      use_mpi ? make_mpi() : std::unique_ptr<Communicator>(std::make_unique<LocalCommunicator>());
  // Errors and log lines name the rank from now on; a world of one is "not distributed".
  set_process_rank(use_mpi ? comm->rank() : -1);
  return comm;
}

std::unique_ptr<Communicator> make_device_communicator(std::unique_ptr<Communicator> host,
                                                       int cuda_device) {
  DPT_CHECK(host != nullptr, "make_device_communicator: the host communicator is null");
#if DPT_HAVE_CUDA
  // Uniform for every world size: NCCL also runs a world of one.
  return nccl::make_communicator(std::move(host), cuda_device);
#else
  DPT_FAIL("make_device_communicator(device ", cuda_device,
           "): dptrain was built without CUDA (DPT_CUDA=OFF or CUDA/NCCL not found)");
#endif
}

namespace {
[[noreturn]] void no_uneven_collectives(const Communicator& comm, const char* op) {
  DPT_FAIL_KIND(ErrorKind::kComm, op, ": the ", comm.backend(),
                " communicator has no collectives over uneven blocks (a sharded optimizer, "
                "--zero 1, runs on the MPI and local communicators)");
}
}  // namespace

std::vector<std::int64_t> uneven_block_starts(const char* op, const std::vector<std::int64_t>& counts,
                                              int world_size) {
  DPT_CHECK(static_cast<int>(counts.size()) == world_size, op, ": ", counts.size(),
            " block counts for a world of ", world_size);
  std::vector<std::int64_t> starts(counts.size() + 1, 0);
  for (std::size_t r = 0; r < counts.size(); ++r) {
    DPT_CHECK(counts[r] >= 0, op, ": block ", r, " has a negative count ", counts[r]);
    starts[r + 1] = starts[r] + counts[r];
  }
  return starts;
}

std::unique_ptr<Work> Communicator::all_reduce_bf16_async(BFloat16*, std::int64_t) {
  DPT_FAIL_KIND(ErrorKind::kComm, "all_reduce_bf16: the ", backend(),
                " communicator has no bfloat16 all-reduce (use --grad-reduce fp32)");
}

std::unique_ptr<Work> Communicator::reduce_scatter_async(float*, std::vector<std::int64_t>,
                                                         ReduceOp) {
  no_uneven_collectives(*this, "reduce_scatter_async");
}
std::unique_ptr<Work> Communicator::all_gather_async(float*, std::vector<std::int64_t>) {
  no_uneven_collectives(*this, "all_gather_async");
}
void Communicator::gather(const float*, float*, const std::vector<std::int64_t>&, int) {
  no_uneven_collectives(*this, "gather");
}
void Communicator::scatter(const float*, float*, const std::vector<std::int64_t>&, int) {
  no_uneven_collectives(*this, "scatter");
}

void abort_all(int code) {
  // _Exit and MPI_Abort skip stdio's exit-time flush: flush so the fatal message logged just
  // before is not lost.
  std::fflush(nullptr);
#if DPT_HAVE_MPI
  if (mpi::is_running()) mpi::abort_job(code);
#endif
  std::_Exit(code);
}

}  // namespace dpt::comm
