// Parallel configurations: every seed configuration validates; broken variants of each fail
// with the rule that names the fix.
#include <doctest/doctest.h>

#include <limits>
#include <string>

#include <trainperf/trainperf.hpp>

using namespace trainperf;

namespace {
std::string messages(const std::vector<violation>& v) {
  std::string all;
  for (const auto& x : v) all += x.field + ": " + x.message + "\n";
  return all;
}
bool has(const std::vector<violation>& v, const std::string& field, const std::string& text) {
  for (const auto& x : v)
    if (x.field == field && x.message.find(text) != std::string::npos) return true;
  return false;
}
}  // namespace

TEST_CASE("seed 000: llama2-70b on 32 H800s, TP8PP4 and TP4PP8, LBS 1, GAS 44 or 1024, seq 4096") {
  const transformer_spec m = get_preset("llama2-70b").spec;
  for (auto [tp, pp, gas] : {std::array<std::int64_t, 3>{8, 4, 44}, {4, 8, 44}, {4, 8, 1024}}) {
    const parallel_config c{.tp = tp, .pp = pp, .recomputation = recompute::full};
    const auto v = check_parallel(c, {.world = 32, .model = m, .seq = 4096, .gbs = gas, .lbs = 1});
    CHECK_MESSAGE(v.empty(), messages(v));
    CHECK(resolved_dp(c, 32) == 1);
  }
  // Broken: TP 16 exceeds the 8 KV groups; TP 3 splits nothing; PP 3 does not divide 80
  // layers; GAS 2 leaves 1F1B without a steady state on PP 4.
  const auto v16 = check_parallel({.tp = 16, .pp = 2}, {.world = 32, .model = m});
  CHECK(has(v16, "tp", "kv_heads 8 are not divisible by tp 16"));
  CHECK(has(v16, "tp", "or replicate each key/value head on tp / kv_heads = 2 ranks (replicate_kv_heads"));
  const auto rep = check_parallel({.tp = 16, .pp = 2, .replicate_kv_heads = true}, {.world = 32, .model = m});
  CHECK_MESSAGE(rep.empty(), messages(rep));
  const auto v3 = check_parallel({.tp = 3, .pp = 4}, {.world = 24, .model = m});
  CHECK(has(v3, "tp", "heads 64 are not divisible by tp 3"));
  CHECK(has(v3, "tp", "ffn 28672 is not divisible by tp 3"));
  CHECK(
      has(v3, "tp",
          "vocabulary 32000 is not divisible by tp 3; pad it as Megatron-LM does (to a multiple of 128 x tp = 32256)"));
  const auto pp3 = check_parallel({.tp = 8, .pp = 3}, {.world = 24, .model = m});
  CHECK(has(pp3, "pp", "layers 80 are not divisible by pp 3 x vpp 1 = 3"));
  const auto gas2 = check_parallel({.tp = 8, .pp = 4}, {.world = 32, .model = m, .gbs = 2, .lbs = 1});
  CHECK(has(gas2, "gas", "2 micro-batches per step are fewer than the 4 pipeline stages"));
  const auto world30 = check_parallel({.tp = 8, .pp = 4}, {.world = 30, .model = m});
  CHECK(has(world30, "world", "world size 30 is not divisible by tp 8 x cp 1 x pp 4 = 32; nearest valid: 32 devices"));
}

TEST_CASE("seed 001: llava1.5-7b on 8 A800s, ZeRO-2 pretraining and ZeRO-3 finetuning") {
  const transformer_spec m = get_preset("llava1.5-7b").spec;
  CHECK(check_parallel({.zero_stage = 2}, {.world = 8, .model = m, .seq = 2048, .gbs = 256, .lbs = 32}).empty());
  CHECK(check_parallel({.zero_stage = 3}, {.world = 8, .model = m, .seq = 2048, .gbs = 128, .lbs = 16}).empty());
  const auto bad = check_parallel({.zero_stage = 4}, {.world = 8, .model = m, .gbs = 100, .lbs = 16});
  CHECK(has(bad, "zero_stage", "ZeRO stage 4 does not exist; use 0, 1, 2 or 3"));
  CHECK(has(bad, "gbs", "global batch 100 is not a multiple of micro batch 16 x data parallel 8 = 128"));
}

TEST_CASE("seeds 002 and 003: llama2-7b with ZeRO-3 on 8 R300s (MPE 512, LBS 12) and on 8 S4000s (LBS 3)") {
  const transformer_spec m = get_preset("llama2-7b").spec;
  CHECK(check_parallel({.zero_stage = 3, .recomputation = recompute::full},
                       {.world = 8, .model = m, .seq = 512, .gbs = 96, .lbs = 12})
            .empty());
  CHECK(check_parallel({.recomputation = recompute::full}, {.world = 8, .model = m, .seq = 4096, .gbs = 24, .lbs = 3})
            .empty());
  // Broken: sequence parallelism without tensor parallelism; distributed optimizer on ZeRO-3.
  const auto sp = check_parallel({.sequence_parallel = true}, {.world = 8, .model = m});
  CHECK(has(sp, "sequence_parallel", "with tp 1 there are none"));
  const auto dopt = check_parallel({.zero_stage = 3, .distributed_optimizer = true}, {.world = 8, .model = m});
  CHECK(has(dopt, "distributed_optimizer", "use one of the two"));
}

TEST_CASE("seed 004: Paddle GPT-3 6.7B and 13B on 8 A100s, TP1/2, PP1/4, sharding stage 1/2") {
  struct row {
    const char* name;
    const char* model;
    std::int64_t tp, pp, lbs, gas;
    int zero;
  };
  const row rows[] = {
      {"6.7B TP1PP1SH2SP8", "gpt3-6.7b", 1, 1, 4, 32, 2}, {"6.7B TP2PP1SH1SP4", "gpt3-6.7b", 2, 1, 4, 64, 1},
      {"6.7B TP2PP1SH2SP4", "gpt3-6.7b", 2, 1, 4, 64, 2}, {"6.7B TP2PP4SH1SP1", "gpt3-6.7b", 2, 4, 4, 256, 1},
      {"13B TP1PP1SH2SP8", "gpt3-13b", 1, 1, 2, 64, 2},   {"13B TP2PP1SH1SP4", "gpt3-13b", 2, 1, 2, 128, 1},
      {"13B TP2PP1SH2SP4", "gpt3-13b", 2, 1, 2, 128, 2},  {"13B TP2PP4SH1SP1", "gpt3-13b", 2, 4, 4, 256, 1},
  };
  for (const row& r : rows) {
    CAPTURE(r.name);
    const transformer_spec m = get_preset(r.model).spec;
    const parallel_config c{.tp = r.tp, .pp = r.pp, .zero_stage = r.zero};
    const std::int64_t dp = resolved_dp(c, 8);
    const auto v = check_parallel(c, {.world = 8, .model = m, .seq = 2048, .gbs = r.lbs * r.gas * dp, .lbs = r.lbs});
    CHECK_MESSAGE(v.empty(), messages(v));
    CHECK(r.lbs * r.gas * dp == 1024);
  }
  // Broken: the 13B's 40 layers do not split over PP 3 x VPP 2; interleaving 6 micro-batches
  // over PP 4.
  const transformer_spec m13 = get_preset("gpt3-13b").spec;
  CHECK(has(check_parallel({.tp = 2, .pp = 3, .vpp = 2}, {.world = 6, .model = m13}), "pp",
            "layers 40 are not divisible by pp 3 x vpp 2 = 6"));
  CHECK(has(check_parallel({.tp = 2, .pp = 4, .vpp = 2}, {.world = 8, .model = m13, .gbs = 24, .lbs = 4}), "gas",
            "6 micro-batches per step are not a multiple of pp 4"));
}

TEST_CASE("context and expert parallelism rules") {
  const transformer_spec l3 = get_preset("llama3-8b").spec;
  CHECK(check_parallel({.tp = 2, .cp = 2}, {.world = 8, .model = l3, .seq = 8192}).empty());
  CHECK(has(check_parallel({.tp = 2, .cp = 2}, {.world = 8, .model = l3, .seq = 8190}), "seq",
            "sequence 8190 is not divisible by 2 x cp = 4"));
  const transformer_spec mx = get_preset("mixtral-8x7b").spec;
  CHECK(check_parallel({.tp = 2, .ep = 4, .etp = 1}, {.world = 16, .model = mx}).empty());
  CHECK(
      has(check_parallel({.tp = 2, .ep = 3}, {.world = 12, .model = mx}), "ep", "experts 8 are not divisible by ep 3"));
  CHECK(
      has(check_parallel({.ep = 3}, {.world = 8, .model = mx}), "ep", "is not divisible by ep 3 x expert tp 1 x pp 1"));
  CHECK(has(check_parallel({.ep = 2}, {.world = 8, .model = l3}), "ep", "on a dense model"));
  CHECK(has(check_parallel({.vpp = 2}, {.world = 8}), "vpp", "needs pipeline parallelism"));
  // Sequence parallelism: seq / cp tokens scattered over tp ranks.
  CHECK(check_parallel({.tp = 2, .sequence_parallel = true}, {.world = 8, .model = l3, .seq = 8192}).empty());
  CHECK(has(check_parallel({.tp = 4, .sequence_parallel = true}, {.world = 8, .model = l3, .seq = 8190}), "seq",
            "sequence 8190 is not divisible by cp 1 x tp 4"));
  CHECK(has(check_parallel({.tp = 4, .cp = 2, .sequence_parallel = true}, {.world = 8, .model = l3, .seq = 8188}),
            "seq", "sequence 8188 is not divisible by cp 2 x tp 4"));
  CHECK(has(check_parallel({.tp = 0}), "tp", "tp must be a positive integer, got 0"));
}

TEST_CASE("validate throws every violation at once; constant evaluation refuses an invalid config") {
  const transformer_spec m = get_preset("llama2-70b").spec;
  try {
    validate(parallel_config{.tp = 3, .pp = 3}, {.world = 9, .model = m});
    FAIL("expected a config_error");
  } catch (const config_error& e) {
    const std::string what = e.what();
    CHECK(e.field() == "tp");
    CHECK(what.find("heads 64 are not divisible by tp 3") != std::string::npos);
    CHECK(what.find("layers 80 are not divisible by pp 3") != std::string::npos);
  }
  static constexpr transformer_spec l70 = get_preset("llama2-70b").spec;
  static_assert(
      check_parallel({.tp = 8, .pp = 4}, {.world = 32, .model = l70, .seq = 4096, .gbs = 44, .lbs = 1}).empty());
}

TEST_CASE("parallel degrees above 2^20 are refused before any product of them is formed") {
  const std::int64_t top = std::numeric_limits<std::int64_t>::max();
  const auto v = check_parallel({.tp = 2, .pp = top}, {.world = 8});
  REQUIRE(v.size() == 1);
  CHECK(v[0].field == "pp");
  CHECK(v[0].message == "pp 9223372036854775807 exceeds the largest supported parallel degree 2^20 = 1048576");
  // At the bound, tp x cp x pp x dp = 2^80 does not fit in 64 bits: refused, not wrapped.
  const std::int64_t d = max_parallel_degree;
  CHECK_THROWS_WITH_AS(validate({.tp = d, .pp = d, .dp = d, .cp = d}, {.world = 8}),
                       doctest::Contains("tp x cp x pp x dp overflows a 64-bit integer"), config_error);
}
