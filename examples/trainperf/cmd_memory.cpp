// trainperf memory: device memory per pipeline stage: weights, gradients, optimizer, activations; fit on a device
#include <algorithm>
#include <cmath>
#include <fstream>
#include <functional>
#include <optional>
#include <string>
#include <tuple>
#include <vector>

#include <fmt/format.h>
#include <fmt/ranges.h>

#include <trainperf/trainperf.hpp>

#include <trainperf/io/file.hpp>

#include "cli.hpp"
#include "device_flags.hpp"
#include "memory_args.hpp"
#include "model_flags.hpp"

namespace trainperf::cli {
namespace {
namespace tp = trainperf;

// Changes that would make an over-capacity layout fit, each with its new peak and the devices
// it uses: single changes first (sharding the states, recomputation, more tensor or pipeline
// parallelism, a smaller micro batch, flash attention, offloading the optimizer); when none fits
// alone, pairs of changes of different kinds. Only what the named framework offers: Megatron-LM
// shards optimizer states with its distributed optimizer, not ZeRO stages; DeepSpeed's ZeRO
// over Hugging Face models (the deepspeed accounting) has ZeRO 1-3 and offload but no tensor,
// sequence or pipeline parallelism; the generic accounting takes all. At most four answers:
// those needing no extra devices first, then the fewest devices, then the smallest peak.
std::vector<std::string> what_would_fit(const memory_setup& m, std::int64_t capacity) {
  struct change {
    std::string what;
    int kind;  // changes of the same kind are alternatives, never combined
    std::function<void(tp::parallel_config&, tp::memory_options&)> apply;
  };
  const tp::parallel_config& c = m.parallel;
  const tp::memory_options& o = m.options;
  const bool megatron = o.accounting == tp::framework::megatron || o.accounting == tp::framework::megatron_core,
             deepspeed = o.accounting == tp::framework::deepspeed;
  std::vector<change> changes;
  for (int z = c.zero_stage + 1; z <= 3 && c.dp > 1 && !megatron; ++z)
    changes.push_back({fmt::format("--zero {}", z), 0, [z](auto& x, auto&) {
                         x.zero_stage = z;
                         x.distributed_optimizer = false;
                       }});
  if (c.dp > 1 && c.zero_stage == 0 && !c.distributed_optimizer && !deepspeed)
    changes.push_back({"--distributed-optimizer", 0, [](auto& x, auto&) { x.distributed_optimizer = true; }});
  if (c.recomputation == tp::recompute::none)
    changes.push_back({"--recompute selective", 1, [](auto& x, auto&) { x.recomputation = tp::recompute::selective; }});
  if (c.recomputation != tp::recompute::full)
    changes.push_back({"--recompute full", 1, [](auto& x, auto&) { x.recomputation = tp::recompute::full; }});
  for (std::int64_t f = 2; f <= 8 && !deepspeed; f *= 2) {
    changes.push_back({fmt::format("--tp {} --sp", c.tp * f), 2, [f](auto& x, auto&) {
                         x.tp *= f;
                         x.sequence_parallel = true;
                       }});
    changes.push_back({fmt::format("--pp {}", c.pp * f), 3, [f](auto& x, auto&) { x.pp *= f; }});
  }
  if (o.lbs > 1)
    changes.push_back({fmt::format("--lbs {} --gas {}", o.lbs / 2, o.micro_batches * 2), 4, [](auto&, auto& y) {
                         y.lbs /= 2;
                         y.micro_batches *= 2;
                       }});
  if (!o.flash_attention) changes.push_back({"--flash", 5, [](auto&, auto& y) { y.flash_attention = true; }});
  if (!o.offload_optimizer && !megatron)
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
    try {  // more tp or pp can pass a degree's bound (2^20): then not a valid layout, not an answer
      tp::validate(x);
      const std::int64_t world = tp::detail::checked_mul(x.model_parallel(), x.dp ? x.dp : 1, "world");
      const double peak = tp::estimate_memory(m.model.spec, x, world, y).max_need();
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
    out.push_back(fmt::format("{} -> {:.1f} GiB on {} device{}", what, peak / static_cast<double>(tp::GiB), world,
                              world == 1 ? "" : "s"));
  }
  return out;
}

int run_memory(const args& a, output& out) {
  const memory_setup m = memory_from_args(a);
  const tp::memory_estimate e = tp::estimate_memory(m.model.spec, m.parallel, m.world, m.options);
  std::optional<tp::device_spec> dev;
  const tp::io::device_table file = devices_file_from_args(a);
  if (a.get("device")) dev = device_from_args(a, file);
  std::string custom_name;  // the custom device's name lives here
  if (a.get("capacity-gib")) {
    if (dev)
      throw tp::config_error("capacity-gib",
                             "--capacity-gib with --device: give one capacity, the named device's or "
                             "your own");
    const double capacity = *a.get_double("capacity-gib");
    if (capacity > 4294967296.0)
      throw tp::config_error("capacity-gib", fmt::format("--capacity-gib {} is past 2^32 GiB; give the capacity of one "
                                                         "device in GiB",
                                                         tp::format_double(capacity)));
    custom_name = fmt::format("{} GiB device", tp::format_double(capacity));
    tp::device_spec d;
    d.name = custom_name;
    d.memory_bytes = static_cast<std::int64_t>(capacity * static_cast<double>(tp::GiB));
    dev = d;
  }
  const double gib = static_cast<double>(tp::GiB);
  std::vector<std::string> fixes;
  const bool fits = dev && e.max_need() <= static_cast<double>(dev->memory_bytes);
  if (dev && !fits) fixes = what_would_fit(m, dev->memory_bytes);
  if (auto path = a.get("svg")) {  // last: a refused request leaves no file behind
    tp::io::write_file(*path,
                       tp::render_memory_svg(e, dev ? dev->memory_bytes : 0,
                                             fmt::format("{}: memory per device by pipeline stage", m.model.name)),
                       "svg");
  }
  if (a.has("json")) {
    json stages = json::array();
    for (const auto& s : e.stages)
      stages.push_back({{"stage", s.stage},
                        {"layers", s.layers},
                        {"inflight", s.inflight},
                        {"params", static_cast<std::int64_t>(s.params)},
                        {"grads", static_cast<std::int64_t>(s.grads)},
                        {"grad_buffers", static_cast<std::int64_t>(s.grad_buffers)},
                        {"optimizer", static_cast<std::int64_t>(s.optimizer)},
                        {"activations", static_cast<std::int64_t>(s.activations)},
                        {"other", static_cast<std::int64_t>(s.other)},
                        {"reserve", static_cast<std::int64_t>(s.reserve)},
                        {"reads_allocated", static_cast<std::int64_t>(s.reading(tp::memory_counter::allocated))},
                        {"reads_reserved", static_cast<std::int64_t>(s.reading(tp::memory_counter::reserved))},
                        {"total", static_cast<std::int64_t>(s.total())}});
    json j{{"model", m.model.name},
           {"world", m.world},
           {"stages", stages},
           {"max_total", static_cast<std::int64_t>(e.max_total())},
           {"max_need", static_cast<std::int64_t>(e.max_need())}};
    if (dev) {
      j["device"] = dev->name;
      j["capacity"] = dev->memory_bytes;
      j["fits"] = fits;
      j["reading"] = static_cast<std::int64_t>(
          tp::memory_reading(e.max_total(), e.max_need(), m.options, static_cast<double>(dev->memory_bytes)));
      j["what_would_fit"] = fixes;
    }
    out.print_json(j);
    return 0;
  }
  out.print("{} on {} device{} (tp {} x cp {} x pp {} x dp {}), per device, GiB\n", m.model.name, m.world,
            m.world == 1 ? "" : "s", m.parallel.tp, m.parallel.cp, m.parallel.pp, m.parallel.dp);
  table t({"stage", "layers", "inflight", "weights", "grads", "optimizer", "activations", "other", "reserve", "total"});
  const auto g2 = [gib](double bytes) { return fmt::format("{:.2f}", bytes / gib); };
  for (const auto& s : e.stages)
    t.row({fmt::format("{}", s.stage), fmt::format("{}", s.layers), fmt::format("{:.2f}", s.inflight), g2(s.params),
           g2(s.grads), g2(s.optimizer), g2(s.activations), g2(s.other), g2(s.reserve), g2(s.total())});
  out.print("{}", t.render());
  out.print(
      "other = logits/loss buffers (beyond a recomputed layer, never alive with them), gathered ZeRO-3 weights, "
      "comm buffers, the optimizer step's temporary beyond what the backward freed (with the gradients the step "
      "holds beyond grads), fp8 weight caches and the runtime overhead ({:.1f} GiB)\n",
      (m.options.runtime_overhead_bytes >= 0 ? m.options.runtime_overhead_bytes
                                             : tp::memory_model_constants::runtime_overhead_bytes) /
          gib);
  {
    const auto most = std::max_element(e.stages.begin(), e.stages.end(),
                                       [](const auto& x, const auto& y) { return x.total() < y.total(); });
    // A run that fits reads at most the capacity: the allocator gives back the cached blocks the
    // runtime overhead counts before an allocation fails (stage_memory::need).
    const bool capped = fits && most->total() > static_cast<double>(dev->memory_bytes);
    out.print(
        "what the counters read (stage {}): torch max allocated {:.2f}, max reserved {:.2f}, nvidia-smi {:.2f}{}\n",
        most->stage, most->reading(tp::memory_counter::allocated) / gib,
        most->reading(tp::memory_counter::reserved) / gib,
        (capped ? static_cast<double>(dev->memory_bytes) : most->total()) / gib,
        capped ? fmt::format(" (the capacity: {:.2f} less the cached blocks the allocator gives back before it fails)",
                             most->total() / gib)
               : "");
  }
  if (std::any_of(e.stages.begin(), e.stages.end(), [](const tp::stage_memory& s) { return s.grads < s.grad_buffers; }))
    out.print(
        "grads = the output layer's gradient, or what the gradient buffers ({} GiB) outgrow of the saved activations "
        "and loss buffers: the backward creates them as it frees those (PyTorch's zero_grad sets them to None); "
        "--persistent-grads if they live through the step\n",
        g2(std::max_element(e.stages.begin(), e.stages.end(), [](const auto& x, const auto& y) {
             return x.grad_buffers < y.grad_buffers;
           })->grad_buffers));
  if (std::any_of(e.stages.begin(), e.stages.end(), [](const tp::stage_memory& s) { return s.reserve > 0; }))
    out.print(
        "reserve = allocator blocks no live tensor fills: {}\n",
        m.options.weights_built_in_fp32
            ? "what weights, gradients and activations leave of the fp32 construction's blocks (4 bytes per weight), "
              "and the loss's freed logits block"
            : "the loss's freed 16-bit logits block, which its fp32 gradients cannot reuse");
  if (dev) {
    out.print("{}: {} (what it needs: max reserved)\n", dev->name, tp::fit_summary(e.max_need(), dev->memory_bytes));
    const double reading =
        tp::memory_reading(e.max_total(), e.max_need(), m.options, static_cast<double>(dev->memory_bytes));
    if (m.options.variable_length && fits)
      out.print(
          "nvidia-smi will read up to {:.1f} GiB: with batches of varying length the caching allocator's "
          "segments fragment until an allocation fails\n",
          reading / gib);
    if (!fixes.empty())
      out.print("what would fit: {}\n", fmt::join(fixes, "; "));
    else if (!fits)
      out.print("no single change or pair of changes tried here fits\n");
  }
  return 0;
}

}  // namespace

command memory_command() {
  return {"memory", "device memory per pipeline stage: weights, gradients, optimizer, activations; fit on a device",
          memory_flags, run_memory};
}

}  // namespace trainperf::cli
