// Compile-time parameter counts and spec validation: building this file is the test.
#include <trainperf/trainperf.hpp>

#include <type_traits>

namespace {
using namespace trainperf;

template <auto F>
concept constant_evaluable = requires {
  typename std::integral_constant<int, (F(), 0)>;
};

// Published counts (sources in tests/unit/test_presets.cpp), evaluated by the compiler.
static_assert(count_params(get_preset("llama2-7b").spec).total() == 6'738'415'616);
static_assert(count_params(get_preset("llama2-70b").spec).total() == 68'976'648'192);
static_assert(count_params(get_preset("gpt2-124m").spec).total() == 124'439'808);
static_assert(count_params(get_preset("mixtral-8x7b").spec).total() == 46'702'792'704);

constexpr transformer_spec good{
    .layers = 2, .hidden = 64, .heads = 4, .kv_heads = 2, .ffn = 128, .vocab = 256, .max_seq = 32};
static_assert(constant_evaluable<[] { return count_params(good).total(); }>);

constexpr transformer_spec with(transformer_spec s, std::int64_t kv_heads, std::int64_t hidden) {
  s.kv_heads = kv_heads;
  s.hidden = hidden;
  return s;
}
static_assert(!constant_evaluable<[] { return count_params(with(good, 3, 64)).total(); }>);  // 4 % 3
static_assert(!constant_evaluable<[] { return count_params(with(good, 8, 64)).total(); }>);  // kv > heads
static_assert(!constant_evaluable<[] { return count_params(with(good, 2, 66)).total(); }>);  // 66 % 4
static_assert(!constant_evaluable<[] { return count_params(with(good, 2, 0)).total(); }>);   // hidden 0
static_assert(!constant_evaluable<[] { return get_preset("no-such-model").spec.layers; }>);
}  // namespace
