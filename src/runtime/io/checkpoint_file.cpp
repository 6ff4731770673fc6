// SPDX-License-Identifier: MIT
// HDF5 writer and verifying reader of one checkpoint file (layout: docs/formats.md).
#include "runtime/io/checkpoint_file.h"

#include <algorithm>

#include "runtime/check.h"
#include "runtime/io/h5.h"

namespace dpt::io {
namespace {

#define DPT_CKPT_CHECK(cond, ...) DPT_CHECK_KIND(::dpt::ErrorKind::kIo, cond, __VA_ARGS__)

constexpr const char* kModelGroup = "model";
constexpr const char* kOptimizerGroup = "optimizer";

void write_tensor(hid_t file, const std::string& path, const Tensor& t) {
  DPT_CHECK(t.dtype() == DType::kF32 && t.device().type == DeviceType::kCpu, "checkpoint entry '",
            path, "' must be a float32 host tensor");
  // HDF5 filters need chunks, which need a non-zero extent: a scalar or empty tensor would be
  // stored without its Fletcher32 checksum.
  DPT_CHECK(!t.shape().empty() && t.numel() > 0, "checkpoint entry '", path,
            "' must have at least one dimension and one element, got ", dpt::to_string(t.shape()));
  h5::WriteOptions options;
  options.fletcher32 = true;
  h5::write_dataset(file, path, t.shape(), t.data<float>(), options);
}

void write_model_part(hid_t file, const CheckpointState& s, const char* format) {
  h5::write_attribute_string(file, "format", format);
  h5::write_attribute_int(file, "format_version", kCheckpointFormatVersion);
  h5::write_attribute_int(file, "step", s.step);
  h5::write_attribute_int(file, "epoch", s.epoch);
  h5::write_attribute_int(file, "samples_seen", s.samples_seen);
  h5::write_attribute_int(file, "world_size", s.world_size);
  h5::write_attribute_int(file, "global_batch", s.global_batch);
  // Stored as a string: HDF5 attributes have no uint64 helper here and a seed may exceed int64.
  h5::write_attribute_string(file, "seed", std::to_string(s.seed));
  h5::write_attribute_string(file, "rng", "philox4x32-10 keyed by (seed, purpose, step, sample)");
  h5::write_attribute_string(file, "config", s.config);

  const H5Handle model = h5::create_group(file, kModelGroup);
  h5::write_attribute_string(model.get(), "layers", s.model_layers);
  if (!s.vocabulary.empty()) {
    h5::write_attribute_string(model.get(), "tokenizer", s.tokenizer);
    h5::write_attribute_strings(model.get(), "vocabulary", s.vocabulary);
  }
  for (const NamedTensor& p : s.model)
    write_tensor(file, std::string(kModelGroup) + "/" + p.name, p.value);
}

void write_all(hid_t file, const CheckpointState& s) {
  write_model_part(file, s, kCheckpointFormat);

  const H5Handle optimizer = h5::create_group(file, kOptimizerGroup);
  h5::write_attribute_string(optimizer.get(), "kind", s.optimizer_kind);
  h5::write_attribute_int(optimizer.get(), "step_count", s.optimizer_steps);
  h5::write_attribute_f64(optimizer.get(), "lr", s.lr);
  h5::write_attribute_string(optimizer.get(), "lr_schedule", s.lr_schedule);
  h5::write_attribute_strings(optimizer.get(), "slots", s.slot_names);
  for (const auto& [name, value] : s.hyper) h5::write_attribute_f64(optimizer.get(), name, value);
  for (const NamedTensor& slot : s.slots) {
    write_tensor(file, std::string(kOptimizerGroup) + "/" + slot.name, slot.value);
  }
}

// ---- reading ------------------------------------------------------------------------------------

std::string entry(const std::string& path, const std::string& object, const std::string& attr) {
  return dpt::detail::str(path, ": attribute '", attr, "' of ", object);
}

void require_attribute(hid_t loc, const std::string& path, const std::string& object,
                       const std::string& attr, const char* expected) {
  DPT_CKPT_CHECK(h5::has_attribute(loc, attr), entry(path, object, attr), " is missing: expected ",
                 expected);
}

std::int64_t read_int(hid_t loc, const std::string& path, const std::string& object,
                      const std::string& attr, std::int64_t min_value) {
  require_attribute(loc, path, object, attr, "an integer");
  const std::int64_t v = h5::read_attribute_int(loc, attr);
  DPT_CKPT_CHECK(v >= min_value, entry(path, object, attr), ": expected an integer >= ", min_value,
                 ", found ", v);
  return v;
}

std::string read_string(hid_t loc, const std::string& path, const std::string& object,
                        const std::string& attr) {
  require_attribute(loc, path, object, attr, "a string");
  return h5::read_attribute_string(loc, attr);
}

// Reads a float32 dataset whole (the Fletcher32 filter verifies every chunk on the way).
Tensor read_tensor(hid_t file, const std::string& path, const std::string& name) {
  DPT_CKPT_CHECK(h5::is_dataset(file, name), path, ": /", name, " is missing or not a dataset");
  const H5Handle dataset = h5::open_dataset(file, name);
  const h5::DatasetInfo info = h5::dataset_info(dataset.get());
  DPT_CKPT_CHECK(info.dtype == "float32", path, ": dataset /", name, ": expected float32, found ",
                 info.dtype, " ", dpt::to_string(info.shape));
  // Sizes checked before the tensor is allocated (Note [Sizes from files] in h5.h); read in place.
  const std::int64_t numel = h5::checked_read_numel(dataset.get(), info, -1, sizeof(float));
  Tensor t = Tensor::empty(info.shape.empty() ? Shape{} : Shape(info.shape));
  DPT_CHECK(t.numel() == numel, "internal: size of /", name);
  if (numel > 0) h5::read_rows_raw(dataset.get(), -1, H5T_NATIVE_FLOAT, t.data<float>());
  return t;
}

std::uint64_t parse_seed(const std::string& text, const std::string& where) {
  std::uint64_t value = 0;
  DPT_CKPT_CHECK(
      !text.empty() && text.size() <= 20 &&
          std::all_of(text.begin(), text.end(), [](char c) { return c >= '0' && c <= '9'; }),
      where, ": expected a decimal unsigned integer, found \"", text, "\"");
  for (char c : text) {
    DPT_CKPT_CHECK(!__builtin_mul_overflow(value, 10u, &value) &&
                       !__builtin_add_overflow(value, static_cast<unsigned>(c - '0'), &value),
                   where, ": expected an unsigned 64-bit integer, found \"", text, "\"");
  }
  return value;
}

// Root attributes and /model. `allow_model_file`: a "dptrain-model" file is accepted too.
CheckpointState read_model_part(hid_t file, const std::string& path, bool allow_model_file) {
  CheckpointState s;
  const std::string root = "/";
  const std::string format = read_string(file, path, root, "format");
  DPT_CKPT_CHECK(format == kCheckpointFormat || (allow_model_file && format == kModelFormat),
                 entry(path, root, "format"), ": expected \"", kCheckpointFormat, "\"",
                 allow_model_file ? " or \"dptrain-model\"" : "", ", found \"", format,
                 "\" (not a dptrain checkpoint)");
  const std::int64_t version = read_int(file, path, root, "format_version", 1);
  DPT_CKPT_CHECK(version <= kCheckpointFormatVersion, entry(path, root, "format_version"),
                 ": found ", version, ", newer than this build reads (", kCheckpointFormatVersion,
                 "); use a newer dptrain");
  s.step = read_int(file, path, root, "step", 0);
  s.epoch = read_int(file, path, root, "epoch", 0);
  s.samples_seen = read_int(file, path, root, "samples_seen", 0);
  s.world_size = read_int(file, path, root, "world_size", 1);
  s.global_batch = read_int(file, path, root, "global_batch", 1);
  s.seed = parse_seed(read_string(file, path, root, "seed"), entry(path, root, "seed"));
  s.config = read_string(file, path, root, "config");

  const std::string model_object = std::string("/") + kModelGroup;
  DPT_CKPT_CHECK(h5::is_group(file, kModelGroup), path, ": group ", model_object, " is missing");
  {
    const H5Handle model = h5::open_group(file, kModelGroup);
    s.model_layers = read_string(model.get(), path, model_object, "layers");
    if (h5::has_attribute(model.get(), "vocabulary")) {
      s.tokenizer = read_string(model.get(), path, model_object, "tokenizer");
      s.vocabulary = h5::read_attribute_strings(model.get(), "vocabulary");
    }
    for (const std::string& name : h5::list_children(model.get())) {
      s.model.push_back({name, read_tensor(file, path, std::string(kModelGroup) + "/" + name)});
    }
  }
  DPT_CKPT_CHECK(!s.model.empty(), path, ": group ", model_object, " holds no parameters");
  return s;
}

CheckpointState read_all(hid_t file, const std::string& path) {
  CheckpointState s = read_model_part(file, path, /*allow_model_file=*/false);

  const std::string opt_object = std::string("/") + kOptimizerGroup;
  DPT_CKPT_CHECK(h5::is_group(file, kOptimizerGroup), path, ": group ", opt_object, " is missing");
  const H5Handle optimizer = h5::open_group(file, kOptimizerGroup);
  s.optimizer_kind = read_string(optimizer.get(), path, opt_object, "kind");
  s.optimizer_steps = read_int(optimizer.get(), path, opt_object, "step_count", 0);
  require_attribute(optimizer.get(), path, opt_object, "lr", "a float");
  s.lr = h5::read_attribute_float(optimizer.get(), "lr");
  s.lr_schedule = read_string(optimizer.get(), path, opt_object, "lr_schedule");
  require_attribute(optimizer.get(), path, opt_object, "slots", "a list of slot names");
  s.slot_names = h5::read_attribute_strings(optimizer.get(), "slots");
  for (const std::string& attr : h5::list_attributes(optimizer.get())) {
    if (attr == "kind" || attr == "step_count" || attr == "lr" || attr == "lr_schedule" ||
        attr == "slots") {
      continue;
    }
    s.hyper.emplace_back(attr, h5::read_attribute_float(optimizer.get(), attr));
  }
  // Every parameter has every slot: a missing one is named here, before anything is applied.
  for (const NamedTensor& p : s.model) {
    for (const std::string& slot : s.slot_names) {
      const std::string name = p.name + "/" + slot;
      const std::string where = std::string(kOptimizerGroup) + "/" + name;
      DPT_CKPT_CHECK(h5::exists(file, where), path, ": optimizer slot /", where,
                     " is missing (optimizer '", s.optimizer_kind, "' keeps slots ",
                     s.slot_names.size(), " per parameter)");
      s.slots.push_back({name, read_tensor(file, path, where)});
    }
  }
  return s;
}

std::size_t bytes_of(const std::vector<NamedTensor>& tensors) {
  std::size_t total = 0;
  for (const NamedTensor& t : tensors) total += t.value.size_bytes();
  return total;
}

}  // namespace

void write_model_file(const std::string& path, const CheckpointState& state) {
  h5::write_file_then_rename(path, bytes_of(state.model),
                             [&](hid_t file) { write_model_part(file, state, kModelFormat); });
}

void write_tensor_file(const std::string& path, const std::vector<NamedTensor>& tensors) {
  h5::write_file_then_rename(path, bytes_of(tensors), [&](hid_t file) {
    for (const NamedTensor& t : tensors) write_tensor(file, t.name, t.value);
  });
}

CheckpointState read_model_file(const std::string& path) {
  const H5Handle file = h5::open_file_read(path);
  return read_model_part(file.get(), path, /*allow_model_file=*/true);
}

void write_checkpoint_file(const std::string& path, const CheckpointState& state) {
  h5::write_file(path, bytes_of(state.model) + bytes_of(state.slots),
                 [&](hid_t file) { write_all(file, state); });
}

CheckpointState read_checkpoint_file(const std::string& path) {
  const H5Handle file = h5::open_file_read(path);
  return read_all(file.get(), path);
}

bool is_checkpoint_file(const std::string& path) noexcept {
  try {
    const H5Handle file = h5::open_file_read(path);
    return h5::has_attribute(file.get(), "format") &&
           h5::read_attribute_string(file.get(), "format") == kCheckpointFormat;
  } catch (...) {
    return false;
  }
}

}  // namespace dpt::io
