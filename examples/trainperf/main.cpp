// trainperf — the command-line face of the library: every subcommand prints a readable table
// or, with --json, one JSON object. Usage errors and invalid configurations print one line
// and exit with 2; check-config exits with 1 for a valid request whose configuration breaks
// rules. The subcommands live one per file (cmd_<name>.cpp), the dispatcher in run_cli.cpp.
#include <cstdio>
#include <string>
#include <vector>

#include "cli.hpp"

int main(int argc, char** argv) {
  const std::vector<std::string> all(argv + 1, argv + argc);
  std::string out, err;
  const int rc = trainperf::cli::run_cli(all, out, err);
  std::fwrite(out.data(), 1, out.size(), stdout);
  std::fwrite(err.data(), 1, err.size(), stderr);
  return std::fflush(stdout) == 0 ? rc : 2;
}
