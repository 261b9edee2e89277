// Report rows: rounding rules, markdown and JSON, and the validator.
#include <doctest/doctest.h>

#include <trainperf/trainperf.hpp>

using namespace trainperf;

TEST_CASE("rounding rules are explicit") {
  CHECK(format_percent(0.1077, {1, rounding::truncate}) == "10.7%");
  CHECK(format_percent(0.1077, {1, rounding::nearest}) == "10.8%");
  CHECK(format_percent(0.336, {1, rounding::truncate}) == "33.6%");  // 0.33599999999999997 in binary
  CHECK(format_number(4410.88, {0, rounding::truncate}) == "4410");
  CHECK(format_number(4410.88, {0, rounding::nearest}) == "4411");
  CHECK(format_number(-1.25, {1, rounding::truncate}) == "-1.2");
}

TEST_CASE("a row renders as markdown and as JSON") {
  const report_row r{"H800 4x8", "amp", "TP4PP8DP1", "", 791.37, 5.6, 74, 80, 0.33606};
  CHECK(markdown_header().starts_with("| config | precision | parallel | fix_hp | token/p/s | loss | mem | MFU |"));
  CHECK(to_markdown(r, {.loss = {1, rounding::nearest}}) ==
        "| H800 4x8 | amp | TP4PP8DP1 | / | 791.37 | 5.6 | 74/80 | 33.6% |");
  CHECK(to_json(r, {.loss = {1, rounding::nearest}}) ==
        "{\"config\": \"H800 4x8\", \"precision\": \"amp\", \"parallel\": \"TP4PP8DP1\", \"fix_hp\": \"\", "
        "\"tokens_per_device_per_s\": 791.37, \"loss\": 5.6, \"memory_used_gib\": 74, \"memory_total_gib\": 80, "
        "\"mfu\": 0.336}");
  const report_row empty{"R300 1x8", "fp16", "DP8", "MPE=512 LBS=12", std::nullopt, 5.27, 29, 32, std::nullopt};
  CHECK(to_markdown(empty) == "| R300 1x8 | fp16 | DP8 | MPE=512 LBS=12 |  | 5.27 | 29/32 |  |");
  CHECK(to_json(empty).find("\"mfu\": null") != std::string::npos);
  CHECK(to_json({"a\"b", "", "", "", {}, {}, {}, {}, {}}).starts_with("{\"config\": \"a\\\"b\""));
}

TEST_CASE("the validator catches seed 003's swapped loss and mem columns") {
  // Seed 003 (Moore Threads S4000): header "config | fix_hp | token/p/s | loss | mem | MFU" and
  // the row "| S4000单机8卡（1x8） | / |  |44.2/48.0|3.20|  |".
  const auto header = split_markdown_row("| 配置 | fix_hp | token/p/s | loss | mem | MFU |");
  const auto row = split_markdown_row("| S4000单机8卡（1x8）  |       / |  |44.2/48.0|3.20|  |");
  REQUIRE(row.size() == 6);
  CHECK(row[3] == "44.2/48.0");
  const auto problems = validate_row(header, row);
  REQUIRE(problems.size() == 1);
  CHECK(problems[0].column == "loss");
  CHECK(problems[0].message ==
        "loss column holds '44.2/48.0', which reads as memory used/total, while the mem column holds '3.20', which "
        "reads as a loss: the two columns look swapped");
}

TEST_CASE("the validator accepts the well-formed seed rows and flags other mistakes") {
  const auto header = split_markdown_row("| 配置 | precision | parallel | fix_hp | token/p/s | loss | mem | MFU |");
  // Seed 000, first row.
  CHECK(validate_row(header, split_markdown_row("| H800四机32卡（4x8）  |    fp32    | TP8PP4DP1 |  recompute=True | "
                                                "253.61 | 0.94 | 77/80 | 10.7% |"))
            .empty());
  CHECK(validate_row(header, split_markdown_row("| x | amp | TP4PP8DP1 | / | 791.37 | 5.6 | 84/80 | 33.6% |"))[0]
            .message == "mem '84/80' uses more than the device holds");
  CHECK(validate_row(header, split_markdown_row("| x | amp | TP4PP8DP1 | / | 791.37 | 5.6 | 74/80 | 133.6% |"))[0]
            .column == "MFU");
  CHECK(
      validate_row(header, split_markdown_row("| x | amp | TP4PP8DP1 | / | fast | 5.6 | 74/80 | 33.6% |"))[0].message ==
      "token/p/s 'fast' is not a number");
  CHECK(validate_row(header, split_markdown_row("| x | amp |"))[0].message == "row has 2 cells but the header has 8");
}
