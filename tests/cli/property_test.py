#!/usr/bin/env python3
"""Property test of the trainperf tool: every subcommand driven with random flag combinations,
valid and invalid, seeded and reproducible.

    property_test.py TRAINPERF_EXE CONFIG_JSON [--calls N] [--seed S]

The flags of each subcommand are read from its own --help, so the test follows the tool.
Values are drawn from pools of typical, boundary and hostile inputs (0, -1, 2^63, nan, 1e308,
1e-320, words, a directory, a FIFO, /dev/zero, an empty file, a real config.json). For every
call it asserts:
  - the exit code is 0, 1 or 2;
  - exit 2: nothing on stdout, exactly one line on stderr;
  - exit 0 or 1: nothing on stderr; with --json, stdout is one valid JSON value;
  - stdout stays under MAX_OUTPUT bytes (--all may print more: the user asked for every rank);
  - each call returns within MAX_SECONDS.
A failure prints the command line to reproduce it and exits 1; the last line is
'N passed, N failed'.
"""
import json
import os
import random
import shlex
import subprocess
import sys
import tempfile
import time

MAX_OUTPUT = 4 * 1024 * 1024
MAX_OUTPUT_ALL = 256 * 1024 * 1024
MAX_SECONDS = 10.0

INTS = ["1", "2", "3", "4", "8", "16", "32", "64", "128", "4096", "0", "-1", "1.5", "70e9", "1e3", "2147483648",
        "1073741824", "9223372036854775807", "9223372036854775808", "-9223372036854775808", "nan", "inf", "",
        "abc", "0x10", " 4", "4 ", "+4", "1048576", "1048577", "4\n2", "\x01"]
FLOATS = ["1", "0.5", "791.37", "1e12", "989e12", "0", "-1", "nan", "inf", "-inf", "1e308", "1e-320", "1e-300",
          "abc", "", "1e400", "2.5e-5", "1\n2"]


def files(tmp, config_json):
    d = os.path.join(tmp, "a_directory")
    os.makedirs(d, exist_ok=True)
    fifo = os.path.join(tmp, "a_fifo")
    if not os.path.exists(fifo):
        os.mkfifo(fifo)
    empty = os.path.join(tmp, "empty.json")
    open(empty, "w").close()
    garbage = os.path.join(tmp, "garbage.json")
    with open(garbage, "wb") as f:
        f.write(b'{"model_type": "llama", "hidden_size": [1, 2, {"x": ' + b"\xff" * 64)
    return [config_json, d, fifo, "/dev/zero", empty, garbage, os.path.join(tmp, "missing.json"), "/proc/self/status"]


def help_flags(exe, command):
    out = subprocess.run([exe, command, "--help"], capture_output=True, text=True, timeout=MAX_SECONDS).stdout
    flags = []
    for line in out.splitlines():
        # "  --name VALUE<padding to column 30>help": one space before a value, two or more before
        # the help text (flag names are far shorter than the 28-column field).
        if not line.startswith("  --"):
            continue
        name = line[2:].split(" ", 1)[0]
        rest = line[2 + len(name):]
        value = rest[1:].split(" ", 1)[0] if rest.startswith(" ") and not rest.startswith("  ") else ""
        if name != "--help":
            flags.append((name[2:], value))
    return flags


def value_for(rng, name, placeholder, paths):
    if placeholder == "":
        return None
    if name == "model":
        return rng.choice(["llama2-7b", "llama2-70b", "gpt3-6.7b", "mixtral-8x7b", "llava1.5-7b", "tiny", "gpt2-124m",
                           "lama2-7b", "LLAMA3-8B", "nope", "llama\n2-7b", "x" * 5000] + paths)
    if name == "device":
        return rng.choice(["H100", "A100-80GB", "A800", "h8oo", "a100", "R300", "nope", ""])
    if name in ("svg", "log"):
        return rng.choice(paths[1:3])  # a directory or a FIFO: must be refused, never written
    if "|" in placeholder:
        return rng.choice(placeholder.split("|") + ["nope", "", placeholder.split("|")[0].upper()])
    if name in ("train",):
        return rng.choice(["projector", "llm", "vision,projector,llm", "brain", ""])
    if name == "order":
        return rng.choice(["tp-cp-ep-dp-pp", "tp-dp-pp", "pp-dp-tp", "tp-tp", "xx", ""])
    if name == "zero":
        return rng.choice(["0", "1", "2", "3", "4", "-1", "x"])
    if placeholder in ("X", "S", "T", "K"):
        return rng.choice(FLOATS)
    return rng.choice(INTS)


def typical(rng, command):
    """A mostly valid starting point, so that deep paths are reached too."""
    base = {
        "params": ["--model", "llama2-7b"],
        "batch": ["--gbs", "1024", "--lbs", "4", "--dp", "8", "--seq", "2048"],
        "flops": ["--model", "llama2-7b", "--seq", "4096"],
        "mfu": ["--model", "llama2-7b", "--device", "H100", "--tokens-per-device-per-s", "1000"],
        "layout": ["--world", "16", "--tp", "2", "--pp", "2"],
        "schedule": ["--pp", "4", "--microbatches", "8"],
        "memory": ["--model", "llama2-7b", "--seq", "4096", "--device", "H100"],
        "check-config": ["--model", "llama2-7b", "--world", "8", "--tp", "2", "--lbs", "1", "--gas", "4",
                         "--seq", "4096"],
    }
    return list(base.get(command, [])) if rng.random() < 0.7 else []


def main():
    exe, config_json = sys.argv[1], sys.argv[2]
    calls = int(sys.argv[sys.argv.index("--calls") + 1]) if "--calls" in sys.argv else 2000
    seed = int(sys.argv[sys.argv.index("--seed") + 1]) if "--seed" in sys.argv else 20261202
    rng = random.Random(seed)
    commands = ["params", "batch", "presets", "flops", "mfu", "devices", "layout", "schedule", "memory",
                "check-config"]
    passed = failed = 0
    codes = {}
    with tempfile.TemporaryDirectory() as tmp:
        paths = files(tmp, config_json)
        flags = {c: help_flags(exe, c) for c in commands}
        for i in range(calls):
            command = rng.choice(commands + ["frobnicate", "memroy", "help", ""])
            argv = [command] + (typical(rng, command) if command in flags else [])
            for _ in range(rng.randrange(0, 6)):
                if command not in flags or not flags[command] or rng.random() < 0.05:
                    argv.append(rng.choice(["--nope", "--gsb", "-x", "stray", "--", "--json=1", "--help"]))
                    continue
                name, placeholder = rng.choice(flags[command])
                v = value_for(rng, name, placeholder, paths)
                if v is None:
                    argv.append("--" + name)
                elif rng.random() < 0.1:
                    argv.append(f"--{name}={v}")
                else:
                    argv += ["--" + name, v]
            if command in flags and rng.random() < 0.3:
                argv.append("--json")
            if "--all" in argv and any(a.isdigit() and int(a) > 65536 for a in argv):
                argv = [a for a in argv if a != "--all"]  # every rank of up to 2^20, by request: hundreds of MB
            problem, rc = check(exe, argv, tmp)
            codes[rc] = codes.get(rc, 0) + 1
            if problem:
                failed += 1
                print(f"FAIL call {i} (seed {seed}): {problem}\n  {shlex.join([exe] + argv)}")
            else:
                passed += 1
        # Refused outputs leave nothing behind: the FIFO is still a FIFO, the directory holds only
        # what was there, and no temporary file is left anywhere.
        import stat
        leftovers = [f for f in os.listdir(tmp) if f.endswith(".tmp")] + os.listdir(paths[1])
        if not stat.S_ISFIFO(os.stat(paths[2]).st_mode) or leftovers:
            failed += 1
            print(f"FAIL: a refused output path was written: {leftovers}")
    print("exit codes: " + ", ".join(f"{k}: {v}" for k, v in sorted(codes.items(), key=str)))
    print(f"{passed} passed, {failed} failed")
    return 1 if failed else 0


def check(exe, argv, cwd):
    t0 = time.monotonic()
    try:
        r = subprocess.run([exe] + argv, capture_output=True, timeout=MAX_SECONDS, cwd=cwd)
    except subprocess.TimeoutExpired:
        return f"no answer within {MAX_SECONDS} s", "timeout"
    elapsed = time.monotonic() - t0
    return problem_of(r, argv, elapsed), r.returncode


def problem_of(r, argv, elapsed):
    out, err = r.stdout, r.stderr
    if r.returncode not in (0, 1, 2):
        return f"exit code {r.returncode}; stderr: {err[-300:]!r}"
    if r.returncode == 2:
        if out:
            return f"exit 2 with {len(out)} bytes on stdout"
        if err.count(b"\n") != 1 or not err.endswith(b"\n"):
            return f"exit 2 needs one stderr line, got {err[:400]!r}"
    else:
        if err:
            return f"exit {r.returncode} with stderr {err[:300]!r}"
        if "--json" in argv and "--help" not in argv and argv[0] not in ("help", ""):
            try:
                json.loads(out)
            except ValueError as e:
                return f"--json printed invalid JSON ({e}): {out[:200]!r}"
    limit = MAX_OUTPUT_ALL if "--all" in argv else MAX_OUTPUT
    if len(out) > limit:
        return f"{len(out)} bytes of output, over {limit}"
    if elapsed > MAX_SECONDS:
        return f"took {elapsed:.1f} s"
    return None


if __name__ == "__main__":
    sys.exit(main())
