// SPDX-License-Identifier: MIT
// The start-up agreement's facts and their comparison (nn/train/agreement.h): the build id is the
// one this build was configured with, the data line carries the content checksum, and a difference
// names the line on both ranks. The multi-rank runs are in tests/integration/agreement_test.sh.
#include "nn/train/agreement.h"

#include <gtest/gtest.h>

#include <string_view>

#include "runtime/build_info.h"
#include "runtime/config.h"
#include "testing/test_util.h"

namespace dpt::nn {
namespace {

// (std::regex trips GCC 12's -Wmaybe-uninitialized inside libstdc++ under ASan at -O2.)
bool is_hex(std::string_view text) {
  return !text.empty() && text.find_first_not_of("0123456789abcdef") == std::string_view::npos;
}

// 12 hex digits, optionally "-dirty", or "unknown".
bool is_revision(std::string_view text) {
  if (text == "unknown") return true;
  if (text.ends_with("-dirty")) text.remove_suffix(6);
  return text.size() == 12 && is_hex(text);
}

std::string fact(std::string_view key) {
  for (const BuildFact& f : build_facts()) {
    if (f.key == key) return std::string(f.value);
  }
  return "(no fact " + std::string(key) + ")";
}

// DPT_TEST_BUILD_TYPE and DPT_TEST_SANITIZE come from tests/nn/CMakeLists.txt: what CMake was
// configured with, against what the generated build id says.
TEST(BuildFacts, AreWhatThisBuildWasConfiguredWith) {
  std::vector<std::string> keys;
  for (const BuildFact& f : build_facts()) {
    keys.emplace_back(f.key);
    EXPECT_FALSE(f.value.empty()) << f.key;
  }
  EXPECT_EQ(keys, (std::vector<std::string>{"version", "revision", "compiler", "type", "flags",
                                            "sanitizers", "backends"}));
  EXPECT_EQ(fact("version"), DPT_VERSION);
  EXPECT_EQ(fact("type"), DPT_TEST_BUILD_TYPE);
  EXPECT_EQ(fact("sanitizers"), std::string(DPT_TEST_SANITIZE).empty() ? "none" : DPT_TEST_SANITIZE);
  EXPECT_TRUE(is_revision(fact("revision"))) << fact("revision");
  EXPECT_EQ(fact("backends").find("+ mpi") != std::string::npos, DPT_HAVE_MPI == 1)
      << fact("backends");
  EXPECT_EQ(fact("backends").find("+ cuda") != std::string::npos, DPT_HAVE_CUDA == 1)
      << fact("backends");
  const std::string text = build_description();
  EXPECT_EQ(text.rfind("dptrain " DPT_VERSION "\n  revision: " + fact("revision") + "\n", 0), 0u)
      << text;
  EXPECT_NE(text.find("\n  sanitizers: " + fact("sanitizers")), std::string::npos) << text;
}

TEST(Agreement, FactsHoldBuildConfigModelAndData) {
  test::TempDir dir;
  const std::string path = (dir / "q.h5").string();
  test::write_quadrants_dataset(path, 64, 16);
  const io::DatasetSplit train = io::DatasetSplit::load(path, "train");
  const io::DatasetSplit test_split = io::DatasetSplit::load(path, "test");
  TrainConfig config;
  config.data = path;
  config.model = "mlp";
  const Sequential model = build_model(reference_model("mlp"), {1, 28, 28});

  const std::string line = data_fact(train);
  ASSERT_EQ(line.rfind(train.identity() + " mean=", 0), 0u) << line;
  // " mean=<m> std=<s> xxh64=<16 hex digits>"
  const std::string rest = line.substr(train.identity().size());
  const auto mean = rest.find(" mean="), std_at = rest.find(" std="), xxh = rest.find(" xxh64=");
  EXPECT_TRUE(mean == 0 && std_at != std::string::npos && std_at > mean &&
              xxh != std::string::npos && xxh > std_at && rest.size() == xxh + 7 + 16 &&
              is_hex(std::string_view(rest).substr(xxh + 7)))
      << line;
  char hex[17];
  std::snprintf(hex, sizeof hex, "%016llx",
                static_cast<unsigned long long>(train.content_checksum()));
  EXPECT_NE(line.find(std::string("xxh64=") + hex), std::string::npos) << line;

  const std::string facts = setup_facts(config, model, train, &test_split);
  EXPECT_EQ(facts.rfind("build.version = " DPT_VERSION "\nbuild.revision = " + fact("revision"),
                        0),
            0u)
      << facts;
  for (const std::string& part :
       {"\nbuild.sanitizers = " + fact("sanitizers") + "\n", std::string("\nconfig.model = \"mlp\"\n"),
        "\nmodel." + model.parameters()[0]->name + " = ", "\ndata.train = " + line + "\n",
        "\ndata.test = " + data_fact(test_split) + "\n"}) {
    EXPECT_NE(facts.find(part), std::string::npos) << part << " in\n" << facts;
  }
  EXPECT_EQ(setup_facts(config, model, train, nullptr).find("data.test"), std::string::npos);
}

TEST(Agreement, DisagreementsNameTheLineOnBothRanks) {
  const std::string a = "build.type = Release\ndata.train = x xxh64=01\n";
  EXPECT_EQ(disagreements({a}), "");
  EXPECT_EQ(disagreements({a, a, a}), "");
  EXPECT_EQ(disagreements({a, a, "build.type = Release\ndata.train = x xxh64=02\n"}),
            "\n  rank 0: data.train = x xxh64=01\n  rank 2: data.train = x xxh64=02");
  EXPECT_EQ(disagreements({a, "build.type = Release\n"}),
            "\n  rank 0: data.train = x xxh64=01\n  rank 1: (missing)");
}

}  // namespace
}  // namespace dpt::nn
