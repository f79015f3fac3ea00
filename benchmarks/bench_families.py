"""Train each family at its defaults on the standard 2-D data sets and print one table.

    python benchmarks/bench_families.py [--families vae,gan,...|core|all] [--data ring,grid25] [--seed 0]

Columns: fit time, samples per second, NLL (or bound) in nats, NLL minus the true entropy
(KL(data || model); never negative for a normalised density), on-support share (true
log-density above its 1% quantile over real points), modes captured and high-quality
share (mixtures; PacGAN protocol: 2,500 samples, within 3 std), W2 at 2,000 points and
its floor (W2 between two independent real draws of that size).
"""

from __future__ import annotations

import argparse
import time

import genzoo as gz
from genzoo.compare.runner import resolve_families
from genzoo.metrics import mode_metrics, on_support, wasserstein

DATA = ["ring", "gaussians8", "grid25", "checkerboard"]


def bench(family: str, name: str, seed: int) -> dict:
    ds = gz.datasets.get(name)
    X = ds.sample(10_000, random_state=seed)
    params = {"random_state": seed}
    if "verbose" in gz.make(family).get_params():
        params["verbose"] = 0
    t0 = time.perf_counter()
    m = gz.make(family, **params).fit(X)
    fit_s = time.perf_counter() - t0
    t0 = time.perf_counter()
    S = m.sample(2500, random_state=seed + 1)
    sps = 2500 / (time.perf_counter() - t0)
    row = {"family": family, "data": name, "fit_s": fit_s, "samples_per_s": sps,
           "on_support": on_support(S, ds)}
    md = ds.modes()
    if md is not None:
        mm = mode_metrics(S, md["centers"], md["std"])
        row["modes"] = f"{mm['modes']}/{len(md['centers'])}"
        row["hq"] = mm["high_quality"]
    R1, R2 = ds.sample(2000, random_state=seed + 50), ds.sample(2000, random_state=seed + 51)
    row["w2"], row["w2_floor"] = wasserstein(S[:2000], R1), wasserstein(R2, R1)
    if m.likelihood_kind != "none":
        lp = m.score_samples(ds.sample(10_000, random_state=seed + 7))
        row["nll"] = -lp.mean()
        row["gap"] = row["nll"] - ds.entropy()
        row["kind"] = m.likelihood_kind
    return row


def fmt(v, spec):
    return "-" if v is None else format(v, spec) if not isinstance(v, str) else v


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--families", default="core")
    ap.add_argument("--data", default=",".join(DATA))
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()
    fams = resolve_families(args.families)
    print("| family | data | fit s | samples/s | NLL | NLL - H | kind | on-support | HQ | modes | W2 | W2 floor |")
    print("|---|---|---|---|---|---|---|---|---|---|---|---|")
    for name in args.data.split(","):
        for fam in fams:
            try:
                r = bench(fam, name, args.seed)
            except Exception as e:  # one family failing must not hide the others
                print(f"| {fam} | {name} | failed: {type(e).__name__}: {str(e)[:80]} |")
                continue
            print(f"| {fam} | {name} | {r['fit_s']:.1f} | {r['samples_per_s']:,.0f} | {fmt(r.get('nll'), '.3f')} | "
                  f"{fmt(r.get('gap'), '+.3f')} | {r.get('kind', 'none')} | {100 * r['on_support']:.1f}% | "
                  f"{fmt(r.get('hq') and 100 * r['hq'], '.1f')} | {r.get('modes', '-')} | {r['w2']:.3f} | "
                  f"{r['w2_floor']:.3f} |", flush=True)


if __name__ == "__main__":
    main()
