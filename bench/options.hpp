// trainperf benches: their command lines. Options come as "--name value" pairs from a fixed list
// and numbers are checked, so a mistyped option or value stops the bench with a one-line error
// instead of being ignored (a --require-* guard silently left at its default passes anything).
#pragma once

#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <initializer_list>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <type_traits>

namespace bench {

struct options {
  std::string program;
  std::string usage;  // the options as the error messages list them
  std::map<std::string, std::string, std::less<>> given;
  [[nodiscard]] const std::string* find(std::string_view name) const {
    const auto it = given.find(name);
    return it == given.end() ? nullptr : &it->second;
  }
};

// argv[first], argv[first + 1], ... as "--name value" pairs, each name one of `names` (given at
// most once); nullopt after a one-line error on standard error that names the option and the usage.
inline std::optional<options> parse_options(std::string program, std::string usage, int argc, char** argv, int first,
                                            std::initializer_list<std::string_view> names) {
  options o{std::move(program), std::move(usage), {}};
  for (int i = first; i < argc; i += 2) {
    const std::string_view name = argv[i];
    bool known = false;
    for (std::string_view n : names) known = known || n == name;
    const char* problem = !known          ? "unknown option"
                          : i + 1 >= argc ? "no value for"
                          : o.find(name)  ? "repeated"
                                          : nullptr;
    if (problem) {
      std::fprintf(stderr, "%s: %s '%s'; use %s\n", o.program.c_str(), problem, argv[i], o.usage.c_str());
      return std::nullopt;
    }
    o.given.emplace(std::string(name), argv[i + 1]);
  }
  return o;
}

// Reads option `name` into `out` when it was given: a number >= minimum (> minimum when
// `strictly`), whole when T is an integer type. false after a one-line error; `out` unchanged
// when the option was not given.
template <class T>
bool read_number(const options& o, std::string_view name, T& out, double minimum, bool strictly = false) {
  const std::string* text = o.find(name);
  if (!text) return true;
  char* end = nullptr;
  const double x = std::strtod(text->c_str(), &end);
  constexpr bool whole = std::is_integral_v<T>;
  const bool ok = end != text->c_str() && *end == '\0' && std::isfinite(x) && (strictly ? x > minimum : x >= minimum) &&
                  (!whole || (x == std::floor(x) && x <= 1e15));
  if (!ok) {
    std::fprintf(stderr, "%s: %.*s expects %s %s %g, got '%s'\n", o.program.c_str(), static_cast<int>(name.size()),
                 name.data(), whole ? "a whole number" : "a number", strictly ? ">" : ">=", minimum, text->c_str());
    return false;
  }
  out = static_cast<T>(x);
  return true;
}

}  // namespace bench
