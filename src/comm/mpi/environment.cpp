// SPDX-License-Identifier: MIT
// Environment with MPI built in: MPI_Init_thread when launched by mpirun/srun (or forced), errors
// returned rather than fatal, MPI_Finalize when main is done.
#include <mpi.h>

#include <cstdlib>

#include "comm/communicator.h"
#include "comm/mpi/mpi_check.h"

namespace dpt::comm {
namespace {

// Variables the common launchers set in every rank's environment: Open MPI's mpirun, PMI (MPICH
// Hydra, Slurm's srun --mpi=pmi2), PMIx (Open MPI 5, srun --mpi=pmix), Intel MPI / MPICH.
bool launched_by_mpi() {
  for (const char* name : {"OMPI_COMM_WORLD_SIZE", "PMI_SIZE", "PMIX_RANK", "MPI_LOCALNRANKS"}) {
    if (std::getenv(name) != nullptr) return true;
  }
  return false;
}

}  // namespace

Environment::Environment(int* argc, char*** argv, Mode mode) {
  if (mode == Mode::kNoMpi || (mode == Mode::kAuto && !launched_by_mpi())) return;
  int initialized = 0;
  DPT_MPI_CHECK(MPI_Initialized(&initialized));
  DPT_CHECK(initialized == 0,
            "Environment: MPI is already initialised; create exactly one "
            "Environment, in main");
  // MpiCommunicator calls MPI from its own thread only (SERIALIZED is enough for that), but
  // abort_all() may call MPI_Abort from another thread while that one is inside a collective,
  // which only MPI_THREAD_MULTIPLE makes legal. So ask for MULTIPLE and accept SERIALIZED.
  int provided = MPI_THREAD_SINGLE;
  DPT_MPI_CHECK(MPI_Init_thread(argc, argv, MPI_THREAD_MULTIPLE, &provided));
  if (provided < MPI_THREAD_SERIALIZED) {
    MPI_Finalize();
    DPT_CHECK_KIND(ErrorKind::kComm, provided >= MPI_THREAD_SERIALIZED,
                   "Environment: the MPI library provides thread level ", provided,
                   ", dptrain needs MPI_THREAD_SERIALIZED (", MPI_THREAD_SERIALIZED, ") or better");
  }
  // MPI_ERRORS_ARE_FATAL is the default: without this no DPT_MPI_CHECK would ever see an error.
  DPT_MPI_CHECK(MPI_Comm_set_errhandler(MPI_COMM_WORLD, MPI_ERRORS_RETURN));
  mpi_active_ = true;
}

Environment::~Environment() {
  if (!mpi_active_) return;
  int finalized = 0;
  MPI_Finalized(&finalized);
  if (finalized == 0) DPT_MPI_CHECK_LOG(MPI_Finalize());
}

}  // namespace dpt::comm
