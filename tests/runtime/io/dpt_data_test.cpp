// SPDX-License-Identifier: MIT
// dpt-data end to end: import a small fake Fashion-MNIST (gzip'd IDX written here), load and
// inspect the result, and check that malformed inputs fail with one line naming the file.
#include <zlib.h>

#include <algorithm>
#include <cmath>

#include "runtime/io/dataset.h"
#include "testing/test_util.h"

namespace dpt::io {
namespace {

constexpr int kHeight = 4;
constexpr int kWidth = 5;

void put_be32(std::vector<unsigned char>* out, std::uint32_t v) {
  for (int shift = 24; shift >= 0; shift -= 8) out->push_back(static_cast<unsigned char>(v >> shift));
}

void write_gz(const std::filesystem::path& path, const std::vector<unsigned char>& bytes) {
  gzFile f = gzopen(path.string().c_str(), "wb");
  ASSERT_NE(f, nullptr) << path;
  ASSERT_EQ(gzwrite(f, bytes.data(), static_cast<unsigned>(bytes.size())),
            static_cast<int>(bytes.size()));
  ASSERT_EQ(gzclose(f), Z_OK);
}

std::vector<unsigned char> idx_images(std::uint32_t n, std::uint32_t magic = 0x803, int salt = 0) {
  std::vector<unsigned char> out;
  put_be32(&out, magic);
  put_be32(&out, n);
  put_be32(&out, kHeight);
  put_be32(&out, kWidth);
  for (std::uint32_t i = 0; i < n * kHeight * kWidth; ++i) {
    out.push_back(static_cast<unsigned char>((i * 13 + salt) % 256));
  }
  return out;
}

std::vector<unsigned char> idx_labels(std::uint32_t n) {
  std::vector<unsigned char> out;
  put_be32(&out, 0x801);
  put_be32(&out, n);
  for (std::uint32_t i = 0; i < n; ++i) out.push_back(static_cast<unsigned char>(i % 10));
  return out;
}

class DptDataTest : public ::testing::Test {
 protected:
  void SetUp() override {
    write_gz(dir_ / "train-images-idx3-ubyte.gz", idx_images(20));
    write_gz(dir_ / "train-labels-idx1-ubyte.gz", idx_labels(20));
    write_gz(dir_ / "t10k-images-idx3-ubyte.gz", idx_images(7, 0x803, 3));
    write_gz(dir_ / "t10k-labels-idx1-ubyte.gz", idx_labels(7));
  }
  int run(const std::string& args, std::string* output) const {
    return dpt::test::run_command((dpt::test::bin_dir() / "dpt-data").string() + " " + args,
                                  output);
  }
  std::string import_args() const {
    return "import-fashion-mnist --src " + dir_.path().string() + " " + (dir_ / "out.h5").string();
  }
  dpt::test::TempDir dir_;
};

TEST_F(DptDataTest, ImportsAndInspects) {
  std::string output;
  ASSERT_EQ(run(import_args(), &output), 0) << output;
  const std::string out = (dir_ / "out.h5").string();
  const DatasetSplit train = DatasetSplit::load(out, "train");
  const DatasetSplit test = DatasetSplit::load(out, "test");
  EXPECT_EQ(train.size(), 20);
  EXPECT_EQ(test.size(), 7);
  EXPECT_EQ(train.channels(), 1);
  EXPECT_EQ(train.height(), kHeight);
  EXPECT_EQ(train.width(), kWidth);
  EXPECT_EQ(train.label(13), 3);
  EXPECT_EQ(train.image(2)[1], (((2 * kHeight * kWidth) + 1) * 13) % 256);
  EXPECT_EQ(test.image(0)[0], 3);
  EXPECT_EQ(train.meta().num_classes, 10);
  ASSERT_EQ(train.meta().class_names.size(), 10u);
  EXPECT_EQ(train.meta().class_names[0], "T-shirt/top");
  EXPECT_EQ(train.meta().class_names[9], "Ankle boot");
  // mean / std of the train pixels on the 0..1 scale, population std.
  double sum = 0, sum_sq = 0;
  const std::int64_t count = train.size() * train.sample_numel();
  for (std::int64_t i = 0; i < count; ++i) {
    const double x = train.image(0)[i] / 255.0;
    sum += x;
    sum_sq += x * x;
  }
  const double mean = sum / static_cast<double>(count);
  EXPECT_NEAR(train.meta().mean, mean, 1e-6);
  EXPECT_NEAR(train.meta().std, std::sqrt(sum_sq / static_cast<double>(count) - mean * mean), 1e-6);

  ASSERT_EQ(run("inspect " + out, &output), 0) << output;
  for (const char* part : {"@format = \"dptrain-dataset\"", "@num_classes = 10", "Ankle boot",
                           "/train/images  uint8 [20, 1, 4, 5]", "fletcher32",
                           "/test/labels  int32 [7]"}) {
    EXPECT_NE(output.find(part), std::string::npos) << part << "\n" << output;
  }
}

TEST_F(DptDataTest, BadMagicNumberNamesTheFile) {
  write_gz(dir_ / "train-images-idx3-ubyte.gz", idx_images(20, 0x801));
  std::string output;
  EXPECT_NE(run(import_args(), &output), 0);
  EXPECT_EQ(output.rfind("dpt-data: error: ", 0), 0u) << output;
  EXPECT_NE(output.find((dir_ / "train-images-idx3-ubyte.gz").string()), std::string::npos) << output;
  EXPECT_NE(output.find("bad magic number 0x00000801, expected 0x00000803"), std::string::npos)
      << output;
  EXPECT_EQ(std::count(output.begin(), output.end(), '\n'), 1) << output;
  EXPECT_FALSE(std::filesystem::exists(dir_ / "out.h5"));
}

TEST_F(DptDataTest, TruncatedPayloadAndCountMismatchAreReported) {
  std::vector<unsigned char> short_images = idx_images(20);
  short_images.resize(short_images.size() - 5);
  write_gz(dir_ / "t10k-images-idx3-ubyte.gz", short_images);
  std::string output;
  EXPECT_NE(run(import_args(), &output), 0);
  EXPECT_NE(output.find("t10k-images-idx3-ubyte.gz: truncated"), std::string::npos) << output;

  write_gz(dir_ / "t10k-images-idx3-ubyte.gz", idx_images(7));
  write_gz(dir_ / "t10k-labels-idx1-ubyte.gz", idx_labels(6));
  EXPECT_NE(run(import_args(), &output), 0);
  EXPECT_NE(output.find("holds 7 images but"), std::string::npos) << output;
  EXPECT_NE(output.find("t10k-labels-idx1-ubyte.gz holds 6 labels"), std::string::npos) << output;
}

TEST_F(DptDataTest, InspectOfMissingOrNonHdf5File) {
  std::string output;
  EXPECT_NE(run("inspect " + (dir_ / "nope.h5").string(), &output), 0);
  EXPECT_NE(output.find("dpt-data: error: cannot open"), std::string::npos) << output;
  EXPECT_NE(output.find("nope.h5: no such file"), std::string::npos) << output;
  EXPECT_NE(run("inspect " + (dir_ / "train-labels-idx1-ubyte.gz").string(), &output), 0);
  EXPECT_NE(output.find("not an HDF5 file"), std::string::npos) << output;
}

TEST_F(DptDataTest, HelpDocumentsSubcommands) {
  std::string output;
  EXPECT_EQ(run("--help", &output), 0);
  EXPECT_NE(output.find("import-fashion-mnist"), std::string::npos) << output;
  EXPECT_NE(output.find("inspect"), std::string::npos) << output;
  EXPECT_EQ(run("import-fashion-mnist --help", &output), 0);
  EXPECT_NE(output.find("--src"), std::string::npos) << output;
  EXPECT_NE(run("", &output), 0);  // a subcommand is required
}

}  // namespace
}  // namespace dpt::io
