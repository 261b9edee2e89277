// Batch algebra: every batch setting of the five seed reports (../shared/seeds), solving
// for each unknown, and the messages for invalid settings.
#include <doctest/doctest.h>

#include <limits>

#include <trainperf/trainperf.hpp>

using namespace trainperf;

TEST_CASE("seed 000: llama2-70b on 4 x 8 H800, TP8PP4 and TP4PP8, seq 4096") {
  // "global_batchsize = LBS x GAS x data_parallel_size, data_parallel_size = world/TP/PP";
  // LBS 1, GAS 44 by default; the fourth row sets GAS 1024 ("GBS=1024=4M tokens").
  CHECK(data_parallel_size(32, 8, 4) == 1);
  CHECK(data_parallel_size(32, 4, 8) == 1);
  const batch_config b = solve_batch({.lbs = 1, .gas = 44, .dp = data_parallel_size(32, 8, 4), .seq = 4096});
  CHECK(b.gbs == 44);
  CHECK(b.tokens_per_step() == 44 * 4096);
  const batch_config aligned = solve_batch({.lbs = 1, .gas = 1024, .dp = data_parallel_size(32, 4, 8), .seq = 4096});
  CHECK(aligned.gbs == 1024);
  CHECK(aligned.tokens_per_step() == 4 * 1024 * 1024);  // "4M tokens", as the Llama 2 paper's batch
}

TEST_CASE("seed 001: llava1.5-7b on 1 x 8 A800, data parallel only, seq 2048") {
  const batch_config pretrain = solve_batch({.lbs = 32, .gas = 1, .dp = 8, .seq = 2048});
  CHECK(pretrain.gbs == 256);
  const batch_config finetune = solve_batch({.lbs = 16, .gas = 1, .dp = 8, .seq = 2048});
  CHECK(finetune.gbs == 128);
  CHECK(finetune.tokens_per_micro_batch() == 16 * 2048);
}

TEST_CASE("seed 002: llama2-7b on 1 x 8 R300, ZeRO-3 DP 8") {
  // Defaults MPE 4096, LBS 1, GAS 1; the reported run used MPE 512, LBS 12.
  CHECK(solve_batch({.lbs = 1, .gas = 1, .dp = 8, .seq = 4096}).gbs == 8);
  const batch_config run = solve_batch({.lbs = 12, .gas = 1, .dp = 8, .seq = 512});
  CHECK(run.gbs == 96);
  CHECK(run.tokens_per_step() == 96 * 512);
}

TEST_CASE("seed 003: llama2-7b on 1 x 8 S4000, LBS 3, MPE 4096") {
  // LBS 3 as the report states it; the config file it names sets batchsize = 6, which is what
  // ran (tests/seed_memory_rows.hpp uses 6).
  const batch_config b = solve_batch({.lbs = 3, .gas = 1, .dp = 8, .seq = 4096});
  CHECK(b.gbs == 24);
  CHECK(b.tokens_per_device(8) == doctest::Approx(3 * 4096));
}

TEST_CASE("seed 004: every Paddle GPT-3 row is 1024 sequences = 2M tokens") {
  // TP<t>PP<p>SH<stage>SP<degree> on 8 A100s; the sharding degree is the data-parallel degree.
  struct row {
    const char* config;
    std::int64_t tp, pp, lbs, gas;
  };
  const row rows[] = {
      {"6.7B TP1PP1SH2SP8", 1, 1, 4, 32},  {"6.7B TP2PP1SH1SP4", 2, 1, 4, 64}, {"6.7B TP2PP1SH2SP4", 2, 1, 4, 64},
      {"6.7B TP2PP4SH1SP1", 2, 4, 4, 256}, {"13B TP1PP1SH2SP8", 1, 1, 2, 64},  {"13B TP2PP1SH1SP4", 2, 1, 2, 128},
      {"13B TP2PP1SH2SP4", 2, 1, 2, 128},  {"13B TP2PP4SH1SP1", 2, 4, 4, 256},
  };
  for (const row& r : rows) {
    CAPTURE(r.config);
    const std::int64_t dp = data_parallel_size(8, r.tp, r.pp);
    const batch_config b = solve_batch({.lbs = r.lbs, .gas = r.gas, .dp = dp, .seq = 2048});
    CHECK(b.gbs == 1024);
    CHECK(b.tokens_per_step() == 2 * 1024 * 1024);
    // And the other direction: the report's 2M-token global batch fixes GAS.
    CHECK(solve_batch({.gbs = 1024, .lbs = r.lbs, .dp = dp}).gas == r.gas);
  }
}

TEST_CASE("any three of GBS, LBS, GAS, DP give the fourth") {
  CHECK(solve_batch({.gbs = 1024, .lbs = 4, .gas = 32}).dp == 8);
  CHECK(solve_batch({.gbs = 1024, .gas = 128, .dp = 4}).lbs == 2);
  CHECK(solve_batch({.gbs = 1024, .lbs = 2, .dp = 4}).gas == 128);
  CHECK(solve_batch({.lbs = 2, .gas = 128, .dp = 4}).gbs == 1024);
  CHECK(solve_batch({.gbs = 1024, .lbs = 2, .gas = 128, .dp = 4}).gbs == 1024);  // all four: checked
  const batch_config b = make_batch(1024, 2, 128, 4, 2048);
  CHECK(b.micro_batches_per_replica() == 128);
  CHECK(b.micro_batches_per_step() == 512);
  CHECK(b.tokens_per_replica() == 2 * 128 * 2048);
}

TEST_CASE("non-integral solutions are refused with the nearest valid global batch") {
  CHECK_THROWS_WITH_AS(solve_batch({.gbs = 1000, .lbs = 4, .dp = 8}),
                       "global batch 1000 is not a multiple of micro batch 4 x data parallel 8 = 32, so accumulation "
                       "is not an integer; nearest valid: 992 or 1024",
                       config_error);
  CHECK_THROWS_WITH_AS(solve_batch({.gbs = 1000, .gas = 3, .dp = 8}),
                       doctest::Contains("accumulation 3 x data parallel 8 = 24, so micro batch is not an integer; "
                                         "nearest valid: 984 or 1008"),
                       config_error);
  CHECK_THROWS_WITH_AS(solve_batch({.gbs = 100, .lbs = 3, .gas = 7}),
                       doctest::Contains("micro batch 3 x accumulation 7 = 21, so data parallel is not an integer; "
                                         "nearest valid: 84 or 105"),
                       config_error);
  // Below the first multiple there is only one neighbour.
  CHECK_THROWS_WITH_AS(solve_batch({.gbs = 8, .lbs = 4, .dp = 8}), doctest::Contains("nearest valid: 32"),
                       config_error);
}

TEST_CASE("inconsistent, incomplete and non-positive settings are refused") {
  CHECK_THROWS_WITH_AS(
      make_batch(1000, 4, 32, 8),
      "global batch 1000 != micro batch 4 x accumulation 32 x data parallel 8 = 1024; set gbs to 1024, "
      "or leave one of the four out to solve for it",
      config_error);
  CHECK_THROWS_WITH_AS(solve_batch({.gbs = 1024, .lbs = 4}),
                       "give at least three of gbs, lbs, gas, dp; missing: gas, dp", config_error);
  CHECK_THROWS_WITH_AS(solve_batch({.gbs = 1024, .lbs = 0, .dp = 8}), "lbs must be a positive integer, got 0",
                       config_error);
  CHECK_THROWS_WITH_AS(solve_batch({.lbs = 4, .gas = -1, .dp = 8}), "gas must be a positive integer, got -1",
                       config_error);
  CHECK_THROWS_WITH_AS((void)make_batch(8, 1, 1, 8).tokens_per_step(), "seq must be a positive integer, got 0",
                       config_error);
  CHECK_THROWS_WITH_AS(make_batch(8, 1, 1, 8, -2048), "seq must be a positive integer, got -2048", config_error);
  CHECK_THROWS_WITH_AS(data_parallel_size(30, 8, 4),
                       "world size 30 is not divisible by tensor 8 x pipeline 4 x context 1 = 32; nearest valid: 32 "
                       "devices, or change tp/pp/cp",
                       config_error);
  try {
    solve_batch({.gbs = 1000, .lbs = 4, .dp = 8});
  } catch (const config_error& e) {
    CHECK(e.field() == "gbs");
  }
}

TEST_CASE("products that overflow 64 bits are refused") {
  const std::int64_t big = std::int64_t{1} << 40;
  CHECK_THROWS_WITH_AS(solve_batch({.lbs = big, .gas = big, .dp = 2}), doctest::Contains("overflows a 64-bit integer"),
                       config_error);
  CHECK_THROWS_WITH_AS((void)make_batch(big, big, 1, 1, big).tokens_per_step(), doctest::Contains("overflows"),
                       config_error);
}

TEST_CASE("the nearest valid batch never wraps past 2^63 - 1") {
  // 2^63 - 1 = 9223372036854775807 is not a multiple of 32; the multiple below is
  // 2^63 - 32 = 9223372036854775776, the one above does not fit in 64 bits and is left out.
  const std::int64_t top = std::numeric_limits<std::int64_t>::max();
  CHECK_THROWS_WITH_AS(solve_batch({.gbs = top, .lbs = 4, .dp = 8}),
                       "global batch 9223372036854775807 is not a multiple of micro batch 4 x data parallel 8 = "
                       "32, so accumulation is not an integer; nearest valid: 9223372036854775776",
                       config_error);
}
