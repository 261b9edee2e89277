// transformer_spec: component counts (checked by independent arithmetic), vocabulary
// padding, MoE, the vision tower, and validation messages.
#include <doctest/doctest.h>

#include <algorithm>
#include <vector>

#include <trainperf/trainperf.hpp>

using namespace trainperf;

TEST_CASE("GPT-2 124M components add up the way the checkpoint's tensors do") {
  const param_counts c = count_params(get_preset("gpt2-124m").spec);
  CHECK(c.token_embedding == 50257 * 768);    // wte
  CHECK(c.position_embedding == 1024 * 768);  // wpe
  CHECK(c.output == 0);                       // lm_head is wte
  // c_attn (768 -> 3 x 768, bias) + c_proj (768 -> 768, bias), 12 layers.
  CHECK(c.attention == 12 * (768 * 2304 + 2304 + 768 * 768 + 768));
  // c_fc (768 -> 3072, bias) + c_proj (3072 -> 768, bias).
  CHECK(c.mlp == 12 * (768 * 3072 + 3072 + 3072 * 768 + 768));
  // ln_1, ln_2 per layer and ln_f, weight and bias each.
  CHECK(c.norms == (12 * 2 + 1) * 2 * 768);
  CHECK(c.embedding() == c.token_embedding + c.position_embedding);
  CHECK(c.non_embedding() == c.total() - c.embedding());
}

TEST_CASE("grouped-query attention shrinks K and V only") {
  const transformer_spec s = get_preset("llama2-70b").spec;  // 64 heads, 8 KV heads, head_dim 128
  const layer_params l = count_layer_params(s, 0);
  CHECK(l.attention == 8192 * 8192 * 2 + 2 * 8192 * 1024);  // q, o full; k, v 8 x 128 = 1024 wide
  CHECK(l.mlp == 3 * 8192 * 28672);
  CHECK(l.norms == 2 * 8192);
  transformer_spec mqa = s;
  mqa.kv_heads = 1;
  CHECK(count_layer_params(mqa, 0).attention == 8192 * 8192 * 2 + 2 * 8192 * 128);
}

TEST_CASE("explicit head_dim decouples q/k/v width from hidden") {
  transformer_spec s = get_preset("llama2-7b").spec;
  s.head_dim = 256;  // q width 32 x 256 = 8192
  CHECK(count_layer_params(s, 0).attention == 4096 * 8192 * 3 + 8192 * 4096);
}

TEST_CASE("Megatron vocabulary padding: multiple of 128 x TP") {
  // megatron/training/tokenizer/tokenizer.py::_vocab_size_with_padding: ceil to
  // make_vocab_size_divisible_by (default 128) x tensor_model_parallel_size.
  transformer_spec s = get_preset("gpt2-124m").spec;
  CHECK(s.padded_vocab(1) == 50257);  // padding rule none: as published
  s.padding = vocab_padding::megatron;
  CHECK(s.padded_vocab(1) == 50304);
  CHECK(s.padded_vocab(8) == 51200);
  transformer_spec l3 = get_preset("llama3-8b").spec;
  l3.padding = vocab_padding::megatron;
  CHECK(l3.padded_vocab(8) == 129024);
  CHECK(count_params(l3, 8).token_embedding == 129024 * 4096);
  CHECK(count_params(s, 1).total() - count_params(get_preset("gpt2-124m").spec).total() == (50304 - 50257) * 768);
}

TEST_CASE("mixture of experts: routed experts, router, active parameters") {
  const transformer_spec s = get_preset("mixtral-8x7b").spec;
  const param_counts c = count_params(s);
  CHECK(c.mlp == 0);
  CHECK(c.router == 32 * 4096 * 8);
  CHECK(c.routed_experts == 32LL * 8 * 3 * 4096 * 14336);
  // Active per token: all but 6 of 8 experts in each of 32 layers. The Mixtral paper
  // (arXiv:2401.04088) rounds this to "13B active parameters".
  const std::int64_t active = count_active_params(s);
  CHECK(active == c.total() - 32LL * 6 * 3 * 4096 * 14336);
  CHECK(active == 12'879'925'248);
  CHECK(count_active_params(get_preset("llama2-7b").spec) == 6'738'415'616);

  transformer_spec every_other = s;  // Megatron moe_layer_freq 2: layers 0, 2, 4, ... are MoE
  every_other.moe.layer_freq = 2;
  CHECK(every_other.moe_layers() == 16);
  CHECK(every_other.is_moe_layer(0));
  CHECK_FALSE(every_other.is_moe_layer(1));
  const param_counts e = count_params(every_other);
  CHECK(e.mlp == 16LL * 3 * 4096 * 14336);
  CHECK(e.routed_experts == c.routed_experts / 2);

  // The first 3 layers dense, then every other layer MoE (transformers' DeepseekV3DecoderLayer:
  // i >= first_k_dense_replace and i % moe_layer_freq == 0): MoE layers 4, 6, ..., 30 = 14.
  transformer_spec first_dense = every_other;
  first_dense.moe.first_dense_layers = 3;
  CHECK(first_dense.moe_layers() == 14);
  CHECK(first_dense.moe_layers_below(5) == 1);
  CHECK_FALSE(first_dense.is_moe_layer(2));
  CHECK(first_dense.is_moe_layer(4));
  CHECK(first_dense.layer_of_shape(true) == 4);
  CHECK(first_dense.layer_of_shape(false) == 0);
  CHECK(count_params(first_dense).mlp == 18LL * 3 * 4096 * 14336);
  first_dense.moe.first_dense_layers = 31;  // no MoE layer left at frequency 2: refused
  CHECK_THROWS_WITH_AS(validate(first_dense), doctest::Contains("leaves no MoE layer"), config_error);

  // The MoE layer last in each period: transformers' Qwen2-MoE with decoder_sparse_step 2 and
  // Llama 4 with interleave_moe_layer_step 2 ((i + 1) % 2 == 0): layers 1, 3, ..., 31.
  transformer_spec odd = every_other;
  odd.moe.layer_offset = 1;
  CHECK_FALSE(odd.is_moe_layer(0));
  CHECK(odd.is_moe_layer(31));
  CHECK(odd.layer_of_shape(true) == 1);
  CHECK(odd.layer_of_shape(false) == 0);
  CHECK(count_params(odd).mlp == e.mlp);
  CHECK(count_params(odd).routed_experts == e.routed_experts);
  // Against a count layer by layer, for periods, offsets, dense prefixes, layers listed dense
  // (Qwen2-MoE's mlp_only_layers) and prefixes [0, n).
  const std::vector<std::vector<std::int64_t>> listings = {{}, {1, 4}, {0, 9}, {2, 3, 5, 7}};
  for (std::int64_t freq = 1; freq <= 4; ++freq)
    for (std::int64_t offset = 0; offset < freq; ++offset)
      for (std::int64_t dense = 0; dense <= 5; ++dense)
        for (const auto& listed : listings) {
          transformer_spec x = s;
          x.layers = 10;
          x.moe.layer_freq = freq, x.moe.layer_offset = offset, x.moe.first_dense_layers = dense;
          for (const std::int64_t i : listed) CHECK(x.moe.dense_layers.insert(i));
          std::int64_t seen = 0, first_moe = -1, first_dense_layer = -1;
          for (std::int64_t i = 0; i < 10; ++i) {
            CHECK(x.moe_layers_below(i) == seen);
            const bool is =
                i >= dense && i % freq == offset && std::find(listed.begin(), listed.end(), i) == listed.end();
            CHECK(x.is_moe_layer(i) == is);
            seen += is;
            if (is && first_moe < 0) first_moe = i;
            if (!is && first_dense_layer < 0) first_dense_layer = i;
          }
          CHECK(x.moe_layers() == seen);
          if (first_moe >= 0) CHECK(x.layer_of_shape(true) == first_moe);
          if (first_dense_layer >= 0) CHECK(x.layer_of_shape(false) == first_dense_layer);
        }
  // Layers listed dense: beyond the model, or every MoE layer, are refused under the list's name.
  transformer_spec listed = s;
  CHECK(listed.moe.dense_layers.insert(32));
  CHECK_THROWS_WITH_AS(validate(listed),
                       doctest::Contains("moe_dense_layers lists layer 32 but the model has 32 layers"), config_error);
  listed.moe.dense_layers = {};
  for (std::int64_t i = 0; i < 32; i += 2) listed.moe.dense_layers.insert(i);
  listed.moe.layer_freq = 2;  // MoE layers 0, 2, ..., 30, all listed dense
  CHECK_THROWS_WITH_AS(validate(listed), doctest::Contains("lists every MoE layer of the 32 layers"), config_error);
  CHECK_FALSE(listed.moe.dense_layers.insert(layer_set::capacity));  // past what a set holds: not added
  CHECK(listed.moe.dense_layers.size() == 16);
  CHECK(listed.moe.dense_layers.last() == 30);
  transformer_spec past_end = odd;  // period 64 at offset 40 over 32 layers: no MoE layer, the offset named
  past_end.moe.layer_freq = 64, past_end.moe.layer_offset = 40;
  CHECK_THROWS_WITH_AS(validate(past_end), doctest::Contains("moe_layer_offset 40 at layer frequency 64 leaves no MoE"),
                       config_error);
  odd.moe.layer_offset = 2;  // outside the period of 2
  CHECK_THROWS_WITH_AS(validate(odd), doctest::Contains("moe_layer_offset 2 must be in [0, layer frequency 2)"),
                       config_error);

  transformer_spec shared = s;  // DeepSeekMoE-style always-on expert of its own width
  shared.moe.shared_experts = 1;
  shared.moe.shared_expert_ffn = 1024;
  CHECK(count_params(shared).shared_experts == 32LL * 3 * 4096 * 1024);
}

TEST_CASE("CLIP ViT-L/14-336 vision tower, counted tensor by tensor") {
  const vision_spec v = get_preset("llava1.5-7b").spec.vision;
  CHECK(v.patches() == 576);
  CHECK(v.tower_tokens() == 577);
  CHECK(v.layers_run() == 23);  // LLaVA reads the penultimate layer
  const std::int64_t per_layer = 4 * (1024 * 1024 + 1024) + 2 * 2 * 1024 + (1024 * 4096 + 4096 + 4096 * 1024 + 1024);
  const std::int64_t expected = 3 * 14 * 14 * 1024  // patch conv, no bias
                                + 1024              // class embedding
                                + 577 * 1024        // positions
                                + 2 * 2 * 1024      // pre- and post-layernorm
                                + 24 * per_layer;
  CHECK(count_vision_tower_params(v) == expected);
  CHECK(expected == 303'507'456);
}

TEST_CASE("validation names the field, the values and the fix") {
  transformer_spec s = get_preset("llama2-7b").spec;
  s.kv_heads = 5;
  CHECK_THROWS_WITH_AS(
      validate(s),
      "heads 32 are not divisible by kv_heads 5; grouped-query attention needs heads = kv_heads x group size",
      config_error);
  try {
    validate(s);
  } catch (const config_error& e) {
    CHECK(e.field() == "kv_heads");
  }
  s = get_preset("llama2-7b").spec;
  s.kv_heads = 64;
  CHECK_THROWS_WITH_AS(validate(s), doctest::Contains("kv_heads 64 exceeds heads 32"), config_error);
  s = get_preset("llama2-7b").spec;
  s.hidden = 4100;
  CHECK_THROWS_WITH_AS(validate(s), doctest::Contains("hidden 4100 is not divisible by heads 32"), config_error);
  s.head_dim = 128;  // explicit head_dim makes it legal
  CHECK_NOTHROW(validate(s));
  s = get_preset("llama2-7b").spec;
  s.layers = 0;
  CHECK_THROWS_WITH_AS(validate(s), "layers must be a positive integer, got 0", config_error);
  s = get_preset("llama2-7b").spec;
  s.vocab = -5;
  CHECK_THROWS_WITH_AS(validate(s), "vocab must be a positive integer, got -5", config_error);
  s = get_preset("mixtral-8x7b").spec;
  s.moe.top_k = 9;
  CHECK_THROWS_WITH_AS(validate(s), "top_k 9 must be between 1 and experts 8", config_error);
  s = get_preset("llama2-7b").spec;
  s.moe.top_k = 2;  // top_k without experts: name what is missing, not "experts must be positive, got 0"
  CHECK_THROWS_WITH_AS(validate(s),
                       "top_k 2 is set but experts is 0; set experts for a mixture-of-experts model, or clear top_k",
                       config_error);
  s = get_preset("llama2-7b").spec;
  s.moe.expert_ffn = 1024;
  CHECK_THROWS_WITH_AS(validate(s), doctest::Contains("experts is 0"), config_error);
  s = get_preset("llava1.5-7b").spec;
  s.vision.image_size = 300;
  CHECK_THROWS_WITH_AS(validate(s), doctest::Contains("vision image_size 300 is not divisible by patch_size 14"),
                       config_error);
  s = get_preset("llava1.5-7b").spec;
  s.vision.feature_layer = -25;
  CHECK_THROWS_AS(validate(s), config_error);
}

TEST_CASE("sizes whose parameter count overflows 64 bits are refused, not wrapped") {
  transformer_spec s = get_preset("llama2-7b").spec;
  s.hidden = 1LL << 31;
  s.heads = 1;
  s.ffn = 1LL << 31;
  CHECK_THROWS_WITH_AS(count_params(s), doctest::Contains("overflows a 64-bit integer"), config_error);
}
