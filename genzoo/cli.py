"""The ``genzoo`` command line: compare, train, sample, score, impute, list.

Every user error becomes one line on stderr and a non-zero exit, never a traceback.
"""

from __future__ import annotations

import argparse
import json
import os
import sys

EXIT_USAGE = 2
EXIT_ERROR = 1


def _positive_int(text: str) -> int:
    try:
        v = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}") from None
    if v <= 0:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {v}")
    return v


def _hyperparameters(pairs: list[str] | None) -> dict:
    """``--set key=value`` pairs; values parsed as JSON where they parse (numbers, true, null)."""
    out = {}
    for p in pairs or []:
        if "=" not in p:
            raise ValueError(f"--set expects key=value, got {p!r}")
        k, v = p.split("=", 1)
        try:
            out[k.strip()] = json.loads(v)
        except json.JSONDecodeError:
            out[k.strip()] = v
    return out


def _load_data(spec: str, n: int, seed: int):
    """A built-in dataset name (sampled) or a path to a .csv/.npy/.parquet file."""
    import genzoo as gz

    if spec in gz.datasets.names():
        return gz.datasets.get(spec).sample(n, random_state=seed)
    if os.path.splitext(spec)[1] or os.path.sep in spec:
        return gz.datasets.load_file(spec)
    raise ValueError(f"unknown dataset {spec!r}: not a built-in ({', '.join(gz.datasets.names())}) "
                     "nor a path to a .csv/.npy/.parquet file")


def _write_array(path: str, X, header: list[str] | None = None) -> None:
    import numpy as np

    X = np.asarray(X)
    ext = os.path.splitext(path)[1].lower()
    tmp = path + ".tmp" + ext  # write then rename: a failed write leaves the old file intact
    if ext == ".npy":
        np.save(tmp, X)
    elif ext in (".csv", ".txt", ""):
        cols = header or [f"x{i}" for i in range(X.shape[1])] if X.ndim == 2 else ["value"]
        np.savetxt(tmp, X, delimiter=",", header=",".join(cols), comments="", fmt="%.8g")
    else:
        raise ValueError(f"cannot write {path!r}: use a .csv or .npy file name")
    os.replace(tmp, path)


def _cmd_list(args) -> int:
    import genzoo as gz

    print("families:")
    for name in gz.families():
        m = gz.make(name)
        caps = ",".join(sorted(m.capabilities))
        print(f"  {name:<17} likelihood={m.likelihood_kind:<8} {caps:<36} {type(m).summary}")
    print("datasets:")
    for name in gz.datasets.names():
        ds = gz.datasets.get(name)
        print(f"  {name:<17} {getattr(ds, 'description', '')}")
    return 0


def _cmd_train(args) -> int:
    import genzoo as gz
    from genzoo.params import validate_params

    hp = _hyperparameters(args.set)
    hp.setdefault("random_state", args.seed)
    model = gz.make(args.family, **hp)
    validate_params(model)  # a bad --set value fails before the data are read (fit checks again)
    X = _load_data(args.data, args.n, args.seed)
    model.fit(X)
    model.save(args.out)
    print(f"trained {args.family} on {X.shape[0]} x {X.shape[1]}; saved to {args.out}")
    return 0


def _cmd_sample(args) -> int:
    import genzoo as gz

    model = gz.load(args.model)
    opts = _hyperparameters(args.set)
    S = model.sample(args.n, random_state=args.seed, **opts)
    _write_array(args.out, S)
    print(f"wrote {len(S)} samples to {args.out}")
    return 0


def _cmd_score(args) -> int:
    import numpy as np

    import genzoo as gz

    model = gz.load(args.model)
    X = gz.datasets.load_file(args.data)
    lp = model.score_samples(X)
    if args.out:
        _write_array(args.out, lp[:, None], ["log_density"])
        print(f"wrote {len(lp)} log-densities (nats) to {args.out}; mean {np.mean(lp):.4f}")
    else:
        sys.stdout.write("\n".join(f"{v:.6f}" for v in lp) + "\n")
    return 0


def _cmd_impute(args) -> int:
    import numpy as np

    import genzoo as gz

    model = gz.load(args.model)
    X, cols = gz.datasets.load_file(args.data, return_columns=True, allow_nan=True)
    F = model.impute(X, random_state=args.seed)
    _write_array(args.out, F, cols)
    print(f"filled {int(np.isnan(X).sum())} missing value(s); wrote {args.out}")
    return 0


def _cmd_compare(args) -> int:
    from genzoo.compare import run_compare

    # this process has not run torch yet, so its workers can be forked (no re-import, seconds saved)
    run_compare(data=args.data, families=args.families, seeds=args.seeds, preset=args.preset,
                out=args.out, verbose=not args.quiet, workers=args.workers,
                start_method="fork" if sys.platform == "linux" else None)
    return 0


class _Parser(argparse.ArgumentParser):
    """argparse, but a usage error is one line (and exit 2), like every other genzoo error."""

    def error(self, message: str):
        self.exit(EXIT_USAGE, f"{self.prog}: error: {message} (see --help)\n")


def build_parser() -> argparse.ArgumentParser:
    p = _Parser(prog="genzoo", description="Every family of deep generative model, "
                                "trained on the same data and measured side by side.")
    sub = p.add_subparsers(dest="command", required=True, metavar="COMMAND")

    c = sub.add_parser("compare", help="train every family on the same data and write a report")
    c.add_argument("--data", default="ring", help="built-in dataset name or a .csv/.npy/.parquet file")
    c.add_argument("--families", default="core",
                   help="comma-separated family names, 'core' (5 families + gmm, kde) or 'all'")
    c.add_argument("--seeds", type=_positive_int, default=3, help="training seeds per family")
    c.add_argument("--preset", choices=["quick", "default", "thorough"], default="default",
                   help="training budget")
    c.add_argument("--out", default="genzoo-compare", help="report folder (finished runs are reused)")
    c.add_argument("--workers", type=_positive_int, default=None,
                   help="runs trained side by side (default: 2 where there are 2+ cores)")
    c.add_argument("--quiet", action="store_true", help="no progress bars")
    c.set_defaults(func=_cmd_compare)

    t = sub.add_parser("train", help="fit one family and save the model")
    t.add_argument("family")
    t.add_argument("--data", default="ring", help="built-in dataset name or a data file")
    t.add_argument("--out", required=True, help="model file to write")
    t.add_argument("-n", type=_positive_int, default=10_000, help="points to draw from a built-in dataset")
    t.add_argument("--seed", type=int, default=0)
    t.add_argument("--set", action="append", metavar="KEY=VALUE", help="a hyperparameter (repeatable)")
    t.set_defaults(func=_cmd_train)

    s = sub.add_parser("sample", help="draw samples from a saved model")
    s.add_argument("model")
    s.add_argument("-n", type=_positive_int, default=1000)
    s.add_argument("--out", required=True, help=".csv or .npy file to write")
    s.add_argument("--seed", type=int, default=None)
    s.add_argument("--set", action="append", metavar="KEY=VALUE", help="a sampling option, e.g. steps=50")
    s.set_defaults(func=_cmd_sample)

    sc = sub.add_parser("score", help="log-density (nats) of each row of a data file")
    sc.add_argument("model")
    sc.add_argument("data")
    sc.add_argument("--out", default=None, help="write to a file instead of stdout")
    sc.set_defaults(func=_cmd_score)

    im = sub.add_parser("impute", help="fill the empty / NaN cells of a data file")
    im.add_argument("model")
    im.add_argument("data")
    im.add_argument("--out", required=True)
    im.add_argument("--seed", type=int, default=None)
    im.set_defaults(func=_cmd_impute)

    ls = sub.add_parser("list", help="families, datasets and capabilities")
    ls.set_defaults(func=_cmd_list)
    return p


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    from sklearn.exceptions import NotFittedError

    from genzoo.errors import UnsupportedError

    try:
        return args.func(args)
    except KeyboardInterrupt:
        print("genzoo: interrupted (finished results are kept)", file=sys.stderr)
        return 130
    except (ValueError, UnsupportedError, NotFittedError, FileNotFoundError, PermissionError,
            IsADirectoryError, NotADirectoryError) as e:
        msg = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        print(f"genzoo {args.command}: error: {msg}", file=sys.stderr)
        return EXIT_ERROR
    except OSError as e:
        print(f"genzoo {args.command}: error: {e.strerror or e} ({getattr(e, 'filename', '')})", file=sys.stderr)
        return EXIT_ERROR
    except Exception as e:  # anything else (a bug, a torch failure): still one line, unless debugging
        if os.environ.get("GENZOO_DEBUG"):
            raise
        msg = str(e).strip().splitlines()[0] if str(e).strip() else ""
        print(f"genzoo {args.command}: error: {type(e).__name__}: {msg} (GENZOO_DEBUG=1 shows the traceback)",
              file=sys.stderr)
        return EXIT_ERROR


if __name__ == "__main__":
    sys.exit(main())
