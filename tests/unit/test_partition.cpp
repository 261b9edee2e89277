// Partitioners: layers over stages and chunks, tensor shards, ZeRO shards, data shards and
// context-parallel chunks.
#include <doctest/doctest.h>

#include <set>

#include <trainperf/trainperf.hpp>

using namespace trainperf;

TEST_CASE("layers over pipeline stages: uniform, uneven first/last, virtual chunks") {
  // llama2-70b on PP4 (seed 000): 20 layers per stage, embedding on stage 0, output on stage 3.
  const auto uni = partition_layers(80, {.pp = 4});
  REQUIRE(uni.size() == 4);
  CHECK(uni[1].first_layer == 20);
  CHECK(uni[1].layers == 20);
  CHECK(uni[0].embedding);
  CHECK_FALSE(uni[1].embedding);
  CHECK(uni[3].output);
  // Uneven: 18 on the first, 14 on the last, the middle two share 48.
  const auto unev = partition_layers(80, {.pp = 4, .first_stage_layers = 18, .last_stage_layers = 14});
  CHECK(unev[0].layers == 18);
  CHECK(unev[1].first_layer == 18);
  CHECK(unev[1].layers == 24);
  CHECK(unev[3].first_layer == 66);
  CHECK(unev[3].layers == 14);
  CHECK_THROWS_WITH_AS(partition_layers(80, {.pp = 4, .first_stage_layers = 17, .last_stage_layers = 14}),
                       doctest::Contains("49 layers do not split evenly over the 2 other stages"), config_error);
  // Virtual stages (Megatron-LM interleaving): 16 layers, pp 2, vpp 2 -> chunks of 4 layers;
  // stage 0 owns layers 0-3 (chunk 0) and 8-11 (chunk 1), stage 1 owns 4-7 and 12-15.
  const auto v = partition_layers(16, {.pp = 2, .vpp = 2});
  REQUIRE(v.size() == 4);
  CHECK(v[0].first_layer == 0);
  CHECK(v[1].first_layer == 8);
  CHECK(v[2].first_layer == 4);
  CHECK(v[3].first_layer == 12);
  CHECK(v[0].embedding);
  CHECK(v[3].output);
  // Every layer is owned exactly once.
  std::set<std::int64_t> seen;
  for (const auto& s : v)
    for (std::int64_t l = s.first_layer; l < s.first_layer + s.layers; ++l) CHECK(seen.insert(l).second);
  CHECK(seen.size() == 16);
  CHECK_THROWS_AS(partition_layers(80, {.pp = 3}), config_error);
}

TEST_CASE("the embedding and the loss counted as pipeline layers (Megatron-LM's pipeline split accounting)") {
  // Llama 3.1 405B's 126 layers over pp 8 x vpp 8 (NeMo's recipe): 126 + 2 = 128 split into 64
  // chunks of 2; the first chunk (stage 0, chunk 0) holds the embedding and one layer, the last
  // (stage 7, chunk 7) one layer and the loss. Megatron-LM's get_num_layers_to_build: each chunk
  // builds (126 + 2) / 8 / 8 = 2, one fewer on the first and the last.
  const layer_split s{.pp = 8, .vpp = 8, .embedding_as_layer = true, .loss_as_layer = true};
  const auto v = partition_layers(126, s);
  REQUIRE(v.size() == 64);
  CHECK(v[0].embedding);
  CHECK(v[0].layers == 1);
  CHECK(v[0].first_layer == 0);
  // Stage 1's chunk 0 is the model's second chunk: layers 1 and 2.
  CHECK(v[8].stage == 1);
  CHECK(v[8].first_layer == 1);
  CHECK(v[8].layers == 2);
  CHECK(v[63].output);
  CHECK(v[63].layers == 1);
  CHECK(v[63].first_layer == 125);
  std::set<std::int64_t> seen;
  for (const auto& c : v)
    for (std::int64_t l = c.first_layer; l < c.first_layer + c.layers; ++l) CHECK(seen.insert(l).second);
  CHECK(seen.size() == 126);
  // Without them 126 does not split over 64 chunks, and the refusal says what would.
  CHECK_THROWS_WITH_AS(partition_layers(126, {.pp = 8, .vpp = 8}), doctest::Contains("pick pp x vpp dividing 126"),
                       config_error);
  // The embedding alone: 31 + 1 over pp 4 -> 7, 8, 8, 8.
  const auto e = partition_layers(31, {.pp = 4, .embedding_as_layer = true});
  CHECK(e[0].layers == 7);
  CHECK(e[1].first_layer == 7);
  CHECK(e[3].layers == 8);
  // With first/last stage counts: refused (Megatron-LM counts them in an even split only).
  CHECK_THROWS_WITH_AS(partition_layers(30, {.pp = 4, .first_stage_layers = 6, .embedding_as_layer = true}),
                       doctest::Contains("embedding_as_layer with first/last stage layers 6/0"), config_error);
  // 31 layers over pp 4: counting the embedding alone splits them (32), and the refusal says so.
  CHECK_THROWS_WITH_AS(partition_layers(31, {.pp = 4}), doctest::Contains("count the embedding as a layer (32"),
                       config_error);
  // validate(parallel_config) says the same and suggests counting them where that splits.
  const transformer_spec l405 = get_preset("llama3-405b").spec;
  const auto refusals = check_parallel({.tp = 8, .pp = 8, .vpp = 8}, {.world = 512, .model = l405});
  REQUIRE(refusals.size() == 1);
  CHECK(refusals.front().message.find("count the embedding and the loss as layers (128") != std::string::npos);
  parallel_config counted{.tp = 8, .pp = 8, .vpp = 8};
  counted.embedding_as_layer = counted.loss_as_layer = true;
  CHECK(check_parallel(counted, {.world = 512, .model = l405}).empty());
}

TEST_CASE("tensor-parallel shard shapes") {
  const transformer_spec m = get_preset("llama2-70b").spec;  // h 8192, 64 heads, 8 KV heads, ffn 28672
  const auto shards = tensor_shards(m, 8);
  const auto find = [&](std::string_view n) {
    for (const auto& s : shards)
      if (s.name == n) return s;
    FAIL("no shard " << n);
    return shards.front();
  };
  const tensor_shard qkv = find("attention.qkv");
  CHECK(qkv.kind == shard_kind::column);
  CHECK(qkv.cols == 8192 + 2 * 1024);
  CHECK(qkv.shard_cols == (8192 + 2 * 1024) / 8);  // 8 query heads + 1 KV group per rank
  const tensor_shard out = find("attention.out");
  CHECK(out.kind == shard_kind::row);
  CHECK(out.shard_rows == 1024);
  CHECK(find("mlp.gate_up").shard_cols == 2 * 28672 / 8);
  CHECK(find("mlp.down").shard_rows == 28672 / 8);
  CHECK(find("embedding").shard_rows == 32000 / 8);
  CHECK(find("output").shard_cols == 4000);
  // Vocabulary-parallel embedding with Megatron padding: GPT-2's 50257 at TP 4 -> 50688 rows,
  // 12672 per rank; the last rank holds 50688 - 50257 = 431 padding rows.
  transformer_spec g = get_preset("gpt2-124m").spec;
  g.padding = vocab_padding::megatron;
  CHECK(vocab_shard(g, 4, 0).end == 12672);
  CHECK(vocab_shard(g, 4, 0).padding == 0);
  CHECK(vocab_shard(g, 4, 3).begin == 3 * 12672);
  CHECK(vocab_shard(g, 4, 3).padding == 431);
}

TEST_CASE("what a tensor-parallel rank computes: heads, MLP columns and vocabulary rows in rank order") {
  // Llama 2 70B at TP 8 (64 query heads, 8 KV heads, ffn 28672, vocabulary 32000): rank 3 holds
  // query heads 24..31, KV head 3, MLP columns 3 x 3584 .. 4 x 3584, vocabulary rows 3 x 4000 ..
  const transformer_spec m = get_preset("llama2-70b").spec;
  const tensor_parallel_slice s = tensor_parallel_slice_of(m, 8, 3);
  CHECK(s.q_heads.begin == 24);
  CHECK(s.q_heads.end == 32);
  CHECK(s.kv_heads.begin == 3);
  CHECK(s.kv_heads.size() == 1);
  CHECK(s.ffn.begin == 10752);
  CHECK(s.ffn.end == 14336);
  CHECK(s.vocab.begin == 12000);
  CHECK(s.vocab.end == 16000);
  // The ranges of all ranks tile each dimension once.
  std::int64_t q = 0, f = 0, v = 0;
  for (std::int64_t r = 0; r < 8; ++r) {
    const auto x = tensor_parallel_slice_of(m, 8, r);
    CHECK(x.q_heads.begin == q);
    CHECK(x.ffn.begin == f);
    CHECK(x.vocab.begin == v);
    q = x.q_heads.end, f = x.ffn.end, v = x.vocab.end;
  }
  CHECK(q == 64);
  CHECK(f == 28672);
  CHECK(v == 32000);
  // 8 KV heads do not split over TP 16; a rank outside the group is refused.
  CHECK_THROWS_AS(tensor_parallel_slice_of(m, 16, 0), config_error);
  CHECK_THROWS_AS(tensor_parallel_slice_of(m, 8, 8), config_error);
}

TEST_CASE("replicated key/value heads: each held whole by tp / kv_heads consecutive ranks, with its query heads") {
  // Llama 2 70B at TP 16 (64 query heads in groups of 8 per KV head): rank r holds query heads
  // 4r .. 4r + 3, which all belong to KV head floor(4r / 8) = r / 2: ranks 2k and 2k + 1 share
  // KV head k. The QKV shard: 4 x 128 query columns + 2 x 128 key/value columns = 768.
  const transformer_spec m = get_preset("llama2-70b").spec;
  CHECK(kv_head_replicas(m, 16, true) == 2);
  CHECK(kv_head_replicas(m, 16, false) == 1);
  CHECK(kv_head_replicas(m, 8, true) == 1);  // 8 KV heads split over 8 ranks: nothing to replicate
  for (std::int64_t r = 0; r < 16; ++r) {
    const auto x = tensor_parallel_slice_of(m, 16, r, true);
    CHECK(x.q_heads.begin == 4 * r);
    CHECK(x.q_heads.size() == 4);
    CHECK(x.kv_heads.begin == r / 2);
    CHECK(x.kv_heads.size() == 1);
    CHECK(x.q_heads.begin / (64 / 8) == x.kv_heads.begin);  // its query heads' own group
  }
  for (const auto& s : tensor_shards(m, 16, true))
    if (s.name == "attention.qkv") CHECK(s.shard_cols == 4 * 128 + 2 * 128);
  // Replication needs tp to be a multiple of kv_heads: 8 KV heads over TP 12 is refused.
  transformer_spec m12 = m;
  m12.heads = 96;
  CHECK_THROWS_AS(tensor_parallel_slice_of(m12, 12, 0, true), config_error);
}

TEST_CASE("ZeRO flat-buffer shards cover the buffer once, padding at the end") {
  // 1000 elements over 3 ranks with 8-element alignment: padded to 1008 = 3 x 336.
  const flat_shard s0 = zero_shard(1000, 3, 0, 8), s2 = zero_shard(1000, 3, 2, 8);
  CHECK(s0.padded_numel == 1008);
  CHECK(s0.end - s0.begin == 336);
  CHECK(s0.padding == 0);
  CHECK(s2.begin == 672);
  CHECK(s2.padding == 8);
  // Property: for many sizes the shards tile [0, padded) and hold numel real elements.
  for (std::int64_t numel : {1, 7, 64, 1000, 4099, 65537})
    for (std::int64_t dp : {1, 2, 3, 8, 64})
      for (std::int64_t align : {1, 2, 128}) {
        std::int64_t next = 0, real = 0;
        for (std::int64_t r = 0; r < dp; ++r) {
          const flat_shard s = zero_shard(numel, dp, r, align);
          CHECK(s.begin == next);
          next = s.end;
          real += (s.end - s.begin) - s.padding;
          CHECK(s.padded_numel % (dp * align) == 0);
        }
        CHECK(real == numel);
      }
}

TEST_CASE("data shards: every sample of a step is read exactly once (property over many configurations)") {
  for (std::int64_t dp : {1, 2, 3, 4, 8})
    for (std::int64_t lbs : {1, 2, 3, 4})
      for (std::int64_t gas : {1, 2, 5, 8}) {
        const std::int64_t gbs = dp * lbs * gas;
        for (std::int64_t step : {0, 1, 7}) {
          std::vector<int> reads(static_cast<std::size_t>(gbs), 0);
          for (std::int64_t micro = 0; micro < gas; ++micro)
            for (std::int64_t r = 0; r < dp; ++r) {
              const sample_range s = data_shard(gbs, lbs, dp, step, micro, r);
              CHECK(s.count == lbs);
              for (std::int64_t i = s.first; i < s.first + s.count; ++i) {
                REQUIRE(i >= step * gbs);
                REQUIRE(i < (step + 1) * gbs);
                ++reads[static_cast<std::size_t>(i - step * gbs)];
              }
            }
          for (int n : reads) CHECK(n == 1);
          // Deterministic: asking again gives the same answer.
          CHECK(data_shard(gbs, lbs, dp, step, gas - 1, dp - 1).first ==
                data_shard(gbs, lbs, dp, step, gas - 1, dp - 1).first);
        }
      }
  // Seed 004 TP1PP1SH2SP8: GBS 1024, LBS 4, DP 8: rank 3 reads samples 12..15 of micro-step 0.
  CHECK(data_shard(1024, 4, 8, 0, 0, 3).first == 12);
  CHECK(data_shard(1024, 4, 8, 1, 31, 7).first == 1024 + 31 * 32 + 28);
  CHECK_THROWS_WITH_AS(data_shard(1000, 4, 8, 0, 0, 0), doctest::Contains("nearest valid: 992 or 1024"), config_error);
  CHECK_THROWS_AS(data_shard(1024, 4, 8, 0, 32, 0), config_error);
}

TEST_CASE("context-parallel chunks pair early and late tokens") {
  // seq 16, cp 2: 4 chunks of 4; rank 0 holds [0,4) and [12,16), rank 1 [4,8) and [8,12).
  const auto r0 = cp_chunks(16, 2, 0), r1 = cp_chunks(16, 2, 1);
  CHECK(r0[0].begin == 0);
  CHECK(r0[1].begin == 12);
  CHECK(r1[0].begin == 4);
  CHECK(r1[1].begin == 8);
  // Causal work (sum over tokens of their position) is equal across ranks.
  for (std::int64_t cp : {2, 4, 8}) {
    const std::int64_t seq = 64 * cp;
    std::int64_t first = -1;
    for (std::int64_t r = 0; r < cp; ++r) {
      std::int64_t work = 0;
      for (const auto& c : cp_chunks(seq, cp, r))
        for (std::int64_t t = c.begin; t < c.end; ++t) work += t + 1;
      if (first < 0) first = work;
      CHECK(work == first);
    }
  }
  CHECK_THROWS_AS(cp_chunks(10, 2, 0), config_error);
}
