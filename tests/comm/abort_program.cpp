// SPDX-License-Identifier: MIT
// Driven by abort_test.sh: rank 1 fails the way main() handles a fatal error (log, abort_all)
// while rank 0 waits in a barrier that rank 1 never joins. Only abort_all can end this job.
#include <iostream>

#include "comm/communicator.h"
#include "runtime/check.h"
#include "runtime/logging.h"

int main(int argc, char** argv) {
  dpt::comm::Environment environment(&argc, &argv);
  std::unique_ptr<dpt::comm::Communicator> comm = dpt::comm::make_communicator();
  try {
    DPT_CHECK_KIND(dpt::ErrorKind::kComm, comm->rank() != 1, "rank 1 of ", comm->world_size(),
                   " fails on purpose");
    comm->barrier();
    std::cout << "rank " << comm->rank() << " passed a barrier rank 1 never entered" << std::endl;
    return 0;
  } catch (const dpt::Error& e) {
    dpt::log(dpt::LogLevel::kError, "fatal: ", e.what());
    dpt::comm::abort_all(3);
  }
}
