// trainperf — device profiles (profile.hpp) as JSON, what `trainperf calibrate` writes and
// `predict` / `plan` read with --profile:
//   {"name": "this CPU", "gemm_efficiency": 0.9, "gemm_half_outputs": 65536, "memory_efficiency": 0.7,
//    "attention_forward_efficiency": 0.5, "attention_backward_efficiency": 0.5,
//    "cudnn_attention_forward_efficiency": 0.5, "cudnn_attention_backward_efficiency": 0.5,
//    "intra_node_bus_efficiency": 0.8, "inter_node_bus_efficiency": 0.9, "latency_us": 5,
//    "source": "trainperf calibrate, 2026-12-03"}
// Every field is required; fractions lie in (0, 1]. One more is optional: "measured_gemms", the
// GEMM shapes measured on the device (calibrate with a model), a list of
// {"m": tokens, "n": outputs, "k": inputs, "seconds": per product}. Optional: needs nlohmann_json.
#pragma once

#include <filesystem>
#include <string>
#include <string_view>

#include "../profile.hpp"
#include "devices.hpp"
#include "file.hpp"
#include "json.hpp"

namespace trainperf::io {

inline constexpr std::string_view profile_fields[] = {"name",
                                                      "gemm_efficiency",
                                                      "gemm_half_outputs",
                                                      "memory_efficiency",
                                                      "attention_forward_efficiency",
                                                      "attention_backward_efficiency",
                                                      "cudnn_attention_forward_efficiency",
                                                      "cudnn_attention_backward_efficiency",
                                                      "intra_node_bus_efficiency",
                                                      "inter_node_bus_efficiency",
                                                      "latency_us",
                                                      "source"};

inline device_profile profile_from_json(std::string_view text, const std::string& origin, const std::string& field) {
  const nlohmann::json j = detail::parse_json(text, origin, field);
  if (!j.is_object())
    throw config_error(field, origin + " must be a JSON object (a device profile), got " + detail::describe(j));
  const detail::fields f(j, origin);
  std::string known;
  for (auto k : profile_fields) known += (known.empty() ? "" : ", ") + std::string(k);
  for (const auto& [key, value] : j.items()) {
    bool ok = key == "measured_gemms";
    for (auto k : profile_fields) ok |= key == k;
    if (!ok) f.fail(key, "unknown field \"" + key + "\"; known: " + known);
  }
  for (auto k : profile_fields)
    if (!f.has(k))
      f.fail(k, "missing required field \"" + std::string(k) + "\" (a profile states all of: " + known +
                    "; optionally measured_gemms)");
  const auto number = [&](std::string_view key, double limit) { return detail::positive_number(f, j, key, limit); };
  device_profile p;
  p.name = *f.opt_string("name");
  p.source = *f.opt_string("source");
  p.gemm_efficiency = number("gemm_efficiency", 1e9);
  p.memory_efficiency = number("memory_efficiency", 1e9);
  p.attention_forward_efficiency = number("attention_forward_efficiency", 1e9);
  p.attention_backward_efficiency = number("attention_backward_efficiency", 1e9);
  p.cudnn_attention_forward_efficiency = number("cudnn_attention_forward_efficiency", 1e9);
  p.cudnn_attention_backward_efficiency = number("cudnn_attention_backward_efficiency", 1e9);
  p.intra_node_bus_efficiency = number("intra_node_bus_efficiency", 1e9);
  p.inter_node_bus_efficiency = number("inter_node_bus_efficiency", 1e9);
  p.gemm_half_outputs = detail::nonnegative_number(f, j, "gemm_half_outputs", 1e18);
  p.latency_s = detail::nonnegative_number(f, j, "latency_us", 1e9) * 1e-6;
  if (f.has("measured_gemms")) {
    const nlohmann::json& list = j.at("measured_gemms");
    if (!list.is_array())
      f.fail("measured_gemms",
             "field \"measured_gemms\" must be an array of {m, n, k, seconds}, got " + detail::describe(list));
    for (std::size_t i = 0; i < list.size(); ++i) {
      const nlohmann::json& g = list[i];
      const std::string at = "measured_gemms[" + std::to_string(i) + "]";
      if (!g.is_object())
        f.fail("measured_gemms", at + " must be an object {m, n, k, seconds}, got " + detail::describe(g));
      const detail::fields e(g, origin, at + ".");
      for (const auto& [key, value] : g.items())
        if (key != "m" && key != "n" && key != "k" && key != "seconds")
          e.fail(key, "unknown field \"" + e.name(key) + "\"; a measured GEMM has m, n, k and seconds");
      for (std::string_view key : {"m", "n", "k", "seconds"})
        if (!e.has(key)) e.fail(key, "missing required field \"" + e.name(key) + "\"");
      p.measured_gemms.push_back({detail::positive_number(e, g, "m", 1e12), detail::positive_number(e, g, "n", 1e12),
                                  detail::positive_number(e, g, "k", 1e12),
                                  detail::positive_number(e, g, "seconds", 1e6)});
    }
  }
  try {
    validate(p);
  } catch (const config_error& e) {
    throw config_error(e.field(), origin + ": " + e.what());
  }
  return p;
}

inline nlohmann::json profile_to_json(const device_profile& p) {
  nlohmann::json j = {{"name", p.name},
                      {"gemm_efficiency", p.gemm_efficiency},
                      {"gemm_half_outputs", p.gemm_half_outputs},
                      {"memory_efficiency", p.memory_efficiency},
                      {"attention_forward_efficiency", p.attention_forward_efficiency},
                      {"attention_backward_efficiency", p.attention_backward_efficiency},
                      {"cudnn_attention_forward_efficiency", p.cudnn_attention_forward_efficiency},
                      {"cudnn_attention_backward_efficiency", p.cudnn_attention_backward_efficiency},
                      {"intra_node_bus_efficiency", p.intra_node_bus_efficiency},
                      {"inter_node_bus_efficiency", p.inter_node_bus_efficiency},
                      {"latency_us", p.latency_s * 1e6},
                      {"source", p.source}};
  if (!p.measured_gemms.empty()) {
    nlohmann::json list = nlohmann::json::array();
    for (const gemm_sample& g : p.measured_gemms)
      list.push_back({{"m", g.m}, {"n", g.n}, {"k", g.k}, {"seconds", g.seconds}});
    j["measured_gemms"] = list;
  }
  return j;
}

inline constexpr std::uintmax_t max_profile_file_bytes = std::uintmax_t{1} << 16;

inline device_profile read_profile(const std::filesystem::path& path, const std::string& field = "profile") {
  return profile_from_json(read_file(path, max_profile_file_bytes, field, "a JSON device profile"), path.string(),
                           field);
}

}  // namespace trainperf::io
