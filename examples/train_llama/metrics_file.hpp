// train_llama --metrics FILE: one JSON object per logged window (the meter's throughput and MFU
// with the loss, the memory and every setting a report row needs), flushed as written, for
// `trainperf report --metrics FILE`.
#pragma once

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <string>

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include <trainperf/trainperf.hpp>

namespace train_llama {

class metrics_file {
 public:
  // `run`: the settings every record repeats (model, device, layout, batch, FLOPs and peak).
  metrics_file(const std::string& path, bool append, nlohmann::ordered_json run) : run_(std::move(run)) {
    f_ = std::fopen(path.c_str(), append ? "a" : "w");
    if (f_ == nullptr)
      throw trainperf::config_error("metrics", fmt::format("{} cannot be written ({})", path, std::strerror(errno)));
  }
  metrics_file(const metrics_file&) = delete;
  metrics_file& operator=(const metrics_file&) = delete;
  ~metrics_file() {
    if (f_ != nullptr) std::fclose(f_);
  }

  // A setting of the run changed (the peak, measured again): the records from now on say so.
  void set(const char* key, nlohmann::ordered_json value) { run_[key] = std::move(value); }

  void write(long long step, const trainperf::meter::stats& w, double loss, std::int64_t memory_used,
             std::int64_t memory_capacity) {
    nlohmann::ordered_json j = run_;
    j["step"] = step;
    j["window_steps"] = w.steps;
    j["tokens_per_device_per_s"] = w.tokens_per_device_per_s;
    j["tflops_per_device"] = w.tflops_per_device;
    j["mfu"] = w.mfu ? nlohmann::ordered_json(*w.mfu) : nlohmann::ordered_json(nullptr);
    j["loss"] = loss;
    j["memory_used_bytes"] = memory_used;
    j["memory_capacity_bytes"] = memory_capacity;
    const std::string line = j.dump(-1, ' ', false, nlohmann::ordered_json::error_handler_t::replace) + "\n";
    if (std::fwrite(line.data(), 1, line.size(), f_) != line.size() || std::fflush(f_) != 0)
      throw trainperf::config_error("metrics", fmt::format("writing the metrics failed ({})", std::strerror(errno)));
  }

 private:
  std::FILE* f_ = nullptr;
  nlohmann::ordered_json run_;
};

}  // namespace train_llama
