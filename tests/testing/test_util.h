// SPDX-License-Identifier: MIT
// Helpers shared by the test suites: random tensors, comparisons with a useful message, temp dirs.
#pragma once

#include <gtest/gtest.h>

#include <cstdint>
#include <filesystem>
#include <initializer_list>
#include <string>
#include <vector>

#include "runtime/error.h"
#include "runtime/tensor.h"

namespace dpt::test {

// Uniform values in [lo, hi) from a fixed seed, so failures reproduce.
Tensor random_tensor(const Shape& shape, std::uint64_t seed, float lo = -1.0f, float hi = 1.0f);

// Max over elements of |a - b| / (atol + rtol * |b|) <= 1, with the worst element reported.
::testing::AssertionResult all_close(const Tensor& actual, const Tensor& expected, double rtol,
                                     double atol);
::testing::AssertionResult all_close(const std::vector<double>& actual,
                                     const std::vector<double>& expected, double rtol, double atol);

// Runs fn and expects a dpt::Error whose message contains every one of `parts`.
template <typename Fn>
void expect_error(Fn&& fn, std::initializer_list<const char*> parts) {
  try {
    fn();
    ADD_FAILURE() << "no dpt::Error thrown";
  } catch (const Error& e) {
    for (const char* part : parts) {
      EXPECT_NE(std::string(e.what()).find(part), std::string::npos) << e.what();
    }
  }
}

// A fresh directory under the system temp dir, removed when the object dies.
class TempDir {
 public:
  TempDir();
  TempDir(const TempDir&) = delete;
  TempDir& operator=(const TempDir&) = delete;
  ~TempDir();
  const std::filesystem::path& path() const { return path_; }
  std::filesystem::path operator/(const std::string& name) const { return path_ / name; }

 private:
  std::filesystem::path path_;
};

// While alive, warnings logged by the code under test do not fail the test.
class AllowWarnings {
 public:
  AllowWarnings();
  AllowWarnings(const AllowWarnings&) = delete;
  AllowWarnings& operator=(const AllowWarnings&) = delete;
  ~AllowWarnings();
};
bool warnings_allowed();

// Directory of the built binaries (build/bin), from DPT_BIN_DIR set by CTest.
std::filesystem::path bin_dir();
// Root of the source tree, from DPT_SOURCE_DIR set by CTest.
std::filesystem::path source_dir();

// Writes a small dataset of 1 x side x side images: class k has a bright quadrant k % 4 over
// uniform noise (4 classes are learnable in a few dozen steps). Train and test samples use
// different noise seeds. side 28 and 10 classes fit the reference models cnn and mlp.
void write_quadrants_dataset(const std::string& path, int train_samples, int test_samples,
                             int side = 8, int num_classes = 4);

// Runs a shell command, returns its exit status and captures stdout+stderr into *output.
int run_command(const std::string& command, std::string* output);

}  // namespace dpt::test
