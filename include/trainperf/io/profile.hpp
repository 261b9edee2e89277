// trainperf — device profiles (profile.hpp) as JSON, what `trainperf calibrate` writes and
// `predict` / `plan` read with --profile:
//   {"name": "this CPU", "gemm_efficiency": 0.9, "gemm_half_outputs": 65536, "memory_efficiency": 0.7,
//    "attention_forward_efficiency": 0.5, "attention_backward_efficiency": 0.5,
//    "cudnn_attention_forward_efficiency": 0.5, "cudnn_attention_backward_efficiency": 0.5,
//    "intra_node_bus_efficiency": 0.8, "inter_node_bus_efficiency": 0.9, "latency_us": 5,
//    "source": "trainperf calibrate, 2026-12-03"}
// Every field is required; fractions lie in (0, 1]. One more is optional: "measured_gemms", the
// GEMM shapes measured on a device (calibrate with a model): {"device": its name, "dtype": "fp32",
// "shapes": [{"m": tokens, "n": outputs, "k": inputs, "seconds": per product}, ...]}.
// Optional: needs nlohmann_json.
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

inline nlohmann::json gemm_sample_to_json(const gemm_sample& g) {
  return {{"m", g.m}, {"n", g.n}, {"k", g.k}, {"seconds", g.seconds}};
}

inline device_profile profile_from_json(std::string_view text, const std::string& origin, const std::string& field) {
  const nlohmann::json j = detail::parse_json(text, origin, field);
  if (!j.is_object())
    throw config_error(field, origin + " must be a JSON object (a device profile), got " + detail::describe(j));
  const detail::fields f(j, origin);
  static constexpr std::string_view optional_fields[] = {"measured_gemms"};
  f.only(profile_fields, optional_fields);
  std::string known;
  for (auto k : profile_fields) known += (known.empty() ? "" : ", ") + std::string(k);
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
    const nlohmann::json& m = f.object("measured_gemms");
    const detail::fields g(m, origin, "measured_gemms.");
    static constexpr std::string_view measured_fields[] = {"device", "dtype", "shapes"};
    g.only(measured_fields);
    g.required(measured_fields);
    p.measured.device = *g.opt_string("device");
    const std::string type = *g.opt_string("dtype");
    const auto dt = parse_dtype(type);
    if (!dt) g.fail("dtype", "unknown dtype \"" + type + "\"; give fp32, tf32, bf16, fp16 or fp8");
    p.measured.type = *dt;
    const nlohmann::json& list = m.at("shapes");
    if (!list.is_array())
      g.fail("shapes",
             "field \"measured_gemms.shapes\" must be an array of {m, n, k, seconds}, got " + detail::describe(list));
    for (std::size_t i = 0; i < list.size(); ++i) {
      const nlohmann::json& e = list[i];
      const std::string at = "measured_gemms.shapes[" + std::to_string(i) + "]";
      if (!e.is_object()) g.fail("shapes", at + " must be an object {m, n, k, seconds}, got " + detail::describe(e));
      const detail::fields x(e, origin, at + ".");
      static constexpr std::string_view shape_fields[] = {"m", "n", "k", "seconds"};
      x.only(shape_fields);
      x.required(shape_fields);
      p.measured.shapes.push_back({detail::positive_number(x, e, "m", 1e12), detail::positive_number(x, e, "n", 1e12),
                                   detail::positive_number(x, e, "k", 1e12),
                                   detail::positive_number(x, e, "seconds", 1e6)});
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
  if (!p.measured.empty()) {
    nlohmann::json shapes = nlohmann::json::array();
    for (const gemm_sample& g : p.measured.shapes) shapes.push_back(gemm_sample_to_json(g));
    j["measured_gemms"] = {{"device", p.measured.device}, {"dtype", to_string(p.measured.type)}, {"shapes", shapes}};
  }
  return j;
}

inline constexpr std::uintmax_t max_profile_file_bytes = std::uintmax_t{1} << 16;

inline device_profile read_profile(const std::filesystem::path& path, const std::string& field = "profile") {
  return profile_from_json(read_file(path, max_profile_file_bytes, field, "a JSON device profile"), path.string(),
                           field);
}

}  // namespace trainperf::io
