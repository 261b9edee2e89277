// trainperf — the planner: every layout a framework supports for a model, a cluster and a global
// batch, enumerated, checked (parallel.hpp), pruned by the memory model against the device's
// capacity (memory.hpp), predicted (step_time.hpp) and ranked fastest first.
#pragma once

#include <algorithm>
#include <chrono>
#include <cstdint>
#include <exception>
#include <string>
#include <thread>
#include <tuple>
#include <utility>
#include <vector>

#include "collectives.hpp"
#include "error.hpp"
#include "memory.hpp"
#include "model.hpp"
#include "parallel.hpp"
#include "profile.hpp"
#include "step_time.hpp"
#include "units.hpp"

namespace trainperf {

// The values each dimension may take; an empty list enumerates what the framework supports
// (plan_dimensions), a list of one fixes the dimension.
struct plan_space {
  std::vector<std::int64_t> tp, pp, cp, ep, vpp, lbs;
  std::vector<recompute> recomputation;
  std::vector<int> sequence_parallel;      // 0 / 1
  std::vector<int> zero_stage;             // 0-3
  std::vector<int> distributed_optimizer;  // 0 / 1
  // Data-parallel degrees to keep; empty: whatever world / (tp x cp x pp) leaves.
  std::vector<std::int64_t> dp;
  // Not searched: kept as given (0: expert tp = tp; shards over all of dp).
  std::int64_t etp = 0, shard_dp = 0;
};

struct plan_request {
  transformer_spec model{};
  cluster_spec cluster{};
  device_profile profile{};
  step_options step{};  // gbs, seq and the framework (step.memory.accounting) and its options
  plan_space space{};
  // The share of the device's capacity a layout must leave free to be kept, for the CUDA context
  // and NCCL's buffers: what it needs (stage_memory::need) must not exceed capacity x (1 -
  // memory_margin).
  double memory_margin = 0.05;
  // The bytes a layout may need on a device of `capacity` bytes and be kept.
  [[nodiscard]] constexpr double memory_limit(double capacity) const { return capacity * (1 - memory_margin); }
  std::size_t top = 10;
  unsigned threads = 0;  // 0: the hardware's concurrency
};

struct plan_candidate {
  parallel_config config{};
  std::int64_t lbs = 0, gas = 0;
  step_prediction prediction{};
};

struct plan_result {
  std::vector<plan_candidate> candidates;  // the top ones, fastest first
  std::int64_t enumerated = 0, invalid = 0, pruned_memory = 0, evaluated = 0;
  double search_ms = 0;
};

namespace detail {

constexpr std::vector<std::int64_t> divisors(std::int64_t n) {
  std::vector<std::int64_t> low, high;
  for (std::int64_t i = 1; i <= n / i; ++i)
    if (n % i == 0) {
      low.push_back(i);
      if (i != n / i) high.push_back(n / i);
    }
  low.insert(low.end(), high.rbegin(), high.rend());
  return low;
}

template <class T>
std::vector<T> or_default(const std::vector<T>& given, std::vector<T> all) {
  return given.empty() ? all : given;
}

// A strict order on layouts, so that equal step times rank the same way on every run.
inline auto layout_key(const plan_candidate& c) {
  const parallel_config& p = c.config;
  return std::make_tuple(p.tp, p.pp, p.cp, p.ep, p.vpp, c.lbs, static_cast<int>(p.recomputation), p.sequence_parallel,
                         p.zero_stage, p.distributed_optimizer);
}

// When the layers do not split evenly over pp stages: ceil(layers / pp) on every middle stage and
// the rest shared by the first and last (which also hold the embedding and the output layer), as
// Megatron-LM's --decoder-first/last-pipeline-num-layers lay out Llama 3 405B's 126 layers over
// 16 stages; {0, 0} when the layers split evenly, {-1, -1} when no such split exists.
constexpr std::pair<std::int64_t, std::int64_t> edge_stage_layers(std::int64_t layers, std::int64_t pp) {
  if (layers % pp == 0) return {0, 0};
  if (pp < 3) return {-1, -1};
  const std::int64_t per = ceil_div(layers, pp), rest = layers - (pp - 2) * per;
  if (rest < 2) return {-1, -1};
  return {rest / 2, rest - rest / 2};
}

}  // namespace detail

// What a framework offers to vary: the degrees, stages and the distributed optimizer it runs
// (refuses, step_time.hpp), and beyond that the search's own choices: context parallelism under
// megatron-core and FSDP2 (torchtitan), expert parallelism and virtual stages under Megatron-LM,
// FSDP at ZeRO-3 (torchtitan's and llm-foundry's FULL_SHARD), generic without ZeRO stages. A
// dimension the request fixes is taken as given, once the same rule has checked each value (a
// refusal names it here, before the search).
inline plan_space plan_dimensions(const plan_request& q) {
  const framework f = q.step.memory.accounting;
  const std::int64_t world = q.cluster.devices;
  const transformer_spec& m = q.model;
  plan_space s;
  const auto all = detail::divisors(world);
  const bool megatron = f == framework::megatron || f == framework::megatron_core || f == framework::generic;
  const auto runs = [f](const parallel_config& c) { return !refuses(f, c); };
  // The one-dimension layouts the rule judges each value of tp, pp, the ZeRO stage and the
  // distributed optimizer by.
  const auto tp_of = [](std::int64_t v) { return parallel_config{.tp = v}; };
  const auto pp_of = [](std::int64_t v) { return parallel_config{.pp = v}; };
  const auto zero_of = [](int v) { return parallel_config{.zero_stage = v}; };
  const auto dopt_of = [](int v) { return parallel_config{.distributed_optimizer = v != 0}; };
  const auto kept = [&](auto values, auto layout) {
    decltype(values) k;
    for (const auto v : values)
      if (runs(layout(v))) k.push_back(v);
    return k;
  };
  const auto checked = [f](const auto& given, auto layout) {
    for (const auto v : given) check_framework_runs(f, layout(v));
    return given;
  };
  const bool model_parallel = runs(tp_of(2)) && runs(pp_of(2));
  s.tp = kept(all, tp_of);
  s.pp = kept(all, pp_of);
  s.cp = f == framework::megatron_core || f == framework::fsdp ? all : std::vector<std::int64_t>{1};
  s.ep = m.is_moe() && (f == framework::megatron_core || f == framework::megatron || f == framework::generic)
             ? detail::divisors(m.moe.experts)
             : std::vector<std::int64_t>{1};
  s.vpp = megatron ? std::vector<std::int64_t>{1, 2, 3, 4, 5, 6, 8} : std::vector<std::int64_t>{1};
  s.lbs = {1, 2, 4, 8, 16};
  s.recomputation = {recompute::none, recompute::selective, recompute::full};
  s.sequence_parallel = model_parallel ? std::vector<int>{0, 1} : std::vector<int>{0};
  s.zero_stage = f == framework::fsdp      ? std::vector<int>{3}
                 : f == framework::generic ? std::vector<int>{0}
                                           : kept(std::vector<int>{0, 1, 2, 3}, zero_of);
  s.distributed_optimizer = kept(std::vector<int>{0, 1}, dopt_of);
  const plan_space& g = q.space;
  return {detail::or_default(checked(g.tp, tp_of), s.tp),
          detail::or_default(checked(g.pp, pp_of), s.pp),
          detail::or_default(g.cp, s.cp),
          detail::or_default(g.ep, s.ep),
          detail::or_default(g.vpp, s.vpp),
          detail::or_default(g.lbs, s.lbs),
          detail::or_default(g.recomputation, s.recomputation),
          detail::or_default(g.sequence_parallel, s.sequence_parallel),
          detail::or_default(checked(g.zero_stage, zero_of), s.zero_stage),
          detail::or_default(checked(g.distributed_optimizer, dopt_of), s.distributed_optimizer),
          g.dp,
          g.etp,
          g.shard_dp};
}

namespace reason {
inline void memory_margin_out_of_range() {}
}  // namespace reason

// Enumerate, check, prune, predict, rank.
inline plan_result plan(const plan_request& q) {
  const auto start = std::chrono::steady_clock::now();
  validate(q.model);
  validate(q.cluster);
  validate(q.profile);
  detail::require(detail::is_finite(q.memory_margin) && q.memory_margin >= 0 && q.memory_margin < 1,
                  reason::memory_margin_out_of_range, "memory_margin",
                  [&] { return "memory margin must be a fraction in [0, 1), got " + std::to_string(q.memory_margin); });
  detail::require_positive(q.step.gbs, "gbs");
  detail::require(q.cluster.devices <= max_world_size, reason::world_size_exceeds_2_to_the_20, "devices", [&] {
    return "devices " + detail::str(q.cluster.devices) + " exceed 2^20 = " + detail::str(max_world_size) +
           ", the largest world a layout lists; plan a smaller job";
  });
  for (const std::int64_t dp : q.space.dp) detail::require_positive(dp, "dp");
  const plan_space s = plan_dimensions(q);  // refuses a fixed dimension the framework does not run
  const transformer_spec stored = as_stored_by(q.model, q.step.memory.accounting);  // as the layouts check it
  const std::int64_t world = q.cluster.devices;
  const double capacity = q.memory_limit(static_cast<double>(q.cluster.device.memory_bytes));

  // Enumerate the layouts whose degrees multiply into the world, with the batch split they imply.
  struct job {
    parallel_config c;
    std::int64_t lbs;
  };
  std::vector<job> jobs;
  plan_result r;
  for (std::int64_t tp : s.tp)
    for (std::int64_t cp : s.cp)
      for (std::int64_t pp : s.pp) {
        if (tp <= 0 || cp <= 0 || pp <= 0) continue;
        const std::int64_t mp = tp * cp * pp;
        if (world % mp != 0) continue;
        const std::int64_t dp = world / mp;
        if (!s.dp.empty() && std::find(s.dp.begin(), s.dp.end(), dp) == s.dp.end()) continue;
        for (std::int64_t ep : s.ep)
          for (std::int64_t vpp : s.vpp)
            for (std::int64_t lbs : s.lbs)
              for (recompute rc : s.recomputation)
                for (int sp : s.sequence_parallel)
                  for (int zero : s.zero_stage)
                    for (int dopt : s.distributed_optimizer) {
                      if (vpp > 1 && pp == 1) continue;  // virtual stages need a pipeline
                      if (sp && tp == 1) continue;       // sequence parallelism needs tp > 1
                      if (dopt && dp == 1) continue;     // nothing to shard
                      if (zero > 0 && dp == 1) continue;
                      ++r.enumerated;
                      parallel_config c;
                      c.tp = tp, c.pp = pp, c.cp = cp, c.ep = ep, c.vpp = vpp, c.dp = dp;
                      if (vpp == 1)
                        std::tie(c.first_stage_layers, c.last_stage_layers) =
                            detail::edge_stage_layers(q.model.layers, pp);
                      // Interleaved, megatron-core counts the embedding and loss as layers where
                      // that makes the chunks even (NeMo 2's Llama 3.1 405B: 126 + 2 over 8 x 8).
                      else if (q.step.memory.accounting == framework::megatron_core &&
                               q.model.layers % (pp * vpp) != 0 && (q.model.layers + 2) % (pp * vpp) == 0)
                        c.embedding_as_layer = c.loss_as_layer = true;
                      c.sequence_parallel = sp != 0;
                      c.zero_stage = zero;
                      c.distributed_optimizer = dopt != 0;
                      c.recomputation = rc;
                      c.etp = s.etp;
                      c.shard_dp = s.shard_dp;
                      const parallel_context ctx{
                          .world = world, .model = stored, .seq = q.step.memory.seq, .gbs = q.step.gbs, .lbs = lbs};
                      if (!check_parallel(c, ctx).empty()) {
                        ++r.invalid;
                        continue;
                      }
                      jobs.push_back({c, lbs});
                    }
      }

  // Prune by memory and predict, in parallel; each job writes its own slot.
  // A layout the rules accept can still be refused deeper (a schedule too long to list): it
  // counts as invalid, and the search goes on.
  enum class outcome { invalid, pruned, evaluated };
  std::vector<outcome> outcomes(jobs.size(), outcome::pruned);  // set by each job
  std::vector<plan_candidate> results(jobs.size());
  const auto run = [&](std::size_t i) {
    const job& j = jobs[i];
    step_options o = q.step;
    o.memory.lbs = j.lbs;
    const std::int64_t gas = q.step.gbs / (j.lbs * j.c.dp);
    o.memory.micro_batches = gas;
    try {
      const memory_estimate me = estimate_memory(q.model, j.c, world, o.memory);
      if (me.max_need() > capacity) return;
      results[i] = {j.c, j.lbs, gas, detail::predict_step_time(q.model, j.c, q.cluster, q.profile, o, false)};
      for (const stage_memory& st : me.stages) results[i].prediction.stage_memory.push_back(st.need());
      outcomes[i] = outcome::evaluated;
    } catch (const config_error&) {
      outcomes[i] = outcome::invalid;
    }
  };
  unsigned threads = q.threads != 0 ? q.threads : std::max(1u, std::thread::hardware_concurrency());
  threads = static_cast<unsigned>(std::min<std::size_t>(threads, std::max<std::size_t>(1, jobs.size() / 16)));
  if (threads <= 1) {
    for (std::size_t i = 0; i < jobs.size(); ++i) run(i);
  } else {
    std::vector<std::thread> pool;
    std::vector<std::exception_ptr> errors(threads);
    for (unsigned t = 0; t < threads; ++t)
      pool.emplace_back([&, t] {
        try {
          for (std::size_t i = t; i < jobs.size(); i += threads) run(i);
        } catch (...) {
          errors[t] = std::current_exception();
        }
      });
    for (auto& th : pool) th.join();
    for (const auto& e : errors)
      if (e) std::rethrow_exception(e);
  }
  for (std::size_t i = 0; i < jobs.size(); ++i) {
    if (outcomes[i] != outcome::evaluated) {
      ++(outcomes[i] == outcome::pruned ? r.pruned_memory : r.invalid);
      continue;
    }
    ++r.evaluated;
    r.candidates.push_back(std::move(results[i]));
  }
  const auto faster = [](const plan_candidate& a, const plan_candidate& b) {
    if (a.prediction.step_time != b.prediction.step_time) return a.prediction.step_time < b.prediction.step_time;
    return detail::layout_key(a) < detail::layout_key(b);
  };
  // Screened by the closed-form pipeline time; the best are re-timed by the schedule simulator
  // (within a few percent of it: schedule.hpp) and ranked again.
  std::sort(r.candidates.begin(), r.candidates.end(), faster);
  const std::size_t retimed = std::min(r.candidates.size(), std::max<std::size_t>(4 * q.top, 32));
  r.candidates.resize(retimed);
  for (plan_candidate& c : r.candidates) {
    step_options o = q.step;
    o.memory.lbs = c.lbs;
    o.memory.micro_batches = c.gas;
    std::vector<double> memory = std::move(c.prediction.stage_memory);
    try {
      c.prediction = detail::predict_step_time(q.model, c.config, q.cluster, q.profile, o);
    } catch (const config_error&) {  // the schedule too long for the simulator: keep the closed form
    }
    c.prediction.stage_memory = std::move(memory);
  }
  std::sort(r.candidates.begin(), r.candidates.end(), faster);
  if (r.candidates.size() > q.top) r.candidates.resize(q.top);
  r.search_ms = std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - start).count();
  return r;
}

// The ranked candidates as an SVG: one horizontal bar per candidate, its predicted step time
// stacked by the breakdown, and its memory beside it against the capacity.
inline std::string render_plan_svg(const plan_result& r, double capacity_bytes, std::string_view title = "") {
  constexpr double left = 240, bar_width = 520, mem_left = left + bar_width + 80, mem_width = 160, row = 26;
  constexpr std::string_view colors[] = {"#4e79a7", "#f28e2b", "#e15759", "#76b7b2",
                                         "#bab0ac", "#59a14f", "#edc948", "#b07aa1"};
  double longest = 0;
  for (const auto& c : r.candidates) longest = std::max(longest, c.prediction.step_time);
  const double height = 90 + row * static_cast<double>(r.candidates.size());
  std::string svg = "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"" + format_double(mem_left + mem_width + 80) +
                    "\" height=\"" + format_double(height) + "\" font-family=\"sans-serif\" font-size=\"12\">\n";
  svg += "<text x=\"10\" y=\"20\" font-size=\"14\">" + detail::xml_escape(title) + "</text>\n";
  static_assert(std::size(colors) == std::size(breakdown_parts));
  for (std::size_t i = 0; i < std::size(breakdown_parts); ++i)
    svg += "<rect x=\"" + format_double(left + 80.0 * static_cast<double>(i)) +
           "\" y=\"32\" width=\"10\" height=\"10\" fill=\"" + std::string(colors[i]) + "\"/><text x=\"" +
           format_double(left + 14 + 80.0 * static_cast<double>(i)) + "\" y=\"41\">" +
           std::string(breakdown_parts[i].short_label) + "</text>\n";
  svg += "<text x=\"" + format_double(mem_left) + "\" y=\"62\">memory / capacity</text>\n";
  for (std::size_t k = 0; k < r.candidates.size(); ++k) {
    const plan_candidate& c = r.candidates[k];
    const step_breakdown& b = c.prediction.breakdown;
    const double y = 70 + row * static_cast<double>(k);
    const parallel_config& p = c.config;
    const std::string label =
        "#" + std::to_string(k + 1) + " tp" + std::to_string(p.tp) + " cp" + std::to_string(p.cp) + " pp" +
        std::to_string(p.pp) + " dp" + std::to_string(p.dp) + (p.vpp > 1 ? " vpp" + std::to_string(p.vpp) : "") +
        (p.ep > 1 ? " ep" + std::to_string(p.ep) : "") +
        (p.etp > 0 && p.etp != p.tp ? " etp" + std::to_string(p.etp) : "") + " mbs" + std::to_string(c.lbs) + " " +
        std::string(to_string(p.recomputation)) + (p.sequence_parallel ? " sp" : "") +
        (p.zero_stage > 0 ? " zero" + std::to_string(p.zero_stage) : "") + (p.distributed_optimizer ? " dist-opt" : "");
    svg += "<text x=\"10\" y=\"" + format_double(y + 14) + "\">" + detail::xml_escape(label) + "</text>\n";
    double x = left;
    for (std::size_t i = 0; i < std::size(breakdown_parts); ++i) {
      const double w = longest > 0 ? b.*breakdown_parts[i].seconds / longest * bar_width : 0;
      if (w > 0)
        svg += "<rect x=\"" + format_double(x) + "\" y=\"" + format_double(y) + "\" width=\"" + format_double(w) +
               "\" height=\"18\" fill=\"" + std::string(colors[i]) + "\"/>\n";
      x += w;
    }
    svg += "<text x=\"" + format_double(x + 4) + "\" y=\"" + format_double(y + 14) + "\">" +
           format_double(c.prediction.step_time) + " s</text>\n";
    const double share = capacity_bytes > 0 ? std::min(1.0, c.prediction.memory_max() / capacity_bytes) : 0;
    svg += "<rect x=\"" + format_double(mem_left) + "\" y=\"" + format_double(y) + "\" width=\"" +
           format_double(mem_width) + "\" height=\"18\" fill=\"none\" stroke=\"#999\"/><rect x=\"" +
           format_double(mem_left) + "\" y=\"" + format_double(y) + "\" width=\"" + format_double(share * mem_width) +
           "\" height=\"18\" fill=\"#9c755f\"/>\n";
    svg += "<text x=\"" + format_double(mem_left + mem_width + 4) + "\" y=\"" + format_double(y + 14) + "\">" +
           format_double(c.prediction.memory_max() / static_cast<double>(GiB)) + " GiB</text>\n";
  }
  svg += "</svg>\n";
  return svg;
}

}  // namespace trainperf
