// SPDX-License-Identifier: MIT
// H5Handle on real HDF5 identifiers: a moved handle is closed once, by its last owner; a failed
// HDF5 call is an IoError where it happened; a close HDF5 refuses is a warning, not an exception.
#include <gtest/gtest.h>

#include <string>
#include <utility>
#include <vector>

#include "runtime/io/h5.h"
#include "runtime/logging.h"

namespace dpt::io {
namespace {

TEST(H5Handle, MovedIdIsClosedOnceByItsLastOwner) {
  h5::init();
  H5Handle first(H5Pcreate(H5P_FILE_ACCESS));
  const hid_t id = first.get();
  ASSERT_GT(H5Iis_valid(id), 0);
  H5Handle second(std::move(first));
  EXPECT_FALSE(first.valid());  // NOLINT(bugprone-use-after-move): the moved-from state is tested
  EXPECT_EQ(second.get(), id);
  H5Handle third;
  third = std::move(second);
  EXPECT_GT(H5Iis_valid(id), 0);  // still open: nobody closed it on the way
  third.reset();
  EXPECT_FALSE(third.valid());
  EXPECT_LE(H5Iis_valid(id), 0);  // closed now
}

TEST(H5Handle, AFailedCallIsAnIoErrorNamingWhatWasDone) {
  h5::init();
  try {
    const H5Handle bad(H5Dopen2(H5I_INVALID_HID, "x", H5P_DEFAULT), "opening x");
    FAIL() << "no exception";
  } catch (const Error& e) {
    EXPECT_EQ(e.kind(), ErrorKind::kIo);
    EXPECT_NE(std::string(e.what()).find("opening x"), std::string::npos) << e.what();
  }
}

TEST(H5Handle, ACloseHdf5RefusesIsLoggedAndGoesOn) {
  h5::init();
  std::vector<std::string> warnings;
  auto previous = set_log_sink([&](LogLevel level, const std::string& line) {
    if (level == LogLevel::kWarning) warnings.push_back(line);
  });
  {
    H5Handle handle(H5Pcreate(H5P_FILE_ACCESS));
    ASSERT_GE(H5Pclose(handle.get()), 0);  // closed behind the owner's back
  }                                        // the destructor's H5Idec_ref fails
  set_log_sink(std::move(previous));
  ASSERT_EQ(warnings.size(), 1u);
  EXPECT_NE(warnings[0].find("H5Idec_ref"), std::string::npos) << warnings[0];
  EXPECT_NE(warnings[0].find("I/O error"), std::string::npos) << warnings[0];
}

}  // namespace
}  // namespace dpt::io
