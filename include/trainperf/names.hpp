// trainperf — names a user types (models, devices, flags, choices, commands): matching that
// ignores what a reader does not see as a difference, and the "did you mean ...?" that an
// unknown name's error carries.
#pragma once

#include <algorithm>
#include <cstddef>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace trainperf {

// An enum's value beside the name a user types for it: a flag's value on the command line, a
// keyword's value in the Python module. Each enum users name has one table, beside the enum, that
// both read; a later entry may give an earlier entry's value another name (an alias).
template <class E>
struct named {
  std::string_view name;
  E value;
};

}  // namespace trainperf

namespace trainperf::detail {

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
    case 'o':
      return '0';
    case 'l':
    case 'i':
      return '1';
    case '_':
      return '-';
    default:
      return ch;
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

// The value `name` stands for in `table`, ignoring ASCII case; none when no entry names it.
template <class E, std::size_t N>
constexpr std::optional<E> value_named(const named<E> (&table)[N], std::string_view name) {
  for (const named<E>& n : table)
    if (same_name_ignoring_case(n.name, name)) return n.value;
  return std::nullopt;
}

// The name `value` has in `table`: its first entry's ("adamw" is Adam's alias, "adam" its name).
template <class E, std::size_t N>
constexpr std::string_view name_of(const named<E> (&table)[N], E value) {
  for (const named<E>& n : table)
    if (n.value == value) return n.name;
  return "?";
}

// The table's names, in order ("standard", "chunked", ...), for a list of choices.
template <class E, std::size_t N>
std::vector<std::string_view> names_of(const named<E> (&table)[N]) {
  std::vector<std::string_view> out;
  for (const named<E>& n : table) out.push_back(n.name);
  return out;
}

}  // namespace trainperf::detail
