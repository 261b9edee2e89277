// The cluster and device-profile flags of `trainperf predict` and `plan`: a device from the table
// (or --devices-file), how many and how many to a node, the links (defaults: the device table at
// the profile's achieved fractions, collectives.hpp default_cluster), or a --cluster file; the
// profile built in for the device (profile.hpp) or read with --profile; the framework's overlaps.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include <fmt/format.h>

#include <trainperf/collectives.hpp>
#include <trainperf/io/cluster.hpp>
#include <trainperf/io/profile.hpp>
#include <trainperf/step_time.hpp>

#include "cli.hpp"
#include "device_flags.hpp"

namespace trainperf::cli {

// The memory subcommand's flags that predict and plan leave out: the cluster decides dp and the
// micro-batches per step and names the device; they print their own JSON, help and SVG.
inline bool decided_by_the_cluster(std::string_view name) {
  for (std::string_view n : {"dp", "gas", "device", "devices-file", "capacity-gib", "svg", "json", "help"})
    if (name == n) return true;
  return false;
}

inline std::vector<flag> cluster_flags() {
  return {
      {"device", "NAME", "accelerator (`trainperf devices`)"},
      devices_file_flag(),
      {"devices", "N", "devices in the job"},
      {"devices-per-node", "K", "devices per node (default 8)"},
      {"gbs", "N", "global batch in sequences (micro-batches per step = gbs / (lbs x dp))"},
      {"intra-node-bw", "GB/s",
       "per device, unidirectional, as collectives achieve it (default: the table's links x the profile's fraction)"},
      {"inter-node-bw", "GB/s", "per device across nodes, unidirectional (default: its NIC x the profile's fraction)"},
      {"latency-us", "US", "latency of one collective algorithm step, microseconds (default: the profile's)"},
      {"reduce-scatter-bw", "GB/s",
       "a reduce-scatter's bus bandwidth inside a node (nccl-tests' reduce_scatter_perf; default: --intra-node-bw, "
       "an all-reduce's); across nodes --inter-node-bw bounds every collective"},
      {"all-gather-bw", "GB/s", "an all-gather's, likewise (nccl-tests' all_gather_perf)"},
      {"cluster", "FILE",
       "JSON cluster: {\"device\", \"devices\", \"devices_per_node\", \"intra_node_gbps\", \"inter_node_gbps\", "
       "\"latency_us\", \"reduce_scatter_gbps\", \"all_gather_gbps\"}; flags override it"},
      {"profile", "FILE", "JSON device profile (`trainperf calibrate` writes one); default: the built-in one"},
      {"tp-comm-overlap", "", "tensor-parallel collectives hidden behind GEMMs (Megatron-core --tp-comm-overlap)"},
      {"overlap-grad-reduce", "on|off", "gradient reduction overlapped with the backward (default: the framework's)"},
      {"overlap-param-gather", "", "the sharded optimizer's all-gather overlapped with the forward"},
      {"projections", "fused|separate",
       "Q, K, V (and gate, up) as one GEMM or one each (default: the framework's: fused for Megatron and generic, "
       "separate for fsdp, deepspeed and paddle)"},
  };
}

struct cluster_setup {
  io::device_table file;  // owns the names a --devices-file device points to
  cluster_spec cluster;
  device_profile profile;
  std::string link_source;    // how the links were set, printed beside the figures
  std::string kernel_source;  // where the kernels' rates come from
};

inline cluster_setup cluster_from_args(const args& a) {
  cluster_setup s;
  s.file = devices_file_from_args(a);
  std::optional<io::cluster_file> cf;
  if (auto path = a.get("cluster")) cf = io::read_cluster(*path);
  const std::string device_name = a.get("device") ? *a.get("device") : cf ? cf->device : std::string();
  if (device_name.empty())
    throw config_error("device", "give the accelerator with --device NAME (or a --cluster file)");
  const device_spec* dev = &find_device_or_throw(device_name, s.file);
  s.profile = a.get("profile") ? io::read_profile(*a.get("profile")) : builtin_profile(dev->name);
  s.kernel_source = a.get("profile") ? "profile " + s.profile.name + " (" + *a.get("profile") + ")"
                                     : fmt::format("built-in profile {} (its rates x {:.2f} sustained): {}",
                                                   s.profile.name, builtin_sustained_fraction, s.profile.source);
  const std::optional<std::int64_t> devices = a.get_int("devices") ? a.get_int("devices")
                                              : cf                 ? std::optional<std::int64_t>(cf->devices)
                                                                   : std::nullopt;
  if (!devices) throw config_error("devices", "give the number of devices with --devices N (or a --cluster file)");
  const std::int64_t per_node =
      a.get_int("devices-per-node").value_or(cf && cf->devices_per_node ? *cf->devices_per_node : 8);
  s.cluster = default_cluster(*dev, *devices, per_node, s.profile);
  s.link_source = "device table x profile " + s.profile.name;
  if (cf) {
    if (cf->intra_node_bandwidth) s.cluster.intra_node_bandwidth = *cf->intra_node_bandwidth;
    if (cf->inter_node_bandwidth) s.cluster.inter_node_bandwidth = *cf->inter_node_bandwidth;
    if (cf->latency_s) s.cluster.latency = *cf->latency_s;
    s.link_source = "cluster file, else " + s.link_source;
  }
  if (a.get("intra-node-bw")) s.cluster.intra_node_bandwidth = *a.get_double("intra-node-bw") * 1e9;
  if (a.get("inter-node-bw")) s.cluster.inter_node_bandwidth = *a.get_double("inter-node-bw") * 1e9;
  if (a.get("latency-us")) s.cluster.latency = *a.get_double("latency-us", /*zero_allowed=*/true) * 1e-6;
  // A collective's own bus bandwidth, as a ratio to the all-reduce's inside a node.
  const auto scale = [&](std::string_view flag, const std::optional<double>& from_file) -> double {
    const std::optional<double> bw = a.get(flag) ? std::optional<double>(*a.get_double(flag) * 1e9) : from_file;
    return bw && s.cluster.intra_node_bandwidth > 0 ? *bw / s.cluster.intra_node_bandwidth : 1.0;
  };
  s.cluster.reduce_scatter_scale = scale("reduce-scatter-bw", cf ? cf->reduce_scatter_bandwidth : std::nullopt);
  s.cluster.all_gather_scale = scale("all-gather-bw", cf ? cf->all_gather_bandwidth : std::nullopt);
  validate(s.cluster);
  return s;
}

// The step options beside memory_options: the global batch and the framework's overlaps.
inline void step_from_args(const args& a, step_options& o) {
  const auto gbs = a.get_int("gbs");
  if (!gbs) throw config_error("gbs", "give the global batch with --gbs N (sequences per step)");
  o.gbs = *gbs;
  o.tp_comm_overlap = a.has("tp-comm-overlap");
  static constexpr std::string_view on_off[] = {"on", "off"};
  if (const auto v = a.get_choice("overlap-grad-reduce", on_off)) o.overlap_grad_reduce = *v == "on";
  if (a.has("overlap-param-gather")) o.overlap_param_gather = true;
  static constexpr std::string_view projections[] = {"fused", "separate"};
  if (const auto v = a.get_choice("projections", projections)) o.fused_projections = *v == "fused";
}

// The cluster in one line, units named.
inline std::string describe_cluster(const cluster_setup& s) {
  const cluster_spec& c = s.cluster;
  const auto gbs = [](double bytes_per_s) {  // whole GB/s, or two decimals below 10 (a measured MPI link)
    return bytes_per_s < 10e9 ? fmt::format("{:.2f}", bytes_per_s / 1e9) : fmt::format("{:.0f}", bytes_per_s / 1e9);
  };
  const std::string own = c.reduce_scatter_scale == 1 && c.all_gather_scale == 1
                              ? std::string()
                              : fmt::format(" (reduce-scatter {}, all-gather {} GB/s)",
                                            gbs(c.reduce_scatter_scale * c.intra_node_bandwidth),
                                            gbs(c.all_gather_scale * c.intra_node_bandwidth));
  return fmt::format(
      "{} x {} ({} per node, {} node{}); links per device, unidirectional: intra-node {} GB/s{}, "
      "inter-node {:.1f} GB/s, {:.1f} us per step ({}); kernels: {}",
      c.devices, c.device.name, c.devices_per_node, c.nodes(), c.nodes() == 1 ? "" : "s", gbs(c.intra_node_bandwidth),
      own, c.inter_node_bandwidth / 1e9, c.latency * 1e6, s.link_source, s.kernel_source);
}

}  // namespace trainperf::cli
