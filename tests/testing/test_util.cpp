// SPDX-License-Identifier: MIT
// Test helpers: seeded random tensors, tolerance comparisons, temp dirs, running binaries.
#include "testing/test_util.h"

#include <sys/wait.h>
#include <unistd.h>

#include <array>
#include <atomic>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <random>
#include <sstream>

#include "runtime/io/dataset.h"

namespace dpt::test {
namespace {
std::atomic<int> g_allow_warnings{0};

::testing::AssertionResult compare(std::size_t n, const auto& actual, const auto& expected,
                                   double rtol, double atol) {
  double worst = 0.0;
  std::size_t worst_index = 0;
  for (std::size_t i = 0; i < n; ++i) {
    const double a = actual[i], e = expected[i];
    if (std::isnan(a) != std::isnan(e)) {
      return ::testing::AssertionFailure() << "NaN mismatch at " << i << ": " << a << " vs " << e;
    }
    const double ratio = std::abs(a - e) / (atol + rtol * std::abs(e));
    if (ratio > worst) {
      worst = ratio;
      worst_index = i;
    }
  }
  if (worst <= 1.0) return ::testing::AssertionSuccess();
  return ::testing::AssertionFailure()
         << "element " << worst_index << ": actual " << actual[worst_index] << " expected "
         << expected[worst_index] << " (rtol " << rtol << ", atol " << atol << ", " << worst
         << "x the tolerance)";
}
}  // namespace

Tensor random_tensor(const Shape& shape, std::uint64_t seed, float lo, float hi) {
  Tensor t = Tensor::empty(shape);
  std::mt19937_64 gen(seed);
  std::uniform_real_distribution<float> dist(lo, hi);
  float* p = t.data<float>();
  for (std::int64_t i = 0; i < t.numel(); ++i) p[i] = dist(gen);
  return t;
}

::testing::AssertionResult all_close(const Tensor& actual, const Tensor& expected, double rtol,
                                     double atol) {
  if (actual.shape() != expected.shape()) {
    return ::testing::AssertionFailure() << "shape " << to_string(actual.shape()) << " vs "
                                         << to_string(expected.shape());
  }
  return compare(static_cast<std::size_t>(actual.numel()), actual.data<float>(),
                 expected.data<float>(), rtol, atol);
}

::testing::AssertionResult all_close(const std::vector<double>& actual,
                                     const std::vector<double>& expected, double rtol, double atol) {
  if (actual.size() != expected.size()) {
    return ::testing::AssertionFailure() << "size " << actual.size() << " vs " << expected.size();
  }
  return compare(actual.size(), actual, expected, rtol, atol);
}

TempDir::TempDir() {
  std::string pattern = (std::filesystem::temp_directory_path() / "dpt-test-XXXXXX").string();
  char* made = mkdtemp(pattern.data());
  if (made == nullptr) throw std::runtime_error("mkdtemp failed for " + pattern);
  path_ = made;
}

TempDir::~TempDir() {
  std::error_code ec;
  std::filesystem::remove_all(path_, ec);
}

AllowWarnings::AllowWarnings() { ++g_allow_warnings; }
AllowWarnings::~AllowWarnings() { --g_allow_warnings; }
bool warnings_allowed() { return g_allow_warnings.load() > 0; }

std::filesystem::path bin_dir() {
  const char* dir = std::getenv("DPT_BIN_DIR");
  return dir ? std::filesystem::path(dir) : std::filesystem::path("bin");
}

std::filesystem::path source_dir() {
  const char* dir = std::getenv("DPT_SOURCE_DIR");
  return dir ? std::filesystem::path(dir) : std::filesystem::current_path();
}

void write_quadrants_dataset(const std::string& path, int train_samples, int test_samples,
                             int side, int num_classes) {
  auto make = [side, num_classes](int n, std::uint32_t seed) {
    io::SplitData s;
    std::mt19937 gen(seed);
    std::uniform_int_distribution<int> noise(0, 90);
    const int half = side / 2;
    for (int i = 0; i < n; ++i) {
      const int label = i % num_classes;
      const int k = label % 4;
      s.labels.push_back(label);
      for (int y = 0; y < side; ++y) {
        for (int x = 0; x < side; ++x) {
          const bool bright = (y / half) == (k / 2) && (x / half) == (k % 2);
          s.images.push_back(static_cast<std::uint8_t>(noise(gen) + (bright ? 120 : 0)));
        }
      }
    }
    return s;
  };
  io::DatasetMeta meta;
  meta.num_classes = num_classes;
  if (num_classes == 4) meta.class_names = {"top-left", "top-right", "bottom-left", "bottom-right"};
  meta.mean = 0.3f;
  meta.std = 0.3f;
  io::write_dataset(path, 1, side, side, meta, make(train_samples, 1), make(test_samples, 2));
}

int run_command(const std::string& command, std::string* output) {
  const std::string full = command + " 2>&1";
  FILE* pipe = popen(full.c_str(), "r");
  if (pipe == nullptr) return -1;
  std::array<char, 4096> chunk{};
  std::string text;
  while (std::fgets(chunk.data(), static_cast<int>(chunk.size()), pipe) != nullptr) {
    text += chunk.data();
  }
  const int status = pclose(pipe);
  if (output) *output = std::move(text);
  return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
}

}  // namespace dpt::test
