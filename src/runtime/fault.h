// SPDX-License-Identifier: MIT
// Fault injection for tests: DPT_FAULT=<action>[=<arg>]@<point>[:rank=R][:step=S][,...] makes a
// rank fail at a named point of a run, so that every failure mode of a distributed job can be
// tested through the shipped binaries. Compiled in always (a test cannot test what release
// binaries lack); inert unless the variable is set: at() is then one relaxed atomic load.
//
// Actions carried out by at() itself: sigkill (the process dies), sigterm (as if a scheduler
// had sent this rank alone SIGTERM), stop (SIGSTOP: a rank that
// stops answering), exit[=code] (std::_Exit, 1 by default: a crash without clean-up), throw (a
// dpt::Error, as if the code had failed there), sleep[=seconds] (forever by default: a rank that
// hangs outside MPI). Actions at() returns for the caller to carry out, where that point supports
// them: nan and inf (poison this rank's values), flip (one bit of a parameter), skip (skip this
// step on this rank), leave (leave training early, as if it had ended). Each injection fires once.
// Steps count from 0, as in error messages ("at step 3").
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

namespace dpt::fault {

enum class Action {
  kNone,
  kSigkill,
  kSigterm,
  kStop,
  kExit,
  kThrow,
  kSleep,
  kNan,
  kInf,
  kFlip,
  kSkip,
  kLeave
};

const char* to_string(Action action);

struct Injection {
  Action action = Action::kNone;
  std::string point;
  int rank = -1;           // -1: every rank
  std::int64_t step = -1;  // -1: the first time the point is reached
  double seconds = -1.0;   // sleep: < 0 sleeps forever
  int exit_code = 1;       // exit
  bool fired = false;
};

// The points code passes to at(), each with the actions it supports beyond the process-level ones.
struct PointInfo {
  std::string_view name;
  std::string_view caller_actions;  // e.g. "nan inf" ("" for none)
  std::string_view where;           // for errors and docs
};
const std::vector<PointInfo>& points();

// Parses DPT_FAULT text; throws dpt::Error naming DPT_FAULT, the entry and what was expected.
std::vector<Injection> parse(std::string_view text);

// The value a nan or inf action writes (quiet NaN, +Inf).
float poison_value(Action action);

// Reads DPT_FAULT now, so that a malformed value is an error before any work (at() reads it
// at its first call otherwise).
void load_from_environment();

// Replaces the injections (DPT_FAULT is read at the first at() otherwise); for unit tests.
void set_for_testing(std::string_view text);

// The injection due at `point` (for `step`, -1 where the point has no step) on this rank, if
// any: a process-level action is carried out here (sigkill, exit and a forever sleep do not
// return; throw throws); a caller action is returned for the caller to carry out. kNone when
// nothing is due. Logs one line naming the rank, the action, the point and the step first.
Action at(std::string_view point, std::int64_t step = -1);

}  // namespace dpt::fault
