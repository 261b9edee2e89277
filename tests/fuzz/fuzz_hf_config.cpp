// Fuzz target: bytes -> JSON -> io::spec_from_hf_config -> count_params / count_flops. Bad input
// must end in trainperf::config_error (or, for text that is not JSON, nlohmann's exception),
// never in a crash, a sanitizer report, another exception or a hang.
#include <cstddef>
#include <cstdint>
#include <string_view>

#include <nlohmann/json.hpp>
#include <trainperf/io/hf_config.hpp>
#include <trainperf/trainperf.hpp>

namespace {

// The numbers a valid spec feeds into: parameter counts and FLOPs under every convention, at
// the model's own context length and at a short sequence.
void use(const trainperf::transformer_spec& s) {
  using namespace trainperf;
  try {
    (void)count_params(s).total();
    (void)count_params(s, 8).total();
  } catch (const config_error&) {
  }
  for (const flops_convention c :
       {flops_convention::nominal, flops_convention::palm, flops_convention::megatron, flops_convention::kaplan}) {
    for (const std::int64_t seq : {std::int64_t{1}, std::int64_t{2048}, s.max_seq}) {
      try {
        flops_options o;
        o.convention = c;
        o.seq = seq;
        o.causal = c == flops_convention::megatron;
        o.recomputation = recompute::full;
        (void)count_flops(s, o);
      } catch (const config_error&) {
      }
    }
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const std::string_view text(reinterpret_cast<const char*>(data), size);
  // The reader's own text entry point: duplicated keys, deep nesting and bad JSON are config_errors.
  try {
    use(trainperf::io::spec_from_hf_config_text(text, "fuzz.json"));
  } catch (const trainperf::config_error&) {
  }
  // Plain nlohmann parsing, then the already-parsed entry point.
  nlohmann::json j;
  try {
    j = nlohmann::json::parse(text);
  } catch (const nlohmann::json::exception&) {
    return 0;
  }
  try {
    use(trainperf::io::spec_from_hf_config(j, "fuzz.json"));
  } catch (const trainperf::config_error&) {
  }
  return 0;
}
