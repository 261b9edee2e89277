#!/usr/bin/env python3
"""How much a caching allocator can hold over a run of variable-length batches (issue 18 evidence).

ms-swift's benchmark (docs/source_en/LLM/Benchmark.md at cdb169b; scripts/benchmark/test_memory_time/
run_single.py at 97e4d198b) trains one sample per batch from cls-fudan-news-zh (4959 samples, token
length 3234.4 +/- 2547.5, min 91, max 19548 by its dataset table), drops samples longer than
max_length, uses every sample up to max_length 2048 and 1000 sampled ones above, and reports
torch.cuda.max_memory_reserved.

PyTorch's caching allocator gives a request over 10 MB a segment of its own and never merges
segments, so a batch longer than every earlier one (a record) needs new segments for its
logit-sized tensors while the earlier records' segments stay reserved. This prints, per max_length,
R = the expected sum of the earlier records' lengths over max_length: the bound on that reserve is
R x (bytes per logit the step holds at once) x vocabulary x max_length, reached when no other
tensor reuses the old segments. Only the dataset's mean, deviation and range are published, so two
length distributions with those moments (gamma and log-normal, cut to the range) are compared.

  python3 bench/variable_length_records.py [trials]
"""
import math
import random
import sys

MEAN, SD, LO, HI, SAMPLES = 3234.4, 2547.5, 91, 19548, 4959


def draw(rng, dist):
    k, theta = (MEAN / SD) ** 2, SD * SD / MEAN
    s2 = math.log(1 + (SD / MEAN) ** 2)
    while True:
        x = rng.gammavariate(k, theta) if dist == "gamma" else rng.lognormvariate(math.log(MEAN) - s2 / 2, math.sqrt(s2))
        if LO <= x <= HI:
            return x


def main():
    trials = int(sys.argv[1]) if len(sys.argv) > 1 else 100
    rng = random.Random(0)
    print("max_length  samples  distribution  kept  R (earlier records / max_length)")
    for max_length in (512, 1024, 2048, 4096, 8192):
        n = SAMPLES if max_length <= 2048 else 1000  # run_single.py: train_dataset_sample
        for dist in ("gamma", "lognormal"):
            kept_sum, r_sum = 0, 0.0
            for _ in range(trials):
                kept = [x for x in (draw(rng, dist) for _ in range(n)) if x <= max_length]
                records, best = [], 0.0
                for x in kept:
                    if x > best:
                        records.append(x)
                        best = x
                kept_sum += len(kept)
                r_sum += sum(records[:-1]) / max_length
            print(f"{max_length:10d}  {n:7d}  {dist:12s}  {kept_sum / trials:4.0f}  {r_sum / trials:.2f}")


if __name__ == "__main__":
    main()
