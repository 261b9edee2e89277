// trainperf — MPI collectives over the process groups of a trainperf layout (CPU data
// parallelism). Optional: include it only when MPI is available; link MPI::MPI_CXX.
#pragma once

#include <cstdint>
#include <stdexcept>
#include <string>
#include <vector>

#include <mpi.h>

#include "../layout.hpp"

namespace trainperf::comm {

// One communicator per group of a layout's kind ("dp", "tp", ...), made with MPI_Comm_split:
// ranks of the same group get the same color (the group's position in layout.groups()).
class mpi_group {
 public:
  mpi_group(const layout& l, std::string_view kind, MPI_Comm parent = MPI_COMM_WORLD) : kind_(kind) {
    check(MPI_Comm_rank(parent, &world_rank_), "MPI_Comm_rank");
    const auto groups = l.groups(kind);
    int color = -1, key = 0;
    for (std::size_t g = 0; g < groups.size(); ++g)
      for (std::size_t i = 0; i < groups[g].size(); ++i)
        if (groups[g][i] == world_rank_) color = static_cast<int>(g), key = static_cast<int>(i);
    if (color < 0)
      throw std::runtime_error("trainperf::comm: rank " + std::to_string(world_rank_) + " is in no " + kind_ +
                               " group of the layout");
    check(MPI_Comm_split(parent, color, key, &comm_), "MPI_Comm_split");
    check(MPI_Comm_size(comm_, &size_), "MPI_Comm_size");
    check(MPI_Comm_rank(comm_, &rank_), "MPI_Comm_rank");
  }
  mpi_group(const mpi_group&) = delete;
  mpi_group& operator=(const mpi_group&) = delete;
  ~mpi_group() {
    if (comm_ != MPI_COMM_NULL) MPI_Comm_free(&comm_);
  }

  [[nodiscard]] int size() const { return size_; }
  [[nodiscard]] int rank() const { return rank_; }

  // In-place sum over the group (gradient all-reduce).
  void allreduce_sum(float* data, std::int64_t n) const {
    for (std::int64_t at = 0; at < n; at += chunk) {
      const int count = static_cast<int>(std::min<std::int64_t>(chunk, n - at));
      check(MPI_Allreduce(MPI_IN_PLACE, data + at, count, MPI_FLOAT, MPI_SUM, comm_), "MPI_Allreduce");
    }
  }
  [[nodiscard]] double allreduce_sum(double x) const {
    check(MPI_Allreduce(MPI_IN_PLACE, &x, 1, MPI_DOUBLE, MPI_SUM, comm_), "MPI_Allreduce");
    return x;
  }

 private:
  static constexpr std::int64_t chunk = std::int64_t{1} << 30;  // MPI counts are int
  void check(int rc, const char* what) const {
    if (rc == MPI_SUCCESS) return;
    char msg[MPI_MAX_ERROR_STRING];
    int len = 0;
    MPI_Error_string(rc, msg, &len);
    throw std::runtime_error("trainperf::comm: " + std::string(what) + " failed on world rank " +
                             std::to_string(world_rank_) + " in its " + kind_ +
                             " group: " + std::string(msg, static_cast<std::size_t>(len)));
  }

  std::string kind_;
  MPI_Comm comm_ = MPI_COMM_NULL;
  int world_rank_ = 0, size_ = 1, rank_ = 0;
};

}  // namespace trainperf::comm
