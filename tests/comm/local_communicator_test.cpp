// SPDX-License-Identifier: MIT
// The world of one: identities, completed Work, argument checks, and make_communicator()'s choice
// when no MPI runs (this suite is started without mpiexec).
#include "comm/local_communicator.h"

#include <gtest/gtest.h>

#include <cstdint>
#include <vector>

#include "runtime/error.h"

namespace dpt::comm {
namespace {

TEST(LocalCommunicator, IsAWorldOfOne) {
  LocalCommunicator comm;
  EXPECT_EQ(comm.rank(), 0);
  EXPECT_EQ(comm.world_size(), 1);
  EXPECT_EQ(comm.local_rank(), 0);
  EXPECT_EQ(comm.local_size(), 1);
  EXPECT_EQ(comm.node_count(), 1);
  EXPECT_EQ(comm.backend(), "local");
}

TEST(LocalCommunicator, CollectivesAreIdentities) {
  LocalCommunicator comm;
  for (const std::int64_t count : {0, 1, 7, 100003}) {
    std::vector<float> f(static_cast<std::size_t>(count));
    for (std::int64_t i = 0; i < count; ++i) f[i] = 0.1f * static_cast<float>(i);
    const std::vector<float> f0 = f;
    for (const ReduceOp op : {ReduceOp::kSum, ReduceOp::kMax, ReduceOp::kMin}) {
      comm.all_reduce(f.data(), count, op);
      comm.reduce_scatter(f.data(), count, op);
    }
    EXPECT_EQ(f, f0);
    std::vector<double> d(f.begin(), f.end());
    const std::vector<double> d0 = d;
    comm.all_reduce(d.data(), count, ReduceOp::kSum);
    EXPECT_EQ(d, d0);
    comm.broadcast(f.data(), count * 4, 0);
    EXPECT_EQ(f, f0);
  }
  EXPECT_EQ(comm.all_gather("abc"), std::vector<std::string>{"abc"});
  EXPECT_EQ(comm.all_gather(""), std::vector<std::string>{""});
  comm.barrier();
}

TEST(LocalCommunicator, WorkIsCompleteWithTimes) {
  LocalCommunicator comm;
  float x = 2.0f;
  const std::unique_ptr<Work> work = comm.all_reduce_async(&x, 1, ReduceOp::kSum);
  EXPECT_TRUE(work->test());
  EXPECT_GT(work->start_time(), 0.0);
  EXPECT_LE(work->start_time(), work->end_time());
  work->wait();
  EXPECT_EQ(x, 2.0f);
}

TEST(LocalCommunicator, InvalidArgumentsNameTheOperation) {
  LocalCommunicator comm;
  float f = 0.0f;
  auto message = [](auto call) {
    try {
      call();
    } catch (const dpt::Error& e) {
      return std::string(e.what());
    }
    return std::string("no error");
  };
  EXPECT_NE(message([&] { comm.all_reduce(&f, -1, ReduceOp::kSum); }).find("all_reduce"),
            std::string::npos);
  EXPECT_NE(message([&] { comm.broadcast(&f, -1, 0); }).find("broadcast"), std::string::npos);
  EXPECT_NE(message([&] { comm.broadcast(&f, 4, 1); }).find("broadcast"), std::string::npos);
  EXPECT_NE(message([&] { comm.reduce_scatter(&f, -1, ReduceOp::kSum); }).find("reduce_scatter"),
            std::string::npos);
}

TEST(MakeCommunicator, ChoosesLocalWithoutMpi) {
  Environment environment(nullptr, nullptr, Environment::Mode::kNoMpi);
  EXPECT_FALSE(environment.mpi_active());
  EXPECT_EQ(make_communicator()->backend(), "local");
  EXPECT_EQ(make_communicator("local")->backend(), "local");
  EXPECT_EQ(dpt::process_rank(), -1);
  EXPECT_THROW(make_communicator("mpi"), dpt::Error);
  EXPECT_THROW(make_communicator("nccl"), dpt::Error);
}

}  // namespace
}  // namespace dpt::comm
