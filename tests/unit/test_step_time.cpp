// The step-time model: a one-layer model's step by hand, its invariants, and the seeds' orders.
#include <doctest/doctest.h>

#include <cmath>
#include <optional>
#include <utility>

#include <trainperf/trainperf.hpp>

using namespace trainperf;

namespace {
// 100 TFLOP/s bf16, 1 TB/s, one device.
const device_spec toy_device = [] {
  device_spec d = custom_device("toy", dtype::bf16, 100e12, 80 * GiB);
  d.memory_bandwidth = 1e12;
  return d;
}();

device_profile flat_profile() {
  // No shape penalty (half size 0), half the peak for GEMMs, a quarter for attention, the whole
  // memory bandwidth: every term below is then a plain quotient.
  return {"flat", 0.5, 0, 1.0, 0.25, 0.25, 0.25, 0.25, 1.0, 1.0, 0, "test", {}};
}

transformer_spec one_layer() {
  return {.layers = 1, .hidden = 1024, .heads = 8, .ffn = 4096, .vocab = 32000, .max_seq = 1024};
}

// One toy device, and a step of one sequence of 1024 tokens on it.
const cluster_spec one_toy{toy_device, 1, 8, 1e12, 1e12, 0};
step_options one_sequence() {
  step_options o;
  o.memory.seq = 1024;
  o.gbs = 1;
  return o;
}
}  // namespace

TEST_CASE("gemm_time: FLOPs at the shape's efficiency, or the operands over bandwidth when slower") {
  device_profile p = flat_profile();
  p.gemm_efficiency = 0.8;
  const double flops = 2.0 * 4096 * 4096 * 4096;
  CHECK(detail::gemm_time(4096, 4096, 4096, 1e15, 2, 3e12, p) == doctest::Approx(flops / 0.8e15));
  p.gemm_half_outputs = 4096.0 * 4096;  // the output at the half point: 0.8 x 0.5
  CHECK(detail::gemm_time(4096, 4096, 4096, 1e15, 2, 3e12, p) == doctest::Approx(flops / 0.4e15));
  // A batch of 16 such GEMMs fills the device 16 times over: 0.8 x 16/17, 16 x the FLOPs.
  CHECK(detail::gemm_time(4096, 4096, 4096, 1e15, 2, 3e12, p, 16) == doctest::Approx(16 * flops / (0.8e15 * 16 / 17)));
  p.gemm_half_outputs = 0;
  // A GEMV: 2 x (4096 + 4096^2 + 4096) bytes over 3 TB/s, far above its 33.6 MFLOP at 0.8 PFLOP/s.
  CHECK(detail::gemm_time(1, 4096, 4096, 1e15, 2, 3e12, p) ==
        doctest::Approx(2.0 * (4096 + 4096.0 * 4096 + 4096) / 3e12));
}

TEST_CASE("gemm_time: a shape the profile measured takes its measured seconds") {
  device_profile p = flat_profile();
  p.measured = {"toy", dtype::bf16, {{1024, 256, 128, 2e-4}, {1024, 64, 128, 9e-5}}};
  CHECK(detail::gemm_time(1024, 256, 128, 1e15, 2, 1e18, p) == 2e-4);
  CHECK(detail::gemm_time(1024, 64, 128, 1e15, 2, 1e18, p) == 9e-5);
  // n and k swapped is another shape: the curve, 2 x 1024 x 128 x 256 FLOPs at half the peak
  // (relative comparisons: doctest's Approx alone would accept any two figures this small).
  const auto relative = [](double a, double b) { return std::abs(a / b - 1) < 1e-12; };
  CHECK(relative(detail::gemm_time(1024, 128, 256, 1e15, 2, 1e18, p), 2.0 * 1024 * 128 * 256 / 0.5e15));
  // A batch of a measured shape fills the device as one GEMM (unfused attention's products): the
  // curve too, 3 x the FLOPs.
  CHECK(relative(detail::gemm_time(1024, 64, 128, 1e15, 2, 1e18, p, 3), 3 * 2.0 * 1024 * 64 * 128 / 0.5e15));
}

TEST_CASE("a profile's measured GEMMs serve their own device and dtype only") {
  const transformer_spec m = one_layer();
  const cluster_spec& c = one_toy;
  step_options o = one_sequence();
  device_profile p = flat_profile();
  const double plain = predict_step(m, {}, c, p, o).step_time;
  // The output projection (1024 tokens, 1024 from 1024) measured at 1 ms: its forward and two
  // backward GEMMs take 3 ms in place of 3 x 2 x 1024^3 FLOPs at 50 TFLOP/s.
  p.measured = {"toy", dtype::bf16, {{1024, 1024, 1024, 1e-3}}};
  const double measured = predict_step(m, {}, c, p, o).step_time;
  CHECK(std::abs((measured - plain) / (3e-3 - 3 * 2.0 * 1024 * 1024 * 1024 / 50e12) - 1) < 1e-9);
  p.measured.type = dtype::fp32;
  CHECK_THROWS_WITH_AS(predict_step(m, {}, c, p, o), doctest::Contains("measured on toy in fp32"), config_error);
  p.measured = {"another", dtype::bf16, {{1024, 1024, 1024, 1e-3}}};
  CHECK_THROWS_WITH_AS(predict_step(m, {}, c, p, o), doctest::Contains("runs its GEMMs on toy in bf16"), config_error);
  p.measured.shapes.push_back({1024, 1024, 1024, 2e-3});
  CHECK_THROWS_WITH_AS(validate(p), doctest::Contains("measured twice"), config_error);
  p.measured.shapes = {{1024, 1024.5, 1024, 2e-3}};
  CHECK_THROWS_WITH_AS(validate(p), doctest::Contains("positive whole m, n, k"), config_error);
}

TEST_CASE("fused or separate projections: the same FLOPs in smaller GEMMs, by hand") {
  const transformer_spec m = one_layer();  // q = k = v = 1024 wide, ffn 4096: every GEMM compute-bound here
  const cluster_spec& c = one_toy;
  step_options o = one_sequence();
  const auto forward = [&](const device_profile& p, std::optional<bool> fused, framework f = framework::generic) {
    o.fused_projections = fused;
    o.memory.accounting = f;
    const step_prediction r = predict_step(m, {}, c, p, o);
    return std::pair{r.stage_forward[0], r.stage_backward[0]};
  };
  // Without a shape penalty the split changes nothing: the same FLOPs at the same rate.
  device_profile p = flat_profile();
  CHECK(forward(p, false).first == doctest::Approx(forward(p, true).first).epsilon(1e-12));
  // With one, a compute-bound GEMM of o outputs and depth k takes 2 k (o + h) / (peak x eff):
  // split into n GEMMs of the same depth it takes (n - 1) x 2 k h / (peak x eff) more. QKV into
  // three (two more) and gate/up into two (one more), each of depth hidden 1024, at 50 TFLOP/s,
  // h = 2^20 outputs; the backward's two GEMMs per forward GEMM twice that.
  p.gemm_half_outputs = 1 << 20;
  const double extra = 3 * 2.0 * 1024 * (1 << 20) / 50e12;
  const auto [fused_f, fused_b] = forward(p, true);
  const auto [separate_f, separate_b] = forward(p, false);
  CHECK(separate_f - fused_f == doctest::Approx(extra).epsilon(1e-9));
  CHECK(separate_b - fused_b == doctest::Approx(2 * extra).epsilon(1e-9));
  // The frameworks' defaults: Megatron-LM's and the generic fuse; torchtitan (fsdp), Hugging Face
  // under DeepSpeed and PaddleNLP do not.
  CHECK(forward(p, std::nullopt, framework::megatron).first == doctest::Approx(fused_f).epsilon(1e-12));
  CHECK(forward(p, std::nullopt, framework::generic).first == doctest::Approx(fused_f).epsilon(1e-12));
  for (framework f : {framework::fsdp, framework::deepspeed, framework::paddle})
    CHECK(forward(p, std::nullopt, f).first == doctest::Approx(separate_f).epsilon(1e-12));
  // Given, the choice overrides the framework's.
  CHECK(forward(p, true, framework::fsdp).first == doctest::Approx(fused_f).epsilon(1e-12));
}

TEST_CASE("one layer on one device, by hand") {
  const transformer_spec m = one_layer();
  const cluster_spec& c = one_toy;
  step_options o = one_sequence();
  const step_prediction r = predict_step(m, {}, c, flat_profile(), o);
  // Forward GEMMs per token: QKV 3h^2, O h^2, SwiGLU 2fh + fh: 16,777,216 x 2 FLOPs x 1024 tokens;
  // logits 2 x 1024 x 32000 per token. At 50 TFLOP/s; the backward twice that.
  const double layer_gemm = 2.0 * 1024 * 16777216, logits = 2.0 * 1024 * 1024 * 32000;
  const double gemm = (layer_gemm + logits) / 50e12;
  // Flash attention: 4 x 1024 x 1024 x 8 heads x 128 x 0.5 (causal) at 25 TFLOP/s; backward 2.5x.
  const double attn = 4.0 * 1024 * 1024 * 1024 * 0.5 / 25e12;
  // Bytes at 1 TB/s, forward: norms and residuals 10 x h x 2 bytes per token, SwiGLU 3 x f x 2,
  // RoPE 2 x (q + kv) x 2; the output's norm 2 x h x 2 and cross entropy V x (2 + 4); the
  // embedding h x 2. The backward moves twice the layer's and the embedding's, the norm twice
  // and the cross entropy once more.
  const double layer_bytes = 1024.0 * (10 * 1024 * 2 + 3 * 4096 * 2 + 2 * 2048 * 2);
  const double out_f = 1024.0 * (2 * 1024 * 2 + 32000 * 6), out_b = 1024.0 * (4 * 1024 * 2 + 32000 * 6);
  const double emb = 1024.0 * 1024 * 2;
  const double forward = gemm + attn + (layer_bytes + out_f + emb) / 1e12;
  const double backward = 2 * gemm + 2.5 * attn + (2 * layer_bytes + out_b + 2 * emb) / 1e12;
  CHECK(r.stage_forward[0] == doctest::Approx(forward).epsilon(1e-12));
  CHECK(r.stage_backward[0] == doctest::Approx(backward).epsilon(1e-12));
  // Adam with bf16 gradients: 3 x 2 (gradient read twice, zeroed) + 16 (fp32 m, v read and
  // written) + 8 (fp32 master read and written) + 2 (the bf16 weight written) bytes per weight.
  const double optimizer = static_cast<double>(count_params(m).total()) * 32 / 1e12;
  CHECK(r.breakdown.optimizer == doctest::Approx(optimizer));
  CHECK(r.step_time == doctest::Approx(forward + backward + optimizer));
  CHECK(r.breakdown.tp_comm == 0);
  CHECK(r.breakdown.dp_comm == 0);
  CHECK(r.breakdown.bubble == doctest::Approx(0).epsilon(1e-12));
  CHECK(r.tokens_per_device_per_s == doctest::Approx(1024 / r.step_time));
  CHECK(r.micro_batches == 1);
  CHECK(r.stage_memory.size() == 1);
}

TEST_CASE("recomputation repeats the layer's forward inside its backward, by hand") {
  // The layer's forward from the test above: its GEMMs at 50 TFLOP/s, flash attention at 25 and
  // its memory-bound bytes at 1 TB/s; the embedding and output layer are never recomputed.
  const double gemm = 2.0 * 1024 * 16777216 / 50e12;
  const double attn = 4.0 * 1024 * 1024 * 1024 * 0.5 / 25e12;
  const double bytes = 1024.0 * (10 * 1024 * 2 + 3 * 4096 * 2 + 2 * 2048 * 2) / 1e12;
  const auto backward = [](recompute rc) {
    return predict_step(one_layer(), {.recomputation = rc}, one_toy, flat_profile(), one_sequence()).stage_backward[0];
  };
  const double none = backward(recompute::none);
  CHECK(backward(recompute::full) - none == doctest::Approx(gemm + attn + bytes).epsilon(1e-9));
  // Megatron-LM's selective recomputation: the attention core only (Korthikanti et al. 2022, 5).
  CHECK(backward(recompute::selective) - none == doctest::Approx(attn).epsilon(1e-9));
  // torchtitan's op-level SAC: half the GEMMs and the memory-bound bytes; with the attention off
  // its save list, the attention too.
  const auto sac = [&](selective_policy policy) {
    step_options o = one_sequence();
    o.memory.selective = policy;
    return predict_step(one_layer(), {.recomputation = recompute::selective}, one_toy, flat_profile(), o)
               .stage_backward[0] -
           none;
  };
  CHECK(sac(selective_policy::every_other_matmul) == doctest::Approx(gemm / 2 + bytes).epsilon(1e-9));
  CHECK(sac(selective_policy::every_other_matmul_and_attention) ==
        doctest::Approx(gemm / 2 + bytes + attn).epsilon(1e-9));
}

TEST_CASE("dropout's masks and the model FLOPs utilization of one layer, by hand") {
  // Hidden dropout after each of the two blocks, fused into the residual addition: a 1-byte mask
  // per element (1024 tokens x 1024) written forward and read backward, at 1 TB/s.
  step_options o = one_sequence();
  const step_prediction plain = predict_step(one_layer(), {}, one_toy, flat_profile(), o);
  o.memory.dropout = true;
  const step_prediction dropped = predict_step(one_layer(), {}, one_toy, flat_profile(), o);
  const double masks = 2 * 1024.0 * 1024 / 1e12;
  CHECK(dropped.stage_forward[0] - plain.stage_forward[0] == doctest::Approx(masks).epsilon(1e-9));
  CHECK(dropped.stage_backward[0] - plain.stage_backward[0] == doctest::Approx(masks).epsilon(1e-9));
  // Unfused attention also drops out its probabilities: 1024 x 1024 scores x 8 heads read and written
  // in 16 bits with a 1-byte mask (5 bytes each), forward and again backward.
  o.memory.flash_attention = false;
  step_options kept = o;
  kept.memory.dropout = false;
  const step_prediction unfused = predict_step(one_layer(), {}, one_toy, flat_profile(), kept);
  const step_prediction unfused_dropped = predict_step(one_layer(), {}, one_toy, flat_profile(), o);
  const double scores = 1024.0 * 1024 * 8 * 5 / 1e12;
  CHECK(unfused_dropped.stage_forward[0] - unfused.stage_forward[0] == doctest::Approx(masks + scores).epsilon(1e-9));
  CHECK(unfused_dropped.stage_backward[0] - unfused.stage_backward[0] == doctest::Approx(masks + scores).epsilon(1e-9));
  // MFU under Megatron-LM's convention (attention not halved): per token forward 2 x (3h^2 + h^2 +
  // 3hf) = 33,554,432 in the layer's GEMMs, 4sh = 4,194,304 in attention, 2hV = 65,536,000 in the
  // logits; three times that for a training step, over 1024 tokens, against 100 TFLOP/s for the
  // step. Without recomputation the hardware does what the model needs: HFU = MFU.
  const double flops = 3.0 * 1024 * (33554432.0 + 4194304 + 65536000);
  CHECK(plain.mfu == doctest::Approx(flops / (plain.step_time * 100e12)).epsilon(1e-12));
  CHECK(plain.hfu == doctest::Approx(plain.mfu).epsilon(1e-12));
}

TEST_CASE("two pipeline stages under 1F1B, by hand") {
  // Two layers over pp 2 on two toy devices of one node, 4 micro-batches of one sequence. The
  // stages' per-micro-batch times from the one-layer test's terms: stage 0 the embedding and a
  // layer, stage 1 a layer and the output layer (the heavier).
  transformer_spec two = one_layer();
  two.layers = 2;
  const double layer_gemm = 2.0 * 1024 * 16777216 / 50e12, logits = 2.0 * 1024 * 1024 * 32000 / 50e12;
  const double attn = 4.0 * 1024 * 1024 * 1024 * 0.5 / 25e12;
  const double layer_bytes = 1024.0 * (10 * 1024 * 2 + 3 * 4096 * 2 + 2 * 2048 * 2) / 1e12;
  const double out_f = 1024.0 * (2 * 1024 * 2 + 32000 * 6) / 1e12, out_b = 1024.0 * (4 * 1024 * 2 + 32000 * 6) / 1e12;
  const double emb = 1024.0 * 1024 * 2 / 1e12;
  const double layer_f = layer_gemm + attn + layer_bytes, layer_b = 2 * layer_gemm + 2.5 * attn + 2 * layer_bytes;
  const double f0 = layer_f + emb, b0 = layer_b + 2 * emb;
  const double f1 = layer_f + logits + out_f, b1 = layer_b + 2 * logits + out_b;
  const cluster_spec pair{toy_device, 2, 8, 1e12, 1e12, 0};
  step_options o = one_sequence();
  o.gbs = 4;
  const step_prediction r = predict_step(two, {.pp = 2}, pair, flat_profile(), o);
  CHECK(r.stage_forward[0] == doctest::Approx(f0).epsilon(1e-12));
  CHECK(r.stage_backward[1] == doctest::Approx(b1).epsilon(1e-12));
  // 1F1B (Narayanan et al. 2021): stage 1, never starved (f1 + b1 > f0 + b0 + 2 hops), runs its 4
  // forward-backward pairs back to back after stage 0's first forward and a hop of one activation
  // (1024 x 1024 x 2 bytes at 1 TB/s); the last gradient hops back and stage 0's last backward ends
  // the pipeline. Then the heavier stage's optimizer (stage 1: the layer, the output layer and the
  // final norm, 49,548,288 weights at 32 bytes each).
  const double hop = 1024.0 * 1024 * 2 / 1e12;
  const double pipeline = f0 + hop + 4 * (f1 + b1) + hop + b0;
  const double optimizer = (16779264.0 + 32000 * 1024 + 1024) * 32 / 1e12;
  CHECK(r.step_time == doctest::Approx(pipeline + optimizer).epsilon(1e-12));
  CHECK(r.breakdown.bubble == doctest::Approx(f0 + b0).epsilon(1e-12));
  CHECK(r.breakdown.other == doctest::Approx(2 * hop).epsilon(1e-12));  // the two hand-offs on the critical path
  CHECK(r.breakdown.optimizer == doctest::Approx(optimizer).epsilon(1e-12));
}

TEST_CASE("step-time invariants") {
  const transformer_spec m = get_preset("llama2-7b").spec;
  const device_profile p = builtin_profile("A100-80GB");
  const cluster_spec c = default_cluster(get_device("A100-80GB"), 16, 8, p);
  step_options o;
  o.memory.seq = 4096;
  o.memory.lbs = 1;
  o.gbs = 64;
  parallel_config layout{.tp = 2, .pp = 2, .sequence_parallel = true};
  const step_prediction a = predict_step(m, layout, c, p, o);
  CHECK(a.micro_batches == 16);  // 64 / (1 x dp 4)
  // MFU (against the peak the GEMMs run at) can never pass the GEMM efficiency: every part runs
  // at or below it.
  CHECK(a.mfu > 0.1);
  CHECK(a.mfu < p.gemm_efficiency);
  CHECK(a.breakdown.total() == doctest::Approx(a.step_time));
  // Twice the batch: twice the compute; the step less than twice as long (bubble and the DP tail
  // do not grow).
  o.gbs = 128;
  const step_prediction b = predict_step(m, layout, c, p, o);
  CHECK(b.breakdown.compute == doctest::Approx(2 * a.breakdown.compute));
  CHECK(b.step_time < 2 * a.step_time);
  // Full recomputation adds a forward: HFU above MFU, the step longer.
  layout.recomputation = recompute::full;
  const step_prediction rc = predict_step(m, layout, c, p, o);
  CHECK(rc.step_time > b.step_time);
  CHECK(rc.hfu > rc.mfu);
  // A global batch that does not split is refused with the nearest valid ones.
  o.gbs = 66;
  CHECK_THROWS_WITH_AS(predict_step(m, layout, c, p, o), doctest::Contains("nearest valid"), config_error);
}

TEST_CASE("replicated key/value heads: a rank's step is that of a model with one KV head per rank") {
  // Llama 2 70B (8 KV heads) at TP 16 with each KV head on 2 ranks computes, per rank, the GEMMs
  // and attention of the same model with 16 KV heads (one per rank): the same step time.
  const transformer_spec m = get_preset("llama2-70b").spec;
  transformer_spec kv16 = m;
  kv16.kv_heads = 16;
  const device_profile p = builtin_profile("A100-80GB");
  const cluster_spec c = default_cluster(get_device("A100-80GB"), 64, 8, p);
  step_options o;
  o.memory.seq = 4096;
  o.memory.lbs = 1;
  o.gbs = 64;
  const step_prediction a = predict_step(m, {.tp = 16, .pp = 4, .replicate_kv_heads = true}, c, p, o);
  const step_prediction b = predict_step(kv16, {.tp = 16, .pp = 4}, c, p, o);
  CHECK(a.step_time == doctest::Approx(b.step_time).epsilon(1e-12));
  CHECK(a.breakdown.compute == doctest::Approx(b.breakdown.compute).epsilon(1e-12));
}

// Seed 000 (seeds/README.md): llama2-70b on 4 x 8 H800, seq 4096, micro batch 1, GAS 44:
// TP4PP8 measured 791.37 token/p/s, TP8PP4 641.93. Seed 004: GPT-3 6.7B on 8 A100, 1024 x 2048
// tokens: 4410 > 4024 > 3811 > 3791 token/p/s over sharding 2 x8, TP2 + sharding 1, TP2 +
// sharding 2, TP2 PP4.
TEST_CASE("the seeds' layout orders, with the built-in profiles") {
  const transformer_spec l70 = get_preset("llama2-70b").spec;
  const device_profile h800 = builtin_profile("H800");
  const cluster_spec c = default_cluster(get_device("H800"), 32, 8, h800);
  step_options o;
  o.memory.seq = 4096;
  o.memory.accounting = framework::megatron;
  o.gbs = 44;
  const auto tput = [&](std::int64_t tp, std::int64_t pp) {
    return predict_step(l70, {.tp = tp, .pp = pp, .sequence_parallel = true}, c, h800, o).tokens_per_device_per_s;
  };
  CHECK(tput(4, 8) > tput(8, 4));

  const transformer_spec g67 = get_preset("gpt3-6.7b").spec;
  const device_profile a100 = builtin_profile("A100-80GB");
  const cluster_spec node = default_cluster(get_device("A100-80GB"), 8, 8, a100);
  step_options q;
  q.memory.seq = 2048;
  q.memory.lbs = 4;
  q.memory.param_dtype = dtype::fp16;
  q.memory.accounting = framework::paddle;
  q.fused_projections = true;  // as bench/planner_accuracy takes seed 004's rows
  q.gbs = 1024;
  const auto t67 = [&](parallel_config layout) {
    return predict_step(g67, layout, node, a100, q).tokens_per_device_per_s;
  };
  const double sh2 = t67({.zero_stage = 2}), tp2sh1 = t67({.tp = 2, .zero_stage = 1});
  const double tp2sh2 = t67({.tp = 2, .zero_stage = 2}), tp2pp4 = t67({.tp = 2, .pp = 4, .zero_stage = 1});
  CHECK(sh2 > tp2sh1);
  CHECK(tp2sh1 > tp2sh2);
  CHECK(tp2sh2 > tp2pp4);

  // Seed 004's 13B rows, full recomputation (as bench/planner_accuracy takes them): SH2SP8 1784 >
  // TP2SH1 1648 > TP2PP4 (micro-batch 4) 1643 > TP2SH2 1518 tokens per device per s measured.
  // TP2SH1 and TP2PP4 are 0.3% apart as measured; the model puts them 1.3% apart in that order.
  const transformer_spec g13 = get_preset("gpt3-13b").spec;
  const auto t13 = [&](parallel_config layout, std::int64_t lbs) {
    step_options r = q;
    r.memory.lbs = lbs;
    layout.recomputation = recompute::full;
    return predict_step(g13, layout, node, a100, r).tokens_per_device_per_s;
  };
  const double b_sh2 = t13({.zero_stage = 2}, 2), b_tp2sh1 = t13({.tp = 2, .zero_stage = 1}, 2);
  const double b_tp2pp4 = t13({.tp = 2, .pp = 4, .zero_stage = 1}, 4), b_tp2sh2 = t13({.tp = 2, .zero_stage = 2}, 2);
  CHECK(b_sh2 > b_tp2sh1);
  CHECK(b_tp2sh1 > b_tp2pp4);
  CHECK(b_tp2pp4 > b_tp2sh2);
}

TEST_CASE("what the step-time model does not cover is refused") {
  transformer_spec m = one_layer();
  const cluster_spec& c = one_toy;
  step_options o = one_sequence();
  o.memory.offload_optimizer = true;
  CHECK_THROWS_WITH_AS(predict_step(m, {}, c, flat_profile(), o), doctest::Contains("offload"), config_error);
  o.memory.offload_optimizer = false;
  o.memory.adapters.lora_rank = 8;
  CHECK_THROWS_WITH_AS(predict_step(m, {}, c, flat_profile(), o), doctest::Contains("adapters"), config_error);
  o.memory.adapters.lora_rank = 0;
  device_profile bad = flat_profile();
  bad.gemm_efficiency = 1.5;
  CHECK_THROWS_WITH_AS(predict_step(m, {}, c, bad, o), doctest::Contains("gemm_efficiency"), config_error);
}

TEST_CASE("tensor- and data-parallel communication on two nodes, by hand") {
  // 8 toy devices, 4 to a node: 100 GB/s inside, 10 GB/s per device across, no latency.
  const cluster_spec c{toy_device, 8, 4, 100e9, 10e9, 0};
  step_options o;
  o.memory.seq = 1024;
  o.gbs = 4;  // one micro-batch per replica
  const step_prediction r = predict_step(one_layer(), {.tp = 2}, c, flat_profile(), o);
  // TP pairs share a node. A block's activation is 1024 tokens x 1024 x 2 bytes; its all-reduce
  // over 2 ranks moves 2 x 1/2 of it at 100 GB/s (the ring; the tree's 2 x it is slower).
  const double ar = 1024.0 * 1024 * 2 / 100e9;
  // Forward: 2 per layer and the embedding's; backward: 2 per layer and the output layer's.
  CHECK(r.breakdown.tp_comm == doctest::Approx(6 * ar));
  // DP groups: ranks 0, 2, 4, 6, two per node: 2 x 10 GB/s. Parameters per rank: the layer
  // (4 h^2 + 3 h f + 2 h = 16,779,264) and the untied embedding and output (2 x 32000 x 1024),
  // halved by tp: 41,157,632, bf16 gradients. Ring all-reduce over 4: 2 x 3/4 x bytes / 20 GB/s.
  const double params = (16779264.0 + 2 * 32000.0 * 1024) / 2;
  CHECK(r.breakdown.dp_comm == doctest::Approx(1.5 * params * 2 / 20e9));
  CHECK(r.breakdown.optimizer == doctest::Approx(params * 32 / 1e12));
}

TEST_CASE("sequence parallelism, the distributed optimizer and ZeRO-2 on two nodes, by hand") {
  // The cluster above, with a reduce-scatter at half the all-reduce's bus bandwidth inside a node
  // (50 GB/s), so that each collective's share shows.
  cluster_spec c{toy_device, 8, 4, 100e9, 10e9, 0};
  c.reduce_scatter_scale = 0.5;
  step_options o;
  o.memory.seq = 1024;
  o.gbs = 4;  // one micro-batch per replica
  const step_prediction r = predict_step(one_layer(), {.tp = 2, .sequence_parallel = true}, c, flat_profile(), o);
  // Sequence parallelism (Korthikanti et al. 2022, section 4.2.2): each of the layer's two blocks
  // all-gathers its input and reduce-scatters its output forward, and the mirror backward; the
  // embedding reduce-scatters forward and gathers backward, the output layer the reverse. 6
  // reduce-scatters and 6 all-gathers of a block's activation (1024 tokens x 1024 x 2 bytes) over the
  // 2 ranks of a node: each moves half of it, at 50 and 100 GB/s.
  const double act = 1024.0 * 1024 * 2;
  CHECK(r.breakdown.tp_comm == doctest::Approx(6 * act / 2 / 50e9 + 6 * act / 2 / 100e9).epsilon(1e-9));
  // The distributed optimizer over the 4 data-parallel ranks (two per node: 2 x 10 GB/s): the
  // gradients reduce-scattered (3/4 of the bf16 bytes) and the updated weights all-gathered (3/4
  // of them again), Megatron-LM's dist_optimizer.md; across nodes the NICs bound both alike. A
  // rank's weights: the layer's and the embedding and output layer split over tp 2, its two norms
  // and the final one whole (as in the overlap test below). The optimizer streams a quarter of them.
  const double params = (16779264.0 - 2048 + 2 * 32000.0 * 1024) / 2 + 2048 + 1024;
  const auto step = [&](parallel_config pc, std::int64_t gbs) {
    step_options q = o;
    q.gbs = gbs;
    return predict_step(one_layer(), pc, c, flat_profile(), q).breakdown;
  };
  const step_breakdown dist = step({.tp = 2, .distributed_optimizer = true}, 4);
  CHECK(dist.dp_comm == doctest::Approx(2 * 0.75 * params * 2 / 20e9).epsilon(1e-9));
  CHECK(dist.optimizer == doctest::Approx(params / 4 * 32 / 1e12).epsilon(1e-9));
  // ZeRO-2 with 2 micro-batches: it keeps only its gradient shard, so it reduce-scatters after
  // each micro-batch, and gathers the weights once: 3 x 3/4 of the bytes. ZeRO-1 reduce-scatters
  // once per step however many micro-batches (the distributed optimizer's 2 x 3/4).
  CHECK(step({.tp = 2, .zero_stage = 2}, 8).dp_comm == doctest::Approx(3 * 0.75 * params * 2 / 20e9).epsilon(1e-9));
  CHECK(step({.tp = 2, .zero_stage = 1}, 8).dp_comm == doctest::Approx(2 * 0.75 * params * 2 / 20e9).epsilon(1e-9));
}

TEST_CASE("expert-parallel all-to-all and the context-parallel ring, by hand") {
  // One MoE layer: 4 experts, 2 per token; one micro-batch of 1024 tokens per replica on 8 toy devices.
  transformer_spec moe = one_layer();
  moe.moe.experts = 4;
  moe.moe.top_k = 2;
  step_options o;
  o.memory.seq = 1024;
  o.gbs = 8;
  // Each routed copy (1024 x 2 tokens, 1024 x 2 bytes wide) crosses the ep group once to dispatch
  // and once to combine, forward and again backward: 4 all-to-alls of 4,194,304 bytes.
  const double sent = 1024.0 * 2 * 1024 * 2;
  // ep 4 inside one node (8 to a node): 3/4 of the buffer over the 100 GB/s links.
  const cluster_spec one_node{toy_device, 8, 8, 100e9, 10e9, 0};
  CHECK(predict_step(moe, {.ep = 4}, one_node, flat_profile(), o).breakdown.ep_comm ==
        doctest::Approx(4 * 0.75 * sent / 100e9).epsilon(1e-9));
  // Two devices to a node: the group spans 2 nodes; 1/4 stays on the node's link, 2/4 crosses at
  // 10 GB/s per device, concurrently: the slower, 2/4 x sent / 10 GB/s, sets each all-to-all.
  const cluster_spec pairs{toy_device, 8, 2, 100e9, 10e9, 0};
  CHECK(predict_step(moe, {.ep = 4}, pairs, flat_profile(), o).breakdown.ep_comm ==
        doctest::Approx(4 * 0.5 * sent / 10e9).epsilon(1e-9));

  // cp 2 on a slow 1 GB/s node link: each rank holds 512 of the 1024 tokens; the ring passes its K
  // and V chunk (2 x 512 x 1024 x 2 bytes) one hop forward and two backward (K, V and then their
  // gradients), each hidden behind the attention core it overlaps: forward 4 x 512 x 1024 x 8 heads
  // x 128 x 0.5 FLOPs at 25 TFLOP/s, backward 2.5 times that.
  const cluster_spec slow{toy_device, 8, 8, 1e9, 1e9, 0};
  const double hop = 2.0 * 512 * 1024 * 2 / 1e9;
  const double attn = 4.0 * 512 * 1024 * 8 * 128 * 0.5 / 25e12;
  o.gbs = 4;  // dp 4: still one micro-batch per replica
  CHECK(predict_step(one_layer(), {.cp = 2}, slow, flat_profile(), o).breakdown.cp_comm ==
        doctest::Approx((hop - attn) + (2 * hop - 2.5 * attn)).epsilon(1e-9));
}

TEST_CASE("process groups on the nodes under Megatron-LM's order") {
  const cluster_spec c{toy_device, 8, 4, 100e9, 10e9, 0};
  // tp 2 x pp 4: stages 2 ranks apart, stage 1 -> 2 crosses from node 0 to node 1.
  CHECK(detail::spans_for({.tp = 2, .pp = 4}, 1, c).pp_crosses_nodes);
  CHECK_FALSE(
      detail::spans_for({.tp = 2, .pp = 2}, 1, cluster_spec{toy_device, 4, 4, 100e9, 10e9, 0}).pp_crosses_nodes);
  // Gradients reduce over dp x cp: tp 2, cp 2, dp 2 gives ranks 0, 2, 4, 6.
  const detail::group_spans g = detail::spans_for({.tp = 2, .cp = 2}, 2, c);
  CHECK(g.dp.size == 4);
  CHECK(g.dp.per_node == 2);
  // Hybrid sharding over 2 of 4 data-parallel ranks (tp 2): shards 0, 2 on node 0; replicas 0, 4.
  const detail::group_spans h = detail::spans_for({.tp = 2, .shard_dp = 2}, 4, c);
  CHECK(h.shard.size == 2);
  CHECK_FALSE(h.shard.spans_nodes());
  CHECK(h.replicate.size == 2);
  CHECK(h.replicate.per_node == 1);
}

TEST_CASE("overlapped gradient reduction: all but the last bucket hides, by hand") {
  // The cluster and model of the test above, 16 sequences a micro-batch: the backward (about 30 ms
  // at the flat profile's 50 TFLOP/s) outlasts the whole all-reduce (6.2 ms). What stays exposed
  // is the all-reduce of the last bucket: torch DDP's 25 MiB of bf16 gradients (13,107,200
  // parameters), but no bucket splits a parameter and the embedding, reduced last, is a larger
  // one: its tp shard, 32000 x 1024 / 2 = 16,384,000 bf16 gradients, ring over the 4
  // data-parallel ranks at 2 x 10 GB/s: 2 x 3/4 x 32,768,000 bytes / 20 GB/s.
  const cluster_spec c{toy_device, 8, 4, 100e9, 10e9, 0};
  step_options o;
  o.memory.seq = 1024;
  o.memory.lbs = 16;
  o.gbs = 64;
  o.overlap_grad_reduce = true;
  const step_prediction r = predict_step(one_layer(), {.tp = 2}, c, flat_profile(), o);
  CHECK(r.breakdown.dp_comm == doctest::Approx(1.5 * 32'768'000 / 20e9).epsilon(1e-9));
  // A vocabulary of 8000: the embedding shard (4,096,000) fits in a bucket, which is then the
  // 25 MiB one: 2 x 3/4 x 26,214,400 bytes / 20 GB/s.
  transformer_spec small_vocab = one_layer();
  small_vocab.vocab = 8000;
  CHECK(predict_step(small_vocab, {.tp = 2}, c, flat_profile(), o).breakdown.dp_comm ==
        doctest::Approx(1.5 * 25 * 1048576 / 20e9).epsilon(1e-9));
  // Not overlapped: the whole all-reduce of the test above: the layer's weights and the embedding
  // and output layer split over tp 2, its two RMSNorms (2 x 1024) and the final one (1024) whole on
  // each rank (Megatron-LM splits no norm).
  o.overlap_grad_reduce = false;
  const double params = (16779264.0 - 2048 + 2 * 32000.0 * 1024) / 2 + 2048 + 1024;
  CHECK(predict_step(one_layer(), {.tp = 2}, c, flat_profile(), o).breakdown.dp_comm ==
        doctest::Approx(1.5 * params * 2 / 20e9).epsilon(1e-9));
}

TEST_CASE("the last bucket each framework reduces") {
  step_options o;
  // megatron-core's default bucket: max(40,000,000, 1,000,000 x dp) parameters (its
  // DistributedDataParallelConfig.bucket_size docstring, core v0.7.0).
  o.memory.accounting = framework::megatron_core;
  CHECK(detail::overlap_bucket_params(o, 0, 8, 1e8, 4) == 4e7);
  CHECK(detail::overlap_bucket_params(o, 0, 64, 1e8, 4) == 6.4e7);
  // FSDP: one unit, a transformer block.
  o.memory.accounting = framework::fsdp;
  CHECK(detail::overlap_bucket_params(o, 3, 64, 1e8, 4) == 1e8);
  // DeepSpeed: reduce_bucket_size elements (its default 5e8).
  o.memory.accounting = framework::deepspeed;
  CHECK(detail::overlap_bucket_params(o, 2, 64, 1e8, 2) == 5e8);
  // torch DDP: bucket_cap_mb 25 over the gradient's bytes; paddle.DataParallel's last bucket 1 MB.
  o.memory.accounting = framework::generic;
  CHECK(detail::overlap_bucket_params(o, 0, 64, 1e8, 2) == 25.0 * 1048576 / 2);
  o.memory.accounting = framework::paddle;
  CHECK(detail::overlap_bucket_params(o, 0, 64, 1e8, 2) == 1048576.0 / 2);
}

TEST_CASE("FSDP on an MoE model: a block's unit leaves its routed experts to their own reduction, by hand") {
  // Two MoE layers, h 1024, 8 heads, 4 experts of ffn 1024 (SwiGLU), top 2, vocabulary 1000. Per
  // layer: attention 4 h^2 = 4,194,304, router h x 4 = 4,096, norms 2 h = 2,048: U = 4,200,448
  // outside the experts; experts 4 x 3 x 1024 x 1024: X = 12,582,912. The root (embeddings,
  // output layer, final norm: 2,049,024) is smaller than U. FSDP over 8 toy devices, 4 a node: the
  // group's bus at 4 x 10 GB/s. 16 sequences of 1024 tokens: every collective hides behind the
  // compute but the first gather and the last reduce-scatter of each reduction, one unit each:
  // U for the blocks, X for the experts, bf16 weights and gradients:
  // 7/8 x (2 U + 2 U + 2 X + 2 X) bytes / 40 GB/s.
  transformer_spec m{.layers = 2, .hidden = 1024, .heads = 8, .ffn = 1024, .vocab = 1000, .max_seq = 1024};
  m.moe.experts = 4;
  m.moe.top_k = 2;
  const cluster_spec c{toy_device, 8, 4, 100e9, 10e9, 0};
  step_options o;
  o.memory.seq = 1024;
  o.memory.lbs = 16;
  o.memory.accounting = framework::fsdp;
  o.gbs = 128;
  const step_prediction r = predict_step(m, {}, c, flat_profile(), o);
  CHECK(r.breakdown.dp_comm == doctest::Approx(7.0 / 8 * 4 * (4'200'448.0 + 12'582'912) / 40e9).epsilon(1e-9));
}

// The cost terms below each by hand on the one-layer toy model: the layer's forward GEMMs are
// 2 x 1024 tokens x 16,777,216 weights FLOPs, the logits' 2 x 1024 x 1024 x 32000, flash attention
// 4 x 1024 x 1024 x 1024 x 0.5 (causal); its weights 82,316,288: a layer of 3h^2 + h^2 + 3hf =
// 16,777,216 and two 1024-wide norms, the embedding and the output layer 32000 x 1024 each, the
// final norm 1024.
namespace {
constexpr double toy_layer_flops = 2.0 * 1024 * 16777216, toy_logit_flops = 2.0 * 1024 * 1024 * 32000;
constexpr double toy_attention_flops = 4.0 * 1024 * 1024 * 1024 * 0.5;
constexpr double toy_params = 16779264.0 + 2 * 32768000.0 + 1024;
}  // namespace

TEST_CASE("tensor-parallel communication hidden behind the layer's GEMMs, by hand") {
  // tp 2 on a 1 GB/s link: each block's all-reduce of 1024 x 1024 x 2 bytes takes 2 x 1/2 x
  // 2,097,152 / 1e9 s; two blocks forward and two backward, the embedding's forward and the
  // output layer's backward: 6 of them. Megatron-core's --tp-comm-overlap hides a layer's
  // forward pair behind its GEMMs (half the layer's FLOPs on each rank, at 50 TFLOP/s) and its
  // backward pair behind twice that; the embedding's and output layer's stay exposed.
  const cluster_spec slow{toy_device, 2, 8, 1e9, 1e9, 0};
  step_options o = one_sequence();
  const double ar = 2097152.0 / 1e9, linear = toy_layer_flops / 2 / 50e12;
  const double plain = predict_step(one_layer(), {.tp = 2}, slow, flat_profile(), o).breakdown.tp_comm;
  CHECK(plain == doctest::Approx(6 * ar).epsilon(1e-12));
  o.tp_comm_overlap = true;
  CHECK(predict_step(one_layer(), {.tp = 2}, slow, flat_profile(), o).breakdown.tp_comm ==
        doctest::Approx((2 * ar - linear) + (2 * ar - 2 * linear) + 2 * ar).epsilon(1e-12));
  // On a 1 TB/s link the layer's collectives hide wholly: the embedding's and output's remain.
  const cluster_spec fast{toy_device, 2, 8, 1e12, 1e12, 0};
  CHECK(predict_step(one_layer(), {.tp = 2}, fast, flat_profile(), o).breakdown.tp_comm ==
        doctest::Approx(2 * 2097152.0 / 1e12).epsilon(1e-12));
}

TEST_CASE("the distributed optimizer's parameter all-gather overlapped with the forward, by hand") {
  // Megatron-core, dp 2 on one node at 1 TB/s, one micro-batch each: the gradients (fp32 main
  // grads, 4 bytes) reduce-scattered after the backward, 1/2 x 4 x 82,316,288 bytes, then the
  // updated bf16 weights all-gathered, 1/2 x 2 x 82,316,288. With --overlap-param-gather the
  // gather hides behind the next forward but for its first bucket, max(40,000,000, 1,000,000 x
  // dp) weights (megatron-core's bucket_size): 1/2 x 2 x 4e7 bytes.
  const cluster_spec pair{toy_device, 2, 8, 1e12, 1e12, 0};
  step_options o = one_sequence();
  o.gbs = 2;
  o.memory.accounting = framework::megatron_core;
  const parallel_config c{.distributed_optimizer = true};
  const double scatter = 2 * toy_params / 1e12, gather = toy_params / 1e12;
  CHECK(predict_step(one_layer(), c, pair, flat_profile(), o).breakdown.dp_comm ==
        doctest::Approx(scatter + gather).epsilon(1e-12));
  o.overlap_param_gather = true;
  CHECK(predict_step(one_layer(), c, pair, flat_profile(), o).breakdown.dp_comm ==
        doctest::Approx(scatter + 4e7 / 1e12).epsilon(1e-12));
}

TEST_CASE("DeepSpeed ZeRO-3 with and without overlap_comm, by hand") {
  // dp 2 on one node at 1 TB/s, one micro-batch each, 16-bit weights and gradients: gathering n
  // weights or reduce-scattering n gradients moves 1/2 x 2n bytes, n x 1e-12 s. The forward's
  // gathers are prefetched behind the compute but for the first module's; the largest piece is
  // the embedding, 32,768,000 weights (no bucket splits a parameter). Without overlap_comm the
  // backward's gathers and reduce-scatters (2 x 82,316,288 weights' worth) are all exposed; with
  // it all but the last reduce-scatter, the embedding's.
  const cluster_spec pair{toy_device, 2, 8, 1e12, 1e12, 0};
  step_options o = one_sequence();
  o.gbs = 2;
  o.memory.accounting = framework::deepspeed;
  o.memory.deepspeed.overlap_comm = deepspeed_zero_config::toggle::off;
  const double first = 32768000.0 / 1e12;
  CHECK(predict_step(one_layer(), {.zero_stage = 3}, pair, flat_profile(), o).breakdown.dp_comm ==
        doctest::Approx(first + 2 * toy_params / 1e12).epsilon(1e-12));
  o.memory.deepspeed.overlap_comm = deepspeed_zero_config::toggle::on;
  CHECK(predict_step(one_layer(), {.zero_stage = 3}, pair, flat_profile(), o).breakdown.dp_comm ==
        doctest::Approx(2 * first).epsilon(1e-12));
}

TEST_CASE("hybrid sharding: the shards' all-reduce across the replicas, by hand") {
  // FSDP over dp 4 on two nodes of 2 (1 TB/s inside a node, 100 GB/s across), bf16 weights and
  // gradients, one micro-batch each. FSDP's root unit (embedding, output layer, final norm:
  // 65,537,024 weights) is gathered first and reduced last; the rest hides behind the compute.
  //   Full sharding over the 4: the group spans both nodes with 2 ranks on each, 2 x 100 GB/s:
  //   gather 3/4 x 2n / 2e11 and reduce-scatter the same, 15 x 1e-12 s a weight in all.
  //   Hybrid, shard_dp 2: gather and reduce-scatter inside a node (1/2 x 2n / 1e12 each, 2 x
  //   1e-12), then the shard (n bytes) all-reduced across the two replicas, one rank a node at
  //   100 GB/s: ring 2 x 1/2 x n / 1e11, 10 x 1e-12. 12 x 1e-12 s a weight.
  const cluster_spec two_nodes{toy_device, 4, 2, 1e12, 1e11, 0};
  step_options o = one_sequence();
  o.gbs = 4;
  o.memory.accounting = framework::fsdp;
  const double root = 2 * 32768000.0 + 1024;
  CHECK(predict_step(one_layer(), {.zero_stage = 3}, two_nodes, flat_profile(), o).breakdown.dp_comm ==
        doctest::Approx(15 * root * 1e-12).epsilon(1e-12));
  CHECK(predict_step(one_layer(), {.zero_stage = 3, .shard_dp = 2}, two_nodes, flat_profile(), o).breakdown.dp_comm ==
        doctest::Approx(12 * root * 1e-12).epsilon(1e-12));
}

TEST_CASE("fp8 linear layers at the fp8 peak, attention at the 16-bit one, by hand") {
  // A toy device with a 200 TFLOP/s fp8 peak: Transformer Engine's fp8 GEMMs (the layer's and the
  // logits') run at half of it, 100 TFLOP/s, in place of 50; attention and the memory-bound bytes
  // are unchanged. MFU is then taken against the fp8 peak.
  device_spec fp8_device = toy_device;
  fp8_device.peak_flops[static_cast<int>(dtype::fp8)] = 200e12;
  const cluster_spec one{fp8_device, 1, 8, 1e12, 1e12, 0};
  step_options o = one_sequence();
  const step_prediction bf16 = predict_step(one_layer(), {}, one, flat_profile(), o);
  o.memory.fp8 = fp8_training::transformer_engine;
  const step_prediction fp8 = predict_step(one_layer(), {}, one, flat_profile(), o);
  const double saved = (toy_layer_flops + toy_logit_flops) * (1 / 50e12 - 1 / 100e12);
  CHECK(bf16.stage_forward[0] - fp8.stage_forward[0] == doctest::Approx(saved).epsilon(1e-9));
  CHECK(bf16.stage_backward[0] - fp8.stage_backward[0] == doctest::Approx(2 * saved).epsilon(1e-9));
  CHECK(fp8.mfu * 200e12 * fp8.step_time == doctest::Approx(bf16.mfu * 100e12 * bf16.step_time).epsilon(1e-12));
}

TEST_CASE("cuDNN's fused attention at its own efficiencies, by hand") {
  // Forward at 0.5 of the 100 TFLOP/s peak and backward (2.5 x the FLOPs) at 0.2, in place of
  // flash attention's 0.25 for both.
  device_profile p = flat_profile();
  p.cudnn_attention_forward_efficiency = 0.5;
  p.cudnn_attention_backward_efficiency = 0.2;
  step_options o = one_sequence();
  const step_prediction flash = predict_step(one_layer(), {}, one_toy, p, o);
  o.memory.cudnn_attention = true;
  const step_prediction cudnn = predict_step(one_layer(), {}, one_toy, p, o);
  CHECK(flash.stage_forward[0] - cudnn.stage_forward[0] ==
        doctest::Approx(toy_attention_flops / 25e12 - toy_attention_flops / 50e12).epsilon(1e-9));
  CHECK(cudnn.stage_backward[0] - flash.stage_backward[0] ==
        doctest::Approx(2.5 * toy_attention_flops / 20e12 - 2.5 * toy_attention_flops / 25e12).epsilon(1e-9));
}

TEST_CASE("an MoE layer's router, experts, capacity and shared expert, by hand") {
  // 4 experts of the dense FFN's width (4096), 2 per token, on one device: the router is a
  // 1024 x 4 x 1024 GEMM, memory-bound on the roofline (2 x (1024 x 1024 + 1024 x 4 + 1024 x 4)
  // bytes at 1 TB/s); each expert takes 1024 x 2 / 4 = 512 tokens, so the experts do twice the
  // dense MLP's work: 2 x 1024 x 3 x 4096 x 1024 FLOPs and SwiGLU's 3 x 4096 x 2 bytes a token, once
  // more. The dense MLP's own share is therefore what an MoE layer adds besides its router.
  const double mlp = 2.0 * 1024 * 3 * 4096 * 1024 / 50e12, act = 1024.0 * 3 * 4096 * 2 / 1e12;
  const double router = 2.0 * (1024 * 1024 + 1024 * 4 + 1024 * 4) / 1e12;
  transformer_spec moe = one_layer();
  moe.moe.experts = 4;
  moe.moe.top_k = 2;
  const step_options o = one_sequence();
  const auto fwd = [&](const transformer_spec& m, const step_options& opt) {
    return predict_step(m, {}, one_toy, flat_profile(), opt).stage_forward[0];
  };
  const auto bwd = [&](const transformer_spec& m, const step_options& opt) {
    return predict_step(m, {}, one_toy, flat_profile(), opt).stage_backward[0];
  };
  const double dense_f = fwd(one_layer(), o), dense_b = bwd(one_layer(), o);
  CHECK(fwd(moe, o) - dense_f == doctest::Approx(mlp + router + act).epsilon(1e-9));
  CHECK(bwd(moe, o) - dense_b == doctest::Approx(2 * (mlp + router + act)).epsilon(1e-9));
  // Capacity factor 1.5: every expert padded to 1.5 x its 512 tokens, half the experts' work again.
  step_options padded = o;
  padded.memory.moe_capacity_factor = 1.5;
  CHECK(fwd(moe, padded) - fwd(moe, o) == doctest::Approx(mlp + act).epsilon(1e-9));
  // A shared expert of the same width sees every token: one dense MLP more.
  transformer_spec shared = moe;
  shared.moe.shared_experts = 1;
  CHECK(fwd(shared, o) - fwd(moe, o) == doctest::Approx(mlp + act).epsilon(1e-9));
}

TEST_CASE("unfused attention's score matrix and a GELU MLP, by hand") {
  // Unfused: per head, Q K^T and P V as batched GEMMs of 1024 x 1024 x 128 (8 heads, 2 x 8 x 1024 x
  // 1024 x 128 FLOPs each at 50 TFLOP/s), and the 1024 x 1024 x 8 scores read and written four
  // times in 16 bits (scale and mask, softmax), 8 bytes each; the backward runs both products twice
  // and moves 1.5 x the scores' bytes. With an fp32 softmax (eager transformers) 3 x 2 + 8 bytes.
  const double products = 2 * (2.0 * 8 * 1024 * 1024 * 128) / 50e12, scores = 1024.0 * 1024 * 8;
  step_options o = one_sequence();
  const step_prediction flash = predict_step(one_layer(), {}, one_toy, flat_profile(), o);
  o.memory.flash_attention = false;
  const step_prediction unfused = predict_step(one_layer(), {}, one_toy, flat_profile(), o);
  CHECK(unfused.stage_forward[0] - flash.stage_forward[0] ==
        doctest::Approx(products + scores * 8 / 1e12 - toy_attention_flops / 25e12).epsilon(1e-9));
  CHECK(unfused.stage_backward[0] - flash.stage_backward[0] ==
        doctest::Approx(2 * products + 1.5 * scores * 8 / 1e12 - 2.5 * toy_attention_flops / 25e12).epsilon(1e-9));
  o.memory.fp32_softmax = true;
  CHECK(predict_step(one_layer(), {}, one_toy, flat_profile(), o).stage_forward[0] - unfused.stage_forward[0] ==
        doctest::Approx(scores * (14 - 8) / 1e12).epsilon(1e-9));
  // GELU in place of SwiGLU: one up projection fewer (2 x 1024 x 4096 x 1024 FLOPs) and the
  // activation reads one input, not two (1024 x 4096 x 2 bytes fewer).
  transformer_spec gelu = one_layer();
  gelu.mlp = mlp_kind::gelu;
  CHECK(flash.stage_forward[0] - predict_step(gelu, {}, one_toy, flat_profile(), one_sequence()).stage_forward[0] ==
        doctest::Approx(2.0 * 1024 * 4096 * 1024 / 50e12 + 1024.0 * 4096 * 2 / 1e12).epsilon(1e-9));
}

TEST_CASE("a tied output layer's copy on the last pipeline stage, and interleaved stages, through predict_step") {
  // Two layers over pp 2, tied: the last stage keeps its own copy of the embedding to compute the
  // logits (Megatron-LM's word_embeddings on the last stage), so it steps 16,779,264 + 1024 +
  // 32,768,000 weights, more than the first stage's layer and embedding (49,547,264): the
  // optimizer time is the last stage's, 32 bytes a weight at 1 TB/s (bf16 gradient read twice and
  // zeroed 3 x 2, fp32 master, m and v read and written 2 x 12, the bf16 weight written 2).
  transformer_spec two = one_layer();
  two.layers = 2;
  two.tied_embeddings = true;
  const cluster_spec pair{toy_device, 2, 8, 1e12, 1e12, 0};
  step_options o = one_sequence();
  o.gbs = 4;
  CHECK(predict_step(two, {.pp = 2}, pair, flat_profile(), o).breakdown.optimizer ==
        doctest::Approx((16779264.0 + 1024 + 32768000) * 32 / 1e12).epsilon(1e-12));
  // Four layers, pp 2 x vpp 2, 4 micro-batches. This checks the wiring only: predict_step plays
  // its stages' times through the interleaved schedule with hand-offs of 1024 x 1024 x 2 bytes at
  // 1 TB/s and adds the optimizer; the schedule's own timings are pinned by hand in
  // test_schedule.cpp, and the stage times by the tests above.
  transformer_spec four = one_layer();
  four.layers = 4;
  const step_prediction r = predict_step(four, {.pp = 2, .vpp = 2}, pair, flat_profile(), o);
  const double pipeline = simulate(make_schedule(pipeline_schedule::interleaved, 2, 4, 2), r.stage_forward,
                                   r.stage_backward, 1024.0 * 1024 * 2 / 1e12, false)
                              .step_time;
  CHECK(r.step_time == doctest::Approx(pipeline + r.breakdown.optimizer).epsilon(1e-12));
  CHECK(r.step_time < predict_step(four, {.pp = 2}, pair, flat_profile(), o).step_time);  // a smaller bubble
}
