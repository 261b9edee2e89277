// trainperf — times the CUDA causal attention (kernels/cuda/attention.cuh), forward and
// backward, with CUDA events: warm-up runs, then the median of timed repetitions.
//
// FLOPs follow FlashAttention-2's benchmark convention (Dao 2023, arXiv:2307.08691, section
// 4.1): forward 4 * B * H * T^2 * D, halved for the causal mask; backward 2.5 x forward (five
// matrix products instead of two). bench/gpu/attention_vs_sdpa.py runs this binary and
// PyTorch's scaled_dot_product_attention on the same shapes and prints the ratios.
//
// Usage: bench_attention [--smoke] [--reps N] [--shape B,H,T,D]...
//   default shapes: batch 8, 16 heads, seq 2048 and 8192, head dim 128 and 64, bf16.
//   Each shape prints a readable line and a CSV line:
//   csv,attention,<fwd|bwd>,bf16,B,H,T,D,median_ms,tflops
// Exits 77 (CTest: skipped) when no CUDA device is usable.
#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <vector>

#include <trainperf/kernels/cuda/attention.cuh>

namespace {

namespace tc = trainperf::cuda;
using bf16 = __nv_bfloat16;

struct shape {
  int B, H, T, D;
};

// Deterministic pseudo-random values in [-1, 1) (never zeros: zeros run faster than real data
// and hide unwritten outputs); a 32-bit integer hash of the index and a seed.
__global__ void fill_random(bf16* p, std::size_t n, std::uint32_t seed) {
  for (std::size_t i = blockIdx.x * static_cast<std::size_t>(blockDim.x) + threadIdx.x; i < n;
       i += static_cast<std::size_t>(gridDim.x) * blockDim.x) {
    std::uint32_t x = static_cast<std::uint32_t>(i) * 0x9E3779B1u ^ seed;  // Knuth multiplicative hash + seed
    x ^= x >> 16;                                                          // murmur3 fmix32 finaliser
    x *= 0x85EBCA6Bu;
    x ^= x >> 13;
    x *= 0xC2B2AE35u;
    x ^= x >> 16;
    p[i] = __float2bfloat16(static_cast<float>(x) * (2.0f / 4294967296.0f) - 1.0f);  // [0, 2^32) -> [-1, 1)
  }
}

// Counts non-finite values (the benchmark refuses to report timings of a broken kernel).
__global__ void count_nonfinite(const bf16* p, std::size_t n, unsigned long long* bad) {
  unsigned long long local = 0;
  for (std::size_t i = blockIdx.x * static_cast<std::size_t>(blockDim.x) + threadIdx.x; i < n;
       i += static_cast<std::size_t>(gridDim.x) * blockDim.x)
    local += !isfinite(__bfloat162float(p[i]));
  if (local) atomicAdd(bad, local);
}

template <class T>
struct device_buffer {
  T* ptr = nullptr;
  explicit device_buffer(std::size_t n) {
    TRAINPERF_CUDA_CHECK(cudaMalloc(&ptr, std::max<std::size_t>(n, 1) * sizeof(T)));
  }
  ~device_buffer() { cudaFree(ptr); }
  device_buffer(const device_buffer&) = delete;
  device_buffer& operator=(const device_buffer&) = delete;
};

template <class F>
double median_ms(F&& run, int warmup, int reps) {
  for (int i = 0; i < warmup; ++i) run();
  cudaEvent_t a, b;
  TRAINPERF_CUDA_CHECK(cudaEventCreate(&a));
  TRAINPERF_CUDA_CHECK(cudaEventCreate(&b));
  std::vector<float> ms(static_cast<std::size_t>(reps));
  for (auto& t : ms) {
    TRAINPERF_CUDA_CHECK(cudaEventRecord(a));
    run();
    TRAINPERF_CUDA_CHECK(cudaEventRecord(b));
    TRAINPERF_CUDA_CHECK(cudaEventSynchronize(b));
    TRAINPERF_CUDA_CHECK(cudaEventElapsedTime(&t, a, b));
  }
  TRAINPERF_CUDA_CHECK(cudaEventDestroy(a));
  TRAINPERF_CUDA_CHECK(cudaEventDestroy(b));
  std::sort(ms.begin(), ms.end());
  return ms[ms.size() / 2];
}

std::size_t nonfinite(const bf16* p, std::size_t n) {
  device_buffer<unsigned long long> bad(1);
  TRAINPERF_CUDA_CHECK(cudaMemset(bad.ptr, 0, sizeof(unsigned long long)));
  count_nonfinite<<<1024, 256>>>(p, n, bad.ptr);
  TRAINPERF_CUDA_CHECK_LAUNCH();
  unsigned long long h = 0;
  TRAINPERF_CUDA_CHECK(cudaMemcpy(&h, bad.ptr, sizeof h, cudaMemcpyDeviceToHost));
  return static_cast<std::size_t>(h);
}

bool bench_shape(const shape& s, int reps) {
  const std::size_t n = static_cast<std::size_t>(s.B) * s.T * s.H * s.D,
                    rows = static_cast<std::size_t>(s.B) * s.H * s.T;
  device_buffer<bf16> q(n), k(n), v(n), out(n), dout(n), dq(n), dk(n), dv(n);
  device_buffer<float> lse(rows);
  const std::size_t ws_bytes = tc::attention_workspace_bytes(s.B, s.T, s.H, s.H, s.D);
  device_buffer<unsigned char> ws(ws_bytes);
  std::uint32_t seed = 1;
  for (bf16* p : {q.ptr, k.ptr, v.ptr, dout.ptr}) {
    fill_random<<<1024, 256>>>(p, n, seed++);
    TRAINPERF_CUDA_CHECK_LAUNCH();
  }
  auto fwd = [&] {
    tc::attention_forward<bf16>(out.ptr, lse.ptr, q.ptr, k.ptr, v.ptr, s.B, s.T, s.H, s.H, s.D, nullptr);
  };
  auto bwd = [&] {
    tc::attention_backward<bf16>(dq.ptr, dk.ptr, dv.ptr, dout.ptr, q.ptr, k.ptr, v.ptr, out.ptr, lse.ptr, s.B, s.T, s.H,
                                 s.H, s.D, ws.ptr, ws_bytes, nullptr);
  };
  fwd();
  bwd();
  TRAINPERF_CUDA_CHECK(cudaDeviceSynchronize());
  std::size_t bad = nonfinite(out.ptr, n);
  for (const bf16* p : {dq.ptr, dk.ptr, dv.ptr}) bad += nonfinite(p, n);
  if (bad) {
    std::printf("B=%d H=%d T=%d D=%d: %zu non-finite outputs; not timing a broken kernel\n", s.B, s.H, s.T, s.D, bad);
    return false;
  }
  const int warmup = 3;
  const double fwd_ms = median_ms(fwd, warmup, reps), bwd_ms = median_ms(bwd, warmup, reps);
  // FlashAttention-2 section 4.1: 4 * B * H * T^2 * D forward, / 2 for causal; backward 2.5x.
  const double fwd_flops = 4.0 * s.B * s.H * static_cast<double>(s.T) * s.T * s.D / 2.0;
  const double bwd_flops = 2.5 * fwd_flops;
  const double fwd_tf = fwd_flops / (fwd_ms * 1e-3) / 1e12, bwd_tf = bwd_flops / (bwd_ms * 1e-3) / 1e12;
  std::printf(
      "attention bf16 causal B=%d H=%d T=%d D=%d: forward %.3f ms %.1f TFLOP/s, backward %.3f ms %.1f TFLOP/s\n", s.B,
      s.H, s.T, s.D, fwd_ms, fwd_tf, bwd_ms, bwd_tf);
  std::printf("csv,attention,fwd,bf16,%d,%d,%d,%d,%.6f,%.3f\n", s.B, s.H, s.T, s.D, fwd_ms, fwd_tf);
  std::printf("csv,attention,bwd,bf16,%d,%d,%d,%d,%.6f,%.3f\n", s.B, s.H, s.T, s.D, bwd_ms, bwd_tf);
  std::fflush(stdout);
  return true;
}

}  // namespace

int main(int argc, char** argv) {
  std::vector<shape> shapes;
  int reps = 20;
  bool smoke = false;
  for (int i = 1; i < argc; ++i) {
    const std::string a = argv[i];
    if (a == "--smoke") {
      smoke = true;
    } else if (a == "--reps" && i + 1 < argc) {
      reps = std::max(1, std::atoi(argv[++i]));
    } else if (a == "--shape" && i + 1 < argc) {
      shape s{};
      if (std::sscanf(argv[++i], "%d,%d,%d,%d", &s.B, &s.H, &s.T, &s.D) != 4) {
        std::fprintf(stderr, "bench_attention: --shape wants B,H,T,D (e.g. 8,16,2048,128), got '%s'\n", argv[i]);
        return 2;
      }
      shapes.push_back(s);
    } else {
      std::fprintf(stderr, "usage: bench_attention [--smoke] [--reps N] [--shape B,H,T,D]...\n");
      return 2;
    }
  }
  std::string why;
  if (tc::device_count(&why) == 0) {
    std::printf("SKIPPED: no usable CUDA device (%s); bench_attention needs one\n", why.c_str());
    return 77;
  }
  if (smoke) {
    shapes = {{1, 2, 300, 64}, {1, 2, 300, 128}};
    reps = 2;
  } else if (shapes.empty()) {
    for (const int D : {128, 64})
      for (const int T : {2048, 8192}) shapes.push_back({8, 16, T, D});
  }
  cudaDeviceProp prop{};
  int dev = 0;
  TRAINPERF_CUDA_CHECK(cudaGetDevice(&dev));
  TRAINPERF_CUDA_CHECK(cudaGetDeviceProperties(&prop, dev));
  std::printf("device: %s (sm_%d%d, %d SMs)\n", prop.name, prop.major, prop.minor, prop.multiProcessorCount);
  bool ok = true;
  try {
    for (const shape& s : shapes) ok = bench_shape(s, reps) && ok;
  } catch (const tc::cuda_error& e) {
    std::fprintf(stderr, "bench_attention: %s\n", e.what());
    return 1;
  }
  return ok ? 0 : 1;
}
