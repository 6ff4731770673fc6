// SPDX-License-Identifier: MIT
// dpt-limits: what this machine can do at best, the reference every training phase is compared to
// (bench/roofline.py):
// - sgemm GFLOP/s with both BLAS that dptrain links (oneDNN's dnnl_sgemm and OpenBLAS's
//   cblas_sgemm), square at --n and at every GEMM a training step of the reference models runs at
//   batch --batch: for each linear layer the forward y = x w^T (NT), backward-data dx = dy w (NN)
//   and backward-weights dw = dy^T x (TN); for each convolution the same three products of its
//   im2col form (rows = batch x output pixels, inner = in_channels x kernel area).
// - memory bandwidth of STREAM-like loops over arrays larger than the last-level cache.
// Each figure is the best of --repeats timed calls after one warm-up call; the two BLAS alternate
// call by call, so load from other processes falls on both alike.
//   build/bin/dpt-limits [--threads 1] [--batch 128] [--repeats 5] [--n 2048] [--mib M]
//                        [--json FILE]
#include <cblas.h>
#include <omp.h>
#include <oneapi/dnnl/dnnl.h>

#include <CLI/CLI.hpp>
#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <exception>
#include <fstream>
#include <limits>
#include <map>
#include <memory>
#include <nlohmann/json.hpp>
#include <stdexcept>
#include <string>
#include <vector>

#include "cpu_description.h"
#include "kernels/cpu/onednn_isa.h"

namespace {

using Clock = std::chrono::steady_clock;

struct FreeDeleter {
  void operator()(float* p) const { std::free(p); }
};
using Floats = std::unique_ptr<float[], FreeDeleter>;

// 64-byte aligned, first touched by the threads that will stream it (static schedule, as the
// loops below), so that pages land where those threads run.
Floats aligned_floats(std::int64_t count, int threads, float value) {
  const std::size_t bytes = ((static_cast<std::size_t>(count) * sizeof(float) + 63) / 64) * 64;
  Floats p(static_cast<float*>(std::aligned_alloc(64, bytes)));
  if (!p) throw std::runtime_error("cannot allocate " + std::to_string(bytes) + " bytes");
  float* q = p.get();
#pragma omp parallel for schedule(static) num_threads(threads)
  for (std::int64_t i = 0; i < count; ++i) q[i] = value;
  return p;
}

// Values in [-1, 1), no denormals, the same on every run.
void fill_random(float* p, std::int64_t count) {
  std::uint32_t state = 12345u;
  for (std::int64_t i = 0; i < count; ++i) {
    state = state * 1664525u + 1013904223u;
    p[i] = static_cast<float>(state >> 8) / static_cast<float>(1 << 24) * 2.0f - 1.0f;
  }
}

template <typename F>
double seconds(F&& f) {
  const auto start = Clock::now();
  f();
  return std::chrono::duration<double>(Clock::now() - start).count();
}

// ---- sgemm ----

// One row-major product C[m,n] = op(A)[m,k] op(B)[k,n] as the kernels call it.
struct Gemm {
  std::string model, layers,
      product;  // product: forward | backward-data | backward-weights | square
  char transa, transb;
  std::int64_t m, n, k;
  // The layer shape it comes from: rows x in -> out (square: n x n -> n).
  std::int64_t rows, in, out;
  double gflop() const {
    return 2.0 * static_cast<double>(m) * static_cast<double>(n) * static_cast<double>(k) * 1e-9;
  }
};

// The three products of a layer y[rows,out] = x[rows,in] w[out,in]^T.
void add_layer(std::vector<Gemm>& gemms, const std::string& model, const std::string& layers,
               std::int64_t rows, std::int64_t in, std::int64_t out) {
  gemms.push_back({model, layers, "forward", 'N', 'T', rows, out, in, rows, in, out});
  gemms.push_back({model, layers, "backward-data", 'N', 'N', rows, in, out, rows, in, out});
  gemms.push_back({model, layers, "backward-weights", 'T', 'N', out, in, rows, rows, in, out});
}

// The GEMMs of the reference models (src/nn/models.cpp) at batch b; mlp's two 2048 -> 2048
// layers share one shape.
std::vector<Gemm> model_gemms(std::int64_t n, std::int64_t b) {
  std::vector<Gemm> g;
  g.push_back({"", "", "square", 'N', 'N', n, n, n, n, n, n});
  add_layer(g, "mlp", "layers.1", b, 784, 2048);
  add_layer(g, "mlp", "layers.3, layers.5", b, 2048, 2048);
  add_layer(g, "mlp", "layers.7", b, 2048, 10);
  // cnn: 3x3 convolutions with padding 1 (output side = input side), as im2col GEMMs.
  add_layer(g, "cnn", "layers.0", b * 28 * 28, 1 * 9, 32);
  add_layer(g, "cnn", "layers.3", b * 14 * 14, 32 * 9, 64);
  add_layer(g, "cnn", "layers.6", b * 7 * 7, 64 * 9, 64);
  add_layer(g, "cnn", "layers.9", b, 3136, 10);
  return g;
}

struct GemmBuffers {
  Floats a, b, c;
};

GemmBuffers gemm_buffers(const std::vector<Gemm>& gemms) {
  std::int64_t size = 0;
  for (const Gemm& g : gemms) size = std::max({size, g.m * g.k, g.k * g.n, g.m * g.n});
  GemmBuffers buf{aligned_floats(size, 1, 0.0f), aligned_floats(size, 1, 0.0f),
                  aligned_floats(size, 1, 0.0f)};
  fill_random(buf.a.get(), size);
  fill_random(buf.b.get(), size);
  return buf;
}

void run_dnnl(const Gemm& g, const GemmBuffers& buf) {
  const std::int64_t lda = g.transa == 'N' ? g.k : g.m, ldb = g.transb == 'N' ? g.n : g.k;
  const dnnl_status_t status = dnnl_sgemm(g.transa, g.transb, g.m, g.n, g.k, 1.0f, buf.a.get(), lda,
                                          buf.b.get(), ldb, 0.0f, buf.c.get(), g.n);
  if (status != dnnl_success)
    throw std::runtime_error("dnnl_sgemm failed with status " + std::to_string(status));
}

void run_openblas(const Gemm& g, const GemmBuffers& buf) {
  const auto trans = [](char t) { return t == 'N' ? CblasNoTrans : CblasTrans; };
  const std::int64_t lda = g.transa == 'N' ? g.k : g.m, ldb = g.transb == 'N' ? g.n : g.k;
  cblas_sgemm(CblasRowMajor, trans(g.transa), trans(g.transb), static_cast<blasint>(g.m),
              static_cast<blasint>(g.n), static_cast<blasint>(g.k), 1.0f, buf.a.get(),
              static_cast<blasint>(lda), buf.b.get(), static_cast<blasint>(ldb), 0.0f, buf.c.get(),
              static_cast<blasint>(g.n));
}

struct GemmResult {
  double onednn_gflops, openblas_gflops;
};

GemmResult time_gemm(const Gemm& g, const GemmBuffers& buf, int repeats) {
  run_dnnl(g, buf);
  run_openblas(g, buf);
  double best_dnnl = std::numeric_limits<double>::infinity(), best_blas = best_dnnl;
  for (int r = 0; r < repeats; ++r) {
    best_dnnl = std::min(best_dnnl, seconds([&] { run_dnnl(g, buf); }));
    best_blas = std::min(best_blas, seconds([&] { run_openblas(g, buf); }));
  }
  return {g.gflop() / best_dnnl, g.gflop() / best_blas};
}

// ---- memory ----
// Bytes are counted as STREAM counts them: each array read or written once per element. A store
// to a line not in cache first reads it (write-allocate) unless the stores are non-temporal, so
// the memory traffic of copy and triad is one stream more than counted; the *_with_write_allocate
// figures count it. `update` (a += s b) reads every line it writes: its count is its traffic, and
// it is the pattern of an optimizer step (p, buf read, then written).
struct MemoryKernel {
  const char* name;
  const char* formula;
  int streams_counted;
  int streams_with_write_allocate;
};

constexpr MemoryKernel kTriad{"triad", "a[i] = b[i] + s*c[i]", 3, 4};
constexpr MemoryKernel kCopy{"copy", "a[i] = b[i]", 2, 3};
constexpr MemoryKernel kRead{"read", "sum += a[i]", 1, 1};
constexpr MemoryKernel kUpdate{"update", "a[i] += s*b[i]", 3, 3};

// Kept out of line so that the compiler cannot merge repeats or drop a pass.
[[gnu::noinline]] void triad(float* a, const float* b, const float* c, float s, std::int64_t n,
                             int threads) {
#pragma omp parallel for simd schedule(static) num_threads(threads)
  for (std::int64_t i = 0; i < n; ++i) a[i] = b[i] + s * c[i];
}

[[gnu::noinline]] void copy(float* a, const float* b, std::int64_t n, int threads) {
#pragma omp parallel for simd schedule(static) num_threads(threads)
  for (std::int64_t i = 0; i < n; ++i) a[i] = b[i];
}

// kLanes independent partial sums: one accumulator would wait for each add's latency (measured:
// 7 GB/s, a third of what the memory delivers).
[[gnu::noinline]] float read_sum(const float* a, std::int64_t n, int threads) {
  constexpr std::int64_t kLanes = 32;
  float sum = 0.0f;
#pragma omp parallel num_threads(threads) reduction(+ : sum)
  {
    float lanes[kLanes] = {};
#pragma omp for schedule(static)
    for (std::int64_t block = 0; block < n / kLanes; ++block) {
      const float* p = a + block * kLanes;
#pragma omp simd
      for (std::int64_t j = 0; j < kLanes; ++j) lanes[j] += p[j];
    }
    for (const float v : lanes) sum += v;
  }
  for (std::int64_t i = n / kLanes * kLanes; i < n; ++i) sum += a[i];
  return sum;
}

[[gnu::noinline]] void update(float* a, const float* b, float s, std::int64_t n, int threads) {
#pragma omp parallel for simd schedule(static) num_threads(threads)
  for (std::int64_t i = 0; i < n; ++i) a[i] += s * b[i];
}

// Size of the last-level cache from sysfs (0 if unknown).
std::int64_t last_level_cache_bytes() {
  std::int64_t best_level = 0, bytes = 0;
  for (int index = 0; index < 16; ++index) {
    const std::string dir = "/sys/devices/system/cpu/cpu0/cache/index" + std::to_string(index);
    std::ifstream level_file(dir + "/level"), size_file(dir + "/size");
    std::int64_t level = 0;
    std::string size;
    if (!(level_file >> level) || !(size_file >> size) || size.empty()) continue;
    std::int64_t value = std::strtoll(size.c_str(), nullptr, 10);
    if (size.back() == 'K') value <<= 10;
    if (size.back() == 'M') value <<= 20;
    if (level >= best_level) {
      best_level = level;
      bytes = value;
    }
  }
  return bytes;
}

bool positive_finite(double v) { return std::isfinite(v) && v > 0.0; }

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{
      "The machine's limits for bench/roofline.py: sgemm GFLOP/s with oneDNN and OpenBLAS "
      "(square and at the reference models' shapes) and STREAM-like memory bandwidth",
      "dpt-limits"};
  int threads = 1, repeats = 5;
  std::int64_t batch = 128, square = 2048, mib = 0;
  std::string json_path;
  app.add_option("--threads", threads, "Threads for the BLAS calls and the memory loops")
      ->capture_default_str()
      ->check(CLI::PositiveNumber);
  app.add_option("--batch", batch, "Batch of the model GEMM shapes")
      ->capture_default_str()
      ->check(CLI::PositiveNumber);
  app.add_option("--repeats", repeats, "Timed calls per figure (the best counts)")
      ->capture_default_str()
      ->check(CLI::PositiveNumber);
  app.add_option("--n", square, "Side of the square sgemm")
      ->capture_default_str()
      ->check(CLI::PositiveNumber);
  app.add_option("--mib", mib,
                 "MiB per memory array (default: the last-level cache's size, at least 64; "
                 "three arrays then hold 3x the cache)")
      ->check(CLI::PositiveNumber);
  app.add_option("--json", json_path, "Also write the figures to this JSON file");
  CLI11_PARSE(app, argc, argv);
  try {
    omp_set_num_threads(threads);  // dnnl_sgemm (oneDNN built on OpenMP) takes its threads here
    openblas_set_num_threads(threads);
    const std::int64_t llc = last_level_cache_bytes();
    if (mib == 0) mib = std::max<std::int64_t>(64, (llc + (1 << 20) - 1) >> 20);

    const dnnl_version_t* v = dnnl_version();
    nlohmann::json out;
    out["cpu"] = dpt::bench::cpu_description();
    out["onednn_isa"] = dpt::kernels::cpu::onednn_isa_name(dnnl_get_effective_cpu_isa());
    out["onednn_version"] =
        std::to_string(v->major) + "." + std::to_string(v->minor) + "." + std::to_string(v->patch);
    out["openblas_core"] = openblas_get_corename();
    out["openblas_config"] = openblas_get_config();
    out["threads"] = threads;
    out["batch"] = batch;
    out["repeats"] = repeats;
    out["last_level_cache_mib"] = static_cast<double>(llc) / (1 << 20);

    std::printf("# dpt-limits: %d thread(s), best of %d calls\n# %s\n", threads, repeats,
                out["cpu"].get<std::string>().c_str());
    std::printf("# oneDNN %s, ISA %s; OpenBLAS core %s (%s)\n",
                out["onednn_version"].get<std::string>().c_str(),
                out["onednn_isa"].get<std::string>().c_str(), openblas_get_corename(),
                openblas_get_config());

    // sgemm
    const std::vector<Gemm> gemms = model_gemms(square, batch);
    const GemmBuffers buf = gemm_buffers(gemms);
    std::printf("\n## sgemm GFLOP/s (row-major C[m,n] = op(A)[m,k] op(B)[k,n]; batch %lld)\n",
                static_cast<long long>(batch));
    std::printf("%-5s %-20s %-17s %-3s %8s %6s %6s %8s %8s %8s\n", "model", "layers", "product",
                "op", "m", "n", "k", "GFLOP", "oneDNN", "OpenBLAS");
    nlohmann::json rows = nlohmann::json::array();
    for (const Gemm& g : gemms) {
      const GemmResult r = time_gemm(g, buf, repeats);
      if (!positive_finite(r.onednn_gflops) || !positive_finite(r.openblas_gflops))
        throw std::runtime_error("sgemm " + g.product + " " + std::to_string(g.m) + "x" +
                                 std::to_string(g.n) + "x" + std::to_string(g.k) +
                                 ": no positive finite rate (timer resolution?)");
      const std::string op{g.transa, g.transb};
      std::printf("%-5s %-20s %-17s %-3s %8lld %6lld %6lld %8.3f %8.1f %8.1f\n",
                  g.model.empty() ? "-" : g.model.c_str(),
                  g.layers.empty() ? "-" : g.layers.c_str(), g.product.c_str(), op.c_str(),
                  static_cast<long long>(g.m), static_cast<long long>(g.n),
                  static_cast<long long>(g.k), g.gflop(), r.onednn_gflops, r.openblas_gflops);
      rows.push_back({{"model", g.model},
                      {"layers", g.layers},
                      {"product", g.product},
                      {"op", op},
                      {"m", g.m},
                      {"n", g.n},
                      {"k", g.k},
                      {"rows", g.rows},
                      {"in", g.in},
                      {"out", g.out},
                      {"gflop", g.gflop()},
                      {"onednn_gflops", r.onednn_gflops},
                      {"openblas_gflops", r.openblas_gflops},
                      {"best_gflops", std::max(r.onednn_gflops, r.openblas_gflops)},
                      {"best_blas", r.onednn_gflops >= r.openblas_gflops ? "oneDNN" : "OpenBLAS"}});
    }
    out["sgemm"] = rows;

    // memory
    const std::int64_t count = mib * (1 << 20) / static_cast<std::int64_t>(sizeof(float));
    Floats a = aligned_floats(count, threads, 0.0f), b = aligned_floats(count, threads, 1.0f),
           c = aligned_floats(count, threads, 2.0f);
    const float s = 1e-3f;
    volatile float sink = 0.0f;
    std::map<std::string, double> best;
    triad(a.get(), b.get(), c.get(), s, count, threads);  // warm-up: pages mapped, clocks up
    for (int r = 0; r < repeats; ++r) {
      const auto keep = [&](const char* name, double t) {
        auto [it, fresh] = best.try_emplace(name, t);
        if (!fresh) it->second = std::min(it->second, t);
      };
      keep(kTriad.name, seconds([&] { triad(a.get(), b.get(), c.get(), s, count, threads); }));
      keep(kCopy.name, seconds([&] { copy(a.get(), b.get(), count, threads); }));
      keep(kRead.name, seconds([&] { sink = sink + read_sum(c.get(), count, threads); }));
      keep(kUpdate.name, seconds([&] { update(a.get(), b.get(), s, count, threads); }));
    }
    std::printf("\n## memory GB/s (3 arrays of %lld MiB; last-level cache %.0f MiB)\n",
                static_cast<long long>(mib), static_cast<double>(llc) / (1 << 20));
    std::printf("%-7s %-22s %15s %8s %22s\n", "kernel", "loop", "streams counted", "GB/s",
                "GB/s with write-alloc.");
    nlohmann::json memory;
    memory["array_mib"] = mib;
    memory["bytes_counted"] =
        "STREAM's: each array read or written once per element (4 bytes); write-allocate reads "
        "of arrays only stored to are not counted (the *_with_write_allocate figures count them)";
    for (const MemoryKernel& k : {kTriad, kCopy, kRead, kUpdate}) {
      const double t = best.at(k.name);
      const double bytes = static_cast<double>(count) * sizeof(float);
      const double gbs = k.streams_counted * bytes / t * 1e-9;
      const double gbs_wa = k.streams_with_write_allocate * bytes / t * 1e-9;
      if (!positive_finite(gbs))
        throw std::runtime_error(std::string(k.name) + ": no positive finite bandwidth");
      std::printf("%-7s %-22s %15d %8.2f %22.2f\n", k.name, k.formula, k.streams_counted, gbs,
                  gbs_wa);
      memory[k.name] = {{"loop", k.formula},
                        {"streams_counted", k.streams_counted},
                        {"streams_with_write_allocate", k.streams_with_write_allocate},
                        {"gb_per_s", gbs},
                        {"gb_per_s_with_write_allocate", gbs_wa},
                        {"seconds", t}};
    }
    out["memory"] = memory;

    if (!json_path.empty()) {
      std::ofstream file(json_path);
      file << out.dump(2) << '\n';
      if (!file.good()) throw std::runtime_error("cannot write " + json_path);
    }
    return 0;
  } catch (const std::exception& e) {
    std::fprintf(stderr, "dpt-limits: %s\n", e.what());
    return 1;
  }
}
