// Must not compile: 1000 is not a multiple of LBS 4 x DP 8.
#include <trainperf/trainperf.hpp>
constexpr auto b = trainperf::solve_batch({.gbs = 1000, .lbs = 4, .dp = 8});
