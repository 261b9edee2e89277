# Compares two train_llama --log files step by step: equal steps, losses within rtol. Options
# after rtol: "resumed" lets the second file start later (a resumed run's log): the first file's
# steps from there on are compared; "norms" compares each step's gradient norm (before
# clipping) within rtol too.
import sys
def read(path):
    out = {}
    for line in open(path):
        f = line.split()  # step N loss X [norm Y]
        out[int(f[1])] = (float.fromhex(f[3]), float.fromhex(f[5]) if len(f) > 5 else None)
    return out
a, b, rtol = read(sys.argv[1]), read(sys.argv[2]), float(sys.argv[3])
options = sys.argv[4:]
if "resumed" in options and b:
    a = {s: x for s, x in a.items() if s >= min(b)}
if sorted(a) != sorted(b) or not a:
    sys.exit(f"steps differ: {sorted(a)} vs {sorted(b)}")
for s in sorted(a):
    for i, what in ((0, "loss"), (1, "gradient norm")):
        if i == 1 and "norms" not in options:
            continue
        x, y = a[s][i], b[s][i]
        if x is None or y is None:
            sys.exit(f"step {s}: no {what} in a log")
        diff = abs(x - y) / abs(x)
        print(f"step {s} {what}: {x:.9f} vs {y:.9f} (relative difference {diff:.2e})")
        if diff > rtol:
            sys.exit(f"step {s}: {what} relative difference {diff:.2e} exceeds {rtol}")
