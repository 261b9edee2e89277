// How much does asking trainperf for FLOPs and MFU cost a trainer? Nanoseconds per
// evaluation, next to the cost of the clock read a trainer makes every step anyway
// (std::chrono::steady_clock::now(), measured in the same process as the baseline).
//
//   build/bench/bench_flops [iterations]
#include <chrono>
#include <cstdint>
#include <cstdlib>
#include <functional>
#include <string>
#include <vector>

#include <fmt/format.h>

#include <trainperf/trainperf.hpp>

namespace tp = trainperf;
using clk = std::chrono::steady_clock;

namespace {

volatile std::int64_t g_seq = 4096;  // inputs the optimizer cannot see through
volatile double g_tps = 791.37;
volatile double g_sink = 0;

// Best of several repetitions of `iterations` calls, in nanoseconds per call.
double ns_per_call(const std::function<double()>& f, std::int64_t iterations) {
  double best = 1e300;
  for (int rep = 0; rep < 7; ++rep) {
    double acc = 0;
    const auto t0 = clk::now();
    for (std::int64_t i = 0; i < iterations; ++i) acc += f();
    const auto t1 = clk::now();
    g_sink = g_sink + acc;
    best = std::min(best, std::chrono::duration<double, std::nano>(t1 - t0).count() / static_cast<double>(iterations));
  }
  return best;
}

}  // namespace

int main(int argc, char** argv) {
  const std::int64_t iterations = argc > 1 ? std::atoll(argv[1]) : 200000;
  const tp::transformer_spec l70 = tp::get_preset("llama2-70b").spec;
  const tp::transformer_spec mixtral = tp::get_preset("mixtral-8x7b").spec;
  const tp::transformer_spec llava = tp::get_preset("llava1.5-7b").spec;

  struct item {
    std::string name;
    std::function<double()> f;
  };
  const std::vector<item> items = {
      {"baseline: steady_clock::now()", [] { return static_cast<double>(clk::now().time_since_epoch().count()); }},
      {"utilization() (MFU from FLOPs/token)", [] { return tp::utilization(420e9, g_tps, 989e12); }},
      {"count_flops nominal llama2-70b",
       [&] {
         return tp::count_flops(l70, {.convention = tp::flops_convention::nominal, .seq = g_seq, .params = 70e9}).model;
       }},
      {"count_flops palm llama2-70b",
       [&] { return tp::count_flops(l70, {.convention = tp::flops_convention::palm, .seq = g_seq}).model; }},
      {"count_flops megatron llama2-70b", [&] { return tp::count_flops(l70, {.seq = g_seq}).model; }},
      {"count_flops megatron mixtral-8x7b", [&] { return tp::count_flops(mixtral, {.seq = g_seq}).model; }},
      {"count_flops megatron llava1.5-7b", [&] { return tp::count_flops(llava, {.seq = g_seq}).model; }},
      {"count_params llama2-70b", [&] { return static_cast<double>(tp::count_params(l70).total()); }},
  };
  fmt::print("{} calls per repetition, best of 7\n", iterations);
  fmt::print("{:<42}{:>12}{:>22}\n", "evaluation", "ns/call", "x clock read");
  double baseline = 0;
  for (const item& it : items) {
    const double ns = ns_per_call(it.f, iterations);
    if (baseline == 0) baseline = ns;
    fmt::print("{:<42}{:>12.1f}{:>22.2f}\n", it.name, ns, ns / baseline);
  }
  return g_sink == 12345.678 ? 1 : 0;  // keeps g_sink observable
}
