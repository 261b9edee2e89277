// trainperf report: a case report in the seed reports' layout from a trainer's metrics file
// (train_llama --metrics: one JSON object per logged window), one row per run.
#include <algorithm>
#include <cmath>
#include <string>
#include <vector>

#include <fmt/format.h>

#include <trainperf/io/file.hpp>

#include "cli.hpp"

namespace trainperf::cli {
namespace {
namespace tp = trainperf;

std::vector<flag> report_flags() {
  return {
      {"metrics", "FILE", "a trainer's metrics file (train_llama --metrics FILE): one JSON object per line"},
      {"format", "markdown|json", "what to print (default markdown)"},
      {"help", "", "show this help"},
  };
}

// One record of the metrics file, the fields a report needs.
struct record {
  int line = 0;
  json j;
  [[nodiscard]] double number(const std::string& file, const char* key) const {
    const auto it = j.find(key);
    if (it == j.end() || !it->is_number() || !std::isfinite(it->get<double>()) || it->get<double>() < 0)
      throw tp::config_error("metrics", fmt::format("{} line {}: '{}' is missing or not a number; give the file "
                                                    "train_llama --metrics wrote",
                                                    file, line, key));
    return it->get<double>();
  }
  [[nodiscard]] std::int64_t count(const std::string& file, const char* key) const {
    const double v = number(file, key);
    if (v < 1 || v != std::floor(v) || v > 9e15)
      throw tp::config_error("metrics",
                             fmt::format("{} line {}: '{}' is {}, not a positive whole number", file, line, key, v));
    return static_cast<std::int64_t>(v);
  }
  [[nodiscard]] std::string text(const std::string& file, const char* key) const {
    const auto it = j.find(key);
    if (it == j.end() || !it->is_string())
      throw tp::config_error("metrics", fmt::format("{} line {}: '{}' is missing or not a string; give the file "
                                                    "train_llama --metrics wrote",
                                                    file, line, key));
    return it->get<std::string>();
  }
  // What makes two records the same run.
  [[nodiscard]] std::string settings(const std::string& file) const {
    return fmt::format("{}|{}|{}|{}|{}|{}|{}|{}|{}|{}", text(file, "model"), text(file, "device"),
                       text(file, "precision"), count(file, "tp"), count(file, "pp"), count(file, "dp"),
                       count(file, "lbs"), count(file, "gas"), count(file, "seq"), text(file, "run"));
  }
};

int run_report(const args& a, output& out) {
  const auto file = a.get("metrics");
  if (!file) throw usage_error("give the trainer's metrics: trainperf report --metrics run.jsonl");
  static constexpr std::string_view formats[] = {"markdown", "json"};
  const std::string format = a.get_choice("format", formats).value_or("markdown");
  const std::string text =
      tp::io::read_file(*file, std::uintmax_t{256} << 20, "metrics", "a metrics file written by train_llama --metrics");
  // The last record of each run (a run: consecutive records with the same settings).
  std::vector<record> runs;
  int line = 0;
  for (std::size_t at = 0; at < text.size();) {
    std::size_t nl = text.find('\n', at);
    if (nl == std::string::npos) nl = text.size();
    const std::string_view l(text.data() + at, nl - at);
    at = nl + 1;
    ++line;
    if (l.find_first_not_of(" \t\r") == std::string_view::npos) continue;
    record r{line, json::parse(l, nullptr, false)};
    if (r.j.is_discarded() || !r.j.is_object())
      throw tp::config_error("metrics", fmt::format("{} line {} is not a JSON object; give the file train_llama "
                                                    "--metrics wrote",
                                                    *file, line));
    if (!runs.empty() && runs.back().settings(*file) == r.settings(*file))
      runs.back() = std::move(r);
    else
      runs.push_back(std::move(r));
  }
  if (runs.empty()) throw tp::config_error("metrics", *file + " holds no records; run the trainer with more steps");
  // One model, sequence, precision and FLOPs count for the whole table: the MFU column's
  // convention is stated once.
  const record& first = runs.front();
  for (const record& r : runs)
    for (const char* key : {"model", "precision", "flops_convention"})
      if (r.text(*file, key) != first.text(*file, key))
        throw tp::config_error(
            "metrics", fmt::format("{} line {}: {} '{}' differs from line {}'s '{}'; one report "
                                   "covers one {}: write each run's metrics to its own file",
                                   *file, r.line, key, r.text(*file, key), first.line, first.text(*file, key), key));
  const double flops = first.number(*file, "flops_per_token");
  for (const record& r : runs)
    if (r.number(*file, "flops_per_token") != flops)
      throw tp::config_error("metrics",
                             fmt::format("{} line {}: {:.9g} FLOPs per token, line {} {:.9g} (another "
                                         "sequence length); one report covers one: write each run's "
                                         "metrics to its own file",
                                         *file, r.line, r.number(*file, "flops_per_token"), first.line, flops));
  // The highest peak any run measured (a CPU trainer probes its own; they differ by noise).
  double peak = 0;
  std::string peak_source;
  for (const record& r : runs)
    if (r.number(*file, "peak_flops") > peak) {
      peak = r.number(*file, "peak_flops");
      peak_source = r.text(*file, "peak_source");
    }
  if (peak <= 0) throw tp::config_error("metrics", *file + ": every record has peak_flops 0; rerun with --peak-flops");
  if (runs.size() > 1) peak_source += "; the highest of the runs' peaks";

  const tp::row_format f{.tokens = {2, tp::rounding::nearest},
                         .loss = {4, tp::rounding::nearest},
                         .memory = {2, tp::rounding::nearest},
                         .mfu = {2, tp::rounding::nearest}};
  std::vector<tp::report_row> rows;
  for (const record& r : runs) {
    const double tps = r.number(*file, "tokens_per_device_per_s");
    const std::int64_t nodes = 1, devices = r.count(*file, "devices");
    const double mfu = tps * flops / peak;
    if (mfu > 1)
      throw tp::config_error("metrics", fmt::format("{} line {}: {:.2f} token/p/s x {:.6g} FLOPs per token is {:.1f}% "
                                                    "of the peak {:.6g} FLOP/s: the peak is too low; rerun the "
                                                    "trainer with --peak-flops",
                                                    *file, r.line, tps, flops, 100 * mfu, peak));
    rows.push_back(
        {fmt::format("{} ({}x{})", r.text(*file, "device"), nodes, devices), r.text(*file, "precision"),
         fmt::format("TP{}PP{}DP{}", r.count(*file, "tp"), r.count(*file, "pp"), r.count(*file, "dp")),
         fmt::format("LBS={} GAS={} MPE={}", r.count(*file, "lbs"), r.count(*file, "gas"), r.count(*file, "seq")), tps,
         r.number(*file, "loss"), r.number(*file, "memory_used_bytes") / static_cast<double>(tp::GiB),
         r.number(*file, "memory_capacity_bytes") / static_cast<double>(tp::GiB),
         mfu <= 1 ? std::optional<double>(mfu) : std::nullopt});
  }
  const tp::report_preamble p{.model = first.text(*file, "model"),
                              .params = first.count(*file, "params"),
                              .device = first.text(*file, "device"),
                              .flops_convention = first.text(*file, "flops_convention"),
                              .flops_per_token = flops,
                              .peak_flops = peak,
                              .peak_source = peak_source,
                              .lbs = first.count(*file, "lbs"),
                              .gas = first.count(*file, "gas"),
                              .seq = first.count(*file, "seq"),
                              .memory_note = first.text(*file, "memory_note")};
  if (format == "json") {
    json rj = json::array();
    for (const auto& r : rows) rj.push_back(json::parse(tp::to_json(r, f)));
    out.print_json({{"model", p.model},
                    {"params", p.params},
                    {"device", p.device},
                    {"flops_convention", p.flops_convention},
                    {"flops_per_token", p.flops_per_token},
                    {"peak_flops", p.peak_flops},
                    {"peak_source", p.peak_source},
                    {"rounding", "nearest; token/p/s 2 decimals, loss 4, mem 2 (GiB), MFU 2 (percent)"},
                    {"rows", rj}});
    return 0;
  }
  out.print("{}", tp::to_markdown_report(p, rows, f));
  return 0;
}

}  // namespace

command report_command() {
  return {"report", "a case report (markdown or JSON) from a trainer's metrics file", report_flags, run_report};
}

}  // namespace trainperf::cli
