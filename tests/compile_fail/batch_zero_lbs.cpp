// Must not compile: a micro batch of 0.
#include <trainperf/trainperf.hpp>
constexpr auto b = trainperf::solve_batch({.gbs = 1024, .lbs = 0, .dp = 8});
