// "Did you mean ...?": unknown model, device, flag and choice names are answered with the
// listed names the user most likely meant (error.hpp's detail::close_names).
#include <doctest/doctest.h>

#include <string>
#include <string_view>
#include <vector>

#include <trainperf/trainperf.hpp>

#include "../../examples/trainperf/args.hpp"

using namespace trainperf;

TEST_CASE("name distance is optimal string alignment, ignoring case, '_' vs '-' and O/0, l/1, I/1") {
  using detail::name_distance;
  // The textbook Levenshtein pair: k->s, e->i, +g.
  CHECK(name_distance("kitten", "sitting") == 3);
  // Adjacent swaps cost one edit...
  CHECK(name_distance("gsb", "gbs") == 1);
  CHECK(name_distance("bf61", "bf16") == 1);
  // ...but a substring is not edited twice: "ca" -> "abc" is 3 in optimal string alignment
  // (true Damerau-Levenshtein would say 2: swap to "ac", insert b).
  CHECK(name_distance("ca", "abc") == 3);
  CHECK(name_distance("", "abc") == 3);
  CHECK(name_distance("H100", "h100") == 0);
  CHECK(name_distance("H8OO", "H800") == 0);  // letter O typed for zero
  CHECK(name_distance("ILama2", "llama2") == 0);
  CHECK(name_distance("llama2_7b", "llama2-7b") == 0);
  // A digit for another digit is a different product or size, not a typo: it counts as a
  // deletion plus an insertion.
  CHECK(name_distance("H900", "H100") == 2);
  CHECK(name_distance("H1x0", "H100") == 1);
  CHECK(name_distance("lama2-7b", "llama2-7b") == 1);
}

TEST_CASE("models and devices: abbreviations first, else the nearest names within len/4 edits") {
  // One missing letter in 8 characters (2 edits allowed): only the nearest preset is named
  // (llama2-70b is 2 edits away, llama2-7b 1).
  CHECK_THROWS_WITH_AS(get_preset("lama2-7b"),
                       doctest::Contains("unknown model 'lama2-7b'; did you mean llama2-7b?; known presets: "),
                       config_error);
  CHECK_THROWS_WITH_AS(get_preset("Llama3_8B"), doctest::Contains("; did you mean llama3-8b?; known presets"),
                       config_error);
  // A changed digit costs 2, within the 2 edits that 9 characters allow: both neighbours.
  CHECK_THROWS_WITH_AS(get_preset("llama2-8b"), doctest::Contains("; did you mean llama2-7b or llama3-8b?; known"),
                       config_error);
  CHECK_THROWS_WITH_AS(get_device("H8OO"),
                       doctest::Contains("unknown device 'H8OO'; did you mean H800?; known devices"), config_error);
  CHECK_THROWS_WITH_AS(get_device("mi30x"), doctest::Contains("did you mean MI300X?"), config_error);
  CHECK_THROWS_WITH_AS(get_device("S0400"), doctest::Contains("did you mean S4000?"), config_error);
  // Abbreviations still win, as before; a longer name is still not cut to a listed one.
  CHECK_THROWS_WITH_AS(get_device("a100"),
                       doctest::Contains("unknown device 'a100'; did you mean A100-80GB or A100-40GB?; known"),
                       config_error);
  CHECK_THROWS_WITH_AS(get_device("H100-PCIe"), doctest::Contains("unknown device 'H100-PCIe'; known devices"),
                       config_error);
  CHECK_THROWS_WITH_AS(get_device("H900"), doctest::Contains("unknown device 'H900'; known devices"), config_error);
  CHECK_THROWS_WITH_AS(get_preset("gpt5"), doctest::Contains("unknown model 'gpt5'; known presets"), config_error);
}

namespace {
std::string usage_message(std::vector<std::string> argv, std::vector<cli::flag> known) {
  try {
    const cli::args a(argv, std::move(known));
    static constexpr std::string_view dtypes[] = {"fp32", "tf32", "bf16", "fp16", "fp8"};
    (void)a.get_choice("dtype", dtypes);
  } catch (const cli::usage_error& e) {
    return e.what();
  }
  return "no error";
}
const std::vector<cli::flag> batch_flags = {{"gbs", "N", ""},
                                            {"lbs", "N", ""},
                                            {"gas", "N", ""},
                                            {"dp", "N", ""},
                                            {"tokens-per-device-per-s", "X", ""},
                                            {"dtype", "fp32|tf32|bf16|fp16|fp8", ""}};
}  // namespace

TEST_CASE("CLI flags and choices: the same suggestions, in one line") {
  CHECK(usage_message({"--gsb", "8"}, batch_flags) == "unknown flag --gsb; did you mean --gbs?; see --help");
  CHECK(usage_message({"--gsb=8"}, batch_flags) == "unknown flag --gsb; did you mean --gbs?; see --help");
  CHECK(usage_message({"--tokens-per-device-per-sec", "1"}, batch_flags) ==
        "unknown flag --tokens-per-device-per-sec; did you mean --tokens-per-device-per-s?; see --help");
  CHECK(usage_message({"--tokens", "1"}, batch_flags) ==
        "unknown flag --tokens; did you mean --tokens-per-device-per-s?; see --help");
  CHECK(usage_message({"--foo"}, batch_flags) == "unknown flag --foo; see --help");
  CHECK(usage_message({"--dtype", "bf61"}, batch_flags) ==
        "--dtype expects fp32|tf32|bf16|fp16|fp8, got 'bf61'; did you mean bf16?");
  CHECK(usage_message({"--dtype", "f"}, batch_flags) ==
        "--dtype expects fp32|tf32|bf16|fp16|fp8, got 'f'; did you mean fp32 or fp16 or fp8?");
  CHECK(usage_message({"--dtype", "int4"}, batch_flags) == "--dtype expects fp32|tf32|bf16|fp16|fp8, got 'int4'");
  CHECK(usage_message({"--dtype", "BF16"}, batch_flags) == "no error");
}

TEST_CASE("an enum's names: one table read by the CLI and the Python module") {
  // Each value has a name, found again from it; a name matches whatever its ASCII case; an alias
  // gives its value, whose name stays the first entry's.
  for (const logits_loss l : {logits_loss::standard, logits_loss::chunked, logits_loss::chunked_compiled,
                              logits_loss::autocast, logits_loss::no_upcast, logits_loss::compiled,
                              logits_loss::chunked_fp32_outputs, logits_loss::loss_parallel, logits_loss::fused})
    CHECK(detail::value_named(logits_loss_names, detail::name_of(logits_loss_names, l)) == l);
  for (const framework f : {framework::generic, framework::megatron, framework::megatron_core, framework::deepspeed,
                            framework::fsdp, framework::paddle})
    CHECK(detail::value_named(framework_names, detail::name_of(framework_names, f)) == f);
  CHECK(detail::value_named(framework_names, "Megatron-Core") == framework::megatron_core);
  CHECK(detail::value_named(optimizer_kind_names, "adamw") == optimizer_kind::adam);
  CHECK(detail::name_of(optimizer_kind_names, optimizer_kind::adam) == "adam");
  CHECK(!detail::value_named(logits_loss_names, "fuzed").has_value());
  // The CLI lists them as its placeholders and takes them whatever their case.
  CHECK(cli::choices_of(pipeline_schedule_names) == "gpipe|1f1b|interleaved");
  const cli::args a(std::vector<std::string>{"--schedule", "1F1B"},
                    std::vector<cli::flag>{{"schedule", cli::choices_of(pipeline_schedule_names), ""}});
  CHECK(a.get_named("schedule", pipeline_schedule_names) == pipeline_schedule::one_f_one_b);
}
