// trainperf — read accelerators the built-in table (hardware.hpp) lacks from a JSON file:
//   [{"name": "MyNPU", "memory_gib": 64, "peak_tflops": {"bf16": 280, "fp16": 280, "fp32": 36},
//     "memory_bandwidth_gbps": 1600, "intra_node_gbps": 392, "inter_node_gbps": 25,
//     "source": "vendor datasheet, 2024"}]
// name, memory_gib and source are required; a dtype without a peak is "not published", as in the
// built-in table. Optional: needs nlohmann_json; link trainperf::io.
#pragma once

#include <cstdint>
#include <deque>
#include <filesystem>
#include <string>
#include <string_view>
#include <vector>

#include "../hardware.hpp"
#include "../units.hpp"
#include "file.hpp"
#include "json.hpp"

namespace trainperf::io {

// Devices read from a file. The specs' names and sources point into `text`, which this object
// owns (a deque: growing it never moves what the specs point to).
struct device_table {
  std::deque<std::string> text;
  std::vector<device_spec> devices;
  // The device called `name` (ASCII case ignored, as get_device), or nullptr.
  [[nodiscard]] const device_spec* find(std::string_view name) const {
    for (const device_spec& d : devices)
      if (trainperf::detail::same_name_ignoring_case(d.name, name)) return &d;
    return nullptr;
  }
};

namespace detail {
// A number of a field (JSON integer or float) below `limit` and above 0, or at least 0 where
// zero is allowed (a latency, a saturation point).
inline double bounded_number(const fields& f, const nlohmann::json& obj, std::string_view key, double limit,
                             bool zero_allowed) {
  const nlohmann::json& v = obj.at(std::string(key));
  if (!v.is_number()) f.fail(key, "field \"" + f.name(key) + "\" must be a number, got " + describe(v));
  const double x = v.get<double>();
  if (!(zero_allowed ? x >= 0 : x > 0) || !(x < limit))
    f.fail(key, "field \"" + f.name(key) + "\" = " + v.dump() +
                    (zero_allowed ? " must be at least 0 and below " : " must be positive and below ") +
                    format_double(limit));
  return x;
}
inline double positive_number(const fields& f, const nlohmann::json& obj, std::string_view key, double limit) {
  return bounded_number(f, obj, key, limit, false);
}
inline double nonnegative_number(const fields& f, const nlohmann::json& obj, std::string_view key, double limit) {
  return bounded_number(f, obj, key, limit, true);
}
}  // namespace detail

// The devices of the JSON text `text` (`origin` names it in errors; `field` is the flag that gave
// it). Every refusal is a config_error naming the entry's field ("devices[2].memory_gib").
inline device_table devices_from_json(std::string_view text, const std::string& origin, const std::string& field) {
  using detail::fields;
  const nlohmann::json j = detail::parse_json(text, origin, field);
  if (!j.is_array() || j.empty())
    throw config_error(field, origin + " must be a non-empty JSON array of devices, got " + detail::describe(j));
  device_table t;
  for (std::size_t i = 0; i < j.size(); ++i) {
    const nlohmann::json& d = j[i];
    const std::string prefix = "devices[" + std::to_string(i) + "].";
    if (!d.is_object())
      throw config_error(
          "devices[" + std::to_string(i) + "]",
          origin + ": entry " + std::to_string(i) + " must be a JSON object, got " + detail::describe(d));
    const fields f(d, origin, prefix);
    static constexpr std::string_view known[] = {
        "name", "memory_gib", "peak_tflops", "memory_bandwidth_gbps", "intra_node_gbps", "inter_node_gbps", "source"};
    f.only(known);
    const auto name = f.opt_string("name");
    if (!name || name->empty()) f.fail("name", "missing required field \"" + f.name("name") + "\" (the device's name)");
    if (t.find(*name) || find_device(*name))
      f.fail("name", "device " + detail::json_quoted(*name) + " is already " +
                         (t.find(*name) ? "in this file" : "in the built-in table") + "; give it another name");
    const auto source = f.opt_string("source");
    if (!source || source->empty())
      f.fail("source", "missing required field \"" + f.name("source") + "\": say where the figures come from");
    if (!f.has("memory_gib")) f.fail("memory_gib", "missing required field \"" + f.name("memory_gib") + "\"");
    device_spec spec;
    t.text.push_back(*name);
    spec.name = t.text.back();
    t.text.push_back(*source);
    spec.source = t.text.back();
    spec.memory_bytes =
        static_cast<std::int64_t>(detail::positive_number(f, d, "memory_gib", 1 << 20) * static_cast<double>(GiB));
    const auto rate = [&](std::string_view key) {  // GB/s -> bytes/s; absent: unknown (0)
      return f.has(key) ? detail::positive_number(f, d, key, 1e9) * 1e9 : 0.0;
    };
    spec.memory_bandwidth = rate("memory_bandwidth_gbps");
    spec.intra_node_bandwidth = rate("intra_node_gbps");
    spec.inter_node_bandwidth = rate("inter_node_gbps");
    if (f.has("peak_tflops")) {
      const nlohmann::json& peaks = f.object("peak_tflops");
      const fields p(peaks, origin, prefix + "peak_tflops.");
      for (const auto& [key, value] : peaks.items()) {
        const auto dt = parse_dtype(key);
        if (!dt) p.fail(key, "unknown dtype \"" + p.name(key) + "\"; give fp32, tf32, bf16, fp16 or fp8");
        spec.peak_flops[static_cast<int>(*dt)] = detail::positive_number(p, peaks, key, 1e9) * 1e12;
      }
    }
    t.devices.push_back(spec);
  }
  return t;
}

// One device as devices_from_json reads it (what `trainperf calibrate` writes): peaks in
// TFLOP/s, rates in GB/s, the unknown (0) left out.
inline nlohmann::json device_to_json(const device_spec& d) {
  nlohmann::json peaks = nlohmann::json::object();
  for (dtype x : all_dtypes)
    if (const auto p = d.peak(x)) peaks[std::string(to_string(x))] = *p / 1e12;
  nlohmann::json j = {{"name", d.name},
                      {"memory_gib", static_cast<double>(d.memory_bytes) / static_cast<double>(GiB)},
                      {"peak_tflops", peaks},
                      {"source", d.source}};
  if (d.memory_bandwidth > 0) j["memory_bandwidth_gbps"] = d.memory_bandwidth / 1e9;
  if (d.intra_node_bandwidth > 0) j["intra_node_gbps"] = d.intra_node_bandwidth / 1e9;
  if (d.inter_node_bandwidth > 0) j["inter_node_gbps"] = d.inter_node_bandwidth / 1e9;
  return j;
}

inline constexpr std::uintmax_t max_devices_file_bytes = std::uintmax_t{1} << 20;  // 1 MiB

// The devices of the JSON file at `path` (see devices_from_json); `field` is the flag that named it.
inline device_table read_devices(const std::filesystem::path& path, const std::string& field = "devices-file") {
  return devices_from_json(read_file(path, max_devices_file_bytes, field, "a JSON array of devices"), path.string(),
                           field);
}

}  // namespace trainperf::io
