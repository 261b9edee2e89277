// Fuzz target: bytes -> io::parse_case_report -> check_report under two conventions. Whatever
// the text, the reader lists what it does not understand and the audit returns findings: no
// crash, sanitizer report, exception or hang, and every finding names a row that exists.
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string_view>

#include <trainperf/io/report_check.hpp>

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  using namespace trainperf;
  const io::case_report report = io::parse_case_report(std::string_view(reinterpret_cast<const char*>(data), size));
  std::size_t rows = 0;
  for (const auto& t : report.results) rows += t.rows.size();
  for (const flops_convention c : {flops_convention::nominal, flops_convention::megatron}) {
    report_check_options o;
    o.convention = c;
    o.predict_memory = c == flops_convention::megatron;
    const report_audit a = check_report(report, o);
    if (a.rows.size() != rows) std::abort();
    for (const auto& f : a.findings)
      if (f.row < 0 || static_cast<std::size_t>(f.row) > rows || f.message.empty()) std::abort();
    for (const auto& r : a.rows)
      if (r.mfu_recomputed && !std::isfinite(*r.mfu_recomputed)) std::abort();
  }
  return 0;
}
