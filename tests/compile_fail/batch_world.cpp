// Must not compile: 30 devices cannot hold TP 8 x PP 4.
#include <trainperf/trainperf.hpp>
constexpr auto dp = trainperf::data_parallel_size(30, 8, 4);
