// SPDX-License-Identifier: MIT
// What communicator.cpp needs from the NCCL backend, without <nccl.h> or CUDA headers: so that
// NCCL headers stay in comm/nccl/ and the factory compiles the same way in every build.
#pragma once

#include <memory>

#include "comm/communicator.h"

namespace dpt::comm::nccl {

// A new NcclCommunicator on `cuda_device` over the ranks of `host` (which it keeps for host
// buffers and uses to broadcast the ncclUniqueId). Collective: every rank of `host` calls it.
// The timeout is host->collective_timeout() (`train --collective-timeout`; 0: none).
std::unique_ptr<Communicator> make_communicator(std::unique_ptr<Communicator> host,
                                                int cuda_device);

}  // namespace dpt::comm::nccl
