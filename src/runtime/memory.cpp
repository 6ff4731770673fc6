// SPDX-License-Identifier: MIT
// Memory limits from sysconf, the cgroup and RLIMIT_AS; checks against them.
#include "runtime/memory.h"

#include <sys/mman.h>
#include <sys/resource.h>
#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <fstream>
#include <sstream>

#include "runtime/check.h"

namespace dpt {
namespace {

// cgroup v2 memory.max of this process's group ("max": none). A container's limit is what the
// kernel enforces, whatever sysconf says the machine has.
std::optional<std::uint64_t> cgroup_limit() {
  std::ifstream cgroup("/proc/self/cgroup");
  std::string line, path;
  while (std::getline(cgroup, line)) {
    if (line.rfind("0::", 0) == 0) path = line.substr(3);
  }
  if (path.empty()) return std::nullopt;
  std::ifstream max("/sys/fs/cgroup" + path + "/memory.max");
  std::string text;
  if (!(max >> text) || text == "max") return std::nullopt;
  try {
    return static_cast<std::uint64_t>(std::stoull(text));
  } catch (...) {
    return std::nullopt;
  }
}

std::uint64_t mapped_bytes() {
  // statm's first field: the size of every mapping, in pages (what RLIMIT_AS limits).
  std::ifstream statm("/proc/self/statm");
  std::uint64_t pages = 0;
  statm >> pages;
  return pages * static_cast<std::uint64_t>(sysconf(_SC_PAGESIZE));
}

}  // namespace

std::uint64_t MemoryLimits::available() const {
  std::uint64_t bytes = physical_bytes;
  if (address_space_limit) {
    const std::uint64_t left =
        *address_space_limit > address_space_used ? *address_space_limit - address_space_used : 0;
    bytes = std::min(bytes, left);
  }
  return bytes;
}

std::string MemoryLimits::describe() const {
  std::ostringstream out;
  out << "physical memory " << format_bytes(physical_bytes);
  if (address_space_limit) {
    out << ", address-space limit (ulimit -v) " << format_bytes(*address_space_limit) << " with "
        << format_bytes(address_space_used) << " in use";
  }
  return out.str();
}

MemoryLimits memory_limits() {
  MemoryLimits limits;
  const long pages = sysconf(_SC_PHYS_PAGES);
  const long page = sysconf(_SC_PAGESIZE);
  limits.physical_bytes = pages > 0 && page > 0 ? static_cast<std::uint64_t>(pages) * page : 0;
  if (const auto cgroup = cgroup_limit()) {
    limits.physical_bytes = std::min(limits.physical_bytes, *cgroup);
  }
  rlimit as{};
  if (getrlimit(RLIMIT_AS, &as) == 0 && as.rlim_cur != RLIM_INFINITY) {
    limits.address_space_limit = static_cast<std::uint64_t>(as.rlim_cur);
    limits.address_space_used = mapped_bytes();
  }
  return limits;
}

std::string format_bytes(std::uint64_t bytes) {
  const char* units[] = {"bytes", "KiB", "MiB", "GiB", "TiB", "PiB", "EiB"};
  double value = static_cast<double>(bytes);
  int unit = 0;
  while (value >= 1024.0 && unit < 6) {
    value /= 1024.0;
    ++unit;
  }
  char text[64];
  if (unit == 0) {
    std::snprintf(text, sizeof text, "%llu bytes", static_cast<unsigned long long>(bytes));
  } else {
    std::snprintf(text, sizeof text, "%.2f %s (%llu bytes)", value, units[unit],
                  static_cast<unsigned long long>(bytes));
  }
  return text;
}

void throw_out_of_memory(const std::string& message, const char* file, int line) {
  throw OutOfMemoryError(ErrorKind::kInternal,
                         detail::format_error(ErrorKind::kInternal, nullptr,
                                              "out of memory: " + message, file, line),
                         "out of memory: " + message);
}

void check_fits_in_memory(std::uint64_t bytes, const std::string& what) {
  const MemoryLimits limits = memory_limits();
  if (bytes > limits.available()) {
    DPT_OUT_OF_MEMORY(what, " needs ", format_bytes(bytes),
                      ", more than this process can allocate (", limits.describe(), ")");
  }
}

bool can_reserve_address_space(std::uint64_t bytes) noexcept {
  if (bytes == 0) return true;
  void* p = mmap(nullptr, bytes, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
  if (p == MAP_FAILED) return false;
  munmap(p, bytes);
  return true;
}

}  // namespace dpt
