// trainperf — Megatron-LM's per-layer pattern strings, as --moe-layer-freq takes them: a Python
// list expression such as "([0]*3+[1]*1)*3" or "[1,0,1,1]", one entry per layer, 1 for a MoE
// layer and 0 for a dense one (megatron/training/arguments.py moe_freq_type evaluates the string;
// megatron/core/models/gpt/gpt_layer_specs.py get_gpt_decoder_block_spec requires num_layers entries).
// This reads the subset such strings use: integer lists, "+", "*" by a count, parentheses, and one
// pair of quotes around the whole (launch scripts often pass "'([1]*48)'").
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "../error.hpp"
#include "../model.hpp"

namespace trainperf::io {

namespace detail {

// A recursive-descent reader over the grammar
//   sum := product ("+" product)* ; product := atom ("*" atom)* ; atom := int | "[" ints "]" | "(" sum ")"
// where a product multiplies one list by counts (list * n, n * list), as Python repeats lists.
class layer_pattern_reader {
 public:
  layer_pattern_reader(std::string_view text, std::string_view field) : text_(text), field_(field) {
    if (text_.size() >= 2 && (text_.front() == '\'' || text_.front() == '"') && text_.back() == text_.front())
      text_ = text_.substr(1, text_.size() - 2);
  }

  std::vector<std::int64_t> read() {
    value v = sum();
    skip_spaces();
    if (pos_ != text_.size()) fail("unexpected '" + std::string(1, text_[pos_]) + "'");
    if (!v.is_list) fail("a single number is a frequency, not a list");
    return v.list;
  }

 private:
  struct value {
    bool is_list = false;
    std::int64_t number = 0;
    std::vector<std::int64_t> list;
  };
  // No published pattern is near this long; it bounds what "[1]*10**9"-style input can allocate.
  static constexpr std::size_t max_entries = layer_set::capacity;
  static constexpr int max_depth =
      64;  // parentheses nested deeper are refused, not recursed into (brackets hold numbers only)

  [[noreturn]] void fail(const std::string& what) const {
    throw config_error(std::string(field_), std::string(field_) + " '" + trainperf::detail::abbreviated(text_) +
                                                "' at character " + std::to_string(pos_ + 1) + ": " + what +
                                                "; give a frequency N or a list of 0/1 per layer such as "
                                                "\"([0]*1+[1]*3)*2\" (Megatron-LM's syntax)");
  }
  void skip_spaces() {
    while (pos_ < text_.size() &&
           (text_[pos_] == ' ' || text_[pos_] == '\t' || text_[pos_] == '\n' || text_[pos_] == '\r'))
      ++pos_;
  }
  bool accept(char c) {
    skip_spaces();
    if (pos_ < text_.size() && text_[pos_] == c) return ++pos_, true;
    return false;
  }
  std::int64_t number() {
    skip_spaces();
    const std::size_t start = pos_;
    std::int64_t n = 0;
    while (pos_ < text_.size() && text_[pos_] >= '0' && text_[pos_] <= '9') {
      if (n > 1'000'000) fail("number too large");
      n = n * 10 + (text_[pos_++] - '0');
    }
    if (pos_ == start) fail(pos_ < text_.size() ? "expected a number, '[' or '('" : "unexpected end");
    return n;
  }
  value atom() {
    if (accept('(')) {
      if (++depth_ > max_depth) fail("parentheses nested deeper than " + std::to_string(max_depth));
      value v = sum();
      if (!accept(')')) fail("expected ')'");
      --depth_;
      return v;
    }
    if (accept('[')) {
      value v{true, 0, {}};
      if (accept(']')) return v;
      do v.list.push_back(number());
      while (accept(','));
      if (!accept(']')) fail("expected ']' or ','");
      return v;
    }
    return {false, number(), {}};
  }
  value product() {
    value v = atom();
    while (accept('*')) {
      value r = atom();
      if (v.is_list == r.is_list) fail("'*' repeats a list by a count; it needs one of each");
      if (!v.is_list) std::swap(v, r);  // v the list, r the count
      if (static_cast<double>(v.list.size()) * static_cast<double>(r.number) > max_entries)
        fail("more than " + std::to_string(max_entries) + " layers");
      if (v.list.empty()) continue;  // an empty list repeated is empty
      std::vector<std::int64_t> repeated;
      for (std::int64_t t = 0; t < r.number; ++t) repeated.insert(repeated.end(), v.list.begin(), v.list.end());
      v.list = std::move(repeated);
    }
    return v;
  }
  value sum() {
    value v = product();
    while (accept('+')) {
      const value r = product();
      if (!v.is_list || !r.is_list) fail("'+' joins two lists");
      if (v.list.size() + r.list.size() > max_entries) fail("more than " + std::to_string(max_entries) + " layers");
      v.list.insert(v.list.end(), r.list.begin(), r.list.end());
    }
    return v;
  }

  std::string_view text_, field_;
  std::size_t pos_ = 0;
  int depth_ = 0;
};

}  // namespace detail

// Whether a --moe-layer-freq value is a list expression rather than a frequency (Megatron-LM
// decides by a '['; a '(' is read as one too, so that a malformed list is told as such).
inline bool is_layer_pattern(std::string_view text) { return text.find_first_of("[(") != std::string_view::npos; }

// Places spec's MoE layers by Megatron-LM's pattern: entry i is 1 for a MoE layer and 0 for a
// dense one, one per layer. Sets layer_freq 1, offset 0, no first dense layers and the zeros as
// the listed dense layers. field names the flag or key in errors.
inline void apply_moe_layer_pattern(transformer_spec& spec, std::string_view text, std::string_view field) {
  const std::vector<std::int64_t> pattern = detail::layer_pattern_reader(text, field).read();
  const auto fail = [&](const std::string& what) {
    throw config_error(std::string(field),
                       std::string(field) + " '" + trainperf::detail::abbreviated(text) + "': " + what);
  };
  if (!spec.is_moe())
    fail("the model has no experts; set experts and top_k (--experts, --top-k) for a mixture-of-experts model");
  if (static_cast<std::int64_t>(pattern.size()) != spec.layers)
    fail("the list has " + std::to_string(pattern.size()) + " entries but the model has " +
         std::to_string(spec.layers) + " layers; give one 0/1 entry per layer (Megatron-LM requires the same)");
  layer_set dense;  // spec changes only once the whole list is read
  for (std::size_t i = 0; i < pattern.size(); ++i) {
    if (pattern[i] > 1)
      fail("entry " + std::to_string(i) + " is " + std::to_string(pattern[i]) + "; entries are 1 (MoE) or 0 (dense)");
    if (pattern[i] == 0) dense.insert(static_cast<std::int64_t>(i));
  }
  if (dense.size() == spec.layers)
    fail("no entry is 1, so no layer is MoE; mark the MoE layers 1, or set experts to 0 for a dense model");
  spec.moe.layer_freq = 1;
  spec.moe.layer_offset = 0;
  spec.moe.first_dense_layers = 0;
  spec.moe.dense_layers = dense;
}

}  // namespace trainperf::io
