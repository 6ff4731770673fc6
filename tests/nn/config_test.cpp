// SPDX-License-Identifier: MIT
// Config: TOML keys, flag overrides, unknown keys and out-of-range values rejected by name.
#include <gtest/gtest.h>

#include <fstream>
#include <limits>

#include "nn/train/config.h"
#include "testing/test_util.h"

namespace dpt::nn {
namespace {

std::string error_of(const std::function<void()>& f) {
  try {
    f();
  } catch (const Error& e) {
    return e.what();
  }
  return "(no error)";
}

std::optional<TrainConfig> parse(std::vector<std::string> args) {
  args.insert(args.begin(), "train");
  std::vector<const char*> argv;
  for (const auto& a : args) argv.push_back(a.c_str());
  return parse_train_args(static_cast<int>(argv.size()), argv.data());
}

TEST(Config, FlagsParse) {
  const auto c = parse({"--data", "d.h5", "--model", "mlp", "--batch-size", "64", "--lr", "0.05",
                        "--optimizer", "sgd", "--momentum", "0.9", "--nesterov", "--steps", "7"});
  ASSERT_TRUE(c);
  EXPECT_EQ(c->model, "mlp");
  EXPECT_EQ(c->batch_size, 64);
  EXPECT_DOUBLE_EQ(c->lr, 0.05);
  EXPECT_TRUE(c->nesterov);
  EXPECT_EQ(c->steps, 7);
  EXPECT_DOUBLE_EQ(c->resolved_weight_decay(), 0.0);  // sgd default
}

TEST(Config, FileThenFlagsOverride) {
  test::TempDir dir;
  const auto path = dir / "run.toml";
  std::ofstream(path) << "data = 'x.h5'\nbatch_size = 32\nlr = 1\nweight-decay = 0.5\n"
                         "lr-schedule = 'cosine'\n";
  const auto c = parse({"--config", path.string(), "--batch-size", "16"});
  ASSERT_TRUE(c);
  EXPECT_EQ(c->data, "x.h5");
  EXPECT_EQ(c->batch_size, 16);        // the flag wins
  EXPECT_DOUBLE_EQ(c->lr, 1.0);        // an integer is accepted for a number
  EXPECT_DOUBLE_EQ(c->resolved_weight_decay(), 0.5);
  EXPECT_EQ(c->lr_schedule, "cosine");
}

TEST(Config, UnknownKeyIsNamedWithItsLine) {
  TrainConfig c;
  const std::string m =
      error_of([&] { apply_toml("data = 'a'\nbatchsize = 3\n", "run.toml", c); });
  EXPECT_NE(m.find("run.toml:2"), std::string::npos) << m;
  EXPECT_NE(m.find("unknown key 'batchsize'"), std::string::npos) << m;
}

TEST(Config, WrongTypeIsNamed) {
  TrainConfig c;
  const std::string m = error_of([&] { apply_toml("epochs = 'two'\n", "run.toml", c); });
  EXPECT_NE(m.find("'epochs' expects an integer"), std::string::npos) << m;
  const std::string s = error_of([&] { apply_toml("epochs = [\n", "bad.toml", c); });
  EXPECT_NE(s.find("bad.toml"), std::string::npos) << s;
  EXPECT_NE(s.find("TOML syntax error"), std::string::npos) << s;
}

TEST(Config, OutOfRangeValuesAreRejectedByName) {
  auto message = [](const std::vector<std::string>& extra) {
    std::vector<std::string> args = {"--data", "d.h5"};
    args.insert(args.end(), extra.begin(), extra.end());
    return error_of([&] { parse(args); });
  };
  EXPECT_NE(message({"--batch-size", "0"}).find("'batch-size' must be >= 1"), std::string::npos);
  EXPECT_NE(message({"--lr", "-1"}).find("'lr'"), std::string::npos);
  EXPECT_NE(message({"--momentum", "1.5"}).find("'momentum'"), std::string::npos);
  EXPECT_NE(message({"--batch-size", "10", "--micro-batch", "4"}).find("must be divisible by ranks x 'micro-batch'"),
            std::string::npos);
  EXPECT_NE(message({"--optimizer", "lamb"}).find("sgd or adamw"), std::string::npos);
  EXPECT_NE(message({"--lr-schedule", "linear"}).find("'lr-schedule'"), std::string::npos);
  EXPECT_NE(message({"--model", "transformer"}).find("'model'"), std::string::npos);
  EXPECT_NE(error_of([&] { parse({}); }).find("'data'"), std::string::npos);
  EXPECT_NE(message({"--no-such-flag"}).find("command line"), std::string::npos);
}

// Exact mode: the default shard size is the largest divisor of the batch up to 32 (never chosen
// from the world size, which would change the bits), and every combination that cannot run is
// refused by name before training.
TEST(Config, ExactModeShards) {
  auto exact = [](std::int64_t batch, std::int64_t shard) {
    TrainConfig c;
    c.data = "d.h5";
    c.exact = true;
    c.batch_size = batch;
    c.shard_size = shard;
    return c;
  };
  EXPECT_EQ(exact(128, 0).resolved_shard_size(), 32);
  EXPECT_EQ(exact(96, 0).resolved_shard_size(), 32);
  EXPECT_EQ(exact(100, 0).resolved_shard_size(), 25);
  EXPECT_EQ(exact(7, 0).resolved_shard_size(), 7);
  EXPECT_EQ(exact(48, 2).shards_per_step(), 24);
  for (const int ranks : {1, 2, 3, 4, 8}) {
    EXPECT_EQ(exact(48, 2).resolved_micro_batch(ranks), 2) << ranks << " ranks";
  }
  const std::string four = error_of([&] { (void)exact(48, 8).resolved_micro_batch(4); });
  EXPECT_NE(four.find("6 shards of 8"), std::string::npos) << four;
  EXPECT_NE(four.find("4 ranks cannot share"), std::string::npos) << four;
  EXPECT_NE(four.find("divides 12 (batch-size / ranks)"), std::string::npos) << four;
  TrainConfig micro = exact(48, 2);
  micro.micro_batch = 4;
  EXPECT_NE(error_of([&] { (void)micro.resolved_micro_batch(2); }).find("'micro-batch' (4)"),
            std::string::npos);
  TrainConfig accumulate = exact(48, 2);
  accumulate.accumulate = 12;
  EXPECT_EQ(accumulate.resolved_micro_batch(2), 2);  // 12 shards a rank: consistent
  EXPECT_NE(error_of([&] { (void)accumulate.resolved_micro_batch(4); }).find("'accumulate' (12)"),
            std::string::npos);
  // accumulate = shards per rank is a property of the world size: accepted before it is known.
  const auto per_rank = parse({"--data", "d.h5", "--exact", "--batch-size", "32", "--shard-size",
                               "4", "--accumulate", "2"});
  ASSERT_TRUE(per_rank);
  EXPECT_EQ(per_rank->resolved_micro_batch(4), 4);
  EXPECT_NE(error_of([&] { (void)exact(32, 4).resolved_micro_batch(3); })
                .find("'batch-size' (32) must be divisible by the number of ranks (3)"),
            std::string::npos);
  const std::string not_exact = error_of([&] { parse({"--data", "d.h5", "--shard-size", "4"}); });
  EXPECT_NE(not_exact.find("'shard-size' applies to exact mode only"), std::string::npos);
  const std::string divisor =
      error_of([&] { parse({"--data", "d.h5", "--exact", "--shard-size", "5"}); });
  EXPECT_NE(divisor.find("'shard-size' must be 0 or a divisor of batch-size (128)"),
            std::string::npos)
      << divisor;
  const auto parsed = parse({"--data", "d.h5", "--exact", "--shard-size", "16"});
  ASSERT_TRUE(parsed);
  EXPECT_TRUE(parsed->exact);
  EXPECT_EQ(parsed->resolved_micro_batch(8), 16);
}

TEST(Config, IntegersOutsideTheFieldsTypeAreRejected) {
  TrainConfig c;
  const std::string m = error_of([&] { apply_toml("threads = 4294967297\n", "run.toml", c); });
  EXPECT_NE(m.find("'threads' must be in [-2147483648, 2147483647]"), std::string::npos) << m;
  EXPECT_NE(error_of([&] { apply_toml("seed = -1\n", "run.toml", c); }).find("'seed'"),
            std::string::npos);
}

// Values beyond 64 bits: CLI11 2.1 saturated them silently (--steps 2^63 ran INT64_MAX steps, a
// seed of -1 became 2^64 - 1); each is now an error naming the flag. The limits themselves parse.
TEST(Config, FlagsBeyondTheirIntegerTypeAreErrorsNamingTheFlag) {
  for (const auto& [flag, value] : std::vector<std::pair<std::string, std::string>>{
           {"--steps", "9223372036854775808"},
           {"--steps", "99999999999999999999"},
           {"--warmup-steps", "-9223372036854775809"},
           {"--checkpoint-every", "0x10000000000000000"},
           {"--seed", "18446744073709551616"},
           {"--seed", "-1"},
           {"--threads", "99999999999999999999"}}) {
    const std::string m = error_of([&] { parse({"--data", "d.h5", flag, value}); });
    EXPECT_NE(m.find("command line: " + flag + ": "), std::string::npos) << flag << " " << m;
    if (flag != "--threads") {  // int: CLI11's own narrowing check already refused it
      EXPECT_NE(m.find("value " + value + " is out of range"), std::string::npos) << m;
    }
  }
  const auto c = parse({"--data", "d.h5", "--steps", "9223372036854775807", "--seed",
                        "18446744073709551615", "--warmup-steps", "0x10"});
  ASSERT_TRUE(c);
  EXPECT_EQ(c->steps, std::numeric_limits<std::int64_t>::max());
  EXPECT_EQ(c->seed, std::numeric_limits<std::uint64_t>::max());
  EXPECT_EQ(c->warmup_steps, 16);
  const std::string text = error_of([&] { parse({"--data", "d.h5", "--steps", "12abc"}); });
  EXPECT_NE(text.find("--steps"), std::string::npos) << text;  // not a number: CLI11's message
}

// In a TOML file an integer beyond 64 bits is toml++'s syntax error; the message names the key.
TEST(Config, TomlIntegersBeyond64BitsNameTheKey) {
  TrainConfig c;
  const std::string m = error_of(
      [&] { apply_toml("data = 'd.h5'\n\n  steps  = 9223372036854775808 # x\n", "run.toml", c); });
  EXPECT_NE(m.find("run.toml:3:"), std::string::npos) << m;
  EXPECT_NE(m.find("(key 'steps'): TOML syntax error"), std::string::npos) << m;
  EXPECT_NE(m.find("9223372036854775808"), std::string::npos) << m;
  apply_toml("steps = 9223372036854775807\n", "run.toml", c);
  EXPECT_EQ(c.steps, std::numeric_limits<std::int64_t>::max());
}

TEST(Config, CustomModelFromLayerTables) {
  TrainConfig c;
  apply_toml(
      "[model]\n"
      "layers = [ { type = 'flatten' }, { type = 'linear', in = 784, out = 10, bias = false } ]\n",
      "m.toml", c);
  EXPECT_EQ(c.model, "custom");
  ASSERT_EQ(c.layers.size(), 2u);
  EXPECT_EQ(c.layers[1].out, 10);
  EXPECT_FALSE(c.layers[1].bias);
  const std::string m = error_of(
      [&] { apply_toml("[model]\nlayers = [ { type = 'linear', width = 3 } ]\n", "m.toml", c); });
  EXPECT_NE(m.find("model.layers[0].width"), std::string::npos) << m;
}

TEST(Config, GptKeysFromTheModelTableAndFlags) {
  TrainConfig c;
  c.data = "t.h5";
  apply_toml(
      "[model]\nn_layer = 6\nn_head = 8\nn_embd = 256\nblock_size = 32\n"
      "dropout = 0.1\nbias = true\n",
      "g.toml", c);
  EXPECT_EQ(c.model, "gpt");
  EXPECT_EQ(c.n_layer, 6);
  EXPECT_EQ(c.n_head, 8);
  EXPECT_EQ(c.n_embd, 256);
  EXPECT_EQ(c.block_size, 32);
  EXPECT_DOUBLE_EQ(c.dropout, 0.1);
  EXPECT_TRUE(c.bias);
  validate(c);
  const GptConfig g = gpt_config(c);
  EXPECT_EQ(g.n_layer, 6);
  EXPECT_FLOAT_EQ(g.dropout, 0.1f);
  TrainConfig back;
  apply_toml(to_toml(c), "dump", back);
  EXPECT_EQ(to_toml(back), to_toml(c));

  const auto fails = [](const std::vector<std::string>& extra) {
    std::vector<std::string> args = {"--data", "t.h5"};
    args.insert(args.end(), extra.begin(), extra.end());
    return error_of([&] { parse(args); });
  };
  EXPECT_NE(fails({"--model", "gpt", "--n-head", "3"}).find("n_head 3 does not divide n_embd 128"),
            std::string::npos);
  // A gpt key with another model would be ignored: refused instead.
  EXPECT_NE(fails({"--model", "cnn", "--n-layer", "6"}).find("'n-layer' is a key of the gpt"),
            std::string::npos);
  EXPECT_NE(fails({"--model", "gpt", "--augment", "flip"}).find("'augment'"), std::string::npos);
  EXPECT_NE(fails({"--model", "resnet", "--dropout", "0.2"}).find("resnet"), std::string::npos);
  TrainConfig t;
  const std::string m = error_of([&] { apply_toml("[model]\nn_layers = 6\n", "g.toml", t); });
  EXPECT_NE(m.find("unknown key 'model.n_layers'"), std::string::npos) << m;
}

TEST(Config, DumpRoundTrips) {
  TrainConfig c;
  c.data = "fm.h5";
  c.lr = 0.003;
  c.weight_decay = 0.25;
  c.model = "custom";
  c.layers = {LayerSpec{"flatten"}, LayerSpec{"linear", 784, 10}};
  TrainConfig back;
  apply_toml(to_toml(c), "dump", back);
  EXPECT_EQ(to_toml(back), to_toml(c));
  EXPECT_DOUBLE_EQ(back.lr, 0.003);
  EXPECT_EQ(back.layers.size(), 2u);
}

TEST(Config, HelpReturnsNothing) {
  testing::internal::CaptureStdout();
  const auto c = parse({"--help"});
  const std::string out = testing::internal::GetCapturedStdout();
  EXPECT_FALSE(c.has_value());
  for (const char* flag : {"--config", "--model", "--data", "--epochs", "--steps", "--batch-size",
                           "--micro-batch", "--optimizer", "--lr", "--momentum", "--weight-decay",
                           "--lr-schedule", "--warmup-steps", "--seed", "--threads", "--device",
                           "--log-every", "--metrics"}) {
    EXPECT_NE(out.find(flag), std::string::npos) << flag;
  }
}

}  // namespace
}  // namespace dpt::nn
