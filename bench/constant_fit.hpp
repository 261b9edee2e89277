// The memory model's two global constants (runtime overhead c0 in GiB, activation overhead c1)
// fitted by least squares of the relative error, sum ((predicted - measured) / measured)^2, on
// a grid (the prediction is not linear in them where reserves and capacity cap it). Shared by
// bench/memory_accuracy (the seeds) and bench/memory_corpus (the public corpus).
#pragma once

#include <cstddef>
#include <utility>

namespace trainperf::bench {

struct constant_grid {
  double c0_step, c1_step;  // GiB, fraction
  int c0_steps, c1_steps;   // c0 in [0, c0_steps c0_step], c1 in [0, c1_steps c1_step]
};

// predicted(i, j, k): row i's prediction (GiB) at c0 = j c0_step, c1 = k c1_step;
// measured(i): its measured GiB; use(i): whether row i takes part. Returns (c0, c1).
template <class Predicted, class Measured, class Use>
std::pair<double, double> fit_constants(std::size_t rows, const constant_grid& g, Predicted&& predicted,
                                        Measured&& measured, Use&& use) {
  double best = 1e300;
  std::pair<double, double> arg{0, 0};
  for (int j = 0; j <= g.c0_steps; ++j)
    for (int k = 0; k <= g.c1_steps; ++k) {
      double sum = 0;
      for (std::size_t i = 0; i < rows; ++i) {
        if (!use(i)) continue;
        const double e = (predicted(i, j, k) - measured(i)) / measured(i);
        sum += e * e;
      }
      if (sum < best) best = sum, arg = {j * g.c0_step, k * g.c1_step};
    }
  return arg;
}

}  // namespace trainperf::bench
