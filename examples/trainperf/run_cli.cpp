// The trainperf tool's dispatcher: picks the subcommand, parses its flags, runs it into a
// buffer and turns every usage or configuration error into one line and exit code 2.
#include <algorithm>
#include <exception>
#include <new>
#include <optional>
#include <string>
#include <vector>

#include <fmt/format.h>

#include "cli.hpp"

namespace trainperf::cli {

const std::vector<command>& commands() {
  static const std::vector<command> all = {
      params_command(),  batch_command(),  presets_command(),   flops_command(),        mfu_command(),
      devices_command(), layout_command(), schedule_command(),  memory_command(),       check_config_command(),
      predict_command(), plan_command(),   calibrate_command(), check_report_command(), report_command()};
  return all;
}

namespace {

std::string help(const command& c) {
  return fmt::format("usage: trainperf {} [flags]\n{}\n\nflags:\n", c.name, c.summary) + flags_help(c.flags());
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
  if (argv.empty()) {
    err = "trainperf: give a command; `trainperf help` lists them\n";
    return 2;
  }
  if (argv[0] == "help" || argv[0] == "--help" || argv[0] == "-h") {
    out = usage();
    return 0;
  }
  const command* cmd = nullptr;
  for (const auto& c : commands())
    if (c.name == argv[0]) cmd = &c;
  if (cmd == nullptr) {
    const std::string hint =
        trainperf::detail::did_you_mean(argv[0], commands(), [](const command& c) { return c.name; });
    err = trainperf::detail::one_line(fmt::format("trainperf: unknown command '{}'; {}run `trainperf help`", argv[0],
                                                  hint.empty() ? "" : hint + " ")) +
          '\n';
    return 2;
  }
  // One line, whatever the message carries (a newline typed into a value is shown escaped).
  const auto fail = [&](std::string_view what) {
    err = fmt::format("trainperf {}: {}\n", cmd->name, trainperf::detail::one_line(what));
    return 2;
  };
  std::optional<args> parsed;
  try {
    const args& a = parsed.emplace(argv.subspan(1), cmd->flags(), cmd->positional);
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
    err = fmt::format("trainperf {}: {}\n", cmd->name, error_line(parsed ? &*parsed : nullptr, e));
    return 2;
  } catch (const std::bad_alloc&) {
    return fail("out of memory; the sizes given are too large for this machine");
  }
}

}  // namespace trainperf::cli
