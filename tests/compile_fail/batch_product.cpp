// Must not compile: 1000 != 4 x 32 x 8.
#include <trainperf/trainperf.hpp>
constexpr auto b = trainperf::make_batch(1000, 4, 32, 8);
