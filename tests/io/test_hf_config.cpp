// Hugging Face config.json reader, on files written from the published configs
// (tests/io/data) and on deliberately broken ones.
#include <doctest/doctest.h>

#include <trainperf/io/hf_config.hpp>
#include <trainperf/trainperf.hpp>

using namespace trainperf;
using nlohmann::json;

namespace {
std::string data(const char* name) { return std::string(TRAINPERF_TEST_DATA) + "/" + name; }
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
  CHECK_THROWS_WITH_AS(io::spec_from_hf_config(m), "config.json: top_k 9 must be between 1 and experts 8",
                       config_error);
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
    CHECK(e.field() == "kv_heads");
    CHECK(std::string(e.what()).find("bad-kv-heads.json: heads 32 are not divisible by kv_heads 5") !=
          std::string::npos);
  }
  CHECK_THROWS_WITH_AS(io::read_hf_config(data("not-json.json")), doctest::Contains("is not valid JSON"), config_error);
  CHECK_THROWS_WITH_AS(io::read_hf_config(data("does-not-exist.json")), doctest::Contains("cannot open"), config_error);
  json lv = json::parse(R"({"model_type": "llava", "text_config": {"model_type": "llama"}})");
  CHECK_THROWS_WITH_AS(io::spec_from_hf_config(lv), "config.json: missing required object \"vision_config\"",
                       config_error);
}
