// trainperf devices: the device table: dense peaks per dtype, memory, bandwidths, sources
#include <string>
#include <vector>

#include <fmt/format.h>
#include <fmt/ranges.h>

#include <trainperf/trainperf.hpp>

#include "cli.hpp"

namespace trainperf::cli {
namespace {
namespace tp = trainperf;

int run_devices(const args& a, output& out) {
  constexpr tp::dtype all[] = {tp::dtype::fp32, tp::dtype::tf32, tp::dtype::bf16, tp::dtype::fp16, tp::dtype::fp8};
  if (a.has("json")) {
    json j = json::array();
    for (const auto& d : tp::devices) {
      json peaks = json::object();
      for (auto t : all) peaks[std::string(tp::to_string(t))] = d.peak(t) ? json(*d.peak(t)) : json(nullptr);
      const auto known = [](double v) { return v > 0 ? json(v) : json(nullptr); };
      j.push_back({{"name", d.name},
                   {"peak_flops", peaks},
                   {"memory_bytes", d.memory_bytes},
                   {"memory_bandwidth", known(d.memory_bandwidth)},
                   {"intra_node_bandwidth", known(d.intra_node_bandwidth)},
                   {"inter_node_bandwidth", known(d.inter_node_bandwidth)},
                   {"source", d.source}});
    }
    out.print_json(j);
    return 0;
  }
  out.print("dense peak TFLOP/s ('-' = not published); memory GiB; bandwidths GB/s\n");
  out.print("{:<10}{:>8}{:>8}{:>8}{:>8}{:>8}{:>8}{:>8}{:>8}{:>8}\n", "device", "fp32", "tf32", "bf16", "fp16", "fp8",
            "mem", "mem bw", "intra", "inter");
  const auto v = [](double x, double div) { return x > 0 ? fmt::format("{:g}", x / div) : std::string("-"); };
  for (const auto& d : tp::devices) {
    out.print("{:<10}", d.name);
    for (auto t : all) out.print("{:>8}", v(d.peak_flops[static_cast<int>(t)], 1e12));
    out.print("{:>8}{:>8}{:>8}{:>8}\n", v(static_cast<double>(d.memory_bytes), static_cast<double>(tp::GiB)),
              v(d.memory_bandwidth, 1e9), v(d.intra_node_bandwidth, 1e9), v(d.inter_node_bandwidth, 1e9));
  }
  out.print("\nsources:\n");
  for (const auto& d : tp::devices) out.print("  {:<10}{}\n", d.name, d.source);
  return 0;
}

}  // namespace

command devices_command() {
  return {"devices", "the device table: dense peaks per dtype, memory, bandwidths, sources",
          [] { return with_common({}); }, run_devices};
}

}  // namespace trainperf::cli
