// trainperf — the JSON reading every JSON reader in io/ shares: one-line quoting of values,
// typed fields named in errors, and a parser that refuses duplicate keys and deep nesting.
// Optional: needs nlohmann_json (Debian: nlohmann-json3-dev).
#pragma once

#include <cmath>
#include <cstdint>
#include <limits>
#include <map>
#include <optional>
#include <set>
#include <span>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include <nlohmann/json.hpp>

#include "../error.hpp"

namespace trainperf::io {

namespace detail {

using nlohmann::json;

// A string for a one-line message: JSON-quoted (newlines and quotes escaped), cut to 40 bytes.
inline std::string json_quoted(std::string_view text) {
  constexpr std::size_t limit = 40;
  const bool cut = text.size() > limit;
  // The replacing error handler keeps dump() from throwing on invalid UTF-8 (a cut character).
  return json(std::string(text.substr(0, limit))).dump(-1, ' ', false, json::error_handler_t::replace) +
         (cut ? "..." : "");
}

// A JSON value for a one-line message: scalars as written, containers by their kind only (a
// deeply nested or huge value is neither dumped recursively nor printed whole).
inline std::string describe(const json& v) {
  if (v.is_object()) return "an object";
  if (v.is_array()) return "an array";
  if (v.is_string()) return json_quoted(v.get_ref<const std::string&>());
  return v.dump();
}

// Reads fields of one JSON object, naming `prefix + key` (e.g. "text_config.hidden_size")
// and the file in every error.
class fields {
 public:
  using defaults_map = std::map<std::string, std::int64_t, std::less<>>;
  // `defaults`: values transformers fills in for absent keys (a nested config's class
  // defaults); absent keys without one are errors.
  fields(const json& obj, std::string origin, std::string prefix = "", defaults_map defaults = {})
      : obj_(obj), origin_(std::move(origin)), prefix_(std::move(prefix)), defaults_(std::move(defaults)) {}

  [[nodiscard]] std::string name(std::string_view key) const { return prefix_ + std::string(key); }

  [[nodiscard]] bool has(std::string_view key) const {
    auto it = obj_.find(std::string(key));
    return it != obj_.end() && !it->is_null();
  }

  // Absent, null, or an empty array or object.
  [[nodiscard]] bool empty(std::string_view key) const { return !has(key) || obj_.at(std::string(key)).empty(); }

  [[noreturn]] void fail(std::string_view key, const std::string& what) const {
    throw config_error(name(key), origin_ + ": " + what);
  }

  // Refuses a key that is none of `known` (nor of `also`), listing them all.
  void only(std::span<const std::string_view> known, std::span<const std::string_view> also = {}) const {
    for (const auto& [key, value] : obj_.items()) {
      bool ok = false;
      for (auto k : known) ok |= key == k;
      for (auto k : also) ok |= key == k;
      if (ok) continue;
      std::string list;
      for (auto k : known) list += (list.empty() ? "" : ", ") + std::string(k);
      for (auto k : also) list += ", " + std::string(k);
      fail(key, "unknown field \"" + name(key) + "\"; known: " + list);
    }
  }

  // Refuses an object without each of `keys` (absent or null).
  void required(std::span<const std::string_view> keys) const {
    for (auto k : keys)
      if (!has(k)) fail(k, "missing required field \"" + name(k) + "\"");
  }

  // An integer: a JSON integer, or a float with an integral value (4096.0). Values beyond
  // int64 (18446744073709551615, which nlohmann stores unsigned) are refused, not wrapped.
  [[nodiscard]] std::optional<std::int64_t> opt_int(std::string_view key) const {
    if (!has(key)) return std::nullopt;
    const json& v = obj_.at(std::string(key));
    if (v.is_number_unsigned()) {
      if (v.get<std::uint64_t>() > static_cast<std::uint64_t>(std::numeric_limits<std::int64_t>::max()))
        fail(key, "field \"" + name(key) + "\" = " + v.dump() + " is out of range");
      return static_cast<std::int64_t>(v.get<std::uint64_t>());
    }
    if (v.is_number_integer()) return v.get<std::int64_t>();
    if (v.is_number_float()) {
      const double d = v.get<double>();
      if (std::isfinite(d) && d == std::floor(d)) {
        if (std::fabs(d) < 9e15) return static_cast<std::int64_t>(d);
        fail(key, "field \"" + name(key) + "\" = " + v.dump() + " is out of range");
      }
    }
    fail(key, "field \"" + name(key) + "\" must be an integer, got " + describe(v));
  }

  [[nodiscard]] std::int64_t req_int(std::string_view key) const {
    if (auto v = opt_int(key)) return *v;
    if (auto d = defaults_.find(key); d != defaults_.end()) return d->second;
    fail(key, "missing required field \"" + name(key) + "\"");
  }

  // A size: an integer in 1..2^31 (trainperf's largest dimension), refused under the file's
  // own name. `fix` says what to do instead ("remove it for ...").
  [[nodiscard]] std::int64_t size_checked(std::string_view key, std::int64_t v, std::string_view fix = "") const {
    if (v <= 0)
      fail(key, "field \"" + name(key) + "\" must be a positive integer, got " + std::to_string(v) +
                    (fix.empty() ? "" : "; " + std::string(fix)));
    if (v > trainperf::detail::max_dimension)
      fail(key, "field \"" + name(key) + "\" = " + std::to_string(v) +
                    " exceeds the largest supported size 2^31 = 2147483648");
    return v;
  }
  [[nodiscard]] std::int64_t req_size(std::string_view key) const { return size_checked(key, req_int(key)); }
  // An optional size: absent or null takes the default; 0 or less given explicitly is refused.
  [[nodiscard]] std::optional<std::int64_t> opt_size(std::string_view key, std::string_view fix = "") const {
    if (auto v = opt_int(key)) return size_checked(key, *v, fix);
    return std::nullopt;
  }

  // The size under either of two spellings (HF attribute aliases such as n_embd /
  // hidden_size); both present with different values is a contradiction.
  [[nodiscard]] std::int64_t req_size_alias(std::string_view key, std::string_view alias) const {
    const auto a = opt_int(key), b = opt_int(alias);
    if (a && b && *a != *b)
      fail(key, "contradictory fields: \"" + name(key) + "\" = " + std::to_string(*a) + " but \"" + name(alias) +
                    "\" = " + std::to_string(*b) + "; remove one");
    if (a) return size_checked(key, *a);
    if (b) return size_checked(alias, *b);
    fail(key, "missing required field \"" + name(key) + "\" (or \"" + name(alias) + "\")");
  }

  // A list of integers; absent or null is empty.
  [[nodiscard]] std::vector<std::int64_t> int_list(std::string_view key) const {
    if (!has(key)) return {};
    const json& v = obj_.at(std::string(key));
    if (!v.is_array()) fail(key, "field \"" + name(key) + "\" must be a list of integers, got " + describe(v));
    std::vector<std::int64_t> out;
    for (const json& e : v) {
      const bool fits =
          e.is_number_integer() &&
          (!e.is_number_unsigned() ||
           e.get<std::uint64_t>() <= static_cast<std::uint64_t>(std::numeric_limits<std::int64_t>::max()));
      if (!fits) fail(key, "field \"" + name(key) + "\" must be a list of integers; it holds " + describe(e));
      out.push_back(e.get<std::int64_t>());
    }
    return out;
  }

  [[nodiscard]] std::optional<bool> opt_bool(std::string_view key) const {
    if (!has(key)) return std::nullopt;
    const json& v = obj_.at(std::string(key));
    if (!v.is_boolean()) fail(key, "field \"" + name(key) + "\" must be true or false, got " + describe(v));
    return v.get<bool>();
  }

  [[nodiscard]] std::optional<std::string> opt_string(std::string_view key) const {
    if (!has(key)) return std::nullopt;
    const json& v = obj_.at(std::string(key));
    if (!v.is_string()) fail(key, "field \"" + name(key) + "\" must be a string, got " + describe(v));
    return v.get<std::string>();
  }

  [[nodiscard]] const json& object(std::string_view key) const {
    if (!has(key)) fail(key, "missing required object \"" + name(key) + "\"");
    const json& v = obj_.at(std::string(key));
    if (!v.is_object()) fail(key, "field \"" + name(key) + "\" must be a JSON object, got " + describe(v));
    return v;
  }

  [[nodiscard]] const std::string& origin() const { return origin_; }

 private:
  const json& obj_;
  std::string origin_;
  std::string prefix_;
  defaults_map defaults_;
};

// A config.json nests two or three levels, a devices file three; deeper input is refused before
// it is built.
inline constexpr int max_json_depth = 32;

// Parses JSON text, refusing a key given twice in one object (nlohmann would keep the last
// one silently) and nesting deeper than max_json_depth. Errors are config_error(field, ...).
inline json parse_json(std::string_view text, const std::string& origin, const std::string& field) {
  struct frame {
    bool is_object = false;
    std::set<std::string, std::less<>> keys;
    std::string key;  // the last key read in this object
  };
  std::vector<frame> stack;
  const auto path = [&](const std::string& last) {  // "text_config.hidden_size", "a.b[].c"
    std::string p;
    for (std::size_t i = 0; i + 1 < stack.size(); ++i) {
      if (stack[i].is_object) {
        p += stack[i].key + ".";
      } else {
        if (!p.empty()) p.pop_back();
        p += "[].";
      }
    }
    return p + last;
  };
  const json::parser_callback_t check = [&](int depth, json::parse_event_t event, json& parsed) {
    switch (event) {
      case json::parse_event_t::object_start:
      case json::parse_event_t::array_start:
        if (depth >= max_json_depth)
          throw config_error(field, origin + " nests JSON deeper than " + std::to_string(max_json_depth) +
                                        " levels; a config.json is an object of fields and a few nested objects");
        stack.push_back({event == json::parse_event_t::object_start, {}, {}});
        break;
      case json::parse_event_t::object_end:
      case json::parse_event_t::array_end:
        if (!stack.empty()) stack.pop_back();
        break;
      case json::parse_event_t::key: {
        const std::string& k = parsed.get_ref<const std::string&>();
        if (!stack.empty()) {
          if (!stack.back().keys.insert(k).second) {
            const std::string where = path(k);
            throw config_error(where, origin + ": key " + json_quoted(where) + " appears twice; keep one");
          }
          stack.back().key = k;
        }
        break;
      }
      case json::parse_event_t::value:
        break;
    }
    return true;
  };
  try {
    return json::parse(text.begin(), text.end(), check);
  } catch (const json::exception& e) {  // parse_error, and out_of_range for numbers such as 1e400
    throw config_error(field, origin + " is not valid JSON: " + e.what());
  }
}

}  // namespace detail

}  // namespace trainperf::io
