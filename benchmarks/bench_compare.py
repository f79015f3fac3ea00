"""Wall time of `genzoo compare` against its targets, and side-by-side workers against one.

    python benchmarks/bench_compare.py [--preset quick|default] [--workers-ratio]

Targets (issue 4): the default run (5 families + 2 baselines, 3 seeds, ring) under 300 s
on 2 cores, `--preset quick` under 60 s. Printed as ratios to the target, since wall
times on a shared machine are noisy. With --workers-ratio, the same quick run with one
worker and with two, as a ratio measured in one session.
"""

from __future__ import annotations

import argparse
import tempfile
import time

from genzoo.compare import run_compare

TARGET_S = {"quick": 60.0, "default": 300.0, "thorough": float("inf")}


def timed(preset: str, workers: int | None) -> float:
    with tempfile.TemporaryDirectory() as out:
        t0 = time.perf_counter()
        run_compare(preset=preset, out=out, verbose=False, workers=workers)
        return time.perf_counter() - t0


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--preset", default="quick", choices=list(TARGET_S))
    ap.add_argument("--workers-ratio", action="store_true")
    args = ap.parse_args()
    t = timed(args.preset, None)
    print(f"compare --preset {args.preset}: {t:.0f} s = {t / TARGET_S[args.preset]:.2f} x its target "
          f"({TARGET_S[args.preset]:.0f} s)")
    if args.workers_ratio:
        t1 = timed(args.preset, 1)
        print(f"one worker: {t1:.0f} s; default workers: {t:.0f} s; speed-up {t1 / t:.2f}x")


if __name__ == "__main__":
    main()
