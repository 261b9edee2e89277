// Collective costs: nccl-tests' bus-bandwidth factors and the alpha-beta times, by hand.
#include <doctest/doctest.h>

#include <trainperf/trainperf.hpp>

using namespace trainperf;

namespace {
cluster_spec net(std::int64_t devices, double intra, double inter, double latency) {
  return {get_device("H100"), devices, 8, intra, inter, latency};
}
}  // namespace

TEST_CASE("bus factors are nccl-tests' (doc/PERFORMANCE.md)") {
  CHECK(bus_factor(collective::all_reduce, 8) == doctest::Approx(2.0 * 7 / 8));
  CHECK(bus_factor(collective::all_gather, 8) == doctest::Approx(7.0 / 8));
  CHECK(bus_factor(collective::reduce_scatter, 4) == doctest::Approx(3.0 / 4));
  CHECK(bus_factor(collective::all_to_all, 16) == doctest::Approx(15.0 / 16));
  CHECK(bus_factor(collective::p2p, 2) == 1.0);
}

TEST_CASE("group spans: how many of a group's ranks share a node") {
  CHECK(span_of(8, 1, 8).per_node == 8);   // a TP group filling a DGX
  CHECK(span_of(16, 8, 8).per_node == 1);  // a DP group strided one rank per node
  CHECK(span_of(4, 4, 8).per_node == 2);   // ranks 0, 4 | 8, 12
  CHECK(span_of(4, 2, 8).per_node == 4);   // ranks 0, 2, 4, 6: one node
  CHECK_FALSE(span_of(4, 2, 8).spans_nodes());
  CHECK(span_of(3, 5, 8).per_node == 2);  // ranks 0, 5 | 10
}

TEST_CASE("all-reduce inside a node: ring for large messages, tree for small ones") {
  const cluster_spec c = net(8, 100e9, 25e9, 10e-6);
  const group_span g = span_of(8, 1, 8);
  // 1 GB: ring 14 steps x 10 us + 1.75 x 1e9 / 1e11 s = 17.64 ms; tree 6 x 10 us + 20 ms.
  CHECK(collective_time(collective::all_reduce, 1e9, g, c) == doctest::Approx(17.64e-3));
  // 1 kB: ring 140 us + 17.5 ns; tree 2 x log2(8) = 6 steps, 60 us + 20 ns.
  CHECK(collective_time(collective::all_reduce, 1e3, g, c) == doctest::Approx(60.02e-6));
  // All-gather of 1 GB (the gathered size): 7 steps + 7/8 x 1e9 / 1e11.
  CHECK(collective_time(collective::all_gather, 1e9, g, c) == doctest::Approx(70e-6 + 8.75e-3));
  CHECK(collective_time(collective::all_reduce, 1e9, span_of(1, 1, 8), c) == 0);
}

TEST_CASE("groups across nodes: per_node x the per-device inter-node bandwidth, at most the intra-node one") {
  const cluster_spec c = net(128, 100e9, 25e9, 0);
  // 16 ranks, one per node: one NIC's 25 GB/s. Ring: 2 x 15/16 x 1 GB / 25 GB/s = 75 ms.
  CHECK(bus_bandwidth(span_of(16, 8, 8), c) == 25e9);
  CHECK(collective_time(collective::all_reduce, 1e9, span_of(16, 8, 8), c) == doctest::Approx(75e-3));
  // 16 consecutive ranks, 8 per node: 8 NICs, 200 GB/s, capped at NVLink's 100.
  CHECK(bus_bandwidth(span_of(16, 1, 8), c) == 100e9);
  CHECK(collective_time(collective::all_reduce, 1e9, span_of(16, 1, 8), c) == doctest::Approx(18.75e-3));
  // 16 ranks, 2 per node: 50 GB/s.
  CHECK(bus_bandwidth(span_of(16, 4, 8), c) == 50e9);
  // A small all-reduce across the 16 nodes, 10 us a step: the tree's 2 x log2(16) = 8 steps and
  // 2 x 1 kB / 25 GB/s (80.08 us) beat the ring's 30 steps and 2 x 15/16 x 1 kB / 25 GB/s (300.075 us).
  const cluster_spec slow = net(128, 100e9, 25e9, 10e-6);
  CHECK(collective_time(collective::all_reduce, 1e3, span_of(16, 8, 8), slow) == doctest::Approx(80.08e-6));
  // 1 GB: the ring, 300 us + 75 ms, against the tree's 80 us + 80 ms.
  CHECK(collective_time(collective::all_reduce, 1e9, span_of(16, 8, 8), slow) == doctest::Approx(75.3e-3));
}

TEST_CASE("a reduce-scatter and an all-gather at their own bus bandwidth") {
  // The link figures are an all-reduce's; Open MPI on this project's 2-core machine reduce-scatters
  // at a fifth of it (bench/RESULTS.md): scale 0.2 makes the bandwidth term 5 x, the latency stays.
  cluster_spec c = net(8, 100e9, 25e9, 10e-6);
  c.reduce_scatter_scale = 0.2;
  c.all_gather_scale = 2;
  const group_span g = span_of(8, 1, 8);
  CHECK(collective_time(collective::reduce_scatter, 1e9, g, c) == doctest::Approx(70e-6 + 8.75e-3 * 5));
  CHECK(collective_time(collective::all_gather, 1e9, g, c) == doctest::Approx(70e-6 + 8.75e-3 / 2));
  // Across nodes the NICs bound it as they bound an all-reduce: 16 ranks one per node, one NIC's 25 GB/s.
  c.devices = 128;
  CHECK(collective_time(collective::reduce_scatter, 1e9, span_of(16, 8, 8), c) ==
        doctest::Approx(15 * 10e-6 + 15.0 / 16 * 1e9 / 25e9));
  CHECK(collective_time(collective::all_reduce, 1e9, g, c) == doctest::Approx(17.64e-3));  // untouched
  c.all_gather_scale = 0;
  CHECK_THROWS_WITH_AS(validate(c), doctest::Contains("--all-gather-bw"), config_error);
}

TEST_CASE("all-to-all and p2p") {
  const cluster_spec c = net(16, 100e9, 25e9, 0);
  // 16 ranks, 8 per node, 1 GB sent by each: 7/16 over NVLink (4.375 ms), 8/16 over the NIC
  // (20 ms), concurrently.
  CHECK(collective_time(collective::all_to_all, 1e9, span_of(16, 1, 8), c) == doctest::Approx(20e-3));
  CHECK(collective_time(collective::all_to_all, 1e9, span_of(8, 1, 8), c) == doctest::Approx(7.0 / 8 * 1e-2));
  CHECK(collective_time(collective::p2p, 1e8, {2, 1}, c) == doctest::Approx(4e-3));
  CHECK(collective_time(collective::p2p, 1e8, {2, 2}, c) == doctest::Approx(1e-3));
}

TEST_CASE("default cluster: the table's links at the profile's fractions") {
  const device_profile p = builtin_profile("H100");
  const cluster_spec c = default_cluster(get_device("H100"), 64, 8, p);
  // 900 GB/s NVLink both ways -> 450 each way x 370/450 (nccl-tests ring busbw on H100).
  CHECK(c.intra_node_bandwidth == doctest::Approx(370e9));
  CHECK(c.inter_node_bandwidth == doctest::Approx(47e9));  // 47 of 50 GB/s per NDR NIC
  CHECK(c.nodes() == 8);
  CHECK_THROWS_WITH_AS(validate(cluster_spec{get_device("H100"), 16, 8, 370e9, 0, 0}),
                       doctest::Contains("--inter-node-bw"), config_error);
  CHECK_NOTHROW(validate(cluster_spec{get_device("H100"), 8, 8, 370e9, 0, 0}));  // one node needs no NIC
  // Nor do links no group can use: one device, or one device a node (intra-node unused).
  CHECK_NOTHROW(validate(cluster_spec{get_device("H100"), 1, 8, 0, 0, 0}));
  const cluster_spec one_a_node{get_device("H100"), 4, 1, 0, 47e9, 0};
  CHECK_NOTHROW(validate(one_a_node));
  // ... and its collectives run over the NICs alone: 1 GB reduce-scattered over 4 nodes moves
  // 3/4 GB through each 47 GB/s NIC; an all-to-all sends 3/4 of its buffer across nodes.
  CHECK(collective_time(collective::reduce_scatter, 1e9, span_of(4, 1, 1), one_a_node) ==
        doctest::Approx(0.75e9 / 47e9));
  CHECK(collective_time(collective::all_to_all, 1e9, span_of(4, 1, 1), one_a_node) == doctest::Approx(0.75e9 / 47e9));
  CHECK_THROWS_WITH_AS(validate(cluster_spec{get_device("H100"), 2, 8, 0, 0, 0}), doctest::Contains("--intra-node-bw"),
                       config_error);
  CHECK_THROWS_WITH_AS(collective_time(collective::all_reduce, -1, span_of(8, 1, 8), c), doctest::Contains("bytes"),
                       config_error);
}

TEST_CASE("built-in profiles: the published kernel rates at the sustained share, the links as published") {
  // MAMF 271.2 of 312 TFLOP/s (A100 bf16), FlashAttention-2 173 of 312, copy 1536 of 2039 GB/s;
  // NVLink 235 of 300 GB/s: each figure of profile.hpp's sources.
  const device_profile published = builtin_profile("A100-80GB", 1.0);
  CHECK(published.gemm_efficiency == doctest::Approx(271.2 / 312).epsilon(1e-12));
  CHECK(published.attention_forward_efficiency == doctest::Approx(173.0 / 312).epsilon(1e-12));
  CHECK(published.memory_efficiency == doctest::Approx(1536.0 / 2039).epsilon(1e-12));
  const device_profile half = builtin_profile("A100-80GB", 0.5);
  CHECK(half.gemm_efficiency == doctest::Approx(0.5 * 271.2 / 312).epsilon(1e-12));
  CHECK(half.attention_backward_efficiency == doctest::Approx(0.5 * 173.0 / 312).epsilon(1e-12));
  CHECK(half.cudnn_attention_forward_efficiency == doctest::Approx(0.5 * 173.0 / 312).epsilon(1e-12));
  CHECK(half.memory_efficiency == doctest::Approx(0.5 * 1536.0 / 2039).epsilon(1e-12));
  CHECK(half.intra_node_bus_efficiency == doctest::Approx(235.0 / 300).epsilon(1e-12));  // links: not scaled
  CHECK(half.latency_s == published.latency_s);
  // MI300X from its own published figures (not the A100's): MAMF 668.4 of 1307.4 TFLOP/s,
  // FlashAttention-2 231.6, BabelStream copy 4269 of 5300 GB/s, RCCL 319 of 448 GB/s.
  const device_profile mi300x = builtin_profile("MI300X", 1.0);
  CHECK(mi300x.name == "MI300X");
  CHECK(mi300x.gemm_efficiency == doctest::Approx(668.4 / 1307.4).epsilon(1e-12));
  CHECK(mi300x.attention_backward_efficiency == doctest::Approx(231.6 / 1307.4).epsilon(1e-12));
  CHECK(mi300x.memory_efficiency == doctest::Approx(4269.0 / 5300).epsilon(1e-12));
  CHECK(mi300x.intra_node_bus_efficiency == doctest::Approx(319.0 / 448).epsilon(1e-12));
  // The MI300X's table figure, 896 GB/s both ways, gives 319 GB/s of all-reduce bus bandwidth.
  CHECK(default_cluster(get_device("MI300X"), 8, 8, mi300x).intra_node_bandwidth == doctest::Approx(319e9));
  CHECK(builtin_profile("S4000").name == "generic");  // no published measurements: said so
  // The default is the library's constant.
  CHECK(builtin_profile("A100-80GB").gemm_efficiency ==
        doctest::Approx(builtin_sustained_fraction * 271.2 / 312).epsilon(1e-12));
  CHECK_THROWS_WITH_AS(builtin_profile("H100", 0.0), doctest::Contains("(0, 1]"), config_error);
  CHECK_THROWS_WITH_AS(builtin_profile("H100", 1.5), doctest::Contains("(0, 1]"), config_error);
}
