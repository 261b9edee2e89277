// Must not compile: 32 heads in groups of 5 KV heads.
#include <trainperf/trainperf.hpp>
constexpr trainperf::transformer_spec m{
    .layers = 32, .hidden = 4096, .heads = 32, .kv_heads = 5, .ffn = 11008, .vocab = 32000, .max_seq = 4096};
constexpr auto n = trainperf::count_params(m).total();
