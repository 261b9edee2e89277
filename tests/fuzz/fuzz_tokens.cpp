// Fuzz target: train_llama's token parser (examples/train_llama/data.hpp, parse_tokens) over
// arbitrary bytes, as a .npy file and as raw ids of each dtype. The first byte picks the file
// name and dtype; the rest is the file. Bad input must be a config_error, never a crash, a
// hang, a leak or a huge allocation.
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

#include "../../examples/train_llama/data.hpp"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  if (size == 0) return 0;
  static const char* const names[] = {"tokens.npy", "tokens.u16", "tokens.bin", "tokens.bin"};
  static const char* const dtypes[] = {"u16", "u16", "u32", "i32"};
  const unsigned pick = data[0] % 4;
  const std::int64_t vocab = (data[0] & 0x80) ? 256 : 50304;
  const std::string_view bytes(reinterpret_cast<const char*>(data) + 1, size - 1);
  try {
    const auto tokens = train_llama::parse_tokens(bytes, names[pick], dtypes[pick], vocab);
    for (const std::int32_t t : tokens)
      if (t < 0 || t >= vocab) __builtin_trap();  // an id outside the vocabulary got through
  } catch (const trainperf::config_error&) {
  }
  return 0;
}
