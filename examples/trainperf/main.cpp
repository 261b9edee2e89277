// trainperf — the command-line face of the library: every subcommand prints a readable table
// or, with --json, one JSON object. Usage errors and invalid configurations exit with 2.
#include <cstdio>
#include <functional>
#include <iostream>
#include <string>
#include <vector>

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include <trainperf/trainperf.hpp>

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
    if (world) fmt::print("  tokens per device/step  {:g}\n", b.tokens_per_device(*world));
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

const std::vector<command>& commands() {
  static const std::vector<command> all = {
      {"params", "parameter counts: total, embedding, non-embedding, per component and layer", params_flags,
       run_params},
      {"batch", "GBS = LBS x GAS x DP: give three (or --world/--tp/--pp for dp), get the fourth", batch_flags,
       run_batch},
      {"presets", "list the preset models with their sources", [] { return with_common({}); }, run_presets},
  };
  return all;
}

void print_help(const command& c) {
  fmt::print("usage: trainperf {} [flags]\n{}\n\nflags:\n", c.name, c.summary);
  for (const auto& f : c.flags()) {
    const std::string lhs = f.value.empty() ? fmt::format("--{}", f.name) : fmt::format("--{} {}", f.name, f.value);
    fmt::print("  {:<28}{}\n", lhs, f.help);
  }
}

void print_usage() {
  fmt::print("usage: trainperf <command> [flags]   (trainperf <command> --help for its flags)\n\ncommands:\n");
  for (const auto& c : commands()) fmt::print("  {:<10}{}\n", c.name, c.summary);
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
