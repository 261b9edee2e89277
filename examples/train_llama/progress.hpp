// The example trainer's voice: every line it prints goes through `progress`, whose background
// thread says what the run is doing and, while training, the ETA, whenever nothing was printed
// for a while, so a long set-up or a step of minutes is never silent.
#pragma once

#include <algorithm>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <cstdio>
#include <mutex>
#include <string>
#include <thread>

#include <fmt/format.h>

namespace train_llama {

using clk = std::chrono::steady_clock;

inline std::string format_duration(double s) {
  if (!(s >= 0) || s > 1e9) return "?";
  if (s < 60) return fmt::format("{:.1f} s", s);
  const auto t = static_cast<std::int64_t>(s + 0.5);
  if (t < 3600) return fmt::format("{}m{:02}s", t / 60, t % 60);
  return fmt::format("{}h{:02}m", t / 3600, t / 60 % 60);
}

// Every line the run prints goes through here; a background thread says what the run is
// doing, how long it has taken and (while training) the ETA whenever nothing was printed for
// `every`, so a long set-up or a step of minutes is never silent.
class progress {
 public:
  progress(bool on, double every_s) : every_(every_s), last_(clk::now()) {
    if (on) thread_ = std::thread([this] { loop(); });
  }
  progress(const progress&) = delete;
  progress& operator=(const progress&) = delete;
  ~progress() {
    {
      std::lock_guard<std::mutex> g(mu_);
      stop_ = true;
    }
    cv_.notify_all();
    if (thread_.joinable()) thread_.join();
  }
  void line(const std::string& s) {
    std::lock_guard<std::mutex> g(mu_);
    std::fputs(s.c_str(), stdout);
    std::fputc('\n', stdout);
    std::fflush(stdout);
    last_ = clk::now();
  }
  // What the run is doing from now on; said at once when `say`.
  void phase(const std::string& what, bool say = true) {
    if (say) line(what + "...");
    std::lock_guard<std::mutex> g(mu_);
    phase_ = what;
    phase_start_ = clk::now();
  }
  // Training runs steps [first, steps); min_step_s: a step's FLOPs at the full peak.
  void start_training(std::int64_t first, std::int64_t steps, double min_step_s) {
    std::lock_guard<std::mutex> g(mu_);
    first_ = done_ = first, steps_ = steps, min_step_s_ = min_step_s;
    train_start_ = last_step_ = clk::now();
  }
  void step_done(std::int64_t done) {
    std::lock_guard<std::mutex> g(mu_);
    done_ = done;
    last_step_ = clk::now();
  }

 private:
  void loop() {
    std::unique_lock<std::mutex> lk(mu_);
    while (!cv_.wait_for(lk, std::chrono::milliseconds(200), [&] { return stop_; })) {
      const auto now = clk::now();
      if (std::chrono::duration<double>(now - last_).count() < every_) continue;
      const double in_phase = std::chrono::duration<double>(now - phase_start_).count();
      std::string s = fmt::format("  ... {}: {} so far", phase_, format_duration(in_phase));
      if (steps_ > 0 && done_ == steps_) {
        s += fmt::format("; all {} steps done", steps_);
      } else if (steps_ > 0 && done_ > first_) {
        const double per =
            std::chrono::duration<double>(last_step_ - train_start_).count() / static_cast<double>(done_ - first_);
        const double since = std::chrono::duration<double>(now - last_step_).count();
        s += fmt::format("; {} of {} steps done, {} per step, ETA {}", done_, steps_, format_duration(per),
                         format_duration(std::max(0.0, per * static_cast<double>(steps_ - done_) - since)));
      } else if (steps_ > 0) {
        s += fmt::format("; the first step of this run (no ETA until it ends; at the peak a step takes {})",
                         format_duration(min_step_s_));
      }
      std::fputs(s.c_str(), stdout);
      std::fputc('\n', stdout);
      std::fflush(stdout);
      last_ = now;
    }
  }

  double every_;
  std::mutex mu_;
  std::condition_variable cv_;
  bool stop_ = false;
  clk::time_point last_, phase_start_ = clk::now(), train_start_, last_step_;
  std::string phase_ = "starting";
  std::int64_t first_ = 0, done_ = 0, steps_ = 0;
  double min_step_s_ = 0;
  std::thread thread_;
};

}  // namespace train_llama
