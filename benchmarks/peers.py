"""genzoo beside the specialist libraries, on the same data, split, network and wall-clock, in one run.

    python benchmarks/peers.py                  # grid25, every pair whose peer is installed
    python benchmarks/peers.py --quick          # a third of the budgets (a smoke run)
    python benchmarks/peers.py --only flow,baselines --data ring

Pairs (a peer that is not installed is skipped, and the table says so):

- ``flow`` vs zuko's NSF and MAF (``pip install -e '.[bench]'``): each peer trains for the
  wall-clock genzoo's flow took at its defaults, same standardised data, batch 512, Adam.
- ``flow_matching`` vs torchcfm's exact-OT conditional flow matcher (``pip install --no-deps
  torchcfm==1.0.7``: its own requirements pull another torch), driving the same velocity MLP and
  EMA as genzoo's, for the same wall-clock; both sampled and scored with the same ODE solvers.
- ``diffusion`` vs diffusers' schedulers (DDPM, DDIM, DPM-Solver++ multistep) driving genzoo's
  trained network (its continuous cosine schedule discretised to 1,000 steps), at equal network
  evaluations, and a textbook DDPM (diffusers' linear betas, noise prediction) trained with the
  same MLP for the same wall-clock.
- ``baselines``: genzoo's gmm and kde vs scikit-learn's GaussianMixture and KernelDensity used
  directly (same number of components; Scott's bandwidth).

Figures: NLL - H (nats above the true entropy, 10,000 test rows), on-support share (5,000
samples whose true log-density exceeds the 1% quantile of real points'), samples per second
(100,000 draws after a warm-up), training steps per second and fit time. Ratios are genzoo over
peer for on-support and speed, and peer gap over genzoo gap for the likelihood: above 1 favours
genzoo. Results and the command line go in benchmarks/RESULTS.md, section ``peers``.
"""

from __future__ import annotations

import argparse
import os
import platform
import sys
import time

import numpy as np
import torch

import genzoo as gz


# ----------------------------------------------------------------------------- shared measurements
class Bench:
    """The data, the truth and the measurements every pair shares."""

    def __init__(self, data: str, n_train: int = 10_000):
        self.ds = gz.datasets.get(data)
        self.X = self.ds.sample(n_train, random_state=0).astype(np.float32)
        self.Xte = self.ds.sample(10_000, random_state=7)
        self.H = float(-np.mean(self.ds.log_prob(self.ds.sample(200_000, random_state=11))))
        self.thr = float(np.quantile(self.ds.log_prob(self.ds.sample(20_000, random_state=5)), 0.01))
        self.loc, self.scale = self.X.mean(0), self.X.std(0)
        self.rows: list[dict] = []

    def z(self, X) -> torch.Tensor:
        return torch.as_tensor((np.asarray(X) - self.loc) / self.scale, dtype=torch.float32)

    def x(self, Z: torch.Tensor) -> np.ndarray:
        return Z.detach().double().numpy() * self.scale + self.loc

    def gap(self, log_prob_z) -> float:
        """NLL - H for a log-density in standardised units (the Jacobian of the scaling added)."""
        lp = np.concatenate([_numpy(log_prob_z(self.z(self.Xte[i:i + 2500]))) for i in range(0, len(self.Xte), 2500)])
        return float(-(lp - np.log(self.scale).sum()).mean() - self.H)

    def gap_of(self, model) -> float:
        """NLL - H of a genzoo model (its scores are already in the data's units)."""
        return float(-np.mean(model.score_samples(self.Xte)) - self.H)

    def support(self, S) -> float:
        return float(np.mean(self.ds.log_prob(np.asarray(S)[:5000]) > self.thr))

    @staticmethod
    def speed(draw, n: int = 100_000) -> float:
        with torch.no_grad():
            draw(1000)
            t0 = time.perf_counter()
            draw(n)
        return n / (time.perf_counter() - t0)

    def add(self, pair: str, who: str, **figures) -> None:
        self.rows.append({"pair": pair, "who": who, **figures})
        shown = ", ".join(f"{k}={v:.4g}" if isinstance(v, float) else f"{k}={v}" for k, v in figures.items())
        print(f"  {pair:<15} {who:<34} {shown}", flush=True)


def _numpy(a) -> np.ndarray:
    return a.detach().double().numpy() if isinstance(a, torch.Tensor) else np.asarray(a, float)


def train_for(seconds: float, step, max_steps: int = 10**7) -> int:
    """Call ``step()`` until ``seconds`` of wall-clock have passed; returns the steps run."""
    t0, n = time.perf_counter(), 0
    while time.perf_counter() - t0 < seconds and n < max_steps:
        step()
        n += 1
    return n


def batches(Z: torch.Tensor, size: int, seed: int = 0):
    g = torch.Generator().manual_seed(seed)
    while True:
        for idx in torch.randperm(len(Z), generator=g).split(size):
            if len(idx) == size:
                yield Z[idx]


def fit_gz(b: Bench, family: str, scale: float, **params):
    m = gz.make(family, random_state=0, verbose=0, **params)
    if scale != 1.0:
        from genzoo.compare.runner import scaled_budgets

        m.set_params(**scaled_budgets(family, scale))
    t0 = time.perf_counter()
    m.fit(b.X)
    return m, time.perf_counter() - t0


# ----------------------------------------------------------------------------- flow vs zuko
def pair_flow(b: Bench, scale: float) -> None:
    m, T = fit_gz(b, "flow", scale)
    b.add("flow", "genzoo flow", gap=b.gap_of(m), support=b.support(m.sample(5000, random_state=1)),
          sps=b.speed(lambda n: m.sample(n, random_state=2)), steps_s=m.n_steps_ / T, fit_s=T)
    try:
        import zuko
    except ImportError:
        b.add("flow", "zuko", skipped="not installed (pip install -e '.[bench]')")
        return
    nsf = ("zuko NSF (5 transforms, 2x128)", lambda: zuko.flows.NSF(2, transforms=5, hidden_features=(128, 128)))
    maf = ("zuko MAF (5 transforms, 2x128)", lambda: zuko.flows.MAF(2, transforms=5, hidden_features=(128, 128)))
    for name, make in (nsf, maf):
        _zuko_flow(b, name, make, T)


def _zuko_flow(b: Bench, name: str, make, seconds: float) -> None:
    """Train a zuko flow by maximum likelihood for ``seconds`` and measure it."""
    torch.manual_seed(0)
    flow = make()
    opt = torch.optim.Adam(flow.parameters(), lr=1e-3)
    data = batches(b.z(b.X), 512)

    def step():
        loss = -flow().log_prob(next(data)).mean()
        opt.zero_grad()
        loss.backward()
        opt.step()

    n = train_for(seconds, step)
    flow.eval()
    b.add("flow", name, gap=b.gap(lambda z: flow().log_prob(z)), support=b.support(b.x(flow().sample((5000,)))),
          sps=b.speed(lambda k: flow().sample((k,))), steps_s=n / seconds, fit_s=seconds)


# ----------------------------------------------------------------------------- flow matching vs torchcfm
def pair_flow_matching(b: Bench, scale: float) -> None:
    from genzoo.nn.velocity import VelocityModel, velocity_net
    from genzoo.samplers.ode import integrate, log_likelihood, log_time

    m, T = fit_gz(b, "flow_matching", scale)
    b.add("flow_matching", "genzoo flow_matching", gap=b.gap_of(m),
          support=b.support(m.sample(5000, random_state=1)), sps=b.speed(lambda n: m.sample(n, nfe=20, random_state=2)),
          steps_s=m.n_steps_ / T, fit_s=T)
    try:
        from torchcfm.conditional_flow_matching import ExactOptimalTransportConditionalFlowMatcher
    except ImportError:
        b.add("flow_matching", "torchcfm", skipped="not installed (pip install --no-deps torchcfm==1.0.7)")
        return
    torch.manual_seed(0)
    p = m.get_params()
    model = VelocityModel(velocity_net(2, 0, hidden=p["hidden"], layers=p["layers"], time_dim=p["time_dim"],
                                       time_scale=p["time_scale"], fourier_features=p["fourier_features"],
                                       fourier_scale=p["fourier_scale"]), ema_decay=p["ema_decay"])
    cfm = ExactOptimalTransportConditionalFlowMatcher(sigma=0.0)
    opt = torch.optim.Adam(model.parameters(), lr=p["lr"])
    data = batches(b.z(b.X), p["batch_size"])

    count = iter(range(10**9))

    def step():
        x1 = next(data)
        t, xt, ut = cfm.sample_location_and_conditional_flow(torch.randn_like(x1), x1)
        loss = (model.net(xt, t) - ut).pow(2).mean()
        opt.zero_grad()
        loss.backward()
        opt.step()
        model.ema.update(next(count))

    n = train_for(T, step)
    f = lambda x, t: model(x, t, ema=True)  # noqa: E731

    def draw(k: int, steps: int = 50) -> torch.Tensor:
        return integrate(log_time(f), torch.randn(k, 2), 0.0, 1.0, method="heun", steps=steps)[0]

    def logp(z):
        return log_likelihood(log_time(f), z, 1.0, 0.0, method="rk4", steps=64)[0]

    b.add("flow_matching", "torchcfm exact-OT CFM, same MLP", gap=b.gap(logp), support=b.support(b.x(draw(5000))),
          sps=b.speed(lambda k: draw(k, 10)), steps_s=n / T, fit_s=T)


# ----------------------------------------------------------------------------- diffusion vs diffusers
def pair_diffusion(b: Bench, scale: float) -> None:
    m, T = fit_gz(b, "diffusion", scale)
    for k in (10, 20):
        b.add("diffusion", f"genzoo DPM-Solver++ 2M, {k} NFE", support=b.support(m.sample(5000, nfe=k, random_state=1)),
              sps=b.speed(lambda n, k=k: m.sample(n, nfe=k, random_state=2), 20_000), nfe=k)
    t0 = time.perf_counter()
    S = m.sample(5000, random_state=1)
    b.add("diffusion", "genzoo ancestral, 250 NFE (default)", gap=b.gap_of(m), support=b.support(S),
          sps=5000 / (time.perf_counter() - t0), steps_s=m.n_steps_ / T, fit_s=T, nfe=250)
    try:
        from diffusers import DDIMScheduler, DDPMScheduler, DPMSolverMultistepScheduler
    except ImportError:
        b.add("diffusion", "diffusers", skipped="not installed (pip install -e '.[bench]')")
        return
    # genzoo's continuous cosine schedule on diffusers' 1,000 discrete steps: alpha_bar_i = sigmoid(lambda(t_i))
    t = torch.arange(1, 1001, dtype=torch.float64) / 1000
    lam = m._noise_schedule().log_snr(t)
    abar = torch.sigmoid(lam)
    betas = (1 - abar / torch.cat([torch.ones(1, dtype=torch.float64), abar[:-1]])).clamp(max=0.999).numpy()
    eps_fn = m._eps_fn(None, 1.0)[0]

    def run(sched, n: int, steps: int) -> np.ndarray:
        sched.set_timesteps(steps)
        g = torch.Generator().manual_seed(1)
        x = torch.randn(n, 2, generator=g) * float(sched.init_noise_sigma)
        with torch.no_grad():
            for ts in sched.timesteps:
                eps = eps_fn(sched.scale_model_input(x, ts), lam[int(ts)].float())
                x = sched.step(eps, ts, x, generator=g).prev_sample
        return b.x(x)

    common = {"num_train_timesteps": 1000, "trained_betas": betas, "prediction_type": "epsilon"}
    for name, sched, steps in (("diffusers DDPM, 1000 NFE", DDPMScheduler(**common, clip_sample=False), 1000),
                               ("diffusers DDIM, 20 NFE", DDIMScheduler(**common, clip_sample=False), 20),
                               ("diffusers DPM-Solver++ 2M, 10 NFE", DPMSolverMultistepScheduler(**common), 10),
                               ("diffusers DPM-Solver++ 2M, 20 NFE", DPMSolverMultistepScheduler(**common), 20)):
        t0 = time.perf_counter()
        S = run(sched, 5000, steps)
        b.add("diffusion", name + " (genzoo's net)", support=b.support(S), sps=5000 / (time.perf_counter() - t0),
              nfe=steps)
    # a textbook DDPM: diffusers' linear betas, noise prediction, the same MLP, the same wall-clock
    from genzoo.families.diffusion import Denoiser

    p = m.get_params()
    torch.manual_seed(0)
    net = Denoiser(2, 0, hidden=p["hidden"], layers=p["layers"], time_dim=p["time_dim"], time_scale=p["time_scale"],
                   label_dim=p["label_dim"], fourier_features=p["fourier_features"], fourier_scale=p["fourier_scale"])
    sched = DDPMScheduler(num_train_timesteps=1000, clip_sample=False)
    ab = sched.alphas_cumprod.double()
    lam_lin = (torch.log(ab) - torch.log1p(-ab)).float()
    opt = torch.optim.Adam(net.parameters(), lr=p["lr"])
    data = batches(b.z(b.X), p["batch_size"])

    count = iter(range(10**9))

    def step():
        x0 = next(data)
        ts = torch.randint(0, 1000, (len(x0),))
        noise = torch.randn_like(x0)
        loss = (net(sched.add_noise(x0, noise, ts), lam_lin[ts]) - noise).pow(2).mean()
        opt.zero_grad()
        loss.backward()
        opt.step()
        net.ema.update(next(count))

    n = train_for(T, step)
    eps_lin = lambda x, ts: net(x, lam_lin[int(ts)].expand(len(x)), ema=True)  # noqa: E731
    sched.set_timesteps(1000)
    g = torch.Generator().manual_seed(1)
    x = torch.randn(5000, 2, generator=g)
    with torch.no_grad():
        for ts in sched.timesteps:
            x = sched.step(eps_lin(x, ts), ts, x, generator=g).prev_sample
    b.add("diffusion", "textbook DDPM (diffusers linear betas), 1000 NFE", support=b.support(b.x(x)),
          steps_s=n / T, fit_s=T)


# ----------------------------------------------------------------------------- baselines vs scikit-learn
def pair_baselines(b: Bench, scale: float) -> None:
    from sklearn.mixture import GaussianMixture
    from sklearn.neighbors import KernelDensity

    for family in ("gmm", "kde"):
        _baseline(b, family, GaussianMixture, KernelDensity)


def _baseline(b: Bench, family: str, GaussianMixture, KernelDensity) -> None:
    m, T = fit_gz(b, family, 1.0)
    b.add(family, f"genzoo {family}", gap=b.gap_of(m), support=b.support(m.sample(5000, random_state=1)),
          sps=b.speed(lambda n: m.sample(n, random_state=2)), fit_s=T)
    Z = b.z(b.X).double().numpy()
    t0 = time.perf_counter()
    if family == "gmm":
        k = int(getattr(m, "n_components_", 10))
        peer = GaussianMixture(n_components=k, random_state=0).fit(Z)
        who, draw = f"sklearn GaussianMixture({k})", lambda n: peer.sample(n)[0]
    else:
        bw = len(Z) ** (-1 / 6)  # Scott's rule in d = 2 on standardised data
        peer = KernelDensity(bandwidth=bw).fit(Z)
        who, draw = f"sklearn KernelDensity(Scott {bw:.3f})", lambda n: peer.sample(n, random_state=2)
    T2 = time.perf_counter() - t0
    b.add(family, who, gap=b.gap(lambda z: peer.score_samples(z.double().numpy())),
          support=b.support(b.x(torch.as_tensor(np.asarray(draw(5000))))), sps=b.speed(draw), fit_s=T2)


PAIRS = {"flow": pair_flow, "flow_matching": pair_flow_matching, "diffusion": pair_diffusion,
         "baselines": pair_baselines}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", default="grid25", help="a built-in 2-D dataset with an exact density (default: grid25)")
    ap.add_argument("--only", default=",".join(PAIRS), help="comma-separated pairs (default: all)")
    ap.add_argument("--quick", action="store_true", help="a third of every training budget (a smoke run)")
    args = ap.parse_args(argv)
    torch.set_num_threads(min(2, os.cpu_count() or 1))
    print(f"# {' '.join(['python', 'benchmarks/peers.py', *sys.argv[1:]])}")
    print(f"# python {platform.python_version()}, torch {torch.__version__}, {os.cpu_count()} CPUs, "
          f"{torch.get_num_threads()} threads, data {args.data}, entropy measured once")
    b = Bench(args.data)
    for name in args.only.split(","):
        if name not in PAIRS:
            raise SystemExit(f"unknown pair {name!r}; choose from {', '.join(PAIRS)}")
        PAIRS[name](b, 1 / 3 if args.quick else 1.0)
    print_table(b.rows)
    return 0


def _cell(r: dict, key: str, fmt: str) -> str:
    return fmt.format(r[key]) if key in r else "-"


def print_table(rows: list[dict]) -> None:
    """The markdown table of every measurement, then genzoo-over-peer ratios."""
    print("\n| pair | who | NLL - H | on-support | samples/s | train steps/s | fit s |")
    print("|---|---|---|---|---|---|---|")
    for r in rows:
        if "skipped" in r:
            print(f"| {r['pair']} | {r['who']} | skipped: {r['skipped']} | | | | |")
            continue
        print(f"| {r['pair']} | {r['who']} | {_cell(r, 'gap', '{:+.3f}')} | {_cell(r, 'support', '{:.1%}')} | "
              f"{_cell(r, 'sps', '{:,.0f}')} | {_cell(r, 'steps_s', '{:.0f}')} | {_cell(r, 'fit_s', '{:.0f}')} |")
    print("\nratios, genzoo's best over each peer (> 1 favours genzoo; for the gap, peer's over genzoo's):")
    for pair in dict.fromkeys(r["pair"] for r in rows):
        mine = [r for r in rows if r["pair"] == pair and "skipped" not in r and r["who"].startswith("genzoo")]
        for peer in rows:
            if peer["pair"] == pair and "skipped" not in peer and not peer["who"].startswith("genzoo"):
                print(f"  {pair}: vs {peer['who']}: " + (", ".join(_ratios(mine, peer)) or "nothing comparable"))


def _ratios(mine: list[dict], peer: dict) -> list[str]:
    """genzoo's best over the peer per figure; samplers compare at equal NFE where genzoo ran that NFE."""
    same = [o for o in mine if "nfe" in peer and o.get("nfe") == peer["nfe"]]
    mine = same or mine
    parts = []
    for key, label in (("gap", "likelihood gap"), ("support", "on-support"), ("sps", "samples/s"),
                       ("steps_s", "train steps/s")):
        ours = [o[key] for o in mine if key in o]
        if key in peer and ours:
            if key == "gap":
                ratio = max(peer[key], 1e-4) / max(min(ours), 1e-4)
            else:
                ratio = max(ours) / max(peer[key], 1e-12)
            parts.append(f"{label} {ratio:.2f}x")
    return parts
    return 0


if __name__ == "__main__":
    sys.exit(main())
