// trainperf benches: their command lines. Options come as "--name value" pairs from a fixed list
// and numbers are checked, so a mistyped option or value stops the bench with a one-line error
// instead of being ignored (a --require-* guard silently left at its default passes anything).
#pragma once

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <initializer_list>
#include <limits>
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
    const bool value = i + 1 < argc && std::string_view(argv[i + 1]).substr(0, 2) != "--";
    const char* problem = !known ? "unknown option" : !value ? "no value for" : o.find(name) ? "repeated" : nullptr;
    if (problem) {
      std::fprintf(stderr, "%s: %s '%s'; use %s\n", o.program.c_str(), problem, argv[i], o.usage.c_str());
      return std::nullopt;
    }
    o.given.emplace(std::string(name), argv[i + 1]);
  }
  return o;
}

// Reads option `name` into `out` when it was given: a decimal number >= minimum (> minimum when
// `strictly`), whole and within T's range when T is an integer type. false after a one-line
// error; `out` unchanged when the option was not given.
template <class T>
bool read_number(const options& o, std::string_view name, T& out, double minimum, bool strictly = false) {
  const std::string* text = o.find(name);
  if (!text) return true;
  constexpr bool whole = std::is_integral_v<T>;
  // Below 2^53 every whole double is exact, and T's largest value bounds the cast.
  const double maximum = whole ? std::min(9007199254740992.0, static_cast<double>(std::numeric_limits<T>::max()))
                               : std::numeric_limits<double>::max();
  const bool decimal = !text->empty() && text->find_first_of("xXpP \t\n") == std::string::npos;
  char* end = nullptr;
  const double x = decimal ? std::strtod(text->c_str(), &end) : 0;
  const bool ok = decimal && end != text->c_str() && *end == '\0' && std::isfinite(x) &&
                  (strictly ? x > minimum : x >= minimum) && x <= maximum && (!whole || x == std::floor(x));
  if (!ok) {
    const std::string bound = whole ? " and <= " + std::to_string(static_cast<std::int64_t>(maximum)) : "";
    std::fprintf(stderr, "%s: %.*s expects %s %s %g%s, got '%s'; use %s\n", o.program.c_str(),
                 static_cast<int>(name.size()), name.data(), whole ? "a whole number" : "a finite number",
                 strictly ? ">" : ">=", minimum, bound.c_str(), text->c_str(), o.usage.c_str());
    return false;
  }
  out = static_cast<T>(x);
  return true;
}

}  // namespace bench
