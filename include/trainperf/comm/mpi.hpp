// trainperf — MPI collectives and point-to-point transfers over the process groups of a
// trainperf layout (the example trainer's CPU tensor, pipeline and data parallelism).
// Optional: include it only when MPI is available; link MPI::MPI_CXX.
#pragma once

#include <algorithm>
#include <cstdint>
#include <deque>
#include <limits>
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
  // Every rank of `parent` calls it (MPI_Comm_split is collective). A rank in no group of the
  // kind (the "embedding" groups hold only the first and last pipeline stages) is refused, unless
  // `optional`: then it gets no communicator (member() is false) and calls nothing on it.
  mpi_group(const layout& l, std::string_view kind, MPI_Comm parent = MPI_COMM_WORLD, bool optional = false)
      : mpi_group(l.groups(kind), kind, parent, optional) {}
  // The same over groups given as lists of `parent`'s ranks (disjoint; a group's order is its
  // ranks' order), named `kind` in errors: for groups a layout does not have.
  mpi_group(const std::vector<std::vector<std::int64_t>>& groups, std::string_view kind,
            MPI_Comm parent = MPI_COMM_WORLD, bool optional = false)
      : kind_(kind) {
    check(MPI_Comm_rank(parent, &world_rank_), "MPI_Comm_rank");
    int color = MPI_UNDEFINED, key = 0;
    for (std::size_t g = 0; g < groups.size(); ++g)
      for (std::size_t i = 0; i < groups[g].size(); ++i)
        if (groups[g][i] == world_rank_) color = static_cast<int>(g), key = static_cast<int>(i), members_ = groups[g];
    if (color == MPI_UNDEFINED && !optional)
      throw std::runtime_error("trainperf::comm: rank " + std::to_string(world_rank_) + " is in no " + kind_ +
                               " group of the layout");
    check(MPI_Comm_split(parent, color, key, &comm_), "MPI_Comm_split");
    if (comm_ == MPI_COMM_NULL) return;
    // Failures come back as codes, so that check() can say which operation, group and peer failed
    // (the default handler aborts inside MPI without a word about them).
    check(MPI_Comm_set_errhandler(comm_, MPI_ERRORS_RETURN), "MPI_Comm_set_errhandler");
    check(MPI_Comm_size(comm_, &size_), "MPI_Comm_size");
    check(MPI_Comm_rank(comm_, &rank_), "MPI_Comm_rank");
  }
  mpi_group(const mpi_group&) = delete;
  mpi_group& operator=(const mpi_group&) = delete;
  ~mpi_group() {
    // Sends still pending here are an error path's (a normal step waits for them): waiting could
    // block on a peer that will never receive, so they are cancelled; the process then aborts.
    for (auto& s : sends_) {
      MPI_Cancel(&s.request);
      MPI_Request_free(&s.request);
    }
    if (comm_ != MPI_COMM_NULL) MPI_Comm_free(&comm_);
  }

  [[nodiscard]] bool member() const { return comm_ != MPI_COMM_NULL; }
  [[nodiscard]] int size() const { return size_; }
  [[nodiscard]] int rank() const { return rank_; }

  // Sequence parallelism's collectives over equal parts of n elements, part r on group rank r:
  // reduce_scatter_block_sum puts the group's sum of this rank's part of `whole` (size x n) in
  // `part`; allgather_block puts every rank's `part` into `whole` in rank order.
  void reduce_scatter_block_sum(const float* whole, float* part, std::int64_t n) const {
    check_count(n, "MPI_Reduce_scatter_block");
    check(MPI_Reduce_scatter_block(whole, part, static_cast<int>(n), MPI_FLOAT, MPI_SUM, comm_),
          "MPI_Reduce_scatter_block");
  }
  void allgather_block(const float* part, float* whole, std::int64_t n) const {
    check_count(n, "MPI_Allgather");
    check(MPI_Allgather(part, static_cast<int>(n), MPI_FLOAT, whole, static_cast<int>(n), MPI_FLOAT, comm_),
          "MPI_Allgather");
  }

  // ZeRO's collectives over a flat buffer cut into consecutive parts, part r = [bounds[r],
  // bounds[r + 1]) owned by group rank r: reduce_scatter_sum leaves the group's sum of this rank's
  // part in place (the rest of `data` is left as it was); allgather fills every other rank's part
  // from its owner. Both go in pieces of at most `chunk` elements of the buffer, so that MPI's
  // temporary buffers stay small (whole-buffer calls added 1.1 GiB to a 600 MB buffer's rank).
  void reduce_scatter_sum(float* data, const std::vector<std::int64_t>& bounds) const {
    std::vector<float> mine;
    for_each_piece(bounds, [&](std::int64_t at, const std::vector<int>& counts, const std::vector<int>&) {
      const std::int64_t my_begin = std::max(bounds[static_cast<std::size_t>(rank_)], at);
      mine.resize(static_cast<std::size_t>(counts[static_cast<std::size_t>(rank_)]));
      check(MPI_Reduce_scatter(data + at, mine.data(), counts.data(), MPI_FLOAT, MPI_SUM, comm_), "MPI_Reduce_scatter");
      std::copy(mine.begin(), mine.end(), data + my_begin);
    });
  }
  void allgather(float* data, const std::vector<std::int64_t>& bounds) const {
    for_each_piece(bounds, [&](std::int64_t at, const std::vector<int>& counts, const std::vector<int>& offsets) {
      check(MPI_Allgatherv(MPI_IN_PLACE, 0, MPI_DATATYPE_NULL, data + at, counts.data(), offsets.data(), MPI_FLOAT,
                           comm_),
            "MPI_Allgatherv");
    });
  }

  // Point to point inside the group (pipeline hand-offs), by group rank. send copies the data
  // and returns at once (MPI_Isend), so that two neighbours sending to each other cannot wait on
  // each other; wait_sends completes them all. recv blocks until the message with this tag from
  // `from` has arrived, and checks that it has exactly n elements.
  void send(const float* data, std::int64_t n, int to, int tag) {
    check_count(n, "MPI_Isend");
    // The sends completed so far give their buffers back (in order: the oldest first), so that a
    // pipeline keeps only the hand-offs still in flight.
    for (int done = 1; !sends_.empty() && done;) {
      check(MPI_Test(&sends_.front().request, &done, MPI_STATUS_IGNORE), "MPI_Test (a send)");
      if (done) sends_.pop_front();
    }
    sends_.push_back({std::vector<float>(data, data + n), MPI_REQUEST_NULL});
    auto& s = sends_.back();
    check(MPI_Isend(s.data.data(), static_cast<int>(n), MPI_FLOAT, to, tag, comm_, &s.request), "MPI_Isend", nullptr,
          to);
  }
  void recv(float* data, std::int64_t n, int from, int tag) const {
    check_count(n, "MPI_Recv");
    MPI_Status status;
    check(MPI_Recv(data, static_cast<int>(n), MPI_FLOAT, from, tag, comm_, &status), "MPI_Recv", nullptr, from);
    int got = 0;
    MPI_Get_count(&status, MPI_FLOAT, &got);
    if (got != n)
      throw std::runtime_error("trainperf::comm: MPI_Recv on world rank " + std::to_string(world_rank_) + " in its " +
                               kind_ + " group got " + std::to_string(got) + " elements from group rank " +
                               std::to_string(from) + ", expected " + std::to_string(n));
  }
  void wait_sends() {
    for (auto& s : sends_) check(MPI_Wait(&s.request, MPI_STATUS_IGNORE), "MPI_Wait (a send)");
    sends_.clear();
  }

  // In-place sums and maxima over the group (gradient all-reduce; tensor-parallel reductions).
  void allreduce_sum(float* data, std::int64_t n) const { allreduce(data, n, MPI_FLOAT, MPI_SUM, "sum"); }
  void allreduce_sum(double* data, std::int64_t n) const { allreduce(data, n, MPI_DOUBLE, MPI_SUM, "sum"); }
  void allreduce_max(float* data, std::int64_t n) const { allreduce(data, n, MPI_FLOAT, MPI_MAX, "max"); }

 private:
  // All-reduces go in pieces of at most 2^24 elements (64 MiB of fp32): MPI counts are int, and
  // Open MPI's ring all-reduce allocates temporary buffers as large as the message.
  static constexpr std::int64_t chunk = std::int64_t{1} << 24;
  template <class T>
  void allreduce(T* data, std::int64_t n, MPI_Datatype type, MPI_Op op, const char* what) const {
    for (std::int64_t at = 0; at < n; at += chunk) {
      const int count = static_cast<int>(std::min<std::int64_t>(chunk, n - at));
      check(MPI_Allreduce(MPI_IN_PLACE, data + at, count, type, op, comm_), "MPI_Allreduce", what);
    }
  }
  // f(piece begin, each rank's element count in the piece, their offsets from its begin) for each
  // piece of at most `chunk` elements of [bounds.front(), bounds.back()).
  template <class F>
  void for_each_piece(const std::vector<std::int64_t>& bounds, F&& f) const {
    if (bounds.size() != static_cast<std::size_t>(size_) + 1)
      throw std::runtime_error("trainperf::comm: " + std::to_string(bounds.size()) + " part bounds for a " + kind_ +
                               " group of " + std::to_string(size_) + " ranks; give one more bound than ranks");
    std::vector<int> counts(static_cast<std::size_t>(size_)), offsets(counts.size());
    for (std::int64_t at = bounds.front(); at < bounds.back(); at += chunk) {
      const std::int64_t end = std::min(at + chunk, bounds.back());
      for (std::size_t r = 0; r < counts.size(); ++r) {
        const std::int64_t b = std::clamp(bounds[r], at, end), e = std::clamp(bounds[r + 1], at, end);
        counts[r] = static_cast<int>(e - b), offsets[r] = static_cast<int>(b - at);
      }
      f(at, counts, offsets);
    }
  }
  void check_count(std::int64_t n, const char* call) const {
    if (n >= 0 && n <= std::numeric_limits<int>::max()) return;
    throw std::runtime_error("trainperf::comm: " + std::string(call) + " of " + std::to_string(n) +
                             " elements on world rank " + std::to_string(world_rank_) +
                             ": more than one MPI message holds; send it in parts");
  }
  // A failed call names the operation, this rank, its group and the group's world ranks (and
  // the peer's group rank for point to point).
  void check(int rc, const char* call, const char* what = nullptr, int peer = -1) const {
    if (rc == MPI_SUCCESS) return;
    char msg[MPI_MAX_ERROR_STRING];
    int len = 0;
    MPI_Error_string(rc, msg, &len);
    std::string ranks;
    for (std::size_t i = 0; i < members_.size(); ++i) ranks += (i ? "," : "") + std::to_string(members_[i]);
    throw std::runtime_error("trainperf::comm: " + std::string(call) + (what ? std::string(" (") + what + ")" : "") +
                             (peer >= 0 ? " with group rank " + std::to_string(peer) : std::string()) +
                             " failed on world rank " + std::to_string(world_rank_) + " in its " + kind_ +
                             " group (world ranks " + ranks + "): " + std::string(msg, static_cast<std::size_t>(len)));
  }

  std::string kind_;
  MPI_Comm comm_ = MPI_COMM_NULL;
  int world_rank_ = 0, size_ = 1, rank_ = 0;
  std::vector<std::int64_t> members_;  // the group's world ranks, in group order
  struct pending_send {
    std::vector<float> data;
    MPI_Request request;
  };
  std::deque<pending_send> sends_;  // a deque: a new send never moves an earlier one's buffer
};

}  // namespace trainperf::comm
