// Must not compile: 1000 is not a multiple of GAS 3 x DP 8.
#include <trainperf/trainperf.hpp>
constexpr auto b = trainperf::solve_batch({.gbs = 1000, .gas = 3, .dp = 8});
