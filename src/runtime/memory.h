// SPDX-License-Identifier: MIT
// How much memory this process may still allocate, and checks that turn a size that cannot fit
// into a clear error before anything is allocated (docs/reliability.md, "Memory").
#pragma once

#include <cstdint>
#include <optional>
#include <string>

#include "runtime/error.h"

namespace dpt {

// An allocation that failed, or a size that cannot fit: a dpt::Error that `main` recognises, to end
// the job at once naming the rank (Note [Out of memory ends the process at once], apps/train).
class OutOfMemoryError : public Error {
 public:
  using Error::Error;
};
// Throws OutOfMemoryError with the text of DPT_FAIL (message, file:line, rank).
[[noreturn]] void throw_out_of_memory(const std::string& message, const char* file, int line);
#define DPT_OUT_OF_MEMORY(...) \
  ::dpt::throw_out_of_memory(::dpt::detail::str(__VA_ARGS__), __FILE__, __LINE__)

struct MemoryLimits {
  std::uint64_t physical_bytes = 0;  // RAM of the machine (sysconf), or the cgroup's limit if lower
  // The soft RLIMIT_AS (`ulimit -v`), when one is set, and the address space mapped now.
  std::optional<std::uint64_t> address_space_limit;
  std::uint64_t address_space_used = 0;
  // What an allocation may still take: physical memory, and under an address-space limit what
  // remains of it.
  std::uint64_t available() const;
  // "physical memory 125.4 GiB" or "... address-space limit (ulimit -v) 1.0 GiB, 812.3 MiB in use".
  std::string describe() const;
};
MemoryLimits memory_limits();

// "1.50 GiB (1610612736 bytes)".
std::string format_bytes(std::uint64_t bytes);

// Throws OutOfMemoryError "<what> needs <bytes>, more than this process can allocate
// (<limits>)" when `bytes` exceeds memory_limits().available(). `what` names the allocation
// ("file f.h5, dataset /train/images [N,C,H,W] uint8").
void check_fits_in_memory(std::uint64_t bytes, const std::string& what);

// Address space still free under RLIMIT_AS right now: it can be reserved (PROT_NONE, nothing
// committed) and released. For allocations libraries make where they cannot report a failure
// (OpenBLAS retries its buffer forever): false when `bytes` cannot be reserved.
bool can_reserve_address_space(std::uint64_t bytes) noexcept;

}  // namespace dpt
