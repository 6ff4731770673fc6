// SPDX-License-Identifier: MIT
#pragma once

#include <memory>

#include "runtime/batch_uploader.h"

namespace dpt::cuda {
std::unique_ptr<BatchUploader::Impl> make_batch_uploader(int device);
}  // namespace dpt::cuda
