// Must not compile: llama2-70b's 64 heads over TP 3.
#include <trainperf/trainperf.hpp>
constexpr trainperf::transformer_spec m = trainperf::get_preset("llama2-70b").spec;
constexpr bool ok = (trainperf::validate(trainperf::parallel_config{.tp = 3, .pp = 4}, {.world = 12, .model = m}), true);
