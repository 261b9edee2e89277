// trainperf — a cluster description (collectives.hpp) as JSON, what `predict` and `plan` read
// with --cluster:
//   {"device": "H100", "devices": 1024, "devices_per_node": 8, "intra_node_gbps": 370,
//    "inter_node_gbps": 47, "latency_us": 5.8, "reduce_scatter_gbps": 330, "all_gather_gbps": 350}
// Bandwidths are per device, unidirectional, as collectives achieve them (nccl-tests' bus
// bandwidth), in GB/s: intra_node_gbps and inter_node_gbps an all-reduce's, reduce_scatter_gbps
// and all_gather_gbps those collectives' inside a node (across nodes the inter-node figure
// bounds every collective). device and devices are required; the rest default to the device table at
// the profile's fractions. Optional: needs nlohmann_json.
#pragma once

#include <cstdint>
#include <filesystem>
#include <optional>
#include <string>
#include <string_view>

#include "devices.hpp"
#include "file.hpp"
#include "json.hpp"

namespace trainperf::io {

// What a cluster file states; absent fields stay unset.
struct cluster_file {
  std::string device;
  std::int64_t devices = 0;
  std::optional<std::int64_t> devices_per_node;
  std::optional<double> intra_node_bandwidth, inter_node_bandwidth, latency_s;  // bytes/s, s
  std::optional<double> reduce_scatter_bandwidth, all_gather_bandwidth;         // bytes/s, inside a node
};

inline cluster_file cluster_from_json(std::string_view text, const std::string& origin, const std::string& field) {
  const nlohmann::json j = detail::parse_json(text, origin, field);
  if (!j.is_object())
    throw config_error(field, origin + " must be a JSON object (a cluster), got " + detail::describe(j));
  const detail::fields f(j, origin);
  static constexpr std::string_view known[] = {
      "device",          "devices",    "devices_per_node",    "intra_node_gbps",
      "inter_node_gbps", "latency_us", "reduce_scatter_gbps", "all_gather_gbps"};
  f.only(known);
  cluster_file c;
  const auto device = f.opt_string("device");
  if (!device || device->empty())
    f.fail("device", "missing required field \"device\" (a name from `trainperf devices`)");
  c.device = *device;
  c.devices = f.req_size("devices");
  c.devices_per_node = f.opt_size("devices_per_node");
  if (f.has("intra_node_gbps")) c.intra_node_bandwidth = detail::positive_number(f, j, "intra_node_gbps", 1e9) * 1e9;
  if (f.has("inter_node_gbps")) c.inter_node_bandwidth = detail::positive_number(f, j, "inter_node_gbps", 1e9) * 1e9;
  if (f.has("latency_us")) c.latency_s = detail::nonnegative_number(f, j, "latency_us", 1e9) * 1e-6;
  if (f.has("reduce_scatter_gbps"))
    c.reduce_scatter_bandwidth = detail::positive_number(f, j, "reduce_scatter_gbps", 1e9) * 1e9;
  if (f.has("all_gather_gbps")) c.all_gather_bandwidth = detail::positive_number(f, j, "all_gather_gbps", 1e9) * 1e9;
  return c;
}

inline cluster_file read_cluster(const std::filesystem::path& path, const std::string& field = "cluster") {
  return cluster_from_json(read_file(path, std::uintmax_t{1} << 16, field, "a JSON cluster description"), path.string(),
                           field);
}

}  // namespace trainperf::io
