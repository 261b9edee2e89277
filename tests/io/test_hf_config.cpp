// Hugging Face config.json reader, on files written from the published configs
// (tests/io/data) and on deliberately broken ones.
#include <doctest/doctest.h>

#include <string>

#include <trainperf/io/hf_config.hpp>
#include <trainperf/trainperf.hpp>

using namespace trainperf;
using nlohmann::json;

namespace {
std::string data(const char* name) { return std::string(TRAINPERF_TEST_DATA) + "/" + name; }
// The field and the message of the config_error that `f` throws.
template <class F>
std::pair<std::string, std::string> refusal(F&& f) {
  try {
    (void)f();
  } catch (const config_error& e) {
    return {e.field(), e.what()};
  }
  return {"(accepted)", ""};
}
bool one_line(const std::string& s) { return s.find('\n') == std::string::npos; }
json llama2_7b() {  // meta-llama/Llama-2-7b-hf config.json (shape fields)
  return json::parse(R"({"model_type": "llama", "hidden_act": "silu", "hidden_size": 4096, "intermediate_size": 11008,
    "max_position_embeddings": 4096, "num_attention_heads": 32, "num_hidden_layers": 32, "num_key_value_heads": 32,
    "vocab_size": 32000, "tie_word_embeddings": false})");
}
}  // namespace

TEST_CASE("published configs read to the published parameter counts") {
  // meta-llama/Meta-Llama-3-8B: 8,030,261,248 (keras-hub llama3_presets.py; Hub safetensors).
  const transformer_spec l3 = io::read_hf_config(data("llama3-8b.json"));
  CHECK(l3.resolved_kv_heads() == 8);
  CHECK(count_params(l3).total() == 8'030'261'248);
  // mistralai/Mixtral-8x7B-v0.1: 46,702,792,704 (keras-hub mixtral_presets.py).
  const transformer_spec mx = io::read_hf_config(data("mixtral-8x7b.json"));
  CHECK(mx.moe.experts == 8);
  CHECK(mx.moe.top_k == 2);
  CHECK(count_params(mx).total() == 46'702'792'704);
  // openai-community/gpt2: 124,439,808 (keras-hub gpt2_presets.py).
  const transformer_spec g = io::read_hf_config(data("gpt2.json"));
  CHECK(g.tied_embeddings);
  CHECK(g.positions == position_kind::learned);
  CHECK(count_params(g).total() == 124'439'808);
  // llava-hf/llava-1.5-7b-hf: 7,063,427,072 (its safetensors header). Its text_config leaves
  // the Llama 2 7B shape to LlamaConfig's defaults, as transformers does.
  const transformer_spec lv = io::read_hf_config(data("llava-1.5-7b-hf.json"));
  CHECK(lv.vision.layers == 24);
  CHECK(lv.vision.layers_run() == 23);
  CHECK(count_params(lv).total() == 7'063'427'072);
  CHECK(count_params(io::spec_from_hf_config(llama2_7b())).total() == 6'738'415'616);
  // Qwen/Qwen2-7B (config.json shape fields): its model.safetensors.index.json declares
  // total_size 15,231,233,024 bytes of bf16 weights = 7,615,616,512; the model card says 7.61B,
  // 6.53B non-embedding. The q, k and v biases (3584 + 2 x 512 per layer) are in that count.
  const transformer_spec q2 = io::spec_from_hf_config(json::parse(R"({"model_type": "qwen2", "hidden_act": "silu",
    "hidden_size": 3584, "intermediate_size": 18944, "max_position_embeddings": 131072, "num_attention_heads": 28,
    "num_hidden_layers": 28, "num_key_value_heads": 4, "vocab_size": 152064, "tie_word_embeddings": false})"));
  CHECK(q2.qkv_bias);
  CHECK(count_params(q2).total() == 7'615'616'512);
  CHECK(count_params(q2).non_embedding() == 6'525'621'760);
  // Qwen/Qwen1.5-MoE-A2.7B (config.json shape fields). Hand count per layer: attention
  // 4 x 2048^2 + 3 x 2048 (QKV biases) = 16,783,360; 60 experts x 3 x 2048 x 1408 = 519,045,120;
  // the shared expert 3 x 2048 x 5632 = 34,603,008; the router 2048 x 60 and the shared expert's
  // gate 2048 x 1 = 124,928; norms 4,096: 570,560,512; x 24 = 13,693,452,288, plus two
  // 151936 x 2048 embeddings and the final norm = 14,315,784,192 (the model card: "14.3B").
  const transformer_spec qm = io::spec_from_hf_config(json::parse(R"({"model_type": "qwen2_moe",
    "hidden_act": "silu", "hidden_size": 2048, "intermediate_size": 5632, "max_position_embeddings": 8192,
    "num_attention_heads": 16, "num_hidden_layers": 24, "num_key_value_heads": 16, "vocab_size": 151936,
    "num_experts": 60, "num_experts_per_tok": 4, "moe_intermediate_size": 1408,
    "shared_expert_intermediate_size": 5632, "decoder_sparse_step": 1, "mlp_only_layers": [],
    "tie_word_embeddings": false})"));
  CHECK(count_params(qm).total() == 14'315'784'192);
  CHECK(count_params(get_preset("qwen1.5-moe-a2.7b").spec).total() == 14'315'784'192);
  // decoder_sparse_step 2: layer i sparse when (i + 1) % 2 == 0, so 12 MoE layers (1, 3, ..., 23) and
  // 12 dense ones of Qwen2MoeMLP(intermediate_size): 16,783,360 + 3 x 2048 x 5632 + 4,096 =
  // 51,390,464 each; 12 x 570,560,512 + 12 x 51,390,464 + the embeddings and final norm
  // (622,331,904) = 8,085,743,616.
  json sparse2 = json::parse(R"({"model_type": "qwen2_moe",
    "hidden_act": "silu", "hidden_size": 2048, "intermediate_size": 5632, "max_position_embeddings": 8192,
    "num_attention_heads": 16, "num_hidden_layers": 24, "num_key_value_heads": 16, "vocab_size": 151936,
    "num_experts": 60, "num_experts_per_tok": 4, "moe_intermediate_size": 1408,
    "shared_expert_intermediate_size": 5632, "decoder_sparse_step": 2, "tie_word_embeddings": false})");
  const transformer_spec qm2 = io::spec_from_hf_config(sparse2);
  CHECK(qm2.moe_layers() == 12);
  CHECK_FALSE(qm2.is_moe_layer(0));
  CHECK(qm2.is_moe_layer(23));
  CHECK(count_params(qm2).total() == 8'085'743'616);
  // mlp_only_layers [1, 3] on top: layers 1 and 3 turn dense (modeling_qwen2_moe.py: sparse only when
  // not in mlp_only_layers), so each trades 570,560,512 for 51,390,464: 8,085,743,616 - 2 x 519,170,048.
  sparse2["mlp_only_layers"] = {1, 3};
  const transformer_spec listed = io::spec_from_hf_config(sparse2);
  CHECK(listed.moe_layers() == 10);
  CHECK_FALSE(listed.is_moe_layer(3));
  CHECK(listed.is_moe_layer(5));
  CHECK(count_params(listed).total() == 7'047'403'520);
  sparse2["mlp_only_layers"] = {24};
  CHECK_THROWS_WITH_AS(io::spec_from_hf_config(sparse2),
                       doctest::Contains("mlp_only_layers lists layer 24 but the model's layers are 0 to 23"),
                       config_error);
  sparse2["mlp_only_layers"] = {"1"};
  CHECK_THROWS_WITH_AS(io::spec_from_hf_config(sparse2),
                       doctest::Contains("\"mlp_only_layers\" must be a list of integers; it holds \"1\""),
                       config_error);
  sparse2["mlp_only_layers"] = {1, 3, 5, 7, 9, 11, 13, 15, 17, 19, 21, 23};  // every sparse layer listed
  CHECK_THROWS_WITH_AS(io::spec_from_hf_config(sparse2), doctest::Contains("lists every MoE layer of the 24 layers"),
                       config_error);
}

TEST_CASE("missing, mistyped and contradictory fields are named") {
  json j = llama2_7b();
  j.erase("intermediate_size");
  CHECK_THROWS_WITH_AS(io::spec_from_hf_config(j, "my/config.json"),
                       "my/config.json: missing required field \"intermediate_size\"", config_error);
  j = llama2_7b();
  j["hidden_size"] = "4096";
  CHECK_THROWS_WITH_AS(io::spec_from_hf_config(j),
                       "config.json: field \"hidden_size\" must be an integer, got \"4096\"", config_error);
  j = llama2_7b();
  j["hidden_size"] = 4096.5;
  CHECK_THROWS_AS(io::spec_from_hf_config(j), config_error);
  j = llama2_7b();
  j["hidden_size"] = 4096.0;  // an integral float is an integer
  CHECK(io::spec_from_hf_config(j).hidden == 4096);
  j = llama2_7b();
  j["attention_bias"] = true;
  CHECK_THROWS_WITH_AS(io::spec_from_hf_config(j), doctest::Contains("attention_bias and mlp_bias differ"),
                       config_error);
  j = llama2_7b();
  j["hidden_act"] = "gelu";
  CHECK_THROWS_WITH_AS(io::spec_from_hf_config(j), doctest::Contains("hidden_act \"gelu\" is not supported"),
                       config_error);

  json g = json::parse(R"({"model_type": "gpt2", "n_embd": 768, "hidden_size": 1024, "n_head": 12, "n_layer": 12,
    "n_positions": 1024, "vocab_size": 50257})");
  CHECK_THROWS_WITH_AS(io::spec_from_hf_config(g),
                       "config.json: contradictory fields: \"n_embd\" = 768 but \"hidden_size\" = 1024; remove one",
                       config_error);

  json m = json::parse(R"({"model_type": "mixtral", "hidden_size": 4096, "intermediate_size": 14336,
    "max_position_embeddings": 32768, "num_attention_heads": 32, "num_hidden_layers": 32, "num_key_value_heads": 8,
    "vocab_size": 32000, "num_local_experts": 8, "num_experts_per_tok": 9})");
  CHECK_THROWS_WITH_AS(io::spec_from_hf_config(m),
                       "config.json: \"num_experts_per_tok\": top_k 9 must be between 1 and experts 8", config_error);
  m.erase("num_experts_per_tok");
  CHECK_THROWS_WITH_AS(io::spec_from_hf_config(m), doctest::Contains("missing required field \"num_experts_per_tok\""),
                       config_error);

  CHECK_THROWS_WITH_AS(io::spec_from_hf_config(json::parse(R"({"model_type": "bert"})")),
                       doctest::Contains("model_type \"bert\" is not supported; supported: llama"), config_error);
  CHECK_THROWS_WITH_AS(io::spec_from_hf_config(json::parse(R"({"hidden_size": 1})")),
                       "config.json: missing required field \"model_type\"", config_error);
  CHECK_THROWS_AS(io::spec_from_hf_config(json::array()), config_error);
}

TEST_CASE("files: validation failures keep the file's name and field; unreadable files are errors") {
  try {
    (void)io::read_hf_config(data("bad-kv-heads.json"));
    FAIL("expected a config_error");
  } catch (const config_error& e) {
    CHECK(e.field() == "num_key_value_heads");  // the file's name for it
    CHECK(std::string(e.what()).find("bad-kv-heads.json: \"num_key_value_heads\": heads 32 are not divisible by "
                                     "kv_heads 5") != std::string::npos);
  }
  CHECK_THROWS_WITH_AS(io::read_hf_config(data("not-json.json")), doctest::Contains("is not valid JSON"), config_error);
  CHECK_THROWS_WITH_AS(io::read_hf_config(data("does-not-exist.json")),
                       doctest::Contains("does-not-exist.json does not exist; give a Hugging Face config.json"),
                       config_error);
  json lv = json::parse(R"({"model_type": "llava", "text_config": {"model_type": "llama"}})");
  CHECK_THROWS_WITH_AS(io::spec_from_hf_config(lv), "config.json: missing required object \"vision_config\"",
                       config_error);
}

TEST_CASE("unreadable and malformed files are one-line errors naming --model, not stream exceptions") {
  // A directory made std::ifstream throw std::ios_base::failure from underflow (abort, exit 134).
  auto [field, what] = refusal([] { return io::read_hf_config(TRAINPERF_TEST_DATA); });
  CHECK(field == "model");
  CHECK(what == std::string(TRAINPERF_TEST_DATA) + " is a directory; give a Hugging Face config.json");
  std::tie(field, what) = refusal([] { return io::read_hf_config("/dev/zero"); });
  CHECK(field == "model");
  CHECK(what == "/dev/zero is not a regular file (a FIFO, device or socket); give a Hugging Face config.json");
  std::tie(field, what) = refusal([] { return io::read_hf_config(data("empty.json")); });
  CHECK(field == "model");
  CHECK(what == data("empty.json") + " is empty; give a Hugging Face config.json");
  // 1e400 does not fit a double: nlohmann throws out_of_range, which escaped as no config_error.
  std::tie(field, what) = refusal([] { return io::read_hf_config(data("number-overflow.json")); });
  CHECK(field == "model");
  CHECK(what.find("number-overflow.json is not valid JSON: ") != std::string::npos);
  CHECK(what.find("number overflow parsing '1e400'") != std::string::npos);
}

TEST_CASE("a key given twice and deep nesting are refused (nlohmann keeps the last key silently)") {
  auto [field, what] = refusal([] { return io::read_hf_config(data("duplicate-key.json")); });
  CHECK(field == "hidden_size");
  CHECK(what == data("duplicate-key.json") + ": key \"hidden_size\" appears twice; keep one");
  std::tie(field, what) = refusal([] { return io::read_hf_config(data("duplicate-key-nested.json")); });
  CHECK(field == "text_config.vocab_size");
  CHECK(what == data("duplicate-key-nested.json") + ": key \"text_config.vocab_size\" appears twice; keep one");
  // 40 nested arrays under rope_scaling; a config.json nests 2 or 3 levels.
  std::tie(field, what) = refusal([] { return io::read_hf_config(data("deep-nesting.json")); });
  CHECK(field == "model");
  CHECK(what.find("deep-nesting.json nests JSON deeper than 32 levels") != std::string::npos);
  // The same text through the in-memory entry point.
  CHECK_THROWS_WITH_AS(io::spec_from_hf_config_text(R"({"model_type": "llama", "model_type": "gpt2"})"),
                       "config.json: key \"model_type\" appears twice; keep one", config_error);
  CHECK(count_params(io::spec_from_hf_config_text(llama2_7b().dump())).total() == 6'738'415'616);
}

TEST_CASE("sizes given as 0 or below are refused under the file's name; null takes the default") {
  // num_key_value_heads 0 was read as "= heads" (the spec's convention), silently.
  json j = llama2_7b();
  j["num_key_value_heads"] = 0;
  auto [field, what] = refusal([&] { return io::spec_from_hf_config(j); });
  CHECK(field == "num_key_value_heads");
  CHECK(what ==
        "config.json: field \"num_key_value_heads\" must be a positive integer, got 0; remove it (or set it "
        "to num_attention_heads) for multi-head attention, 1 for multi-query");
  j["num_key_value_heads"] = -8;
  CHECK(refusal([&] { return io::spec_from_hf_config(j); }).first == "num_key_value_heads");
  j["num_key_value_heads"] = nullptr;  // LlamaConfig: None means num_attention_heads
  CHECK(io::spec_from_hf_config(j).resolved_kv_heads() == 32);
  j = llama2_7b();
  j["head_dim"] = 0;  // was read as hidden / heads, silently
  std::tie(field, what) = refusal([&] { return io::spec_from_hf_config(j); });
  CHECK(field == "head_dim");
  CHECK(what ==
        "config.json: field \"head_dim\" must be a positive integer, got 0; remove it to use hidden_size / "
        "num_attention_heads");
  j = llama2_7b();
  j["num_hidden_layers"] = -32;
  CHECK(refusal([&] { return io::spec_from_hf_config(j); }).first == "num_hidden_layers");
  j["num_hidden_layers"] = std::int64_t{1} << 32;
  std::tie(field, what) = refusal([&] { return io::spec_from_hf_config(j); });
  CHECK(field == "num_hidden_layers");
  CHECK(what ==
        "config.json: field \"num_hidden_layers\" = 4294967296 exceeds the largest supported size 2^31 = "
        "2147483648");
  // 2^64 - 1 is stored unsigned by nlohmann and came back as -1.
  j["num_hidden_layers"] = json::parse("18446744073709551615");
  std::tie(field, what) = refusal([&] { return io::spec_from_hf_config(j); });
  CHECK(field == "num_hidden_layers");
  CHECK(what == "config.json: field \"num_hidden_layers\" = 18446744073709551615 is out of range");
  j["num_hidden_layers"] = 1e20;
  CHECK(refusal([&] { return io::spec_from_hf_config(j); }).second ==
        "config.json: field \"num_hidden_layers\" = 1e+20 is out of range");

  json m = json::parse(R"({"model_type": "mixtral", "hidden_size": 4096, "intermediate_size": 14336,
    "max_position_embeddings": 32768, "num_attention_heads": 32, "num_hidden_layers": 32, "num_key_value_heads": 8,
    "vocab_size": 32000, "num_local_experts": 0, "num_experts_per_tok": 2})");
  CHECK(refusal([&] { return io::spec_from_hf_config(m); }).first == "num_local_experts");

  json g = json::parse(R"({"model_type": "gpt2", "n_embd": 768, "n_head": 12, "n_layer": 12, "n_positions": 1024,
    "vocab_size": 50257, "n_inner": 0})");
  CHECK(refusal([&] { return io::spec_from_hf_config(g); }).first == "n_inner");
  g["n_inner"] = nullptr;  // GPT2Config: None means 4 x n_embd
  CHECK(io::spec_from_hf_config(g).ffn == 4 * 768);
}

TEST_CASE(
    "head counts: kv heads divide heads; head_dim may differ from hidden / heads only where transformers allows") {
  json j = llama2_7b();
  j["num_key_value_heads"] = 5;
  auto [field, what] = refusal([&] { return io::spec_from_hf_config(j); });
  CHECK(field == "num_key_value_heads");
  CHECK(what.find("heads 32 are not divisible by kv_heads 5") != std::string::npos);
  j["num_key_value_heads"] = 64;
  CHECK(refusal([&] { return io::spec_from_hf_config(j); }).first == "num_key_value_heads");
  // Without head_dim, hidden_size must divide by the heads (4096 / 48 is not whole).
  j = llama2_7b();
  j["num_attention_heads"] = 48;
  j.erase("num_key_value_heads");
  std::tie(field, what) = refusal([&] { return io::spec_from_hf_config(j); });
  CHECK(field == "num_attention_heads");
  CHECK(what.find("hidden 4096 is not divisible by heads 48") != std::string::npos);
  // mistralai/Mistral-Nemo-Base-2407's shape: 32 heads of 128 on a hidden size of 5120. q
  // projects to 32 x 128 = 4096, k and v to 8 x 128 = 1024.
  const json nemo = json::parse(R"({"model_type": "mistral", "hidden_size": 5120, "head_dim": 128,
    "num_attention_heads": 32, "num_key_value_heads": 8, "num_hidden_layers": 40, "intermediate_size": 14336,
    "vocab_size": 131072, "max_position_embeddings": 1024000})");
  const transformer_spec s = io::spec_from_hf_config(nemo);
  CHECK(s.q_dim() == 4096);
  CHECK(s.kv_dim() == 1024);
  // GPT-2 has no head_dim: n_embd must divide by n_head (GPT2Attention raises otherwise).
  json g = json::parse(R"({"model_type": "gpt2", "n_embd": 768, "n_head": 7, "n_layer": 12, "n_positions": 1024,
    "vocab_size": 50257})");
  std::tie(field, what) = refusal([&] { return io::spec_from_hf_config(g); });
  CHECK(field == "n_head");
  CHECK(what.find("hidden 768 is not divisible by heads 7") != std::string::npos);
}

TEST_CASE("wrong JSON types and nested configs that are not objects are named, in one line") {
  json j = llama2_7b();
  j["hidden_size"] = json::array({4096});
  CHECK(refusal([&] { return io::spec_from_hf_config(j); }).second ==
        "config.json: field \"hidden_size\" must be an integer, got an array");
  j = llama2_7b();
  j["tie_word_embeddings"] = "false";
  CHECK(refusal([&] { return io::spec_from_hf_config(j); }).second ==
        "config.json: field \"tie_word_embeddings\" must be true or false, got \"false\"");
  j = llama2_7b();
  j["model_type"] = 42;
  CHECK(refusal([&] { return io::spec_from_hf_config(j); }).second ==
        "config.json: field \"model_type\" must be a string, got 42");
  j["model_type"] = "bert\nsecond line";
  auto [field, what] = refusal([&] { return io::spec_from_hf_config(j); });
  CHECK(field == "model_type");
  CHECK(one_line(what));
  CHECK(what.find("model_type \"bert\\nsecond line\" is not supported") != std::string::npos);
  j["model_type"] = std::string(1000, 'x');
  CHECK(refusal([&] { return io::spec_from_hf_config(j); }).second.size() < 300);

  json lv = json::parse(R"({"model_type": "llava", "text_config": 5, "vision_config": {}})");
  CHECK(refusal([&] { return io::spec_from_hf_config(lv); }).second ==
        "config.json: field \"text_config\" must be a JSON object, got 5");
  lv["text_config"] = json::array();
  CHECK(refusal([&] { return io::spec_from_hf_config(lv); }).second ==
        "config.json: field \"text_config\" must be a JSON object, got an array");
  CHECK(refusal([] { return io::spec_from_hf_config(json("llama")); }).second ==
        "config.json: the top level must be a JSON object, got \"llama\"");
}

TEST_CASE("LLaVA: validation failures name text_config and vision_config fields") {
  json lv = json::parse(R"({"model_type": "llava", "text_config": {"model_type": "llama", "num_key_value_heads": 5},
    "vision_config": {"hidden_size": 1024, "image_size": 336, "intermediate_size": 4096, "num_attention_heads": 16,
    "num_hidden_layers": 24, "patch_size": 14}})");
  CHECK(refusal([&] { return io::spec_from_hf_config(lv); }).first == "text_config.num_key_value_heads");
  lv["text_config"].erase("num_key_value_heads");
  lv["vision_config"]["patch_size"] = 15;  // 336 / 15 is not whole
  CHECK(refusal([&] { return io::spec_from_hf_config(lv); }).first == "vision_config.patch_size");
  lv["vision_config"]["patch_size"] = 0;
  CHECK(refusal([&] { return io::spec_from_hf_config(lv); }).first == "vision_config.patch_size");
  lv["vision_config"]["patch_size"] = 14;
  lv["vision_feature_layer"] = 25;  // 24 layers
  CHECK(refusal([&] { return io::spec_from_hf_config(lv); }).first == "vision_feature_layer");
}
