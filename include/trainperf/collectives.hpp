// trainperf — what a collective costs on a cluster: the alpha-beta model (a latency per
// algorithm step plus bytes over bandwidth) in nccl-tests' bus-bandwidth convention, with a
// group that spans nodes limited by its ranks' share of the inter-node links.
#pragma once

#include <algorithm>
#include <cstdint>
#include <string>
#include <string_view>

#include "error.hpp"
#include "hardware.hpp"
#include "profile.hpp"

namespace trainperf {

enum class collective { all_reduce, reduce_scatter, all_gather, all_to_all, p2p };

constexpr std::string_view to_string(collective c) {
  switch (c) {
    case collective::all_reduce:
      return "all-reduce";
    case collective::reduce_scatter:
      return "reduce-scatter";
    case collective::all_gather:
      return "all-gather";
    case collective::all_to_all:
      return "all-to-all";
    case collective::p2p:
      return "p2p";
  }
  return "?";
}

// The machines a job runs on. Bandwidths are per device and unidirectional, in bytes/s, as
// collectives achieve them (nccl-tests' bus bandwidth, not the links' signalling rate);
// latency is the time of one algorithm step (NCCL's alpha), in seconds.
struct cluster_spec {
  device_spec device{};
  std::int64_t devices = 0;
  std::int64_t devices_per_node = 8;
  double intra_node_bandwidth = 0;  // bytes/s per device inside a node (NVLink, xGMI, HCCS)
  double inter_node_bandwidth = 0;  // bytes/s per device between nodes (its share of the NICs)
  double latency = 0;               // s per algorithm step
  // The bus bandwidth a reduce-scatter and an all-gather reach against the figures above, which
  // are an all-reduce's: nccl-tests measures each collective apart (reduce_scatter_perf,
  // all_gather_perf), and a library's algorithms can differ per collective (Open MPI's
  // reduce-scatter between 2 processes on one machine reaches a fifth of its all-reduce's bus
  // bandwidth: bench/RESULTS.md). 1: the all-reduce's. Inside a node only: across nodes the NICs
  // bound every collective alike (NVLink SHARP lifts an H100 node's all-reduce, not its NICs').
  double reduce_scatter_scale = 1;
  double all_gather_scale = 1;
  [[nodiscard]] constexpr std::int64_t nodes() const { return detail::ceil_div(devices, devices_per_node); }
};

namespace reason {
inline void cluster_fields_must_be_positive() {}
inline void collective_size_must_be_finite() {}
}  // namespace reason

constexpr void validate(const cluster_spec& c) {
  using detail::str;
  detail::require_positive(c.devices, "devices");
  detail::require_positive(c.devices_per_node, "devices_per_node");
  const auto positive_rate = [](double v, std::string_view field, std::string_view flag) {
    detail::require(detail::is_finite(v) && v > 0, reason::cluster_fields_must_be_positive, field, [&] {
      return std::string(field) + " must be a positive number of bytes/s, got " + std::to_string(v) +
             "; give it with " + std::string(flag) + " (GB/s per device, unidirectional)";
    });
  };
  // Links no group can use (one device; one device a node) need no figure.
  if (c.devices > 1 && c.devices_per_node > 1)
    positive_rate(c.intra_node_bandwidth, "intra_node_bandwidth", "--intra-node-bw");
  if (c.devices > c.devices_per_node) positive_rate(c.inter_node_bandwidth, "inter_node_bandwidth", "--inter-node-bw");
  detail::require(
      detail::is_finite(c.latency) && c.latency >= 0, reason::cluster_fields_must_be_positive, "latency",
      [&] { return "latency must be >= 0 s, got " + std::to_string(c.latency) + "; give it with --latency-us"; });
  const auto positive_scale = [](double v, std::string_view field, std::string_view flag) {
    detail::require(detail::is_finite(v) && v > 0, reason::cluster_fields_must_be_positive, field, [&] {
      return std::string(field) + " must be a positive ratio to the all-reduce's bus bandwidth, got " +
             std::to_string(v) + "; give the collective's bus bandwidth with " + std::string(flag) + " (GB/s)";
    });
  };
  positive_scale(c.reduce_scatter_scale, "reduce_scatter_scale", "--reduce-scatter-bw");
  positive_scale(c.all_gather_scale, "all_gather_scale", "--all-gather-bw");
}

// A cluster of `devices` of one kind, devices_per_node to a node, with the links of the device
// table at the profile's achieved fractions: the table's intra-node figure is the datasheet's
// aggregate over both directions (NVLink's 900 GB/s on an H100 is 450 each way), its inter-node
// figure one NIC's rate per device in one direction (DGX H100: 400 Gb/s = 50 GB/s).
inline cluster_spec default_cluster(const device_spec& d, std::int64_t devices, std::int64_t devices_per_node,
                                    const device_profile& p) {
  return {d,
          devices,
          devices_per_node,
          d.intra_node_bandwidth / 2 * p.intra_node_bus_efficiency,
          d.inter_node_bandwidth * p.inter_node_bus_efficiency,
          p.latency_s};
}

// How a process group lies on the nodes: its size and how many of its ranks share a node
// (the most on any one node; a group inside one node has per_node == size).
struct group_span {
  std::int64_t size = 1;
  std::int64_t per_node = 1;
  [[nodiscard]] constexpr bool spans_nodes() const { return per_node < size; }
};

// The group of `size` ranks at `stride` apart (one axis of a process mesh, layout.hpp) on
// nodes of devices_per_node consecutive ranks: the ranks of the group that start at rank 0.
constexpr group_span span_of(std::int64_t size, std::int64_t stride, std::int64_t devices_per_node) {
  detail::require_positive(size, "group size");
  detail::require_positive(stride, "group stride");
  detail::require_positive(devices_per_node, "devices_per_node");
  std::int64_t best = 0, run = 0, node = -1;
  for (std::int64_t i = 0; i < size; ++i) {  // ranks i x stride increase, so a node's members are consecutive
    const std::int64_t n = i * stride / devices_per_node;
    run = n == node ? run + 1 : 1;
    node = n;
    best = std::max(best, run);
  }
  return {size, best};
}

namespace detail {
constexpr std::int64_t ceil_log2(std::int64_t n) {
  std::int64_t k = 0;
  while ((std::int64_t{1} << k) < n) ++k;
  return k;
}
}  // namespace detail

// nccl-tests' conversion from algorithm bandwidth (size / time) to bus bandwidth
// (nccl-tests doc/PERFORMANCE.md): all-reduce 2(n-1)/n, reduce-scatter, all-gather and
// all-to-all (n-1)/n, a send/receive 1. `bytes` is the size nccl-tests reports: the buffer
// of an all-reduce, the whole (gathered) buffer of an all-gather or reduce-scatter, the send
// buffer of an all-to-all.
constexpr double bus_factor(collective c, std::int64_t n) {
  const double f = n > 0 ? static_cast<double>(n - 1) / static_cast<double>(n) : 0;
  return c == collective::all_reduce ? 2 * f : c == collective::p2p ? 1.0 : f;
}

// The bus bandwidth a group reaches: inside a node the intra-node links; across nodes the ring
// or tree crosses each node boundary once per channel and the node's NICs carry the group's
// per_node ranks' traffic in parallel, so the group's bus bandwidth is per_node x the per-device
// inter-node bandwidth, at most the intra-node one (the hierarchical reduce-scatter, inter-node
// all-reduce, all-gather reaches the same figure). With one NIC per GPU this is why a
// tensor-parallel group of 8 inside a DGX reaches NVLink speed while a data-parallel group
// strided one rank per node reaches one NIC's.
constexpr double bus_bandwidth(group_span g, const cluster_spec& c) {
  if (!g.spans_nodes()) return c.intra_node_bandwidth;
  const double across = static_cast<double>(g.per_node) * c.inter_node_bandwidth;
  return g.per_node > 1 ? std::min(c.intra_node_bandwidth, across) : across;  // one rank a node: no NVLink hop
}

// Seconds for one collective of `bytes` over group g on cluster c.
//   all-reduce: the faster of ring (2(n-1) steps) and tree (2 ceil(log2 n) steps, 2 x bytes
//     over the bus; NCCL's double binary tree), as NCCL's tuner picks the faster per size;
//   reduce-scatter, all-gather: ring, n-1 steps (inside a node at the cluster's own figure for each);
//   all-to-all: n-1 steps; the (per_node-1)/n share of the send buffer over the intra-node links
//     and the (n-per_node)/n share over the device's own inter-node bandwidth, concurrently;
//   p2p: one step over the intra-node link when both ranks share a node (per_node == 2), else
//     over the inter-node one.
constexpr double collective_time(collective kind, double bytes, group_span g, const cluster_spec& c) {
  detail::require(detail::is_finite(bytes) && bytes >= 0, reason::collective_size_must_be_finite, "bytes", [&] {
    return std::string(to_string(kind)) + " of " + std::to_string(bytes) + " bytes: the size must be >= 0 and finite";
  });
  const std::int64_t n = g.size;
  if (n <= 1 || bytes == 0) return 0;
  const double a = c.latency, dn = static_cast<double>(n);
  switch (kind) {
    case collective::all_reduce: {
      const double bw = bus_bandwidth(g, c);
      const double ring = 2 * (dn - 1) * a + bus_factor(kind, n) * bytes / bw;
      const double tree = 2 * static_cast<double>(detail::ceil_log2(n)) * a + 2 * bytes / bw;
      return std::min(ring, tree);
    }
    case collective::reduce_scatter:
    case collective::all_gather: {
      const double scale = g.spans_nodes()                      ? 1.0
                           : kind == collective::reduce_scatter ? c.reduce_scatter_scale
                                                                : c.all_gather_scale;
      return (dn - 1) * a + bus_factor(kind, n) * bytes / (scale * bus_bandwidth(g, c));
    }
    case collective::all_to_all: {
      const double k = static_cast<double>(g.per_node);
      const double intra = g.per_node > 1 ? (k - 1) / dn * bytes / c.intra_node_bandwidth : 0;
      const double inter = g.spans_nodes() ? (dn - k) / dn * bytes / c.inter_node_bandwidth : 0;
      return (dn - 1) * a + std::max(intra, inter);
    }
    case collective::p2p:
      return a + bytes / (g.spans_nodes() ? c.inter_node_bandwidth : c.intra_node_bandwidth);
  }
  return 0;
}

}  // namespace trainperf
