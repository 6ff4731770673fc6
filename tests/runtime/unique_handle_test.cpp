// SPDX-License-Identifier: MIT
// UniqueHandle: every handle it is given is closed exactly once (moves, reset, release, self-move,
// containers that reallocate), the null value is whatever the traits say (here -1, so 0 is a real
// handle, as an hid_t or a file descriptor would be), and stateful traits travel with the handle.
#include "runtime/unique_handle.h"

#include <gtest/gtest.h>

#include <map>
#include <type_traits>
#include <utility>
#include <vector>

namespace dpt {
namespace {

struct Closed {
  int handle;
  int tag;  // which traits closed it
  bool operator==(const Closed&) const = default;
};
// What the fake library freed, in order. Tests run on one thread.
std::vector<Closed>& closed() {
  static std::vector<Closed> log;
  return log;
}

struct FakeTraits {
  using handle_type = int;
  static int null() noexcept { return -1; }
  void close(int handle) const noexcept { closed().push_back({handle, tag}); }
  int tag = 0;
};
using Fake = UniqueHandle<FakeTraits>;

static_assert(!std::is_copy_constructible_v<Fake> && !std::is_copy_assignable_v<Fake>);
static_assert(std::is_nothrow_move_constructible_v<Fake> &&
              std::is_nothrow_move_assignable_v<Fake>);
// An empty traits type costs nothing (no_unique_address): a handle is as small as the raw value.
struct EmptyTraits {
  using handle_type = void*;
  static void* null() noexcept { return nullptr; }
  static void close(void*) noexcept {}
};
static_assert(sizeof(UniqueHandle<EmptyTraits>) == sizeof(void*));

class UniqueHandleTest : public ::testing::Test {
 protected:
  void SetUp() override { closed().clear(); }
  // How often `handle` was closed.
  static int closes(int handle) {
    int n = 0;
    for (const Closed& c : closed()) n += c.handle == handle;
    return n;
  }
};

TEST_F(UniqueHandleTest, DefaultOwnsNothingAndClosesNothing) {
  {
    Fake h;
    EXPECT_FALSE(h);
    EXPECT_EQ(h.get(), -1);
  }
  EXPECT_TRUE(closed().empty());
}

TEST_F(UniqueHandleTest, ZeroIsARealHandleWhenTheNullIsMinusOne) {
  {
    Fake h(0);
    EXPECT_TRUE(h);
  }
  EXPECT_EQ(closes(0), 1);
}

TEST_F(UniqueHandleTest, DestructorClosesOnce) {
  { const Fake h(7); }
  EXPECT_EQ(closed(), (std::vector<Closed>{{7, 0}}));
}

TEST_F(UniqueHandleTest, MoveConstructionTransfersWithoutClosing) {
  {
    Fake a(3);
    Fake b(std::move(a));
    EXPECT_FALSE(a);  // NOLINT(bugprone-use-after-move): the moved-from state is the point
    EXPECT_EQ(b.get(), 3);
    EXPECT_TRUE(closed().empty());
  }
  EXPECT_EQ(closes(3), 1);
}

TEST_F(UniqueHandleTest, MoveAssignmentClosesTheOldHandleWithItsOwnTraits) {
  Fake target(1, FakeTraits{10});
  Fake source(2, FakeTraits{20});
  target = std::move(source);
  // The handle target owned is freed at once, by the traits it came with.
  EXPECT_EQ(closed(), (std::vector<Closed>{{1, 10}}));
  EXPECT_EQ(target.get(), 2);
  EXPECT_EQ(target.traits().tag, 20);
  EXPECT_FALSE(source);  // NOLINT(bugprone-use-after-move)
  target.reset();
  EXPECT_EQ(closed(), (std::vector<Closed>{{1, 10}, {2, 20}}));
}

TEST_F(UniqueHandleTest, SelfMoveKeepsTheHandle) {
  Fake h(4);
  Fake& alias = h;
  h = std::move(alias);
  EXPECT_EQ(h.get(), 4);
  EXPECT_TRUE(closed().empty());
}

TEST_F(UniqueHandleTest, ResetClosesTheOldAndOwnsTheNew) {
  Fake h(5);
  h.reset(6);
  EXPECT_EQ(closed(), (std::vector<Closed>{{5, 0}}));
  EXPECT_EQ(h.get(), 6);
  h.reset();
  h.reset();  // owning nothing: nothing to close
  EXPECT_EQ(closes(6), 1);
  EXPECT_EQ(closed().size(), 2u);
}

TEST_F(UniqueHandleTest, ReleaseGivesUpOwnership) {
  int raw = -1;
  {
    Fake h(8);
    raw = h.release();
    EXPECT_FALSE(h);
  }
  EXPECT_EQ(raw, 8);
  EXPECT_TRUE(closed().empty());
}

TEST_F(UniqueHandleTest, ContainersThatReallocateCloseEachHandleOnce) {
  {
    std::vector<Fake> handles;
    for (int i = 0; i < 100; ++i) handles.emplace_back(i);  // several reallocations
    handles.erase(handles.begin() + 10);                    // moves the tail down by one
    EXPECT_EQ(closed(), (std::vector<Closed>{{10, 0}}));
  }
  ASSERT_EQ(closed().size(), 100u);
  for (int i = 0; i < 100; ++i) EXPECT_EQ(closes(i), 1) << "handle " << i;
}

}  // namespace
}  // namespace dpt
