// trainperf — benchmark result rows: rendered in the seed reports' markdown table format and
// as JSON with explicit rounding rules, and read back with a validator that catches values
// standing in the wrong column.
#pragma once

#include <cmath>
#include <cstdint>
#include <cstdio>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "error.hpp"

namespace trainperf {

// How a number is cut to its printed digits. Seed 000 truncates MFU to one decimal
// (0.107700 -> "10.7%"); seed 004 truncates token/p/s to an integer (4410.88 -> "4410");
// seed 001 rounds MFU to two decimals (0.180058 -> "18.01%").
enum class rounding { nearest, truncate };

struct number_format {
  int decimals = 2;
  rounding mode = rounding::nearest;
};

// Cuts v to `decimals` digits. Truncation forgives a relative 1e-12 so that a value such as
// 0.336 (stored as 0.33599999999999997) truncates to 33.6, not 33.5.
inline double cut(double v, number_format f) {
  const double scale = std::pow(10.0, f.decimals);
  const double x = v * scale;
  if (f.mode == rounding::nearest) return std::round(x) / scale;
  return std::trunc(x + (x >= 0 ? 1 : -1) * std::fabs(x) * 1e-12) / scale;
}

inline std::string format_number(double v, number_format f) {
  char buf[64];
  std::snprintf(buf, sizeof buf, "%.*f", f.decimals, cut(v, f));
  return buf;
}

// "10.7%" from 0.1077 (a fraction).
inline std::string format_percent(double fraction, number_format f) { return format_number(fraction * 100, f) + "%"; }

// One result row, in the columns the seed reports use.
struct report_row {
  std::string config;     // "H800 4x8"
  std::string precision;  // "amp", "fp32", "bf16"
  std::string parallel;   // "TP8PP4DP1"
  std::string fix_hp;     // "recompute=True", "/" for none
  std::optional<double> tokens_per_device_per_s;
  std::optional<double> loss;
  std::optional<double> memory_used_gib;
  std::optional<double> memory_total_gib;
  std::optional<double> mfu;  // a fraction
};

struct row_format {
  number_format tokens{2, rounding::nearest};
  number_format loss{2, rounding::nearest};
  number_format memory{0, rounding::nearest};
  number_format mfu{1, rounding::truncate};
};

inline std::string markdown_header() {
  return "| config | precision | parallel | fix_hp | token/p/s | loss | mem | MFU |\n"
         "|---|---|---|---|---|---|---|---|";
}

namespace detail {
inline std::string cell(const std::string& s) { return s.empty() ? "/" : s; }
inline std::string opt_number(const std::optional<double>& v, number_format f) { return v ? format_number(*v, f) : ""; }
inline std::string json_string(std::string_view s) {
  std::string out = "\"";
  for (char c : s) {
    if (c == '"' || c == '\\') {
      out += '\\';
      out += c;
    } else if (static_cast<unsigned char>(c) < 0x20) {
      char buf[8];
      std::snprintf(buf, sizeof buf, "\\u%04x", c);
      out += buf;
    } else {
      out += c;
    }
  }
  return out + "\"";
}
}  // namespace detail

inline std::string to_markdown(const report_row& r, const row_format& f = {}) {
  std::string mem;
  if (r.memory_used_gib && r.memory_total_gib)
    mem = format_number(*r.memory_used_gib, f.memory) + "/" + format_number(*r.memory_total_gib, f.memory);
  return "| " + detail::cell(r.config) + " | " + detail::cell(r.precision) + " | " + detail::cell(r.parallel) + " | " +
         detail::cell(r.fix_hp) + " | " + detail::opt_number(r.tokens_per_device_per_s, f.tokens) + " | " +
         detail::opt_number(r.loss, f.loss) + " | " + mem + " | " + (r.mfu ? format_percent(*r.mfu, f.mfu) : "") + " |";
}

// JSON with the printed (cut) values; absent values are null. mfu is a fraction.
inline std::string to_json(const report_row& r, const row_format& f = {}) {
  const auto num = [](const std::optional<double>& v, number_format nf) {
    return v ? format_number(*v, nf) : std::string("null");
  };
  const std::optional<double> mfu = r.mfu ? std::optional<double>(cut(*r.mfu * 100, f.mfu) / 100) : std::nullopt;
  char mfu_buf[64] = "null";
  if (mfu) std::snprintf(mfu_buf, sizeof mfu_buf, "%.*f", f.mfu.decimals + 2, *mfu);
  return "{\"config\": " + detail::json_string(r.config) + ", \"precision\": " + detail::json_string(r.precision) +
         ", \"parallel\": " + detail::json_string(r.parallel) + ", \"fix_hp\": " + detail::json_string(r.fix_hp) +
         ", \"tokens_per_device_per_s\": " + num(r.tokens_per_device_per_s, f.tokens) +
         ", \"loss\": " + num(r.loss, f.loss) + ", \"memory_used_gib\": " + num(r.memory_used_gib, f.memory) +
         ", \"memory_total_gib\": " + num(r.memory_total_gib, f.memory) + ", \"mfu\": " + mfu_buf + "}";
}

// ---- a whole report ---------------------------------------------------------------------------

// What a case report states once for all its rows: the model, the device, the batch defaults,
// and the convention of its MFU column with the FLOPs per token and the peak written out, so
// that a reader (trainperf check-report) can recompute every cell from the others.
struct report_preamble {
  std::string model;
  std::int64_t params = 0;
  std::string device;            // as the config cells name it
  std::string flops_convention;  // "megatron convention, causal attention halved"
  double flops_per_token = 0;
  double peak_flops = 0;
  std::string peak_source;
  std::int64_t lbs = 0, gas = 0, seq = 0;  // the defaults the batch prose states
  std::string memory_note;                 // what mem measures
};

namespace detail {
inline std::string rule(std::string_view column, number_format f) {
  return std::string(column) + " " + std::to_string(f.decimals) + " decimal" + (f.decimals == 1 ? "" : "s") + " (" +
         (f.mode == rounding::nearest ? "rounded to nearest" : "truncated") + ")";
}
inline std::string sci(double v) {
  char buf[64];
  std::snprintf(buf, sizeof buf, "%.9g", v);
  return buf;
}
}  // namespace detail

// The report in the seed reports' layout, in English: the batch prose, the general-metrics
// table, and the results table with its rounding rules named. Free text is kept to one table
// cell: '|' and line breaks become '/' and ' '.
inline std::string to_markdown_report(const report_preamble& given, const std::vector<report_row>& rows,
                                      const row_format& f = {}) {
  report_preamble p = given;
  for (std::string* text : {&p.model, &p.device, &p.flops_convention, &p.peak_source, &p.memory_note})
    for (char& c : *text) c = c == '|' ? '/' : (c == '\n' || c == '\r') ? ' ' : c;
  std::string out = "# " + p.model + " on " + p.device + "\n\n";
  out += "* Batch sizes\n";
  out += "  1. local_batchsize (micro batch), LBS: default " + std::to_string(p.lbs) + "\n";
  out += "  2. seqlength (max_position_embedding), MPE: default " + std::to_string(p.seq) + "\n";
  out += "  3. gradient_accumulate_steps, GAS: default " + std::to_string(p.gas) + "\n";
  out +=
      "  4. global_batchsize = local_batchsize * gradient_accumulate_steps * data_parallel_size, where "
      "data_parallel_size = world_size / TPsize / PPsize\n\n";
  out += "* General metrics\n\n| metric | value | note |\n|---|---|---|\n";
  out += "| model | " + p.model + " | " + std::to_string(p.params) + " parameters |\n";
  out += "| precision | precision, see the results | |\n";
  out += "| device | " + p.device + " | |\n";
  out += "| mem | mem, see the results | used / capacity in GiB: " + p.memory_note + " |\n";
  out += "| MFU | MFU, see the results | model FLOPs per token " + detail::sci(p.flops_per_token) + " (" +
         p.flops_convention + "), against a peak of " + detail::sci(p.peak_flops) + " FLOP/s (" + p.peak_source +
         ") |\n";
  out += "| throughput | token/p/s, see the results | tokens per device per second |\n\n";
  out += "* Results: " + detail::rule("token/p/s", f.tokens) + ", " + detail::rule("loss", f.loss) + ", " +
         detail::rule("mem", f.memory) + ", " + detail::rule("MFU (percent)", f.mfu) + "\n\n";
  out += markdown_header() + "\n";
  for (const report_row& r : rows) out += to_markdown(r, f) + "\n";
  return out;
}

// ---- reading rows back --------------------------------------------------------------------

// The cells of one markdown table line ("| a | b |" -> {"a", "b"}), trimmed.
inline std::vector<std::string> split_markdown_row(std::string_view line) {
  std::vector<std::string> cells;
  std::string_view s = line;
  const auto trim = [](std::string_view v) {
    while (!v.empty() && (v.front() == ' ' || v.front() == '\t')) v.remove_prefix(1);
    while (!v.empty() && (v.back() == ' ' || v.back() == '\t' || v.back() == '\r')) v.remove_suffix(1);
    return v;
  };
  s = trim(s);
  if (!s.empty() && s.front() == '|') s.remove_prefix(1);
  if (!s.empty() && s.back() == '|') s.remove_suffix(1);
  std::size_t start = 0;
  for (std::size_t i = 0; i <= s.size(); ++i) {
    if (i == s.size() || (s[i] == '|' && (i == 0 || s[i - 1] != '\\'))) {  // "\|" is a '|' inside a cell
      cells.emplace_back(trim(s.substr(start, i - start)));
      start = i + 1;
    }
  }
  return cells;
}

namespace detail {
// "3.20" -> 3.2; anything else (including "44.2/48.0") -> nullopt.
inline std::optional<double> plain_number(std::string_view s) {
  if (s.empty()) return std::nullopt;
  std::size_t i = 0, digits = 0, dots = 0;
  for (; i < s.size(); ++i) {
    if (s[i] >= '0' && s[i] <= '9')
      ++digits;
    else if (s[i] == '.')
      ++dots;
    else
      return std::nullopt;
  }
  if (digits == 0 || dots > 1) return std::nullopt;
  return std::stod(std::string(s));
}
// "74/81" or "44.2/48.0" -> (used, total).
inline std::optional<std::pair<double, double>> memory_pair(std::string_view s) {
  const auto slash = s.find('/');
  if (slash == std::string_view::npos) return std::nullopt;
  const auto used = plain_number(s.substr(0, slash)), total = plain_number(s.substr(slash + 1));
  if (!used || !total) return std::nullopt;
  return std::pair{*used, *total};
}
inline std::optional<double> percent(std::string_view s) {
  if (s.empty() || s.back() != '%') return std::nullopt;
  return plain_number(s.substr(0, s.size() - 1));
}
inline bool is_blank(std::string_view s) { return s.empty() || s == "/" || s == "-"; }
}  // namespace detail

// One problem found in a row: the column, what it holds, and what is wrong.
struct row_problem {
  std::string column;
  std::string value;
  std::string message;
};

// Checks the row's cells against their columns (header names as the seeds write them:
// "token/p/s" or "tokens/p/s", "loss", "mem", "MFU"); blank cells ("", "/", "-") pass. A
// loss that reads as memory ("44.2/48.0") next to a mem cell that reads as a loss is
// reported as two swapped columns (seed 003).
inline std::vector<row_problem> validate_row(const std::vector<std::string>& header,
                                             const std::vector<std::string>& row) {
  std::vector<row_problem> problems;
  if (header.size() != row.size()) {
    problems.push_back(
        {"", "",
         "row has " + std::to_string(row.size()) + " cells but the header has " + std::to_string(header.size())});
    return problems;
  }
  const auto column = [&](std::initializer_list<std::string_view> names) -> int {
    for (std::size_t i = 0; i < header.size(); ++i)
      for (auto n : names)
        if (header[i] == n) return static_cast<int>(i);
    return -1;
  };
  const int loss = column({"loss"}), mem = column({"mem", "memory"}), mfu = column({"MFU", "mfu"});
  const int tps = column({"token/p/s", "tokens/p/s"});
  const bool swapped = loss >= 0 && mem >= 0 && detail::memory_pair(row[loss]) && detail::plain_number(row[mem]);
  if (swapped) {
    problems.push_back({"loss", row[loss],
                        "loss column holds '" + row[loss] +
                            "', which reads as memory used/total, while the mem column holds '" + row[mem] +
                            "', which reads as a loss: the two columns look swapped"});
    return problems;
  }
  if (loss >= 0 && !detail::is_blank(row[loss]) && !detail::plain_number(row[loss]))
    problems.push_back({"loss", row[loss], "loss '" + row[loss] + "' is not a number"});
  if (mem >= 0 && !detail::is_blank(row[mem])) {
    const auto m = detail::memory_pair(row[mem]);
    if (!m)
      problems.push_back({"mem", row[mem], "mem '" + row[mem] + "' is not used/total (e.g. 77/80)"});
    else if (m->first > m->second)
      problems.push_back({"mem", row[mem], "mem '" + row[mem] + "' uses more than the device holds"});
  }
  if (mfu >= 0 && !detail::is_blank(row[mfu])) {
    const auto p = detail::percent(row[mfu]);
    if (!p)
      problems.push_back({"MFU", row[mfu], "MFU '" + row[mfu] + "' is not a percentage (e.g. 33.6%)"});
    else if (*p > 100)
      problems.push_back({"MFU", row[mfu], "MFU '" + row[mfu] + "' exceeds 100%"});
  }
  if (tps >= 0 && !detail::is_blank(row[tps]) && !detail::plain_number(row[tps]))
    problems.push_back({header[tps], row[tps], "token/p/s '" + row[tps] + "' is not a number"});
  return problems;
}

}  // namespace trainperf
