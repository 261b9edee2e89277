// Exact parameter counts of the presets, pinned by published figures. Each vector cites
// where the number is published; none is derived from trainperf.
#include <doctest/doctest.h>

#include <trainperf/trainperf.hpp>

using namespace trainperf;

namespace {
std::int64_t total(std::string_view name) { return count_params(get_preset(name).spec).total(); }
}  // namespace

TEST_CASE("Llama 2 parameter counts") {
  // Llama 2 7B / 13B / 70B: 6,738,415,616 / 13,015,864,320 / 68,976,648,192, the counts of
  // the released weights (transformers' num_parameters() on meta-llama/Llama-2-*-hf).
  CHECK(total("llama2-7b") == 6'738'415'616);
  CHECK(total("llama2-13b") == 13'015'864'320);
  CHECK(total("llama2-70b") == 68'976'648'192);
  // The Hub's safetensors metadata for the same repositories says 6,738,417,664 /
  // 13,015,866,880 / 68,976,653,312: the original conversion also stored each layer's
  // rotary inv_freq buffer of head_dim / 2 = 64 floats, which is not a parameter.
  CHECK(total("llama2-7b") + 32 * 64 == 6'738'417'664);
  CHECK(total("llama2-13b") + 40 * 64 == 13'015'866'880);
  CHECK(total("llama2-70b") + 80 * 64 == 68'976'653'312);
}

TEST_CASE("Llama 3 parameter counts") {
  // keras-team/keras-hub keras_hub/src/models/llama3/llama3_presets.py (llama3_8b_en):
  // 8,030,261,248; the Hub's safetensors total_size for meta-llama/Meta-Llama-3-8B is
  // 16,060,522,496 bytes of bf16 = 2 x 8,030,261,248.
  CHECK(total("llama3-8b") == 8'030'261'248);
  CHECK(total("llama3-8b") * 2 == 16'060'522'496);
  // meta-llama/Meta-Llama-3-70B safetensors total_size 141,107,412,992 bytes (bf16).
  CHECK(total("llama3-70b") * 2 == 141'107'412'992);
  // meta-llama/Llama-3.1-405B: the Hub reports 405,853,388,800 parameters (8 KV heads).
  CHECK(total("llama3-405b") == 405'853'388'800);
}

TEST_CASE("GPT-2 parameter counts (tied embeddings, vocabulary 50257)") {
  // keras-hub keras_hub/src/models/gpt2/gpt2_presets.py: gpt2_base_en 124,439,808,
  // gpt2_medium_en 354,823,168, gpt2_large_en 774,030,080, gpt2_extra_large_en 1,557,611,200.
  CHECK(total("gpt2-124m") == 124'439'808);
  transformer_spec s = get_preset("gpt2-124m").spec;
  s.layers = 24, s.hidden = 1024, s.heads = 16, s.ffn = 4096;
  CHECK(count_params(s).total() == 354'823'168);
  s.layers = 36, s.hidden = 1280, s.heads = 20, s.ffn = 5120;
  CHECK(count_params(s).total() == 774'030'080);
  s.layers = 48, s.hidden = 1600, s.heads = 25, s.ffn = 6400;
  CHECK(count_params(s).total() == 1'557'611'200);
}

TEST_CASE("Mistral 7B and Mixtral 8x7B") {
  // keras-hub keras_hub/src/models/mistral/mistral_presets.py (mistral_7b_en): 7,241,732,096.
  CHECK(total("mistral-7b") == 7'241'732'096);
  // keras-hub keras_hub/src/models/mixtral/mixtral_presets.py: 46,702,792,704; the Hub's
  // safetensors total_size for mistralai/Mixtral-8x7B-v0.1 is 93,405,585,408 bytes (bf16).
  CHECK(total("mixtral-8x7b") == 46'702'792'704);
  CHECK(total("mixtral-8x7b") * 2 == 93'405'585'408);
}

TEST_CASE("Pythia 1.4B: total and non-embedding (untied, so both embedding matrices leave)") {
  // Pythia model card, "Naming convention and parameter count" table (Biderman et al. 2023,
  // arXiv:2304.01373): pythia-1.4b 1,414,647,808 total, 1,208,602,624 non-embedding.
  const param_counts c = count_params(get_preset("pythia-1.4b").spec);
  CHECK(c.total() == 1'414'647'808);
  CHECK(c.non_embedding() == 1'208'602'624);
}

TEST_CASE("LLaVA 1.5 7B: LLM + CLIP ViT-L/14-336 tower + projector") {
  // llava-hf/llava-1.5-7b-hf has 7,063,427,072 parameters (its safetensors header: 686
  // tensors). That checkpoint's text vocabulary is 32064 (64 added tokens); the preset
  // follows the original liuhaotian/llava-v1.5-7b with 32000, i.e. 2 x 64 x 4096 fewer.
  const param_counts c = count_params(get_preset("llava1.5-7b").spec);
  CHECK(c.total() + 2 * 64 * 4096 == 7'063'427'072);
  // The LLM part is exactly Llama 2 7B (Vicuna v1.5 is a Llama 2 finetune).
  CHECK(c.language_model() == 6'738'415'616);
  // Projector: 1024 -> 4096 -> 4096 with biases (independent arithmetic).
  CHECK(c.projector == 1024 * 4096 + 4096 + 4096 * 4096 + 4096);
}

TEST_CASE("every preset validates and names its source") {
  for (const preset& p : presets) {
    CAPTURE(p.name);
    CHECK_NOTHROW(validate(p.spec));
    CHECK(!p.source.empty());
    CHECK(count_params(p.spec).total() > 0);
  }
  CHECK(get_preset("llama2-70b").nominal_params == 70e9);
  CHECK(find_preset("Llama2-70B") == &get_preset("llama2-70b"));  // names ignore ASCII case, as devices do
  CHECK(find_preset("llama2-70") == nullptr);
  CHECK_THROWS_WITH_AS(get_preset("gpt5"), doctest::Contains("unknown model 'gpt5'; known presets: llama2-7b"),
                       config_error);
  // An abbreviation is answered with every preset it abbreviates, in the table's order.
  CHECK_THROWS_WITH_AS(get_preset("GPT3"),
                       doctest::Contains("unknown model 'GPT3'; did you mean gpt3-6.7b or gpt3-13b or gpt3-175b?; "
                                         "known presets: llama2-7b"),
                       config_error);
}
