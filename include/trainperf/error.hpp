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

// Whether `name` begins with `prefix`, ignoring ASCII case.
constexpr bool starts_with_ignoring_case(std::string_view name, std::string_view prefix) {
  const auto lower = [](char ch) { return ch >= 'A' && ch <= 'Z' ? static_cast<char>(ch - 'A' + 'a') : ch; };
  if (prefix.size() > name.size()) return false;
  for (std::size_t i = 0; i < prefix.size(); ++i)
    if (lower(name[i]) != lower(prefix[i])) return false;
  return true;
}
constexpr bool same_name_ignoring_case(std::string_view a, std::string_view b) {
  return a.size() == b.size() && starts_with_ignoring_case(a, b);
}

// ---- "did you mean ...?" --------------------------------------------------------------------
// Names are compared after folding what a reader does not see as a different name: ASCII case,
// '_' for '-', and the look-alikes O/0 and l/I/1 ("H8OO" is H800, "Llama3_8B" is llama3-8b).
constexpr char fold_for_matching(char ch) {
  if (ch >= 'A' && ch <= 'Z') ch = static_cast<char>(ch - 'A' + 'a');
  switch (ch) {
    case 'o': return '0';
    case 'l': case 'i': return '1';
    case '_': return '-';
    default: return ch;
  }
}

// Optimal string alignment distance (the restricted Damerau-Levenshtein distance: insertions,
// deletions, substitutions and swaps of two adjacent characters, no substring edited twice),
// on folded characters. One change costs 1, except a digit put for another digit, which costs
// 2 (a deletion plus an insertion): the numbers in model and device names pick a product or a
// size (H100 / H200 / H800, llama2-7b / llama3-8b), so a different digit is a different name
// more often than a slip of the finger. Linear memory; typed names may be long.
inline std::size_t name_distance(std::string_view a, std::string_view b) {
  const auto is_digit = [](char ch) { return ch >= '0' && ch <= '9'; };
  std::vector<std::size_t> before(b.size() + 1), prev(b.size() + 1), cur(b.size() + 1);
  for (std::size_t j = 0; j <= b.size(); ++j) prev[j] = j;
  for (std::size_t i = 1; i <= a.size(); ++i) {
    cur[0] = i;
    const char ca = fold_for_matching(a[i - 1]);
    for (std::size_t j = 1; j <= b.size(); ++j) {
      const char cb = fold_for_matching(b[j - 1]);
      const std::size_t change = ca == cb ? 0 : (is_digit(ca) && is_digit(cb) ? 2 : 1);
      std::size_t d = std::min({prev[j] + 1, cur[j - 1] + 1, prev[j - 1] + change});
      if (i > 1 && j > 1 && ca != cb && ca == fold_for_matching(b[j - 2]) && fold_for_matching(a[i - 2]) == cb)
        d = std::min(d, before[j - 2] + 1);
      cur[j] = d;
    }
    std::swap(before, prev);
    std::swap(prev, cur);
  }
  return prev[b.size()];
}

// The edits a typed name may be away from a listed one and still be suggested: one per four
// typed characters, at least one. Two names that close share three quarters of their
// characters, so the suggestion is recognisably the word the user meant ("lama2-7b", 8
// characters: 2 edits; "gsb", "bf61", "H8OO": 1), while a longer name stays far from a listed
// prefix of it ("H100-PCIe", 9 characters: 2 allowed, 5 away from H100) and short names do not
// drift into each other (H900 is 2 from H100).
constexpr std::size_t max_suggestion_edits(std::size_t typed_length) {
  return typed_length / 4 > 1 ? typed_length / 4 : 1;
}

// The names of `names` (each projected to a string_view by `name_of`) the user probably meant
// by `typed`, in the list's order: every name that `typed` abbreviates (ignoring case: "a100" ->
// A100-80GB, A100-40GB; "--tokens" -> --tokens-per-device-per-s); if none, the names nearest to
// `typed` by name_distance, if within max_suggestion_edits. Empty input suggests nothing.
template <class Range, class NameOf>
std::vector<std::string> close_names(std::string_view typed, const Range& names, NameOf name_of) {
  std::vector<std::string> out;
  if (typed.empty()) return out;
  for (const auto& entry : names) {
    const std::string_view n = name_of(entry);
    if (starts_with_ignoring_case(n, typed)) out.emplace_back(n);
  }
  if (!out.empty()) return out;
  std::size_t best = max_suggestion_edits(typed.size());  // the nearest distance so far
  for (const auto& entry : names) {
    const std::string_view n = name_of(entry);
    const std::size_t gap = n.size() > typed.size() ? n.size() - typed.size() : typed.size() - n.size();
    if (gap > best) continue;  // at least that many insertions or deletions
    const std::size_t d = name_distance(typed, n);
    if (d > best) continue;
    if (d < best) {
      out.clear();
      best = d;
    }
    out.emplace_back(n);
  }
  return out;
}

// "did you mean --gbs?" / "did you mean A100-80GB or A100-40GB?" (each name after `prefix`),
// or "" when nothing is close.
template <class Range, class NameOf>
std::string did_you_mean(std::string_view typed, const Range& names, NameOf name_of, std::string_view prefix = "") {
  std::string out;
  for (const auto& n : close_names(typed, names, name_of))
    out += (out.empty() ? "did you mean " : " or ") + std::string(prefix) + n;
  return out.empty() ? out : out + "?";
}

// "unknown device 'a100'; did you mean A100-80GB or A100-40GB?; known devices: H100, ..." for a
// table of entries with a `name` (see close_names: a longer name such as "H100-PCIe" is not
// cut to a listed prefix; an H100 PCIe is not the H100 SXM the table lists).
template <class Table>
std::string unknown_name_message(std::string_view what, std::string_view name, const Table& table,
                                 std::string_view known_as) {
  std::string known;
  for (const auto& entry : table) known += (known.empty() ? "" : ", ") + std::string(entry.name);
  const std::string hint = did_you_mean(name, table, [](const auto& e) { return std::string_view(e.name); });
  return "unknown " + std::string(what) + " '" + std::string(name) + "'" + (hint.empty() ? "" : "; " + hint) + "; " +
         std::string(known_as) + ": " + known;
}

// std::isfinite is not constexpr before C++23; NaN fails x == x, infinities fail x - x == 0.
constexpr bool is_finite(double x) { return x == x && x - x == 0; }

// For a >= 0, b > 0; written without a + b - 1, which wraps for a near 2^63.
constexpr std::int64_t ceil_div(std::int64_t a, std::int64_t b) { return a / b + (a % b != 0 ? 1 : 0); }
constexpr std::int64_t round_up(std::int64_t a, std::int64_t multiple) { return ceil_div(a, multiple) * multiple; }

}  // namespace detail
}  // namespace trainperf
