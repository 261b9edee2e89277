// Fuzz target: train_llama's checkpoint reader (examples/train_llama/checkpoint.hpp) over
// arbitrary bytes: verify_checkpoint on its own, and restore_checkpoint into a small model
// (verify against it, then copy). Bad input must be a config_error, never a crash, a hang,
// a leak or an allocation sized by the file's header.
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

#include "../../examples/train_llama/checkpoint.hpp"

namespace {

// The seed corpus's model (tests/fuzz/corpus/checkpoint): 204 parameters, a 2,544-byte file.
const trainperf::transformer_spec& fuzz_spec() {
  static const trainperf::transformer_spec s{
      .layers = 1, .hidden = 4, .heads = 1, .kv_heads = 1, .ffn = 8, .vocab = 8, .max_seq = 8, .tied_embeddings = true};
  return s;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const std::string_view bytes(reinterpret_cast<const char*>(data), size);
  try {
    (void)train_llama::verify_checkpoint(bytes, "fuzz.bin");
  } catch (const trainperf::config_error&) {
  }
  static train_llama::llama_params m(fuzz_spec());
  try {
    (void)train_llama::restore_checkpoint(bytes, "fuzz.bin", m, 1);
  } catch (const trainperf::config_error&) {
  }
  return 0;
}
