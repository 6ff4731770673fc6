// SPDX-License-Identifier: MIT
// Dataset files: a good file round-trips; every malformed file is an IoError naming the file, the
// object and what was expected and found. Also the HDF5 helpers that checkpoints will use.
#include <hdf5.h>

#include <cmath>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <functional>
#include <optional>

#include "runtime/io/dataset.h"
#include "runtime/io/h5.h"
#include "runtime/io/inspect.h"
#include "testing/test_util.h"

namespace dpt::io {
namespace {

// Runs `f` and checks it throws a dpt::Error of kind kIo whose message contains every part.
::testing::AssertionResult io_error_with(const std::function<void()>& f,
                                         const std::vector<std::string>& parts) {
  try {
    f();
  } catch (const Error& e) {
    const std::string what = e.what();
    if (e.kind() != ErrorKind::kIo) {
      return ::testing::AssertionFailure() << "kind " << to_string(e.kind()) << ": " << what;
    }
    for (const std::string& part : parts) {
      if (what.find(part) == std::string::npos) {
        return ::testing::AssertionFailure() << "message lacks \"" << part << "\": " << what;
      }
    }
    return ::testing::AssertionSuccess();
  }
  return ::testing::AssertionFailure() << "no exception";
}

DatasetMeta test_meta() {
  DatasetMeta meta;
  meta.num_classes = 3;
  meta.class_names = {"a", "b", "c"};
  meta.mean = 0.25f;
  meta.std = 0.5f;
  return meta;
}

SplitData make_split(std::int64_t n, std::int64_t sample_numel, int salt) {
  SplitData s;
  for (std::int64_t i = 0; i < n; ++i) {
    s.labels.push_back(static_cast<std::int32_t>((i + salt) % 3));
    for (std::int64_t k = 0; k < sample_numel; ++k) {
      s.images.push_back(static_cast<std::uint8_t>((i * 31 + k * 7 + salt) % 256));
    }
  }
  return s;
}

// A hand-built file: the good layout, with any piece replaced or removed.
struct FileSpec {
  std::optional<std::vector<std::int64_t>> image_shape = std::vector<std::int64_t>{10, 1, 2, 3};
  bool images_as_float = false;
  std::optional<std::vector<std::int64_t>> label_shape = std::vector<std::int64_t>{10};
  bool labels_as_int64 = false;
  std::vector<std::int32_t> labels = {0, 1, 2, 0, 1, 2, 0, 1, 2, 0};
  bool with_group = true;
  std::optional<std::int64_t> num_classes = 3;
  bool num_classes_as_float = false;
  std::optional<float> mean = 0.5f;
  bool mean_as_string = false;
  std::optional<float> std_dev = 0.25f;
  std::optional<std::vector<std::string>> class_names = std::vector<std::string>{"x", "y", "z"};
};

void build(const std::string& path, const FileSpec& spec) {
  const H5Handle file = h5::create_file(path);
  if (spec.num_classes) {
    if (spec.num_classes_as_float) {
      h5::write_attribute_f64(file.get(), "num_classes", static_cast<double>(*spec.num_classes));
    } else {
      h5::write_attribute_int(file.get(), "num_classes", *spec.num_classes);
    }
  }
  if (spec.mean) {
    if (spec.mean_as_string) {
      h5::write_attribute_string(file.get(), "mean", "0.5");
    } else {
      h5::write_attribute_f32(file.get(), "mean", *spec.mean);
    }
  }
  if (spec.std_dev) h5::write_attribute_f32(file.get(), "std", *spec.std_dev);
  if (spec.class_names) h5::write_attribute_strings(file.get(), "class_names", *spec.class_names);
  if (!spec.with_group) return;
  const H5Handle group = h5::create_group(file.get(), "train");
  if (spec.image_shape) {
    const std::int64_t numel = numel_of(*spec.image_shape);
    if (spec.images_as_float) {
      const std::vector<float> data(static_cast<std::size_t>(numel), 0.5f);
      h5::write_dataset<float>(group.get(), "images", *spec.image_shape, data.data());
    } else {
      const std::vector<std::uint8_t> data(static_cast<std::size_t>(numel), 7);
      h5::write_dataset<std::uint8_t>(group.get(), "images", *spec.image_shape, data.data());
    }
  }
  if (spec.label_shape) {
    std::vector<std::int32_t> labels = spec.labels;
    labels.resize(static_cast<std::size_t>(numel_of(*spec.label_shape)), 0);
    if (spec.labels_as_int64) {
      const std::vector<std::int64_t> wide(labels.begin(), labels.end());
      h5::write_dataset<std::int64_t>(group.get(), "labels", *spec.label_shape, wide.data());
    } else {
      h5::write_dataset<std::int32_t>(group.get(), "labels", *spec.label_shape, labels.data());
    }
  }
}

class DatasetFileTest : public ::testing::Test {
 protected:
  std::string path(const std::string& name = "data.h5") const { return (dir_ / name).string(); }
  // Builds `spec` and expects load() to fail with an IoError naming the file and every part.
  ::testing::AssertionResult bad(const FileSpec& spec, std::vector<std::string> parts) {
    build(path(), spec);
    parts.push_back(path());
    return io_error_with([&] { DatasetSplit::load(path(), "train"); }, parts);
  }
  dpt::test::TempDir dir_;
};

TEST_F(DatasetFileTest, GoodFileRoundTrips) {
  const SplitData train = make_split(2100, 6, 0);  // three image chunks of 1024 samples
  const SplitData test = make_split(17, 6, 5);
  write_dataset(path(), 1, 2, 3, test_meta(), train, test);
  EXPECT_FALSE(std::filesystem::exists(path() + ".tmp"));

  const DatasetSplit loaded = DatasetSplit::load(path(), "train");
  EXPECT_EQ(loaded.size(), 2100);
  EXPECT_EQ(loaded.channels(), 1);
  EXPECT_EQ(loaded.height(), 2);
  EXPECT_EQ(loaded.width(), 3);
  EXPECT_EQ(loaded.sample_numel(), 6);
  EXPECT_EQ(loaded.meta().num_classes, 3);
  EXPECT_EQ(loaded.meta().class_names, test_meta().class_names);
  EXPECT_EQ(loaded.meta().mean, 0.25f);
  EXPECT_EQ(loaded.meta().std, 0.5f);
  for (std::int64_t i = 0; i < loaded.size(); ++i) {
    ASSERT_EQ(loaded.label(i), train.labels[static_cast<std::size_t>(i)]) << i;
    ASSERT_EQ(0, std::memcmp(loaded.image(i), train.images.data() + i * 6, 6)) << i;
  }
  EXPECT_EQ(loaded.identity(), path() + ":/train N=2100 CxHxW=1x2x3 classes=3");

  const DatasetSplit test_split = DatasetSplit::load(path(), "test");
  EXPECT_EQ(test_split.size(), 17);
  EXPECT_EQ(test_split.label(16), test.labels[16]);
  EXPECT_EQ(test_split.image(16)[5], test.images[16 * 6 + 5]);

  const DatasetSplit limited = DatasetSplit::load(path(), "train", 1500);
  EXPECT_EQ(limited.size(), 1500);
  EXPECT_EQ(limited.image(1499)[3], train.images[1499 * 6 + 3]);
  EXPECT_EQ(DatasetSplit::load(path(), "test", 1000).size(), 17);  // limit beyond N keeps all
}

// The content checksum the start-up agreement compares: equal for equal content wherever it was
// written, different for one label, one pixel, the normalisation or the sample count; the split's
// own content only (the test split does not enter the train split's).
TEST_F(DatasetFileTest, ContentChecksumCoversLabelsPixelsAndNormalisation) {
  const SplitData train = make_split(1100, 6, 0);
  const SplitData test = make_split(17, 6, 5);
  write_dataset(path("a.h5"), 1, 2, 3, test_meta(), train, test);
  write_dataset(path("copy.h5"), 1, 2, 3, test_meta(), train, make_split(17, 6, 1));
  const std::uint64_t base = DatasetSplit::load(path("a.h5"), "train").content_checksum();
  EXPECT_EQ(DatasetSplit::load(path("copy.h5"), "train").content_checksum(), base);
  EXPECT_NE(DatasetSplit::load(path("a.h5"), "test").content_checksum(),
            DatasetSplit::load(path("copy.h5"), "test").content_checksum());

  SplitData label = train;
  label.labels[1050] = (label.labels[1050] + 1) % 3;  // in the second chunk
  SplitData pixel = train;
  pixel.images[777] ^= 1;
  DatasetMeta mean = test_meta();
  mean.mean = std::nextafter(mean.mean, 1.0f);
  DatasetMeta std_dev = test_meta();
  std_dev.std = 0.25f;
  DatasetMeta classes = test_meta();
  classes.num_classes = 4;
  classes.class_names.push_back("d");
  write_dataset(path("label.h5"), 1, 2, 3, test_meta(), label, test);
  write_dataset(path("pixel.h5"), 1, 2, 3, test_meta(), pixel, test);
  write_dataset(path("mean.h5"), 1, 2, 3, mean, train, test);
  write_dataset(path("std.h5"), 1, 2, 3, std_dev, train, test);
  write_dataset(path("classes.h5"), 1, 2, 3, classes, train, test);
  write_dataset(path("shape.h5"), 1, 3, 2, test_meta(), train, test);  // same bytes, 3x2 images
  for (const char* name : {"label.h5", "pixel.h5", "mean.h5", "std.h5", "classes.h5", "shape.h5"}) {
    EXPECT_NE(DatasetSplit::load(path(name), "train").content_checksum(), base) << name;
  }
  // What a rank trains on: --train-samples 1000 leaves the changed label out.
  EXPECT_EQ(DatasetSplit::load(path("label.h5"), "train", 1000).content_checksum(),
            DatasetSplit::load(path("a.h5"), "train", 1000).content_checksum());
  EXPECT_NE(DatasetSplit::load(path("a.h5"), "train", 1000).content_checksum(), base);
}

TEST_F(DatasetFileTest, WrittenLayoutIsDocumented) {
  write_dataset(path(), 1, 2, 3, test_meta(), make_split(5, 6, 0), make_split(2, 6, 0));
  const std::string text = inspect_file(path());
  for (const char* part :
       {"@format = \"dptrain-dataset\"", "@format_version = 1", "@num_classes = 3",
        "@class_names = [\"a\", \"b\", \"c\"]", "@mean = 0.25", "@std = 0.5",
        "/train/images  uint8 [5, 1, 2, 3]  chunks [5, 1, 2, 3]  filters: fletcher32",
        "/train/labels  int32 [5]", "/test/images  uint8 [2, 1, 2, 3]"}) {
    EXPECT_NE(text.find(part), std::string::npos) << part << "\n" << text;
  }
}

TEST_F(DatasetFileTest, HandBuiltGoodFileLoads) {
  build(path(), FileSpec{});
  const DatasetSplit split = DatasetSplit::load(path(), "train");
  EXPECT_EQ(split.size(), 10);
  EXPECT_EQ(split.meta().class_names.at(2), "z");
  FileSpec no_names;
  no_names.class_names.reset();  // class_names is optional
  build(path(), no_names);
  EXPECT_TRUE(DatasetSplit::load(path(), "train").meta().class_names.empty());
}

TEST_F(DatasetFileTest, MissingFile) {
  EXPECT_TRUE(io_error_with([&] { DatasetSplit::load(path("absent.h5"), "train"); },
                            {path("absent.h5"), "no such file"}));
}

TEST_F(DatasetFileTest, NotHdf5) {
  std::ofstream(path()) << "images,labels\n1,2\n";
  EXPECT_TRUE(io_error_with([&] { DatasetSplit::load(path(), "train"); },
                            {path(), "not an HDF5 file"}));
}

TEST_F(DatasetFileTest, TruncatedFile) {
  write_dataset(path(), 1, 2, 3, test_meta(), make_split(3000, 6, 0), make_split(10, 6, 0));
  std::filesystem::resize_file(path(), std::filesystem::file_size(path()) / 2);
  EXPECT_TRUE(io_error_with([&] { DatasetSplit::load(path(), "train"); },
                            {path(), "cannot open", "truncated"}));
}

TEST_F(DatasetFileTest, CorruptChunkFailsFletcher32) {
  write_dataset(path(), 1, 2, 3, test_meta(), make_split(3000, 6, 0), make_split(10, 6, 0));
  haddr_t address = 0;
  hsize_t chunk_bytes = 0;
  {
    const H5Handle file = h5::open_file_read(path());
    const H5Handle images = h5::open_dataset(file.get(), "/train/images");
    const hsize_t start[4] = {1024, 0, 0, 0};  // the second chunk
    unsigned filter_mask = 0;
    ASSERT_GE(H5Dget_chunk_info_by_coord(images.get(), start, &filter_mask, &address, &chunk_bytes),
              0);
    ASSERT_GT(chunk_bytes, 100u);
  }
  {
    std::fstream f(path(), std::ios::in | std::ios::out | std::ios::binary);
    f.seekg(static_cast<std::streamoff>(address + chunk_bytes / 2));
    char bytes[4];
    f.read(bytes, sizeof bytes);
    for (char& b : bytes) b = static_cast<char>(~b);
    f.seekp(static_cast<std::streamoff>(address + chunk_bytes / 2));
    f.write(bytes, sizeof bytes);
  }
  EXPECT_TRUE(io_error_with([&] { DatasetSplit::load(path(), "train"); },
                            {path(), "/train/images", "cannot read", "Fletcher32"}));
  // The labels and the first chunk are intact: a limit that stops before the damage still loads.
  EXPECT_EQ(DatasetSplit::load(path(), "train", 1000).size(), 1000);
}

TEST_F(DatasetFileTest, MissingGroup) {
  FileSpec spec;
  spec.with_group = false;
  EXPECT_TRUE(bad(spec, {"group /train is missing", "expected /train/images"}));
}

TEST_F(DatasetFileTest, MissingImages) {
  FileSpec spec;
  spec.image_shape.reset();
  EXPECT_TRUE(bad(spec, {"dataset /train/images is missing", "expected uint8 [N, C, H, W]"}));
}

TEST_F(DatasetFileTest, MissingLabels) {
  FileSpec spec;
  spec.label_shape.reset();
  EXPECT_TRUE(bad(spec, {"dataset /train/labels is missing", "expected int32 [N]"}));
}

TEST_F(DatasetFileTest, ImagesWrongRank) {
  FileSpec spec;
  spec.image_shape = std::vector<std::int64_t>{10, 2, 3};
  EXPECT_TRUE(bad(spec, {"/train/images", "expected rank 4", "found rank 3 [10, 2, 3]"}));
}

TEST_F(DatasetFileTest, ImagesWrongDtype) {
  FileSpec spec;
  spec.images_as_float = true;
  EXPECT_TRUE(bad(spec, {"/train/images", "expected dtype uint8", "found float32"}));
}

TEST_F(DatasetFileTest, LabelsWrongRank) {
  FileSpec spec;
  spec.label_shape = std::vector<std::int64_t>{10, 1};
  EXPECT_TRUE(bad(spec, {"/train/labels", "expected rank 1", "found rank 2 [10, 1]"}));
}

TEST_F(DatasetFileTest, LabelsWrongDtype) {
  FileSpec spec;
  spec.labels_as_int64 = true;
  EXPECT_TRUE(bad(spec, {"/train/labels", "expected dtype int32", "found int64"}));
}

TEST_F(DatasetFileTest, CountMismatch) {
  FileSpec spec;
  spec.label_shape = std::vector<std::int64_t>{9};
  EXPECT_TRUE(bad(spec, {"/train/labels", "expected 10 labels", "found 9"}));
}

TEST_F(DatasetFileTest, EmptySplit) {
  FileSpec spec;
  spec.image_shape = std::vector<std::int64_t>{0, 1, 2, 3};
  spec.label_shape = std::vector<std::int64_t>{0};
  EXPECT_TRUE(bad(spec, {"/train/images", "expected at least one sample", "found 0"}));
}

TEST_F(DatasetFileTest, LabelOutOfRange) {
  FileSpec spec;
  spec.labels[7] = 5;
  EXPECT_TRUE(bad(spec, {"/train/labels", "label at index 7 is 5", "expected in [0, 3)"}));
  spec.labels[7] = 1;
  spec.labels[2] = -1;
  EXPECT_TRUE(bad(spec, {"/train/labels", "label at index 2 is -1", "expected in [0, 3)"}));
}

TEST_F(DatasetFileTest, MissingNumClasses) {
  FileSpec spec;
  spec.num_classes.reset();
  EXPECT_TRUE(bad(spec, {"attribute 'num_classes'", "missing", "expected an integer >= 2"}));
}

TEST_F(DatasetFileTest, NumClassesNotInteger) {
  FileSpec spec;
  spec.num_classes_as_float = true;
  EXPECT_TRUE(bad(spec, {"attribute 'num_classes'", "expected one integer", "found float64"}));
}

TEST_F(DatasetFileTest, NumClassesTooSmall) {
  FileSpec spec;
  spec.num_classes = 1;
  spec.class_names.reset();
  EXPECT_TRUE(bad(spec, {"attribute 'num_classes'", "expected an integer >= 2", "found 1"}));
}

TEST_F(DatasetFileTest, MissingMeanOrStd) {
  FileSpec spec;
  spec.mean.reset();
  EXPECT_TRUE(bad(spec, {"attribute 'mean'", "missing", "expected a float"}));
  spec = FileSpec{};
  spec.std_dev.reset();
  EXPECT_TRUE(bad(spec, {"attribute 'std'", "missing", "expected a float"}));
}

TEST_F(DatasetFileTest, MeanNotFloat) {
  FileSpec spec;
  spec.mean_as_string = true;
  EXPECT_TRUE(bad(spec, {"attribute 'mean'", "expected one float", "found string"}));
}

TEST_F(DatasetFileTest, StdNotPositive) {
  FileSpec spec;
  spec.std_dev = 0.0f;
  EXPECT_TRUE(bad(spec, {"attribute 'std'", "expected a finite float > 0", "found 0"}));
  spec.std_dev = -0.5f;
  EXPECT_TRUE(bad(spec, {"attribute 'std'", "expected a finite float > 0", "found -0.5"}));
}

TEST_F(DatasetFileTest, ClassNamesWrongCount) {
  FileSpec spec;
  spec.class_names = std::vector<std::string>{"x", "y"};
  EXPECT_TRUE(bad(spec, {"attribute 'class_names'", "expected 3 names", "found 2"}));
}

TEST_F(DatasetFileTest, WrongFormatAttribute) {
  build(path(), FileSpec{});
  {
    const H5Handle file(H5Fopen(path().c_str(), H5F_ACC_RDWR, H5P_DEFAULT));
    h5::write_attribute_string(file.get(), "format", "dptrain-checkpoint");
  }
  EXPECT_TRUE(io_error_with([&] { DatasetSplit::load(path(), "train"); },
                            {path(), "attribute 'format'", "expected \"dptrain-dataset\"",
                             "found \"dptrain-checkpoint\""}));
}

TEST_F(DatasetFileTest, MissingSplitNamesTheSplit) {
  write_dataset(path(), 1, 2, 3, test_meta(), make_split(5, 6, 0), make_split(2, 6, 0));
  EXPECT_TRUE(io_error_with([&] { DatasetSplit::load(path(), "valid"); },
                            {path(), "group /valid is missing"}));
}

TEST(H5Helpers, FloatDatasetWithChecksumRoundTrips) {
  dpt::test::TempDir dir;
  const std::string path = (dir / "ckpt.h5").string();
  std::vector<float> weights(3 * 5 * 7);
  for (std::size_t i = 0; i < weights.size(); ++i) weights[i] = 0.5f * static_cast<float>(i) - 3;
  {
    const H5Handle file = h5::create_file(path);
    h5::write_dataset<float>(file.get(), "/model/layers.0.weight", {3, 5, 7}, weights.data());
    h5::write_dataset<float>(file.get(), "/model/empty", {0, 4}, nullptr);
    const H5Handle group = h5::create_group(file.get(), "/optimizer/layers.0.weight");
    h5::write_dataset<float>(group.get(), "momentum", {3, 5, 7}, weights.data(),
                             {.fletcher32 = true, .chunk_rows = 2});
    h5::write_attribute_int(file.get(), "step", 1234567890123);
    h5::write_attribute_f64(file.get(), "lr", 0.125);
    h5::write_attribute_string(file.get(), "config", "[train]\nlr = 0.125\n");
    h5::write_attribute_int(file.get(), "step", 7);  // replaces
    h5::flush(file.get());
  }
  const H5Handle file = h5::open_file_read(path);
  const std::vector<std::int64_t> shape{3, 5, 7};
  EXPECT_EQ(h5::read_dataset<float>(file.get(), "/model/layers.0.weight", &shape), weights);
  EXPECT_EQ(h5::read_dataset<float>(file.get(), "/optimizer/layers.0.weight/momentum"), weights);
  EXPECT_TRUE(h5::read_dataset<float>(file.get(), "/model/empty").empty());
  const H5Handle dataset = h5::open_dataset(file.get(), "/optimizer/layers.0.weight/momentum");
  const h5::DatasetInfo info = h5::dataset_info(dataset.get());
  EXPECT_EQ(info.dtype, "float32");
  EXPECT_EQ(info.chunk, (std::vector<std::int64_t>{2, 5, 7}));
  EXPECT_EQ(info.filters, std::vector<std::string>{"fletcher32"});
  EXPECT_EQ(h5::read_attribute_int(file.get(), "step"), 7);
  EXPECT_EQ(h5::read_attribute_float(file.get(), "lr"), 0.125);
  EXPECT_EQ(h5::read_attribute_string(file.get(), "config"), "[train]\nlr = 0.125\n");
  EXPECT_TRUE(h5::exists(file.get(), "/optimizer/layers.0.weight/momentum"));
  EXPECT_FALSE(h5::exists(file.get(), "/optimizer/nothing/momentum"));
  EXPECT_FALSE(h5::exists(file.get(), "/model/layers.0.weight/below_a_dataset"));
  EXPECT_EQ(h5::list_children(file.get()), (std::vector<std::string>{"model", "optimizer"}));

  const std::vector<std::int64_t> wrong{5, 3, 7};
  EXPECT_TRUE(io_error_with(
      [&] { h5::read_dataset<float>(file.get(), "/model/layers.0.weight", &wrong); },
      {path, "/model/layers.0.weight", "expected shape [5, 3, 7]", "found [3, 5, 7]"}));
  EXPECT_TRUE(io_error_with([&] { h5::read_dataset<float>(file.get(), "/model/absent"); },
                            {path, "cannot open dataset", "/model/absent"}));
  EXPECT_TRUE(io_error_with([&] { h5::read_attribute_int(file.get(), "absent"); },
                            {path, "attribute 'absent'", "missing"}));
}

TEST(H5Helpers, ReadsFixedLengthStringsAsH5pyMayWriteThem) {
  dpt::test::TempDir dir;
  const std::string path = (dir / "fixed.h5").string();
  {
    const H5Handle file = h5::create_file(path);
    const H5Handle type(H5Tcopy(H5T_C_S1));
    ASSERT_GE(H5Tset_size(type.get(), 6), 0);
    const hsize_t n = 2;
    const H5Handle space(H5Screate_simple(1, &n, nullptr));
    const H5Handle attr(
        H5Acreate2(file.get(), "class_names", type.get(), space.get(), H5P_DEFAULT, H5P_DEFAULT));
    const char data[12] = {'c', 'a', 't', 0, 0, 0, 'd', 'o', 'g', 'g', 'y', 0};
    ASSERT_GE(H5Awrite(attr.get(), type.get(), data), 0);
  }
  const H5Handle file = h5::open_file_read(path);
  EXPECT_EQ(h5::read_attribute_strings(file.get(), "class_names"),
            (std::vector<std::string>{"cat", "doggy"}));
}

}  // namespace
}  // namespace dpt::io
