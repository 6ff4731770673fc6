// SPDX-License-Identifier: MIT
// Checkpoint files and directories: a state round-trips bit for bit; every damaged or malformed
// file is an IoError naming the file and the entry; the directory protocol (tmp, rename, `latest`,
// keep-last) survives a crash at each phase and a full disk.
#include <hdf5.h>
#include <signal.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <bit>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <functional>
#include <iterator>
#include <limits>
#include <optional>
#include <sstream>
#include <string>
#include <vector>

#include "runtime/io/checkpoint_dir.h"
#include "runtime/io/checkpoint_file.h"
#include "runtime/io/h5.h"
#include "runtime/logging.h"
#include "testing/test_util.h"

namespace dpt::io {
namespace {

namespace fs = std::filesystem;
using test_hooks::CheckpointPhase;

// Runs `f` and checks that it throws a dpt::Error of kind kIo whose message (the sentence, without
// the expression and source location) contains every part.
::testing::AssertionResult io_error_with(const std::function<void()>& f,
                                         const std::vector<std::string>& parts) {
  try {
    f();
  } catch (const Error& e) {
    if (e.kind() != ErrorKind::kIo) {
      return ::testing::AssertionFailure() << "kind " << to_string(e.kind()) << ": " << e.what();
    }
    for (const std::string& part : parts) {
      if (e.message().find(part) == std::string::npos) {
        return ::testing::AssertionFailure() << "message lacks \"" << part << "\": " << e.message();
      }
    }
    return ::testing::AssertionSuccess();
  }
  return ::testing::AssertionFailure() << "no exception";
}

std::string read_text(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  return std::string(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
}

void write_text(const std::string& path, const std::string& text) {
  std::ofstream(path, std::ios::binary | std::ios::trunc) << text;
}

// Names of the directory's entries, sorted.
std::vector<std::string> entries(const std::string& dir) {
  std::vector<std::string> names;
  for (const auto& item : fs::directory_iterator(dir))
    names.push_back(item.path().filename().string());
  std::sort(names.begin(), names.end());
  return names;
}

// Flips every bit of the byte at `offset` of `path`.
void flip_byte(const std::string& path, std::uint64_t offset) {
  std::fstream f(path, std::ios::in | std::ios::out | std::ios::binary);
  ASSERT_TRUE(f.good()) << path;
  f.seekg(static_cast<std::streamoff>(offset));
  char byte = 0;
  ASSERT_TRUE(f.read(&byte, 1)) << path << " offset " << offset;
  byte = static_cast<char>(~byte);
  f.seekp(static_cast<std::streamoff>(offset));
  ASSERT_TRUE(f.write(&byte, 1)) << path << " offset " << offset;
}

// Flips a byte in the middle of the first chunk of `dataset` (e.g. "/model/fc.weight"); the
// chunk's Fletcher32 checksum (its last 4 bytes) is left as written.
void corrupt_first_chunk(const std::string& path, const std::string& dataset) {
  haddr_t address = HADDR_UNDEF;
  hsize_t chunk_bytes = 0;
  {
    const H5Handle file = h5::open_file_read(path);
    const H5Handle d = h5::open_dataset(file.get(), dataset);
    const H5Handle space(H5Dget_space(d.get()));
    hsize_t offset[H5S_MAX_RANK] = {};
    unsigned filter_mask = 0;
    ASSERT_GE(
        H5Dget_chunk_info(d.get(), space.get(), 0, offset, &filter_mask, &address, &chunk_bytes), 0)
        << path << ":" << dataset;
    ASSERT_NE(address, HADDR_UNDEF);
    ASSERT_GT(chunk_bytes, 8u);  // data plus the 4-byte checksum
  }
  flip_byte(path, address + (chunk_bytes - 4) / 2);
}

// A small AdamW state: two parameters, two slots each, every field set to a recognizable value.
// Parameters, slots and hyper-parameters are in name order (the order a reader lists them).
CheckpointState make_state(std::int64_t step, std::int64_t rows = 3) {
  CheckpointState s;
  s.step = step;
  s.epoch = 2 + step;
  s.samples_seen = step * 32;
  s.world_size = 4;
  s.global_batch = 32;
  s.seed = std::numeric_limits<std::uint64_t>::max() - 12345;  // > INT64_MAX
  s.config =
      "[train]\nlr = 0.001\nbatch-size = 32\nnote = \"unique-config-marker\"\n"
      "[model]\nname = \"mlp\"\n";
  s.model_layers = R"([{"type":"linear","name":"fc","in":2,"out":3}])";
  Tensor bias = test::random_tensor({rows}, 100 + static_cast<std::uint64_t>(step));
  Tensor weight = test::random_tensor({rows, 2}, 200 + static_cast<std::uint64_t>(step));
  // Values a lossy path would change: negative zero, a denormal, infinity, a NaN with a payload.
  weight.data<float>()[0] = -0.0f;
  weight.data<float>()[1] = std::numeric_limits<float>::denorm_min();
  weight.data<float>()[2] = std::numeric_limits<float>::infinity();
  weight.data<float>()[3] = std::bit_cast<float>(0x7fc12345u);
  s.model = {{"fc.bias", bias}, {"fc.weight", weight}};
  s.optimizer_kind = "adamw";
  s.optimizer_steps = step + 1000;
  s.lr = 0.1;
  s.lr_schedule = "cosine";
  s.hyper = {{"beta1", 0.9}, {"beta2", 0.999}, {"eps", 1e-8}, {"weight_decay", 0.01}};
  s.slot_names = {"exp_avg", "exp_avg_sq"};
  std::uint64_t seed = 300;
  for (const NamedTensor& p : s.model) {
    for (const std::string& slot : s.slot_names) {
      s.slots.push_back({p.name + "/" + slot, test::random_tensor(p.value.shape(), seed++)});
    }
  }
  return s;
}

void expect_same_tensors(const std::vector<NamedTensor>& actual,
                         const std::vector<NamedTensor>& expected, const std::string& what) {
  ASSERT_EQ(actual.size(), expected.size()) << what;
  for (std::size_t i = 0; i < actual.size(); ++i) {
    const Tensor& a = actual[i].value;
    const Tensor& e = expected[i].value;
    EXPECT_EQ(actual[i].name, expected[i].name) << what << " " << i;
    EXPECT_EQ(a.dtype(), DType::kF32) << what << " " << expected[i].name;
    ASSERT_EQ(a.shape(), e.shape()) << what << " " << expected[i].name;
    EXPECT_EQ(0, std::memcmp(a.data<float>(), e.data<float>(), e.size_bytes()))
        << what << " " << expected[i].name << " differs bitwise";
  }
}

void expect_same_model_part(const CheckpointState& a, const CheckpointState& e) {
  EXPECT_EQ(a.step, e.step);
  EXPECT_EQ(a.epoch, e.epoch);
  EXPECT_EQ(a.samples_seen, e.samples_seen);
  EXPECT_EQ(a.world_size, e.world_size);
  EXPECT_EQ(a.global_batch, e.global_batch);
  EXPECT_EQ(a.seed, e.seed);
  EXPECT_EQ(a.config, e.config);
  EXPECT_EQ(a.model_layers, e.model_layers);
  expect_same_tensors(a.model, e.model, "model");
}

void expect_same_state(const CheckpointState& a, const CheckpointState& e) {
  expect_same_model_part(a, e);
  EXPECT_EQ(a.optimizer_kind, e.optimizer_kind);
  EXPECT_EQ(a.optimizer_steps, e.optimizer_steps);
  EXPECT_EQ(std::bit_cast<std::uint64_t>(a.lr), std::bit_cast<std::uint64_t>(e.lr));
  EXPECT_EQ(a.lr_schedule, e.lr_schedule);
  ASSERT_EQ(a.hyper.size(), e.hyper.size());
  for (std::size_t i = 0; i < a.hyper.size(); ++i) {
    EXPECT_EQ(a.hyper[i].first, e.hyper[i].first);
    EXPECT_EQ(std::bit_cast<std::uint64_t>(a.hyper[i].second),
              std::bit_cast<std::uint64_t>(e.hyper[i].second))
        << e.hyper[i].first;
  }
  EXPECT_EQ(a.slot_names, e.slot_names);
  expect_same_tensors(a.slots, e.slots, "slots");
}

// Opens a written file for modification with the HDF5 C API.
H5Handle open_rw(const std::string& path) {
  h5::init();
  return H5Handle(H5Fopen(path.c_str(), H5F_ACC_RDWR, H5P_DEFAULT), "open " + path);
}

// ---- one file -----------------------------------------------------------------------------------

class CheckpointFileTest : public ::testing::Test {
 protected:
  std::string path(const std::string& name = "ckpt.h5") const { return (dir_ / name).string(); }
  // Writes a good checkpoint, lets `edit` damage it, and expects read_checkpoint_file to fail with
  // an IoError naming the file and every part.
  ::testing::AssertionResult bad(const std::function<void(hid_t)>& edit,
                                 std::vector<std::string> parts) {
    write_checkpoint_file(path(), make_state(5));
    {
      const H5Handle file = open_rw(path());
      edit(file.get());
    }
    parts.push_back(path());
    return io_error_with([&] { read_checkpoint_file(path()); }, parts);
  }
  test::TempDir dir_;
};

TEST_F(CheckpointFileTest, RoundTripIsBitwise) {
  const CheckpointState state = make_state(7);
  write_checkpoint_file(path(), state);
  const CheckpointState back = read_checkpoint_file(path());
  expect_same_state(back, state);
  EXPECT_GT(back.seed, static_cast<std::uint64_t>(std::numeric_limits<std::int64_t>::max()));
  EXPECT_TRUE(is_checkpoint_file(path()));

  // The largest seed, and a state without optimizer slots (SGD without momentum).
  CheckpointState sgd = make_state(8);
  sgd.seed = std::numeric_limits<std::uint64_t>::max();
  sgd.optimizer_kind = "sgd";
  sgd.hyper = {{"momentum", 0.0}};
  sgd.slot_names.clear();
  sgd.slots.clear();
  write_checkpoint_file(path("sgd.h5"), sgd);
  expect_same_state(read_checkpoint_file(path("sgd.h5")), sgd);
}

TEST_F(CheckpointFileTest, DatasetsAreChecksummedAndFormatIs18OrLater) {
  const CheckpointState state = make_state(3);
  write_checkpoint_file(path(), state);
  const H5Handle file = h5::open_file_read(path());
  H5F_info2_t info{};
  ASSERT_GE(H5Fget_info2(file.get(), &info), 0);
  EXPECT_GE(info.super.version, 2u) << "superblock version 2+ means the HDF5 1.8+ format";

  std::vector<std::string> names;
  for (const NamedTensor& p : state.model) names.push_back("/model/" + p.name);
  for (const NamedTensor& s : state.slots) names.push_back("/optimizer/" + s.name);
  ASSERT_EQ(names.size(), 6u);
  for (const std::string& name : names) {
    ASSERT_TRUE(h5::is_dataset(file.get(), name)) << name;
    const H5Handle d = h5::open_dataset(file.get(), name);
    const h5::DatasetInfo ds = h5::dataset_info(d.get());
    EXPECT_EQ(ds.dtype, "float32") << name;
    EXPECT_EQ(ds.filters, std::vector<std::string>{"fletcher32"}) << name;
  }
  const H5Handle model = h5::open_group(file.get(), "/model");
  EXPECT_EQ(h5::list_children(model.get()), (std::vector<std::string>{"fc.bias", "fc.weight"}));
  EXPECT_EQ(h5::read_attribute_string(file.get(), "format"), kCheckpointFormat);
  EXPECT_EQ(h5::read_attribute_int(file.get(), "format_version"), kCheckpointFormatVersion);
}

TEST_F(CheckpointFileTest, TruncatedFile) {
  write_checkpoint_file(path("good.h5"), make_state(5));
  const std::string whole = read_text(path("good.h5"));
  ASSERT_GT(whole.size(), 1000u);
  write_text(path(), whole.substr(0, whole.size() / 2));
  EXPECT_TRUE(
      io_error_with([&] { read_checkpoint_file(path()); }, {path(), "cannot open", "truncated"}));
  EXPECT_FALSE(is_checkpoint_file(path()));
}

TEST_F(CheckpointFileTest, WrongFormat) {
  EXPECT_TRUE(bad([](hid_t f) { h5::write_attribute_string(f, "format", "something"); },
                  {"attribute 'format' of /", "expected \"dptrain-checkpoint\"",
                   "found \"something\"", "not a dptrain checkpoint"}));
  EXPECT_FALSE(is_checkpoint_file(path()));
}

TEST_F(CheckpointFileTest, NewerFormatVersion) {
  EXPECT_TRUE(bad([](hid_t f) { h5::write_attribute_int(f, "format_version", 2); },
                  {"attribute 'format_version' of /", "found 2", "newer"}));
  EXPECT_TRUE(is_checkpoint_file(path())) << "any version is ours: pruning may delete it";
}

TEST_F(CheckpointFileTest, ModelDatasetNotFloat32) {
  EXPECT_TRUE(bad(
      [](hid_t f) {
        ASSERT_GE(H5Ldelete(f, "/model/fc.weight", H5P_DEFAULT), 0);
        const std::vector<double> values(6, 0.5);
        h5::write_dataset<double>(f, "/model/fc.weight", {3, 2}, values.data());
      },
      {"/model/fc.weight", "expected float32", "found float64"}));
}

TEST_F(CheckpointFileTest, MissingOptimizerSlot) {
  EXPECT_TRUE(bad(
      [](hid_t f) { ASSERT_GE(H5Ldelete(f, "/optimizer/fc.weight/exp_avg_sq", H5P_DEFAULT), 0); },
      {"/optimizer/fc.weight/exp_avg_sq", "missing"}));
}

TEST_F(CheckpointFileTest, MissingRootAttribute) {
  EXPECT_TRUE(bad([](hid_t f) { ASSERT_GE(H5Adelete(f, "step"), 0); },
                  {"attribute 'step' of /", "missing", "expected an integer"}));
  EXPECT_TRUE(bad([](hid_t f) { ASSERT_GE(H5Adelete(f, "seed"), 0); },
                  {"attribute 'seed' of /", "missing"}));
}

TEST_F(CheckpointFileTest, BitFlipInWeightChunk) {
  const CheckpointState state = make_state(5);
  write_checkpoint_file(path(), state);
  ASSERT_NO_FATAL_FAILURE(corrupt_first_chunk(path(), "/model/fc.weight"));
  EXPECT_TRUE(io_error_with([&] { read_checkpoint_file(path()); },
                            {path(), "/model/fc.weight", "Fletcher32"}));
  EXPECT_TRUE(
      io_error_with([&] { read_model_file(path()); }, {path(), "/model/fc.weight", "Fletcher32"}));
}

TEST_F(CheckpointFileTest, BitFlipInOptimizerSlotChunk) {
  write_checkpoint_file(path(), make_state(5));
  ASSERT_NO_FATAL_FAILURE(corrupt_first_chunk(path(), "/optimizer/fc.bias/exp_avg"));
  EXPECT_TRUE(io_error_with([&] { read_checkpoint_file(path()); },
                            {path(), "/optimizer/fc.bias/exp_avg", "Fletcher32"}));
  // The model part alone is intact.
  EXPECT_NO_THROW(read_model_file(path()));
}

TEST_F(CheckpointFileTest, BitFlipInConfigAttribute) {
  write_checkpoint_file(path(), make_state(5));
  const std::string bytes = read_text(path());
  const std::string marker = "unique-config-marker";
  const std::size_t at = bytes.find(marker);
  ASSERT_NE(at, std::string::npos) << "the config text is stored as plain bytes";
  ASSERT_EQ(bytes.find(marker, at + 1), std::string::npos) << "the marker is unique";
  ASSERT_NO_FATAL_FAILURE(flip_byte(path(), at + 7));
  EXPECT_TRUE(io_error_with([&] { read_checkpoint_file(path()); },
                            {path(), "attribute '", "' of /", "checksum"}));
}

TEST_F(CheckpointFileTest, ExportedModelFile) {
  const CheckpointState state = make_state(9);
  write_model_file(path("model.h5"), state);
  EXPECT_FALSE(fs::exists(path("model.h5") + ".tmp"));
  {
    const H5Handle file = h5::open_file_read(path("model.h5"));
    EXPECT_EQ(h5::read_attribute_string(file.get(), "format"), kModelFormat);
    EXPECT_FALSE(h5::exists(file.get(), "/optimizer"));
  }
  const CheckpointState model = read_model_file(path("model.h5"));
  expect_same_model_part(model, state);
  EXPECT_TRUE(model.optimizer_kind.empty());
  EXPECT_TRUE(model.slot_names.empty());
  EXPECT_TRUE(model.slots.empty());
  EXPECT_TRUE(model.hyper.empty());

  EXPECT_TRUE(io_error_with([&] { read_checkpoint_file(path("model.h5")); },
                            {path("model.h5"), "attribute 'format' of /",
                             "expected \"dptrain-checkpoint\"", "found \"dptrain-model\""}));
  EXPECT_FALSE(is_checkpoint_file(path("model.h5"))) << "keep-last must never delete it";

  // read_model_file also takes a checkpoint, and leaves the optimizer out.
  write_checkpoint_file(path(), state);
  const CheckpointState from_checkpoint = read_model_file(path());
  expect_same_model_part(from_checkpoint, state);
  EXPECT_TRUE(from_checkpoint.slots.empty());
}

TEST_F(CheckpointFileTest, TensorFile) {
  const Tensor logits = test::random_tensor({4, 3}, 1);
  const Tensor nested = test::random_tensor({2}, 2);
  write_tensor_file(path("logits.h5"), {{"logits", logits}, {"eval/labels", nested}});
  EXPECT_FALSE(fs::exists(path("logits.h5") + ".tmp"));
  const H5Handle file = h5::open_file_read(path("logits.h5"));
  const std::vector<std::int64_t> shape{4, 3};
  const std::vector<float> values = h5::read_dataset<float>(file.get(), "/logits", &shape);
  EXPECT_EQ(0, std::memcmp(values.data(), logits.data<float>(), logits.size_bytes()));
  EXPECT_EQ(h5::read_dataset<float>(file.get(), "/eval/labels"),
            std::vector<float>(nested.data<float>(), nested.data<float>() + 2));
}

TEST_F(CheckpointFileTest, IsCheckpointFileNeverThrows) {
  EXPECT_FALSE(is_checkpoint_file(path("absent.h5")));
  write_text(path("text.h5"), "not hdf5\n");
  EXPECT_FALSE(is_checkpoint_file(path("text.h5")));
  EXPECT_FALSE(is_checkpoint_file(dir_.path().string()));
}

// ---- the directory ------------------------------------------------------------------------------

class CheckpointDirTest : public ::testing::Test {
 protected:
  std::string path(const std::string& name) const { return (dir_ / name).string(); }
  std::string ckpt_path() const { return path("ckpt"); }
  std::string in_ckpt(const std::string& name) const {
    return (fs::path(ckpt_path()) / name).string();
  }
  test::TempDir dir_;
};

TEST_F(CheckpointDirTest, PrepareCreatesNestedDirectory) {
  const std::string nested = path("a/b/c");
  const CheckpointDir dir(nested);
  EXPECT_EQ(dir.path(), nested);
  dir.prepare();
  EXPECT_TRUE(fs::is_directory(nested));
  EXPECT_TRUE(entries(nested).empty()) << "the write probe is removed";
  dir.prepare();  // an existing directory is fine
  EXPECT_TRUE(entries(nested).empty());
  EXPECT_FALSE(dir.latest().has_value());
  EXPECT_TRUE(dir.list().empty());
}

TEST_F(CheckpointDirTest, PrepareRejectsPathUnderAFile) {
  write_text(path("file"), "x");
  const std::string under = path("file/sub");
  EXPECT_TRUE(io_error_with([&] { CheckpointDir(under).prepare(); },
                            {"checkpoint directory " + under, "cannot create it"}));
  EXPECT_TRUE(io_error_with([&] { CheckpointDir(path("file")).prepare(); },
                            {"checkpoint directory " + path("file")}));
}

TEST_F(CheckpointDirTest, PrepareRejectsReadOnlyDirectory) {
  if (::geteuid() == 0) GTEST_SKIP() << "root bypasses permission bits";
  const std::string ro = path("ro");
  fs::create_directory(ro);
  ASSERT_EQ(::chmod(ro.c_str(), 0555), 0);
  EXPECT_TRUE(io_error_with([&] { CheckpointDir(ro).prepare(); },
                            {"checkpoint directory " + ro, "not writable"}));
  EXPECT_TRUE(io_error_with([&] { CheckpointDir(ro + "/sub").prepare(); },
                            {"checkpoint directory " + ro + "/sub", "cannot create it"}));
  ::chmod(ro.c_str(), 0755);
}

TEST_F(CheckpointDirTest, SaveWritesFileAndLatest) {
  const CheckpointDir dir(ckpt_path());
  dir.prepare();
  const CheckpointState state = make_state(5);
  const std::string written = dir.save(state, 0);
  EXPECT_EQ(written, in_ckpt("step-5.h5"));
  EXPECT_EQ(checkpoint_file_name(5), "step-5.h5");
  EXPECT_EQ(read_text(in_ckpt("latest")), "step-5.h5\n");
  EXPECT_EQ(entries(ckpt_path()), (std::vector<std::string>{"latest", "step-5.h5"}));
  expect_same_state(read_checkpoint_file(written), state);
  const auto latest = dir.latest();
  ASSERT_TRUE(latest.has_value());
  EXPECT_EQ(latest->step, 5);
  EXPECT_EQ(latest->path, written);
}

TEST_F(CheckpointDirTest, ListIsNewestFirstByNumber) {
  const CheckpointDir dir(ckpt_path());
  dir.prepare();
  for (std::int64_t step : {2, 10, 9}) dir.save(make_state(step), 0);
  write_text(in_ckpt("step-x.h5"), "not a step name");
  write_text(in_ckpt("step-3.h5.tmp"), "a temporary");
  fs::create_directory(in_ckpt("step-11.h5"));  // not a regular file
  const std::vector<CheckpointRef> list = dir.list();
  ASSERT_EQ(list.size(), 3u);
  EXPECT_EQ(list[0].step, 10);
  EXPECT_EQ(list[0].path, in_ckpt("step-10.h5"));
  EXPECT_EQ(list[1].step, 9);
  EXPECT_EQ(list[2].step, 2);
  EXPECT_EQ(read_text(in_ckpt("latest")), "step-9.h5\n") << "latest is the last saved";
}

TEST_F(CheckpointDirTest, KeepLastRemovesOnlyOlderCheckpoints) {
  test::AllowWarnings allow;  // "leaving step-0.h5 alone: it is not a dptrain checkpoint"
  const CheckpointDir dir(ckpt_path());
  dir.prepare();
  write_text(in_ckpt("step-0.h5"), "my notes, not a checkpoint\n");
  // Newer than every checkpoint, but not one: it must not take the place of a kept checkpoint.
  write_text(in_ckpt("step-9.h5"), "not a checkpoint either\n");
  write_text(in_ckpt("notes.txt"), "unrelated\n");
  for (std::int64_t step = 1; step <= 4; ++step) dir.save(make_state(step), 2);
  EXPECT_EQ(entries(ckpt_path()),
            (std::vector<std::string>{"latest", "notes.txt", "step-0.h5", "step-3.h5", "step-4.h5",
                                      "step-9.h5"}));
  EXPECT_EQ(read_text(in_ckpt("step-0.h5")), "my notes, not a checkpoint\n");
  EXPECT_EQ(read_text(in_ckpt("step-9.h5")), "not a checkpoint either\n");
  EXPECT_EQ(read_text(in_ckpt("latest")), "step-4.h5\n");
  EXPECT_EQ(read_checkpoint_file(in_ckpt("step-3.h5")).step, 3);

  // keep_last <= 0 keeps everything.
  dir.save(make_state(5), 0);
  dir.save(make_state(6), -1);
  EXPECT_EQ(dir.list().size(), 6u);  // 6, 5, 4, 3 and the text files step-0.h5, step-9.h5
}

TEST_F(CheckpointDirTest, StaleTemporariesAreRemoved) {
  const CheckpointDir dir(ckpt_path());
  dir.prepare();
  dir.save(make_state(3), 0);
  for (const char* name : {"step-7.h5.tmp", "latest.tmp", "notes.tmp"}) {
    write_text(in_ckpt(name), "left behind");
  }
  dir.prepare();
  EXPECT_EQ(entries(ckpt_path()), (std::vector<std::string>{"latest", "notes.tmp", "step-3.h5"}));

  for (const char* name : {"step-7.h5.tmp", "latest.tmp"}) write_text(in_ckpt(name), "again");
  const auto found = dir.load_newest();
  ASSERT_TRUE(found.has_value());
  EXPECT_EQ(found->state.step, 3);
  EXPECT_EQ(entries(ckpt_path()), (std::vector<std::string>{"latest", "notes.tmp", "step-3.h5"}));
}

// `latest` holds anything but a bare step-<n>.h5: an IoError naming <dir>/latest.
TEST_F(CheckpointDirTest, LatestRejectsAnythingButABareName) {
  const CheckpointDir dir(ckpt_path());
  dir.prepare();
  const std::string latest = in_ckpt("latest");
  for (const std::string text :
       {"../x", "/etc/passwd", "sub/step-1.h5", "step-1.h5.tmp", "garbage", "", "\n",
        "../step-1.h5", "step--1.h5", "step-.h5", "step-1.h5\nstep-2.h5\n"}) {
    write_text(latest, text);
    EXPECT_TRUE(io_error_with([&] { dir.latest(); }, {latest, "expected"})) << "\"" << text << "\"";
    EXPECT_TRUE(io_error_with([&] { dir.load_newest(); }, {latest})) << "\"" << text << "\"";
  }
}

// A `latest` that is a symbolic link out of the directory is refused before it is read: the error
// names the link and its target and shows none of the file's content (it used to show the first
// 64 bytes of whatever the link reached).
TEST_F(CheckpointDirTest, LatestLinkLeadingOutsideIsRefusedUnread) {
  const CheckpointDir dir(ckpt_path());
  dir.prepare();
  const std::string secret = path("secret.txt");
  write_text(secret, "SECRET-TOKEN-1234\n");
  const std::string latest = in_ckpt("latest");
  for (const std::string& target : {secret, std::string("../secret.txt"), path("absent")}) {
    fs::remove(latest);
    fs::create_symlink(target, latest);
    for (const auto& call : std::vector<std::function<void()>>{[&] { dir.latest(); },
                                                               [&] { dir.load_newest(); },
                                                               [&] { dir.prepare(); }}) {
      try {
        call();
        ADD_FAILURE() << "no error for latest -> " << target;
      } catch (const Error& e) {
        const std::string what = e.what();
        EXPECT_EQ(e.kind(), ErrorKind::kIo) << what;
        EXPECT_NE(what.find(latest + " is a symbolic link to " + target +
                            ", outside the checkpoint directory " + ckpt_path()),
                  std::string::npos)
            << what;
        EXPECT_EQ(what.find("SECRET"), std::string::npos) << what;
      }
    }
  }
  // A link that stays inside is followed.
  write_text(in_ckpt("latest.real"), "step-4.h5\n");
  fs::remove(latest);
  fs::create_symlink("latest.real", latest);
  ASSERT_TRUE(dir.latest().has_value());
  EXPECT_EQ(dir.latest()->step, 4);
}

// A step-<n>.h5 that is a symbolic link out of the directory is refused (by list, so by the
// newest-good search, pruning and prepare), naming the link and its target; it used to be loaded
// as the newest checkpoint. A link to a checkpoint inside the directory is followed.
TEST_F(CheckpointDirTest, CheckpointLinkLeadingOutsideIsRefused) {
  const CheckpointDir dir(ckpt_path());
  dir.prepare();
  dir.save(make_state(2), 0);
  const std::string elsewhere = path("elsewhere");
  CheckpointDir(elsewhere).prepare();
  const std::string foreign = CheckpointDir(elsewhere).save(make_state(9), 0);
  const std::string link = in_ckpt("step-9.h5");
  fs::create_symlink(foreign, link);
  const std::string message = link + " is a symbolic link to " + foreign +
                              ", outside the checkpoint directory " + ckpt_path();
  EXPECT_TRUE(io_error_with([&] { dir.list(); }, {message}));
  EXPECT_TRUE(io_error_with([&] { dir.load_newest(); }, {message}));
  EXPECT_TRUE(io_error_with([&] { dir.prepare(); }, {message}));
  EXPECT_TRUE(io_error_with([&] { dir.save(make_state(3), 1); }, {message}));  // its pruning
  // Through a link to a directory outside, too.
  fs::remove(link);
  fs::create_directory_symlink(elsewhere, in_ckpt("archive"));
  fs::create_symlink("archive/step-9.h5", link);
  EXPECT_TRUE(io_error_with([&] { dir.list(); }, {link + " is a symbolic link to archive/step-9.h5"}));

  fs::remove(link);
  fs::remove(in_ckpt("archive"));
  fs::create_directory(in_ckpt("kept"));
  fs::copy_file(foreign, in_ckpt("kept/nine.h5"));
  fs::create_symlink("kept/nine.h5", link);
  const auto found = dir.load_newest();
  ASSERT_TRUE(found.has_value());
  EXPECT_EQ(found->path, link);
  EXPECT_EQ(found->state.step, 9);
}

TEST_F(CheckpointDirTest, LatestAcceptsNameWithOrWithoutNewline) {
  const CheckpointDir dir(ckpt_path());
  dir.prepare();
  EXPECT_FALSE(dir.latest().has_value()) << "no `latest` yet";
  for (const std::string text : {"step-12.h5\n", "step-12.h5"}) {
    write_text(in_ckpt("latest"), text);
    const auto latest = dir.latest();
    ASSERT_TRUE(latest.has_value()) << "\"" << text << "\"";
    EXPECT_EQ(latest->step, 12);
    EXPECT_EQ(latest->path, in_ckpt("step-12.h5"));
  }
}

TEST_F(CheckpointDirTest, LoadNewestReturnsTheNewest) {
  const CheckpointDir dir(ckpt_path());
  dir.prepare();
  for (std::int64_t step = 1; step <= 3; ++step) dir.save(make_state(step), 0);
  const auto found = dir.load_newest();
  ASSERT_TRUE(found.has_value());
  EXPECT_EQ(found->path, in_ckpt("step-3.h5"));
  EXPECT_TRUE(found->skipped.empty());
  expect_same_state(found->state, make_state(3));
}

TEST_F(CheckpointDirTest, LoadNewestSkipsADamagedNewest) {
  const CheckpointDir dir(ckpt_path());
  dir.prepare();
  for (std::int64_t step = 1; step <= 3; ++step) dir.save(make_state(step), 0);
  ASSERT_NO_FATAL_FAILURE(corrupt_first_chunk(in_ckpt("step-3.h5"), "/model/fc.weight"));
  const auto found = dir.load_newest();
  ASSERT_TRUE(found.has_value());
  EXPECT_EQ(found->path, in_ckpt("step-2.h5"));
  EXPECT_EQ(found->state.step, 2);
  ASSERT_EQ(found->skipped.size(), 1u);
  EXPECT_NE(found->skipped[0].find(in_ckpt("step-3.h5")), std::string::npos) << found->skipped[0];
  EXPECT_NE(found->skipped[0].find("Fletcher32"), std::string::npos) << found->skipped[0];
}

TEST_F(CheckpointDirTest, LoadNewestOnEmptyOrMissingDirectory) {
  EXPECT_FALSE(CheckpointDir(path("absent")).load_newest().has_value());
  EXPECT_FALSE(fs::exists(path("absent"))) << "load_newest creates nothing";
  const CheckpointDir dir(ckpt_path());
  dir.prepare();
  EXPECT_FALSE(dir.load_newest().has_value());
}

TEST_F(CheckpointDirTest, LoadNewestThrowsWhenEveryCheckpointIsDamaged) {
  const CheckpointDir dir(ckpt_path());
  dir.prepare();
  for (std::int64_t step = 1; step <= 2; ++step) dir.save(make_state(step), 0);
  ASSERT_NO_FATAL_FAILURE(corrupt_first_chunk(in_ckpt("step-1.h5"), "/model/fc.weight"));
  ASSERT_NO_FATAL_FAILURE(corrupt_first_chunk(in_ckpt("step-2.h5"), "/model/fc.bias"));
  EXPECT_TRUE(
      io_error_with([&] { dir.load_newest(); },
                    {"checkpoint directory " + ckpt_path(), "none reads back", in_ckpt("step-1.h5"),
                     in_ckpt("step-2.h5"), "/model/fc.weight", "/model/fc.bias"}));
}

TEST_F(CheckpointDirTest, LoadNewestPrefersAFileNewerThanLatest) {
  const CheckpointDir dir(ckpt_path());
  dir.prepare();
  for (std::int64_t step = 1; step <= 2; ++step) dir.save(make_state(step), 0);
  // A crash between the rename of step-3.h5 and the update of `latest`.
  write_checkpoint_file(in_ckpt("step-3.h5"), make_state(3));
  EXPECT_EQ(dir.latest()->step, 2);
  const auto found = dir.load_newest();
  ASSERT_TRUE(found.has_value());
  EXPECT_EQ(found->path, in_ckpt("step-3.h5"));
  EXPECT_EQ(found->state.step, 3);
  EXPECT_TRUE(found->skipped.empty());
}

TEST_F(CheckpointDirTest, LoadNewestReportsAMissingLatestFile) {
  const CheckpointDir dir(ckpt_path());
  dir.prepare();
  dir.save(make_state(1), 0);
  write_text(in_ckpt("latest"), "step-4.h5\n");
  const auto found = dir.load_newest();
  ASSERT_TRUE(found.has_value());
  EXPECT_EQ(found->state.step, 1);
  ASSERT_EQ(found->skipped.size(), 1u);
  EXPECT_NE(found->skipped[0].find(in_ckpt("step-4.h5")), std::string::npos) << found->skipped[0];
  EXPECT_NE(found->skipped[0].find("missing"), std::string::npos) << found->skipped[0];
}

TEST_F(CheckpointDirTest, LoadNewestRejectsAStepThatDisagreesWithTheName) {
  const CheckpointDir dir(ckpt_path());
  dir.prepare();
  dir.save(make_state(1), 0);
  write_checkpoint_file(in_ckpt("step-2.h5"), make_state(7));  // renamed by hand
  const auto found = dir.load_newest();
  ASSERT_TRUE(found.has_value());
  EXPECT_EQ(found->state.step, 1);
  ASSERT_EQ(found->skipped.size(), 1u);
  EXPECT_NE(found->skipped[0].find("attribute 'step' of / is 7"), std::string::npos)
      << found->skipped[0];
}

// ---- crash points -------------------------------------------------------------------------------

// The directory of a test whose death tests run in the "threadsafe" style: there the child
// re-runs the test body from the start in a new process, so it must find the parent's directory
// (not make its own) and must skip the parent's set-up. The parent shares the path through an
// environment variable, which the child inherits.
class SharedDir {
 public:
  SharedDir() : old_style_(GTEST_FLAG_GET(death_test_style)) {
    GTEST_FLAG_SET(death_test_style, "threadsafe");
    if (const char* inherited = std::getenv(kVariable)) {
      child_ = true;
      path_ = inherited;
    } else {
      owner_.emplace();
      path_ = (owner_->path() / "ckpt").string();
    }
  }
  SharedDir(const SharedDir&) = delete;
  SharedDir& operator=(const SharedDir&) = delete;
  ~SharedDir() {
    if (!child_) ::unsetenv(kVariable);
    GTEST_FLAG_SET(death_test_style, old_style_);
  }
  // True in the death test's child process.
  bool child() const { return child_; }
  const std::string& path() const { return path_; }
  std::string operator/(const std::string& name) const { return (fs::path(path_) / name).string(); }
  // A file next to the directory (not in it), for what the child reports back.
  std::string side_file(const std::string& name) const {
    return (fs::path(path_).parent_path() / name).string();
  }
  // Called by the parent, after its set-up, before the death test.
  void share() const { ASSERT_EQ(::setenv(kVariable, path_.c_str(), 1), 0); }

 private:
  static constexpr const char* kVariable = "DPT_CHECKPOINT_TEST_DIR";
  std::string old_style_;
  bool child_ = false;
  std::string path_;
  std::optional<test::TempDir> owner_;
};

// Read by the hook in the child process; each crash test sets it before its death test.
CheckpointPhase g_crash_phase = CheckpointPhase::kTmpWritten;

// Dies with 42 at the chosen phase, or with 43 if the hook is handed an unexpected path.
void crash_at_phase(CheckpointPhase phase, const std::string& path) {
  if (phase != g_crash_phase) return;
  // The checkpoint's path: the .tmp at kTmpWritten, step-<n>.h5 after that.
  const char* expected = phase == CheckpointPhase::kTmpWritten ? "/step-2.h5.tmp" : "/step-2.h5";
  std::_Exit(path.ends_with(expected) ? 42 : 43);
}

// Saves step 1 (in the parent), then dies at `phase` while saving step 2 (in a child process).
void crash_while_saving_step_2(const SharedDir& dir, CheckpointPhase phase) {
  const CheckpointDir ckpt(dir.path());
  if (!dir.child()) {
    ckpt.prepare();
    ckpt.save(make_state(1), 0);
    ASSERT_NO_FATAL_FAILURE(dir.share());
  }
  g_crash_phase = phase;
  EXPECT_EXIT(
      {
        test_hooks::set_checkpoint_crash_hook(crash_at_phase);
        ckpt.save(make_state(2), 0);
      },
      ::testing::ExitedWithCode(42), "")
      << "phase " << static_cast<int>(phase);
  test_hooks::set_checkpoint_crash_hook(nullptr);
}

TEST(CheckpointCrash, AfterTmpWritten) {
  const SharedDir dir;
  ASSERT_NO_FATAL_FAILURE(crash_while_saving_step_2(dir, CheckpointPhase::kTmpWritten));
  const CheckpointDir ckpt(dir.path());
  EXPECT_EQ(read_text(dir / "latest"), "step-1.h5\n");
  ASSERT_TRUE(fs::exists(dir / "step-2.h5.tmp")) << "the child died after writing the .tmp";
  EXPECT_FALSE(fs::exists(dir / "step-2.h5"));
  EXPECT_EQ(read_checkpoint_file(dir / "step-2.h5.tmp").step, 2)
      << "the .tmp was complete before the rename";

  const auto found = ckpt.load_newest();
  ASSERT_TRUE(found.has_value());
  EXPECT_EQ(found->state.step, 1);
  EXPECT_EQ(found->path, dir / "step-1.h5");
  EXPECT_TRUE(found->skipped.empty());
  EXPECT_FALSE(fs::exists(dir / "step-2.h5.tmp")) << "load_newest removes the stale .tmp";
  ckpt.prepare();
  EXPECT_EQ(entries(dir.path()), (std::vector<std::string>{"latest", "step-1.h5"}));
}

TEST(CheckpointCrash, AfterRenamed) {
  const SharedDir dir;
  ASSERT_NO_FATAL_FAILURE(crash_while_saving_step_2(dir, CheckpointPhase::kRenamed));
  const CheckpointDir ckpt(dir.path());
  EXPECT_EQ(read_text(dir / "latest"), "step-1.h5\n");
  EXPECT_EQ(ckpt.latest()->step, 1);
  const auto found = ckpt.load_newest();
  ASSERT_TRUE(found.has_value());
  EXPECT_EQ(found->state.step, 2) << "the renamed file is complete";
  EXPECT_EQ(found->path, dir / "step-2.h5");
  EXPECT_TRUE(found->skipped.empty());
  ckpt.prepare();
  EXPECT_EQ(entries(dir.path()), (std::vector<std::string>{"latest", "step-1.h5", "step-2.h5"}));
}

TEST(CheckpointCrash, AfterLatestUpdated) {
  const SharedDir dir;
  ASSERT_NO_FATAL_FAILURE(crash_while_saving_step_2(dir, CheckpointPhase::kLatestUpdated));
  const CheckpointDir ckpt(dir.path());
  EXPECT_EQ(read_text(dir / "latest"), "step-2.h5\n");
  EXPECT_EQ(ckpt.latest()->step, 2);
  const auto found = ckpt.load_newest();
  ASSERT_TRUE(found.has_value());
  EXPECT_EQ(found->path, dir / "step-2.h5");
  expect_same_state(found->state, make_state(2));
  ckpt.prepare();
  EXPECT_EQ(entries(dir.path()), (std::vector<std::string>{"latest", "step-1.h5", "step-2.h5"}));
}

// ---- disk full ----------------------------------------------------------------------------------

// While alive: files may not grow beyond `bytes` (RLIMIT_FSIZE soft limit), and SIGXFSZ is
// ignored so that a write past it fails with EFBIG instead of killing the process.
class FileSizeLimit {
 public:
  explicit FileSizeLimit(rlim_t bytes) {
    old_handler_ = ::signal(SIGXFSZ, SIG_IGN);
    if (::getrlimit(RLIMIT_FSIZE, &old_) != 0) return;
    rlimit lowered = old_;
    lowered.rlim_cur = std::min(bytes, old_.rlim_max);
    ok_ = ::setrlimit(RLIMIT_FSIZE, &lowered) == 0;
  }
  FileSizeLimit(const FileSizeLimit&) = delete;
  FileSizeLimit& operator=(const FileSizeLimit&) = delete;
  ~FileSizeLimit() {
    if (ok_) ::setrlimit(RLIMIT_FSIZE, &old_);
    ::signal(SIGXFSZ, old_handler_);
  }
  bool ok() const { return ok_; }

 private:
  rlimit old_{};
  sighandler_t old_handler_ = SIG_DFL;
  bool ok_ = false;
};

// In the calling process: saves `state` with files limited to 64 KiB, and writes what happened
// to `report`, one "key: value" per line.
void save_with_full_disk(const CheckpointDir& ckpt, const CheckpointState& state,
                         const std::string& report) {
  std::ostringstream out;
  std::vector<std::string> warnings;
  set_log_sink([&warnings](LogLevel level, const std::string& message) {
    if (level >= LogLevel::kWarning) warnings.push_back(message);
  });
  rlimit before{}, after{};
  ::getrlimit(RLIMIT_FSIZE, &before);
  {
    const FileSizeLimit limit(64 << 10);
    out << "limit set: " << limit.ok() << "\n";
    try {
      ckpt.save(state, 0);
      out << "outcome: saved\n";
    } catch (const Error& e) {
      out << "outcome: " << (e.kind() == ErrorKind::kIo ? "io error" : to_string(e.kind())) << "\n";
      out << "message: " << e.message() << "\n";
    }
  }
  out << "limit restored: "
      << (::getrlimit(RLIMIT_FSIZE, &after) == 0 && after.rlim_cur == before.rlim_cur) << "\n";
  out << "hdf5 objects open: " << H5Fget_obj_count(H5F_OBJ_ALL, H5F_OBJ_ALL) << "\n";
  out << "warnings: " << warnings.size() << "\n";
  for (const std::string& w : warnings) out << "warning: " << w << "\n";
  write_text(report, out.str());
}

// Disk full while writing step 2 (a full disk and a file-size limit both fail write()): an
// IoError naming the .tmp and the reason, the .tmp is gone, `latest` and step 1 are untouched,
// and nothing is left behind in HDF5 (no open object, no warning, a clean exit). The failing save
// runs in a child process: the file-size limit is process-wide, and a regression that left HDF5
// objects open would otherwise crash the whole test binary in HDF5's exit-time clean-up.
TEST(CheckpointDiskFull, SaveFailsCleanlyAndKeepsThePreviousCheckpoint) {
  const SharedDir dir;
  const CheckpointDir ckpt(dir.path());
  const CheckpointState first = make_state(1);
  const std::string report = dir.side_file("report.txt");
  if (!dir.child()) {
    ckpt.prepare();
    ckpt.save(first, 0);
    ASSERT_NO_FATAL_FAILURE(dir.share());
  }
  EXPECT_EXIT(
      {
        save_with_full_disk(ckpt, make_state(2, /*rows=*/32768), report);  // 1.1 MiB of tensors
        std::exit(0);  // runs HDF5's exit-time clean-up
      },
      ::testing::ExitedWithCode(0), "");
  const std::string text = read_text(report);
  const std::string tmp = dir / "step-2.h5.tmp";
  for (const std::string& part : std::vector<std::string>{
           "limit set: 1\n", "outcome: io error\n", "limit restored: 1\n", "hdf5 objects open: 0\n",
           "warnings: 0\n", "message: checkpoint of step 2 not written", tmp, "File too large",
           (dir / "latest") + " are unchanged"}) {
    EXPECT_NE(text.find(part), std::string::npos) << "lacks \"" << part << "\": " << text;
  }
  EXPECT_FALSE(fs::exists(tmp));
  EXPECT_EQ(read_text(dir / "latest"), "step-1.h5\n");
  EXPECT_EQ(entries(dir.path()), (std::vector<std::string>{"latest", "step-1.h5"}));
  const auto found = ckpt.load_newest();
  ASSERT_TRUE(found.has_value());
  EXPECT_EQ(found->path, dir / "step-1.h5");
  expect_same_state(found->state, first);
}

}  // namespace
}  // namespace dpt::io
