// trainperf — batch-size algebra: GBS = LBS x GAS x DP, in sequences and in tokens.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

#include "error.hpp"

namespace trainperf {

// A complete, consistent batch configuration. All batch sizes count sequences.
//   gbs: global batch per optimizer step     lbs: micro (local) batch per device per micro-step
//   gas: gradient-accumulation steps          dp:  data-parallel replicas
//   seq: tokens per sequence (0 when unknown; the token figures then need it)
struct batch_config {
  std::int64_t gbs = 0;
  std::int64_t lbs = 0;
  std::int64_t gas = 0;
  std::int64_t dp = 0;
  std::int64_t seq = 0;

  // Micro-batches each data-parallel replica runs per step (what a pipeline schedule sees).
  [[nodiscard]] constexpr std::int64_t micro_batches_per_replica() const { return gas; }
  [[nodiscard]] constexpr std::int64_t micro_batches_per_step() const { return gas * dp; }
  [[nodiscard]] constexpr std::int64_t tokens_per_micro_batch() const { return tokens(lbs); }
  [[nodiscard]] constexpr std::int64_t tokens_per_replica() const { return tokens(lbs * gas); }
  [[nodiscard]] constexpr std::int64_t tokens_per_step() const { return tokens(gbs); }
  // Tokens per device per step when `world` devices share the step (TP/PP/CP ranks of a
  // replica each count the replica's tokens once between them, as token/p/s does).
  [[nodiscard]] constexpr double tokens_per_device(std::int64_t world) const {
    detail::require_positive(world, "world");
    return static_cast<double>(tokens_per_step()) / static_cast<double>(world);
  }

 private:
  constexpr std::int64_t tokens(std::int64_t sequences) const {
    detail::require_positive(seq, "seq");
    return detail::checked_mul(sequences, seq, "tokens per step");
  }
};

// Any three of gbs, lbs, gas, dp (and optionally seq); solve_batch finds the fourth.
struct batch_query {
  std::optional<std::int64_t> gbs{};
  std::optional<std::int64_t> lbs{};
  std::optional<std::int64_t> gas{};
  std::optional<std::int64_t> dp{};
  std::int64_t seq = 0;
};

namespace reason {
inline void fewer_than_three_of_gbs_lbs_gas_dp_are_given() {}
inline void global_batch_is_not_lbs_times_gas_times_dp() {}
inline void global_batch_is_not_a_multiple_of_micro_batch_times_data_parallel() {}
inline void global_batch_is_not_a_multiple_of_accumulation_times_data_parallel() {}
inline void global_batch_is_not_a_multiple_of_micro_batch_times_accumulation() {}
inline void world_size_is_not_divisible_by_tp_times_pp_times_cp() {}
}  // namespace reason

namespace detail {

// gbs must be a multiple of a*b; the message names both factors and proposes gbs values.
constexpr void require_gbs_multiple(std::int64_t gbs, std::int64_t a, std::string_view a_name, std::int64_t b,
                                    std::string_view b_name, std::string_view solved, reason::fn why) {
  const std::int64_t m = checked_mul(a, b, "batch");
  require(gbs % m == 0, why, "gbs", [&] {
    return "global batch " + str(gbs) + " is not a multiple of " + std::string(a_name) + " " + str(a) + " x " +
           std::string(b_name) + " " + str(b) + " = " + str(m) + ", so " + std::string(solved) +
           " is not an integer; " + nearest_multiples(gbs, m);
  });
}

}  // namespace detail

// Checks a complete configuration: every size positive and gbs == lbs x gas x dp.
constexpr batch_config make_batch(std::int64_t gbs, std::int64_t lbs, std::int64_t gas, std::int64_t dp,
                                  std::int64_t seq = 0) {
  using namespace detail;
  require_positive(gbs, "gbs");
  require_positive(lbs, "lbs");
  require_positive(gas, "gas");
  require_positive(dp, "dp");
  if (seq != 0) require_positive(seq, "seq");
  const std::int64_t product = checked_mul(checked_mul(lbs, gas, "batch"), dp, "batch");
  require(gbs == product, reason::global_batch_is_not_lbs_times_gas_times_dp, "gbs", [&] {
    return "global batch " + str(gbs) + " != micro batch " + str(lbs) + " x accumulation " + str(gas) +
           " x data parallel " + str(dp) + " = " + str(product) + "; set gbs to " + str(product) +
           ", or leave one of the four out to solve for it";
  });
  return batch_config{gbs, lbs, gas, dp, seq};
}

// Solves GBS = LBS x GAS x DP for the one unknown; rejects non-integral solutions with
// the nearest valid global batch sizes.
constexpr batch_config solve_batch(const batch_query& q) {
  using namespace detail;
  const struct {
    std::string_view name;
    std::optional<std::int64_t> value;
  } fields[] = {{"gbs", q.gbs}, {"lbs", q.lbs}, {"gas", q.gas}, {"dp", q.dp}};
  int given = 0;
  for (const auto& f : fields) given += f.value.has_value();
  require(given >= 3, reason::fewer_than_three_of_gbs_lbs_gas_dp_are_given, "batch", [&] {
    std::string missing;
    for (const auto& f : fields)
      if (!f.value) missing += (missing.empty() ? "" : ", ") + std::string(f.name);
    return "give at least three of gbs, lbs, gas, dp; missing: " + missing;
  });
  for (const auto& f : fields)
    if (f.value) require_positive(*f.value, f.name);
  if (!q.gas) {
    require_gbs_multiple(*q.gbs, *q.lbs, "micro batch", *q.dp, "data parallel", "accumulation",
                         reason::global_batch_is_not_a_multiple_of_micro_batch_times_data_parallel);
    return make_batch(*q.gbs, *q.lbs, *q.gbs / (*q.lbs * *q.dp), *q.dp, q.seq);
  }
  if (!q.lbs) {
    require_gbs_multiple(*q.gbs, *q.gas, "accumulation", *q.dp, "data parallel", "micro batch",
                         reason::global_batch_is_not_a_multiple_of_accumulation_times_data_parallel);
    return make_batch(*q.gbs, *q.gbs / (*q.gas * *q.dp), *q.gas, *q.dp, q.seq);
  }
  if (!q.dp) {
    require_gbs_multiple(*q.gbs, *q.lbs, "micro batch", *q.gas, "accumulation", "data parallel",
                         reason::global_batch_is_not_a_multiple_of_micro_batch_times_accumulation);
    return make_batch(*q.gbs, *q.lbs, *q.gas, *q.gbs / (*q.lbs * *q.gas), q.seq);
  }
  const std::int64_t gbs = q.gbs ? *q.gbs : checked_mul(checked_mul(*q.lbs, *q.gas, "gbs"), *q.dp, "gbs");
  return make_batch(gbs, *q.lbs, *q.gas, *q.dp, q.seq);
}

// Data-parallel degree left once tensor, pipeline and context parallelism take their share:
// DP = world / (TP x PP x CP) (Megatron-LM, megatron/core/parallel_state.py).
constexpr std::int64_t data_parallel_size(std::int64_t world, std::int64_t tp, std::int64_t pp, std::int64_t cp = 1) {
  using namespace detail;
  require_positive(world, "world");
  require_positive(tp, "tp");
  require_positive(pp, "pp");
  require_positive(cp, "cp");
  const std::int64_t model = checked_mul(checked_mul(tp, pp, "tp x pp"), cp, "tp x pp x cp");
  require(world % model == 0, reason::world_size_is_not_divisible_by_tp_times_pp_times_cp, "world", [&] {
    return "world size " + str(world) + " is not divisible by tensor " + str(tp) + " x pipeline " + str(pp) +
           " x context " + str(cp) + " = " + str(model) + "; " + nearest_multiples(world, model) +
           " devices, or change tp/pp/cp";
  });
  return world / model;
}

}  // namespace trainperf
