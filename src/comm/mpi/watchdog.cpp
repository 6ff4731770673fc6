// SPDX-License-Identifier: MIT
// The watchdog thread, its query/answer/verdict messages and the report. See Note [Collective
// deadline] in watchdog.h.
#include "comm/mpi/watchdog.h"

#include <algorithm>
#include <chrono>
#include <cinttypes>
#include <cstdio>
#include <sstream>

#include "comm/mpi/mpi_backend.h"
#include "comm/work_clock.h"
#include "runtime/logging.h"
#include "runtime/stop_signals.h"

namespace dpt::comm::mpi {
namespace {

constexpr int kQueryTag = 1;    // "what are you doing?" (payload: the asker's state)
constexpr int kAnswerTag = 2;   // the answer: a machine line, then the words
constexpr int kVerdictTag = 3;  // the report, for the ranks that answered to print their line
constexpr auto kPollPeriod = std::chrono::milliseconds(50);
constexpr std::size_t kRecordLines = 16;  // flight record lines in a deadline report

std::string seconds_text(double s) {
  char text[32];
  std::snprintf(text, sizeof text, "%.1f s", s);
  return text;
}

// The first line of an answer: "<in flight seq> <for seconds> <last finished seq> <idle seconds>".
struct Answer {
  std::int64_t in_flight = 0;
  double for_s = 0.0;
  std::int64_t last_finished = 0;
  double idle_s = 0.0;
  std::string words;
};

// The words of a state (own_state): what follows its machine line.
std::string words_of(const std::string& state) {
  const auto newline = state.find('\n');
  return newline == std::string::npos ? state : state.substr(newline + 1);
}

bool parse_answer(const std::string& text, Answer& a) {
  if (text.find('\n') == std::string::npos) return false;
  if (std::sscanf(text.c_str(), "%" SCNd64 " %lf %" SCNd64 " %lf", &a.in_flight, &a.for_s,
                  &a.last_finished, &a.idle_s) != 4) {
    return false;
  }
  a.words = words_of(text);
  return true;
}

}  // namespace

Watchdog::Watchdog(MPI_Comm world, const FlightRecorder& recorder, bool can_talk)
    : recorder_(recorder), can_talk_(can_talk) {
  comm_ = duplicate_returning_errors(world);
  DPT_MPI_CHECK(MPI_Comm_rank(comm_.get(), &rank_));
  DPT_MPI_CHECK(MPI_Comm_size(comm_.get(), &size_));
  thread_ = std::thread([this] { run(); });
}

Watchdog::~Watchdog() {
  stopping_.store(true);
  if (thread_.joinable()) thread_.join();
  // Sends still pending went to ranks that never took them (the job is ending anyway).
  for (Outgoing& o : outgoing_) {
    if (o.request != MPI_REQUEST_NULL) MPI_Request_free(&o.request);
  }
}

std::string Watchdog::own_state(double now) const {
  const FlightRecorder::Status s = recorder_.status();
  std::ostringstream out;
  out << s.in_flight << ' ' << (s.in_flight ? now - s.in_flight_since : 0.0) << ' '
      << s.last_finished << ' ' << now - s.idle_since << '\n';
  if (s.in_flight != 0) {
    out << "in collective #" << s.in_flight << ", " << s.in_flight_text << ", for "
        << seconds_text(now - s.in_flight_since);
  } else if (s.last_finished != 0) {
    out << "not in a collective: its last, #" << s.last_finished << ", " << s.last_finished_text
        << ", finished " << seconds_text(now - s.idle_since)
        << " ago (busy outside communication: computing, reading data, or hung)";
  } else {
    out << "not in a collective, none finished yet (still setting up, or hung)";
  }
  return out.str();
}

void Watchdog::send(int to, int tag, const std::string& text) {
  Outgoing& o = outgoing_.emplace_back();
  o.bytes.assign(text.begin(), text.end());
  if (MPI_Isend(o.bytes.data(), static_cast<int>(o.bytes.size()), MPI_CHAR, to, tag, comm_.get(),
                &o.request) != MPI_SUCCESS) {
    o.request = MPI_REQUEST_NULL;  // nothing to wait for: the report says who did not answer
  }
}

void Watchdog::reap_sends() {
  while (!outgoing_.empty()) {
    int done = 0;
    Outgoing& o = outgoing_.front();
    if (o.request != MPI_REQUEST_NULL &&
        (MPI_Test(&o.request, &done, MPI_STATUS_IGNORE) != MPI_SUCCESS || done == 0)) {
      return;  // in order: later sends wait behind it
    }
    outgoing_.pop_front();
  }
}

void Watchdog::serve(std::vector<std::string>* answers) {
  for (;;) {
    int waiting = 0;
    MPI_Status status;
    if (MPI_Iprobe(MPI_ANY_SOURCE, MPI_ANY_TAG, comm_.get(), &waiting, &status) != MPI_SUCCESS ||
        waiting == 0) {
      return;
    }
    int bytes = 0;
    MPI_Get_count(&status, MPI_CHAR, &bytes);
    std::string text(static_cast<std::size_t>(std::max(bytes, 0)), '\0');
    MPI_Recv(text.data(), bytes, MPI_CHAR, status.MPI_SOURCE, status.MPI_TAG, comm_.get(),
             MPI_STATUS_IGNORE);
    const double now = detail::steady_seconds();
    if (status.MPI_TAG == kQueryTag) {
      send(status.MPI_SOURCE, kAnswerTag, own_state(now));
    } else if (status.MPI_TAG == kAnswerTag && answers != nullptr) {
      (*answers)[static_cast<std::size_t>(status.MPI_SOURCE)] = std::move(text);
    } else if (status.MPI_TAG == kVerdictTag) {
      log(LogLevel::kError, "collective deadline reported by rank ", status.MPI_SOURCE, " (", text,
          "); this rank: ", words_of(own_state(now)),
          "; its last collectives:", recorder_.dump(kRecordLines / 2));
      std::fflush(nullptr);
      // The reporting rank ends the job; should its MPI_Abort not arrive, end it from here.
      std::this_thread::sleep_for(std::chrono::seconds(5));
      abort_job(1);
    }
  }
}

void Watchdog::expire(const FlightRecorder::Status& status, double now) {
  const double timeout = timeout_s_.load();
  const double waited = now - status.in_flight_since;
  std::vector<std::string> answers(static_cast<std::size_t>(size_));
  const double grace = std::clamp(timeout / 4.0, 1.0, 5.0);
  if (can_talk_) {
    const std::string mine = own_state(now);
    for (int r = 0; r < size_; ++r) {
      if (r != rank_) send(r, kQueryTag, mine);
    }
    const double until = now + grace;
    for (;;) {
      serve(&answers);
      reap_sends();
      int missing = 0;
      for (int r = 0; r < size_; ++r)
        missing += r != rank_ && answers[static_cast<std::size_t>(r)].empty();
      if (missing == 0 || detail::steady_seconds() > until) break;
      std::this_thread::sleep_for(std::chrono::milliseconds(10));
    }
  }
  std::ostringstream lines;
  std::vector<int> absent, answered;
  for (int r = 0; r < size_; ++r) {
    if (r == rank_) continue;
    const std::string& text = answers[static_cast<std::size_t>(r)];
    Answer a;
    if (!can_talk_) {
      absent.push_back(r);
      lines << "\n  rank " << r << ": not asked (MPI lacks MPI_THREAD_MULTIPLE)";
    } else if (text.empty() || !parse_answer(text, a)) {
      absent.push_back(r);
      lines << "\n  rank " << r << ": no answer within " << seconds_text(grace)
            << " (stopped, dead, or hung where MPI cannot answer)";
    } else if (a.in_flight == status.in_flight) {
      answered.push_back(r);
      lines << "\n  rank " << r << ": waiting in the same collective for " << seconds_text(a.for_s);
    } else {
      answered.push_back(r);
      absent.push_back(r);
      lines << "\n  rank " << r << ": " << a.words;
    }
  }
  std::string absent_text;
  for (const int r : absent)
    absent_text += ::dpt::detail::str(absent_text.empty() ? "rank " : ", ", r);
  if (absent_text.empty()) absent_text = "none found (every rank is waiting in it)";
  const std::string summary =
      ::dpt::detail::str("--collective-timeout ", timeout, " s: rank ", rank_, " waited ",
                         seconds_text(waited), " in collective #", status.in_flight, ", ",
                         status.in_flight_text, "; did not arrive: ", absent_text);
  for (const int r : answered) send(r, kVerdictTag, summary);
  log(LogLevel::kError, "collective deadline (", summary, ")", lines.str(),
      "\n  this rank's last collectives:", recorder_.dump(kRecordLines));
  std::fflush(nullptr);
  // Let the ranks that answered print their line before the job ends.
  const double until = detail::steady_seconds() + 1.0;
  while (detail::steady_seconds() < until) {
    reap_sends();
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  abort_job(1);
}

void Watchdog::run() noexcept {
  try {
    while (!stopping_.load()) {
      std::this_thread::sleep_for(kPollPeriod);
      if (can_talk_) {
        serve(nullptr);
        reap_sends();
      }
      if (take_dump_request()) {
        log(LogLevel::kInfo, "flight record (SIGUSR2), ",
            words_of(own_state(detail::steady_seconds())), ":", recorder_.dump(256));
      }
      const double timeout = timeout_s_.load();
      if (timeout <= 0.0) continue;
      const FlightRecorder::Status status = recorder_.status();
      const double now = detail::steady_seconds();
      if (status.in_flight != 0 && now - status.in_flight_since > timeout) expire(status, now);
    }
  } catch (const std::exception& e) {
    log(LogLevel::kWarning, "collective watchdog stopped: ", e.what());
  }
}

}  // namespace dpt::comm::mpi
