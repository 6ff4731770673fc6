// SPDX-License-Identifier: MIT
// dpt-data: builds dptrain dataset files (import-fashion-mnist, import-text) and shows what a
// dataset or checkpoint file holds (inspect).
#include <CLI/CLI.hpp>

#include <cmath>
#include <cstdio>
#include <filesystem>
#include <iostream>
#include <string>

#include "idx.h"
#include "import_text.h"
#include "runtime/check.h"
#include "runtime/io/dataset.h"
#include "runtime/io/inspect.h"
#include "runtime/timer.h"

namespace {

constexpr const char* kDefaultFashionMnistDir = "/usr/share/datasets/fashion-mnist";

struct Split {
  dpt::io::SplitData data;
  std::int64_t height = 0, width = 0;
};

Split read_split(const std::filesystem::path& dir, const std::string& prefix) {
  const std::string images_path = (dir / (prefix + "-images-idx3-ubyte.gz")).string();
  const std::string labels_path = (dir / (prefix + "-labels-idx1-ubyte.gz")).string();
  dpt::data::IdxArray images = dpt::data::read_idx_u8(images_path, 3);
  dpt::data::IdxArray labels = dpt::data::read_idx_u8(labels_path, 1);
  DPT_CHECK_KIND(dpt::ErrorKind::kIo, images.dims[0] == labels.dims[0], images_path, " holds ",
                 images.dims[0], " images but ", labels_path, " holds ", labels.dims[0],
                 " labels: expected equal counts");
  Split split;
  split.height = images.dims[1];
  split.width = images.dims[2];
  split.data.images = std::move(images.values);
  split.data.labels.reserve(labels.values.size());
  for (std::size_t i = 0; i < labels.values.size(); ++i) {
    DPT_CHECK_KIND(dpt::ErrorKind::kIo, labels.values[i] < 10, labels_path, ": label at index ", i,
                   " is ", int{labels.values[i]}, ", expected in [0, 10)");
    split.data.labels.push_back(labels.values[i]);
  }
  return split;
}

int import_fashion_mnist(const std::string& src, const std::string& out) {
  const dpt::Stopwatch watch;
  const Split train = read_split(src, "train");
  const Split test = read_split(src, "t10k");
  DPT_CHECK_KIND(dpt::ErrorKind::kIo, train.height == test.height && train.width == test.width,
                 src, ": train images are ", train.height, "x", train.width, " but t10k images are ",
                 test.height, "x", test.width);

  // Normalisation statistics of the training pixels on the 0..1 scale (population std), in double.
  double sum = 0, sum_sq = 0;
  for (std::uint8_t p : train.data.images) {
    const double x = p / 255.0;
    sum += x;
    sum_sq += x * x;
  }
  const double count = static_cast<double>(train.data.images.size());
  const double mean = sum / count;
  const double std_dev = std::sqrt(std::max(0.0, sum_sq / count - mean * mean));

  dpt::io::DatasetMeta meta;
  meta.num_classes = 10;
  meta.class_names = {"T-shirt/top", "Trouser", "Pullover", "Dress", "Coat",
                      "Sandal",      "Shirt",   "Sneaker",  "Bag",   "Ankle boot"};
  meta.mean = static_cast<float>(mean);
  meta.std = static_cast<float>(std_dev);
  dpt::io::write_dataset(out, 1, static_cast<int>(train.height), static_cast<int>(train.width),
                         meta, train.data, test.data);
  std::printf("wrote %s: train %zu, test %zu images of 1x%lldx%lld, mean %.6f std %.6f (%.2f s)\n",
              out.c_str(), train.data.labels.size(), test.data.labels.size(),
              static_cast<long long>(train.height), static_cast<long long>(train.width), mean,
              std_dev, watch.elapsed_s());
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{
      "dpt-data: create and inspect dptrain HDF5 files.\n"
      "Datasets hold /train and /test groups with images (uint8 [N,C,H,W]) and labels\n"
      "(int32 [N]) plus root attributes num_classes, class_names, mean and std;\n"
      "text datasets hold tokens (uint16 [N]) and their vocabulary (docs/formats.md).\nExit status 0 on success, 1 with one 'dpt-data: error: ...' line\n"
      "on stderr otherwise."};
  app.require_subcommand(1);

  std::string src = kDefaultFashionMnistDir;
  std::string out;
  CLI::App* import = app.add_subcommand(
      "import-fashion-mnist",
      "Convert Fashion-MNIST's gzip'd IDX files (train-images-idx3-ubyte.gz,\n"
      "train-labels-idx1-ubyte.gz, t10k-images-idx3-ubyte.gz, t10k-labels-idx1-ubyte.gz)\n"
      "into a dataset file: /train (60000) and /test (10000, from t10k), images [N,1,28,28],\n"
      "class names T-shirt/top ... Ankle boot, mean/std of the training pixels / 255.");
  import->add_option("--src", src, "directory holding the four .gz files (Debian package "
                                   "dataset-fashion-mnist)")
      ->capture_default_str();
  import->add_option("OUT", out, "output .h5 file (written as OUT.tmp, then renamed)")->required();

  dpt::data::ImportTextOptions text;
  std::string tokenizer = "char";
  CLI::App* import_text = app.add_subcommand(
      "import-text",
      "Tokenise text files into a text dataset: the FILES are concatenated in the order\n"
      "given (nothing inserted between them); --tokenizer char: one token per Unicode\n"
      "character (UTF-8; the vocabulary is the sorted set of characters present, invalid\n"
      "UTF-8 is an error naming the file and byte offset), byte: one token per byte (256).\n"
      "The first floor(n * (1 - val_fraction)) tokens go to /train, the rest to /test.");
  import_text->add_option("OUT", text.out, "output .h5 file (written as OUT.tmp, then renamed)")
      ->required();
  import_text->add_option("FILES", text.files, "text files, in corpus order")->required();
  import_text->add_option("--tokenizer", tokenizer, "char or byte")
      ->check(CLI::IsMember({"char", "byte"}))
      ->capture_default_str();
  import_text->add_option("--val-fraction", text.val_fraction,
                          "fraction of the tokens (the last ones) in /test, in (0, 1)")
      ->capture_default_str();

  std::string file;
  CLI::App* inspect = app.add_subcommand(
      "inspect",
      "List every group and dataset of an HDF5 file (dataset or checkpoint) with shape,\n"
      "dtype, chunks and filters, and the attributes of each object.");
  inspect->add_option("FILE", file, "HDF5 file to describe")->required();

  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    return app.exit(e);
  }

  try {
    if (import->parsed()) return import_fashion_mnist(src, out);
    if (import_text->parsed()) {
      text.tokenizer = *dpt::io::parse_tokenizer(tokenizer);
      dpt::data::import_text(text);
      return 0;
    }
    if (inspect->parsed()) {
      std::cout << dpt::io::inspect_file(file);
      return 0;
    }
  } catch (const std::exception& e) {  // dpt::Error included: its what() names file and object
    std::cerr << "dpt-data: error: " << e.what() << '\n';
    return 1;
  }
  return 1;
}
