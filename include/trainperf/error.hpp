// trainperf — errors shared by every header: one exception type for bad user input, and
// the mechanism that turns the same checks into compile errors during constant evaluation.
#pragma once

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <stdexcept>
#include <string>
#include <string_view>
#include <type_traits>
#include <utility>
#include <vector>

namespace trainperf {

// Bad user input: the message names the field, the values and the fix.
class config_error : public std::invalid_argument {
 public:
  config_error(std::string field, const std::string& message)
      : std::invalid_argument(message), field_(std::move(field)) {}
  // The configuration field at fault ("gbs", "heads", ...), as the user spells it.
  [[nodiscard]] const std::string& field() const noexcept { return field_; }

 private:
  std::string field_;
};

// Reasons a check can fail. In constant evaluation a failed check calls one of these
// functions; they are deliberately not constexpr, so the compiler's diagnostic reads
// "call to non-constexpr function 'void trainperf::reason::<the reason>()'" and shows
// the offending values in the constexpr expansion trace above it.
namespace reason {
using fn = void (*)();
}

namespace detail {

// Fails with `why` at compile time, or throws config_error(field, make_message()) at run
// time. The message is built lazily: valid configurations never allocate.
template <class MakeMessage>
constexpr void require(bool ok, reason::fn why, std::string_view field, MakeMessage&& make_message) {
  if (ok) return;
  if (std::is_constant_evaluated()) why();
  throw config_error(std::string(field), std::forward<MakeMessage>(make_message)());
}

inline std::string str(std::int64_t v) { return std::to_string(v); }

}  // namespace detail

namespace reason {
inline void value_must_be_positive() {}
inline void arithmetic_overflows_int64() {}
inline void size_exceeds_2_to_the_31() {}
}  // namespace reason

namespace detail {

// "nearest valid: 992 or 1024" — the multiples of `step` around `value`.
inline std::string nearest_multiples(std::int64_t value, std::int64_t step) {
  const std::int64_t below = value / step * step;
  std::int64_t above = 0;
  const bool above_fits = !__builtin_add_overflow(below, step, &above);  // not past 2^63 - 1
  if (below <= 0) return "nearest valid: " + str(above);
  return "nearest valid: " + str(below) + (above_fits ? " or " + str(above) : "");
}

// A size the user gave must be > 0.
constexpr void require_positive(std::int64_t v, std::string_view field) {
  require(v > 0, reason::value_must_be_positive, field,
          [&] { return std::string(field) + " must be a positive integer, got " + str(v); });
}

// A model dimension: positive and at most 2^31, so that any product of two fits in 64 bits
// (longer products go through checked_mul).
inline constexpr std::int64_t max_dimension = std::int64_t{1} << 31;
constexpr void require_dimension(std::int64_t v, std::string_view field) {
  require_positive(v, field);
  require(v <= max_dimension, reason::size_exceeds_2_to_the_31, field,
          [&] { return std::string(field) + " " + str(v) + " exceeds the largest supported size 2^31 = 2147483648"; });
}

// Products of user sizes (GBS x sequence, layers x hidden^2, ...) must not wrap around.
constexpr std::int64_t checked_mul(std::int64_t a, std::int64_t b, std::string_view what) {
  std::int64_t r = 0;
  const bool overflow = __builtin_mul_overflow(a, b, &r);
  require(!overflow, reason::arithmetic_overflows_int64, what, [&] {
    return std::string(what) + " overflows a 64-bit integer (" + str(a) + " x " + str(b) + "); use smaller sizes";
  });
  return r;
}

constexpr std::int64_t checked_add(std::int64_t a, std::int64_t b, std::string_view what) {
  std::int64_t r = 0;
  const bool overflow = __builtin_add_overflow(a, b, &r);
  require(!overflow, reason::arithmetic_overflows_int64, what, [&] {
    return std::string(what) + " overflows a 64-bit integer (" + str(a) + " + " + str(b) + "); use smaller sizes";
  });
  return r;
}

// a + b + ... with every partial sum checked.
template <class... Rest>
constexpr std::int64_t checked_sum(std::string_view what, std::int64_t a, Rest... rest) {
  ((a = checked_add(a, static_cast<std::int64_t>(rest), what)), ...);
  return a;
}

// A message as one line: control characters that came in with user input (a newline in an
// argument or a file name) are written as escapes, so an error stays one line and loses nothing.
inline std::string one_line(std::string_view text) {
  static constexpr char hex[] = "0123456789abcdef";
  std::string out;
  for (const char ch : text) {
    const auto u = static_cast<unsigned char>(ch);
    if (ch == '\n')
      out += "\\n";
    else if (ch == '\t')
      out += "\\t";
    else if (u < 0x20 || u == 0x7f)
      out += std::string("\\x") + hex[u >> 4] + hex[u & 15];
    else
      out += ch;
  }
  return out;
}

// User text quoted in a message, cut to `limit` bytes with "..." after (a long list or value
// stays readable on one line).
inline std::string abbreviated(std::string_view text, std::size_t limit = 60) {
  return text.size() > limit ? std::string(text.substr(0, limit)) + "..." : std::string(text);
}

// std::isfinite is not constexpr before C++23; NaN fails x == x, infinities fail x - x == 0.
constexpr bool is_finite(double x) { return x == x && x - x == 0; }

// For a >= 0, b > 0; written without a + b - 1, which wraps for a near 2^63.
constexpr std::int64_t ceil_div(std::int64_t a, std::int64_t b) { return a / b + (a % b != 0 ? 1 : 0); }
constexpr std::int64_t round_up(std::int64_t a, std::int64_t multiple) { return ceil_div(a, multiple) * multiple; }

}  // namespace detail
}  // namespace trainperf
