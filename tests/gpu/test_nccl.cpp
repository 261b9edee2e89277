// GPU test for <trainperf/comm/nccl.hpp>, run under MPI: mpiexec -n N gpu_nccl, N = the number
// of GPUs (1 allowed). Without a usable GPU for every rank it prints why and exits with 77, which
// CTest reports as "Skipped".
//
// For layouts of world N (tp = N, dp = N, pp = N) it builds the NCCL communicators of every group
// kind and checks, on every group this rank belongs to, all-reduce (sum in fp32 and bf16, avg,
// in place), all-gather, reduce-scatter, broadcast and a send/recv ring against values computed
// from the layout's own groups; then that a rank outside a group, a bad argument and an NCCL error
// code each give an nccl_error naming the operation and the group. Values are small integers, so
// every sum is exact in fp32 and bf16.

#include <trainperf/comm/nccl.hpp>
#include <trainperf/kernels/cuda/check.cuh>
#include <trainperf/layout.hpp>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <exception>
#include <string>
#include <type_traits>
#include <vector>

namespace {

namespace tcm = trainperf::comm;
using i64 = std::int64_t;

int world_rank = 0;
int failures = 0;

void expect(bool ok, const std::string& what) {
  if (ok) return;
  ++failures;
  std::fprintf(stderr, "FAILED (world rank %d): %s\n", world_rank, what.c_str());
}

template <class T>
T from_double(double x) {
  if constexpr (std::is_same_v<T, __nv_bfloat16>)
    return __float2bfloat16_rn(static_cast<float>(x));
  else
    return static_cast<T>(x);
}
template <class T>
double to_double(T x) {
  if constexpr (std::is_same_v<T, __nv_bfloat16>)
    return static_cast<double>(__bfloat162float(x));
  else
    return static_cast<double>(x);
}

template <class T>
class dbuf {
 public:
  explicit dbuf(std::size_t n) : n_(n) {
    TRAINPERF_CUDA_CHECK(cudaMalloc(reinterpret_cast<void**>(&p_), std::max<std::size_t>(n, 1) * sizeof(T)));
  }
  dbuf(const dbuf&) = delete;
  dbuf& operator=(const dbuf&) = delete;
  ~dbuf() { (void)cudaFree(p_); }
  T* get() const { return p_; }
  void upload(const std::vector<T>& h) {
    TRAINPERF_CUDA_CHECK(cudaMemcpy(p_, h.data(), n_ * sizeof(T), cudaMemcpyHostToDevice));
  }
  std::vector<T> download() const {
    std::vector<T> h(n_);
    TRAINPERF_CUDA_CHECK(cudaMemcpy(h.data(), p_, n_ * sizeof(T), cudaMemcpyDeviceToHost));
    return h;
  }

 private:
  T* p_ = nullptr;
  std::size_t n_;
};

// Compares a downloaded buffer with expected(i), reporting the first mismatch.
template <class T, class F>
void expect_values(const std::string& what, const std::vector<T>& got, F expected, double tol = 0) {
  for (std::size_t i = 0; i < got.size(); ++i) {
    const double e = expected(i), g = to_double(got[i]);
    if (!(std::fabs(g - e) <= tol * std::fabs(e))) {
      expect(false,
             what + ": element " + std::to_string(i) + " is " + std::to_string(g) + ", expected " + std::to_string(e));
      return;
    }
  }
}

template <class T>
void all_reduce_sum(const tcm::nccl_group& g, cudaStream_t s, const std::string& what) {
  const std::size_t n = 1003;
  dbuf<T> send(n), recv(n);
  std::vector<T> h(n);
  for (std::size_t i = 0; i < n; ++i) h[i] = from_double<T>(2.0 * (world_rank + 1) + static_cast<double>(i % 5));
  send.upload(h);
  g.all_reduce(send.get(), recv.get(), n, tcm::reduce_op::sum, s);
  TRAINPERF_CUDA_CHECK(cudaStreamSynchronize(s));
  expect_values(what + " all_reduce sum", recv.download(), [&](std::size_t i) {
    double sum = 0;
    for (i64 m : g.members()) sum += 2.0 * static_cast<double>(m + 1) + static_cast<double>(i % 5);
    return sum;
  });
}

// groups: the layout's groups of g's kind.
void check_group(const tcm::nccl_group& g, const std::vector<std::vector<i64>>& groups, cudaStream_t s,
                 const std::string& name) {
  const std::string what = name + " " + g.kind();
  // Membership and ranks agree with the layout's groups.
  bool in_layout = false;
  for (const auto& grp : groups)
    for (std::size_t j = 0; j < grp.size(); ++j)
      if (grp[j] == world_rank) {
        in_layout = true;
        expect(g.member() && g.rank() == static_cast<int>(j) && g.size() == static_cast<int>(grp.size()) &&
                   g.members() == grp,
               what + ": rank/size/members differ from the layout's group");
      }
  expect(in_layout == g.member(), what + ": membership differs from the layout");
  if (!g.member()) {
    float* p = nullptr;
    try {
      g.all_reduce(p, 0, tcm::reduce_op::sum, s);
      expect(false, what + ": a collective on a non-member did not throw");
    } catch (const tcm::nccl_error& e) {
      expect(std::string(e.what()).find("no " + g.kind() + " group") != std::string::npos,
             what + ": non-member message does not name the group: " + e.what());
    }
    return;
  }
  const int size = g.size(), r = g.rank();
  const auto& members = g.members();

  all_reduce_sum<float>(g, s, what + " fp32");
  all_reduce_sum<__nv_bfloat16>(g, s, what + " bf16");

  {  // average, in place
    const std::size_t n = 257;
    dbuf<float> buf(n);
    std::vector<float> h(n);
    for (std::size_t i = 0; i < n; ++i) h[i] = static_cast<float>(world_rank * 4 + static_cast<int>(i % 3));
    buf.upload(h);
    g.all_reduce(buf.get(), n, tcm::reduce_op::avg, s);
    TRAINPERF_CUDA_CHECK(cudaStreamSynchronize(s));
    expect_values(
        what + " all_reduce avg (in place)", buf.download(),
        [&](std::size_t i) {
          double sum = 0;
          for (i64 m : members) sum += static_cast<double>(m * 4 + static_cast<i64>(i % 3));
          return sum / size;
        },
        1e-6);
  }
  {  // all-gather: chunk k is member k's contribution
    const std::size_t n = 257;
    dbuf<float> send(n), recv(n * static_cast<std::size_t>(size));
    std::vector<float> h(n);
    for (std::size_t i = 0; i < n; ++i) h[i] = static_cast<float>(world_rank * 1000 + static_cast<int>(i));
    send.upload(h);
    g.all_gather(send.get(), recv.get(), n, s);
    TRAINPERF_CUDA_CHECK(cudaStreamSynchronize(s));
    expect_values(what + " all_gather", recv.download(),
                  [&](std::size_t i) { return static_cast<double>(members[i / n] * 1000 + static_cast<i64>(i % n)); });
  }
  {  // reduce-scatter: rank r gets the sum of chunk r
    const std::size_t n = 129;
    dbuf<float> send(n * static_cast<std::size_t>(size)), recv(n);
    std::vector<float> h(n * static_cast<std::size_t>(size));
    for (std::size_t j = 0; j < h.size(); ++j) h[j] = static_cast<float>(world_rank + static_cast<int>(j));
    send.upload(h);
    g.reduce_scatter(send.get(), recv.get(), n, tcm::reduce_op::sum, s);
    TRAINPERF_CUDA_CHECK(cudaStreamSynchronize(s));
    expect_values(what + " reduce_scatter", recv.download(), [&](std::size_t i) {
      double sum = 0;
      for (i64 m : members) sum += static_cast<double>(m) + static_cast<double>(static_cast<std::size_t>(r) * n + i);
      return sum;
    });
  }
  {  // broadcast from the last rank of the group
    const std::size_t n = 100;
    const int root = size - 1;
    dbuf<float> buf(n);
    std::vector<float> h(n);
    for (std::size_t i = 0; i < n; ++i) h[i] = static_cast<float>(world_rank * 10 + static_cast<int>(i % 3));
    buf.upload(h);
    g.broadcast(buf.get(), n, root, s);
    TRAINPERF_CUDA_CHECK(cudaStreamSynchronize(s));
    expect_values(what + " broadcast", buf.download(), [&](std::size_t i) {
      return static_cast<double>(members[static_cast<std::size_t>(root)] * 10 + static_cast<i64>(i % 3));
    });
  }
  {  // a ring: send to r + 1, receive from r - 1 (to itself in a group of one)
    const std::size_t n = 77;
    const int next = (r + 1) % size, prev = (r + size - 1) % size;
    dbuf<float> send(n), recv(n);
    std::vector<float> h(n);
    for (std::size_t i = 0; i < n; ++i) h[i] = static_cast<float>(world_rank * 100 + static_cast<int>(i));
    send.upload(h);
    g.send_recv(send.get(), n, next, recv.get(), n, prev, s);
    TRAINPERF_CUDA_CHECK(cudaStreamSynchronize(s));
    expect_values(what + " send_recv ring", recv.download(), [&](std::size_t i) {
      return static_cast<double>(members[static_cast<std::size_t>(prev)] * 100 + static_cast<i64>(i));
    });
  }
  g.check_async();
}

// Messages name the operation, the group kind, the world rank and the rank in the group.
void check_errors(const tcm::nccl_communicators& comms) {
  const tcm::nccl_group& tp = comms.group("tp");
  const std::string rank_part =
      "world rank " + std::to_string(world_rank) + " (rank " + std::to_string(tp.rank()) + " of ";
  const auto expect_message = [&](const std::string& msg, const std::vector<std::string>& parts) {
    for (const auto& p : parts) expect(msg.find(p) != std::string::npos, "message lacks '" + p + "': " + msg);
  };
  float* null = nullptr;
  try {  // checked on the host: NCCL is never called
    tp.all_reduce(null, null, 16, tcm::reduce_op::sum, nullptr);
    expect(false, "all_reduce with a null buffer did not throw");
  } catch (const tcm::nccl_error& e) {
    expect_message(e.what(), {"ncclAllReduce", "tp group", rank_part, "send is null but count is 16"});
  }
  try {
    dbuf<float> buf(4);
    tp.broadcast(buf.get(), 4, tp.size(), nullptr);
    expect(false, "broadcast with root = size did not throw");
  } catch (const tcm::nccl_error& e) {
    expect_message(e.what(), {"ncclBroadcast", "tp group", "root = " + std::to_string(tp.size())});
  }
  try {  // the formatting of an NCCL result code (no NCCL call is made with bad arguments)
    tp.check(ncclInvalidArgument, "ncclAllGather");
    expect(false, "check(ncclInvalidArgument) did not throw");
  } catch (const tcm::nccl_error& e) {
    expect_message(e.what(), {"ncclAllGather", "tp group", rank_part, ncclGetErrorString(ncclInvalidArgument)});
  }
  try {
    (void)comms.group("no-such-kind");
    expect(false, "group(\"no-such-kind\") did not throw");
  } catch (const tcm::nccl_error& e) {
    expect_message(e.what(), {"no-such-kind", "built: tp"});
  }
}

void run(int world, cudaStream_t s) {
  using trainperf::parallel_config;
  struct named {
    std::string name;
    parallel_config config;
    std::vector<std::string> kinds;
  };
  std::vector<named> layouts = {
      {"tp=" + std::to_string(world), parallel_config{.tp = world}, tcm::all_layout_group_kinds()}};
  if (world > 1) {
    layouts.push_back(
        {"dp=" + std::to_string(world), parallel_config{.dp = world}, {"tp", "dp", "dp-cp", "pp", "edp"}});
    layouts.push_back({"pp=" + std::to_string(world),
                       parallel_config{.pp = world},
                       {"pp", "embedding", "position_embedding", "mp", "dp"}});
  }
  for (const auto& [name, config, kinds] : layouts) {
    const trainperf::layout l(world, config);
    tcm::nccl_communicators built(l, kinds);
    const tcm::nccl_communicators comms = std::move(built);  // move-only ownership
    expect(comms.world_rank() == world_rank && comms.world_size() == world, name + ": world rank/size");
    std::vector<i64> everyone;
    for (int r = 0; r < world; ++r) everyone.push_back(r);
    check_group(comms.world(), {everyone}, s, name);
    for (const auto& kind : kinds) check_group(comms.group(kind), l.groups(kind), s, name);
    if (comms.has("tp")) check_errors(comms);
  }
  // A layout for another world size is refused before any NCCL call, on every rank alike.
  try {
    const tcm::nccl_communicators wrong(trainperf::layout(world * 2, parallel_config{.tp = world * 2}));
    expect(false, "a layout of the wrong world size was accepted");
  } catch (const tcm::nccl_error& e) {
    expect(std::string(e.what()).find("the layout has " + std::to_string(world * 2) + " ranks but MPI has " +
                                      std::to_string(world)) != std::string::npos,
           std::string("wrong-world message: ") + e.what());
  }
}

}  // namespace

int main(int argc, char** argv) {
  MPI_Init(&argc, &argv);
  int world = 1;
  MPI_Comm_rank(MPI_COMM_WORLD, &world_rank);
  MPI_Comm_size(MPI_COMM_WORLD, &world);

  // Every rank needs a GPU of its own on its node; all ranks agree before skipping.
  std::string why;
  const int devices = trainperf::cuda::device_count(&why);
  const int local_size = tcm::local_rank_and_size().second;
  int usable = devices > 0 && local_size <= devices ? 1 : 0, all_usable = 0;
  MPI_Allreduce(&usable, &all_usable, 1, MPI_INT, MPI_MIN, MPI_COMM_WORLD);
  if (all_usable == 0) {
    if (world_rank == 0) {
      if (devices == 0)
        std::printf("SKIPPED: no usable CUDA device (%s); this NCCL test needs one GPU per MPI rank\n", why.c_str());
      else
        std::printf("SKIPPED: %d ranks share a node with %d GPUs; run mpiexec -n <GPUs>\n", local_size, devices);
    }
    MPI_Finalize();
    return 77;
  }

  try {
    const int device = tcm::select_local_device();
    if (world_rank == 0)
      std::printf("NCCL %d.%d.%d, %d rank(s), device %d\n", NCCL_MAJOR, NCCL_MINOR, NCCL_PATCH, world, device);
    cudaStream_t s = nullptr;
    TRAINPERF_CUDA_CHECK(cudaStreamCreate(&s));
    run(world, s);
    TRAINPERF_CUDA_CHECK(cudaStreamDestroy(s));
  } catch (const std::exception& e) {
    expect(false, std::string("exception: ") + e.what());
  }

  int total = 0;
  MPI_Allreduce(&failures, &total, 1, MPI_INT, MPI_SUM, MPI_COMM_WORLD);
  if (world_rank == 0) std::printf(total == 0 ? "PASSED\n" : "FAILED: %d check(s)\n", total);
  MPI_Finalize();
  return total == 0 ? 0 : 1;
}
