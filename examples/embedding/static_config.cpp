// Compile-time validation of a parallel layout: README.md ("Three examples for a consumer")
// shows the lines between the readme-begin and readme-end markers, and the test
// embedding_readme_in_sync keeps them identical.
// readme-begin
#include <trainperf/trainperf.hpp>

#include <iostream>

using namespace trainperf;
// Seed 000's layout: llama2-70b, TP 8 x PP 4 on 32 devices, 44 micro-batches of 1 x 4096 tokens.
constexpr parallel_context ctx{.world = 32, .model = get_preset("llama2-70b").spec, .seq = 4096, .gbs = 44, .lbs = 1};
constexpr parallel_config cfg{.tp = 8, .pp = 4, .sequence_parallel = true, .distributed_optimizer = true};
static_assert(check_parallel(cfg, ctx).empty());  // a broken rule stops the build here, naming the rule
static_assert(cfg.dp_for(ctx.world) == 1 && cfg.schedule() == pipeline_schedule::one_f_one_b);
// {.tp = 16, .pp = 2} fills 32 devices too, but llama2-70b's 8 KV heads do not split 16 ways: the build fails
// with "call to non-'constexpr' function 'void trainperf::reason::kv_heads_are_not_divisible_by_tp()'".

int main() {  // the same rules at run time, for a layout read from a command line or a file
  try {
    validate(parallel_config{.tp = 16, .pp = 2}, ctx);
  } catch (const config_error& e) {
    std::cout << e.field() << ": " << e.what() << '\n';
  }
}
// readme-end
//
// Why, by hand (the tests embedding_static_config and embedding_static_config_invalid pin it):
//   TP 8 x PP 4: 8 x 4 = 32 devices, so DP 32 / 32 = 1; 64 heads, 8 KV heads, ffn 28672 and the
//   vocabulary 32000 all divide by 8; 80 layers by 4; 44 micro-batches of 1 on 1 replica are at
//   least the 4 stages; sequence parallelism has TP > 1; the distributed optimizer runs without
//   ZeRO; no virtual stages, so 1F1B.
//   TP 16 x PP 2: 16 x 2 = 32 devices again (DP 1) and 64 heads, ffn 28672 = 16 x 1792, the
//   vocabulary 32000 = 16 x 2000 and 80 layers / 2 all divide, but 8 KV heads do not split over 16
//   ranks: exactly one rule breaks, field "tp".
