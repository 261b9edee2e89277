// The meter as a trainer embeds it: README.md ("Three examples for a consumer") shows the lines
// between the readme-begin and readme-end markers, and the test embedding_readme_in_sync keeps
// them identical.
// readme-begin
#include <trainperf/trainperf.hpp>

#include <cstdio>
#include <utility>

int main() {
  using namespace trainperf;
  const preset& llama = get_preset("llama2-7b");  // nominal size 7e9, the benchmark suites' N
  const flops_count f = count_flops(llama.spec, {.convention = flops_convention::nominal, .seq = 4096,
                                                 .recomputation = recompute::full, .params = llama.nominal_params});
  meter m({.model_flops_per_token = f.model_per_token(), .hardware_flops_per_token = f.hardware_per_token(),
           .peak_flops = require_peak(get_device("H100"), dtype::bf16), .devices = 8, .warmup_steps = 1, .window = 2});
  for (double seconds : {90.0, 32.0, 16.0, 16.0}) m.step_sequences(128, 4096, seconds);  // the 90 s step: warm-up
  for (const auto& [name, s] : {std::pair{"running ", *m.running()}, std::pair{"windowed", *m.windowed()}})
    std::printf("%s %.0f token/p/s, %.2f samples/s, %.1f TFLOP/s, MFU %.2f%%, HFU %.2f%%\n", name,
                s.tokens_per_device_per_s, *s.samples_per_s, s.tflops_per_device, 100 * *s.mfu, 100 * *s.hfu);
}
// readme-end
//
// The output, by hand (the test embedding_meter pins it):
//   FLOPs per token, nominal: 6 x 7e9 = 42e9 (model); full recomputation adds one more forward,
//   2 x 7e9, so 56e9 (hardware). Peak: the H100 SXM's dense bf16 989.4 TFLOP/s (half the
//   datasheet's 1978.9 "with sparsity").
//   Each step: 128 x 4096 = 524,288 tokens over 8 devices = 65,536 tokens per device.
//   running, the 3 steps after the warm-up: 3 x 65,536 / (32 + 16 + 16) s = 3,072 token/p/s;
//     384 sequences / 64 s = 6.00 samples/s; 3,072 x 42e9 = 129.024 TFLOP/s;
//     MFU 129.024 / 989.4 = 13.04%; HFU 3,072 x 56e9 = 172.032 TFLOP/s / 989.4 = 17.39%.
//   windowed, the last 2 steps: 2 x 65,536 / 32 s = 4,096 token/p/s; 256 / 32 = 8.00 samples/s;
//     4,096 x 42e9 = 172.032 TFLOP/s; MFU 172.032 / 989.4 = 17.39%;
//     HFU 4,096 x 56e9 = 229.376 TFLOP/s / 989.4 = 23.18%.
