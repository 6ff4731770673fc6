// SPDX-License-Identifier: MIT
// Seeded mutations of a small dataset file and of a small checkpoint (bit flips, byte overwrites,
// truncations, dimension fields set huge), each loaded through the shipped readers: every load
// either returns exactly what was written or throws a dpt::Error. Anything else (another
// exception, a crash, a sanitizer report, a huge allocation) fails the suite. Runs in the ASan +
// UBSan build too (docs/reliability.md).
#include <hdf5.h>

#include <algorithm>
#include <cstring>
#include <fstream>
#include <random>
#include <sstream>

#include "runtime/io/checkpoint_file.h"
#include "runtime/io/dataset.h"
#include "runtime/io/h5.h"
#include "testing/test_util.h"

namespace dpt::io {
namespace {

constexpr int kMutations = 200;  // per file

std::vector<char> read_bytes(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  return {std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>()};
}

void write_bytes(const std::string& path, const std::vector<char>& bytes) {
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  out.write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
}

// Offsets where `value` is stored as a little-endian integer of `width` bytes: candidate size
// fields (dataspace dimensions are 8 bytes, chunk dimensions 4).
std::vector<std::size_t> find_field(const std::vector<char>& bytes, std::uint64_t value, int width) {
  std::vector<std::size_t> at;
  for (std::size_t i = 0; i + static_cast<std::size_t>(width) <= bytes.size(); ++i) {
    std::uint64_t v = 0;
    std::memcpy(&v, bytes.data() + i, static_cast<std::size_t>(width));
    if (v == value) at.push_back(i);
  }
  return at;
}

// Mutation `seed` of `original`; `sizes` are the dimension values the file's shapes use.
std::vector<char> mutate(const std::vector<char>& original, std::uint32_t seed,
                         const std::vector<std::uint64_t>& sizes, std::string* what) {
  std::mt19937_64 rng(seed);
  std::vector<char> bytes = original;
  auto pick = [&](std::size_t n) { return static_cast<std::size_t>(rng() % n); };
  std::ostringstream desc;
  switch (seed % 4) {
    case 0: {  // 1 to 8 bit flips
      const int flips = 1 + static_cast<int>(pick(8));
      desc << flips << " bit flip(s) at";
      for (int i = 0; i < flips; ++i) {
        const std::size_t at = pick(bytes.size());
        bytes[at] = static_cast<char>(bytes[at] ^ (1 << pick(8)));
        desc << ' ' << at;
      }
      break;
    }
    case 1: {  // a run of 1 to 16 random bytes
      const std::size_t at = pick(bytes.size()), n = 1 + pick(16);
      for (std::size_t i = at; i < std::min(bytes.size(), at + n); ++i) {
        bytes[i] = static_cast<char>(rng());
      }
      desc << n << " random byte(s) at " << at;
      break;
    }
    case 2: {  // truncation
      const std::size_t size = pick(bytes.size());
      bytes.resize(size);
      desc << "truncated to " << size << " bytes";
      break;
    }
    default: {  // a size field set huge
      const int width = pick(2) == 0 ? 8 : 4;
      std::vector<std::size_t> at;
      for (std::uint64_t v : sizes) {
        for (std::size_t i : find_field(bytes, v, width)) at.push_back(i);
      }
      const std::uint64_t huge[] = {std::uint64_t{1} << 40, std::uint64_t{1} << 62,
                                    ~std::uint64_t{0},      std::uint64_t{1} << 31,
                                    0xffffffffu,            std::uint64_t{1} << 33};
      const std::uint64_t value = huge[pick(std::size(huge))];
      if (at.empty()) {
        desc << "no size field found";
        break;
      }
      const std::size_t where = at[pick(at.size())];
      std::memcpy(bytes.data() + where, &value, static_cast<std::size_t>(width));
      desc << width << "-byte field at " << where << " set to " << value;
    }
  }
  *what = desc.str();
  return bytes;
}

// The dataset as h5py writes one by default (HDF5's earliest format: object headers without
// checksums, so a changed size field reaches our readers), images and labels chunked with the
// Fletcher32 filter.
void write_plain_dataset(const std::string& path, const SplitData& train, const SplitData& test,
                         int side) {
  const H5Handle file(H5Fcreate(path.c_str(), H5F_ACC_TRUNC, H5P_DEFAULT, H5P_DEFAULT));
  h5::write_attribute_int(file.get(), "num_classes", 3);
  h5::write_attribute_f32(file.get(), "mean", 0.25f);
  h5::write_attribute_f32(file.get(), "std", 0.5f);
  h5::write_attribute_strings(file.get(), "class_names", {"a", "b", "c"});
  for (const auto& [name, data] : {std::pair<const char*, const SplitData*>{"train", &train},
                                   std::pair<const char*, const SplitData*>{"test", &test}}) {
    const auto n = static_cast<std::int64_t>(data->labels.size());
    const H5Handle group = h5::create_group(file.get(), name);
    h5::write_dataset<std::uint8_t>(group.get(), "images", {n, 1, side, side}, data->images.data(),
                                    {.fletcher32 = true, .chunk_rows = 8});
    h5::write_dataset<std::int32_t>(group.get(), "labels", {n}, data->labels.data(),
                                    {.fletcher32 = true, .chunk_rows = 16});
  }
}

SplitData make_split(std::int64_t n, int side, int salt) {
  SplitData s;
  for (std::int64_t i = 0; i < n; ++i) {
    s.labels.push_back(static_cast<std::int32_t>((i + salt) % 3));
    for (int k = 0; k < side * side; ++k) {
      s.images.push_back(static_cast<std::uint8_t>((i * 31 + k * 7 + salt) % 256));
    }
  }
  return s;
}

CheckpointState small_checkpoint() {
  CheckpointState s;
  s.step = 12;
  s.epoch = 1;
  s.samples_seen = 12 * 48;
  s.world_size = 2;
  s.global_batch = 48;
  s.seed = 7;
  s.config = "model = \"custom\"\n";
  s.model_layers = "[]";
  s.model = {{"layers.0.weight", test::random_tensor({11, 13}, 1)},
             {"layers.0.bias", test::random_tensor({11}, 2)}};
  s.optimizer_kind = "adamw";
  s.optimizer_steps = 12;
  s.lr = 1e-3;
  s.lr_schedule = "constant";
  s.hyper = {{"beta1", 0.9}, {"beta2", 0.999}};
  s.slot_names = {"exp_avg"};
  s.slots = {{"layers.0.weight/exp_avg", test::random_tensor({11, 13}, 3)},
             {"layers.0.bias/exp_avg", test::random_tensor({11}, 4)}};
  return s;
}

bool same_split(const DatasetSplit& a, const SplitData& b, int side) {
  if (a.size() != static_cast<std::int64_t>(b.labels.size()) || a.channels() != 1 ||
      a.height() != side || a.width() != side || a.meta().num_classes != 3) {
    return false;
  }
  for (std::int64_t i = 0; i < a.size(); ++i) {
    if (a.label(i) != b.labels[static_cast<std::size_t>(i)] ||
        std::memcmp(a.image(i), b.images.data() + i * side * side,
                    static_cast<std::size_t>(side * side)) != 0) {
      return false;
    }
  }
  return true;
}

// The same names, shapes and values (the reader lists entries in name order).
bool same_tensors(std::vector<NamedTensor> a, std::vector<NamedTensor> b) {
  const auto by_name = [](const NamedTensor& x, const NamedTensor& y) { return x.name < y.name; };
  std::sort(a.begin(), a.end(), by_name);
  std::sort(b.begin(), b.end(), by_name);
  if (a.size() != b.size()) return false;
  for (std::size_t i = 0; i < a.size(); ++i) {
    if (a[i].name != b[i].name || a[i].value.shape() != b[i].value.shape() ||
        a[i].value.to_vector() != b[i].value.to_vector()) {
      return false;
    }
  }
  return true;
}

// Loads every mutation with `load` (which returns whether what it read equals what was written);
// counts clean errors. Any other exception, or a load that returns different content, fails.
template <typename Load>
int run_mutations(const std::string& path, const std::vector<std::uint64_t>& sizes, Load load) {
  const std::vector<char> original = read_bytes(path);
  const std::string mutated = path + ".mutated";
  int errors = 0;
  for (std::uint32_t seed = 0; seed < kMutations; ++seed) {
    std::string what;
    write_bytes(mutated, mutate(original, seed, sizes, &what));
    SCOPED_TRACE("mutation " + std::to_string(seed) + ": " + what);
    try {
      EXPECT_TRUE(load(mutated)) << "loaded, but not what was written";
    } catch (const Error& e) {
      ++errors;
      EXPECT_FALSE(std::string(e.what()).empty());
    } catch (const std::exception& e) {
      ADD_FAILURE() << "not a dpt::Error: " << e.what();
    }
  }
  return errors;
}

TEST(FuzzLoad, MutatedDatasetsLoadOrFailCleanly) {
  const test::TempDir dir;
  const std::string path = dir / "data.h5";
  constexpr int kSide = 6;
  const SplitData train = make_split(40, kSide, 0), test = make_split(24, kSide, 1);
  write_plain_dataset(path, train, test, kSide);
  ASSERT_TRUE(same_split(DatasetSplit::load(path, "train"), train, kSide));
  // The earliest format checksums no metadata: a changed byte there (an attribute, a chunk
  // dimension) can still make a valid dataset, so a load that succeeds is only required to have
  // passed the loader's validation; the checkpoint below (HDF5 1.8 format, checksummed metadata)
  // must load exactly.
  const int errors = run_mutations(path, {40, 24, 8, 16, kSide}, [&](const std::string& p) {
    const DatasetSplit got = DatasetSplit::load(p, "train");
    DatasetSplit::load(p, "test");
    return got.size() > 0;
  });
  // Most mutations hit what the readers check (truncations and size fields nearly always): a
  // suite where nothing fails would not be testing the error paths.
  EXPECT_GT(errors, kMutations / 3);
}

TEST(FuzzLoad, MutatedTextDatasetsLoadExactlyOrFailCleanly) {
  const test::TempDir dir;
  const std::string path = dir / "text.h5";
  const Vocabulary vocabulary = Vocabulary::chars({U'\n', U' ', U'a', U'b', U'c', 0xe9, 0x20ac});
  std::vector<std::uint16_t> train(300), test(100);
  for (std::size_t i = 0; i < train.size(); ++i) train[i] = static_cast<std::uint16_t>(i * 5 % 7);
  for (std::size_t i = 0; i < test.size(); ++i) test[i] = static_cast<std::uint16_t>(i * 3 % 7);
  write_token_dataset(path, vocabulary, train, test);
  // Written by dptrain (HDF5 1.8 format: checksummed metadata, Fletcher32 data), so a mutation
  // either fails to load or changed nothing that is read.
  const int errors = run_mutations(path, {300, 100, 7}, [&](const std::string& p) {
    const DatasetSplit got_train = DatasetSplit::load(p, "train", 0, 8);
    const DatasetSplit got_test = DatasetSplit::load(p, "test", 0, 8);
    return got_train.tokens() == train && got_test.tokens() == test &&
           got_train.vocabulary().texts() == vocabulary.texts() &&
           got_train.tokenizer() == Tokenizer::kChar;
  });
  EXPECT_GT(errors, kMutations / 3);
}

TEST(FuzzLoad, MutatedCheckpointsLoadExactlyOrFailCleanly) {
  const test::TempDir dir;
  const std::string path = dir / "step-12.h5";
  const CheckpointState state = small_checkpoint();
  write_checkpoint_file(path, state);
  ASSERT_TRUE(same_tensors(read_checkpoint_file(path).model, state.model));
  const int errors = run_mutations(path, {11, 13}, [&](const std::string& p) {
    const CheckpointState got = read_checkpoint_file(p);
    return got.step == state.step && got.seed == state.seed && got.config == state.config &&
           same_tensors(got.model, state.model) && same_tensors(got.slots, state.slots);
  });
  EXPECT_GT(errors, kMutations / 3);
}

// A dataset whose first dimension says 2^40 images: an error naming the file, the dataset and
// the size, before any allocation (it was std::bad_alloc).
TEST(FuzzLoad, HugeDeclaredDatasetIsAClearError) {
  const test::TempDir dir;
  const std::string path = dir / "huge.h5";
  {
    const H5Handle file(H5Fcreate(path.c_str(), H5F_ACC_TRUNC, H5P_DEFAULT, H5P_DEFAULT));
    h5::write_attribute_int(file.get(), "num_classes", 3);
    h5::write_attribute_f32(file.get(), "mean", 0.25f);
    h5::write_attribute_f32(file.get(), "std", 0.5f);
    const H5Handle group = h5::create_group(file.get(), "train");
    for (const auto& [name, rank, type] :
         {std::tuple<const char*, int, hid_t>{"images", 4, H5T_NATIVE_UINT8},
          std::tuple<const char*, int, hid_t>{"labels", 1, H5T_NATIVE_INT32}}) {
      const hsize_t dims[4] = {hsize_t{1} << 40, 1, 28, 28};
      const hsize_t chunk[4] = {1024, 1, 28, 28};
      const H5Handle space(H5Screate_simple(rank, dims, nullptr));
      const H5Handle dcpl(H5Pcreate(H5P_DATASET_CREATE));
      ASSERT_GE(H5Pset_chunk(dcpl.get(), rank, chunk), 0);
      const H5Handle d(H5Dcreate2(group.get(), name, type, space.get(), H5P_DEFAULT, dcpl.get(),
                                  H5P_DEFAULT));
    }
  }
  try {
    DatasetSplit::load(path, "train");
    FAIL() << "loaded a dataset of 2^40 images";
  } catch (const Error& e) {
    const std::string what = e.what();
    EXPECT_NE(what.find(path), std::string::npos) << what;
    EXPECT_NE(what.find("/train/"), std::string::npos) << what;
    EXPECT_NE(what.find("1099511627776"), std::string::npos) << what;
  }
}

// A corrupt chunk names the file, the dataset and the samples being read (it named only the
// file and the dataset).
TEST(FuzzLoad, CorruptChunkNamesTheSamples) {
  const test::TempDir dir;
  const std::string path = dir / "data.h5";
  DatasetMeta meta;
  meta.num_classes = 3;
  const SplitData train = make_split(3000, 4, 0), test = make_split(10, 4, 1);
  write_dataset(path, 1, 4, 4, meta, train, test);  // images in chunks of 1024 samples
  haddr_t address = 0;
  {
    const H5Handle file = h5::open_file_read(path);
    const H5Handle images = h5::open_dataset(file.get(), "/train/images");
    const H5Handle space(H5Dget_space(images.get()));
    hsize_t offset[4] = {};
    unsigned mask = 0;
    hsize_t size = 0;
    ASSERT_GE(H5Dget_chunk_info(images.get(), space.get(), 1, offset, &mask, &address, &size), 0);
    ASSERT_EQ(offset[0], 1024u);
  }
  std::vector<char> bytes = read_bytes(path);
  bytes.at(address + 100) = static_cast<char>(bytes.at(address + 100) ^ 0x10);
  write_bytes(path, bytes);
  try {
    DatasetSplit::load(path, "train");
    FAIL() << "a corrupt chunk loaded";
  } catch (const Error& e) {
    const std::string what = e.what();
    EXPECT_NE(what.find(path + ": dataset /train/images: cannot read samples [1024, 2048)"),
              std::string::npos)
        << what;
    EXPECT_NE(what.find("Fletcher32"), std::string::npos) << what;
  }
}

}  // namespace
}  // namespace dpt::io
