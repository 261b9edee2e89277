// Compile-time checks of parallel configurations and layouts: building this file is the test.
#include <trainperf/trainperf.hpp>

#include <type_traits>

namespace {
using namespace trainperf;

template <auto F>
concept constant_evaluable = requires {
  typename std::integral_constant<int, (F(), 0)>;
};

constexpr transformer_spec l70 = get_preset("llama2-70b").spec;
constexpr transformer_spec g13 = get_preset("gpt3-13b").spec;

// Seed 000: TP8PP4 and TP4PP8 on 32 H800s, 44 micro-batches of 1 x 4096 tokens.
static_assert(
    check_parallel({.tp = 8, .pp = 4}, {.world = 32, .model = l70, .seq = 4096, .gbs = 44, .lbs = 1}).empty());
static_assert(
    check_parallel({.tp = 4, .pp = 8}, {.world = 32, .model = l70, .seq = 4096, .gbs = 44, .lbs = 1}).empty());
// Seed 004: GPT-3 13B TP2PP4 on 8 A100s, sharding stage 1, 256 micro-batches of 4.
static_assert(check_parallel({.tp = 2, .pp = 4, .zero_stage = 1},
                             {.world = 8, .model = g13, .seq = 2048, .gbs = 1024, .lbs = 4})
                  .empty());
static_assert(resolved_dp({.tp = 2, .pp = 1}, 8) == 4);

static_assert(!constant_evaluable<[] { return (validate(parallel_config{.tp = 3}, {.world = 3, .model = l70}), 0); }>);
static_assert(!constant_evaluable<[] { return (validate(parallel_config{.tp = 8, .pp = 4}, {.world = 16}), 0); }>);

// Layout: rank 13 of world 16 under TP2 PP2 (order tp-cp-ep-dp-pp) is tp 1, dp 2, pp 1.
static_assert(layout(16, {.tp = 2, .pp = 2}).coords(13).tp == 1);
static_assert(layout(16, {.tp = 2, .pp = 2}).coords(13).dp == 2);
static_assert(layout(16, {.tp = 2, .pp = 2}).coords(13).pp == 1);
static_assert(!constant_evaluable<[] { return layout(16, {.tp = 2}, "tp-xx").world(); }>);

// Schedules and partitions in constant evaluation.
static_assert(make_schedule(pipeline_schedule::one_f_one_b, 4, 8).warmup[0] == 3);
static_assert(partition_layers(80, {.pp = 4})[2].first_layer == 40);
// Every stage's layers listed: 6, 10, 10, 6 of 32; the third stage starts at layer 16.
static_assert(partition_layers(32, {.pp = 4, .listed = {.layers = {6, 10, 10, 6}, .count = 4}})[2].first_layer == 16);
static_assert(!constant_evaluable<[] {
  return partition_layers(32, {.pp = 4, .listed = {.layers = {6, 10, 10, 5}, .count = 4}}).size();
}>);
static_assert(data_shard(1024, 4, 8, 0, 1, 2).first == 40);
}  // namespace
