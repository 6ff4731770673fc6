// SPDX-License-Identifier: MIT
#include "testing/fixture.h"

#include <cstdlib>
#include <fstream>
#include <sstream>
#include <utility>

#include "runtime/check.h"

namespace dpt::test {

std::map<std::string, FixtureTensor> read_fixture(const std::string& relative_path) {
  const char* tree = std::getenv("DPT_SOURCE_DIR");
  const std::string path =
      std::string(tree != nullptr ? tree : DPT_TEST_SOURCE_ROOT) + "/" + relative_path;
  std::ifstream in(path);
  DPT_CHECK(in.good(), "cannot open fixture ", path);
  std::map<std::string, FixtureTensor> out;
  std::string header, values;
  while (std::getline(in, header)) {
    if (header.empty() || header[0] == '#') continue;
    DPT_CHECK(std::getline(in, values), path, ": no values after '", header, "'");
    std::istringstream hs(header);
    std::string key, dims;
    hs >> key >> dims;
    FixtureTensor t;
    std::istringstream ds(dims);
    for (std::string d; std::getline(ds, d, ',');) t.shape.push_back(std::stoll(d));
    std::istringstream vs(values);
    for (double v; vs >> v;) t.values.push_back(v);
    out[key] = std::move(t);
  }
  return out;
}

Tensor to_tensor(const FixtureTensor& f) {
  return Tensor::from_vector(f.shape, std::vector<float>(f.values.begin(), f.values.end()));
}

}  // namespace dpt::test
