// Must not compile: an order that leaves out CP of size 2.
#include <trainperf/trainperf.hpp>
constexpr auto l = trainperf::layout(16, {.tp = 2, .pp = 2, .cp = 2}, "tp-dp-pp").world();
