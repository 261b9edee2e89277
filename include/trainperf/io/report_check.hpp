// trainperf — audit a benchmark case report (read by io/case_report.hpp): every cell that does
// not follow from the others. MFU is recomputed from token/p/s under the report's convention,
// the arithmetic inside cells is redone, memory is held against the device, columns are checked
// for values that belong elsewhere, the parallel degrees against the device count, GBS = LBS x
// GAS x DP against the prose defaults and the row's overrides, and rows that repeat another's
// figures under other settings are pointed out. Printed values are compared as printed: a
// value cut to d decimals stands for anything it could have been rounded or truncated from.
#pragma once

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <map>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "../trainperf.hpp"
#include "case_report.hpp"

namespace trainperf {

enum class finding_severity { error, warning };

constexpr std::string_view to_string(finding_severity s) { return s == finding_severity::error ? "error" : "warning"; }

struct report_finding {
  int row = 0;  // 1-based over every results row of the report; 0: the report as a whole
  int line = 0;
  std::string column;
  std::string kind;
  finding_severity severity = finding_severity::error;
  std::string printed, expected, message;
};

struct report_check_options {
  std::string model;      // a preset; empty: each row's model as the report names it
  double params = 0;      // N of the nominal convention; 0: the model's nominal size
  double k = 0;           // nominal's multiplier; 0: 6, or 2 for a stage that freezes the language model
  std::string device;     // a device table entry; empty: each row's config cell
  double peak_flops = 0;  // instead of the device table's dense peak
  flops_convention convention = flops_convention::nominal;
  bool predict_memory = false;  // the memory model's figure beside each row's (from what the report states)
};

// What was read from one row, after the checks had their say.
struct report_row_reading {
  int row = 0, line = 0;
  std::string table, group;
  std::vector<std::pair<std::string, std::string>> cells;  // header -> cell, as printed
  std::string model, device, precision;
  std::optional<std::int64_t> devices, tp, pp, dp, lbs, gas, seq, gbs;
  std::optional<double> tokens_per_device_per_s, loss, memory_used, memory_capacity, mfu;  // mfu: a fraction
  std::string memory_unit;
  double flops_per_token = 0;  // what the MFU check used; 0 when it could not run
  std::string flops_source;
  double peak_flops = 0;
  std::string peak_source;
  std::optional<double> mfu_recomputed;  // from the printed token/p/s, under the check's convention
  std::vector<std::pair<std::string, double>> mfu_by_convention;  // for information
  std::optional<double> memory_predicted;  // with predict_memory: the model's most loaded rank, in memory_unit
  std::string memory_predicted_from;       // the settings it assumed, or why there is none
};

struct report_audit {
  std::vector<report_row_reading> rows;
  std::vector<report_finding> findings;
  [[nodiscard]] std::size_t count(finding_severity s) const {
    return static_cast<std::size_t>(
        std::count_if(findings.begin(), findings.end(), [&](const report_finding& f) { return f.severity == s; }));
  }
};

namespace detail::audit {

using io::printed_number;
using io::report_column;

// An expected cell, to the printed digits (report.hpp's rule: to nearest).
inline std::string fixed(double v, int decimals) {
  return format_number(v, {std::clamp(decimals, 0, 12), rounding::nearest});
}
// Bytes per memory unit as a report prints it: "GB" decimal, anything else (GiB, G) binary.
inline double bytes_per(std::string_view unit) { return unit == "GB" ? 1e9 : static_cast<double>(GiB); }
inline std::string g(double v) {
  char buf[64];
  std::snprintf(buf, sizeof buf, "%.6g", v);
  return buf;
}

// Could a value printed as `p` have come from `x`? Rounding puts x within half a digit of p,
// truncation puts it in [p, p + one digit); either is accepted, with slack for the binary form.
inline bool could_print_as(double x, const printed_number& p) {
  const double u = p.ulp(), eps = 1e-9 * std::max(1.0, std::fabs(p.value));
  return x >= p.value - u / 2 - eps && x < p.value + u + eps;
}
// The same for x known only within [lo, hi] (computed from other printed values).
inline bool interval_could_print_as(double lo, double hi, const printed_number& p) {
  const double u = p.ulp(), eps = 1e-9 * std::max(1.0, std::fabs(p.value));
  return hi >= p.value - u / 2 - eps && lo < p.value + u + eps;
}
// The range a printed value stands for (see could_print_as).
inline std::pair<double, double> range_of(const printed_number& p) {
  return {p.value - p.ulp() / 2, p.value + p.ulp()};
}

// The preset a report's model name means: "llama2_70b", "deepspeed-llama2-7b", "GPT3-6.7B".
inline const preset* preset_for(std::string_view name) {
  std::string n = io::detail::lowered(io::detail::trim(name));
  for (char& c : n)
    if (c == '_' || c == ' ') c = '-';
  for (std::size_t at = 0; at < n.size();) {
    if (const preset* p = find_preset(std::string_view(n).substr(at))) return p;
    const std::size_t dash = n.find('-', at);
    if (dash == std::string::npos) break;
    at = dash + 1;
  }
  return nullptr;
}
// N from a name's size suffix ("70b", "6.7B", "124m"); the last one that stands alone.
inline std::optional<double> params_from_name(std::string_view name) {
  std::optional<double> found;
  for (std::size_t i = 0; i < name.size(); ++i) {
    if (!io::detail::is_digit(name[i]) || (i > 0 && (io::detail::is_digit(name[i - 1]) || name[i - 1] == '.')))
      continue;
    if (i > 0 && io::detail::is_alpha(name[i - 1])) continue;  // "llama2": a version, not a size
    std::size_t at = i;
    const auto n = io::detail::number_at(name, at);
    if (!n || at >= name.size()) continue;
    const char s = io::detail::lower(name[at]);
    const bool alone = at + 1 >= name.size() || !io::detail::is_alpha(name[at + 1]);
    if ((s == 'b' || s == 'm') && alone) found = n->value * (s == 'b' ? 1e9 : 1e6);
  }
  return found;
}

// The device a config cell names: "H800", or "A100" with "*80G" for A100-80GB.
inline const device_spec* device_for(const io::device_cell& d) {
  if (d.capacity && *d.capacity < 1e6) {
    char name[96];
    std::snprintf(name, sizeof name, "%s-%.0fGB", d.name.substr(0, 64).c_str(), *d.capacity);
    if (const device_spec* dev = find_device(name)) return dev;
  }
  return find_device(d.name);
}

// The dtype whose peak a precision is measured against: fp32 trains on TF32 tensor cores
// where the device has them (its non-tensor fp32 peak would put most runs over 100%).
inline std::optional<dtype> peak_dtype(std::string_view precision, const device_spec& dev) {
  const auto first = [&](std::initializer_list<dtype> ds) -> std::optional<dtype> {
    for (dtype d : ds)
      if (dev.peak(d)) return d;
    return std::nullopt;
  };
  if (precision == "fp32") return first({dtype::tf32, dtype::fp32});
  if (precision == "tf32") return first({dtype::tf32});
  if (precision == "amp" || precision == "bf16") return first({dtype::bf16, dtype::fp16});
  if (precision == "fp16") return first({dtype::fp16, dtype::bf16});
  if (precision == "fp8") return first({dtype::fp8});
  return std::nullopt;
}

inline std::string precision_of(std::string_view cell) {
  for (const io::report_setting& s : io::parse_settings(cell)) {
    const std::string k = io::detail::lowered(s.key);
    for (std::string_view p : {"fp32", "tf32", "bf16", "fp16", "amp", "fp8"})
      if (k == p) return k;
  }
  return "";
}

// A setting's canonical name, or "".
inline std::string batch_key(std::string_view key) {
  std::string k = io::detail::lowered(io::detail::trim(key));
  for (char& c : k)
    if (c == ' ') c = '_';
  if (k == "lbs" || k == "per_device_bs" || k == "micro_batch_size" || k == "micro_bs" || k == "local_batchsize" ||
      k == "per_device_train_batch_size")
    return "lbs";
  if (k == "gas" || k == "accumulate" || k == "accumulate_steps" || k == "gradient_accumulation_steps" ||
      k == "gradient_accumulate_steps")
    return "gas";
  if (k == "mpe" || k == "seq" || k == "seqlength" || k == "seq_length" || k == "max_seq_len" ||
      k == "max_position_embeddings")
    return "mpe";
  if (k == "gbs" || k == "global_bs" || k == "global_batch_size" || k == "global_batchsize") return "gbs";
  return "";
}

struct checker {
  const io::case_report& report;
  const report_check_options& opt;
  report_audit out;
  bool unit_reported = false;

  void add(int row, int line, std::string column, std::string kind, finding_severity s, std::string printed,
           std::string expected, std::string message) {
    out.findings.push_back({row, line, std::move(column), std::move(kind), s, std::move(printed), std::move(expected),
                            std::move(message)});
  }

  static std::optional<std::int64_t> staged(const std::optional<std::int64_t>& plain,
                                            const std::vector<std::pair<std::string, std::int64_t>>& by_stage,
                                            const std::string& row_text) {
    for (const auto& [stage, v] : by_stage)
      if (io::detail::contains(io::detail::lowered(row_text), stage)) return v;
    return plain;
  }

  void row(const io::report_table& t, const io::table_row& r, int index) {
    report_row_reading rd;
    rd.row = index;
    rd.line = r.line;
    rd.table = t.heading;
    rd.group = r.group;
    for (std::size_t c = 0; c < r.cells.size(); ++c) rd.cells.emplace_back(t.header[c], r.cells[c]);
    const auto cell = [&](report_column c) -> std::string {
      const int i = t.find(c);
      return i >= 0 ? r.cells[static_cast<std::size_t>(i)] : std::string();
    };
    const auto has = [&](report_column c) { return t.find(c) >= 0; };
    const auto finding = [&](report_column c, std::string kind, finding_severity s, std::string printed,
                             std::string expected, std::string message) {
      const int i = t.find(c);
      add(index, r.line, i >= 0 ? t.header[static_cast<std::size_t>(i)] : std::string(io::to_string(c)),
          std::move(kind), s, std::move(printed), std::move(expected), std::move(message));
    };
    constexpr auto error = finding_severity::error;
    constexpr auto warning = finding_severity::warning;

    // ---- values standing in another column (seed 003: loss and mem swapped; seed 001: mem in fix_hp)
    std::string mem_text = cell(report_column::memory), loss_text = cell(report_column::loss);
    std::string fix_hp_text = cell(report_column::fix_hp);
    // "used/capacity" with used at most the capacity (a "TP/PP" cell's "8/4" is not memory).
    const auto reads_as_memory = [](const std::string& s) {
      const auto m = io::parse_memory(s);
      return m && m->capacity && m->groups.front().first.value <= m->capacity->value;
    };
    if (has(report_column::memory) && !reads_as_memory(mem_text)) {
      const bool mem_reads_as_loss = io::parse_number(mem_text).has_value();
      for (std::size_t c = 0; c < r.cells.size(); ++c) {
        const report_column k = t.columns[c];
        const bool could_hold_it = k == report_column::loss || k == report_column::fix_hp ||
                                   k == report_column::throughput || k == report_column::mfu ||
                                   k == report_column::other;
        if (!could_hold_it || !reads_as_memory(r.cells[c])) continue;
        if (k == report_column::loss && mem_reads_as_loss) {
          finding(report_column::loss, "swapped", error, loss_text, mem_text,
                  "loss holds '" + loss_text + "', which reads as mem used/capacity, and mem holds '" + mem_text +
                      "', which reads as a loss: the two columns are swapped; swap them back");
          std::swap(mem_text, loss_text);
        } else if (io::is_blank(mem_text)) {
          add(index, r.line, t.header[c], "misplaced", error, r.cells[c], "",
              t.header[c] + " holds '" + r.cells[c] +
                  "', which reads as mem used/capacity, while mem is blank: move "
                  "it to the mem column");
          mem_text = r.cells[c];
          if (k == report_column::fix_hp) fix_hp_text.clear();
        } else {
          continue;
        }
        break;
      }
    }

    // ---- blanks and cells that are not what their column holds. A cell with no digit at all
    // ("n/a", "fast") is no figure: an error. One with digits in a form the reader does not
    // know ("4,410", "74GiB/80GiB") is not understood: a warning, never a guess.
    const auto unreadable = [&](report_column c, const std::string& text, const std::string& message) {
      const bool digits = std::any_of(text.begin(), text.end(), [](char ch) { return ch >= '0' && ch <= '9'; });
      finding(c, digits ? "not_understood" : "not_a_number", digits ? warning : error, text, "", message);
    };
    const auto required = [&](report_column c, const std::string& text) {
      if (!has(c) || !io::is_blank(text)) return false;
      finding(c, "blank", error, text, "",
              std::string(io::to_string(c)) + " is blank; a results row reports it (or drop the column and say why)");
      return true;
    };
    // Throughput.
    const std::string tps_text = cell(report_column::throughput);
    std::optional<io::throughput_cell> tps;
    if (!required(report_column::throughput, tps_text) && has(report_column::throughput)) {
      tps = io::parse_throughput(tps_text);
      if (!tps)
        unreadable(report_column::throughput, tps_text,
                   "token/p/s '" + tps_text + "' is not a number (nor 'samples/s * seq / devices = N tokens/s')");
      else if (tps->value.value <= 0)
        finding(report_column::throughput, "negative", error, tps_text, "", "token/p/s must be positive");
    }
    if (tps && tps->value.value > 0) rd.tokens_per_device_per_s = tps->value.value;
    // Loss.
    if (!required(report_column::loss, loss_text) && has(report_column::loss)) {
      const auto l = io::parse_number(loss_text);
      if (!l && io::parse_percent(loss_text))
        finding(report_column::loss, "wrong_column", error, loss_text, "",
                "loss '" + loss_text + "' is a percentage: a value from another column");
      else if (!l)
        unreadable(report_column::loss, loss_text, "loss '" + loss_text + "' is not a number");
      else if (l->value < 0)
        finding(report_column::loss, "negative", error, loss_text, "", "a cross-entropy loss cannot be negative");
      else
        rd.loss = l->value;
    }
    // Memory.
    std::optional<io::memory_cell> mem;
    if (!required(report_column::memory, mem_text) && has(report_column::memory)) {
      mem = io::parse_memory(mem_text);
      if (!mem) {
        unreadable(report_column::memory, mem_text,
                   "mem '" + mem_text +
                       "' is none of used/capacity (77/80), used * devices (66.27 * 8 GB) or a sum "
                       "of those");
      } else {
        for (const auto& [v, n] : mem->groups)
          if (v.value < 0) finding(report_column::memory, "negative", error, mem_text, "", "memory cannot be negative");
      }
    }
    // MFU.
    std::optional<printed_number> mfu;
    const std::string mfu_text = cell(report_column::mfu);
    if (!required(report_column::mfu, mfu_text) && has(report_column::mfu)) {
      mfu = io::parse_percent(mfu_text);
      if (!mfu) {
        unreadable(report_column::mfu, mfu_text, "MFU '" + mfu_text + "' is not a percentage (e.g. 33.6%)");
      } else if (mfu->value > 100) {
        finding(report_column::mfu, "over_100", error, mfu_text, "",
                "MFU '" + mfu_text + "' is above 100%: the FLOPs, the throughput or the peak is wrong");
        mfu.reset();
      } else if (mfu->value < 0) {
        finding(report_column::mfu, "negative", error, mfu_text, "", "MFU cannot be negative");
        mfu.reset();
      }
    }
    if (mfu) rd.mfu = mfu->value / 100;

    // ---- the device and its count
    const std::string dev_text = cell(report_column::device);
    std::optional<io::device_cell> dc;
    if (has(report_column::device)) {
      dc = io::parse_device_cell(dev_text);
      if (!dc)
        finding(report_column::device, "not_understood", warning, dev_text, "",
                "config '" + dev_text + "' is not understood as a device and its count (e.g. 'H800四机32卡（4x8）')");
    }
    const device_spec* dev = nullptr;
    if (!opt.device.empty())
      dev = &get_device(opt.device);
    else if (dc)
      dev = device_for(*dc);
    if (dev) rd.device = std::string(dev->name);
    if (dc) {
      rd.devices = dc->total();
      if (dc->cards && dc->nodes && dc->per_node && *dc->nodes * *dc->per_node != *dc->cards)
        finding(report_column::device, "device_count", error, dev_text, std::to_string(*dc->nodes * *dc->per_node),
                "config says " + std::to_string(*dc->cards) + " devices but " + std::to_string(*dc->nodes) + "x" +
                    std::to_string(*dc->per_node) + " = " + std::to_string(*dc->nodes * *dc->per_node));
    }
    std::string row_text = r.group;  // what names the row's stage: any cell ("(pretrain)", a stage column)
    for (const std::string& c : r.cells) row_text += " " + c;

    // ---- precision
    rd.precision =
        has(report_column::precision) ? precision_of(cell(report_column::precision)) : precision_of(report.precision);
    if (has(report_column::precision) && rd.precision.empty() && !io::is_blank(cell(report_column::precision)))
      finding(report_column::precision, "not_understood", warning, cell(report_column::precision), "",
              "precision '" + cell(report_column::precision) + "' names none of fp32, tf32, bf16, fp16, amp, fp8");

    // ---- parallel degrees
    io::parallel_cell par;
    bool par_seen = false;
    for (report_column c : {report_column::config_name, report_column::parallel}) {
      if (!has(c) || io::is_blank(cell(c))) continue;
      const auto p = io::parse_parallel(cell(c));
      if (!p) {
        if (c == report_column::parallel)
          finding(c, "not_understood", warning, cell(c), "", "parallel '" + cell(c) + "' names no TP/PP/DP degrees");
        continue;
      }
      const auto merge = [&](std::optional<std::int64_t>& into, const std::optional<std::int64_t>& v,
                             std::string_view what) {
        if (!v) return;
        if (into && *into != *v)
          finding(c, "parallel_conflict", error, cell(c), std::to_string(*into),
                  std::string(what) + " " + std::to_string(*v) + " here, " + std::to_string(*into) +
                      " in the config name: one of them is wrong");
        else
          into = v;
      };
      merge(par.tp, p->tp, "TP");
      merge(par.pp, p->pp, "PP");
      merge(par.dp, p->dp, "DP");
      merge(par.sharding_stage, p->sharding_stage, "sharding stage");
      merge(par.sharding_degree, p->sharding_degree, "sharding degree");
      par_seen = true;
    }
    rd.tp = par.tp.value_or(1);
    rd.pp = par.pp.value_or(1);
    if (rd.devices) {
      const std::int64_t mp = *rd.tp * *rd.pp * par.cp.value_or(1);  // data_parallel_size = world / (TP x PP x CP)
      if (par.dp) {
        if (mp * *par.dp != *rd.devices)
          finding(report_column::parallel, "device_count", error, cell(report_column::parallel),
                  std::to_string(*rd.devices),
                  "TP" + std::to_string(*rd.tp) + " x PP" + std::to_string(*rd.pp) + " x DP" + std::to_string(*par.dp) +
                      " = " + std::to_string(mp * *par.dp) + " devices, but the config cell has " +
                      std::to_string(*rd.devices));
        rd.dp = par.dp;
      } else if (mp > 0 && *rd.devices % mp != 0) {
        finding(par_seen ? report_column::parallel : report_column::device, "device_count", error,
                cell(report_column::parallel), "",
                std::to_string(*rd.devices) + " devices do not divide into TP" + std::to_string(*rd.tp) + " x PP" +
                    std::to_string(*rd.pp));
      } else if (mp > 0) {
        rd.dp = *rd.devices / mp;  // data_parallel_size = world_size / TPsize / PPsize (the prose's rule)
        if (par.sharding_degree && *par.sharding_degree != *rd.dp)
          finding(report_column::parallel, "device_count", warning, cell(report_column::parallel),
                  std::to_string(*rd.dp),
                  "sharding degree " + std::to_string(*par.sharding_degree) + " but " + std::to_string(*rd.devices) +
                      " devices / (TP x PP) leave " + std::to_string(*rd.dp) + " data-parallel ranks");
      }
    } else if (par.dp) {
      rd.dp = par.dp;
    }

    // ---- batch: the prose's defaults, the row's overrides, and what the row claims
    const io::batch_prose& b = report.batch;
    rd.lbs = staged(b.lbs, b.lbs_by_stage, row_text);
    rd.seq = staged(b.mpe, b.mpe_by_stage, row_text);
    rd.gas = staged(b.gas, b.gas_by_stage, row_text);
    std::vector<io::count_claim> gbs_claims;
    for (const io::report_setting& s : io::parse_settings(fix_hp_text)) {
      const std::string k = batch_key(s.key);
      if (k.empty() || s.values.empty()) continue;
      if (k == "gbs") {
        for (const std::string& v : s.values)
          if (const auto c = io::parse_count_claim(v)) gbs_claims.push_back(*c);
        continue;
      }
      const auto n = io::parse_number(s.values.front());
      if (!n || !n->whole() || n->value < 1) {
        finding(report_column::fix_hp, "not_a_number", error, fix_hp_text, "",
                s.key + "=" + s.values.front() + " is not a whole number from 1 to 1e9");
        continue;
      }
      const std::int64_t v = *n->whole();
      (k == "lbs" ? rd.lbs : k == "gas" ? rd.gas : rd.seq) = v;
    }
    // The throughput cell's arithmetic: samples/s * seq / devices = token/p/s.
    if (tps && !tps->terms.empty()) {
      // The measured term stands for a range (17.23 for [17.225, 17.24)): so does the result.
      // The others (the sequence length, the device count) are exact when whole.
      double x = tps->terms[0].value;
      auto [lo, hi] = range_of(tps->terms[0]);
      bool positive = lo > 0;
      for (std::size_t i = 1; i < tps->terms.size(); ++i) {
        const printed_number& term = tps->terms[i];
        const auto [tlo, thi] = term.decimals == 0 ? std::pair{term.value, term.value} : range_of(term);
        positive = positive && tlo > 0;
        if (tps->ops[i - 1] == '*') {
          x *= tps->terms[i].value;
          lo *= tlo;
          hi *= thi;
        } else {
          x /= tps->terms[i].value;
          lo /= thi;
          hi = tlo > 0 ? hi / tlo : HUGE_VAL;
        }
      }
      if (!positive) lo = hi = x;  // a zero or negative term: the plain arithmetic
      if (!std::isfinite(x) || !interval_could_print_as(lo, hi, tps->value))
        finding(report_column::throughput, "arithmetic", error, tps_text, fixed(x, tps->value.decimals),
                "the cell's own arithmetic gives " + fixed(x, 4) + ", not " + tps->value.text);
      if (tps->terms.size() == 3 && tps->ops[0] == '*' && tps->ops[1] == '/' && tps->terms[1].whole() &&
          tps->terms[2].whole(1e6)) {
        const std::int64_t seq = *tps->terms[1].whole(), n = *tps->terms[2].whole(1e6);
        if (rd.seq && *rd.seq != seq)
          finding(report_column::throughput, "arithmetic", error, tps_text, std::to_string(*rd.seq),
                  "the cell multiplies by a sequence of " + tps->terms[1].text + " tokens, the run's is " +
                      std::to_string(*rd.seq));
        if (!rd.seq) rd.seq = seq;
        if (rd.devices && *rd.devices != n)
          finding(report_column::throughput, "arithmetic", error, tps_text, std::to_string(*rd.devices),
                  "the cell divides by " + tps->terms[2].text + " devices, the config cell has " +
                      std::to_string(*rd.devices));
      }
    }
    // (each at most 1e9 and dp at most 1e6: the product is computed only where it stays exact)
    if (rd.lbs && rd.gas && rd.dp &&
        static_cast<double>(*rd.lbs) * static_cast<double>(*rd.gas) * static_cast<double>(*rd.dp) <= 1e15)
      rd.gbs = *rd.lbs * *rd.gas * *rd.dp;
    for (const io::count_claim& c : gbs_claims) {
      if (!rd.gbs || (c.tokens && !rd.seq)) continue;
      const double actual = static_cast<double>(*rd.gbs) * (c.tokens ? static_cast<double>(*rd.seq) : 1.0);
      bool ok = false;
      std::string as;
      for (double scale : c.suffix == 'K'   ? std::vector<double>{1e3, 1024.0}
                          : c.suffix == 'M' ? std::vector<double>{1e6, 1048576.0}
                          : c.suffix == 'B' ? std::vector<double>{1e9, 1073741824.0}
                                            : std::vector<double>{1.0}) {
        ok = ok || could_print_as(actual / scale, c.value);
        if (as.empty()) as = fixed(actual / scale, c.value.decimals) + (c.suffix ? std::string(1, c.suffix) : "");
      }
      if (!ok)
        finding(report_column::fix_hp, "gbs", error, fix_hp_text, as + (c.tokens ? " tokens" : ""),
                "GBS = LBS " + std::to_string(*rd.lbs) + " x GAS " + std::to_string(*rd.gas) + " x DP " +
                    std::to_string(*rd.dp) + " = " + std::to_string(*rd.gbs) + " sequences" +
                    (c.tokens ? " = " + fixed(actual, 0) + " tokens" : std::string()) + ", not " + c.value.text +
                    (c.suffix ? std::string(1, c.suffix) : "") + (c.tokens ? " tokens" : ""));
    }

    // ---- memory against the device
    if (mem) memory(*mem, mem_text, dc, dev, rd, index, r.line, t);

    // ---- MFU
    rd.model = r.group.empty() ? (has(report_column::model) ? cell(report_column::model) : report.model) : r.group;
    const preset* p = opt.model.empty() ? preset_for(rd.model) : &get_preset(opt.model);
    if (p) rd.model = std::string(p->name);
    mfu_check(rd, p, tps ? std::optional<printed_number>(tps->value) : std::nullopt, mfu, dev, row_text, index, r.line,
              t);
    if (opt.predict_memory)
      predict_memory(rd, p, par, row_text + " " + fix_hp_text + " " + cell(report_column::parallel));
    out.rows.push_back(std::move(rd));
  }

  void memory(const io::memory_cell& m, const std::string& text, const std::optional<io::device_cell>& dc,
              const device_spec* dev, report_row_reading& rd, int index, int line, const io::report_table& t) {
    const int ci = t.find(report_column::memory);
    const std::string column = ci >= 0 ? t.header[static_cast<std::size_t>(ci)] : "mem";
    const std::string unit = m.unit.empty() || m.unit == "G" ? report.memory_unit : m.unit;
    rd.memory_unit = unit;
    std::int64_t counted = 0;
    double peak_used = 0;
    for (const auto& [v, n] : m.groups) {
      counted += n;
      peak_used = std::max(peak_used, v.value);
    }
    rd.memory_used = peak_used;
    if (m.sum) {
      double sum = 0, lo = 0, hi = 0;
      for (const auto& [v, n] : m.groups) {
        sum += v.value * static_cast<double>(n);
        lo += range_of(v).first * static_cast<double>(n);
        hi += range_of(v).second * static_cast<double>(n);
      }
      if (!interval_could_print_as(lo, hi, *m.sum))
        add(index, line, column, "arithmetic", finding_severity::error, text, fixed(sum, m.sum->decimals),
            "the cell's own sum gives " + fixed(sum, 4) + ", not " + m.sum->text);
    }
    if (m.groups.size() > 1 || m.groups.front().second > 1) {
      if (rd.devices && counted != *rd.devices)
        add(index, line, column, "device_count", finding_severity::error, text, std::to_string(*rd.devices),
            "the cell covers " + std::to_string(counted) + " devices, the config cell has " +
                std::to_string(*rd.devices));
    }
    if (!m.unit.empty() && m.unit != "G" && !report.memory_unit.empty() && m.unit != report.memory_unit &&
        !unit_reported) {
      unit_reported = true;
      add(0, line, column, "unit", finding_severity::warning, text, report.memory_unit,
          "memory is printed in " + m.unit + " but the report says mem is in " + report.memory_unit + " (line " +
              std::to_string(report.memory_unit_line) + "); 1 GiB = 1.074 GB: say which");
    }
    // The capacity: printed after the slash, else the config cell's "*80G", else the device's.
    const double bytes_per_unit = bytes_per(unit);
    std::optional<double> capacity;
    if (m.capacity) capacity = m.capacity->value;
    // "*80G": the card's nominal size, as the device tables count it (80 GiB), in the cell's unit.
    if (!capacity && dc && dc->capacity) capacity = *dc->capacity * static_cast<double>(GiB) / bytes_per_unit;
    if (!capacity && dev && dev->memory_bytes > 0) capacity = static_cast<double>(dev->memory_bytes) / bytes_per_unit;
    rd.memory_capacity = capacity;
    if (capacity && peak_used > *capacity * (1 + 1e-12))
      add(index, line, column, "over_capacity", finding_severity::error, text, g(*capacity),
          "uses " + g(peak_used) + " of a device that holds " + g(*capacity) + ": the figure or the device is wrong");
    if (m.capacity && dev && dev->memory_bytes > 0) {
      const double nominal = static_cast<double>(dev->memory_bytes) / bytes_per_unit;
      const double cap = m.capacity->value;
      // What a tool reports is at most the device's capacity and not far below it.
      if (cap > nominal + m.capacity->ulp() / 2 + 1e-9 || cap < 0.9 * nominal) {
        const double gib = static_cast<double>(dev->memory_bytes) / static_cast<double>(GiB);
        const double gb = static_cast<double>(dev->memory_bytes) / 1e9;
        add(index, line, column, "capacity", finding_severity::warning, text, g(nominal),
            "capacity " + m.capacity->text + " is not the " + std::string(dev->name) + "'s: it holds " + g(gib) +
                " GiB = " + g(gb) + " GB" + (unit.empty() ? std::string() : " (the report counts in " + unit + ")") +
                "; fix the figure or the unit");
      }
    }
  }

  void mfu_check(report_row_reading& rd, const preset* p, const std::optional<printed_number>& tps,
                 const std::optional<printed_number>& mfu, const device_spec* dev, const std::string& row_text,
                 int index, int line, const io::report_table& t) {
    const int ci = t.find(report_column::mfu);
    const std::string column = ci >= 0 ? t.header[static_cast<std::size_t>(ci)] : "MFU";
    // FLOPs per token under the convention.
    double k = 0;
    std::string k_reason;
    // LLaVA-style pretraining trains the projector alone: the language model is frozen there.
    const bool frozen_llm =
        p && p->spec.vision.layers > 0 && io::detail::contains(io::detail::lowered(row_text), "pretrain");
    transformer_spec spec = p ? p->spec : transformer_spec{};
    if (frozen_llm) spec.llm_mode = train_mode::frozen;
    if (report.stated_flops_per_token && opt.convention == flops_convention::nominal && opt.params == 0 && opt.k == 0) {
      rd.flops_per_token = *report.stated_flops_per_token;
      rd.flops_source = "the report's stated FLOPs per token";
    } else if (opt.convention == flops_convention::nominal) {
      double n = opt.params;
      std::string n_source = "--params";
      if (n == 0 && p) {
        n = p->nominal_params > 0 ? p->nominal_params : static_cast<double>(count_params(p->spec).total());
        n_source = std::string(p->name);
      }
      if (n == 0)
        if (const auto from_name = params_from_name(rd.model)) {
          n = *from_name;
          n_source = "the name " + rd.model;
        }
      k = opt.k;
      if (k == 0) {
        k = frozen_llm ? 2 : 6;
        if (frozen_llm) k_reason = ", k = 2: the pretrain stage of a vision-language model freezes the language model";
      }
      if (n > 0) {
        rd.flops_per_token = k * n;
        rd.flops_source = "nominal " + g(k) + " x N, N = " + g(n) + " (" + n_source + ")" + k_reason;
      }
    } else if (p && rd.seq) {
      try {
        flops_options fo{.convention = opt.convention, .seq = *rd.seq};
        if (opt.params > 0) fo.params = opt.params;
        rd.flops_per_token = count_flops(spec, fo).model_per_token();
        rd.flops_source = std::string(to_string(opt.convention)) + " convention, " + std::string(p->name) + ", seq " +
                          std::to_string(*rd.seq);
      } catch (const config_error&) {
        rd.flops_per_token = 0;
      }
    }
    // The peak.
    std::optional<dtype> expected_dtype;
    if (opt.peak_flops > 0) {
      rd.peak_flops = opt.peak_flops;
      rd.peak_source = "--peak-flops";
    } else if (report.stated_peak_flops) {
      rd.peak_flops = *report.stated_peak_flops;
      rd.peak_source = "the report's stated peak";
    } else if (dev) {
      expected_dtype = peak_dtype(rd.precision, *dev);
      if (expected_dtype) {
        rd.peak_flops = *dev->peak(*expected_dtype);
        rd.peak_source = std::string(dev->name) + " dense " + std::string(to_string(*expected_dtype));
      }
    }
    if (!tps || tps->value <= 0) return;
    // For information: the other conventions, at the same peak.
    if (rd.peak_flops > 0 && p && rd.seq)
      for (flops_convention c :
           {flops_convention::nominal, flops_convention::palm, flops_convention::megatron, flops_convention::kaplan}) {
        try {
          flops_options fo{.convention = c, .seq = *rd.seq, .causal = c == flops_convention::megatron};
          if (c == flops_convention::nominal) fo.k = k > 0 ? k : 0;
          if (c == flops_convention::nominal && p->nominal_params > 0) fo.params = p->nominal_params;
          const double f = count_flops(spec, fo).model_per_token();
          rd.mfu_by_convention.emplace_back(
              std::string(to_string(c)) + (c == flops_convention::megatron ? " causal" : ""),
              tps->value * f / rd.peak_flops);
        } catch (const config_error&) {
        }
      }
    if (rd.flops_per_token <= 0 || rd.peak_flops <= 0) {
      if (mfu)
        add(index, line, column, "unchecked", finding_severity::warning, mfu->text + "%", "",
            std::string("MFU not checked: ") +
                (rd.flops_per_token <= 0 ? "the model's size is unknown (give --model or --params)"
                                         : "no peak for this device and precision (give --device or --peak-flops)"));
      return;
    }
    const auto at = [&](double flops, double peak) {
      const auto [lo, hi] = range_of(*tps);
      return std::pair{lo * flops / peak * 100, hi * flops / peak * 100};
    };
    rd.mfu_recomputed = tps->value * rd.flops_per_token / rd.peak_flops;
    if (!mfu) return;
    const std::string expected = fixed(*rd.mfu_recomputed * 100, mfu->decimals) + "%";
    const auto follows = [&](double flops, double peak) {
      const auto [lo, hi] = at(flops, peak);
      return interval_could_print_as(lo, hi, *mfu);
    };
    if (follows(rd.flops_per_token, rd.peak_flops)) return;
    // Another dtype's peak of the same device?
    if (dev && expected_dtype)
      for (dtype d : all_dtypes) {
        const auto pk = dev->peak(d);
        if (!pk || *pk == rd.peak_flops || !follows(rd.flops_per_token, *pk)) continue;
        add(index, line, column, "precision_peak", finding_severity::warning, mfu->text + "%", expected,
            "MFU " + mfu->text + "% follows from the " + std::string(dev->name) + "'s dense " +
                std::string(to_string(d)) + " peak (" + g(*pk / 1e12) + " TFLOP/s), not the " +
                std::string(to_string(*expected_dtype)) + " peak (" + g(rd.peak_flops / 1e12) + " TFLOP/s) of a " +
                rd.precision + " run, against which it is " + expected);
        return;
      }
    // Another nominal multiplier?
    if (opt.convention == flops_convention::nominal && k > 0)
      for (double other : {2.0, 6.0, 8.0}) {
        if (other == k || !follows(rd.flops_per_token / k * other, rd.peak_flops)) continue;
        add(index, line, column, "mfu_convention", finding_severity::warning, mfu->text + "%", expected,
            "MFU " + mfu->text + "% follows from " + g(other) + " x N FLOPs per token, not the " + g(k) +
                " x N the report's convention gives (" + expected + "); say which the table uses");
        return;
      }
    add(index, line, column, "mfu", finding_severity::error, mfu->text + "%", expected,
        "MFU " + mfu->text + "% does not follow from token/p/s " + tps->text + ": " + tps->text + " x " +
            g(rd.flops_per_token) + " / " + g(rd.peak_flops) + " = " + expected + " (" + rd.flops_source + "; " +
            rd.peak_source + ")");
  }

  // The memory model for the row, from what the report states: the framework named in its
  // prose (FlagScale/Megatron, DeepSpeed, Paddle, else generic), the ZeRO or sharding stage, the
  // recomputation ("recompute=True", gradient checkpointing: full), flash or SDPA attention
  // (not under fp32), the precision's weight dtype. What a report leaves out (sequence
  // parallelism, a distributed optimizer, padding) is not assumed.
  void predict_memory(report_row_reading& rd, const preset* p, const io::parallel_cell& par,
                      const std::string& row_settings) {
    if (!p || !rd.devices || !rd.lbs || !rd.seq || !rd.tp || !rd.pp) {
      rd.memory_predicted_from = "not predicted: the model, device count, LBS or sequence is unknown";
      return;
    }
    const std::string prose = io::detail::lowered(report.prose);
    const std::string row = io::detail::lowered(row_settings);
    const auto says = [&](std::string_view s) { return io::detail::contains(prose, s); };
    memory_options m{.lbs = *rd.lbs, .seq = *rd.seq, .micro_batches = rd.gas.value_or(1)};
    std::string framework_name = "generic";
    if (says("flagscale") || says("megatron")) {
      m.accounting = framework::megatron;
      framework_name = "megatron";
    } else if (says("deepspeed")) {
      m.accounting = framework::deepspeed;
      framework_name = "deepspeed";
    } else if (says("paddle")) {
      m.accounting = framework::paddle;
      framework_name = "paddle";
    }
    m.param_dtype = rd.precision == "fp32" ? dtype::fp32 : rd.precision == "fp16" ? dtype::fp16 : dtype::bf16;
    m.flash_attention = rd.precision != "fp32" && (says("flash") || says("scaled dot product") ||
                                                   io::detail::contains(row, "flash_attention=true"));
    parallel_config c{.tp = *rd.tp, .pp = *rd.pp};
    // ZeRO: Paddle's sharding stage, or DeepSpeed's "ZeRO-DP O3" / "Finetune-stage:O3".
    if (par.sharding_stage) c.zero_stage = static_cast<int>(*par.sharding_stage);
    for (std::size_t at = prose.find("zero"); at != std::string::npos && c.zero_stage == 0;
         at = prose.find("zero", at + 4)) {
      std::string_view line = std::string_view(prose).substr(at, 80);
      line = line.substr(0, line.find('\n'));
      for (std::string_view stage : {"pretrain", "finetune"}) {
        const std::string key = std::string(stage) + "-stage:o";
        const std::size_t st = line.find(key);
        if (io::detail::contains(row, stage) && st != std::string_view::npos && st + key.size() < line.size())
          c.zero_stage = line[st + key.size()] - '0';
      }
      for (std::size_t i = 0; i + 1 < line.size() && c.zero_stage == 0; ++i)
        if ((line[i] == 'o' || line[i] == '-') && line[i + 1] >= '1' && line[i + 1] <= '3' &&
            (i + 2 == line.size() || !io::detail::is_digit(line[i + 2])))
          c.zero_stage = line[i + 1] - '0';
    }
    if (c.zero_stage < 0 || c.zero_stage > 3) c.zero_stage = 0;
    if (io::detail::contains(row, "recompute=true") || says("checkpointing")) c.recomputation = recompute::full;
    transformer_spec spec = p->spec;
    if (spec.vision.layers > 0 && io::detail::contains(row, "pretrain")) spec.llm_mode = train_mode::frozen;
    char what[256];
    std::snprintf(what, sizeof what, "%s accounting, %s weights, ZeRO %d, recompute %s, %s attention",
                  framework_name.c_str(), std::string(to_string(m.param_dtype)).c_str(), c.zero_stage,
                  std::string(to_string(c.recomputation)).c_str(), m.flash_attention ? "flash" : "unfused");
    try {
      const memory_estimate e = estimate_memory(spec, c, *rd.devices, m);
      rd.memory_predicted = e.max_total() / bytes_per(rd.memory_unit);
      rd.memory_predicted_from = what;
      if (rd.memory_capacity && e.max_need() / bytes_per(rd.memory_unit) > *rd.memory_capacity)
        rd.memory_predicted_from += "; more than the device holds: the run used a setting the report does not state";
    } catch (const config_error& e) {
      rd.memory_predicted_from = std::string("not predicted: ") + e.what();
    }
  }

  // Rows that claim different settings but print the same figures.
  void duplicates(const std::vector<std::pair<const io::report_table*, const io::table_row*>>& rows) {
    const auto text = [](const io::report_table& t, const io::table_row& r, report_column c) {
      const int i = t.find(c);
      return i >= 0 ? std::string(io::detail::trim(r.cells[static_cast<std::size_t>(i)])) : std::string();
    };
    const auto figures = [&](std::size_t i) {
      std::vector<std::string> f;
      for (report_column c :
           {report_column::throughput, report_column::loss, report_column::memory, report_column::mfu}) {
        const std::string s = text(*rows[i].first, *rows[i].second, c);
        if (!io::is_blank(s)) f.push_back(s);
      }
      return f;
    };
    const auto settings = [&](std::size_t i) {
      std::vector<std::string> s{rows[i].second->group};
      for (report_column c : {report_column::device, report_column::config_name, report_column::model,
                              report_column::precision, report_column::parallel, report_column::fix_hp})
        s.push_back(text(*rows[i].first, *rows[i].second, c));
      return s;
    };
    // The rows printing each set of figures, in order: one pass, whatever the report's length.
    std::map<std::vector<std::string>, std::vector<std::size_t>> by_figures;
    for (std::size_t j = 0; j < rows.size(); ++j) {
      const auto fj = figures(j);
      if (fj.size() < 2) continue;
      std::vector<std::size_t>& same = by_figures[fj];
      for (const std::size_t i : same) {
        if (settings(i) == settings(j)) continue;
        std::string joined;
        for (const auto& f : fj) joined += (joined.empty() ? "" : ", ") + f;
        add(static_cast<int>(j) + 1, rows[j].second->line, "", "duplicate", finding_severity::warning, joined, "",
            "row " + std::to_string(j + 1) + " repeats row " + std::to_string(i + 1) + "'s figures (" + joined +
                ") under other settings: a copied row, or a run that was not measured again");
        break;
      }
      if (same.size() < 8) same.push_back(j);  // a few earlier rows suffice to name one
    }
  }
};

}  // namespace detail::audit

// Audits a case report: every cell that does not follow from the others (see the file comment).
inline report_audit check_report(const io::case_report& report, const report_check_options& options = {}) {
  detail::audit::checker c{report, options, {}};
  for (const io::not_understood& u : report.unknown)
    c.add(0, u.line, "", "not_understood", finding_severity::warning, u.text, "", "not understood: " + u.why);
  std::vector<std::pair<const io::report_table*, const io::table_row*>> rows;
  for (const io::report_table& t : report.results)
    for (const io::table_row& r : t.rows) {
      rows.emplace_back(&t, &r);
      c.row(t, r, static_cast<int>(rows.size()));
    }
  c.duplicates(rows);
  if (rows.empty())
    c.add(0, 1, "", "no_rows", finding_severity::error, "", "",
          "no results row was read: no table with a token/p/s, loss, mem or MFU column (see the lines not understood)");
  std::stable_sort(c.out.findings.begin(), c.out.findings.end(),
                   [](const report_finding& a, const report_finding& b) { return a.line < b.line; });
  return c.out;
}

}  // namespace trainperf
