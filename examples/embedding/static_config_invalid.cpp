// Must not compile: static_config.cpp's layout with TP 16 x PP 2, the variant README.md describes
// under that example. The test embedding_static_config_invalid expects the build to fail naming
// trainperf::reason::kv_heads_are_not_divisible_by_tp.
#include <trainperf/trainperf.hpp>

using namespace trainperf;
constexpr parallel_context ctx{.world = 32, .model = get_preset("llama2-70b").spec, .seq = 4096, .gbs = 44, .lbs = 1};
constexpr parallel_config cfg{.tp = 16, .pp = 2, .sequence_parallel = true, .distributed_optimizer = true};
static_assert(check_parallel(cfg, ctx).empty());
