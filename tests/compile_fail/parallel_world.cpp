// Must not compile: TP 8 x PP 4 on 30 devices.
#include <trainperf/trainperf.hpp>
constexpr bool ok = (trainperf::validate(trainperf::parallel_config{.tp = 8, .pp = 4}, {.world = 30}), true);
