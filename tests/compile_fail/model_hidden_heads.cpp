// Must not compile: hidden 4100 over 32 heads without head_dim.
#include <trainperf/trainperf.hpp>
constexpr trainperf::transformer_spec m{
    .layers = 32, .hidden = 4100, .heads = 32, .ffn = 11008, .vocab = 32000, .max_seq = 4096};
constexpr auto n = trainperf::count_params(m).total();
