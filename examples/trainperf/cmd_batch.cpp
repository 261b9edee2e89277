// trainperf batch: GBS = LBS x GAS x DP: give three (or --world/--tp/--pp for dp), get the fourth
#include <string>
#include <vector>

#include <fmt/format.h>
#include <fmt/ranges.h>

#include <trainperf/trainperf.hpp>

#include "cli.hpp"

namespace trainperf::cli {
namespace {
namespace tp = trainperf;

std::vector<flag> batch_flags() {
  return with_common({
      {"gbs", "N", "global batch (sequences)"},
      {"lbs", "N", "micro batch per device (sequences)"},
      {"gas", "N", "gradient-accumulation steps"},
      {"dp", "N", "data-parallel degree"},
      {"world", "N", "devices in all; with --tp/--pp/--cp gives dp"},
      {"tp", "N", "tensor-parallel degree (with --world)"},
      {"pp", "N", "pipeline-parallel degree (with --world)"},
      {"cp", "N", "context-parallel degree (with --world)"},
      {"seq", "N", "sequence length (tokens)"},
  });
}

int run_batch(const args& a, output& out) {
  tp::batch_query q{a.get_int("gbs"), a.get_int("lbs"), a.get_int("gas"), a.get_int("dp"),
                    a.get_int("seq").value_or(0)};
  const auto world = a.get_int("world");
  if (!world && (a.has("tp") || a.has("pp") || a.has("cp")))
    throw usage_error("--tp/--pp/--cp only count with --world (dp = world / (tp x pp x cp))");
  if (world) {
    const std::int64_t dp = tp::data_parallel_size(*world, a.get_int("tp").value_or(1), a.get_int("pp").value_or(1),
                                                   a.get_int("cp").value_or(1));
    if (q.dp && *q.dp != dp)
      throw tp::config_error(
          "dp", fmt::format("--dp {} contradicts --world {} / (tp x pp x cp) = {}; drop one", *q.dp, *world, dp));
    q.dp = dp;
  }
  const tp::batch_config b = tp::solve_batch(q);
  if (a.has("json")) {
    json j{{"gbs", b.gbs}, {"lbs", b.lbs}, {"gas", b.gas}, {"dp", b.dp}};
    j["micro_batches_per_step"] = b.micro_batches_per_step();
    if (b.seq) {
      j["seq"] = b.seq;
      j["tokens_per_step"] = b.tokens_per_step();
      j["tokens_per_micro_batch"] = b.tokens_per_micro_batch();
      if (world) j["tokens_per_device_per_step"] = b.tokens_per_device(*world);
    } else {
      j["seq"] = nullptr;
      j["tokens_per_step"] = nullptr;
    }
    out.print_json(j);
    return 0;
  }
  out.print("GBS = LBS x GAS x DP: {} = {} x {} x {}\n", b.gbs, b.lbs, b.gas, b.dp);
  out.print("  micro-batches per step  {} ({} per data-parallel replica)\n", b.micro_batches_per_step(), b.gas);
  if (b.seq) {
    out.print("  tokens per step         {} ({} sequences x {})\n", tp::format_count(b.tokens_per_step()), b.gbs,
              b.seq);
    out.print("  tokens per micro-batch  {}\n", tp::format_count(b.tokens_per_micro_batch()));
    if (world) {  // a fraction when tensor/pipeline/context ranks share a replica's tokens
      const std::int64_t tokens = b.tokens_per_step();
      out.print("  tokens per device/step  {}\n", tokens % *world == 0
                                                      ? tp::format_count(tokens / *world)
                                                      : fmt::format("{:.2f}", b.tokens_per_device(*world)));
    }
  }
  return 0;
}

}  // namespace

command batch_command() {
  return {"batch", "GBS = LBS x GAS x DP: give three (or --world/--tp/--pp for dp), get the fourth", batch_flags,
          run_batch};
}

}  // namespace trainperf::cli
