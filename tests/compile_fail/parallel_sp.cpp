// Must not compile: sequence parallelism with TP 1.
#include <trainperf/trainperf.hpp>
constexpr bool ok = (trainperf::validate(trainperf::parallel_config{.sequence_parallel = true}, {.world = 8}), true);
