// SPDX-License-Identifier: MIT
// The subcommands of `train` besides training itself.
#pragma once

#include "comm/communicator.h"

namespace dpt::apps {

// `train eval --checkpoint PATH --data FILE.h5 [--split test] [--samples N] [--threads N]
//  [--logits OUT.h5]`: loss and accuracy of a checkpoint's (or exported model's) model.
int run_eval(int argc, const char* const* argv, comm::Communicator& comm);

// `train export --checkpoint PATH --out MODEL.h5`: the model alone, for inference and PyTorch.
int run_export(int argc, const char* const* argv, comm::Communicator& comm);

}  // namespace dpt::apps
