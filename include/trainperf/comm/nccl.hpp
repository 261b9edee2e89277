// trainperf — NCCL communicators over the process groups of a trainperf layout (GPU tensor,
// data, pipeline, context and expert parallelism), the GPU counterpart of comm/mpi.hpp.
//
// One world communicator (ncclCommInitRank, its unique id made on rank 0 and broadcast with
// MPI_Bcast) and, for every group kind asked for ("tp", "dp", "pp", "dp-cp", "ep", ...; by
// default all of layout_group_kinds), one ncclCommSplit of it: color = the index of the group
// that contains this rank in layout.groups(kind), key = this rank's position in that group, so
// rank i of a group communicator is member i of the layout's group. A rank in no group of a
// kind (the "embedding" groups hold only the first and last pipeline stages) gets no
// communicator for it: nccl_group::member() is false and its collectives throw.
//
// Every NCCL result is checked; a failure throws trainperf::comm::nccl_error naming the operation,
// the group kind, this rank's world rank and its rank in the group, ncclGetErrorString and
// ncclGetLastError. Arguments are checked on the host before NCCL is called.
// Collectives are asynchronous on the given stream, like NCCL's own; nccl_group::check_async
// reports errors that surface later. Every rank must call the same collectives in the same order.
//
// Optional: include it only where NCCL (>= 2.18, for ncclCommSplit), CUDA and MPI are available;
// link NCCL, CUDA::cudart and MPI::MPI_CXX (CMake: trainperf::nccl). Never included by trainperf.hpp.
#pragma once

#include <cuda_bf16.h>
#include <cuda_fp16.h>
#include <cuda_runtime.h>
#include <mpi.h>
#include <nccl.h>

#include <array>
#include <cstddef>
#include <cstdint>
#include <stdexcept>
#include <string>
#include <string_view>
#include <type_traits>
#include <utility>
#include <vector>

#include "../layout.hpp"

namespace trainperf::comm {

class nccl_error : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

#if !defined(NCCL_MAJOR) || !defined(NCCL_MINOR) || !defined(NCCL_PATCH)
#error "trainperf/comm/nccl.hpp: this nccl.h defines no NCCL_MAJOR/NCCL_MINOR/NCCL_PATCH; it needs NCCL >= 2.18"
#elif NCCL_MAJOR < 2 || (NCCL_MAJOR == 2 && NCCL_MINOR < 18)
namespace detail_nccl {
// The diagnostic shows the NCCL version found as this template's arguments.
template <int major, int minor, int patch>
struct nccl_is_too_old {
  static_assert(major < 0,
                "trainperf/comm/nccl.hpp needs ncclCommSplit, added in NCCL 2.18; the nccl.h found is older (its "
                "version is nccl_is_too_old<major, minor, patch> below): point NCCL_ROOT at NCCL 2.18 or newer");
};
inline constexpr std::size_t nccl_version_check = sizeof(nccl_is_too_old<NCCL_MAJOR, NCCL_MINOR, NCCL_PATCH>);
}  // namespace detail_nccl
#else

// The group kinds of a layout (see layout::groups): decoder, expert and embedding groups.
inline constexpr std::array<std::string_view, 16> layout_group_kinds = {
    "tp",    "cp", "dp",  "pp",  "dp-cp",  "mp",        "tp-cp",     "tp-dp-cp",
    "tp-dp", "ep", "etp", "edp", "etp-ep", "etp-ep-pp", "embedding", "position_embedding"};

inline std::vector<std::string> all_layout_group_kinds() {
  return std::vector<std::string>(layout_group_kinds.begin(), layout_group_kinds.end());
}

enum class reduce_op { sum, avg, max, min };

// The NCCL data type of T: float, double, __nv_bfloat16, __half and the fixed-width integers.
template <class T>
constexpr ncclDataType_t nccl_type() {
  using U = std::remove_cv_t<T>;
  if constexpr (std::is_same_v<U, float>)
    return ncclFloat32;
  else if constexpr (std::is_same_v<U, double>)
    return ncclFloat64;
  else if constexpr (std::is_same_v<U, __nv_bfloat16>)
    return ncclBfloat16;
  else if constexpr (std::is_same_v<U, __half>)
    return ncclFloat16;
  else if constexpr (std::is_same_v<U, std::int8_t>)
    return ncclInt8;
  else if constexpr (std::is_same_v<U, std::uint8_t>)
    return ncclUint8;
  else if constexpr (std::is_same_v<U, std::int32_t>)
    return ncclInt32;
  else if constexpr (std::is_same_v<U, std::uint32_t>)
    return ncclUint32;
  else if constexpr (std::is_same_v<U, std::int64_t>)
    return ncclInt64;
  else if constexpr (std::is_same_v<U, std::uint64_t>)
    return ncclUint64;
  else
    static_assert(sizeof(U) == 0,
                  "trainperf::comm::nccl_type: NCCL moves float, double, __nv_bfloat16, __half and "
                  "int8/uint8/int32/uint32/int64/uint64 elements");
}

constexpr ncclRedOp_t nccl_op(reduce_op op) {
  switch (op) {
    case reduce_op::sum:
      return ncclSum;
    case reduce_op::avg:
      return ncclAvg;
    case reduce_op::max:
      return ncclMax;
    case reduce_op::min:
      return ncclMin;
  }
  return ncclSum;
}

// The rank of this process among the processes of its node (MPI_COMM_TYPE_SHARED) and their count.
inline std::pair<int, int> local_rank_and_size(MPI_Comm world = MPI_COMM_WORLD) {
  MPI_Comm node = MPI_COMM_NULL;
  if (MPI_Comm_split_type(world, MPI_COMM_TYPE_SHARED, 0, MPI_INFO_NULL, &node) != MPI_SUCCESS)
    throw nccl_error("trainperf::comm: MPI_Comm_split_type(MPI_COMM_TYPE_SHARED) failed");
  int rank = 0, size = 1;
  MPI_Comm_rank(node, &rank);
  MPI_Comm_size(node, &size);
  MPI_Comm_free(&node);
  return {rank, size};
}

// Makes GPU (local rank mod the GPUs on this node) current and returns it: one GPU per process,
// set before the communicators are built (NCCL binds a communicator to the current device).
inline int select_local_device(MPI_Comm world = MPI_COMM_WORLD) {
  int devices = 0;
  const cudaError_t e = cudaGetDeviceCount(&devices);
  if (e != cudaSuccess || devices == 0)
    throw nccl_error(std::string("trainperf::comm: no CUDA device for NCCL (") +
                     (e != cudaSuccess ? cudaGetErrorString(e) : "0 devices") + "); run on a node with GPUs");
  const int device = local_rank_and_size(world).first % devices;
  const cudaError_t s = cudaSetDevice(device);
  if (s != cudaSuccess)
    throw nccl_error("trainperf::comm: cudaSetDevice(" + std::to_string(device) + ") failed: " + cudaGetErrorString(s));
  return device;
}

class nccl_communicators;

// The communicator of one group kind as seen from this rank (not owning: nccl_communicators owns
// and destroys it). Ranks, roots and peers are ranks within the group, 0 .. size() - 1.
class nccl_group {
 public:
  [[nodiscard]] const std::string& kind() const { return kind_; }
  // False when this rank is in no group of this kind (its collectives then throw).
  [[nodiscard]] bool member() const { return comm_ != nullptr; }
  [[nodiscard]] int size() const { return size_; }
  [[nodiscard]] int rank() const { return rank_; }
  [[nodiscard]] int world_rank() const { return world_rank_; }
  // The world ranks of this rank's group, in group-rank order (empty when not a member).
  [[nodiscard]] const std::vector<std::int64_t>& members() const { return members_; }
  [[nodiscard]] ncclComm_t comm() const { return comm_; }

  // recv[i] = op over the group of send[i], count elements; send == recv is in place.
  template <class T>
  void all_reduce(const T* send, T* recv, std::size_t count, reduce_op op, cudaStream_t stream) const {
    const char* what = "ncclAllReduce";
    require_member(what);
    require_buffer(what, "send", send, count);
    require_buffer(what, "recv", recv, count);
    check(ncclAllReduce(send, recv, count, nccl_type<T>(), nccl_op(op), comm_, stream), what);
  }
  template <class T>
  void all_reduce(T* data, std::size_t count, reduce_op op, cudaStream_t stream) const {
    all_reduce(static_cast<const T*>(data), data, count, op, stream);
  }

  // send holds size() x recv_count elements; group rank r receives the op over the group of
  // chunk r. In place when recv == send + rank() x recv_count.
  template <class T>
  void reduce_scatter(const T* send, T* recv, std::size_t recv_count, reduce_op op, cudaStream_t stream) const {
    const char* what = "ncclReduceScatter";
    require_member(what);
    require_buffer(what, "send", send, recv_count * static_cast<std::size_t>(size_));
    require_buffer(what, "recv", recv, recv_count);
    check(ncclReduceScatter(send, recv, recv_count, nccl_type<T>(), nccl_op(op), comm_, stream), what);
  }

  // recv holds size() x send_count elements: chunk r is group rank r's send. In place when
  // send == recv + rank() x send_count.
  template <class T>
  void all_gather(const T* send, T* recv, std::size_t send_count, cudaStream_t stream) const {
    const char* what = "ncclAllGather";
    require_member(what);
    require_buffer(what, "send", send, send_count);
    require_buffer(what, "recv", recv, send_count * static_cast<std::size_t>(size_));
    check(ncclAllGather(send, recv, send_count, nccl_type<T>(), comm_, stream), what);
  }

  // recv = root's send on every rank (send is read on the root only).
  template <class T>
  void broadcast(const T* send, T* recv, std::size_t count, int root, cudaStream_t stream) const {
    const char* what = "ncclBroadcast";
    require_member(what);
    require_peer(what, "root", root);
    if (rank_ == root) require_buffer(what, "send", send, count);
    require_buffer(what, "recv", recv, count);
    check(ncclBroadcast(send, recv, count, nccl_type<T>(), root, comm_, stream), what);
  }
  template <class T>
  void broadcast(T* data, std::size_t count, int root, cudaStream_t stream) const {
    broadcast(static_cast<const T*>(data), data, count, root, stream);
  }

  // Point to point; the peer posts the matching recv / send with the same count and type. A send
  // and a recv that must progress together (a ring, a pipeline exchange) go through send_recv.
  template <class T>
  void send(const T* data, std::size_t count, int peer, cudaStream_t stream) const {
    const char* what = "ncclSend";
    require_member(what);
    require_peer(what, "peer", peer);
    require_buffer(what, "data", data, count);
    check(ncclSend(data, count, nccl_type<T>(), peer, comm_, stream), what);
  }
  template <class T>
  void recv(T* data, std::size_t count, int peer, cudaStream_t stream) const {
    const char* what = "ncclRecv";
    require_member(what);
    require_peer(what, "peer", peer);
    require_buffer(what, "data", data, count);
    check(ncclRecv(data, count, nccl_type<T>(), peer, comm_, stream), what);
  }
  // Sends to send_peer and receives from recv_peer as one NCCL group (ncclGroupStart/End), so
  // both progress together and a ring of them cannot deadlock.
  template <class T>
  void send_recv(const T* send_data, std::size_t send_count, int send_peer, T* recv_data, std::size_t recv_count,
                 int recv_peer, cudaStream_t stream) const {
    const char* what = "ncclSend/ncclRecv group";
    require_member(what);
    require_peer(what, "send_peer", send_peer);
    require_peer(what, "recv_peer", recv_peer);
    require_buffer(what, "send_data", send_data, send_count);
    require_buffer(what, "recv_data", recv_data, recv_count);
    check(ncclGroupStart(), "ncclGroupStart");
    const ncclResult_t s = ncclSend(send_data, send_count, nccl_type<T>(), send_peer, comm_, stream);
    const ncclResult_t r = ncclRecv(recv_data, recv_count, nccl_type<T>(), recv_peer, comm_, stream);
    const ncclResult_t e = ncclGroupEnd();  // always closes the group, even after a failed call
    check(s, "ncclSend");
    check(r, "ncclRecv");
    check(e, "ncclGroupEnd");
  }

  // Throws nccl_error for an asynchronous error of this communicator (e.g. a peer that failed).
  void check_async() const {
    if (comm_ == nullptr) return;
    ncclResult_t async = ncclSuccess;
    check(ncclCommGetAsyncError(comm_, &async), "ncclCommGetAsyncError");
    check(async, "an earlier asynchronous operation");
  }

  // Throws nccl_error unless r is ncclSuccess; the message names the operation, the group kind,
  // the world rank, the rank in the group, ncclGetErrorString(r) and ncclGetLastError.
  void check(ncclResult_t r, const char* what) const {
    if (r == ncclSuccess) return;
    const char* last = ncclGetLastError(comm_);
    throw nccl_error(where(what) + ": " + ncclGetErrorString(r) +
                     (last != nullptr && *last != '\0' ? std::string("; last NCCL error: ") + last : std::string()));
  }

 private:
  friend class nccl_communicators;
  nccl_group(std::string kind, int world_rank) : kind_(std::move(kind)), world_rank_(world_rank) {}

  [[nodiscard]] std::string where(const char* what) const {
    const std::string in_group =
        rank_ >= 0 ? "rank " + std::to_string(rank_) + " of " + std::to_string(size_) + " in the group"
                   : "in no " + kind_ + " group";
    return "trainperf::comm: " + std::string(what) + " on the " + kind_ + " group failed on world rank " +
           std::to_string(world_rank_) + " (" + in_group + ")";
  }
  void require_member(const char* what) const {
    if (!member())
      throw nccl_error(where(what) + ": this rank belongs to no " + kind_ +
                       " group of the layout; call it only on ranks where member() is true");
  }
  template <class T>
  void require_buffer(const char* what, const char* name, const T* p, std::size_t count) const {
    if (p == nullptr && count > 0)
      throw nccl_error(where(what) + ": " + name + " is null but count is " + std::to_string(count) +
                       "; pass a device buffer of that many elements");
  }
  void require_peer(const char* what, const char* name, int peer) const {
    if (peer < 0 || peer >= size_)
      throw nccl_error(where(what) + ": " + name + " = " + std::to_string(peer) + " is outside the group's ranks 0.." +
                       std::to_string(size_ - 1));
  }

  std::string kind_;
  ncclComm_t comm_ = nullptr;
  int world_rank_ = 0, rank_ = -1, size_ = 0;
  std::vector<std::int64_t> members_;
};

// Groups of world ranks the layout does not name (e.g. the tensor ranks sharing a replicated
// key/value head), under a kind of their own: each rank in at most one of them.
struct named_groups {
  std::string kind;
  std::vector<std::vector<std::int64_t> > groups;
};

// Owns the world communicator and one split per group kind; move-only, destroys them all.
// Collective over the MPI communicator: every rank constructs it with the same layout, kinds and
// extra groups, after choosing its GPU (select_local_device), and destroys it in the same order.
class nccl_communicators {
 public:
  explicit nccl_communicators(const layout& l, const std::vector<std::string>& kinds = all_layout_group_kinds(),
                              MPI_Comm mpi_world = MPI_COMM_WORLD, const std::vector<named_groups>& extra = {})
      : world_("world", 0) {
    int initialized = 0;
    MPI_Initialized(&initialized);
    if (!initialized)
      throw nccl_error("trainperf::comm: MPI is not initialized; call MPI_Init before building NCCL communicators");
    int rank = 0, size = 1;
    mpi_check(MPI_Comm_rank(mpi_world, &rank), "MPI_Comm_rank", rank);
    mpi_check(MPI_Comm_size(mpi_world, &size), "MPI_Comm_size", rank);
    world_.world_rank_ = world_.rank_ = rank;
    world_.size_ = size;
    if (l.world() != size)
      throw nccl_error("trainperf::comm: the layout has " + std::to_string(l.world()) + " ranks but MPI has " +
                       std::to_string(size) + "; launch " + std::to_string(l.world()) +
                       " processes (mpiexec -n) or build the layout for a world of " + std::to_string(size));
    std::vector<named_groups> all;
    for (const auto& kind : kinds)
      all.push_back({kind, l.groups(kind)});  // an unknown kind throws here, on every rank alike
    for (const auto& g : extra) {
      for (const auto& members : g.groups)
        for (const std::int64_t r : members)
          if (r < 0 || r >= size)
            throw nccl_error("trainperf::comm: group kind '" + g.kind + "' names world rank " + std::to_string(r) +
                             ", outside 0.." + std::to_string(size - 1));
      all.push_back(g);
    }
    try {
      build(all, mpi_world);
    } catch (...) {
      destroy();  // no destructor runs for a half-built object
      throw;
    }
  }

  nccl_communicators(const nccl_communicators&) = delete;
  nccl_communicators& operator=(const nccl_communicators&) = delete;
  nccl_communicators(nccl_communicators&& o) noexcept : world_(std::move(o.world_)), groups_(std::move(o.groups_)) {
    o.world_.comm_ = nullptr;
    o.groups_.clear();
  }
  nccl_communicators& operator=(nccl_communicators&& o) noexcept {
    if (this != &o) {
      destroy();
      world_ = std::move(o.world_);
      groups_ = std::move(o.groups_);
      o.world_.comm_ = nullptr;
      o.groups_.clear();
    }
    return *this;
  }
  ~nccl_communicators() { destroy(); }

  [[nodiscard]] const nccl_group& world() const { return world_; }
  [[nodiscard]] int world_rank() const { return world_.rank_; }
  [[nodiscard]] int world_size() const { return world_.size_; }
  [[nodiscard]] bool has(std::string_view kind) const {
    for (const auto& g : groups_)
      if (g.kind_ == kind) return true;
    return false;
  }
  // The communicator of a group kind built by the constructor.
  [[nodiscard]] const nccl_group& group(std::string_view kind) const {
    for (const auto& g : groups_)
      if (g.kind_ == kind) return g;
    std::string built;
    for (const auto& g : groups_) built += (built.empty() ? "" : ", ") + g.kind_;
    throw nccl_error("trainperf::comm: no NCCL communicator for group kind '" + std::string(kind) + "' on world rank " +
                     std::to_string(world_.world_rank_) + " (built: " + (built.empty() ? std::string("none") : built) +
                     "); name it in the constructor's kinds");
  }

 private:
  void build(const std::vector<named_groups>& kinds, MPI_Comm mpi_world) {
    const int rank = world_.rank_, size = world_.size_;
    // The unique id travels with rank 0's result, so a failure there fails every rank (no hang).
    struct {
      int result;
      ncclUniqueId id;
    } root{};
    if (rank == 0) root.result = static_cast<int>(ncclGetUniqueId(&root.id));
    mpi_check(MPI_Bcast(&root, sizeof root, MPI_BYTE, 0, mpi_world), "MPI_Bcast of the NCCL unique id", rank);
    world_.check(static_cast<ncclResult_t>(root.result), "ncclGetUniqueId (on world rank 0)");
    world_.check(ncclCommInitRank(&world_.comm_, size, root.id, rank), "ncclCommInitRank");
    for (int r = 0; r < size; ++r) world_.members_.push_back(r);

    groups_.reserve(kinds.size());
    for (const auto& [kind, all] : kinds) {
      nccl_group g(kind, rank);
      int color = NCCL_SPLIT_NOCOLOR, key = 0;
      for (std::size_t i = 0; i < all.size(); ++i)
        for (std::size_t j = 0; j < all[i].size(); ++j)
          if (all[i][j] == rank) color = static_cast<int>(i), key = static_cast<int>(j), g.members_ = all[i];
      world_.check(ncclCommSplit(world_.comm_, color, key, &g.comm_, nullptr), ("ncclCommSplit for " + kind).c_str());
      if (g.member()) g.rank_ = key, g.size_ = static_cast<int>(g.members_.size());
      groups_.push_back(std::move(g));  // owned from here on
      const nccl_group& made = groups_.back();
      if (!made.member()) continue;
      int got_rank = -1, got_size = 0;
      made.check(ncclCommUserRank(made.comm_, &got_rank), "ncclCommUserRank");
      made.check(ncclCommCount(made.comm_, &got_size), "ncclCommCount");
      if (got_rank != made.rank_ || got_size != made.size_)
        throw nccl_error(made.where("ncclCommSplit") + ": NCCL made rank " + std::to_string(got_rank) + " of " +
                         std::to_string(got_size) + ", not the layout's rank " + std::to_string(made.rank_) + " of " +
                         std::to_string(made.size_));
    }
  }
  static void mpi_check(int rc, const char* what, int rank) {
    if (rc == MPI_SUCCESS) return;
    char msg[MPI_MAX_ERROR_STRING];
    int len = 0;
    MPI_Error_string(rc, msg, &len);
    throw nccl_error("trainperf::comm: " + std::string(what) + " failed on world rank " + std::to_string(rank) + ": " +
                     std::string(msg, static_cast<std::size_t>(len)));
  }
  // Split communicators first (newest first), then the world they were split from. Finalize
  // flushes outstanding work; errors cannot be reported from a destructor and are ignored.
  void destroy() noexcept {
    for (auto it = groups_.rbegin(); it != groups_.rend(); ++it)
      if (it->comm_ != nullptr) {
        (void)ncclCommFinalize(it->comm_);
        (void)ncclCommDestroy(it->comm_);
        it->comm_ = nullptr;
      }
    groups_.clear();
    if (world_.comm_ != nullptr) {
      (void)ncclCommFinalize(world_.comm_);
      (void)ncclCommDestroy(world_.comm_);
      world_.comm_ = nullptr;
    }
  }

  nccl_group world_;
  std::vector<nccl_group> groups_;
};

#endif  // NCCL >= 2.18

}  // namespace trainperf::comm
