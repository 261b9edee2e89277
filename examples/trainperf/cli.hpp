// The trainperf tool's shared pieces: a subcommand (its flags and its run function), the
// output buffer every subcommand writes to (printed only once the whole answer is computed,
// so an error never leaves half a table behind), a table whose columns fit their widest cell,
// and the flag readers several subcommands share. One file per subcommand: cmd_<name>.cpp.
#pragma once

#include <algorithm>
#include <cstdint>
#include <cstdlib>
#include <functional>
#include <iterator>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include <trainperf/trainperf.hpp>

#include "args.hpp"

namespace trainperf::cli {

using json = nlohmann::ordered_json;

// What a subcommand prints, kept until it returns.
struct output {
  std::string text;
  template <class... T>
  void print(fmt::format_string<T...> f, T&&... a) {
    fmt::format_to(std::back_inserter(text), f, std::forward<T>(a)...);
  }
  // Bytes that are not UTF-8 (a model name typed in another encoding) become U+FFFD rather than
  // an exception from the JSON writer.
  void print_json(const json& j) { text += j.dump(2, ' ', false, json::error_handler_t::replace) + '\n'; }
};

struct command {
  std::string_view name;
  std::string_view summary;
  std::function<std::vector<flag>()> flags;
  std::function<int(const args&, output&)> run;
  std::string_view positional = {};  // the flag a bare argument stands for, if any
};

command params_command();
command batch_command();
command presets_command();
command flops_command();
command mfu_command();
command devices_command();
command layout_command();
command schedule_command();
command memory_command();
command check_config_command();
command predict_command();
command plan_command();
command calibrate_command();
command check_report_command();
command report_command();

// Every subcommand, in the order `trainperf help` lists them.
const std::vector<command>& commands();

// Runs `trainperf <argv...>`: the subcommand's answer goes to `out`, a usage or configuration
// error to `err` as one line; returns the exit code (0 ok, 1 valid input that failed a check,
// 2 bad input). Never throws for bad input.
int run_cli(std::span<const std::string> argv, std::string& out, std::string& err);

// A text table: each column as wide as its widest cell (header included), right-aligned
// unless a column is marked left, two spaces between columns, no trailing spaces.
class table {
 public:
  explicit table(std::vector<std::string> header, std::vector<bool> left = {})
      : rows_{std::move(header)}, left_(std::move(left)) {
    left_.resize(rows_.front().size(), false);
  }
  void row(std::vector<std::string> cells) {
    cells.resize(rows_.front().size());
    rows_.push_back(std::move(cells));
  }
  [[nodiscard]] std::string render(std::string_view indent = "") const {
    std::vector<std::size_t> width(left_.size(), 0);
    for (const auto& r : rows_)
      for (std::size_t c = 0; c < r.size(); ++c) width[c] = std::max(width[c], r[c].size());
    std::string out;
    for (const auto& r : rows_) {
      std::string line(indent);
      for (std::size_t c = 0; c < r.size(); ++c) {
        if (c > 0) line += "  ";
        const std::string pad(width[c] - r[c].size(), ' ');
        line += left_[c] ? r[c] + pad : pad + r[c];
      }
      while (!line.empty() && line.back() == ' ') line.pop_back();
      out += line + '\n';
    }
    return out;
  }

 private:
  std::vector<std::vector<std::string>> rows_;
  std::vector<bool> left_;
};

inline std::vector<flag> with_common(std::vector<flag> f) {
  f.push_back({"json", "", "print one JSON object instead of a table"});
  f.push_back({"help", "", "show this help"});
  return f;
}

// 70e9 -> "70B", 124e6 -> "124M".
inline std::string short_count(double n) {
  if (n >= 1e9) return fmt::format("{:g}B", n / 1e9);
  if (n >= 1e6) return fmt::format("{:g}M", n / 1e6);
  return fmt::format("{:g}", n);
}

// --recompute none|selective|full (default none).
inline recompute recompute_from_args(const args& a) {
  return a.get_named("recompute", recompute_names).value_or(recompute::none);
}

// --zero 0..3 (default 0).
inline int zero_from_args(const args& a) {
  const auto z = a.get("zero");
  if (!z) return 0;
  if (*z != "0" && *z != "1" && *z != "2" && *z != "3")
    throw usage_error("--zero expects 0, 1, 2 or 3, got '" + *z + "'");
  return (*z)[0] - '0';
}

// --world and the parallel degrees, shared by layout and check-config.
// Uneven pipeline stages (Megatron-LM's --decoder-first/last-pipeline-num-layers).
inline std::vector<flag> uneven_stage_flags() {
  return {
      {"first-stage-layers", "N", "layers on the first pipeline stage (the others share the rest evenly)"},
      {"last-stage-layers", "N", "layers on the last pipeline stage"},
      {"stage-layers", "LIST", "every pipeline stage's layers, e.g. 5,9,9,9 (instead of the two above)"},
      {"account-for-embedding-in-pipeline-split", "",
       "the embedding counts as a layer in the even split: the first stage builds one layer fewer (Megatron-LM)"},
      {"account-for-loss-in-pipeline-split", "",
       "the output layer and loss count as a layer: the last stage builds one layer fewer (Megatron-LM)"},
  };
}

inline std::vector<flag> parallel_size_flags() {
  return {
      {"world", "N", "devices in all"},
      {"tp", "N", "tensor parallel (default 1)"},
      {"pp", "N", "pipeline parallel (default 1)"},
      {"cp", "N", "context parallel (default 1)"},
      {"ep", "N", "expert parallel (default 1)"},
      {"etp", "N", "expert tensor parallel (default: tp)"},
      {"replicate-kv-heads", "", "with fewer key/value heads than tp: each on tp / kv_heads ranks (vLLM's rule)"},
  };
}

// The parallel configuration from whichever of its flags the subcommand has (--tp --pp --cp
// --ep --etp --replicate-kv-heads --dp --vpp --sp --distributed-optimizer --zero --recompute --first-stage-layers
// --last-stage-layers --stage-layers --account-for-embedding/loss-in-pipeline-split); dp 0 (derived from the world)
// unless given.
inline parallel_config parallel_from_args(const args& a) {
  parallel_config c;
  c.tp = a.get_int("tp").value_or(1);
  c.pp = a.get_int("pp").value_or(1);
  c.cp = a.get_int("cp").value_or(1);
  c.ep = a.get_int("ep").value_or(1);
  c.etp = a.get_int("etp").value_or(0);
  c.dp = a.get_int("dp").value_or(0);
  c.vpp = a.get_int("vpp").value_or(1);
  c.sequence_parallel = a.has("sp");
  c.replicate_kv_heads = a.has("replicate-kv-heads");
  c.distributed_optimizer = a.has("distributed-optimizer");
  c.zero_stage = zero_from_args(a);
  c.recomputation = recompute_from_args(a);
  c.first_stage_layers = a.get_int("first-stage-layers").value_or(0);
  c.last_stage_layers = a.get_int("last-stage-layers").value_or(0);
  c.embedding_as_layer = a.has("account-for-embedding-in-pipeline-split");
  c.loss_as_layer = a.has("account-for-loss-in-pipeline-split");
  if (const auto list = a.get("stage-layers")) {
    std::size_t at = 0;
    while (at <= list->size()) {
      const std::size_t comma = std::min(list->find(',', at), list->size());
      const std::string item = list->substr(at, comma - at);
      char* end = nullptr;
      const long long n = std::strtoll(item.c_str(), &end, 10);
      if (item.empty() || *end != '\0' || n < 0 || n > (1LL << 30))
        throw usage_error("--stage-layers expects a comma list of layer counts such as 5,9,9,9, got '" + *list + "'");
      if (c.stage_layers.count == static_cast<std::int32_t>(max_listed_stages))
        throw usage_error("--stage-layers lists more than " + std::to_string(max_listed_stages) + " stages");
      c.stage_layers.layers[static_cast<std::size_t>(c.stage_layers.count++)] = static_cast<std::int32_t>(n);
      at = comma + 1;
    }
  }
  return c;
}

inline std::int64_t require_world(const args& a) {
  const auto w = a.get_int("world");
  if (!w) throw usage_error("--world N is required");
  return *w;
}

}  // namespace trainperf::cli
