// Command-line parsing for the trainperf tool: known flags only, --flag value or --flag=value,
// every mistake a one-line usage_error (exit code 2); an unknown flag or word is answered with
// "did you mean ...?" by the rule models and devices use (trainperf::detail::close_names).
#pragma once

#include <charconv>
#include <cmath>
#include <cstdint>
#include <map>
#include <optional>
#include <span>
#include <stdexcept>
#include <string>
#include <string_view>
#include <vector>

#include <fmt/format.h>

#include <trainperf/trainperf.hpp>  // error.hpp's name matching; the umbrella, so the single header serves too

namespace trainperf::cli {

struct usage_error : std::runtime_error {
  using std::runtime_error::runtime_error;
};

struct flag {
  std::string_view name;   // without the leading "--"
  std::string_view value;  // placeholder for the value ("N", "gelu|swiglu"); empty for a switch
  std::string_view help;
};

// "a|b|c": the names of an enum's table (trainperf::named), for a flag's placeholder; kept for the
// program's life, one string per table.
template <class E, std::size_t N>
std::string_view choices_of(const trainperf::named<E> (&table)[N]) {
  static std::map<const void*, std::string> joined;  // by the table's address
  std::string& out = joined[&table];
  if (out.empty())
    for (const std::string_view n : trainperf::detail::names_of(table))
      out += (out.empty() ? "" : "|") + std::string(n);
  return out;
}

class args {
 public:
  // `positional`: the flag a bare argument stands for (check-report's FILE is its --report).
  args(std::span<const std::string> argv, std::vector<flag> known, std::string_view positional = {})
      : known_(std::move(known)) {
    for (std::size_t i = 0; i < argv.size(); ++i) {
      std::string_view a = argv[i];
      if (!positional.empty() && !a.starts_with("--") && !values_.contains(std::string(positional))) {
        values_[std::string(positional)] = std::string(a);
        continue;
      }
      if (!a.starts_with("--") || a.size() == 2)
        throw usage_error("unexpected argument '" + std::string(a) + "'; flags start with --");
      a.remove_prefix(2);
      std::optional<std::string> inline_value;
      if (auto eq = a.find('='); eq != std::string_view::npos) {
        inline_value = std::string(a.substr(eq + 1));
        a = a.substr(0, eq);
      }
      const flag* f = find(a);
      if (f == nullptr) {
        const std::string hint = trainperf::detail::did_you_mean(a, known_, flag_name, "--");
        throw usage_error("unknown flag --" + std::string(a) + (hint.empty() ? "" : "; " + hint) + "; see --help");
      }
      if (values_.contains(std::string(a))) {
        std::string twice = "flag --";
        twice.append(a).append(" given twice");
        if (a == positional) twice.append(" (once as the bare argument)");
        throw usage_error(twice);
      }
      if (f->value.empty()) {
        if (inline_value) throw usage_error("flag --" + std::string(a) + " takes no value");
        values_[std::string(a)] = "";
      } else if (inline_value) {
        values_[std::string(a)] = *inline_value;
      } else {
        if (i + 1 >= argv.size())
          throw usage_error("flag --" + std::string(a) + " needs a value (" + std::string(f->value) + ")");
        values_[std::string(a)] = argv[++i];
      }
    }
  }

  [[nodiscard]] bool has(std::string_view name) const { return values_.contains(std::string(name)); }

  [[nodiscard]] std::optional<std::string> get(std::string_view name) const {
    auto it = values_.find(std::string(name));
    if (it == values_.end()) return std::nullopt;
    return it->second;
  }

  // A positive integer; "70e9"-style values are accepted when they are exact integers.
  [[nodiscard]] std::optional<std::int64_t> get_int(std::string_view name) const {
    const auto v = get(name);
    if (!v) return std::nullopt;
    std::int64_t out = 0;
    const char* end = v->data() + v->size();
    auto [p, ec] = std::from_chars(v->data(), end, out);
    if (ec != std::errc() || p != end) {
      double d = 0;
      auto [q, ec2] = std::from_chars(v->data(), end, d);
      if (ec2 != std::errc() || q != end || d != std::floor(d) || !(std::fabs(d) < 9.2e18))
        throw usage_error("--" + std::string(name) + " expects an integer, got '" + *v + "'");
      out = static_cast<std::int64_t>(d);
    }
    if (out <= 0) throw usage_error("--" + std::string(name) + " expects a positive integer, got '" + *v + "'");
    return out;
  }

  // A finite positive number (or zero, where zero_allowed: a latency, an overhead).
  [[nodiscard]] std::optional<double> get_double(std::string_view name, bool zero_allowed = false) const {
    const auto v = get(name);
    if (!v) return std::nullopt;
    const double d = parse_double(name, *v);
    if (!(d > 0 || (zero_allowed && d == 0)))
      throw usage_error("--" + std::string(name) + " expects a " + (zero_allowed ? "non-negative" : "positive") +
                        " number, got '" + *v + "'");
    return d;
  }

  // A non-negative integer up to `max` (a count where 0 means none); `what` names it in the error.
  [[nodiscard]] std::optional<std::int64_t> get_count(std::string_view name, std::string_view what, double max) const {
    const auto d = get_double(name, /*zero_allowed=*/true);
    if (!d) return std::nullopt;
    if (*d != std::floor(*d) || *d > max) throw usage_error(fmt::format("--{} expects {}, got {}", name, what, *d));
    return static_cast<std::int64_t>(*d);
  }

  // One of a fixed set of words, ignoring ASCII case ("BF16" is bf16); returns the word as listed.
  [[nodiscard]] std::optional<std::string> get_choice(std::string_view name,
                                                      std::span<const std::string_view> choices) const {
    const auto v = get(name);
    if (!v) return std::nullopt;
    std::string list;
    for (auto c : choices) {
      if (trainperf::detail::same_name_ignoring_case(c, *v)) return std::string(c);
      if (!list.empty()) list += '|';
      list += c;
    }
    const std::string hint = trainperf::detail::did_you_mean(*v, choices, [](std::string_view c) { return c; });
    throw usage_error("--" + std::string(name) + " expects " + list + ", got '" + *v + "'" +
                      (hint.empty() ? "" : "; " + hint));
  }

  // One of the names an enum's table gives (trainperf::named), as its value.
  template <class E, std::size_t N>
  [[nodiscard]] std::optional<E> get_named(std::string_view name, const trainperf::named<E> (&table)[N]) const {
    const std::vector<std::string_view> names = trainperf::detail::names_of(table);
    const auto word = get_choice(name, names);
    if (!word) return std::nullopt;
    return trainperf::detail::value_named(table, *word);
  }

  [[nodiscard]] const std::vector<flag>& known() const { return known_; }

 private:
  const flag* find(std::string_view name) const {
    for (const auto& f : known_)
      if (f.name == name) return &f;
    return nullptr;
  }

  static std::string_view flag_name(const flag& f) { return f.name; }

  static double parse_double(std::string_view name, const std::string& v) {
    double d = 0;
    const char* end = v.data() + v.size();
    auto [p, ec] = std::from_chars(v.data(), end, d);
    if (ec != std::errc() || p != end || !std::isfinite(d))
      throw usage_error("--" + std::string(name) + " expects a number, got '" + v + "'");
    return d;
  }

  std::vector<flag> known_;
  std::map<std::string, std::string> values_;
};

// The flag list of a --help: each flag with its value placeholder in a 28-column field, then its
// help (on the next line, in the column, when the flag is wider than the field).
inline std::string flags_help(const std::vector<flag>& flags) {
  std::string out;
  for (const auto& f : flags) {
    std::string lhs = "--";
    lhs.append(f.name);
    if (!f.value.empty()) lhs.append(" ").append(f.value);
    out.append("  ").append(lhs);
    if (lhs.size() < 27)
      out.append(28 - lhs.size(), ' ');
    else
      out.append("\n").append(30, ' ');
    out.append(f.help).append("\n");
  }
  return out;
}

// One line for a configuration error: control characters escaped, and the flag named when the
// message begins with the flag's value (the file readers say "x.json is a directory; ...",
// which becomes "--model x.json is a directory; ...").
inline std::string error_line(const args* a, const config_error& e) {
  const std::string what = e.what();
  const auto value = a != nullptr ? a->get(e.field()) : std::nullopt;
  const bool names_value = value && !value->empty() && what.starts_with(*value);
  return trainperf::detail::one_line((names_value ? "--" + e.field() + " " : std::string()) + what);
}

}  // namespace trainperf::cli
