# Compares two train_llama --log files step by step: equal steps, losses within rtol. With a
# fourth argument "resumed", the second file may start later (a resumed run's log): the first
# file's steps from there on are compared.
import sys
def read(path):
    out = {}
    for line in open(path):
        _, step, _, loss = line.split()
        out[int(step)] = float.fromhex(loss)
    return out
a, b, rtol = read(sys.argv[1]), read(sys.argv[2]), float(sys.argv[3])
if len(sys.argv) > 4 and sys.argv[4] == "resumed" and b:
    a = {s: x for s, x in a.items() if s >= min(b)}
if sorted(a) != sorted(b) or not a:
    sys.exit(f"steps differ: {sorted(a)} vs {sorted(b)}")
for s in sorted(a):
    diff = abs(a[s] - b[s]) / abs(a[s])
    print(f"step {s}: {a[s]:.9f} vs {b[s]:.9f} (relative difference {diff:.2e})")
    if diff > rtol:
        sys.exit(f"step {s}: relative difference {diff:.2e} exceeds {rtol}")
