// Megatron-LM's --moe-layer-freq list expressions: what Python's eval gives for each string
// (worked by hand below), and the errors for what it would refuse or Megatron-LM would assert on.
#include <doctest/doctest.h>

#include <string>

#include <trainperf/io/megatron_layer_pattern.hpp>
#include <trainperf/presets.hpp>

using namespace trainperf;

namespace {
transformer_spec with_pattern(const char* text) {
  transformer_spec s = get_preset("mixtral-8x7b").spec;  // 32 layers, all MoE
  io::apply_moe_layer_pattern(s, text, "--moe-layer-freq");
  validate(s);
  return s;
}
}  // namespace

TEST_CASE("Megatron-LM layer patterns place the MoE layers") {
  // ([0]*1+[1]*3)*8 is [0,1,1,1] eight times: layers 0, 4, ..., 28 dense, the other 24 MoE.
  const transformer_spec every_fourth_dense = with_pattern("([0]*1+[1]*3)*8");
  CHECK(every_fourth_dense.moe_layers() == 24);
  for (std::int64_t i = 0; i < 32; ++i) CHECK(every_fourth_dense.is_moe_layer(i) == (i % 4 != 0));
  // GLM-4.5's launch scripts: [0]*3+[1]*N; 3*[1] is Python's other spelling of [1]*3.
  CHECK(with_pattern("[0]*3+[1]*29").moe_layers() == 29);
  CHECK(with_pattern("3*[0] + 29*[1]").moe.dense_layers.size() == 3);
  // The list written out, and quoted as slime's scripts pass it ("'([1]*48)'").
  CHECK(with_pattern("[1,0,1,0,1,0,1,0,1,0,1,0,1,0,1,0,1,0,1,0,1,0,1,0,1,0,1,0,1,0,1,0]").moe_layers() == 16);
  CHECK(with_pattern("'([1]*32)'").moe_layers() == 32);
  CHECK(io::is_layer_pattern("([1]*32)"));
  CHECK(io::is_layer_pattern("3*[1]+[0]"));
  CHECK_FALSE(io::is_layer_pattern("2"));
}

TEST_CASE("Megatron-LM layer patterns that cannot be read are refused with the place") {
  const auto refused = [](const char* text, const char* message) {
    CHECK_THROWS_WITH_AS(with_pattern(text), doctest::Contains(message), config_error);
  };
  refused("([0]*1+[1]*3)*9", "the list has 36 entries but the model has 32 layers");
  refused("[1,2]*16", "entry 1 is 2; entries are 1 (MoE) or 0 (dense)");
  refused("[0]*32", "no entry is 1");
  refused("([1]*32", "at character 8: expected ')'");
  refused("[1]*[2]", "'*' repeats a list by a count; it needs one of each");
  refused("[1]+2", "'+' joins two lists");
  refused("[1]*32 x", "unexpected 'x'");
  refused("[1]*300", "more than 256 layers");
  refused("[1]*99999999999", "number too large");
  refused("[2]*32", "entry 0 is 2");  // a bad entry named before "no entry is 1"
  // Parentheses nested past 64 are refused, not recursed into (a deep one would exhaust the stack).
  refused((std::string(65, '(') + "[1]*32" + std::string(65, ')')).c_str(), "nested deeper than 64");
  CHECK(with_pattern((std::string(64, '(') + "[1]*32" + std::string(64, ')')).c_str()).moe_layers() == 32);
  // An empty list repeated stays empty at once, however large the count.
  CHECK(with_pattern("[]*999999+[1]*32+[]*999999").moe_layers() == 32);
  CHECK(with_pattern("[1]*16\t+\n[1]*16").moe_layers() == 32);  // any white space between tokens
  // A dense model has no MoE layers to place.
  transformer_spec dense = get_preset("llama2-7b").spec;
  CHECK_THROWS_WITH_AS(io::apply_moe_layer_pattern(dense, "[1]*32", "--moe-layer-freq"),
                       doctest::Contains("the model has no experts; set experts and top_k"), config_error);
}
