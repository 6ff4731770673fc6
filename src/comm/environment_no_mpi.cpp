// SPDX-License-Identifier: MIT
// Environment when built without MPI (DPT_MPI=OFF): nothing to initialise; forcing MPI is an error.
#include "comm/communicator.h"
#include "runtime/check.h"

namespace dpt::comm {

Environment::Environment(int* /*argc*/, char*** /*argv*/, Mode mode) {
  DPT_CHECK(mode != Mode::kForceMpi,
            "Environment: MPI was requested but dptrain was built with "
            "DPT_MPI=OFF");
}

Environment::~Environment() = default;

}  // namespace dpt::comm
