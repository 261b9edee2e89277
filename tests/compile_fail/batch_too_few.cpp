// Must not compile: only two of the four batch sizes.
#include <trainperf/trainperf.hpp>
constexpr auto b = trainperf::solve_batch({.gbs = 1024, .lbs = 4});
