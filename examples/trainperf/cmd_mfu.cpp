// trainperf mfu: MFU, HFU and TFLOP/s per device from a measured throughput
#include <string>
#include <vector>

#include <fmt/format.h>
#include <fmt/ranges.h>

#include <trainperf/trainperf.hpp>

#include "cli.hpp"
#include "device_flags.hpp"
#include "flops_args.hpp"

namespace trainperf::cli {
namespace {
namespace tp = trainperf;

std::vector<flag> mfu_flags() {
  auto f = flops_flag_list();
  f.push_back({"device", "NAME", "a device from `trainperf devices`"});
  f.push_back(devices_file_flag());
  f.push_back({"dtype", "fp32|tf32|bf16|fp16|fp8", "dtype whose dense peak counts (default bf16)"});
  f.push_back({"peak-flops", "X", "dense peak FLOP/s per device (instead of --device)"});
  f.push_back({"tokens-per-device-per-s", "X", "measured token/p/s"});
  f.push_back({"samples-per-s", "X", "measured samples/s of all devices (with --devices)"});
  f.push_back({"step-time", "S", "measured seconds per step (with --gbs and --devices)"});
  f.push_back({"gbs", "N", "sequences per step (with --step-time)"});
  f.push_back({"devices", "N", "devices sharing the work"});
  return with_common(f);
}

int run_mfu(const args& a, output& out) {
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
    const tp::io::device_table file = devices_file_from_args(a);
    const tp::device_spec& dev = device_from_args(a, file);
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
  // Above 100% (hardware FLOPs include recomputation, so HFU meets it first) is refused by
  // utilization(); the CLI adds what only it knows: the convention and where the peak came from.
  double mfu = 0, hfu = 0;
  try {
    mfu = tp::utilization(c.model_per_token(), tps, peak);
    hfu = tp::utilization(c.hardware_per_token(), tps, peak);
  } catch (const tp::config_error& e) {
    throw tp::config_error(e.field(), fmt::format("{} (convention {}, recompute {}, peak {})", e.what(),
                                                  tp::to_string(f.options.convention),
                                                  tp::to_string(f.options.recomputation), peak_source));
  }
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
    out.print_json(j);
    return 0;
  }
  out.print("model {}, convention {}, seq {}, recompute {}\n", f.model.name, tp::to_string(f.options.convention), c.seq,
            tp::to_string(f.options.recomputation));
  out.print("  peak                {:.6g} FLOP/s per device: {}\n", peak, peak_source);
  // Two decimals as the reports print them; significant digits where two decimals would hide the value.
  const auto fixed2 = [](double v) {
    return v >= 0.01 && v < 1e12 ? fmt::format("{:.2f}", v) : fmt::format("{:.3g}", v);
  };
  out.print("  token/p/s           {}\n", fixed2(tps));
  out.print("  TFLOP/s per device  {}   ({:.6g} FLOPs per token)\n", fixed2(tflops), c.model_per_token());
  out.print("  MFU                 {}%\n", fixed2(mfu * 100));
  out.print("  HFU                 {}%\n", fixed2(hfu * 100));
  return 0;
}

}  // namespace

command mfu_command() {
  return {"mfu", "MFU, HFU and TFLOP/s per device from a measured throughput", mfu_flags, run_mfu};
}

}  // namespace trainperf::cli
