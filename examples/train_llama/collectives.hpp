// What the model asks of its tensor-parallel group: sums and maxima over the ranks that hold the
// other shards of the same layers (Megatron-LM's all-reduces after the row-parallel layers, in
// the backward before the column-parallel ones, and in the vocabulary-parallel embedding and
// cross-entropy), and with sequence parallelism their halves: a reduce-scatter of the token rows
// (each rank keeps the sum of its part) and an all-gather of them. A model without one (nullptr)
// is the whole model: nothing to reduce.
#pragma once

#include <cstdint>

namespace train_llama {

class tensor_group {
 public:
  virtual ~tensor_group() = default;
  virtual void sum(float* x, std::int64_t n) const = 0;   // in place, over the group
  virtual void sum(double* x, std::int64_t n) const = 0;  // in place, over the group
  virtual void max(float* x, std::int64_t n) const = 0;   // in place, over the group
  // whole: size() parts of n elements; part: this rank's (rank() order).
  virtual void reduce_scatter(const float* whole, float* part, std::int64_t n) const = 0;
  virtual void allgather(const float* part, float* whole, std::int64_t n) const = 0;
};

}  // namespace train_llama
