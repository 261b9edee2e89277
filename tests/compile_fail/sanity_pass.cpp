// Must compile: a valid constexpr batch (the counterpart of sanity_fail.cpp).
#include <trainperf/trainperf.hpp>
constexpr auto batch = trainperf::solve_batch({.gbs = 1024, .lbs = 4, .dp = 8});
static_assert(batch.gas == 32);
