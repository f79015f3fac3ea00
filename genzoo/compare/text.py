"""``genzoo compare`` on text: the string models side by side on one list of words.

Data: a built-in word list (``names``: its fixed split, training + validation words to fit, the
test words to measure) or a ``.txt`` file, one string per line (a fixed permutation, seed 0: a
tenth of the strings, at most 1,000, held out as the test set).

Rows: ``autoregressive`` (the causal transformer), ``bigram`` (the autoregressive family's
counting baseline, ``text_model='bigram'``) and ``masked_diffusion``; a family asked for that
cannot model strings gets a row saying so. Training budgets (``text_steps``) scale with the
preset as on arrays (``quick`` 8%, ``default`` 35%, ``thorough`` the family's defaults).

Measured per run: test nats per token (characters plus the end token) and bits per character,
fit time and steps; for 2,000 samples novelty and the length and character-bigram total
variation against the test words, each beside its floor (the same TV for real words); NFE and
samples per second (masked diffusion also at 4, 8, 16 and ``max_len`` unmasking steps, first
seed); infill exact-match with 1-3 masked characters of held-out words and, for exact models,
``-log P(true fill | rest)``. Written: ``results.json`` and ``report.html`` in ``out`` (each run
cached under ``out/runs`` and reused unless ``force``).
"""

from __future__ import annotations

import hashlib
import html
import json
import os
import time
from typing import Any

import numpy as np

import genzoo as gz
from genzoo.compare.runner import PRESETS, check_out_dir, code_hash, environment
from genzoo.compare.tables import _atomic_write, _json_safe

#: the text rows: name -> (family, fixed hyperparameters)
TEXT_ROWS: dict[str, tuple[str, dict]] = {
    "autoregressive": ("autoregressive", {}),
    "bigram": ("autoregressive", {"text_model": "bigram"}),
    "masked_diffusion": ("masked_diffusion", {}),
}
N_SAMPLES = 2000
INFILL_WORDS = {"quick": 60, "default": 150, "thorough": 200}


def is_text_data(spec: str) -> bool:
    """Whether ``--data spec`` names text: a built-in word list or a ``.txt`` file."""
    return spec in gz.datasets.names("text") or str(spec).lower().endswith(".txt")


def load_text(spec: str) -> tuple[str, list[str], list[str], str]:
    """``(name, train words, test words, fingerprint)`` for a built-in word list or a .txt file."""
    if spec in gz.datasets.names("text"):
        ds = gz.datasets.get(spec)
        return spec, ds.split("train") + ds.split("val"), ds.split("test"), f"builtin:{spec}"
    if not os.path.exists(spec):
        raise ValueError(f"no such file: {spec}")
    words = gz.datasets.load_file(spec)
    if len(words) < 20:
        raise ValueError(f"{spec} has only {len(words)} strings; compare needs at least 20")
    perm = np.random.default_rng(0).permutation(len(words))
    n_test = min(1000, max(2, len(words) // 10))
    digest = hashlib.sha256("\n".join(words).encode()).hexdigest()[:16]
    return (os.path.basename(spec), [words[i] for i in perm[n_test:]], [words[i] for i in perm[:n_test]],
            f"file:{digest}")


def resolve_text_rows(spec: str | list[str] | None) -> list[str]:
    """'core', 'all' or None: every text row; else the names given (families that cannot model
    text stay in, to be reported as such; unknown names raise ValueError)."""
    if spec is None or spec in ("core", "all"):
        return list(TEXT_ROWS)
    names = [s.strip() for s in (spec.split(",") if isinstance(spec, str) else spec) if s.strip()]
    unknown = [n for n in names if n not in TEXT_ROWS and n not in gz.families()]
    if unknown or not names:
        raise ValueError(f"unknown famil{'ies' if len(unknown) > 1 else 'y'} {unknown}; for text choose from "
                         f"{', '.join(TEXT_ROWS)}")
    return list(dict.fromkeys(names))


def _row_params(row: str, budget: float, seed: int, overrides: dict | None, device: str | None) -> tuple[str, dict]:
    fam, fixed = TEXT_ROWS.get(row, (row, {}))
    defaults = gz.make(fam).get_params()
    p: dict[str, Any] = {"random_state": seed, **fixed}
    if "text_steps" in defaults and fixed.get("text_model") != "bigram":
        p["text_steps"] = max(50, int(round(defaults["text_steps"] * budget)))
    if device is not None and "device" in defaults:
        p["device"] = device
    p.update(overrides or {})
    return fam, p


def _run(row: str, fam: str, params: dict, train: list[str], test: list[str], preset: str,
         detail: bool) -> dict[str, Any]:
    """Fit one text row and measure it (see the module docstring); errors become the record's ``error``."""
    from genzoo.families._text import TextFamily
    from genzoo.metrics.text import bits_per_char, infill_scores, nats_per_token, sample_stats

    rec: dict[str, Any] = {"row": row, "family": fam, "params": params, "seed": params["random_state"]}
    model = gz.make(fam, **params)
    if not isinstance(model, TextFamily):
        rec["error"] = f"{fam} cannot model text (the string models are {', '.join(TEXT_ROWS)})"
        return rec
    try:
        t0 = time.perf_counter()
        model.fit(train)
        rec["fit_s"] = time.perf_counter() - t0
        rec["steps"] = int(getattr(model, "n_steps_", 0)) if model._text_trained else 0
        t0 = time.perf_counter()
        lp = model.score_samples(test)
        rec["score_s"] = time.perf_counter() - t0
        rec["nats_per_token"], rec["bits_per_char"] = nats_per_token(lp, test), bits_per_char(lp, test)
        rec["likelihood"] = "ELBO (bound)" if model.likelihood_kind == "bound" else model.likelihood_kind
        samplers = [("default", {})]
        if detail and fam == "masked_diffusion":
            L = model.text_spec_.max_len
            samplers += [(f"steps={s}", {"steps": s}) for s in sorted({s for s in (4, 8, 16) if s < L} | {L})]
        rec["samplers"] = []
        for label, opts in samplers:
            t0 = time.perf_counter()
            S = model.sample(N_SAMPLES, random_state=1, **opts)
            dt = time.perf_counter() - t0
            st = sample_stats(S, test, pool=train, train=train)
            rec["samplers"].append({"sampler": label, "nfe": model.last_nfe_, "samples_per_s": N_SAMPLES / dt,
                                    **st, "examples": S[:12]})
        if detail:
            inf = infill_scores(model, test, n_words=INFILL_WORDS.get(preset, 150),
                                conditional_nll=model.likelihood_kind == "exact")
            rec["infill"] = {str(k): v for k, v in inf.items()}
    except Exception as e:  # noqa: BLE001 -- one failed run is reported, the others still run
        rec["error"] = f"{type(e).__name__}: {e}".splitlines()[0]
    return rec


def run_text_compare(data: str = "names", families: str | list[str] | None = "core", seeds: int = 1,
                     preset: str = "default", out: str = "genzoo-compare", verbose: bool = False,
                     params: dict[str, dict] | None = None, device: str | None = None,
                     force: bool = False) -> list[dict]:
    """Run (or resume) the text comparison; writes ``out/results.json`` and ``out/report.html``."""
    if preset not in PRESETS:
        raise ValueError(f"unknown preset {preset!r}; choose from: {', '.join(PRESETS)}")
    if isinstance(seeds, bool) or not isinstance(seeds, (int, np.integer)) or seeds < 1:
        raise ValueError(f"--seeds must be a positive integer; got {seeds!r}")
    rows = resolve_text_rows(families)
    unknown = set(params or {}) - set(rows)
    if unknown:
        raise ValueError(f"--set names {sorted(unknown)[0]}, which is not among the rows compared ({', '.join(rows)})")
    name, train, test, fingerprint = load_text(data)
    check_out_dir(out)
    started = time.perf_counter()
    budget = float(PRESETS[preset]["budget"])
    records = []
    for row in rows:
        for seed in range(int(seeds)):
            fam, p = _row_params(row, budget, seed, (params or {}).get(row), device)
            key = hashlib.sha256(json.dumps([row, p, fingerprint, preset, code_hash()], sort_keys=True,
                                            default=str).encode()).hexdigest()[:12]
            run_dir = os.path.join(out, "runs", f"text-{row}-seed{seed}-{key}")
            path = os.path.join(run_dir, "record.json")
            if not force and os.path.exists(path):
                with open(path) as f:
                    records.append(json.load(f))
                continue
            if verbose:
                print(f"genzoo compare: {row} seed {seed} on {name}", flush=True)
            rec = _run(row, fam, p, train, test, preset, detail=seed == 0)
            os.makedirs(run_dir, exist_ok=True)
            _write_json(path, rec)
            records.append(rec)
    meta = {"data": name, "kind": "text", "preset": preset, "seeds": int(seeds), "rows": rows,
            "n_train": len(train), "n_test": len(test), "wall_s": time.perf_counter() - started,
            "genzoo_version": gz.__version__, "code": code_hash(), "environment": environment(device)}
    _write_json(os.path.join(out, "results.json"), {"meta": meta, "records": records})
    write_text_report(out, records, meta)
    return records


def _write_json(path: str, obj) -> None:
    _atomic_write(path, json.dumps(_json_safe(obj), indent=1))


def _mean_sd(vals: list[float], fmt: str) -> str:
    vals = [v for v in vals if v is not None]
    if not vals:
        return "-"
    return format(np.mean(vals), fmt) + (f" ± {format(np.std(vals, ddof=1), fmt)}" if len(vals) > 1 else "")


def text_summary(records: list[dict]) -> list[dict]:
    """One row per text row: means over seeds of the likelihood and the default sampler's figures."""
    out = []
    for row in dict.fromkeys(r["row"] for r in records):
        rs = [r for r in records if r["row"] == row]
        ok = [r for r in rs if "error" not in r]
        first = [s for r in ok for s in r["samplers"] if s["sampler"] == "default"]
        out.append({"row": row, "runs": len(rs), "errors": sorted({r["error"] for r in rs if "error" in r}),
                    "nats_per_token": _mean_sd([r["nats_per_token"] for r in ok], ".3f"),
                    "bits_per_char": _mean_sd([r["bits_per_char"] for r in ok], ".3f"),
                    "likelihood": ok[0]["likelihood"] if ok else "-",
                    "fit_s": _mean_sd([r["fit_s"] for r in ok], ".0f"),
                    "nfe": _mean_sd([s["nfe"] for s in first], ".0f"),
                    "samples_per_s": _mean_sd([s["samples_per_s"] for s in first], ".0f"),
                    "novelty": _mean_sd([s["novelty"] for s in first], ".2f"),
                    "length_tv": _mean_sd([s["length_tv"] for s in first], ".3f"),
                    "bigram_tv": _mean_sd([s["bigram_tv"] for s in first], ".3f")})
    return out


def text_terminal_table(records: list[dict]) -> str:
    cols = ["row", "nats_per_token", "bits_per_char", "fit_s", "nfe", "samples_per_s", "novelty",
            "length_tv", "bigram_tv"]
    summ = text_summary(records)
    rows = [[str(s[c]) if not s["errors"] or c == "row" else ("error" if c == "nats_per_token" else "")
             for c in cols] for s in summ]
    w = [max(len(c), *(len(r[i]) for r in rows)) for i, c in enumerate(cols)]
    lines = ["  ".join(c.ljust(w[i]) for i, c in enumerate(cols))]
    lines += ["  ".join(v.ljust(w[i]) for i, v in enumerate(r)) for r in rows]
    errs = [f"{s['row']}: {e}" for s in summ for e in s["errors"]]
    return "\n".join(lines + errs)


def _table(head: list[str], body: list[list[Any]]) -> str:
    esc = html.escape
    return ("<table><tr>" + "".join(f"<th>{esc(h)}</th>" for h in head) + "</tr>"
            + "".join("<tr>" + "".join(f"<td>{esc(str(v))}</td>" for v in r) + "</tr>" for r in body) + "</table>")


def write_text_report(out: str, records: list[dict], meta: dict) -> str:
    """``out/report.html``: the likelihood table, the samplers (with example strings), infill."""
    from genzoo.report import CSS

    esc = html.escape
    summ = text_summary(records)
    parts = [f"<!doctype html><html><head><meta charset='utf-8'><title>genzoo compare: {esc(meta['data'])}"
             f"</title><style>{CSS}</style></head><body><h1>genzoo compare: {esc(meta['data'])} (text)</h1>",
             f"<p class=sub>{meta['n_train']} training strings, {meta['n_test']} test strings; preset "
             f"<code>{esc(meta['preset'])}</code>, {meta['seeds']} seed(s); genzoo {esc(meta['genzoo_version'])}.</p>",
             "<section><h2>Likelihood</h2><p class=note>Test nats per token (characters plus the end token) and "
             "bits per character, mean ± sd over seeds. Exact for the autoregressive rows; masked diffusion "
             "reports its ELBO, an upper bound on its NLL.</p>",
             _table(["model", "nats/token", "bits/char", "likelihood", "fit s"],
                    [[s["row"], s["nats_per_token"], s["bits_per_char"], s["likelihood"], s["fit_s"]]
                     for s in summ if not s["errors"]]), "</section>"]
    body, examples = [], []
    for r in records:
        if "error" in r or r["seed"] != 0:
            continue
        for s in r["samplers"]:
            label = r["row"] + ("" if s["sampler"] == "default" else f" ({s['sampler']})")
            body.append([label, s["nfe"], f"{s['samples_per_s']:.0f}", f"{s['novelty']:.2f}",
                         f"{s['length_tv']:.3f} ({s['length_tv_floor']:.3f})",
                         f"{s['bigram_tv']:.3f} ({s['bigram_tv_floor']:.3f})"])
            examples.append(f"<p><b>{esc(label)}</b>: {esc(' '.join(s['examples']))}</p>")
    parts += [f"<section><h2>Samples</h2><p class=note>{N_SAMPLES} samples per sampler (first seed): network "
              "evaluations per string, samples per second, novelty (share not in the training set), and the "
              "total variation of the length and character-bigram distributions against the test strings, "
              "each beside its floor (the same TV for as many real strings).</p>",
              _table(["sampler", "NFE", "samples/s", "novelty", "length TV (floor)", "bigram TV (floor)"], body),
              *examples, "</section>"]
    inf = []
    for r in records:
        if "error" in r or r["seed"] != 0 or "infill" not in r:
            continue
        i = r["infill"]
        nll = " / ".join(f"{i[k]['conditional_nll']:.2f}" for k in ("1", "2") if "conditional_nll" in i[k]) or "-"
        inf.append([r["row"], *(f"{i[k]['exact_match']:.2f}" for k in ("1", "2", "3")), nll])
        floor = " / ".join(f"{i[k]['floor']:.4f}" for k in ("1", "2", "3"))
    if inf:
        parts += ["<section><h2>Infill</h2><p class=note>Held-out words with 1, 2 or 3 random characters "
                  f"masked: share of fills equal to the word (guessing from character frequencies: {floor}); "
                  "for exact models, the model's own -log P(true fill | rest) in nats.</p>",
                  _table(["model", "1 masked", "2 masked", "3 masked", "-log P(truth), 1 / 2"], inf), "</section>"]
    errs = [f"<p class=bad>{esc(s['row'])}: {esc(e)}</p>" for s in summ for e in s["errors"]]
    parts += errs + ["</body></html>"]
    path = os.path.join(out, "report.html")
    _atomic_write(path, "\n".join(parts))
    return path


__all__ = ["run_text_compare", "is_text_data", "load_text", "text_summary", "text_terminal_table", "TEXT_ROWS"]
