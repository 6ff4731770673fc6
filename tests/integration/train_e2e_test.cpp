// SPDX-License-Identifier: MIT
// The shipped binaries end to end: dpt-data imports Fashion-MNIST, train learns `mlp` on a
// 2,000-sample subset, and bad invocations fail with messages that name the problem.
#include <gtest/gtest.h>

#include <nlohmann/json.hpp>

#include <filesystem>
#include <fstream>

#include "testing/test_util.h"

namespace dpt {
namespace {

const char* const kFashionDir = "/usr/share/datasets/fashion-mnist";

class TrainE2E : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    dir_ = new test::TempDir();
    ASSERT_TRUE(std::filesystem::exists(kFashionDir))
        << kFashionDir << " is missing: run scripts/install-deps.sh (package dataset-fashion-mnist)";
    data_ = (dir_->path() / "fmnist.h5").string();
    std::string out;
    const int rc = test::run_command(
        (test::bin_dir() / "dpt-data").string() + " import-fashion-mnist " + data_, &out);
    ASSERT_EQ(rc, 0) << out;
  }
  static void TearDownTestSuite() {
    delete dir_;
    dir_ = nullptr;
  }
  static std::string train() { return (test::bin_dir() / "train").string(); }

  static inline test::TempDir* dir_ = nullptr;
  static inline std::string data_;
};

TEST_F(TrainE2E, MlpOnTwoThousandSamplesHalvesItsLoss) {
  const std::string metrics = (dir_->path() / "mlp.jsonl").string();
  std::string out;
  const int rc = test::run_command(train() + " --data " + data_ +
                                       " --model mlp --train-samples 2000 --test-samples 1000"
                                       " --batch-size 64 --steps 30 --optimizer adamw --lr 1e-3"
                                       " --seed 1 --threads 2 --metrics " + metrics,
                                   &out);
  ASSERT_EQ(rc, 0) << out;
  std::vector<double> losses;
  double accuracy = -1.0;
  std::ifstream in(metrics);
  std::string line;
  while (std::getline(in, line)) {
    const auto j = nlohmann::json::parse(line);
    if (j.at("event") == "step") losses.push_back(j.at("loss").get<double>());
    if (j.at("event") == "eval") accuracy = j.at("accuracy").get<double>();
  }
  ASSERT_EQ(losses.size(), 30u) << out;
  double last5 = 0.0;
  for (std::size_t i = 25; i < 30; ++i) last5 += losses[i] / 5.0;
  EXPECT_LE(last5, 0.5 * losses[0]) << "first loss " << losses[0] << ", mean of the last 5 " << last5;
  EXPECT_GT(accuracy, 0.6) << out;
  EXPECT_NE(out.find("test accuracy"), std::string::npos) << out;
}

TEST_F(TrainE2E, ProgressUpdatesInPlaceOnATerminalAndPrintsLinesOtherwise) {
  const std::string args = " --data " + data_ +
                           " --model mlp --train-samples 512 --test-samples 100 --batch-size 64"
                           " --steps 4 --log-every 1 --threads 1";
  std::string piped;
  ASSERT_EQ(test::run_command(train() + args, &piped), 0) << piped;
  EXPECT_EQ(piped.find('\r'), std::string::npos) << "carriage return in piped output";
  for (const char* line : {"step 1/4", "step 4/4", "samples/s", "ETA", "test loss"}) {
    EXPECT_NE(piped.find(line), std::string::npos) << line << " missing from:\n" << piped;
  }
  // script(1) runs the command on a pseudo-terminal: the progress line is rewritten with \r.
  std::string tty;
  ASSERT_EQ(test::run_command("script -qec '" + train() + args + "' /dev/null", &tty), 0) << tty;
  EXPECT_NE(tty.find("\rstep 2/4"), std::string::npos) << tty;
}

// --log-every paces the progress lines only; the metrics file gets every step.
TEST_F(TrainE2E, LogEveryPacesProgressLinesAndMetricsGetEveryStep) {
  const std::string metrics = (dir_->path() / "log_every.jsonl").string();
  std::string out;
  ASSERT_EQ(test::run_command(train() + " --data " + data_ +
                                  " --model mlp --train-samples 512 --batch-size 64 --steps 7"
                                  " --log-every 3 --threads 1 --eval=false --metrics " + metrics,
                              &out),
            0)
      << out;
  for (const char* shown : {"step 3/7", "step 6/7", "step 7/7"}) {
    EXPECT_NE(out.find(shown), std::string::npos) << shown << " missing from:\n" << out;
  }
  for (const char* hidden : {"step 1/7", "step 2/7", "step 4/7", "step 5/7"}) {
    EXPECT_EQ(out.find(hidden), std::string::npos) << hidden << " printed:\n" << out;
  }
  std::ifstream in(metrics);
  int steps = 0;
  for (std::string line; std::getline(in, line);) {
    if (nlohmann::json::parse(line).at("event") == "step") ++steps;
  }
  EXPECT_EQ(steps, 7);
}

// The start-up log shows the bucket layout; --bucket-mb governs it, and without the flag the
// automatic layout says so. The metrics summary carries the same sizes.
TEST_F(TrainE2E, BucketMbGovernsTheLayoutPrintedAtStartUp) {
  auto run = [&](const std::string& flag, std::vector<double>* mib) {
    const std::string metrics = (dir_->path() / "buckets.jsonl").string();
    std::string out;
    EXPECT_EQ(test::run_command(train() + " --data " + data_ +
                                    " --model mlp --train-samples 256 --batch-size 64 --steps 1"
                                    " --threads 1 --eval=false --metrics " + metrics + " " + flag,
                                &out),
              0)
        << out;
    std::ifstream in(metrics);
    for (std::string line; std::getline(in, line);) {
      const auto j = nlohmann::json::parse(line);
      if (j.at("event") == "summary") *mib = j.at("bucket_mib").get<std::vector<double>>();
    }
    return out;
  };
  std::vector<double> one, twenty_five, automatic;
  const std::string out1 = run("--bucket-mb 1", &one);
  const std::string out25 = run("--bucket-mb 25", &twenty_five);
  const std::string out_auto = run("", &automatic);
  EXPECT_NE(out1.find("4 gradient bucket(s), --bucket-mb 1"), std::string::npos) << out1;
  EXPECT_NE(out25.find("3 gradient bucket(s), --bucket-mb 25"), std::string::npos) << out25;
  EXPECT_NE(out_auto.find("automatic (--bucket-mb not given"), std::string::npos) << out_auto;
  // One line per bucket with its size and parameters, last layers first.
  EXPECT_NE(out25.find("bucket 0: 0.086 MiB, layers.7.bias .. layers.5.bias (parameters 5..7)"),
            std::string::npos)
      << out25;
  EXPECT_NE(out25.find("bucket 2: 22.13 MiB, layers.3.weight .. layers.1.weight (parameters 0..2)"),
            std::string::npos)
      << out25;
  EXPECT_EQ(one.size(), 4u);
  EXPECT_EQ(twenty_five.size(), 3u);
  EXPECT_NE(one, twenty_five);
  double total1 = 0.0, total25 = 0.0;
  for (double m : one) total1 += m;
  for (double m : twenty_five) total25 += m;
  EXPECT_DOUBLE_EQ(total1, total25);  // the same gradients, cut differently
}

TEST_F(TrainE2E, DropoutFlagWithACustomModelIsRefused) {
  const auto config = dir_->path() / "custom.toml";
  std::ofstream(config) << "data = '" << data_ << "'\n[model]\nlayers = [\n"
                        << "  { type = 'flatten' },\n  { type = 'linear', in = 784, out = 10 },\n]\n";
  std::string out;
  EXPECT_NE(test::run_command(train() + " --config " + config.string() + " --dropout 0.3", &out), 0);
  EXPECT_NE(out.find("'dropout' (0.3) applies to the cnn and mlp models only"), std::string::npos)
      << out;
  EXPECT_NE(out.find("{ type = \"dropout\", p = 0.3 }"), std::string::npos) << out;
}

TEST_F(TrainE2E, MissingDatasetFailsNamingTheFile) {
  std::string out;
  const int rc = test::run_command(train() + " --data /nonexistent/fm.h5 --steps 1", &out);
  EXPECT_NE(rc, 0);
  EXPECT_NE(out.find("/nonexistent/fm.h5"), std::string::npos) << out;
}

TEST_F(TrainE2E, BadFlagsFailNamingTheFlag) {
  std::string out;
  EXPECT_NE(test::run_command(train() + " --data " + data_ + " --batch-size 0", &out), 0);
  EXPECT_NE(out.find("batch-size"), std::string::npos) << out;
  EXPECT_NE(test::run_command(train() + " --data " + data_ + " --bogus 3", &out), 0);
  EXPECT_NE(out.find("bogus"), std::string::npos) << out;
  EXPECT_EQ(test::run_command(train() + " --help", &out), 0);
  EXPECT_NE(out.find("--micro-batch"), std::string::npos) << out;
}

TEST_F(TrainE2E, ConfigFileWithUnknownKeyFails) {
  const auto config = dir_->path() / "bad.toml";
  std::ofstream(config) << "data = '" << data_ << "'\nlearning_rate = 0.1\n";
  std::string out;
  EXPECT_NE(test::run_command(train() + " --config " + config.string(), &out), 0);
  EXPECT_NE(out.find("unknown key 'learning_rate'"), std::string::npos) << out;
}

}  // namespace
}  // namespace dpt
