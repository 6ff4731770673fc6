// SPDX-License-Identifier: MIT
// DPT_MPI_CHECK (throws a kComm dpt::Error with MPI_Error_string's text) and DPT_MPI_CHECK_LOG (for
// destructors: logs and goes on), plus UniqueComm, the RAII owner of an MPI_Comm.
#pragma once

#include <mpi.h>

#include <string>
#include <utility>

#include "runtime/check.h"
#include "runtime/logging.h"

namespace dpt::comm::mpi {

// "MPI error <class>: <MPI_Error_string text>", plus the world rank while dpt::process_rank() is
// not yet set (throw_error appends it once it is).
std::string error_string(int code);
inline bool succeeded(int code) noexcept { return code == MPI_SUCCESS; }

}  // namespace dpt::comm::mpi

// Only meaningful on communicators with MPI_ERRORS_RETURN (docs/STYLE.md decision 2): with the
// default MPI_ERRORS_ARE_FATAL a failing call never returns.
#define DPT_MPI_CHECK(expr)                                                    \
  DPT_CHECK_STATUS(::dpt::ErrorKind::kComm, expr, ::dpt::comm::mpi::succeeded, \
                   ::dpt::comm::mpi::error_string)

#define DPT_MPI_CHECK_LOG(expr)                                                                  \
  do {                                                                                           \
    const int dpt_mpi_status_ = (expr);                                                          \
    if (dpt_mpi_status_ != MPI_SUCCESS) {                                                        \
      ::dpt::log(::dpt::LogLevel::kWarning, #expr,                                               \
                 " failed: ", ::dpt::comm::mpi::error_string(dpt_mpi_status_), " at ", __FILE__, \
                 ':', __LINE__);                                                                 \
    }                                                                                            \
  } while (false)

namespace dpt::comm::mpi {

// Owns a communicator created by MPI_Comm_dup/split; frees it once, never throwing. A communicator
// still alive after MPI_Finalize is leaked with a warning (freeing it then is erroneous).
class UniqueComm {
 public:
  UniqueComm() = default;
  explicit UniqueComm(MPI_Comm comm) noexcept : comm_(comm) {}
  UniqueComm(UniqueComm&& other) noexcept : comm_(std::exchange(other.comm_, MPI_COMM_NULL)) {}
  UniqueComm& operator=(UniqueComm&& other) noexcept {
    if (this != &other) {
      reset();
      comm_ = std::exchange(other.comm_, MPI_COMM_NULL);
    }
    return *this;
  }
  UniqueComm(const UniqueComm&) = delete;
  UniqueComm& operator=(const UniqueComm&) = delete;
  ~UniqueComm() { reset(); }

  MPI_Comm get() const noexcept { return comm_; }

 private:
  void reset() noexcept {
    if (comm_ == MPI_COMM_NULL) return;
    int finalized = 0;
    MPI_Finalized(&finalized);
    if (finalized) {
      log(LogLevel::kWarning, "an MPI communicator outlived MPI_Finalize and was leaked");
    } else {
      DPT_MPI_CHECK_LOG(MPI_Comm_free(&comm_));
    }
    comm_ = MPI_COMM_NULL;
  }

  MPI_Comm comm_ = MPI_COMM_NULL;
};

}  // namespace dpt::comm::mpi
