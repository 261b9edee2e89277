// Case-report reader and check-report's audit: the five seed reports as published (each real
// problem found, nothing else) and a synthetic report with one broken cell per row.
#include <doctest/doctest.h>

#include <string>
#include <vector>

#include <trainperf/io/report_check.hpp>

using namespace trainperf;

namespace {
std::string seed(const char* name) { return std::string(TRAINPERF_TEST_DATA) + "/seed_reports/" + name; }
report_audit audit(const char* name) { return check_report(io::read_case_report(seed(name))); }
std::vector<std::string> kinds(const report_audit& a) {
  std::vector<std::string> k;
  for (const auto& f : a.findings) k.push_back(f.kind);
  return k;
}
// The findings of one row, as "kind/severity".
std::vector<std::string> row_findings(const report_audit& a, int row) {
  std::vector<std::string> k;
  for (const auto& f : a.findings)
    if (f.row == row) k.push_back(f.kind + "/" + std::string(to_string(f.severity)));
  return k;
}
using strings = std::vector<std::string>;
}  // namespace

TEST_CASE("cells read as the seed reports print them") {
  const auto h800 = io::parse_device_cell("H800四机32卡（4x8）");
  REQUIRE(h800);
  CHECK(h800->name == "H800");
  CHECK(*h800->nodes == 4);
  CHECK(*h800->per_node == 8);
  CHECK(*h800->total() == 32);
  const auto a100 = io::parse_device_cell("A100单机8卡（1x8*80G）");
  REQUIRE(a100);
  CHECK(*a100->capacity == 80);
  CHECK(*a100->total() == 8);
  const auto a800 = io::parse_device_cell("A800单机8卡（1x8）（pretrain）");
  REQUIRE(a800);
  CHECK(a800->labels == strings{"pretrain"});
  CHECK(*io::parse_device_cell("S4000 1x8")->total() == 8);
  CHECK_FALSE(io::parse_device_cell("a cluster"));
  CHECK_FALSE(io::parse_device_cell("H800"));  // no count: not guessed

  const auto gas = io::parse_settings("GAS=1024(GBS=1024=4M tokens)");
  REQUIRE(gas.size() == 2);
  CHECK(gas[0].key == "GAS");
  CHECK(gas[0].values == strings{"1024"});
  CHECK(gas[1].key == "GBS");
  CHECK(gas[1].values == strings{"1024", "4M tokens"});
  const auto two = io::parse_settings("MPE=512 LBS=12");
  REQUIRE(two.size() == 2);
  CHECK(two[1].key == "LBS");
  CHECK(two[1].values == strings{"12"});
  const auto paddle = io::parse_settings("per_device_bs=4, accumulate=32, (global bs = 2M tokens)");
  REQUIRE(paddle.size() == 3);
  CHECK(paddle[2].key == "global bs");
  CHECK(paddle[2].values == strings{"2M tokens"});
  const auto precision = io::parse_settings("fp16, level=\"O2\"");
  REQUIRE(precision.size() == 2);
  CHECK(precision[0].key == "fp16");
  CHECK(precision[1].values == strings{"O2"});

  const auto p = io::parse_parallel("TP8PP4DP1");
  REQUIRE(p);
  CHECK((*p->tp == 8 && *p->pp == 4 && *p->dp == 1));
  const auto name = io::parse_parallel("config_TP2PP4SH1SP1A10080Gx1x8");
  REQUIRE(name);
  CHECK((*name->tp == 2 && *name->pp == 4 && *name->sharding_stage == 1 && *name->sharding_degree == 1));
  CHECK_FALSE(name->dp);
  const auto strategy = io::parse_parallel(
      "flash_attention=True, recompute=False, sharding=\"stage1\", tensor_parallel_degree=2, "
      "pipline_parallel_degree=4");
  REQUIRE(strategy);
  CHECK((*strategy->tp == 2 && *strategy->pp == 4 && *strategy->sharding_stage == 1));

  const auto t = io::parse_throughput("  17.23 * 2048 / 8 = 4410 tokens/s   ");
  REQUIRE(t);
  CHECK(t->value.value == 4410);
  CHECK(t->value.decimals == 0);
  REQUIRE(t->terms.size() == 3);
  CHECK(t->ops == std::vector<char>{'*', '/'});
  CHECK(io::parse_throughput("253.61")->value.decimals == 2);
  CHECK_FALSE(io::parse_throughput("fast"));

  const auto stages = io::parse_memory("46.77\\*2 + 36.59\\*2 + 30.09\\*2 + 27.78\\*2 GB");
  REQUIRE(stages);
  CHECK(stages->groups.size() == 4);
  CHECK(stages->unit == "GB");
  const auto pair = io::parse_memory("44.2/48.0");
  REQUIRE(pair);
  CHECK(pair->capacity->value == 48);
  CHECK(pair->capacity->decimals == 1);
  CHECK(io::parse_memory("66.27 * 8 GB")->groups[0].second == 8);
  CHECK_FALSE(io::parse_memory("3.20%"));
}

TEST_CASE("seed 000: the fp32 row's MFU is against the bf16 peak, and row 4 repeats row 3") {
  const report_audit a = audit("seed000.md");
  REQUIRE(a.rows.size() == 4);
  // Batch prose: LBS 1, GAS 44 by default, DP = world / TP / PP = 32 / 8 / 4 = 1; row 4's
  // GAS=1024 gives GBS 1024 = 4M tokens (4,194,304), the Llama 2 paper's batch.
  CHECK(*a.rows[0].dp == 1);
  CHECK(*a.rows[0].gbs == 44);
  CHECK(*a.rows[3].gbs == 1024);
  CHECK(*a.rows[3].seq == 4096);
  CHECK(kinds(a) == strings{"precision_peak", "duplicate"});
  CHECK(a.count(finding_severity::error) == 0);
  // 253.61 x 6 x 70e9 / 494.7e12 (H800 dense TF32, the datasheet's 989.4 with sparsity halved) = 21.53%.
  CHECK(a.findings[0].row == 1);
  CHECK(a.findings[0].printed == "10.7%");
  CHECK(a.findings[0].expected == "21.5%");
  CHECK(a.findings[1].row == 4);
}

TEST_CASE("seed 001: mem stands in fix_hp with a capacity of 81, and the finetune MFU does not follow") {
  const report_audit a = audit("seed001.md");
  REQUIRE(a.rows.size() == 2);
  CHECK(row_findings(a, 1) == strings{"misplaced/error", "capacity/warning"});
  CHECK(row_findings(a, 2) == strings{"misplaced/error", "capacity/warning", "mfu/error"});
  // Pretrain (LLaVA trains the projector alone): 4013 x 2 x 7e9 / 312e12 = 18.01%, as printed.
  CHECK(a.rows[0].mfu_recomputed.value() == doctest::Approx(0.180071).epsilon(1e-5));
  CHECK(*a.rows[0].lbs == 32);  // "pretrain阶段为32"
  CHECK(*a.rows[1].lbs == 16);
  // Finetune: 2937 x 6 x 7e9 / 312e12 = 39.54%, printed 39.57%.
  const report_finding& mfu = a.findings.back();
  CHECK(mfu.printed == "39.57%");
  CHECK(mfu.expected == "39.54%");
  CHECK(*a.rows[1].memory_used == 78);  // read from where it stands
}

TEST_CASE("seeds 002 and 003: blank token/p/s and MFU; 003's loss and mem swapped") {
  const report_audit r300 = audit("seed002.md");
  CHECK(kinds(r300) == strings{"blank", "blank"});
  CHECK(r300.findings[0].column == "tokens/p/s");
  CHECK(r300.findings[1].column == "MFU");
  // fix_hp MPE=512 LBS=12 over the defaults (MPE 4096, LBS 1, GAS 1); DP = world = 8.
  CHECK(*r300.rows[0].lbs == 12);
  CHECK(*r300.rows[0].seq == 512);
  CHECK(*r300.rows[0].gbs == 96);
  const report_audit s4000 = audit("seed003.md");
  CHECK(kinds(s4000) == strings{"swapped", "blank", "blank"});
  CHECK(*s4000.rows[0].loss == doctest::Approx(3.2));
  CHECK(*s4000.rows[0].memory_used == doctest::Approx(44.2));
  CHECK(*s4000.rows[0].memory_capacity == 48);
}

TEST_CASE("seed 004: the Paddle arithmetic holds; memory is printed in GB under a GiB statement") {
  const report_audit a = audit("seed004.md");
  REQUIRE(a.rows.size() == 8);
  CHECK(kinds(a) == strings{"unit"});
  CHECK(a.findings[0].row == 0);
  for (const auto& r : a.rows) {  // every row: 1024 sequences of 2048 = 2M tokens, on 8 devices
    CHECK(*r.gbs == 1024);
    CHECK(*r.seq == 2048);
    CHECK(*r.devices == 8);
  }
  CHECK(a.rows[0].model == "gpt3-6.7b");
  CHECK(a.rows[4].model == "gpt3-13b");
  CHECK(*a.rows[3].memory_used == doctest::Approx(46.77));  // the first of four stages
  CHECK((*a.rows[3].tp == 2 && *a.rows[3].pp == 4 && *a.rows[3].dp == 1));
}

// llama2-7b (nominal N 7e9) on H100 (dense bf16 989.4 TFLOP/s): MFU = token/p/s x 42e9 / 989.4e12.
// 3000 -> 12.735%; 3100 -> 13.16%; 3200 at 8N -> 18.11%. Defaults LBS 2, MPE 4096, GAS 8.
constexpr const char* synthetic = R"(# Synthetic report: one broken cell per row

* Batch sizes
  1. local_batchsize, LBS: default 2
  2. seqlength, MPE: default 4096
  3. gradient_accumulate_steps, GAS: default 8
  4. global_batchsize = local_batchsize * gradient_accumulate_steps * data_parallel_size, where data_parallel_size = world_size / TPsize / PPsize

| metric | value | note |
|---|---|---|
| model | llama2_7b | |
| mem | mem, see the results | GiB |
| MFU | MFU, see the results | PaLM paper |

| config | precision | parallel | fix_hp | token/p/s | loss | mem | MFU |
|---|---|---|---|---|---|---|---|
| H100 (1x8) | bf16 | TP1PP1DP8 | / | 3000 | 2.10 | 60/80 | 12.7% |
| H100 (1x8) | bf16 | TP2PP1DP4 | / | 3100 | 2.11 | 61/80 | 14.0% |
| H100 (1x8) | bf16 | TP2PP1DP4 | / | 3200 | 2.12 | 62/80 | 18.1% |
| H100 (1x8) | bf16 | TP2PP1DP4 | / | 3000 | 2.13 | 63/80 | 120% |
| H100 (1x8) | bf16 | TP2PP2DP4 | / | 3000 | 2.14 | 64/80 | 12.7% |
| H100 (1x8) | bf16 | TP1PP1DP8 | / | 10.0 * 4096 / 8 = 5000 tokens/s | 2.15 | 65/80 | |
| H100 (1x8) | bf16 | TP1PP1DP8 | / | 3000 | 2.16 | 70*4 + 60*2 | 12.7% |
| H100 (1x8) | bf16 | TP1PP1DP8 | / | 3000 | 2.17 | 85/80 | 12.7% |
| H100 (1x8) | bf16 | TP1PP1DP8 | / | 3000 | 2.18 | 60/94 | 12.7% |
| H100 (1x8) | bf16 | TP1PP1DP8 | GAS=16(GBS=512) | 3000 | 2.19 | 60/80 | 12.7% |
| H100 (1x8) | bf16 | TP1PP1DP8 | GBS=128=2M tokens | 3000 | 2.20 | 60/80 | 12.7% |
| H100 (1x8) | bf16 | TP1PP1DP8 | / | 3000 | -0.5 | 60/80 | 12.7% |
| H100 (1x8) | bf16 | TP1PP1DP8 | / | 3000 | 5% | 60/80 | 12.7% |
| H100 (1x8) | fp32 | TP1PP1DP8 | / | 3000 | 2.21 | 60/80 | 12.7% |
| H100 (1x8) | bf16 | TP1PP1DP8 | / | 3000 | 2.22 | 60/80 | / |
| H100四机16卡（4x8） | bf16 | / | / | 3000 | 2.23 | 60/80 | 12.7% |
| H100 (1x8) | bf16 | TP1PP1DP8 | recompute=True | 3000 | 2.10 | 60/80 | 12.7% |
| some cluster | bf16 | TP1PP1DP8 | / | 3000 | 2.24 | 60/80 | 12.7% |
| H100 (1x8) | bf16 | TP1PP1DP8 | / | 10 * 2048 / 8 = 2560 | 2.25 | 60/80 | |
| H100 (1x8) | bf16 | TP1PP1DP8 | / | 3000 |
| H100 (1x8) | bf16 | TP1PP1DP8 | GBS=128=0.5M tokens | 3000 | 2.26 | 60/80 | 12.74% |
| H100 (1x8) | bf16 | TP1PP1DP8 | / | 3000 | 2.27 | 70\*4 + 60\*4 = 540 | 12.7% |
| H100 (1x8) | bf16 | TP1PP1DP8 | / | 3000 | 2.28 | 70\*4 + 60\*4 = 520 | 12.7% |
| H100 (1x8) | bf16 | TP1PP1DP8 | / | 17.23 * 4096 / 8 = 8824 | 2.29 | 46.77\*4 + 36.59\*4 = 333.48 | |

| hyperparameter | value |
|---|---|
| lr | 3e-4 |
)";

TEST_CASE("every check, one broken cell per row") {
  const io::case_report r = io::parse_case_report(synthetic);
  const report_audit a = check_report(r);
  REQUIRE(a.rows.size() == 23);  // the 21st table line has 5 cells: not understood
  CHECK(row_findings(a, 1).empty());
  CHECK(*a.rows[0].gbs == 128);  // 2 x 8 x 8
  CHECK(row_findings(a, 2) == strings{"mfu/error"});
  CHECK(a.findings[0].expected == "13.2%");                        // 3100 x 42e9 / 989.4e12 = 13.16%
  CHECK(row_findings(a, 3) == strings{"mfu_convention/warning"});  // 3200 x 8 x 7e9 / 989.4e12 = 18.11%
  CHECK(row_findings(a, 4) == strings{"over_100/error"});
  CHECK(row_findings(a, 5) == strings{"device_count/error"});               // 2 x 2 x 4 = 16 of 8
  CHECK(row_findings(a, 6) == strings{"blank/error", "arithmetic/error"});  // 10 x 4096 / 8 = 5120
  CHECK(row_findings(a, 7) == strings{"device_count/error"});               // 4 + 2 devices of 8
  CHECK(row_findings(a, 8) == strings{"over_capacity/error"});
  CHECK(row_findings(a, 9) == strings{"capacity/warning"});  // H100: 80 GiB
  CHECK(row_findings(a, 10) == strings{"gbs/error"});        // 2 x 16 x 8 = 256
  CHECK(row_findings(a, 11) == strings{"gbs/error"});        // 128 x 4096 = 524,288 tokens = 0.5M
  CHECK(row_findings(a, 12) == strings{"negative/error"});
  CHECK(row_findings(a, 13) == strings{"wrong_column/error"});
  // fp32 against the TF32 peak (494.7): 3000 x 42e9 / 494.7e12 = 25.47%; 12.7% is the bf16 figure.
  CHECK(row_findings(a, 14) == strings{"precision_peak/warning"});
  CHECK(row_findings(a, 15) == strings{"blank/error"});
  CHECK(row_findings(a, 16) == strings{"device_count/error"});  // 4 x 8 = 32, not 16
  CHECK(*a.rows[15].dp == 16);                                  // no parallel cell: DP = world
  CHECK(row_findings(a, 17) == strings{"duplicate/warning"});   // row 1's figures, recompute=True
  CHECK(row_findings(a, 18) == strings{"not_understood/warning", "unchecked/warning"});
  CHECK(row_findings(a, 19) == strings{"blank/error", "arithmetic/error"});  // seq 2048, the run's 4096
  CHECK(row_findings(a, 20).empty());                                        // 524,288 tokens print as 0.5M
  CHECK(row_findings(a, 21) == strings{"arithmetic/error"});                 // 4 x 70 + 4 x 60 = 520, not 540
  CHECK(row_findings(a, 22).empty());
  // A measurement as printed stands for a range: 17.23 x 4096 / 8 = 8821.76, but 17.234 (printed
  // 17.23) gives 8823.8, printed 8824; 4 x (46.774 + 36.596) = 333.48 where the printed terms sum
  // to 333.44. Whole terms after the first (a sequence length, a device count) are exact: row 6's
  // 10.0 x 4096 / 8 can give 5094-5171, never 5000.
  CHECK(row_findings(a, 23) == strings{"blank/error"});
  // Not understood: the short row and the table without metric columns, each with its line.
  std::vector<int> lines;
  for (const auto& f : a.findings)
    if (f.row == 0 && f.kind == "not_understood") lines.push_back(f.line);
  CHECK(lines == std::vector<int>{36, 42});
}

TEST_CASE("headers as people write them; nothing read is an error; what is not read is said") {
  // "MFU (%)" and "final loss" are the MFU and loss columns: 3000 x 42e9 / 989.4e12 = 12.735%.
  const report_audit a = check_report(io::parse_case_report(
      "| model | config | precision | token/p/s | final loss | MFU (%) |\n|---|---|---|---|---|---|\n"
      "| llama2-7b | H100 (1x8) | bf16 | 3000 | 2.1 | 14.0% |\n"));
  REQUIRE(a.rows.size() == 1);
  CHECK(kinds(a) == strings{"mfu"});
  CHECK(a.findings[0].expected == "12.7%");
  // No results table: an error, with the table that was not one listed.
  const report_audit none = check_report(io::parse_case_report("# a report\n\nmodel | MFU\n---|---\nx | 1%\n"));
  CHECK(kinds(none) == strings{"no_rows", "not_understood"});
  CHECK(none.count(finding_severity::error) == 1);
  // A cell with digits in a form the reader does not know is not understood (a warning), one
  // without digits is no figure (an error).
  const report_audit cells = check_report(io::parse_case_report(
      "| config | token/p/s | loss | mem |\n|---|---|---|---|\n| H100 (1x8) | 4,410 | n/a | 74GiB/80GiB |\n"));
  CHECK(row_findings(cells, 1) == strings{"not_understood/warning", "not_a_number/error", "not_understood/warning"});
}

TEST_CASE("options: a preset, a peak and a multiplier for every row") {
  // Seed 001's finetune row at N = 7.06e9 (LLaVA's exact size, say): 2937 x 6 x 7.06e9 / 312e12 = 39.88%.
  report_check_options o;
  o.params = 7.06e9;
  const report_audit a = check_report(io::read_case_report(seed("seed001.md")), o);
  CHECK(a.findings.back().expected == "39.88%");
  // A peak given: seed 000's fp32 row at 989e12 (FlagPerf's theoryflops) follows, 10.77%.
  report_check_options peak;
  peak.peak_flops = 989e12;
  const report_audit b = check_report(io::read_case_report(seed("seed000.md")), peak);
  CHECK(kinds(b) == strings{"duplicate"});
  report_check_options unknown;
  unknown.device = "H9000";
  CHECK_THROWS_AS(check_report(io::parse_case_report(synthetic), unknown), config_error);
}

TEST_CASE("--predict reads the settings each report states") {
  report_check_options o;
  o.predict_memory = true;
  // Seed 001: "ZeRO-DP Pretrain-stage:O2 Finetune-stage:O3", flash attention 2, bf16.
  const report_audit llava = check_report(io::read_case_report(seed("seed001.md")), o);
  CHECK(llava.rows[0].memory_predicted_from.starts_with(
      "deepspeed accounting, bf16 weights, ZeRO 2, recompute none, flash attention"));
  CHECK(llava.rows[1].memory_predicted_from.starts_with("deepspeed accounting, bf16 weights, ZeRO 3"));
  // It says no gradient checkpointing, which the run used: the model puts it above 81 GiB, and says so.
  CHECK(llava.rows[0].memory_predicted_from.ends_with("a setting the report does not state"));
  // Seed 002: "ZeRO-DP O3", gradient_checkpointing, fp16, no flash attention named.
  const report_audit r300 = check_report(io::read_case_report(seed("seed002.md")), o);
  CHECK(r300.rows[0].memory_predicted_from ==
        "deepspeed accounting, fp16 weights, ZeRO 3, recompute full, unfused attention");
  // Seed 004: sharding stage from the config name, recompute from the strategy cell, in GB.
  const report_audit paddle = check_report(io::read_case_report(seed("seed004.md")), o);
  CHECK(paddle.rows[0].memory_predicted_from ==
        "paddle accounting, fp16 weights, ZeRO 2, recompute none, flash attention");
  CHECK(paddle.rows[5].memory_predicted_from ==
        "paddle accounting, fp16 weights, ZeRO 1, recompute full, flash attention");
  for (const auto& r : paddle.rows) CHECK(r.memory_predicted.value_or(0) > 0);
  // Without --predict nothing is computed.
  CHECK_FALSE(audit("seed004.md").rows[0].memory_predicted);
}

TEST_CASE("a report written by to_markdown_report passes check-report") {
  // 2,000 token/p/s x 6e8 FLOPs per token / 1.5e13 = 8%: every printed cell follows.
  const report_preamble p{.model = "tiny",
                          .params = 853120,
                          .device = "CPU",
                          .flops_convention = "megatron convention, causal attention halved",
                          .flops_per_token = 6e8,
                          .peak_flops = 1.5e13,
                          .peak_source = "a test",
                          .lbs = 4,
                          .gas = 2,
                          .seq = 128,
                          .memory_note = "peak RSS"};
  const row_format f{.tokens = {2, rounding::nearest},
                     .loss = {4, rounding::nearest},
                     .memory = {2, rounding::nearest},
                     .mfu = {2, rounding::nearest}};
  const std::vector<report_row> rows{
      {"CPU (1x2)", "fp32", "TP1PP1DP2", "LBS=4 GAS=2 MPE=128", 2000.004, 3.21, 0.5, 23.5, 0.0800003},
      {"CPU (1x1)", "fp32", "TP1PP1DP1", "LBS=2 GAS=1 MPE=128", 1234.5678, 3.5, 0.25, 23.5, 1234.5678 * 6e8 / 1.5e13}};
  const std::string md = to_markdown_report(p, rows, f);
  const report_audit a = check_report(io::parse_case_report(md));
  CHECK(a.findings.empty());
  REQUIRE(a.rows.size() == 2);
  CHECK(*a.rows[0].gbs == 16);  // 4 x 2 x 2
  CHECK(*a.rows[1].gbs == 2);
  CHECK(a.rows[0].mfu_recomputed.value() == doctest::Approx(0.08));
  // A cell changed by hand is caught: the MFU of row 1 at 8.10%.
  std::string edited = md;
  edited.replace(edited.find("| 8.00% |"), 9, "| 8.10% |");
  CHECK(kinds(check_report(io::parse_case_report(edited))) == strings{"mfu"});
}
