// Compile-time checks of the batch algebra: building this file is the test. Valid seed
// configurations are static_asserted; invalid ones are shown not to be constant
// expressions (`requires` on a lambda's constant evaluation), next to the compile-fail
// tests that check the diagnostic's wording.
#include <trainperf/trainperf.hpp>

#include <type_traits>

namespace {
using namespace trainperf;

// True when F() is a constant expression, i.e. the configuration it builds is valid.
template <auto F>
concept constant_evaluable = requires {
  typename std::integral_constant<int, (F(), 0)>;
};

// Seed 000: llama2-70b, 32 H800s, TP8 PP4, LBS 1, GAS 44 -> DP 1, GBS 44.
constexpr batch_config seed000 = solve_batch({.lbs = 1, .gas = 44, .dp = data_parallel_size(32, 8, 4), .seq = 4096});
static_assert(seed000.dp == 1 && seed000.gbs == 44);
// Seed 004: GPT-3 6.7B TP2 PP4 on 8 A100s, LBS 4, GAS 256 -> 1024 sequences = 2M tokens.
constexpr batch_config seed004 = solve_batch({.lbs = 4, .gas = 256, .dp = data_parallel_size(8, 2, 4), .seq = 2048});
static_assert(seed004.gbs == 1024 && seed004.tokens_per_step() == 2'097'152);
// Seed 001: llava1.5-7b pretrain, LBS 32 x 8 A800s.
static_assert(solve_batch({.gbs = 256, .lbs = 32, .dp = 8}).gas == 1);

static_assert(constant_evaluable<[] { return solve_batch({.gbs = 1024, .lbs = 4, .dp = 8}); }>);
static_assert(!constant_evaluable<[] { return solve_batch({.gbs = 1000, .lbs = 4, .dp = 8}); }>);
static_assert(!constant_evaluable<[] { return make_batch(1024, 4, 32, 4); }>);
static_assert(!constant_evaluable<[] { return solve_batch({.gbs = 1024, .lbs = 0, .dp = 8}); }>);
static_assert(!constant_evaluable<[] { return solve_batch({.gbs = 1024, .lbs = 4}); }>);
static_assert(!constant_evaluable<[] { return data_parallel_size(30, 8, 4); }>);
static_assert(!constant_evaluable<[] { return make_batch(8, 1, 1, 8).tokens_per_step(); }>);  // no seq
}  // namespace
