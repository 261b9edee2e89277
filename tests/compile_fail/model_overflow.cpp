// Must not compile: a parameter count beyond 2^63.
#include <trainperf/trainperf.hpp>
constexpr trainperf::transformer_spec m{
    .layers = 1, .hidden = 2147483648, .heads = 1, .ffn = 2147483648, .vocab = 8, .max_seq = 8};
constexpr auto n = trainperf::count_params(m).total();
