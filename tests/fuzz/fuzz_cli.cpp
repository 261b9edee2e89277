// Fuzz target: the trainperf tool's whole command line, in process. The input is split into
// arguments at NUL or newline bytes ("memory\n--model\nllama2-7b\n--tp\n3"); run_cli must
// answer every one with an exit code of 0, 1 or 2, a one-line error for 2, and never crash,
// hang or leak. Inputs naming --svg (writes a file anywhere) or --all (lists every rank of a
// world up to 2^20, by request) are skipped: the property test (tests/cli/property_test.py)
// covers both through the executable; so is calibrate (seconds of measuring; its CLI tests
// cover its refusals).
#include <cstdint>
#include <cstdlib>
#include <string>
#include <vector>

#include "../../examples/trainperf/cli.hpp"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  std::vector<std::string> argv(1);
  for (std::size_t i = 0; i < size; ++i) {
    const char c = static_cast<char>(data[i]);
    if (c == '\0' || c == '\n')
      argv.emplace_back();
    else
      argv.back() += c;
  }
  for (const auto& a : argv)
    if (a.starts_with("--svg") || a.starts_with("--all")) return -1;  // not added to the corpus
  if (argv[0] == "calibrate") return -1;  // it measures the machine for seconds and writes files
  std::string out, err;
  const int rc = trainperf::cli::run_cli(argv, out, err);
  if (rc != 0 && rc != 1 && rc != 2) std::abort();
  // An error is one line, and a refused request prints nothing else.
  if (rc == 2 && (!out.empty() || err.empty() || err.find('\n') != err.size() - 1)) std::abort();
  if (rc != 2 && !err.empty()) std::abort();
  return 0;
}
