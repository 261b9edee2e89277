// A consumer: validates a batch at compile time and counts a preset's parameters.
#include <trainperf/trainperf.hpp>

#include <cstdio>

constexpr auto batch = trainperf::solve_batch({.gbs = 1024, .lbs = 4, .dp = 8, .seq = 2048});
static_assert(batch.gas == 32);

int main() {
  const auto params = trainperf::count_params(trainperf::get_preset("llama2-7b").spec).total();
  std::printf("gas %lld, tokens/step %lld, llama2-7b %s parameters\n", static_cast<long long>(batch.gas),
              static_cast<long long>(batch.tokens_per_step()), trainperf::format_count(params).c_str());
  return params == 6'738'415'616 && batch.tokens_per_step() == 2'097'152 ? 0 : 1;
}
