// trainperf calibrate --device cuda: what trainperf-measure-gpu (measure_gpu.cu, built where
// nvcc is) measures on this GPU through trainperf's CUDA kernels or cuBLASLt, passed to the tool
// as JSON on its standard output, so that the tool itself needs no CUDA library to start.
#pragma once

#include <cstdint>
#include <string>

#include <nlohmann/json.hpp>

#include <trainperf/calibration.hpp>

namespace trainperf::cli {

struct gpu_measurements {
  calibration_measurements mm;  // bf16; the datasheet figures set where the GPU is in the table
  std::string gpu;              // the CUDA device's name
  std::string table_device;     // its name in hardware.hpp's table, or empty
  std::int64_t memory_bytes = 0;
  std::int64_t probe_n = 0;  // the GEMM probe's n^3
};

inline nlohmann::json to_json(const gpu_measurements& g) {
  const calibration_measurements& m = g.mm;
  nlohmann::json gemms = nlohmann::json::array();
  for (const gemm_sample& s : m.gemms) gemms.push_back({s.m, s.n, s.k, s.seconds});
  return {{"gpu", g.gpu},
          {"table_device", g.table_device},
          {"memory_bytes", g.memory_bytes},
          {"probe_n", g.probe_n},
          {"gemm_peak", m.gemm_peak},
          {"gemms", gemms},
          {"element_bytes", m.element_bytes},
          {"copy_bandwidth", m.copy_bandwidth},
          {"streaming_bytes", m.streaming_bytes},
          {"streaming_seconds", m.streaming_seconds},
          {"attention_forward", {m.attention_forward_flops, m.attention_forward_seconds}},
          {"attention_backward", {m.attention_backward_flops, m.attention_backward_seconds}},
          {"datasheet_peak", m.datasheet_peak},
          {"datasheet_bandwidth", m.datasheet_bandwidth}};
}

// The helper's output read back; a malformed one throws nlohmann::json's exceptions.
inline gpu_measurements gpu_measurements_from_json(const nlohmann::json& j) {
  gpu_measurements g;
  calibration_measurements& m = g.mm;
  g.gpu = j.at("gpu").get<std::string>();
  g.table_device = j.at("table_device").get<std::string>();
  g.memory_bytes = j.at("memory_bytes").get<std::int64_t>();
  g.probe_n = j.at("probe_n").get<std::int64_t>();
  m.gemm_peak = j.at("gemm_peak").get<double>();
  for (const auto& s : j.at("gemms"))
    m.gemms.push_back({s.at(0).get<double>(), s.at(1).get<double>(), s.at(2).get<double>(), s.at(3).get<double>()});
  m.element_bytes = j.at("element_bytes").get<double>();
  m.copy_bandwidth = j.at("copy_bandwidth").get<double>();
  m.streaming_bytes = j.at("streaming_bytes").get<double>();
  m.streaming_seconds = j.at("streaming_seconds").get<double>();
  m.attention_forward_flops = j.at("attention_forward").at(0).get<double>();
  m.attention_forward_seconds = j.at("attention_forward").at(1).get<double>();
  m.attention_backward_flops = j.at("attention_backward").at(0).get<double>();
  m.attention_backward_seconds = j.at("attention_backward").at(1).get<double>();
  m.datasheet_peak = j.at("datasheet_peak").get<double>();
  m.datasheet_bandwidth = j.at("datasheet_bandwidth").get<double>();
  return g;
}

}  // namespace trainperf::cli
