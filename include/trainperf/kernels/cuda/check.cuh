// trainperf — CUDA error checking shared by the kernels in this folder, the trainer and the
// tests: every runtime and cuBLASLt call is checked, and a failure throws
// trainperf::cuda::cuda_error naming the call, the file and line, and the runtime's message.
// Compiled only under nvcc; never included by trainperf.hpp.
#pragma once

#include <cublasLt.h>
#include <cuda_runtime.h>

#include <stdexcept>
#include <string>

namespace trainperf::cuda {

class cuda_error : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

inline void check(cudaError_t e, const char* what, const char* file, int line) {
  if (e != cudaSuccess)
    throw cuda_error(std::string(what) + " failed at " + file + ":" + std::to_string(line) + ": " +
                     cudaGetErrorName(e) + " (" + cudaGetErrorString(e) + ")");
}

inline void check(cublasStatus_t s, const char* what, const char* file, int line) {
  if (s != CUBLAS_STATUS_SUCCESS)
    throw cuda_error(std::string(what) + " failed at " + file + ":" + std::to_string(line) + ": cuBLAS status " +
                     std::to_string(static_cast<int>(s)));
}

// Throws cuda_error when a shape or argument is invalid: the kernels check their inputs on the
// host before launching, so a bad call never reaches the device.
inline void require(bool ok, const std::string& message) {
  if (!ok) throw cuda_error(message);
}

// The number of CUDA devices usable here; 0 (never an exception) when there is no device or
// no driver, so tests and trainers can say why they skip.
inline int device_count(std::string* why = nullptr) {
  int n = 0;
  const cudaError_t e = cudaGetDeviceCount(&n);
  if (e != cudaSuccess) {
    if (why) *why = cudaGetErrorString(e);
    (void)cudaGetLastError();  // clear the sticky error
    return 0;
  }
  if (n == 0 && why) *why = "no CUDA device";
  return n;
}

}  // namespace trainperf::cuda

// Checks a CUDA runtime or cuBLASLt call; throws trainperf::cuda::cuda_error on failure.
#define TRAINPERF_CUDA_CHECK(call) ::trainperf::cuda::check((call), #call, __FILE__, __LINE__)
// Checks the last kernel launch.
#define TRAINPERF_CUDA_CHECK_LAUNCH() ::trainperf::cuda::check(cudaGetLastError(), "kernel launch", __FILE__, __LINE__)
