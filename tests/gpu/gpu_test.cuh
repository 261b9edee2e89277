// trainperf — helpers shared by the GPU tests (test_cuda_*.cu): host conversions between fp32 and
// the element types the kernels take (bf16, fp16, fp32), an owning device buffer that can be
// poisoned with NaN, and the run's random seed (TRAINPERF_TEST_SEED=<n> replays a run).
// Each test keeps its own generators, tolerances and comparisons.
#pragma once

#include <doctest/doctest.h>

#include <cuda_bf16.h>
#include <cuda_fp16.h>
#include <cuda_runtime.h>
#include <trainperf/kernels/cuda/check.cuh>
#include <trainperf/kernels/cuda/ptx.cuh>

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <random>
#include <string>
#include <type_traits>
#include <vector>

namespace trainperf_gpu_test {

using i64 = std::int64_t;

inline std::size_t sz(i64 n) { return static_cast<std::size_t>(n); }

// ---- host-side type plumbing -------------------------------------------------------------------

// The kernels' own conversions (round to nearest even when narrowing).
using trainperf::cuda::ptx::from_float;
using trainperf::cuda::ptx::to_float;
using trainperf::cuda::ptx::type_name;
// Exact: every bf16, fp16 and fp32 value is a double.
template <class T>
double to_double(T x) {
  return static_cast<double>(to_float(x));
}
template <class T>
std::vector<float> to_floats(const std::vector<T>& v) {
  std::vector<float> out(v.size());
  for (std::size_t i = 0; i < v.size(); ++i) out[i] = to_float(v[i]);
  return out;
}
template <class T>
std::vector<T> from_floats(const std::vector<float>& v) {
  std::vector<T> out(v.size());
  for (std::size_t i = 0; i < v.size(); ++i) out[i] = from_float<T>(v[i]);
  return out;
}

// Per element: |got - ref| <= atol + rtol * |ref|, and NaN never passes.
struct tolerance {
  double atol, rtol;
};

// ---- device memory -----------------------------------------------------------------------------

// Owns a device allocation of n elements (at least one element is allocated, so n = 0 still gives
// a valid pointer). upload() and download() copy all n elements, synchronously.
template <class T>
class device_buffer {
 public:
  explicit device_buffer(std::size_t n) : n_(n) {
    TRAINPERF_CUDA_CHECK(cudaMalloc(reinterpret_cast<void**>(&p_), std::max<std::size_t>(n, 1) * sizeof(T)));
  }
  explicit device_buffer(const std::vector<T>& h) : device_buffer(h.size()) { upload(h); }
  device_buffer(const device_buffer&) = delete;
  device_buffer& operator=(const device_buffer&) = delete;
  ~device_buffer() { (void)cudaFree(p_); }

  T* get() const { return p_; }
  std::size_t size() const { return n_; }
  void upload(const std::vector<T>& h) {
    REQUIRE(h.size() == n_);
    TRAINPERF_CUDA_CHECK(cudaMemcpy(p_, h.data(), n_ * sizeof(T), cudaMemcpyHostToDevice));
  }
  std::vector<T> download() const {
    std::vector<T> h(n_);
    TRAINPERF_CUDA_CHECK(cudaMemcpy(h.data(), p_, n_ * sizeof(T), cudaMemcpyDeviceToHost));
    return h;
  }
  // 0xFF bytes: NaN in bf16, fp16 and fp32 alike, so an element a kernel never writes fails the
  // comparison. Ordered on stream s (the default stream unless given).
  void poison(cudaStream_t s = nullptr) { TRAINPERF_CUDA_CHECK(cudaMemsetAsync(p_, 0xFF, n_ * sizeof(T), s)); }

 private:
  T* p_ = nullptr;
  std::size_t n_ = 0;
};

// ---- random seed -------------------------------------------------------------------------------

// The run's seed, the same for every call: TRAINPERF_TEST_SEED=<n> (decimal) when set, so that a
// failing run can be replayed, otherwise 64 fresh bits. Each test seeds its own generators from
// it and prints it with its failures.
inline std::uint64_t test_seed() {
  static const std::uint64_t seed = [] {
    if (const char* s = std::getenv("TRAINPERF_TEST_SEED")) return static_cast<std::uint64_t>(std::stoull(s));
    std::random_device rd;
    return (static_cast<std::uint64_t>(rd()) << 32) ^ rd();
  }();
  return seed;
}

}  // namespace trainperf_gpu_test
