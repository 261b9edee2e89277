// trainperf check-report: every cell of a published case report that does not follow from the
// others (report_check.hpp); exit 1 when one is an error.
#include <string>
#include <vector>

#include <fmt/format.h>

#include <trainperf/io/report_check.hpp>

#include "cli.hpp"
#include "flops_args.hpp"

namespace trainperf::cli {
namespace {
namespace tp = trainperf;

std::vector<flag> check_report_flags() {
  return with_common({
      {"report", "FILE", "the case report, in markdown (or give FILE alone, first)"},
      {"model", "NAME", "a preset for every row (default: the model the report names)"},
      {"params", "N", "N of the nominal convention (default: the model's nominal size, e.g. 70e9)"},
      {"k", "K", "nominal's multiplier (default 6; 2 in a vision-language model's pretrain stage)"},
      {"device", "NAME", "a device for every row (default: each row's config cell)"},
      {"peak-flops", "X", "dense peak FLOP/s per device (default: the device's, for the row's precision)"},
      {"convention", choices_of(tp::flops_convention_names),
       "the FLOPs convention the MFU column uses (default nominal)"},
      {"predict", "", "print the memory model's figure for each row's configuration beside the measured one"},
  });
}

std::string opt_int(const std::optional<std::int64_t>& v) { return v ? std::to_string(*v) : "-"; }

int run_check_report(const args& a, output& out) {
  const auto file = a.get("report");
  if (!file) throw usage_error("give the report: trainperf check-report FILE.md");
  tp::report_check_options o;
  o.model = a.get("model").value_or("");
  if (!o.model.empty()) (void)tp::get_preset(o.model);  // an unknown preset is refused before reading
  o.params = a.get_double("params").value_or(0);
  o.k = a.get_double("k").value_or(0);
  o.device = a.get("device").value_or("");
  if (!o.device.empty()) (void)tp::get_device(o.device);
  o.peak_flops = a.get_double("peak-flops").value_or(0);
  o.predict_memory = a.has("predict");
  o.convention = convention_from_args(a, tp::flops_convention::nominal);
  if ((a.has("params") || a.has("k")) && o.convention != tp::flops_convention::nominal)
    throw usage_error("--params and --k belong to the nominal convention; --convention " +
                      std::string(tp::to_string(o.convention)) + " counts the FLOPs from the model's shape");
  const tp::io::case_report report = tp::io::read_case_report(*file);
  const tp::report_audit audit = tp::check_report(report, o);
  const std::size_t errors = audit.count(tp::finding_severity::error);
  const std::size_t warnings = audit.count(tp::finding_severity::warning);

  if (a.has("json")) {
    json rows = json::array();
    for (const auto& r : audit.rows) {
      json cells = json::object();
      for (const auto& [h, c] : r.cells) cells[h] = c;
      const auto num = [](const auto& v) { return v ? json(*v) : json(nullptr); };
      json conv = json::object();
      for (const auto& [name, v] : r.mfu_by_convention) conv[name] = v;
      rows.push_back({{"row", r.row},
                      {"line", r.line},
                      {"table", r.table},
                      {"cells", cells},
                      {"model", r.model},
                      {"device", r.device},
                      {"devices", num(r.devices)},
                      {"precision", r.precision},
                      {"tp", num(r.tp)},
                      {"pp", num(r.pp)},
                      {"dp", num(r.dp)},
                      {"lbs", num(r.lbs)},
                      {"gas", num(r.gas)},
                      {"seq", num(r.seq)},
                      {"gbs", num(r.gbs)},
                      {"tokens_per_device_per_s", num(r.tokens_per_device_per_s)},
                      {"loss", num(r.loss)},
                      {"memory_used", num(r.memory_used)},
                      {"memory_capacity", num(r.memory_capacity)},
                      {"memory_unit", r.memory_unit},
                      {"mfu", num(r.mfu)},
                      {"mfu_recomputed", num(r.mfu_recomputed)},
                      {"flops_per_token", r.flops_per_token > 0 ? json(r.flops_per_token) : json(nullptr)},
                      {"flops_source", r.flops_source},
                      {"peak_flops", r.peak_flops > 0 ? json(r.peak_flops) : json(nullptr)},
                      {"peak_source", r.peak_source},
                      {"mfu_by_convention", conv}});
      if (o.predict_memory) {
        rows.back()["memory_predicted"] = num(r.memory_predicted);
        rows.back()["memory_predicted_from"] = r.memory_predicted_from;
      }
    }
    json findings = json::array();
    for (const auto& f : audit.findings)
      findings.push_back({{"row", f.row == 0 ? json(nullptr) : json(f.row)},
                          {"line", f.line},
                          {"column", f.column},
                          {"kind", f.kind},
                          {"severity", tp::to_string(f.severity)},
                          {"printed", f.printed},
                          {"expected", f.expected},
                          {"message", f.message}});
    // What the report states beside its tables, as read: the general metrics and the batch prose.
    const auto opt = [](const std::optional<std::int64_t>& v) { return v ? json(*v) : json(nullptr); };
    const auto dp_rule = report.batch.dp == tp::io::batch_prose::dp_rule::world              ? "world"
                         : report.batch.dp == tp::io::batch_prose::dp_rule::world_over_tp_pp ? "world / (tp x pp)"
                                                                                             : "unstated";
    const json stated = {{"model", report.model},
                         {"dataset", report.dataset},
                         {"precision", report.precision},
                         {"device", report.device},
                         {"memory_unit", report.memory_unit},
                         {"mfu_definition", report.mfu_definition},
                         {"lbs", opt(report.batch.lbs)},
                         {"mpe", opt(report.batch.mpe)},
                         {"gas", opt(report.batch.gas)},
                         {"dp", dp_rule}};
    out.print_json({{"report", *file},
                    {"stated", stated},
                    {"rows", rows},
                    {"findings", findings},
                    {"errors", errors},
                    {"warnings", warnings}});
    return errors > 0 ? 1 : 0;
  }
  std::size_t tables = report.results.size();
  out.print("{}: {} rows read from {} results table{}; {} error{}, {} warning{}\n", *file, audit.rows.size(), tables,
            tables == 1 ? "" : "s", errors, errors == 1 ? "" : "s", warnings, warnings == 1 ? "" : "s");
  if (!audit.rows.empty()) {
    table t({"row", "line", "model", "device", "devices", "precision", "TPxPPxDP", "LBS", "GAS", "seq", "GBS",
             "token/p/s", "MFU", "recomputed"},
            {false, false, true, true, false, true, true});
    for (const auto& r : audit.rows)
      t.row({std::to_string(r.row), std::to_string(r.line), r.model.empty() ? "-" : r.model,
             r.device.empty() ? "-" : r.device, opt_int(r.devices), r.precision.empty() ? "-" : r.precision,
             fmt::format("{}x{}x{}", opt_int(r.tp), opt_int(r.pp), opt_int(r.dp)), opt_int(r.lbs), opt_int(r.gas),
             opt_int(r.seq), opt_int(r.gbs),
             r.tokens_per_device_per_s ? fmt::format("{:g}", *r.tokens_per_device_per_s) : "-",
             r.mfu ? fmt::format("{:.2f}%", *r.mfu * 100) : "-",
             r.mfu_recomputed ? fmt::format("{:.2f}%", *r.mfu_recomputed * 100) : "-"});
    out.print("{}", t.render("  "));
    if (o.predict_memory)
      for (const auto& r : audit.rows)
        out.print("  row {} mem {} {}, memory model {} ({})\n", r.row,
                  r.memory_used ? fmt::format("{:g}", *r.memory_used) : "-", r.memory_unit,
                  r.memory_predicted ? fmt::format("{:.2f}", *r.memory_predicted) : "-", r.memory_predicted_from);
    for (const auto& r : audit.rows)
      if (r.mfu_recomputed) {
        std::string others;
        for (const auto& [name, v] : r.mfu_by_convention) others += fmt::format(", {} {:.2f}%", name, v * 100);
        out.print("  row {} MFU recomputed with {}; {}{}\n", r.row, r.flops_source, r.peak_source,
                  others.empty() ? "" : " (for information:" + others.substr(1) + ")");
      }
  }
  if (audit.findings.empty()) {
    out.print("no findings: every checked cell follows from the others\n");
    return 0;
  }
  out.print("findings:\n");
  for (const auto& f : audit.findings)
    out.print("  {} line {}{}: {} ({}): {}{}\n", f.row == 0 ? std::string("report") : fmt::format("row {}", f.row),
              f.line, f.column.empty() ? "" : ", " + f.column, tp::to_string(f.severity), f.kind, f.message,
              f.expected.empty() ? "" : fmt::format(" [printed {}, expected {}]", f.printed, f.expected));
  return errors > 0 ? 1 : 0;
}

}  // namespace

command check_report_command() {
  return {"check-report", "every cell of a published case report that does not follow from the others",
          check_report_flags, run_check_report, "report"};
}

}  // namespace trainperf::cli
