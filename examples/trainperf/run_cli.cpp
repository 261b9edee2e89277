// The trainperf tool's dispatcher: picks the subcommand, parses its flags, runs it into a
// buffer and turns every usage or configuration error into one line and exit code 2.
#include <algorithm>
#include <exception>
#include <new>
#include <string>
#include <vector>

#include <fmt/format.h>

#include "cli.hpp"

namespace trainperf::cli {

const std::vector<command>& commands() {
  static const std::vector<command> all = {
      params_command(),  batch_command(),  presets_command(),  flops_command(),  mfu_command(),
      devices_command(), layout_command(), schedule_command(), memory_command(), check_config_command()};
  return all;
}

namespace {

std::string help(const command& c) {
  std::string out = fmt::format("usage: trainperf {} [flags]\n{}\n\nflags:\n", c.name, c.summary);
  for (const auto& f : c.flags()) {
    const std::string lhs = f.value.empty() ? fmt::format("--{}", f.name) : fmt::format("--{} {}", f.name, f.value);
    out += fmt::format("  {:<28}{}{}\n", lhs, lhs.size() < 28 ? "" : " ", f.help);
  }
  return out;
}

std::string usage() {
  std::string out = "usage: trainperf <command> [flags]   (trainperf <command> --help for its flags)\n\ncommands:\n";
  std::size_t width = 0;  // widest command name, so every summary starts in one column
  for (const auto& c : commands()) width = std::max(width, c.name.size());
  for (const auto& c : commands()) out += fmt::format("  {:<{}}  {}\n", c.name, width, c.summary);
  return out;
}

}  // namespace

int run_cli(std::span<const std::string> argv, std::string& out, std::string& err) {
  out.clear();
  err.clear();
  if (argv.empty() || argv[0] == "help" || argv[0] == "--help" || argv[0] == "-h") {
    out = usage();
    return argv.empty() ? 2 : 0;
  }
  const command* cmd = nullptr;
  for (const auto& c : commands())
    if (c.name == argv[0]) cmd = &c;
  if (cmd == nullptr) {
    const std::string hint =
        trainperf::detail::did_you_mean(argv[0], commands(), [](const command& c) { return c.name; });
    err = fmt::format("trainperf: unknown command '{}'; {}run `trainperf help`\n", argv[0],
                      hint.empty() ? "" : hint + " ");
    return 2;
  }
  // One line, whatever the message carries: the first line is the error.
  const auto fail = [&](std::string_view what) {
    err = fmt::format("trainperf {}: {}\n", cmd->name, what.substr(0, what.find('\n')));
    return 2;
  };
  try {
    const args a(argv.subspan(1), cmd->flags());
    if (a.has("help")) {
      out = help(*cmd);
      return 0;
    }
    output o;
    const int rc = cmd->run(a, o);
    out = std::move(o.text);
    return rc;
  } catch (const usage_error& e) {
    return fail(e.what());
  } catch (const config_error& e) {
    return fail(e.what());
  } catch (const std::bad_alloc&) {
    return fail("out of memory; the sizes given are too large for this machine");
  }
}

}  // namespace trainperf::cli
