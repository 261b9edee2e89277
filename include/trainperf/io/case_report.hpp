// trainperf — read a benchmark case report (FlagPerf's markdown write-ups, Chinese or English
// headers) into its parts: the general-metrics table, the batch-size prose, every results
// table with its rows, and each cell read as what its column holds (device and count, parallel
// degrees, hyperparameter overrides, throughput with its arithmetic, memory with its products
// and sums, percentages). What the reader does not understand is listed with its line, never
// guessed. The checks that use all this are in report_check.hpp.
#pragma once

#include <cmath>
#include <cstdint>
#include <cstdlib>
#include <filesystem>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "../report.hpp"
#include "file.hpp"

namespace trainperf::io {

// A number as printed: its value and how many decimals it carries (the digit it was cut to).
struct printed_number {
  double value = 0;
  int decimals = 0;
  std::string text;
  // The unit of the last printed digit: 0.01 for "39.57".
  [[nodiscard]] double ulp() const { return std::pow(10.0, -decimals); }
  // A whole number from 0 to `max` (a count, a degree, a batch size), else nothing: a count
  // past any real cluster or batch is no count, and no product of such counts overflows.
  [[nodiscard]] std::optional<std::int64_t> whole(double max = 1e9) const {
    if (decimals != 0 || !(value >= 0 && value <= max)) return std::nullopt;
    return static_cast<std::int64_t>(value);
  }
};

// What a results column holds, from its header.
enum class report_column {
  device,
  config_name,
  model,
  precision,
  parallel,
  fix_hp,
  throughput,
  loss,
  memory,
  mfu,
  other
};

// One "key=value" of a fix_hp, precision or strategy cell. Chains keep every value:
// "GBS=1024=4M tokens" is {"GBS", {"1024", "4M tokens"}}; a bare word ("fp16") has no values.
struct report_setting {
  std::string key;
  std::vector<std::string> values;
};

// The device cell: "H800四机32卡（4x8）", "A100单机8卡（1x8*80G）", "S4000 1x8", "cpu (1x2)".
struct device_cell {
  std::string name;                      // "H800"
  std::optional<std::int64_t> nodes;     // from "四机" or the "(4x8)"
  std::optional<std::int64_t> per_node;  // from "(4x8)"
  std::optional<std::int64_t> cards;     // from "32卡"
  std::optional<double> capacity;        // from "*80G" (the unit the report uses)
  std::vector<std::string> labels;       // other parenthesized words: "pretrain"
  [[nodiscard]] std::optional<std::int64_t> total() const {
    if (cards) return cards;
    if (nodes && per_node) return *nodes * *per_node;
    return std::nullopt;
  }
};

// Parallel degrees: "TP8PP4DP1", Paddle's config names "TP2PP4SH1SP1" (SH: sharding stage,
// SP: sharding degree), or a strategy list "sharding_degree=8, tensor_parallel_degree=2".
struct parallel_cell {
  std::optional<std::int64_t> tp, pp, dp, cp, sharding_stage, sharding_degree;
};

// Throughput: "253.61", or "17.23 * 2048 / 8 = 4410 tokens/s" (the terms and operators kept).
struct throughput_cell {
  printed_number value;
  std::vector<printed_number> terms;  // left of '=', empty when the cell is a plain number
  std::vector<char> ops;              // between the terms: '*' or '/'
};

// Memory: "77/80" (used / capacity), "66.27 * 8 GB" (each of 8 devices), "46.77*2 + 36.59*2 GB".
struct memory_cell {
  std::vector<std::pair<printed_number, std::int64_t>> groups;  // (used per device, devices)
  std::optional<printed_number> capacity;                       // after the slash
  std::optional<printed_number> sum;                            // "... = 282.46 GB": the total claimed
  std::string unit;                                             // "GB", "GiB", "G" or "" as printed
};

struct table_row {
  int line = 0;
  std::vector<std::string> cells;
  std::string group;  // the label row above it ("GPT3-6.7B"), if any
};

struct report_table {
  int line = 0;         // of the header
  std::string heading;  // the last heading or bullet before it
  std::vector<std::string> header;
  std::vector<report_column> columns;
  std::vector<table_row> rows;
  [[nodiscard]] int find(report_column c) const {
    for (std::size_t i = 0; i < columns.size(); ++i)
      if (columns[i] == c) return static_cast<int>(i);
    return -1;
  }
};

// One row of the general-metrics table ("指标名称 | 指标值 | 特殊说明" / "metric | value | note").
struct general_metric {
  int line = 0;
  std::string name, value, note;
};

struct not_understood {
  int line = 0;
  std::string text;
  std::string why;
};

// The batch-size prose: "LBS ... 在本case中默认为1", "pretrain阶段为32，finetune阶段为16",
// "data_parallel_size=world_size/TPsize/PPsize".
struct batch_prose {
  std::optional<std::int64_t> lbs, mpe, gas;
  std::vector<std::pair<std::string, std::int64_t>> lbs_by_stage, mpe_by_stage, gas_by_stage;
  enum class dp_rule { unstated, world, world_over_tp_pp } dp = dp_rule::unstated;
};

struct case_report {
  std::vector<general_metric> general;
  std::string model, dataset, precision, device;
  std::string memory_unit;  // "GiB" or "GB" as the report states it; "" when it does not
  int memory_unit_line = 0;
  std::string mfu_definition;                    // the MFU row's note ("参见PaLM论文定义")
  std::optional<double> stated_flops_per_token;  // "FLOPs per token X" in the MFU row
  std::optional<double> stated_peak_flops;       // "peak of X FLOP/s" in the MFU row
  batch_prose batch;
  std::string prose;  // every line outside tables and code, for what a check looks up in it
  std::vector<report_table> results;
  std::vector<not_understood> unknown;
};

namespace detail {

inline std::string_view trim(std::string_view v) {
  while (!v.empty() && (v.front() == ' ' || v.front() == '\t' || v.front() == '\r')) v.remove_prefix(1);
  while (!v.empty() && (v.back() == ' ' || v.back() == '\t' || v.back() == '\r')) v.remove_suffix(1);
  return v;
}
inline bool is_digit(char c) { return c >= '0' && c <= '9'; }
inline bool is_alpha(char c) { return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z'); }
inline char lower(char c) { return c >= 'A' && c <= 'Z' ? static_cast<char>(c - 'A' + 'a') : c; }
inline std::string lowered(std::string_view s) {
  std::string out(s);
  for (char& c : out) c = lower(c);
  return out;
}
inline bool contains(std::string_view s, std::string_view what) { return s.find(what) != std::string_view::npos; }
inline void replace_all(std::string& s, std::string_view from, std::string_view to) {
  for (std::size_t at = s.find(from); at != std::string::npos; at = s.find(from, at + to.size()))
    s.replace(at, from.size(), to);
}
// Full-width brackets, the multiplication sign and markdown escapes as ASCII; bold markers gone.
inline std::string ascii_punctuation(std::string_view s) {
  std::string out(s);
  replace_all(out, "\xEF\xBC\x88", "(");  // （
  replace_all(out, "\xEF\xBC\x89", ")");  // ）
  replace_all(out, "\xEF\xBC\x8C", ",");  // ，
  replace_all(out, "\xC3\x97", "x");      // ×
  replace_all(out, "\\*", "*");
  replace_all(out, "\\_", "_");
  replace_all(out, "**", "");
  return out;
}

// A decimal number at the front of `s` ("12", "4.5", "-3"); advances `at` past it.
inline std::optional<printed_number> number_at(std::string_view s, std::size_t& at) {
  std::size_t i = at;
  const bool negative = i < s.size() && s[i] == '-';
  if (negative) ++i;
  int digits = 0, decimals = 0;
  bool dot = false;
  for (; i < s.size() && digits < 40; ++i) {
    if (is_digit(s[i])) {
      ++digits;
      if (dot) ++decimals;
    } else if (s[i] == '.' && !dot && i + 1 < s.size() && is_digit(s[i + 1])) {
      dot = true;
    } else {
      break;
    }
  }
  if (digits == 0 || digits >= 40) return std::nullopt;
  const std::string text(s.substr(at, i - at));
  printed_number n{std::strtod(text.c_str(), nullptr), decimals, text};
  at = i;
  return n;
}

inline void skip_spaces(std::string_view s, std::size_t& at) {
  while (at < s.size() && (s[at] == ' ' || s[at] == '\t')) ++at;
}

// Chinese numerals a device cell uses for node counts (单机 = one machine, 四机 = four).
inline std::optional<std::int64_t> chinese_digit(std::string_view s, std::size_t at, std::size_t& len) {
  static constexpr std::pair<std::string_view, int> digits[] = {
      {"\xE5\x8D\x95", 1}, {"\xE4\xB8\x80", 1}, {"\xE4\xB8\xA4", 2}, {"\xE4\xBA\x8C", 2}, {"\xE4\xB8\x89", 3},
      {"\xE5\x9B\x9B", 4}, {"\xE4\xBA\x94", 5}, {"\xE5\x85\xAD", 6}, {"\xE4\xB8\x83", 7}, {"\xE5\x85\xAB", 8},
      {"\xE4\xB9\x9D", 9}, {"\xE5\x8D\x81", 10}};  // 单 一 两 二 三 四 五 六 七 八 九 十
  for (const auto& [text, value] : digits)
    if (s.substr(at, text.size()) == text) {
      len = text.size();
      return value;
    }
  return std::nullopt;
}

constexpr std::string_view machine = "\xE6\x9C\xBA";  // 机
constexpr std::string_view card = "\xE5\x8D\xA1";     // 卡

// "4x8", "1x8*80G" inside brackets or alone.
inline bool read_count_product(std::string_view s, device_cell& d) {
  std::size_t at = 0;
  skip_spaces(s, at);
  const auto a = number_at(s, at);
  if (!a || !a->whole(1e6) || at >= s.size() || (s[at] != 'x' && s[at] != 'X' && s[at] != '*')) return false;
  ++at;
  const auto b = number_at(s, at);
  if (!b || !b->whole(1e6)) return false;
  std::optional<double> capacity;
  skip_spaces(s, at);
  if (at < s.size() && s[at] == '*') {
    ++at;
    const auto c = number_at(s, at);
    if (!c) return false;
    capacity = c->value;
    while (at < s.size() && is_alpha(s[at])) ++at;  // "G", "GB"
  }
  skip_spaces(s, at);
  if (at != s.size()) return false;
  d.nodes = a->whole(1e6);
  d.per_node = b->whole(1e6);
  if (capacity) d.capacity = capacity;
  return true;
}

inline bool is_dashes(std::string_view s) {
  s = trim(s);
  if (s.empty()) return false;
  for (char c : s)
    if (c != '-' && c != ':') return false;
  return true;
}

}  // namespace detail

// ---- cells --------------------------------------------------------------------------------

// "3.20" -> 3.20 with 2 decimals; "-1" too (a negative is a finding, not a parse failure);
// anything with other characters ("44.2/48.0", "5.27%") -> nullopt.
inline std::optional<printed_number> parse_number(std::string_view s) {
  s = detail::trim(s);
  std::size_t at = 0;
  auto n = detail::number_at(s, at);
  if (!n || at != s.size()) return std::nullopt;
  return n;
}

// "33.6%" -> 33.6 (percent, as printed).
inline std::optional<printed_number> parse_percent(std::string_view s) {
  s = detail::trim(s);
  if (s.empty() || s.back() != '%') return std::nullopt;
  return parse_number(s.substr(0, s.size() - 1));
}

inline bool is_blank(std::string_view s) {
  s = detail::trim(s);
  return s.empty() || s == "/" || s == "-" || s == "\xE2\x80\x94";  // "—"
}

inline std::optional<device_cell> parse_device_cell(std::string_view raw) {
  const std::string text = detail::ascii_punctuation(detail::trim(raw));
  const std::string_view s = text;
  device_cell d;
  std::size_t at = 0;
  while (at < s.size() &&
         (detail::is_alpha(s[at]) || detail::is_digit(s[at]) || s[at] == '-' || s[at] == '.' || s[at] == '_'))
    ++at;
  d.name = std::string(s.substr(0, at));
  if (d.name.empty()) return std::nullopt;
  while (at < s.size()) {
    detail::skip_spaces(s, at);
    if (at >= s.size()) break;
    if (s[at] == '(') {
      const std::size_t close = s.find(')', at);
      if (close == std::string_view::npos) return std::nullopt;
      const std::string_view inside = detail::trim(s.substr(at + 1, close - at - 1));
      if (!detail::read_count_product(inside, d) && !inside.empty()) d.labels.emplace_back(inside);
      at = close + 1;
      continue;
    }
    std::size_t len = 0;
    std::optional<std::int64_t> count;
    if (const auto c = detail::chinese_digit(s, at, len)) {
      count = c;
      at += len;
    } else if (detail::is_digit(s[at])) {
      std::size_t end = at;
      while (end < s.size() && (detail::is_digit(s[end]) || s[end] == 'x' || s[end] == 'X' || s[end] == '*' ||
                                s[end] == '.' || detail::is_alpha(s[end])))
        ++end;
      if (detail::read_count_product(s.substr(at, end - at), d)) {
        at = end;
        continue;
      }
      const auto n = detail::number_at(s, at);
      if (!n || !n->whole(1e6)) return std::nullopt;
      count = n->whole(1e6);
    } else {
      return std::nullopt;
    }
    if (s.substr(at, detail::machine.size()) == detail::machine) {
      d.nodes = count;
      at += detail::machine.size();
    } else if (s.substr(at, detail::card.size()) == detail::card) {
      d.cards = count;
      at += detail::card.size();
    } else {
      return std::nullopt;
    }
  }
  if (!d.total()) return std::nullopt;
  return d;
}

// The settings of a fix_hp, precision or strategy cell (see report_setting). Commas and
// brackets separate; within a piece, "MPE=512 LBS=12" is two settings and "GBS=1024=4M
// tokens" one chain; quotes around values are dropped.
inline std::vector<report_setting> parse_settings(std::string_view raw) {
  std::string text = detail::ascii_punctuation(raw);
  for (char& c : text)
    if (c == '(' || c == ')' || c == ';') c = ',';
  std::vector<report_setting> out;
  std::size_t start = 0;
  const auto unquote = [](std::string_view v) {
    v = detail::trim(v);
    if (v.size() >= 2 && (v.front() == '"' || v.front() == '\'') && v.back() == v.front())
      v = v.substr(1, v.size() - 2);
    return std::string(v);
  };
  while (start <= text.size()) {
    std::size_t comma = text.find(',', start);
    if (comma == std::string::npos) comma = text.size();
    const std::string_view piece = detail::trim(std::string_view(text).substr(start, comma - start));
    start = comma + 1;
    if (piece.empty() || is_blank(piece)) continue;
    // Split at '=': segments[0] is the first key, each later segment a value, possibly ending in
    // the next key ("512 LBS").
    std::vector<std::string_view> segments;
    std::size_t s0 = 0;
    for (std::size_t i = 0; i <= piece.size(); ++i)
      if (i == piece.size() || piece[i] == '=') {
        segments.push_back(detail::trim(piece.substr(s0, i - s0)));
        s0 = i + 1;
      }
    if (segments.size() == 1) {  // words without '=': each is a bare setting
      std::size_t w = 0;
      while (w < piece.size()) {
        while (w < piece.size() && piece[w] == ' ') ++w;
        std::size_t e = w;
        while (e < piece.size() && piece[e] != ' ') ++e;
        if (e > w) out.push_back({unquote(piece.substr(w, e - w)), {}});
        w = e;
      }
      continue;
    }
    report_setting current{unquote(segments[0]), {}};
    for (std::size_t i = 1; i < segments.size(); ++i) {
      std::string_view seg = segments[i];
      const std::size_t last_space = seg.rfind(' ');
      const bool more = i + 1 < segments.size();
      if (more && last_space != std::string_view::npos && detail::is_alpha(seg[last_space + 1])) {
        current.values.push_back(unquote(seg.substr(0, last_space)));
        out.push_back(std::move(current));
        current = {unquote(seg.substr(last_space + 1)), {}};
      } else {
        current.values.push_back(unquote(seg));
      }
    }
    out.push_back(std::move(current));
  }
  return out;
}

// A count claim such as "4M tokens" or "2M": the value and its printed digits, in units of
// `scale` (M: either 1e6 or 2^20 reads the same printed "4M"; the caller allows both).
struct count_claim {
  printed_number value;
  char suffix = 0;  // 'K', 'M', 'B' or 0
  bool tokens = false;
};
inline std::optional<count_claim> parse_count_claim(std::string_view s) {
  s = detail::trim(s);
  std::size_t at = 0;
  auto n = detail::number_at(s, at);
  if (!n) return std::nullopt;
  count_claim c{*n, 0, false};
  if (at < s.size() && (s[at] == 'K' || s[at] == 'k' || s[at] == 'M' || s[at] == 'B'))
    c.suffix = s[at++] == 'k' ? 'K' : s[at - 1];
  const std::string rest = detail::lowered(detail::trim(s.substr(at)));
  if (rest == "tokens" || rest == "token") {
    c.tokens = true;
  } else if (!rest.empty() && rest != "sequences" && rest != "samples") {
    return std::nullopt;
  }
  return c;
}

inline std::optional<parallel_cell> parse_parallel(std::string_view raw) {
  const std::string text = detail::ascii_punctuation(raw);
  parallel_cell p;
  bool any = false;
  // Letter codes followed by a number: TP8PP4DP1, TP2PP4SH1SP1 (inside a config file name too).
  const std::string up = [&] {
    std::string u(text);
    for (char& c : u)
      if (c >= 'a' && c <= 'z') c = static_cast<char>(c - 'a' + 'A');
    return u;
  }();
  for (std::size_t i = 0; i + 2 < up.size(); ++i) {
    if (i > 0 && detail::is_alpha(up[i - 1])) continue;  // a code starts a word or follows a code's digits
    const std::string_view code = std::string_view(up).substr(i, 2);
    if (!detail::is_digit(up[i + 2])) continue;
    std::size_t at = i + 2;
    const auto n = detail::number_at(up, at);
    if (!n || !n->whole(1e6)) continue;
    const std::int64_t v = *n->whole(1e6);
    if (code == "TP")
      p.tp = v;
    else if (code == "PP")
      p.pp = v;
    else if (code == "DP")
      p.dp = v;
    else if (code == "CP")
      p.cp = v;
    else if (code == "SH")
      p.sharding_stage = v;
    else if (code == "SP")
      p.sharding_degree = v;
    else
      continue;
    any = true;
    i = at - 1;
  }
  if (any) return p;
  // A strategy list.
  for (const report_setting& s : parse_settings(text)) {
    if (s.values.size() != 1) continue;
    const std::string key = detail::lowered(s.key);
    const auto n = parse_number(s.values[0]);
    const std::string v = detail::lowered(s.values[0]);
    if (key == "sharding" && v.rfind("stage", 0) == 0) {
      if (const auto st = parse_number(v.substr(5)); st && st->whole(3)) {
        p.sharding_stage = st->whole(3);
        any = true;
      }
      continue;
    }
    if (!n || !n->whole(1e6)) continue;
    const std::int64_t value = *n->whole(1e6);
    if (key == "tensor_parallel_degree" || key == "tensor_model_parallel_size" || key == "tp") {
      p.tp = value;
    } else if (key == "pipline_parallel_degree" || key == "pipeline_parallel_degree" ||
               key == "pipeline_model_parallel_size" || key == "pp") {
      p.pp = value;
    } else if (key == "sharding_degree") {
      p.sharding_degree = value;
    } else if (key == "data_parallel_degree" || key == "dp") {
      p.dp = value;
    } else {
      continue;
    }
    any = true;
  }
  if (any) return p;
  return std::nullopt;
}

inline std::optional<throughput_cell> parse_throughput(std::string_view raw) {
  std::string text = detail::ascii_punctuation(detail::trim(raw));
  for (std::string_view unit : {"tokens/s", "token/s", "tokens/p/s", "token/p/s"}) {
    const std::size_t u = text.rfind(unit);
    if (u != std::string::npos && detail::trim(std::string_view(text).substr(u + unit.size())).empty())
      text = std::string(detail::trim(std::string_view(text).substr(0, u)));
  }
  const std::size_t eq = text.find('=');
  throughput_cell t;
  if (eq == std::string::npos) {
    const auto n = parse_number(text);
    if (!n) return std::nullopt;
    t.value = *n;
    return t;
  }
  const auto v = parse_number(std::string_view(text).substr(eq + 1));
  if (!v) return std::nullopt;
  t.value = *v;
  const std::string_view lhs = std::string_view(text).substr(0, eq);
  std::size_t at = 0;
  while (true) {
    detail::skip_spaces(lhs, at);
    const auto n = detail::number_at(lhs, at);
    if (!n) return std::nullopt;
    t.terms.push_back(*n);
    detail::skip_spaces(lhs, at);
    if (at == lhs.size()) break;
    if (lhs[at] != '*' && lhs[at] != '/' && lhs[at] != 'x') return std::nullopt;
    t.ops.push_back(lhs[at] == '/' ? '/' : '*');
    ++at;
  }
  return t;
}

inline std::optional<memory_cell> parse_memory(std::string_view raw) {
  std::string text = detail::ascii_punctuation(detail::trim(raw));
  memory_cell m;
  for (std::string_view unit : {"GiB", "GB", "G"}) {
    if (text.size() >= unit.size() && text.compare(text.size() - unit.size(), unit.size(), unit) == 0) {
      m.unit = std::string(unit);
      text = std::string(detail::trim(std::string_view(text).substr(0, text.size() - unit.size())));
      break;
    }
  }
  if (const std::size_t eq = text.find('='); eq != std::string::npos) {  // "a*2 + b*2 = total"
    m.sum = parse_number(std::string_view(text).substr(eq + 1));
    if (!m.sum) return std::nullopt;
    text = std::string(detail::trim(std::string_view(text).substr(0, eq)));
  }
  const std::string_view s = text;
  if (const std::size_t slash = s.find('/'); slash != std::string_view::npos) {
    if (m.sum) return std::nullopt;
    const auto used = parse_number(s.substr(0, slash)), total = parse_number(s.substr(slash + 1));
    if (!used || !total) return std::nullopt;
    m.groups.push_back({*used, 1});
    m.capacity = *total;
    return m;
  }
  // Terms "v" or "v * n", joined by '+'.
  std::size_t at = 0;
  while (true) {
    detail::skip_spaces(s, at);
    const auto v = detail::number_at(s, at);
    if (!v) return std::nullopt;
    std::int64_t count = 1;
    detail::skip_spaces(s, at);
    if (at < s.size() && (s[at] == '*' || s[at] == 'x')) {
      ++at;
      detail::skip_spaces(s, at);
      const auto n = detail::number_at(s, at);
      if (!n || !n->whole(1e6) || n->value < 1) return std::nullopt;
      count = *n->whole(1e6);
      detail::skip_spaces(s, at);
    }
    m.groups.push_back({*v, count});
    if (at == s.size()) break;
    if (s[at] != '+') return std::nullopt;
    ++at;
  }
  return m;
}

// What a results header means. Seed 004 has both "配置" (the device) and "config" (the config
// file's name); elsewhere "config" is the device, as in report.hpp's own tables.
inline report_column classify_column(std::string_view raw, bool table_has_peizhi) {
  const std::string h = detail::lowered(detail::trim(detail::ascii_punctuation(raw)));
  const auto starts = [&](std::string_view p) { return h.rfind(p, 0) == 0; };
  if (h == "\xE9\x85\x8D\xE7\xBD\xAE" || h == "device" || h == "hardware") return report_column::device;  // 配置
  if (h == "config") return table_has_peizhi ? report_column::config_name : report_column::device;
  if (h == "model" || h == "\xE6\xA8\xA1\xE5\x9E\x8B") return report_column::model;  // 模型
  if (starts("precision") || detail::contains(h, "\xE7\xB2\xBE\xE5\xBA\xA6")) return report_column::precision;  // 精度
  if (starts("parallel") || starts("strategy") || detail::contains(h, "\xE5\xB9\xB6\xE8\xA1\x8C"))  // 并行
    return report_column::parallel;
  if (h == "fix_hp") return report_column::fix_hp;
  if (h == "token/p/s" || h == "tokens/p/s" || starts("throughput") ||
      detail::contains(h, "\xE5\x90\x9E\xE5\x90\x90"))  // 吞吐
    return report_column::throughput;
  if (detail::contains(h, "loss")) return report_column::loss;  // "loss", "final loss"
  if (starts("mem") || detail::contains(h, "\xE6\x98\xBE\xE5\xAD\x98")) return report_column::memory;  // 显存
  if (starts("mfu")) return report_column::mfu;  // "MFU", "MFU (%)"
  return report_column::other;
}

constexpr std::string_view to_string(report_column c) {
  switch (c) {
    case report_column::device:
      return "config";
    case report_column::config_name:
      return "config file";
    case report_column::model:
      return "model";
    case report_column::precision:
      return "precision";
    case report_column::parallel:
      return "parallel";
    case report_column::fix_hp:
      return "fix_hp";
    case report_column::throughput:
      return "token/p/s";
    case report_column::loss:
      return "loss";
    case report_column::memory:
      return "mem";
    case report_column::mfu:
      return "MFU";
    case report_column::other:
      return "other";
  }
  return "?";
}

// ---- the document ---------------------------------------------------------------------------

namespace detail {

// "在本case中默认为44" / "default 44" / "defaults to 44" in a prose line.
inline std::optional<std::int64_t> default_value(std::string_view line) {
  for (std::string_view key :
       {"\xE9\xBB\x98\xE8\xAE\xA4\xE4\xB8\xBA", "defaults to", "default is", "default"}) {  // 默认为
    const std::size_t at = line.find(key);
    if (at == std::string_view::npos) continue;
    std::size_t i = at + key.size();
    skip_spaces(line, i);
    if (i < line.size() && (line[i] == ':' || line[i] == '=')) ++i;
    skip_spaces(line, i);
    const auto n = number_at(line, i);
    if (n && n->whole()) return n->whole();
  }
  return std::nullopt;
}

// "pretrain阶段为32，finetune阶段为16" / "pretrain stage 32".
inline std::vector<std::pair<std::string, std::int64_t>> stage_values(std::string_view line) {
  std::vector<std::pair<std::string, std::int64_t>> out;
  for (std::string_view key : {"\xE9\x98\xB6\xE6\xAE\xB5\xE4\xB8\xBA", " stage "}) {  // 阶段为
    for (std::size_t at = line.find(key); at != std::string_view::npos; at = line.find(key, at + key.size())) {
      std::size_t w = at;
      while (w > 0 && (is_alpha(line[w - 1]) || line[w - 1] == '_')) --w;
      std::size_t i = at + key.size();
      skip_spaces(line, i);
      const auto n = number_at(line, i);
      if (w < at && n && n->whole()) out.emplace_back(lowered(line.substr(w, at - w)), *n->whole());
    }
  }
  return out;
}

inline void read_batch_line(std::string_view line, batch_prose& b) {
  const std::string l = lowered(line);
  const auto fill = [&](std::optional<std::int64_t>& v, std::vector<std::pair<std::string, std::int64_t>>& staged) {
    auto st = stage_values(line);
    if (!st.empty()) {
      staged = std::move(st);
    } else if (const auto d = default_value(line)) {
      v = d;
    }
  };
  // The numbered prose lines name one quantity each: LBS, MPE, GAS, then the GBS/DP rule.
  if (contains(l, "global_batchsize") || contains(l, "data_parallel_size")) {
    const std::string compact = [&] {
      std::string c;
      for (char ch : l)
        if (ch != ' ') c += ch;
      return c;
    }();
    if (contains(compact, "data_parallel_size=world_size/tpsize/ppsize"))
      b.dp = batch_prose::dp_rule::world_over_tp_pp;
    else if (contains(compact, "data_parallel_size=world_size"))
      b.dp = batch_prose::dp_rule::world;
  } else if (contains(line, "LBS") || contains(l, "local_batchsize")) {
    fill(b.lbs, b.lbs_by_stage);
  } else if (contains(line, "MPE") || contains(l, "seqlength")) {
    fill(b.mpe, b.mpe_by_stage);
  } else if (contains(line, "GAS") || contains(l, "gradient_accumulate")) {
    fill(b.gas, b.gas_by_stage);
  }
}

// "model FLOPs per token 1.23e+08" and "peak of 1.5e+11 FLOP/s" in the MFU row (reports this
// library writes state their convention so).
inline std::optional<double> stated_figure(std::string_view s, std::string_view before, std::string_view after) {
  const std::size_t at = s.find(before);
  if (at == std::string_view::npos) return std::nullopt;
  const std::string rest(trim(s.substr(at + before.size())));
  char* end = nullptr;
  const double v = std::strtod(rest.c_str(), &end);
  if (end == rest.c_str() || !std::isfinite(v) || v <= 0) return std::nullopt;
  if (!after.empty() && !std::string_view(end).starts_with(after)) return std::nullopt;
  return v;
}

inline void read_general(case_report& r, const general_metric& g) {
  const std::string n = lowered(g.name), v = g.value;
  const bool placeholder = contains(v, "\xE8\xA7\x81") || contains(lowered(v), "see ");  // "见“性能指标”"
  if (n == "\xE6\xA8\xA1\xE5\x9E\x8B" || n == "model") {                                 // 模型
    r.model = v;
  } else if (contains(n, "\xE6\x95\xB0\xE6\x8D\xAE\xE9\x9B\x86") || n == "dataset") {  // 数据集
    r.dataset = v;
  } else if (contains(n, "\xE7\xB2\xBE\xE5\xBA\xA6") || n == "precision") {  // 精度
    if (!placeholder) r.precision = v;
  } else if (contains(n, "\xE8\xAE\xBE\xE5\xA4\x87\xE7\xAE\x80\xE7\xA7\xB0") || n == "device") {  // 设备简称
    r.device = v;
  } else if (contains(n, "\xE5\xAD\x98\xE5\x82\xA8") || n == "memory" || n == "mem") {  // 存储
    const std::string all = v + " " + g.note;
    if (contains(all, "GiB")) {
      r.memory_unit = "GiB";
    } else if (contains(all, "GB")) {
      r.memory_unit = "GB";
    }
    if (!r.memory_unit.empty()) r.memory_unit_line = g.line;
  } else if (contains(n, "\xE4\xBD\xBF\xE7\x94\xA8\xE7\x8E\x87") || n == "mfu") {  // 使用率
    r.mfu_definition = g.note;
    r.stated_flops_per_token = stated_figure(g.note, "FLOPs per token", "");
    r.stated_peak_flops = stated_figure(g.note, "peak of", " FLOP/s");
  }
}

}  // namespace detail

// Reads a case report's markdown (UTF-8). Never throws on content: whatever is not understood
// is listed in `unknown` with its line.
inline case_report parse_case_report(std::string_view text) {
  case_report r;
  std::vector<std::string_view> lines;
  for (std::size_t at = 0; at <= text.size();) {
    std::size_t nl = text.find('\n', at);
    if (nl == std::string_view::npos) nl = text.size();
    lines.push_back(text.substr(at, nl - at));
    at = nl + 1;
  }
  std::string heading;
  bool in_code = false;
  for (std::size_t i = 0; i < lines.size(); ++i) {
    const std::string_view line = detail::trim(lines[i]);
    const int number = static_cast<int>(i) + 1;
    if (line.starts_with("```")) {
      in_code = !in_code;
      continue;
    }
    if (in_code || line.empty()) continue;
    if (line.front() != '|') {
      // "---|---": the separator of a table written without leading pipes, which this reader
      // does not take (GitHub does): say so rather than read its rows as prose.
      if (line.find('|') != std::string_view::npos && line.find("--") != std::string_view::npos &&
          line.find_first_not_of("-:| \t") == std::string_view::npos)
        r.unknown.push_back({number, std::string(line), "a table without the leading '|' this reader needs"});
      if (line.front() == '#' || line.starts_with("* ") || line.starts_with("- ")) {
        std::string_view h = line;
        while (!h.empty() && (h.front() == '#' || h.front() == '*' || h.front() == '-' || h.front() == ' '))
          h.remove_prefix(1);
        heading = std::string(h);
      }
      detail::read_batch_line(line, r.batch);
      r.prose.append(line).push_back('\n');
      continue;
    }
    // A table: its lines up to the first line that is not one.
    std::size_t end = i;
    while (end < lines.size() && !detail::trim(lines[end]).empty() && detail::trim(lines[end]).front() == '|') ++end;
    const auto header = split_markdown_row(line);
    const bool separated = i + 1 < end && [&] {
      for (const auto& c : split_markdown_row(lines[i + 1]))
        if (!detail::is_dashes(c)) return false;
      return true;
    }();
    if (!separated) {
      r.unknown.push_back({number, std::string(line), "a table line without a header separator (|---|) below it"});
      i = end - 1;
      continue;
    }
    const std::string first = detail::lowered(header.empty() ? std::string() : header[0]);
    if (detail::contains(first, "\xE6\x8C\x87\xE6\xA0\x87\xE5\x90\x8D\xE7\xA7\xB0") || first == "metric") {  // 指标名称
      for (std::size_t k = i + 2; k < end; ++k) {
        auto cells = split_markdown_row(lines[k]);
        cells.resize(3);
        general_metric g{static_cast<int>(k) + 1, detail::ascii_punctuation(cells[0]),
                         detail::ascii_punctuation(cells[1]), detail::ascii_punctuation(cells[2])};
        detail::read_general(r, g);
        r.general.push_back(std::move(g));
      }
      i = end - 1;
      continue;
    }
    report_table t;
    t.line = number;
    t.heading = heading;
    t.header = header;
    bool peizhi = false;
    for (const auto& h : header) peizhi = peizhi || detail::trim(h) == "\xE9\x85\x8D\xE7\xBD\xAE";
    bool metrics = false;
    for (const auto& h : header) {
      t.columns.push_back(classify_column(h, peizhi));
      const report_column c = t.columns.back();
      metrics = metrics || c == report_column::throughput || c == report_column::loss || c == report_column::memory ||
                c == report_column::mfu;
    }
    if (!metrics) {
      r.unknown.push_back({number, std::string(line), "a table with no token/p/s, loss, mem or MFU column"});
      i = end - 1;
      continue;
    }
    std::string group;
    for (std::size_t k = i + 2; k < end; ++k) {
      auto cells = split_markdown_row(lines[k]);
      const int at = static_cast<int>(k) + 1;
      if (cells.size() != header.size()) {
        r.unknown.push_back(
            {at, std::string(detail::trim(lines[k])),
             "the row has " + std::to_string(cells.size()) + " cells and the header " + std::to_string(header.size())});
        continue;
      }
      bool label = cells.size() > 1 && !is_blank(cells[0]);
      for (std::size_t c = 1; c < cells.size() && label; ++c) label = detail::is_dashes(cells[c]);
      if (label) {  // "| GPT3-6.7B | ------- | ... |": the rows below belong to it
        group = cells[0];
        continue;
      }
      t.rows.push_back({at, std::move(cells), group});
    }
    r.results.push_back(std::move(t));
    i = end - 1;
  }
  return r;
}

// Reads the case report at `path` (at most 4 MiB); `field` names the flag that gave it.
inline case_report read_case_report(const std::filesystem::path& path, std::string_view field = "report") {
  return parse_case_report(read_file(path, std::uintmax_t{4} << 20, field, "a case report in markdown"));
}

}  // namespace trainperf::io
