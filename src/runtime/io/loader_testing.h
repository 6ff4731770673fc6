// SPDX-License-Identifier: MIT
// Test-only seam of the loader: a hook the prefetch thread calls before preparing each batch, so
// tests can make the producer fail and check that next() rethrows. nullptr (the default): no hook.
#pragma once

#include <cstdint>

namespace dpt::io::test_hooks {

using LoaderFaultHook = void (*)(std::int64_t epoch, std::int64_t step);
// Process-wide; set it before constructing the Loader and reset it to nullptr afterwards.
void set_loader_fault_hook(LoaderFaultHook hook) noexcept;

}  // namespace dpt::io::test_hooks
