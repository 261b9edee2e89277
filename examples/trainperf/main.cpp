// trainperf — the command-line face of the library: every subcommand prints a readable table
// or, with --json, one JSON object. Usage errors and invalid configurations exit with 2.
#include <cstdio>
#include <functional>
#include <iostream>
#include <string>
#include <tuple>
#include <vector>

#include <fmt/format.h>
#include <fmt/ranges.h>
#include <nlohmann/json.hpp>

#include <trainperf/trainperf.hpp>

#include <algorithm>
#include <fstream>

#include "args.hpp"
#include "model_flags.hpp"

namespace tp = trainperf;
using tp::cli::args;
using tp::cli::flag;
using tp::cli::usage_error;
using json = nlohmann::ordered_json;

namespace {

struct command {
  std::string_view name;
  std::string_view summary;
  std::function<std::vector<flag>()> flags;
  std::function<int(const args&)> run;
};

std::vector<flag> with_common(std::vector<flag> f) {
  f.push_back({"json", "", "print one JSON object instead of a table"});
  f.push_back({"help", "", "show this help"});
  return f;
}

void print_json(const json& j) { std::cout << j.dump(2) << '\n'; }

// 70e9 -> "70B", 124e6 -> "124M".
std::string short_count(double n) {
  if (n >= 1e9) return fmt::format("{:g}B", n / 1e9);
  if (n >= 1e6) return fmt::format("{:g}M", n / 1e6);
  return fmt::format("{:g}", n);
}

// --recompute none|selective|full (default none) and --zero 0..3 (default 0), shared by the
// subcommands that take them.
tp::recompute recompute_from_args(const args& a) {
  static constexpr std::string_view choices[] = {"none", "selective", "full"};
  const std::string rc = a.get_choice("recompute", choices).value_or("none");
  return rc == "none" ? tp::recompute::none : rc == "selective" ? tp::recompute::selective : tp::recompute::full;
}
int zero_from_args(const args& a) {
  const auto z = a.get("zero");
  if (!z) return 0;
  if (*z != "0" && *z != "1" && *z != "2" && *z != "3")
    throw usage_error("--zero expects 0, 1, 2 or 3, got '" + *z + "'");
  return (*z)[0] - '0';
}

// ---- params -----------------------------------------------------------------------------
std::vector<flag> params_flags() {
  auto f = tp::cli::model_flags();
  f.push_back({"tp", "N", "tensor-parallel degree for vocabulary padding (when the model pads)"});
  return with_common(f);
}

int run_params(const args& a) {
  const auto m = tp::cli::model_from_args(a);
  const std::int64_t tpd = a.get_int("tp").value_or(1);
  const tp::param_counts c = tp::count_params(m.spec, tpd);
  // Layers come in at most two shapes (dense and MoE); show each shape once.
  std::vector<std::pair<std::int64_t, tp::layer_params>> shapes;  // (count, params)
  std::vector<std::int64_t> per_layer;
  for (std::int64_t i = 0; i < m.spec.layers; ++i) {
    const auto l = tp::count_layer_params(m.spec, i);
    per_layer.push_back(l.total());
    bool found = false;
    for (auto& [n, s] : shapes)
      if (s.total() == l.total() && s.mlp == l.mlp) ++n, found = true;
    if (!found) shapes.push_back({1, l});
  }
  const std::int64_t active = tp::count_active_params(m.spec, tpd);
  if (a.has("json")) {
    json j;
    j["model"] = m.name;
    j["total"] = c.total();
    j["embedding"] = c.embedding();
    j["non_embedding"] = c.non_embedding();
    j["active"] = active;
    j["components"] = {{"token_embedding", c.token_embedding},
                       {"position_embedding", c.position_embedding},
                       {"output", c.output},
                       {"attention", c.attention},
                       {"mlp", c.mlp},
                       {"router", c.router},
                       {"routed_experts", c.routed_experts},
                       {"shared_experts", c.shared_experts},
                       {"norms", c.norms},
                       {"vision", c.vision},
                       {"projector", c.projector}};
    j["per_layer"] = per_layer;
    if (m.nominal_params > 0) j["nominal"] = m.nominal_params;
    print_json(j);
    return 0;
  }
  const auto row = [](std::string_view what, std::int64_t n) {
    fmt::print("  {:<28}{:>22}\n", what, tp::format_count(n));
  };
  fmt::print("model {}{}\n", m.name,
             m.nominal_params > 0 ? fmt::format(" (nominal {})", short_count(m.nominal_params)) : "");
  row("total", c.total());
  row("embedding", c.embedding());
  row("non-embedding", c.non_embedding());
  if (m.spec.is_moe()) row("active per token", active);
  fmt::print("components\n");
  row("token embedding", c.token_embedding);
  if (c.position_embedding) row("position embedding", c.position_embedding);
  if (c.output) row("output layer (untied)", c.output);
  row("attention", c.attention);
  if (c.mlp) row("mlp", c.mlp);
  if (c.router) row("router", c.router);
  if (c.routed_experts) row("routed experts", c.routed_experts);
  if (c.shared_experts) row("shared experts", c.shared_experts);
  row("norms", c.norms);
  if (c.vision) row("vision tower", c.vision);
  if (c.projector) row("projector", c.projector);
  fmt::print("per layer\n");
  for (const auto& [n, l] : shapes) row(fmt::format("{} x {} layer", n, l.routed_experts ? "MoE" : "dense"), l.total());
  return 0;
}

// ---- batch ------------------------------------------------------------------------------
std::vector<flag> batch_flags() {
  return with_common({
      {"gbs", "N", "global batch (sequences)"},
      {"lbs", "N", "micro batch per device (sequences)"},
      {"gas", "N", "gradient-accumulation steps"},
      {"dp", "N", "data-parallel degree"},
      {"world", "N", "devices in all; with --tp/--pp/--cp gives dp"},
      {"tp", "N", "tensor-parallel degree (with --world)"},
      {"pp", "N", "pipeline-parallel degree (with --world)"},
      {"cp", "N", "context-parallel degree (with --world)"},
      {"seq", "N", "sequence length (tokens)"},
  });
}

int run_batch(const args& a) {
  tp::batch_query q{a.get_int("gbs"), a.get_int("lbs"), a.get_int("gas"), a.get_int("dp"),
                    a.get_int("seq").value_or(0)};
  const auto world = a.get_int("world");
  if (!world && (a.has("tp") || a.has("pp") || a.has("cp")))
    throw usage_error("--tp/--pp/--cp only count with --world (dp = world / (tp x pp x cp))");
  if (world) {
    const std::int64_t dp = tp::data_parallel_size(*world, a.get_int("tp").value_or(1), a.get_int("pp").value_or(1),
                                                   a.get_int("cp").value_or(1));
    if (q.dp && *q.dp != dp)
      throw tp::config_error(
          "dp", fmt::format("--dp {} contradicts --world {} / (tp x pp x cp) = {}; drop one", *q.dp, *world, dp));
    q.dp = dp;
  }
  const tp::batch_config b = tp::solve_batch(q);
  if (a.has("json")) {
    json j{{"gbs", b.gbs}, {"lbs", b.lbs}, {"gas", b.gas}, {"dp", b.dp}};
    j["micro_batches_per_step"] = b.micro_batches_per_step();
    if (b.seq) {
      j["seq"] = b.seq;
      j["tokens_per_step"] = b.tokens_per_step();
      j["tokens_per_micro_batch"] = b.tokens_per_micro_batch();
      if (world) j["tokens_per_device_per_step"] = b.tokens_per_device(*world);
    } else {
      j["seq"] = nullptr;
      j["tokens_per_step"] = nullptr;
    }
    print_json(j);
    return 0;
  }
  fmt::print("GBS = LBS x GAS x DP: {} = {} x {} x {}\n", b.gbs, b.lbs, b.gas, b.dp);
  fmt::print("  micro-batches per step  {} ({} per data-parallel replica)\n", b.micro_batches_per_step(), b.gas);
  if (b.seq) {
    fmt::print("  tokens per step         {} ({} sequences x {})\n", tp::format_count(b.tokens_per_step()), b.gbs,
               b.seq);
    fmt::print("  tokens per micro-batch  {}\n", tp::format_count(b.tokens_per_micro_batch()));
    if (world) {  // a fraction when tensor/pipeline/context ranks share a replica's tokens
      const std::int64_t tokens = b.tokens_per_step();
      fmt::print("  tokens per device/step  {}\n", tokens % *world == 0
                                                       ? tp::format_count(tokens / *world)
                                                       : fmt::format("{:.2f}", b.tokens_per_device(*world)));
    }
  }
  return 0;
}

// ---- presets ----------------------------------------------------------------------------
int run_presets(const args& a) {
  if (a.has("json")) {
    json j = json::array();
    for (const auto& p : tp::presets)
      j.push_back({{"name", p.name},
                   {"params", tp::count_params(p.spec).total()},
                   {"nominal", p.nominal_params > 0 ? json(p.nominal_params) : json(nullptr)},
                   {"source", p.source}});
    print_json(j);
    return 0;
  }
  fmt::print("{:<14}{:>20}{:>10}  {}\n", "preset", "parameters", "nominal", "source");
  for (const auto& p : tp::presets)
    fmt::print("{:<14}{:>20}{:>10}  {}\n", p.name, tp::format_count(tp::count_params(p.spec).total()),
               p.nominal_params > 0 ? short_count(p.nominal_params) : "-", p.source);
  return 0;
}

// ---- flops and mfu ------------------------------------------------------------------------
std::vector<flag> flops_flag_list() {
  auto f = tp::cli::model_flags();
  for (auto& x : f)
    if (x.name == "seq") x.help = "training sequence length (default: the model's max_seq)";
  f.push_back({"convention", "nominal|palm|megatron|kaplan", "FLOPs convention (default palm)"});
  f.push_back({"causal", "", "megatron: count half of the attention core"});
  f.push_back({"recompute", "none|selective|full", "activation recomputation, for HFU (default none)"});
  f.push_back({"params", "N", "parameter count for nominal/palm/kaplan (nominal default: the preset's nominal size)"});
  f.push_back({"k", "K", "nominal's multiplier (default 6; 2 when the language model is frozen)"});
  f.push_back({"tp", "N", "tensor-parallel degree for vocabulary padding"});
  f.push_back({"train", "PARTS", "comma list of the parts that train: vision,projector,llm (multimodal)"});
  f.push_back({"images", "N", "images per sequence (multimodal; default 1)"});
  return f;
}

struct flops_setup {
  tp::cli::model_choice model;
  tp::flops_options options;
  double params_used = 0;  // N the convention multiplies (0 for megatron)
};

flops_setup flops_from_args(const args& a) {
  flops_setup f{tp::cli::model_from_args(a, /*seq_sets_max_seq=*/false), {}, 0};
  tp::transformer_spec& s = f.model.spec;
  if (auto parts = a.get("train")) {
    const auto has = [&](std::string_view part) {
      std::string_view rest = *parts;
      while (!rest.empty()) {
        const auto comma = rest.find(',');
        if (rest.substr(0, comma) == part) return true;
        rest = comma == std::string_view::npos ? std::string_view{} : rest.substr(comma + 1);
      }
      return false;
    };
    std::string_view rest = *parts;
    while (!rest.empty()) {
      const auto comma = rest.find(',');
      const auto part = rest.substr(0, comma);
      if (part != "vision" && part != "projector" && part != "llm")
        throw usage_error("--train expects a comma list of vision, projector, llm; got '" + std::string(part) + "'");
      rest = comma == std::string_view::npos ? std::string_view{} : rest.substr(comma + 1);
    }
    if ((has("vision") || has("projector")) && !s.vision.present())
      throw usage_error("--train names vision/projector parts, but " + f.model.name + " has no vision tower");
    const auto mode = [&](std::string_view part) {
      return has(part) ? tp::train_mode::trained : tp::train_mode::frozen;
    };
    s.vision.tower_mode = mode("vision");
    s.vision.projector_mode = mode("projector");
    s.llm_mode = mode("llm");
  }
  tp::flops_options& o = f.options;
  static constexpr std::string_view conventions[] = {"nominal", "palm", "megatron", "kaplan"};
  const std::string conv = a.get_choice("convention", conventions).value_or("palm");
  o.convention = conv == "nominal"    ? tp::flops_convention::nominal
                 : conv == "palm"     ? tp::flops_convention::palm
                 : conv == "megatron" ? tp::flops_convention::megatron
                                      : tp::flops_convention::kaplan;
  o.recomputation = recompute_from_args(a);
  o.seq = a.get_int("seq").value_or(s.max_seq);
  o.causal = a.has("causal");
  o.tp = a.get_int("tp").value_or(1);
  o.k = a.get_double("k").value_or(0);
  if (a.has("images")) o.images_per_sequence = *a.get_int("images");
  if (a.has("params") && o.convention == tp::flops_convention::megatron)
    throw usage_error("--params applies to nominal, palm and kaplan; megatron counts every GEMM from the shapes");
  if (a.has("k") && o.convention != tp::flops_convention::nominal)
    throw usage_error("--k applies to the nominal convention only");
  o.params = a.get_double("params").value_or(0);
  if (o.params == 0 && o.convention == tp::flops_convention::nominal && f.model.nominal_params > 0)
    o.params = f.model.nominal_params;
  f.params_used = tp::convention_params(s, o);
  return f;
}

int run_flops(const args& a) {
  const flops_setup f = flops_from_args(a);
  const tp::flops_count c = tp::count_flops(f.model.spec, f.options);
  const auto gbs = a.get_int("gbs");
  if (a.has("json")) {
    json j{{"model", f.model.name},
           {"convention", tp::to_string(f.options.convention)},
           {"seq", c.seq},
           {"causal", f.options.causal},
           {"recompute", tp::to_string(f.options.recomputation)}};
    if (f.params_used > 0) j["params"] = f.params_used;
    j["flops_per_token"] = c.model_per_token();
    j["flops_per_sequence"] = c.model;
    j["forward_flops_per_token"] = c.forward_per_token();
    j["hardware_flops_per_token"] = c.hardware_per_token();
    if (gbs) j["flops_per_step"] = c.model_per_step(*gbs);
    print_json(j);
    return 0;
  }
  fmt::print("model {}, convention {}, seq {}{}, recompute {}\n", f.model.name, tp::to_string(f.options.convention),
             c.seq, f.options.causal ? " (causal)" : "", tp::to_string(f.options.recomputation));
  // One label column, as wide as its longest label.
  const auto row = [](std::string_view label, double v, std::string_view note = {}) {
    fmt::print("  {:<28}{:.6g}{}{}\n", label, v, note.empty() ? "" : "   ", note);
  };
  if (f.params_used > 0) row("N", f.params_used);
  row("training FLOPs per token", c.model_per_token(), "(MFU counts these)");
  row("forward FLOPs per token", c.forward_per_token());
  row("hardware FLOPs per token", c.hardware_per_token(), "(HFU: with recomputation)");
  row("training FLOPs per sequence", c.model);
  if (gbs) row("training FLOPs per step", c.model_per_step(*gbs), fmt::format("({} sequences)", *gbs));
  return 0;
}

std::vector<flag> flops_flags() {
  auto f = flops_flag_list();
  f.push_back({"gbs", "N", "sequences per step, for FLOPs per step"});
  return with_common(f);
}

std::vector<flag> mfu_flags() {
  auto f = flops_flag_list();
  f.push_back({"device", "NAME", "a device from `trainperf devices`"});
  f.push_back({"dtype", "fp32|tf32|bf16|fp16|fp8", "dtype whose dense peak counts (default bf16)"});
  f.push_back({"peak-flops", "X", "dense peak FLOP/s per device (instead of --device)"});
  f.push_back({"tokens-per-device-per-s", "X", "measured token/p/s"});
  f.push_back({"samples-per-s", "X", "measured samples/s of all devices (with --devices)"});
  f.push_back({"step-time", "S", "measured seconds per step (with --gbs and --devices)"});
  f.push_back({"gbs", "N", "sequences per step (with --step-time)"});
  f.push_back({"devices", "N", "devices sharing the work"});
  return with_common(f);
}

int run_mfu(const args& a) {
  const flops_setup f = flops_from_args(a);
  const tp::flops_count c = tp::count_flops(f.model.spec, f.options);
  // The peak.
  if (a.has("peak-flops") == a.has("device"))
    throw usage_error("give the peak as --device NAME [--dtype T] or as --peak-flops X (exactly one)");
  double peak = 0;
  std::string peak_source;
  if (a.has("peak-flops")) {
    if (a.has("dtype")) throw usage_error("--dtype picks a device's peak; with --peak-flops it has no meaning");
    peak = *a.get_double("peak-flops");
    peak_source = "--peak-flops";
  } else {
    static constexpr std::string_view dtypes[] = {"fp32", "tf32", "bf16", "fp16", "fp8"};
    const auto d = *tp::parse_dtype(a.get_choice("dtype", dtypes).value_or("bf16"));
    const tp::device_spec& dev = tp::get_device(*a.get("device"));
    peak = tp::require_peak(dev, d);
    peak_source = fmt::format("{} dense {} ({})", dev.name, tp::to_string(d), dev.source);
  }
  // The throughput, given exactly one way.
  const int forms = a.has("tokens-per-device-per-s") + a.has("samples-per-s") + a.has("step-time");
  if (forms != 1)
    throw usage_error(
        "give the throughput exactly one way: --tokens-per-device-per-s X, --samples-per-s X --devices N, "
        "or --step-time S --gbs G --devices N");
  double tps = 0;
  if (auto t = a.get_double("tokens-per-device-per-s")) {
    tps = *t;
  } else {
    const auto devices = a.get_int("devices");
    if (!devices) throw usage_error("--samples-per-s and --step-time need --devices N");
    if (auto s = a.get_double("samples-per-s")) {
      tps = tp::tokens_per_device_per_s_from_samples(*s, c.seq, *devices);
    } else {
      const auto gbs = a.get_int("gbs");
      if (!gbs) throw usage_error("--step-time needs --gbs G (sequences per step)");
      tps = tp::tokens_per_device_per_s_from_step(*a.get_double("step-time"), *gbs, c.seq, *devices);
    }
  }
  const double mfu = tp::utilization(c.model_per_token(), tps, peak);
  const double hfu = tp::utilization(c.hardware_per_token(), tps, peak);
  const double tflops = tps * c.model_per_token() / 1e12;
  if (a.has("json")) {
    json j{{"model", f.model.name},
           {"convention", tp::to_string(f.options.convention)},
           {"seq", c.seq},
           {"recompute", tp::to_string(f.options.recomputation)}};
    if (f.params_used > 0) j["params"] = f.params_used;
    j["flops_per_token"] = c.model_per_token();
    j["peak_flops"] = peak;
    j["peak_source"] = peak_source;
    j["tokens_per_device_per_s"] = tps;
    j["tflops_per_device"] = tflops;
    j["mfu"] = mfu;
    j["hfu"] = hfu;
    print_json(j);
    return 0;
  }
  fmt::print("model {}, convention {}, seq {}, recompute {}\n", f.model.name, tp::to_string(f.options.convention),
             c.seq, tp::to_string(f.options.recomputation));
  fmt::print("  peak                {:.6g} FLOP/s per device: {}\n", peak, peak_source);
  fmt::print("  token/p/s           {:.2f}\n", tps);
  fmt::print("  TFLOP/s per device  {:.2f}   ({:.6g} FLOPs per token)\n", tflops, c.model_per_token());
  fmt::print("  MFU                 {:.2f}%\n", mfu * 100);
  fmt::print("  HFU                 {:.2f}%\n", hfu * 100);
  return 0;
}

// ---- devices ----------------------------------------------------------------------------
int run_devices(const args& a) {
  constexpr tp::dtype all[] = {tp::dtype::fp32, tp::dtype::tf32, tp::dtype::bf16, tp::dtype::fp16, tp::dtype::fp8};
  if (a.has("json")) {
    json j = json::array();
    for (const auto& d : tp::devices) {
      json peaks = json::object();
      for (auto t : all) peaks[std::string(tp::to_string(t))] = d.peak(t) ? json(*d.peak(t)) : json(nullptr);
      const auto known = [](double v) { return v > 0 ? json(v) : json(nullptr); };
      j.push_back({{"name", d.name},
                   {"peak_flops", peaks},
                   {"memory_bytes", d.memory_bytes},
                   {"memory_bandwidth", known(d.memory_bandwidth)},
                   {"intra_node_bandwidth", known(d.intra_node_bandwidth)},
                   {"inter_node_bandwidth", known(d.inter_node_bandwidth)},
                   {"source", d.source}});
    }
    print_json(j);
    return 0;
  }
  fmt::print("dense peak TFLOP/s ('-' = not published); memory GiB; bandwidths GB/s\n");
  fmt::print("{:<10}{:>8}{:>8}{:>8}{:>8}{:>8}{:>8}{:>8}{:>8}{:>8}\n", "device", "fp32", "tf32", "bf16", "fp16", "fp8",
             "mem", "mem bw", "intra", "inter");
  const auto v = [](double x, double div) { return x > 0 ? fmt::format("{:g}", x / div) : std::string("-"); };
  for (const auto& d : tp::devices) {
    fmt::print("{:<10}", d.name);
    for (auto t : all) fmt::print("{:>8}", v(d.peak_flops[static_cast<int>(t)], 1e12));
    fmt::print("{:>8}{:>8}{:>8}{:>8}\n", v(static_cast<double>(d.memory_bytes), static_cast<double>(tp::GiB)),
               v(d.memory_bandwidth, 1e9), v(d.intra_node_bandwidth, 1e9), v(d.inter_node_bandwidth, 1e9));
  }
  fmt::print("\nsources:\n");
  for (const auto& d : tp::devices) fmt::print("  {:<10}{}\n", d.name, d.source);
  return 0;
}

// ---- layout ------------------------------------------------------------------------------
std::vector<flag> parallel_size_flags() {
  return {
      {"world", "N", "devices in all"},
      {"tp", "N", "tensor parallel (default 1)"},
      {"pp", "N", "pipeline parallel (default 1)"},
      {"cp", "N", "context parallel (default 1)"},
      {"ep", "N", "expert parallel (default 1)"},
      {"etp", "N", "expert tensor parallel (default: tp)"},
  };
}

tp::parallel_config parallel_from_args(const args& a) {
  tp::parallel_config c;
  c.tp = a.get_int("tp").value_or(1);
  c.pp = a.get_int("pp").value_or(1);
  c.cp = a.get_int("cp").value_or(1);
  c.ep = a.get_int("ep").value_or(1);
  c.etp = a.get_int("etp").value_or(0);
  return c;
}

std::int64_t require_world(const args& a) {
  const auto w = a.get_int("world");
  if (!w) throw usage_error("--world N is required");
  return *w;
}

// Groups sorted as the JSON promises: ranks ascending within a group, groups by first rank.
std::vector<std::vector<std::int64_t>> sorted_groups(std::vector<std::vector<std::int64_t>> g) {
  for (auto& x : g) std::sort(x.begin(), x.end());
  std::sort(g.begin(), g.end());
  return g;
}

int run_layout(const args& a) {
  const std::int64_t world = require_world(a);
  const tp::parallel_config c = parallel_from_args(a);
  const std::string order = a.get("order").value_or(std::string(tp::default_order));
  const tp::layout l(world, c, order);
  const std::pair<const char*, const char*> kinds[] = {
      {"tp", "tp"},    {"cp", "cp"},       {"dp", "dp"},   {"pp", "pp"},   {"ep", "ep"},
      {"mp", "tp-pp"}, {"dp_cp", "dp-cp"}, {"etp", "etp"}, {"edp", "edp"}, {"embedding", "embedding"}};
  if (a.has("json")) {
    json groups = json::object();
    for (auto [key, name] : kinds) groups[key] = sorted_groups(l.groups(name));
    json coords = json::array();
    for (std::int64_t r = 0; r < world; ++r) {
      const tp::rank_coords k = l.coords(r);
      coords.push_back({{"rank", r},
                        {"tp", k.tp},
                        {"cp", k.cp},
                        {"dp", k.dp},
                        {"pp", k.pp},
                        {"ep", k.ep},
                        {"etp", k.etp},
                        {"edp", k.edp}});
    }
    print_json(json{{"world", world}, {"order", l.decoder().order_string()}, {"groups", groups}, {"coords", coords}});
    return 0;
  }
  const auto& m = l.decoder();
  fmt::print("world {} = tp {} x cp {} x dp {} x pp {}; order {} (first axis fastest)\n", world, m.size(tp::axis::tp),
             m.size(tp::axis::cp), m.size(tp::axis::dp), m.size(tp::axis::pp), m.order_string());
  fmt::print("strides: tp {}, cp {}, dp {}, pp {}\n", m.stride(tp::axis::tp), m.stride(tp::axis::cp),
             m.stride(tp::axis::dp), m.stride(tp::axis::pp));
  if (c.ep > 1 || c.resolved_etp() != c.tp) {
    const auto& e = l.expert();
    fmt::print("experts: etp {} x ep {} x edp {} x pp {}\n", e.size(tp::axis::tp), e.size(tp::axis::ep),
               e.size(tp::axis::dp), e.size(tp::axis::pp));
  }
  for (auto [key, name] : kinds) {
    const auto g = sorted_groups(l.groups(name));
    if (g.front().size() == 1 && std::string_view(key) != "dp") continue;  // trivial axis
    std::string line;
    for (const auto& grp : g) line += fmt::format("{}[{}]", line.empty() ? "" : " ", fmt::join(grp, ","));
    fmt::print("{:<10}{}\n", key, line);
  }
  return 0;
}

// ---- schedule ----------------------------------------------------------------------------
std::vector<flag> schedule_flags() {
  return with_common({
      {"pp", "P", "pipeline stages"},
      {"microbatches", "M", "micro-batches per step"},
      {"gas", "M", "the same: gradient-accumulation steps (as memory and batch call it)"},
      {"vpp", "V", "model chunks per stage (interleaved)"},
      {"kind", "gpipe|1f1b|interleaved", "schedule (default: 1f1b, interleaved when --vpp > 1)"},
      {"forward-time", "T", "simulated forward time of a stage per micro-batch (default 1)"},
      {"backward-time", "T", "simulated backward time (default 2)"},
      {"p2p-latency", "T", "simulated hand-off latency between stages (default 0)"},
      {"svg", "FILE", "write the simulated timeline as SVG"},
  });
}

int run_schedule(const args& a) {
  tp::cli::detail::exclusive(a, "microbatches", "gas");
  const auto pp = a.get_int("pp"), m = a.has("gas") ? a.get_int("gas") : a.get_int("microbatches");
  if (!pp || !m) throw usage_error("--pp P and --microbatches M (or --gas M) are required");
  const std::int64_t vpp = a.get_int("vpp").value_or(1);
  static constexpr std::string_view kinds[] = {"gpipe", "1f1b", "interleaved"};
  const std::string k = a.get_choice("kind", kinds).value_or(vpp > 1 ? "interleaved" : "1f1b");
  const tp::pipeline_schedule kind = k == "gpipe"  ? tp::pipeline_schedule::gpipe
                                     : k == "1f1b" ? tp::pipeline_schedule::one_f_one_b
                                                   : tp::pipeline_schedule::interleaved;
  const tp::schedule s = tp::make_schedule(kind, *pp, *m, vpp);
  const double tf = a.get_double("forward-time").value_or(1), tb = a.get_double("backward-time").value_or(2);
  double latency = 0;
  if (auto l = a.get("p2p-latency")) latency = *l == "0" ? 0 : *a.get_double("p2p-latency");
  const tp::simulation sim = tp::simulate(s, std::vector<double>(*pp, tf), std::vector<double>(*pp, tb), latency);
  if (auto path = a.get("svg")) {
    std::ofstream out(*path);
    out << tp::render_svg(
        sim, vpp,
        fmt::format("{} schedule, pp {}, {} micro-batches{}", k, *pp, *m, vpp > 1 ? fmt::format(", vpp {}", vpp) : ""));
    if (!out) throw tp::config_error("svg", "cannot write " + *path);
  }
  if (a.has("json")) {
    json actions = json::array();
    for (const auto& st : s.stages) {
      json row = json::array();
      for (const auto& x : st) {
        row.push_back(vpp > 1 ? fmt::format("{}{}.{}", x.kind == tp::pass::forward ? 'F' : 'B', x.micro_batch, x.chunk)
                              : fmt::format("{}{}", x.kind == tp::pass::forward ? 'F' : 'B', x.micro_batch));
      }
      actions.push_back(row);
    }
    print_json(
        json{{"kind", k},
             {"pp", *pp},
             {"microbatches", *m},
             {"vpp", vpp},
             {"bubble_fraction", s.bubble_fraction()},
             {"inflight_per_stage", s.inflight_peak()},
             {"warmup_per_stage", s.warmup},
             {"simulated",
              {{"step_time", sim.step_time}, {"bubble_fraction", sim.bubble_fraction()}, {"idle_per_stage", sim.idle}}},
             {"actions", actions}});
    return 0;
  }
  fmt::print("{} schedule, pp {}, {} micro-batches{}\n", k, *pp, *m, vpp > 1 ? fmt::format(", vpp {}", vpp) : "");
  fmt::print(
      "  bubble fraction       {:.4f} (closed form), {:.4f} (simulated: forward {:g}, backward {:g}, latency {:g})\n",
      s.bubble_fraction(), sim.bubble_fraction(), tf, tb, latency);
  fmt::print("  in-flight peak        {} micro-batches per stage\n", fmt::join(s.inflight_peak(), ", "));
  fmt::print("  warm-up micro-batches {} per stage{}\n", fmt::join(s.warmup, ", "),
             vpp > 1 ? " (virtual: one chunk each)" : "");
  fmt::print("  step time (simulated) {:g}\n\n{}", sim.step_time, tp::render_ascii(sim, vpp));
  return 0;
}

// ---- check-config --------------------------------------------------------------------------
std::vector<flag> check_config_flags() {
  auto f = tp::cli::model_flags();
  for (auto& x : f)
    if (x.name == "seq") x.help = "training sequence length";
  for (auto& x : parallel_size_flags()) f.push_back(x);
  f.push_back({"dp", "N", "data parallel (default: world / (tp x cp x pp))"});
  f.push_back({"vpp", "N", "virtual pipeline stages"});
  f.push_back({"sp", "", "sequence parallel"});
  f.push_back({"zero", "0..3", "ZeRO stage"});
  f.push_back({"distributed-optimizer", "", "Megatron-LM's distributed optimizer"});
  f.push_back({"recompute", "none|selective|full", "activation recomputation"});
  f.push_back({"gbs", "N", "global batch (sequences)"});
  f.push_back({"lbs", "N", "micro batch (sequences)"});
  f.push_back({"gas", "N", "gradient-accumulation steps"});
  return with_common(f);
}

int run_check_config(const args& a) {
  std::vector<tp::violation> found;
  tp::parallel_config c = parallel_from_args(a);
  c.dp = a.get("dp") ? *a.get_int("dp") : 0;
  c.vpp = a.get_int("vpp").value_or(1);
  c.sequence_parallel = a.has("sp");
  c.distributed_optimizer = a.has("distributed-optimizer");
  c.zero_stage = zero_from_args(a);
  c.recomputation = recompute_from_args(a);
  const std::int64_t world = require_world(a);
  std::optional<tp::cli::model_choice> model;
  try {
    model = tp::cli::model_from_args(a, /*seq_sets_max_seq=*/false);
  } catch (const tp::config_error& e) {
    found.push_back({e.field(), e.what()});
  }
  tp::parallel_context ctx{.world = world, .seq = a.get_int("seq").value_or(0)};
  if (model) ctx.model = model->spec;
  const auto gbs = a.get_int("gbs"), lbs = a.get_int("lbs"), gas = a.get_int("gas");
  if (lbs) ctx.lbs = *lbs;
  if (gbs) ctx.gbs = *gbs;
  std::vector<tp::violation> rules = tp::check_parallel(c, ctx);
  // Degrees over 2^20 are among the rules already; below it tp x cp x pp cannot overflow.
  const bool degrees_ok = std::max({c.tp, c.cp, c.pp}) <= tp::max_parallel_degree;
  if (gas && lbs && degrees_ok) {  // with a known dp, the global batch follows (or is checked)
    const std::int64_t mp = c.tp * c.cp * c.pp;
    const std::int64_t dp = c.dp != 0 ? c.dp : (world % mp == 0 ? world / mp : 0);
    if (dp > 0) {
      try {
        const tp::batch_config b = tp::solve_batch({.gbs = gbs, .lbs = *lbs, .gas = *gas, .dp = dp});
        if (!gbs) {
          ctx.gbs = b.gbs;
          rules = tp::check_parallel(c, ctx);
        }
      } catch (const tp::config_error& e) {
        rules.push_back({e.field(), e.what()});
      }
    }
  }
  found.insert(found.end(), rules.begin(), rules.end());
  if (a.has("json")) {
    json v = json::array();
    for (const auto& x : found) v.push_back({{"field", x.field}, {"message", x.message}});
    print_json(json{{"valid", found.empty()}, {"violations", v}});
    return found.empty() ? 0 : 1;
  }
  if (found.empty()) {
    fmt::print("valid\n");
    return 0;
  }
  fmt::print("invalid: {} rule{} broken\n", found.size(), found.size() == 1 ? "" : "s");
  for (const auto& x : found) fmt::print("  {}: {}\n", x.field, x.message);
  return 1;
}

// ---- memory ------------------------------------------------------------------------------
std::vector<flag> memory_flags() {
  auto f = tp::cli::model_flags();
  for (auto& x : f)
    if (x.name == "seq") x.help = "training sequence length";
  for (const auto& x : std::vector<flag>{
           {"lbs", "N", "micro batch (sequences, default 1)"},
           {"gas", "N", "micro-batches per step (default 1)"},
           {"tp", "N", "tensor parallel"},
           {"pp", "N", "pipeline parallel"},
           {"dp", "N", "data parallel (default 1)"},
           {"cp", "N", "context parallel"},
           {"vpp", "N", "virtual pipeline stages"},
           {"sp", "", "sequence parallel"},
           {"zero", "0..3", "ZeRO stage"},
           {"distributed-optimizer", "", "Megatron-LM's distributed optimizer"},
           {"recompute", "none|selective|full", "activation recomputation"},
           {"flash", "", "flash attention (no s x s scores kept)"},
           {"dropout", "", "dropout masks are kept"},
           {"dtype", "fp32|bf16|fp16", "weight and activation dtype (default bf16)"},
           {"optimizer", "adam|adamw|sgd", "optimizer (default adam; adamw keeps the same states)"},
           {"framework", "generic|megatron|deepspeed", "framework accounting (default generic)"},
           {"offload-optimizer", "", "optimizer states in CPU memory"},
           {"built-fp32", "", "weights created in fp32 on the device, then cast: the allocator keeps the fp32 blocks"},
           {"variable-length", "",
            "batches padded to their own longest sample (--seq): nvidia-smi's reading may climb to the capacity"},
           {"overhead-gib", "X", "runtime overhead per device (default: the fitted constant)"},
           {"device", "NAME", "device whose capacity to fit against"},
           {"svg", "FILE", "write the per-stage breakdown as a stacked bar chart"},
       })
    f.push_back(x);
  return with_common(f);
}

struct memory_setup {
  tp::cli::model_choice model;
  tp::parallel_config parallel;
  std::int64_t world = 1;
  tp::memory_options options;
};

memory_setup memory_from_args(const args& a) {
  memory_setup m{tp::cli::model_from_args(a, /*seq_sets_max_seq=*/false), {}, 1, {}};
  tp::parallel_config& c = m.parallel;
  c.tp = a.get_int("tp").value_or(1);
  c.pp = a.get_int("pp").value_or(1);
  c.cp = a.get_int("cp").value_or(1);
  c.dp = a.get_int("dp").value_or(1);
  c.vpp = a.get_int("vpp").value_or(1);
  c.sequence_parallel = a.has("sp");
  c.distributed_optimizer = a.has("distributed-optimizer");
  c.zero_stage = zero_from_args(a);
  c.recomputation = recompute_from_args(a);
  tp::validate(c);  // each degree positive and at most 2^20 before they are multiplied
  m.world = tp::detail::checked_mul(c.model_parallel(), c.dp, "world (tp x cp x pp x dp)");
  tp::memory_options& o = m.options;
  o.lbs = a.get_int("lbs").value_or(1);
  o.micro_batches = a.get_int("gas").value_or(1);
  o.seq = a.get_int("seq").value_or(m.model.spec.max_seq);
  static constexpr std::string_view dtypes[] = {"fp32", "bf16", "fp16"};
  o.param_dtype = *tp::parse_dtype(a.get_choice("dtype", dtypes).value_or("bf16"));
  // AdamW differs from Adam only in the update (decoupled weight decay): the same m and v.
  static constexpr std::string_view optimizers[] = {"adam", "adamw", "sgd"};
  o.optimizer = a.get_choice("optimizer", optimizers).value_or("adam") == "sgd" ? tp::optimizer_kind::sgd
                                                                                : tp::optimizer_kind::adam;
  static constexpr std::string_view frameworks[] = {"generic", "megatron", "deepspeed"};
  const std::string fw = a.get_choice("framework", frameworks).value_or("generic");
  o.accounting = fw == "megatron"    ? tp::framework::megatron
                 : fw == "deepspeed" ? tp::framework::deepspeed
                                     : tp::framework::generic;
  o.flash_attention = a.has("flash");
  o.dropout = a.has("dropout");
  o.offload_optimizer = a.has("offload-optimizer");
  o.weights_built_in_fp32 = a.has("built-fp32");
  o.variable_length = a.has("variable-length");
  if (auto g = a.get("overhead-gib"))
    o.runtime_overhead_bytes = (*g == "0" ? 0.0 : *a.get_double("overhead-gib")) * tp::GiB;
  return m;
}

// Changes that would make an over-capacity layout fit, each with its new peak: single changes
// first (sharding the states, recomputation, more tensor or pipeline parallelism, a smaller
// micro batch, flash attention, offloading the optimizer); when none fits alone, pairs of
// changes of different kinds. At most four answers: those needing no extra devices first, then
// the fewest extra devices, then the smallest peak.
std::vector<std::string> what_would_fit(const memory_setup& m, std::int64_t capacity) {
  struct change {
    std::string what;
    int kind;  // changes of the same kind are alternatives, never combined
    std::function<void(tp::parallel_config&, tp::memory_options&)> apply;
  };
  const tp::parallel_config& c = m.parallel;
  const tp::memory_options& o = m.options;
  std::vector<change> changes;
  for (int z = c.zero_stage + 1; z <= 3 && c.dp > 1; ++z)
    changes.push_back({fmt::format("--zero {}", z), 0, [z](auto& x, auto&) {
                         x.zero_stage = z;
                         x.distributed_optimizer = false;
                       }});
  if (c.dp > 1 && c.zero_stage == 0 && !c.distributed_optimizer)
    changes.push_back({"--distributed-optimizer", 0, [](auto& x, auto&) { x.distributed_optimizer = true; }});
  if (c.recomputation == tp::recompute::none)
    changes.push_back({"--recompute selective", 1, [](auto& x, auto&) { x.recomputation = tp::recompute::selective; }});
  if (c.recomputation != tp::recompute::full)
    changes.push_back({"--recompute full", 1, [](auto& x, auto&) { x.recomputation = tp::recompute::full; }});
  for (std::int64_t f = 2; f <= 8; f *= 2) {
    changes.push_back({fmt::format("--tp {} --sp (x{} devices)", c.tp * f, f), 2, [f](auto& x, auto&) {
                         x.tp *= f;
                         x.sequence_parallel = true;
                       }});
    changes.push_back({fmt::format("--pp {} (x{} devices)", c.pp * f, f), 3, [f](auto& x, auto&) { x.pp *= f; }});
  }
  if (o.lbs > 1)
    changes.push_back({fmt::format("--lbs {} --gas {}", o.lbs / 2, o.micro_batches * 2), 4, [](auto&, auto& y) {
                         y.lbs /= 2;
                         y.micro_batches *= 2;
                       }});
  if (!o.flash_attention) changes.push_back({"--flash", 5, [](auto&, auto& y) { y.flash_attention = true; }});
  if (!o.offload_optimizer)
    changes.push_back({"--offload-optimizer", 6, [](auto&, auto& y) { y.offload_optimizer = true; }});

  // Tries the given changes; keeps them when the result is a valid layout that fits.
  std::vector<std::tuple<std::int64_t, double, std::string>> fits;  // world, peak, flags
  const auto tryit = [&](std::initializer_list<const change*> chosen) {
    tp::parallel_config x = c;
    tp::memory_options y = o;
    std::string what;
    for (const change* ch : chosen) {
      ch->apply(x, y);
      if (!what.empty()) what += ' ';
      what += ch->what;
    }
    const std::int64_t world = x.tp * x.cp * x.pp * (x.dp ? x.dp : 1);
    try {
      const double peak = tp::estimate_memory(m.model.spec, x, world, y).max_total();
      if (peak <= static_cast<double>(capacity)) fits.emplace_back(world, peak, what);
    } catch (const tp::config_error&) {  // not a valid layout for this model: not an answer
    }
  };
  for (const change& a : changes) tryit({&a});
  if (fits.empty())
    for (std::size_t i = 0; i < changes.size(); ++i)
      for (std::size_t k = i + 1; k < changes.size(); ++k)
        if (changes[i].kind != changes[k].kind) tryit({&changes[i], &changes[k]});
  std::sort(fits.begin(), fits.end());
  std::vector<std::string> out;
  for (const auto& [world, peak, what] : fits) {
    if (out.size() == 4) break;
    out.push_back(fmt::format("{} -> {:.1f} GiB", what, peak / static_cast<double>(tp::GiB)));
  }
  return out;
}

int run_memory(const args& a) {
  const memory_setup m = memory_from_args(a);
  const tp::memory_estimate e = tp::estimate_memory(m.model.spec, m.parallel, m.world, m.options);
  std::optional<tp::device_spec> dev;
  if (auto d = a.get("device")) dev = tp::get_device(*d);
  if (auto path = a.get("svg")) {
    std::ofstream out(*path);
    out << tp::render_memory_svg(e, dev ? dev->memory_bytes : 0,
                                 fmt::format("{}: memory per device by pipeline stage", m.model.name));
    if (!out) throw tp::config_error("svg", "cannot write " + *path);
  }
  const double gib = static_cast<double>(tp::GiB);
  std::vector<std::string> fixes;
  if (dev && e.max_total() > static_cast<double>(dev->memory_bytes)) fixes = what_would_fit(m, dev->memory_bytes);
  if (a.has("json")) {
    json stages = json::array();
    for (const auto& s : e.stages)
      stages.push_back({{"stage", s.stage},
                        {"layers", s.layers},
                        {"inflight", s.inflight},
                        {"params", static_cast<std::int64_t>(s.params)},
                        {"grads", static_cast<std::int64_t>(s.grads)},
                        {"optimizer", static_cast<std::int64_t>(s.optimizer)},
                        {"activations", static_cast<std::int64_t>(s.activations)},
                        {"other", static_cast<std::int64_t>(s.other)},
                        {"reserve", static_cast<std::int64_t>(s.reserve)},
                        {"total", static_cast<std::int64_t>(s.total())}});
    json j{{"model", m.model.name},
           {"world", m.world},
           {"stages", stages},
           {"max_total", static_cast<std::int64_t>(e.max_total())}};
    if (dev) {
      j["device"] = dev->name;
      j["capacity"] = dev->memory_bytes;
      j["fits"] = e.max_total() <= static_cast<double>(dev->memory_bytes);
      j["reading"] = static_cast<std::int64_t>(
          tp::memory_reading(e.max_total(), m.options, static_cast<double>(dev->memory_bytes)));
      j["what_would_fit"] = fixes;
    }
    print_json(j);
    return 0;
  }
  fmt::print("{} on {} device{} (tp {} x cp {} x pp {} x dp {}), per device, GiB\n", m.model.name, m.world,
             m.world == 1 ? "" : "s", m.parallel.tp, m.parallel.cp, m.parallel.pp, m.parallel.dp);
  fmt::print("{:>6}{:>7}{:>9}{:>10}{:>8}{:>11}{:>13}{:>8}{:>9}{:>9}\n", "stage", "layers", "inflight", "weights",
             "grads", "optimizer", "activations", "other", "reserve", "total");
  for (const auto& s : e.stages)
    fmt::print("{:>6}{:>7}{:>9.2f}{:>10.2f}{:>8.2f}{:>11.2f}{:>13.2f}{:>8.2f}{:>9.2f}{:>9.2f}\n", s.stage, s.layers,
               s.inflight, s.params / gib, s.grads / gib, s.optimizer / gib, s.activations / gib, s.other / gib,
               s.reserve / gib, s.total() / gib);
  fmt::print(
      "other = logits/loss buffers (beyond a recomputed layer, never alive with them), gathered ZeRO-3 weights, "
      "comm buffers and the runtime overhead ({:.1f} GiB)\n",
      (m.options.runtime_overhead_bytes >= 0 ? m.options.runtime_overhead_bytes
                                             : tp::memory_model_constants::runtime_overhead_bytes) /
          gib);
  if (m.options.weights_built_in_fp32)
    fmt::print(
        "reserve = what weights, gradients and activations leave unfilled of the fp32 construction's "
        "blocks (4 bytes per weight), which the allocator keeps\n");
  if (dev) {
    fmt::print("{}: {}\n", dev->name, tp::fit_summary(e.max_total(), dev->memory_bytes));
    const double reading = tp::memory_reading(e.max_total(), m.options, static_cast<double>(dev->memory_bytes));
    if (reading != e.max_total())
      fmt::print(
          "nvidia-smi will read up to {:.1f} GiB: with batches of varying length the caching allocator's "
          "segments fragment until an allocation fails\n",
          reading / gib);
    if (!fixes.empty())
      fmt::print("what would fit: {}\n", fmt::join(fixes, "; "));
    else if (e.max_total() > static_cast<double>(dev->memory_bytes))
      fmt::print("no single change or pair of changes tried here fits\n");
  }
  return 0;
}

const std::vector<command>& commands() {
  static const std::vector<command> all = {
      {"params", "parameter counts: total, embedding, non-embedding, per component and layer", params_flags,
       run_params},
      {"batch", "GBS = LBS x GAS x DP: give three (or --world/--tp/--pp for dp), get the fourth", batch_flags,
       run_batch},
      {"presets", "list the preset models with their sources", [] { return with_common({}); }, run_presets},
      {"flops", "training FLOPs per token / sequence / step under a named convention", flops_flags, run_flops},
      {"mfu", "MFU, HFU and TFLOP/s per device from a measured throughput", mfu_flags, run_mfu},
      {"devices", "the device table: dense peaks per dtype, memory, bandwidths, sources",
       [] { return with_common({}); }, run_devices},
      {"layout", "rank coordinates and Megatron-LM process groups for a world and its parallel degrees",
       [] {
         auto f = parallel_size_flags();
         f.push_back({"order", "O", "axis order, first fastest (default tp-cp-ep-dp-pp)"});
         return with_common(f);
       },
       run_layout},
      {"schedule", "pipeline schedule: action lists, bubble, in-flight micro-batches, simulated timeline",
       schedule_flags, run_schedule},
      {"memory", "device memory per pipeline stage: weights, gradients, optimizer, activations; fit on a device",
       memory_flags, run_memory},
      {"check-config", "validate model, batch and parallel settings together: valid, or every broken rule (exit 1)",
       check_config_flags, run_check_config},
  };
  return all;
}

void print_help(const command& c) {
  fmt::print("usage: trainperf {} [flags]\n{}\n\nflags:\n", c.name, c.summary);
  for (const auto& f : c.flags()) {
    const std::string lhs = f.value.empty() ? fmt::format("--{}", f.name) : fmt::format("--{} {}", f.name, f.value);
    fmt::print("  {:<28}{}{}\n", lhs, lhs.size() < 28 ? "" : " ", f.help);
  }
}

void print_usage() {
  fmt::print("usage: trainperf <command> [flags]   (trainperf <command> --help for its flags)\n\ncommands:\n");
  std::size_t width = 0;  // widest command name, so every summary starts in one column
  for (const auto& c : commands()) width = std::max(width, c.name.size());
  for (const auto& c : commands()) fmt::print("  {:<{}}  {}\n", c.name, width, c.summary);
}

}  // namespace

int main(int argc, char** argv) {
  const std::vector<std::string> all(argv + 1, argv + argc);
  if (all.empty() || all[0] == "help" || all[0] == "--help" || all[0] == "-h") {
    print_usage();
    return all.empty() ? 2 : 0;
  }
  const command* cmd = nullptr;
  for (const auto& c : commands())
    if (c.name == all[0]) cmd = &c;
  if (cmd == nullptr) {
    fmt::print(stderr, "trainperf: unknown command '{}'; run `trainperf help`\n", all[0]);
    return 2;
  }
  try {
    const args a(std::span<const std::string>(all).subspan(1), cmd->flags());
    if (a.has("help")) {
      print_help(*cmd);
      return 0;
    }
    return cmd->run(a);
  } catch (const usage_error& e) {
    fmt::print(stderr, "trainperf {}: {}\n", cmd->name, e.what());
  } catch (const tp::config_error& e) {
    fmt::print(stderr, "trainperf {}: {}\n", cmd->name, e.what());
  }
  return 2;
}
