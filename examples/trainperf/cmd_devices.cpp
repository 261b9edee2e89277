// trainperf devices: the device table: dense peaks per dtype, memory, bandwidths, sources
#include <string>
#include <vector>

#include <fmt/format.h>
#include <fmt/ranges.h>

#include <trainperf/trainperf.hpp>

#include "cli.hpp"
#include "device_flags.hpp"

namespace trainperf::cli {
namespace {
namespace tp = trainperf;

int run_devices(const args& a, output& out) {
  constexpr tp::dtype all[] = {tp::dtype::fp32, tp::dtype::tf32, tp::dtype::bf16, tp::dtype::fp16, tp::dtype::fp8};
  const tp::io::device_table file = devices_file_from_args(a);
  const std::vector<tp::device_spec> listed = all_devices(file);
  if (a.has("json")) {
    json j = json::array();
    for (const auto& d : listed) {
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
  table t({"device", "fp32", "tf32", "bf16", "fp16", "fp8", "mem", "mem bw", "intra", "inter"}, {true});
  const auto v = [](double x, double div) { return x > 0 ? fmt::format("{:g}", x / div) : std::string("-"); };
  for (const auto& d : listed) {
    std::vector<std::string> row{std::string(d.name)};
    for (auto t : all) row.push_back(v(d.peak_flops[static_cast<int>(t)], 1e12));
    for (const double x : {static_cast<double>(d.memory_bytes) / static_cast<double>(tp::GiB) * 1e9, d.memory_bandwidth,
                           d.intra_node_bandwidth, d.inter_node_bandwidth})
      row.push_back(v(x, 1e9));
    t.row(std::move(row));
  }
  out.print("{}", t.render());
  out.print("\nsources:\n");
  table sources({"device", "source"}, {true, true});
  for (const auto& d : listed) sources.row({std::string(d.name), std::string(d.source)});
  out.print("{}", sources.render());
  std::vector<std::string> unpublished;
  for (const tp::unpublished_device& u : tp::unpublished_devices)
    unpublished.push_back(fmt::format("{} ({})", u.name, u.what));
  out.print("\nno published figures (describe yours in a --devices-file): {}\n", fmt::join(unpublished, ", "));
  return 0;
}

}  // namespace

command devices_command() {
  return {"devices", "the device table: dense peaks per dtype, memory, bandwidths, sources",
          [] { return with_common({devices_file_flag()}); }, run_devices};
}

}  // namespace trainperf::cli
