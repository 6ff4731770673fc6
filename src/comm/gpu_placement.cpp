// SPDX-License-Identifier: MIT
#include "comm/gpu_placement.h"

#include <unistd.h>

#include <sstream>

#include "runtime/check.h"

namespace dpt::comm {

GpuPlacement local_gpu_placement(const Device& device) {
  char host[256] = {};
  gethostname(host, sizeof host - 1);
  return GpuPlacement{host, gpu_identity(device), to_string(device)};
}

std::vector<GpuPlacement> gather_gpu_placements(Communicator& comm, const Device& device) {
  const GpuPlacement mine = local_gpu_placement(device);
  // Host names and identities hold no newline: one field per line.
  std::vector<GpuPlacement> all;
  for (const std::string& text : comm.all_gather(mine.host + '\n' + mine.gpu + '\n' + mine.device)) {
    std::istringstream in(text);
    GpuPlacement p;
    std::getline(in, p.host);
    std::getline(in, p.gpu);
    std::getline(in, p.device);
    all.push_back(std::move(p));
  }
  return all;
}

std::vector<GpuPlacement> check_one_rank_per_gpu(Communicator& comm, const Device& device) {
  std::vector<GpuPlacement> all = gather_gpu_placements(comm, device);
  const std::string error = shared_gpu_error(all);
  DPT_CHECK(error.empty(), error);
  return all;
}

}  // namespace dpt::comm
