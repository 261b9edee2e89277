// The interconnect the parallel trainer runs over, measured the way `trainperf predict` takes it:
// an all-reduce's bus bandwidth (nccl-tests' convention, PERFORMANCE.md: algorithm bandwidth
// bytes / time times 2 (n - 1) / n, what each rank's link carries) on a large buffer, and the
// time of one algorithm step from an 8-byte all-reduce (2 (n - 1) steps of a ring). Through
// trainperf::comm::mpi_group, as train_llama's collectives go; ZeRO-1's reduce-scatter and
// all-gather beside them, for information (predict takes one bandwidth). Baseline in the same
// run: a memcpy of the same buffer in one process (the shared-memory transport's ceiling).
//   mpirun -n N mpi_link [MiB] [repetitions]
// Prints the figures and the flags: --intra-node-bw GB/s --latency-us US.
#include <mpi.h>

#include <algorithm>
#include <chrono>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <vector>

#include <fmt/format.h>

#include <trainperf/comm/mpi.hpp>

namespace {

// The fastest of `reps` timings of `inner` calls of f, per call, in seconds; the ranks start
// together and each timing ends when the slowest rank is done (one small all-reduce, spread over
// the inner calls).
template <class F>
double fastest(int reps, int inner, const trainperf::comm::mpi_group& g, F&& f) {
  double best = 1e30;
  for (int i = 0; i < reps; ++i) {
    float sync = 0;
    g.allreduce_sum(&sync, 1);
    const auto t0 = std::chrono::steady_clock::now();
    for (int j = 0; j < inner; ++j) f();
    g.allreduce_sum(&sync, 1);
    best = std::min(best, std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count() / inner);
  }
  return best;
}

}  // namespace

int main(int argc, char** argv) {
  MPI_Init(&argc, &argv);
  int world = 1, rank = 0;
  MPI_Comm_size(MPI_COMM_WORLD, &world);
  MPI_Comm_rank(MPI_COMM_WORLD, &rank);
  const std::int64_t mib = argc > 1 ? std::atoll(argv[1]) : 64;
  const int reps = argc > 2 ? std::atoi(argv[2]) : 10;
  if (world < 2 || mib < 1 || reps < 1) {
    if (rank == 0) fmt::print(stderr, "mpi_link: run it with mpirun -n N (N >= 2) [MiB >= 1] [repetitions >= 1]\n");
    MPI_Finalize();
    return 2;
  }
  std::vector<std::vector<std::int64_t>> all(1);
  for (int r = 0; r < world; ++r) all[0].push_back(r);
  {
    const trainperf::comm::mpi_group g(all, "world");
    const std::int64_t n = mib * (1 << 20) / 4;
    std::vector<float> x(static_cast<std::size_t>(n), 1.0f), y(x.size());
    const double bytes = static_cast<double>(n) * 4;
    const double t_big = fastest(reps, 1, g, [&] { g.allreduce_sum(x.data(), n); });
    float small[2] = {1, 1};
    const double t_small = fastest(reps, 1000, g, [&] { g.allreduce_sum(small, 2); });
    const double copy = fastest(reps, 1, g, [&] { std::memcpy(y.data(), x.data(), static_cast<std::size_t>(bytes)); });
    // ZeRO-1's collectives over the same buffer in equal parts, as train_llama runs them
    // (bus bandwidth: bytes / time x (n - 1) / n, nccl-tests' convention for both).
    std::vector<std::int64_t> bounds;
    for (int r = 0; r <= world; ++r) bounds.push_back(n * r / world);
    const double t_rs = fastest(reps, 1, g, [&] { g.reduce_scatter_sum(x.data(), bounds); });
    const double t_ag = fastest(reps, 1, g, [&] { g.allgather(x.data(), bounds); });
    const double part_bus = bytes * (world - 1.0) / world / 1e9;
    const double bus = bytes / t_big * 2.0 * (world - 1) / world / 1e9;
    const double step_us = t_small / (2.0 * (world - 1)) * 1e6;
    if (rank == 0) {
      fmt::print("mpi_link: {} processes, all-reduce of {} MiB fp32, fastest of {}\n", world, mib, reps);
      fmt::print("  all-reduce: {:.2f} ms, bus bandwidth {:.2f} GB/s\n", t_big * 1e3, bus);
      fmt::print("  8-byte all-reduce: {:.1f} us, {:.1f} us per ring step\n", t_small * 1e6, step_us);
      fmt::print(
          "  reduce-scatter: {:.2f} ms, bus bandwidth {:.2f} GB/s; all-gather: {:.2f} ms, bus bandwidth {:.2f} GB/s\n",
          t_rs * 1e3, part_bus / t_rs, t_ag * 1e3, part_bus / t_ag);
      fmt::print("  baseline: memcpy of the buffer in one process {:.2f} GB/s (all-reduce bus bandwidth {:.2f}x it)\n",
                 bytes / copy / 1e9, bus / (bytes / copy / 1e9));
      fmt::print(
          "flags: --intra-node-bw {:.2f} --latency-us {:.1f} --reduce-scatter-bw {:.2f} --all-gather-bw {:.2f}\n", bus,
          step_us, part_bus / t_rs, part_bus / t_ag);
    }
  }
  MPI_Finalize();
  return 0;
}
