// How `trainperf predict` and `plan` print a prediction: the figures with their units and
// conventions, the breakdown, and the memory model's per-stage figure.
#pragma once

#include <string>

#include <fmt/format.h>

#include <trainperf/step_time.hpp>
#include <trainperf/trainperf.hpp>

#include "cli.hpp"
#include "cluster_flags.hpp"

namespace trainperf::cli {

inline constexpr std::string_view mfu_convention_note =
    "MFU/HFU: megatron convention (per-GEMM FLOPs, attention core not halved for the causal mask) over the "
    "dense peak of the GEMMs' dtype (fp8 with --fp8)";

inline std::string describe_layout(const parallel_config& c, std::int64_t world) {
  std::string s = fmt::format("tp {} x cp {} x pp {} x dp {}", c.tp, c.cp, c.pp, resolved_dp(c, world));
  if (c.ep > 1) s += fmt::format(", ep {}", c.ep);
  if (c.vpp > 1) s += fmt::format(", vpp {}", c.vpp);
  if (c.first_stage_layers > 0 || c.last_stage_layers > 0)
    s += fmt::format(", first/last stage layers {}/{}", c.first_stage_layers, c.last_stage_layers);
  if (c.embedding_as_layer || c.loss_as_layer)
    s +=
        fmt::format(", {} counted in the pipeline split", c.embedding_as_layer && c.loss_as_layer ? "embedding and loss"
                                                          : c.embedding_as_layer                  ? "embedding"
                                                                                                  : "loss");
  if (c.sequence_parallel) s += ", sequence parallel";
  if (c.zero_stage > 0) s += fmt::format(", ZeRO-{}", c.zero_stage);
  if (c.distributed_optimizer) s += ", distributed optimizer";
  if (c.recomputation != recompute::none) s += fmt::format(", {} recompute", to_string(c.recomputation));
  return s;
}

inline json breakdown_json(const step_breakdown& b) {
  json j = json::object();
  for (const breakdown_part& part : breakdown_parts) j[std::string(part.key)] = b.*part.seconds;
  return j;
}

inline json prediction_json(const step_prediction& p, const cluster_setup& cs) {
  json stages = json::array();
  for (std::size_t s = 0; s < p.stage_forward.size(); ++s)
    stages.push_back({{"stage", s},
                      {"forward_s", p.stage_forward[s]},
                      {"backward_s", p.stage_backward[s]},
                      {"memory_gib", s < p.stage_memory.size() ? p.stage_memory[s] / static_cast<double>(GiB) : 0.0}});
  return {{"step_time_s", p.step_time},
          {"tokens_per_device_per_s", p.tokens_per_device_per_s},
          {"mfu", p.mfu},
          {"hfu", p.hfu},
          {"mfu_convention", "megatron, attention not halved, dense peak of the GEMMs' dtype"},
          {"micro_batches", p.micro_batches},
          {"breakdown", breakdown_json(p.breakdown)},
          {"breakdown_units", "s"},
          {"memory_max_gib", p.memory_max() / static_cast<double>(GiB)},
          {"capacity_gib", static_cast<double>(cs.cluster.device.memory_bytes) / static_cast<double>(GiB)},
          {"stages", stages},
          {"profile", cs.profile.name},
          {"profile_source", cs.profile.source},
          {"cluster",
           {{"device", cs.cluster.device.name},
            {"devices", cs.cluster.devices},
            {"devices_per_node", cs.cluster.devices_per_node},
            {"intra_node_gbps", cs.cluster.intra_node_bandwidth / 1e9},
            {"inter_node_gbps", cs.cluster.inter_node_bandwidth / 1e9},
            {"latency_us", cs.cluster.latency * 1e6},
            {"reduce_scatter_gbps", cs.cluster.reduce_scatter_scale * cs.cluster.intra_node_bandwidth / 1e9},
            {"all_gather_gbps", cs.cluster.all_gather_scale * cs.cluster.intra_node_bandwidth / 1e9}}}};
}

inline std::string describe_prediction(const step_prediction& p, const cluster_spec& c) {
  std::string s = fmt::format("step time {:.3f} s, {:.1f} tokens per device per s, MFU {:.1f}%, HFU {:.1f}%\n",
                              p.step_time, p.tokens_per_device_per_s, 100 * p.mfu, 100 * p.hfu);
  s += std::string(mfu_convention_note) + "\n";
  const step_breakdown& b = p.breakdown;
  table t({"part", "seconds", "share"});
  const auto row = [&](std::string_view name, double v) {
    t.row({std::string(name), fmt::format("{:.4f}", v), fmt::format("{:.1f}%", 100 * v / p.step_time)});
  };
  for (const breakdown_part& part : breakdown_parts) row(part.label, b.*part.seconds);
  s += t.render();
  const double gib = static_cast<double>(GiB);
  s += fmt::format("memory the run needs (max reserved, per device): {:.2f} GiB at most of {:.0f} GiB",
                   p.memory_max() / gib, static_cast<double>(c.device.memory_bytes) / gib);
  if (p.stage_memory.size() > 1) {
    s += "; per stage:";
    for (double m : p.stage_memory) s += fmt::format(" {:.1f}", m / gib);
  }
  s += "\n";
  return s;
}

}  // namespace trainperf::cli
