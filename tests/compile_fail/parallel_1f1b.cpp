// Must not compile: 2 micro-batches on 4 pipeline stages.
#include <trainperf/trainperf.hpp>
constexpr bool ok = (trainperf::validate(trainperf::parallel_config{.tp = 8, .pp = 4}, {.world = 32, .gbs = 2, .lbs = 1}), true);
