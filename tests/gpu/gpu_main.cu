// doctest main for the GPU tests: without a usable CUDA device it prints why and exits with
// 77, which CTest reports as "Skipped" (SKIP_RETURN_CODE); otherwise it runs the suite.
#define DOCTEST_CONFIG_IMPLEMENT
#include <doctest/doctest.h>

#include <cstdio>
#include <string>
#include <trainperf/kernels/cuda/check.cuh>

int main(int argc, char** argv) {
  std::string why;
  if (trainperf::cuda::device_count(&why) == 0) {
    std::printf("SKIPPED: no usable CUDA device (%s); this GPU test needs one\n", why.c_str());
    return 77;
  }
  doctest::Context ctx(argc, argv);
  return ctx.run();
}
