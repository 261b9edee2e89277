// Must not compile: 100 is not a multiple of LBS 3 x GAS 7.
#include <trainperf/trainperf.hpp>
constexpr auto b = trainperf::solve_batch({.gbs = 100, .lbs = 3, .gas = 7});
