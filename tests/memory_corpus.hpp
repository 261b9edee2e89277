// The public memory corpus (tests/data/memory_corpus/rows.csv, sources and schema in its
// README.md) read into trainperf's terms: each row becomes a model, a parallel configuration,
// memory options and the quantity it measured, or says why the memory model cannot express it
// yet. Read by bench/memory_corpus (which CTest runs with its pins).
//
// The reading of a row follows global rules only (below, each with the column it reads); no
// row or source has a rule of its own.
#pragma once

#include <algorithm>
#include <cctype>
#include <cmath>
#include <cstdint>
#include <fstream>
#include <sstream>
#include <stdexcept>
#include <string>
#include <string_view>
#include <vector>

#include <trainperf/trainperf.hpp>

namespace trainperf::corpus {

// What a row's figure measures (its measured_kind column).
enum class measured { torch_allocated, torch_reserved, torch_active, unknown };

struct row {
  std::string id, source, model_name;
  transformer_spec model;
  parallel_config parallel;
  std::int64_t world = 0;
  memory_options options;
  measured kind = measured::unknown;
  double measured_gib = NAN;  // NaN for an out-of-memory row
  // Where the source leaves the unit open (unit_certain "no": GB or GiB), whether memory_gib
  // reads the figure as GiB (the raw figure, or its share of a total over the devices) or as GB.
  bool unit_certain = true, read_as_gib = true;
  bool oom = false;
  double capacity_gib = 0;
  std::int64_t stage = -1;  // the pipeline stage the figure belongs to (the last rank's); -1: the most loaded
  bool duplicate = false;   // repeats an earlier row's configuration (same_config_as)
  std::int64_t stated_trainable = -1;  // trainable parameters the source states (adapter_detail), or -1
  std::string unexpressible;           // why the model cannot express the row yet; empty when it can
  // Rows with the same sweep differ at most in their sequence length: every other column but the
  // figure and its provenance is the same.
  std::string sweep;
};

namespace detail {

// The columns that are not a run's settings: its id, length, figure and provenance (row::sweep).
inline constexpr std::string_view not_settings[] = {"row_id",     "seq_len",        "raw_value", "raw_unit",
                                                    "memory_gib", "unit_certain",   "outcome",   "url",
                                                    "location",   "same_config_as", "notes"};

// RFC 4180: comma-separated, fields in double quotes may hold commas, newlines and "" quotes.
inline std::vector<std::vector<std::string>> parse_csv(const std::string& text) {
  std::vector<std::vector<std::string>> records(1);
  std::string field;
  bool quoted = false, any = false;
  for (std::size_t i = 0; i < text.size(); ++i) {
    const char ch = text[i];
    if (quoted) {
      if (ch == '"' && i + 1 < text.size() && text[i + 1] == '"') {
        field += '"';
        ++i;
      } else if (ch == '"') {
        quoted = false;
      } else {
        field += ch;
      }
    } else if (ch == '"') {
      quoted = true;
    } else if (ch == ',') {
      records.back().push_back(field);
      field.clear();
    } else if (ch == '\n' || ch == '\r') {
      if (ch == '\r' && i + 1 < text.size() && text[i + 1] == '\n') ++i;
      records.back().push_back(field);
      field.clear();
      records.emplace_back();
    } else {
      field += ch;
    }
    any = true;
  }
  if (quoted) throw std::runtime_error("memory corpus: a quoted field is not closed");
  if (!field.empty() || (any && !records.back().empty())) records.back().push_back(field);
  if (records.back().empty()) records.pop_back();
  return records;
}

inline bool has(const std::string& s, const char* part) { return s.find(part) != std::string::npos; }

// An integer column ("8", or "8 (how)" with a note after a space), or -1 where it is blank,
// "unknown" or text.
inline std::int64_t integer(const std::string& s) {
  if (s.empty() || s[0] < '0' || s[0] > '9') return -1;
  std::size_t used = 0;
  try {
    const long long v = std::stoll(s, &used);
    return used == s.size() || s[used] == ' ' ? v : -1;
  } catch (const std::exception&) {
    return -1;
  }
}
// The number after `key` in `text` ("r=8" with key "r="), or -1.
inline std::int64_t number_after(const std::string& text, const char* key) {
  const std::size_t at = text.find(key);
  if (at == std::string::npos) return -1;
  const std::size_t from = at + std::string(key).size();
  std::size_t end = from;
  while (end < text.size() && text[end] >= '0' && text[end] <= '9') ++end;
  return end > from ? std::stoll(text.substr(from, end - from)) : -1;
}

// A LoRA row's adapters from its adapter_detail text: the rank ("r=8", "rank 8"), the targets by
// the names the frameworks give the projections (a fused QKV projection, Qwen's c_attn, Baichuan's
// W_pack, ChatGLM's query_key_value, is one target; Qwen's c_proj names both the attention
// output and the MLP's down projection; its w1 and w2 are the gate and up projections), dropout
// when a dropout is named, the quantized base's format, and PEFT's modules_to_save copies.
inline adapter_options adapters(const std::string& d) {
  namespace lt = lora_target;
  adapter_options a;
  a.lora_rank = std::max(number_after(d, "r="), number_after(d, "rank "));
  const bool fused = has(d, "c_attn") || has(d, "W_pack") || has(d, "query_key_value");
  unsigned t = 0;
  if (has(d, "query and value")) t |= lt::q | lt::v;
  if (fused) t |= lt::qkv;
  if (has(d, "q_proj,k_proj,v_proj") || has(d, "q/k/v")) t |= lt::q | lt::k | lt::v;
  if (has(d, "q_proj+v_proj") || has(d, "q/v/")) t |= lt::q | lt::v;
  if (has(d, "output_proj")) t |= lt::o;
  if (has(d, "+ MLP")) t |= lt::mlp;
  if (has(d, "c_proj")) t |= lt::o | lt::down;
  if (has(d, "w1")) t |= lt::gate;
  if (has(d, "w2")) t |= lt::up;
  if (has(d, "targets ALL")) t |= (fused ? lt::qkv : lt::q | lt::k | lt::v) | lt::o | lt::mlp;
  a.lora_targets = t;
  a.lora_dropout = has(d, "dropout 0.") && !has(d, "dropout 0.0 ") && !has(d, "dropout 0,");
  a.train_embeddings = has(d, "modules_to_save");
  const char* format = has(d, "nf4-dq")                                         ? "nf4-dq"
                       : has(d, "nf4") || has(d, "NF4") || has(d, "int4 (bnb)") ? "nf4"
                       : has(d, "int4 (gptq)") || has(d, "Int4 GPTQ")           ? "int4"
                       : has(d, "int8 (gptq)")                                  ? "int8-gptq"
                                                                                : nullptr;
  if (format) a.frozen_weight_bits = *quantized_weight_bits(format);
  return a;
}
}  // namespace detail

// The rows of the corpus at `path`, read by the global rules; throws on a malformed file.
inline std::vector<row> load(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) throw std::runtime_error("memory corpus: cannot open " + path);
  std::stringstream buf;
  buf << in.rdbuf();
  const auto records = detail::parse_csv(buf.str());
  if (records.empty()) throw std::runtime_error("memory corpus: " + path + " is empty");
  const auto& header = records.front();
  const auto column = [&](const char* name) {
    for (std::size_t i = 0; i < header.size(); ++i)
      if (header[i] == name) return i;
    throw std::runtime_error(std::string("memory corpus: no column ") + name);
  };
  const std::size_t c_id = column("row_id"), c_source = column("source_id"), c_model = column("model"),
                    c_layers = column("layers"), c_hidden = column("hidden"), c_heads = column("heads"),
                    c_kv = column("kv_heads"), c_ffn = column("ffn"), c_vocab = column("vocab"),
                    c_experts = column("num_experts"), c_topk = column("moe_topk"), c_expert_ffn = column("expert_ffn"),
                    c_shared = column("shared_experts"), c_moe_layers = column("moe_layers"), c_etp = column("etp"),
                    c_arch = column("arch_notes"), c_train = column("train_type"), c_adapter = column("adapter_detail"),
                    c_framework = column("framework"), c_version = column("framework_version"),
                    c_precision = column("precision"), c_grad = column("grad_dtype"),
                    c_master = column("master_weights"), c_optimizer = column("optimizer"), c_seq = column("seq_len"),
                    c_mb = column("micro_batch"), c_ga = column("grad_accum"), c_tp = column("tp"), c_pp = column("pp"),
                    c_dp = column("dp"), c_cp = column("cp"), c_ep = column("ep"), c_vpp = column("vpp"),
                    c_sp = column("sequence_parallel"), c_sharding = column("sharding"), c_offload = column("offload"),
                    c_recompute = column("recompute"), c_recompute_detail = column("recompute_detail"),
                    c_compile = column("compile"), c_other = column("other_settings"),
                    c_attention = column("attention"), c_devices = column("num_devices"), c_device = column("device"),
                    c_capacity = column("device_capacity_gib"), c_kind = column("measured_kind"),
                    c_rank = column("measured_rank"), c_gib = column("memory_gib"), c_outcome = column("outcome"),
                    c_complete = column("settings_complete"), c_same = column("same_config_as"),
                    c_unit_certain = column("unit_certain"), c_raw = column("raw_value");
  std::vector<row> rows;
  for (std::size_t k = 1; k < records.size(); ++k) {
    const auto& f = records[k];
    if (f.size() != header.size())
      throw std::runtime_error("memory corpus: record " + std::to_string(k) + " has " + std::to_string(f.size()) +
                               " fields, the header " + std::to_string(header.size()));
    row r;
    r.id = f[c_id];
    r.source = f[c_source];
    r.model_name = f[c_model];
    // Every setting, not the length, the figure or where it was read.
    for (std::size_t c = 0; c < header.size(); ++c)
      if (std::ranges::find(detail::not_settings, header[c]) == std::ranges::end(detail::not_settings))
        r.sweep += f[c] + '|';
    r.duplicate = !f[c_same].empty();
    r.oom = f[c_outcome] == "oom";
    r.measured_gib = r.oom || f[c_gib].empty() ? NAN : std::stod(f[c_gib]);
    r.capacity_gib = f[c_capacity].empty() ? 0 : std::stod(f[c_capacity]);
    r.unit_certain = f[c_unit_certain] != "no";
    if (!r.unit_certain && !std::isnan(r.measured_gib)) {
      // The raw figure's leading number ("139.2G total over 2 GPUs"): memory_gib reads it as GiB
      // when it is that number, or that number over the devices (a total, README's memory_gib).
      const std::string& text = f[c_raw];
      if (text.empty() || text[0] < '0' || text[0] > '9')
        throw std::runtime_error("memory corpus: row " + r.id + ": raw_value '" + text +
                                 "' does not start with a number, and unit_certain is no");
      const double raw = std::stod(text);
      const double devices = static_cast<double>(std::max<std::int64_t>(1, detail::integer(f[c_devices])));
      r.read_as_gib =
          std::abs(r.measured_gib - raw) < 0.005 * raw || std::abs(r.measured_gib * devices - raw) < 0.005 * raw;
    }
    const std::string& kind = f[c_kind];
    r.kind = kind == "torch_max_allocated"  ? measured::torch_allocated
             : kind == "torch_max_reserved" ? measured::torch_reserved
             : kind == "torch_peak_active"  ? measured::torch_active
                                            : measured::unknown;
    const auto why = [&](const std::string& reason) {
      if (r.unexpressible.empty()) r.unexpressible = reason;
    };

    // Rules that decide whether the row can be expressed at all, in the order the issue lists
    // the missing capabilities.
    const std::string &train = f[c_train], &precision = f[c_precision], &master = f[c_master],
                      &sharding = f[c_sharding], &offload = f[c_offload], &framework_name = f[c_framework];
    if (f[c_complete] != "yes") why("settings not complete in the source");
    // fp8: torchao's float8 and MX linears (torchtitan's float8 converter) keep 16-bit inputs;
    // FSDP2 gathers the weights in fp8 where the row says so; Transformer Engine otherwise.
    if (detail::has(precision, "float8") || detail::has(precision, "fp8"))
      r.options.fp8 = detail::has(framework_name, "torchao") || detail::has(framework_name, "torchtitan")
                          ? (detail::has(f[c_other], "fp8 all-gather") ? fp8_training::torchao_fp8_all_gather
                                                                       : fp8_training::torchao)
                          : fp8_training::transformer_engine;
    if (detail::has(f[c_optimizer], "8bit") || detail::has(f[c_optimizer], "8-bit"))
      r.options.optimizer = optimizer_kind::adam_8bit;
    // torchtune's memory options (optimizer_in_bwd, chunked cross-entropy, activation
    // offloading) as the row names them; bitsandbytes' paged optimizers move their states to host
    // memory under pressure (it matters where the states are large: full fine-tuning).
    r.options.optimizer_in_backward =
        detail::has(f[c_other], "optimizer_in_bwd=True") || detail::has(f[c_other], "optimizer_in_bwd: yes");
    if (detail::has(f[c_other], "chunked CE"))
      r.options.loss = f[c_compile] == "yes" ? logits_loss::chunked_compiled : logits_loss::chunked;
    if (detail::has(f[c_other], "loss compiled")) r.options.loss = logits_loss::compiled;
    if (detail::has(f[c_optimizer], "Paged") && !detail::has(train, "lora") && !detail::has(train, "adapter"))
      why("paged optimizer states of a full fine-tune");
    r.options.offload_activations = detail::has(offload, "activations offloaded");
    if (offload != "none" && !r.options.offload_activations)
      why("offload beyond the optimizer states (" + offload + ")");
    // Layers split over devices without pipelining (transformers' device_map="auto": accelerate's
    // get_balanced_memory gives each device an even share of the weights): pipeline stages with
    // one micro-batch in flight, as the row's pp column gives them (micro_batches stays 1).
    if (detail::has(f[c_arch], "MLA")) why("multi-head latent attention");

    // The model.
    transformer_spec& m = r.model;
    m.layers = detail::integer(f[c_layers]);
    m.hidden = detail::integer(f[c_hidden]);
    m.heads = detail::integer(f[c_heads]);
    m.kv_heads = std::max<std::int64_t>(0, detail::integer(f[c_kv]));
    m.ffn = detail::integer(f[c_ffn]);
    m.vocab = detail::integer(f[c_vocab]);
    const std::string& arch = f[c_arch];
    m.mlp = detail::has(arch, "GELU") || detail::has(arch, "gelu") ? mlp_kind::gelu : mlp_kind::swiglu;
    m.tied_embeddings = detail::has(arch, "tied") && !detail::has(arch, "untied");
    m.qkv_bias = detail::has(arch, "QKV bias");
    m.linear_bias =
        (detail::has(arch, "biases") && !detail::has(arch, "no biases")) || detail::has(arch, "linear biases on");
    m.norm = detail::has(arch, "LayerNorm") ? norm_kind::layernorm : norm_kind::rmsnorm;
    if (m.layers <= 0 || m.hidden <= 0 || m.heads <= 0 || m.ffn <= 0 || m.vocab <= 0) why("model sizes not given");
    // MoE: experts, top-k, the experts' ffn, shared experts (each of the expert ffn unless the
    // column gives its own in parentheses); MoE layers everywhere or not expressible.
    if (!f[c_experts].empty()) {
      m.moe.experts = detail::integer(f[c_experts]);
      m.moe.top_k = detail::integer(f[c_topk]);
      m.moe.expert_ffn = std::max<std::int64_t>(0, detail::integer(f[c_expert_ffn]));
      m.moe.shared_experts = std::max<std::int64_t>(0, detail::integer(f[c_shared]));
      m.moe.shared_expert_ffn = std::max<std::int64_t>(0, detail::number_after(f[c_shared], "("));
      if (f[c_moe_layers].rfind("all", 0) != 0) why("MoE layers in a pattern other than every layer");
    }

    // Layout: degrees as printed (blank or unknown: 1), the world from the device count.
    parallel_config& c = r.parallel;
    const auto degree = [&](std::size_t col) { return std::max<std::int64_t>(1, detail::integer(f[col])); };
    c.tp = degree(c_tp), c.pp = degree(c_pp), c.cp = degree(c_cp), c.ep = degree(c_ep), c.vpp = degree(c_vpp);
    c.etp = std::max<std::int64_t>(0, detail::integer(f[c_etp]));  // blank: Megatron-LM's default, tp
    c.sequence_parallel = f[c_sp].rfind("yes", 0) == 0;            // "yes" or "yes (how)"
    const std::int64_t dp = detail::integer(f[c_dp]);
    r.world = detail::integer(f[c_devices]);
    if (r.world <= 0) r.world = (dp > 0 ? dp : 1) * c.tp * c.pp * c.cp;
    const std::string& recompute_mode = f[c_recompute];
    // Eager PyTorch modules (layer_kernels::eager): models as Hugging Face transformers and
    // Lit-GPT write them, and torchtitan/torchtune runs without torch.compile.
    const bool compiled = f[c_compile] == "yes";
    if (detail::has(framework_name, "Transformers") || detail::has(framework_name, "lit-gpt") ||
        ((detail::has(framework_name, "torchtune") || detail::has(framework_name, "torchtitan")) && !compiled))
      r.options.kernels = layer_kernels::eager;
    if (detail::has(f[c_recompute_detail], "per-op SAC"))
      r.options.selective = detail::has(f[c_recompute_detail], "attention recomputed")
                                ? selective_policy::every_other_matmul_and_attention
                                : selective_policy::every_other_matmul;
    c.recomputation = recompute_mode == "full"        ? recompute::full
                      : recompute_mode == "selective" ? recompute::selective
                                                      : recompute::none;

    // Sharding and framework accounting.
    memory_options& o = r.options;
    o.seq = detail::integer(f[c_seq]);
    o.lbs = detail::integer(f[c_mb]);
    if (o.seq <= 0 || o.lbs <= 0) why("sequence length or micro-batch not given");
    m.max_seq = std::max<std::int64_t>(1, o.seq);  // the context the run trained at
    o.param_dtype = detail::has(precision, "fp16") ? dtype::fp16 : dtype::bf16;
    // The gradient buffers' dtype where the row states it, else the framework's default.
    if (detail::has(f[c_grad], "fp32"))
      o.fp32_grads = true;
    else if (detail::has(f[c_grad], "bf16") || detail::has(f[c_grad], "fp16"))
      o.fp32_grads = false;
    o.master_weights = !detail::has(master, "none");  // "none": pure 16-bit, states in the weights' dtype
    o.flash_attention = !detail::has(f[c_attention], "eager");
    // The eager rows' attention up-casts its softmax to fp32 and casts it back (Qwen's remote
    // code, modeling_qwen.py _attn: softmax(attn_weights.float()).type(value.dtype)), as
    // transformers' eager attention does.
    o.fp32_softmax = !o.flash_attention;
    if (detail::has(sharding, "deepspeed_zero")) {
      o.accounting = framework::deepspeed;
      c.zero_stage = detail::has(sharding, "zero3") ? 3 : detail::has(sharding, "zero2") ? 2 : 1;
      // ZeRO's buffer settings as other_settings gives them: Hugging Face's "auto" values, or the
      // 2e8 buckets with overlap_comm of the config file that names them (Qwen's
      // finetune/ds_config_zero2.json sets both); DeepSpeed's defaults otherwise.
      const std::string& other = f[c_other];
      if (detail::has(other, "auto")) o.deepspeed = deepspeed_zero_config::hf_auto(m.hidden);
      if (detail::has(other, "bucket sizes 2e8")) {
        o.deepspeed.reduce_bucket_size = 2e8;
        o.deepspeed.overlap_comm = deepspeed_zero_config::toggle::on;
      }
    } else if (detail::has(sharding, "fsdp")) {
      c.zero_stage = 3;  // FSDP full shard: weights, gradients and optimizer states sharded over dp
      o.accounting = framework::fsdp;
      // Lit-GPT's fine-tuning loop accumulates under fabric.no_backward_sync (FSDP's no_sync,
      // finetune/*.py at 8641822); its rows give the accumulation as "N/micro_batch".
      if (detail::has(framework_name, "lit-gpt")) {
        const std::int64_t samples = detail::integer(f[c_ga].substr(0, f[c_ga].find('/')));
        if (samples > 0 && f[c_ga].find("/micro_batch") != std::string::npos && o.lbs > 0) {
          o.micro_batches = std::max<std::int64_t>(1, samples / o.lbs);
          o.unsharded_grad_accumulation = true;
        }
      }
    } else if (detail::has(sharding, "distributed_optimizer")) {
      c.distributed_optimizer = true;
    }
    // Accumulating over micro-batches, the gradients of the first backward live through the
    // others' forward ("8", or Lit-GPT's "128/micro_batch"). micro_batches stays as set above: the
    // naive pipeline splits keep one micro-batch in flight.
    {
      const std::int64_t n = detail::integer(f[c_ga].substr(0, f[c_ga].find('/')));
      const std::int64_t steps = f[c_ga].find("/micro_batch") != std::string::npos && o.lbs > 0 ? n / o.lbs : n;
      o.persistent_grads = steps != 1;  // an accumulation the column does not give as a number too
    }
    if (detail::has(train, "llama_adapter")) {  // Lit-GPT's LLaMA-Adapter with its defaults
      o.adapters = detail::adapters(f[c_adapter]);
      o.adapters.lora_rank = 0, o.adapters.lora_targets = 0, o.adapters.lora_dropout = false;
      o.adapters.llama_adapter = detail::has(train, "v2") ? prompt_adapter::v2 : prompt_adapter::v1;
    }
    if (detail::has(train, "lora") || detail::has(train, "llama_adapter")) {
      if (!o.adapters.prompt()) o.adapters = detail::adapters(f[c_adapter]);
      if (!o.adapters.lora() && !o.adapters.prompt()) why("LoRA rank or targets not read from adapter_detail");
      std::string stated;  // "trainable params 1,572,864" without its thousands separators
      if (const std::size_t at = f[c_adapter].find("trainable params "); at != std::string::npos)
        for (std::size_t i = at + 17;
             i < f[c_adapter].size() &&
             (std::isdigit(static_cast<unsigned char>(f[c_adapter][i])) || f[c_adapter][i] == ',');
             ++i)
          if (f[c_adapter][i] != ',') stated += f[c_adapter][i];
      if (!stated.empty()) r.stated_trainable = std::stoll(stated);
    }
    // torchtune's NF4 is torchao's NF4Tensor, which quantizes its per-block scalers to int8 in
    // blocks of 256 (to_nf4's scaler_block_size): double quantization, 4.127 bits a weight.
    if (o.adapters.frozen_weight_bits == *quantized_weight_bits("nf4") && detail::has(framework_name, "torchtune"))
      o.adapters.frozen_weight_bits = *quantized_weight_bits("nf4-dq");
    // bitsandbytes 0.41's 4-bit matmul keeps its input (adapter_options::quantized_inputs_kept).
    if (o.adapters.frozen_weight_bits > 0 && detail::has(f[c_version], "bitsandbytes 0.41") &&
        !detail::has(f[c_adapter], "gptq") && !detail::has(f[c_adapter], "GPTQ"))
      o.adapters.quantized_inputs_kept = true;
    // PEFT before 0.6.0 leaves the adapters in fp32 (adapter_options::fp32_adapters), unless
    // DeepSpeed casts the whole model; the version is the one the row states or the release
    // current when it was measured.
    if (o.adapters.lora() && detail::has(f[c_version], "PEFT 0.5") && o.accounting != framework::deepspeed)
      o.adapters.fp32_adapters = true;
    if (detail::has(framework_name, "Megatron")) {
      // megatron-core models with Transformer Engine (framework::megatron_core: fp32 main grads
      // with bf16); TE runs flash attention through cuDNN's FusedAttention on sm90 and later
      // (Hopper, Blackwell) and through flash-attn before (get_attention_backend).
      if (detail::has(framework_name, "megatron-core")) {
        o.accounting = framework::megatron_core;
        const std::string& device = f[c_device];
        o.cudnn_attention = detail::has(device, "H100") || detail::has(device, "H200") || detail::has(device, "H800") ||
                            detail::has(device, "H20") || detail::has(device, "B200") || detail::has(device, "GB200");
      } else {
        o.fp32_grads = true;  // main grads in fp32 with bf16
      }
      m.padding = vocab_padding::megatron;  // --make-vocab-size-divisible-by, default 128 x tp
    }
    // Qwen (1)'s remote model code (modeling_qwen.py) computes its loss on the 16-bit logits
    // without an up-cast: under the Trainer's autocast the loss runs in fp32, under DeepSpeed
    // (accelerate enables no native autocast there) in 16 bits.
    if (r.model_name.rfind("Qwen-", 0) == 0)
      o.loss = o.accounting == framework::deepspeed ? logits_loss::no_upcast : logits_loss::autocast;
    // torchtitan wraps the embedding in its own FSDP unit from 83e694105 (2025-07-28): the
    // torchao rows at torchtitan 2c8b594 and 6fc499f (August 2025) and those run on torchtitan's
    // main later without a commit (memory_options::fsdp_embedding_resharded).
    if (o.accounting == framework::fsdp &&
        (detail::has(f[c_version], "torchtitan 2c8b594") || detail::has(f[c_version], "torchtitan 6fc499f") ||
         detail::has(f[c_version], "torchtitan/torchao main")))
      o.fsdp_embedding_resharded = true;
    // torchtitan takes its loss under loss_parallel() whenever tensor parallelism is on
    // (parallel_dims.loss_parallel_enabled; disable_loss_parallel defaults to false), unless the
    // loss is compiled.
    if (detail::has(framework_name, "torchtitan") && c.tp > 1 && o.loss == logits_loss::standard)
      o.loss = logits_loss::loss_parallel;
    // Lit-GPT's fine-tuning scripts chunk the output layer, and Fabric returns the chunks in fp32
    // (logits_loss::chunked_fp32_outputs).
    if (detail::has(framework_name, "lit-gpt")) o.loss = logits_loss::chunked_fp32_outputs;
    if (detail::has(f[c_rank], "last rank")) r.stage = c.pp - 1;  // the last stage's rank logs it
    rows.push_back(r);
  }
  return rows;
}

}  // namespace trainperf::corpus
