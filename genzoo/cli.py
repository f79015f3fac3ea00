"""The ``genzoo`` command line: compare, train, sample, score, impute, list.

Results go to stdout; progress bars, warnings and errors to stderr. Every error is one line on
stderr and a non-zero exit, never a traceback (``--debug`` prints it). Misspelt commands,
options, families, datasets and hyperparameters get a did-you-mean suggestion.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import sys

EXIT_USAGE = 2
EXIT_ERROR = 1
#: files the CLI writes (an extension-less name, or .txt, is written as CSV)
TABLE_EXTS = (".csv", ".npy", ".parquet")


def _did_you_mean(word: str, choices) -> str:
    from genzoo.errors import did_you_mean

    return did_you_mean(word, choices)


# ----------------------------------------------------------------------------- arguments
def _positive_int(text: str) -> int:
    try:
        v = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}") from None
    if v <= 0:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {v}")
    return v


def _value(text: str):
    """A ``--set`` value: JSON where it parses (numbers, true, null, lists), else the string."""
    try:
        return json.loads(text)
    except json.JSONDecodeError:
        return text


def _hyperparameters(pairs: list[str] | None) -> dict:
    """``--set key=value`` pairs (train, sample)."""
    out = {}
    for p in pairs or []:
        if "=" not in p:
            raise ValueError(f"--set expects key=value, got {p!r}")
        k, v = p.split("=", 1)
        out[k.strip()] = _value(v)
    return out


def _family_hyperparameters(pairs: list[str] | None) -> dict[str, dict]:
    """``--set family.key=value`` pairs (compare) -> ``{family: {key: value}}``; names are checked by compare."""
    out: dict[str, dict] = {}
    for p in pairs or []:
        lhs, eq, v = p.partition("=")
        fam, dot, key = lhs.strip().partition(".")
        if not eq or not dot or not fam or not key:
            raise ValueError(f"--set expects family.key=value (e.g. flow.max_steps=500), got {p!r}")
        out.setdefault(fam, {})[key.strip()] = _value(v)
    return out


# ----------------------------------------------------------------------------- files
def _check_out(path: str, exts: tuple[str, ...] | None = None) -> None:
    """Fail now, before any work, if ``--out`` cannot be written (or has an extension we cannot write)."""
    ext = os.path.splitext(path)[1].lower()
    if exts is not None and ext not in (*exts, ".txt", ""):
        raise ValueError(f"cannot write --out {path}: use a {', '.join(exts)} file name")
    if os.path.isdir(path):
        raise ValueError(f"--out {path} is a directory; give a file name inside it")
    folder = os.path.dirname(os.path.abspath(path))
    if not os.path.isdir(folder):
        raise ValueError(f"cannot write --out {path}: the directory {folder} does not exist")
    if not os.access(folder, os.W_OK) or (os.path.exists(path) and not os.access(path, os.W_OK)):
        raise ValueError(f"cannot write --out {path}: permission denied")


def _write_table(path: str, A, columns: list[str]) -> None:
    """Write rows ``A`` with a header of ``columns``: .csv (also .txt or no extension), .npy or .parquet."""
    import numpy as np
    import pandas as pd

    ext = os.path.splitext(path)[1].lower()
    tmp = os.path.join(os.path.dirname(os.path.abspath(path)), f".{os.path.basename(path)}.{os.getpid()}.part")
    try:  # write whole, then rename: a failed write leaves an old file intact
        if ext == ".npy":
            with open(tmp, "wb") as f:
                np.save(f, np.asarray(A, dtype=np.float64))
        elif ext == ".parquet":
            pd.DataFrame(np.asarray(A, dtype=np.float64), columns=columns).to_parquet(tmp, index=False)
        else:
            pd.DataFrame(np.asarray(A, dtype=np.float64), columns=columns).to_csv(tmp, index=False)
        os.replace(tmp, path)
    except OSError as e:
        if os.path.exists(tmp):
            os.remove(tmp)
        raise OSError(e.errno, f"cannot write {path}: {e.strerror or e}") from None


def _read_data(spec: str, n: int | None = None, seed: int | None = None, *, command: str, allow_nan: bool = False,
               label: str | None = None):
    """A built-in dataset name (``n`` points drawn) or a .csv/.npy/.parquet file; a file with named
    columns comes back as a DataFrame (so the model keeps the names), else as an array. With
    ``label`` (a column of the file) the result is ``(X, y)``, the label column taken out of X."""
    import genzoo as gz

    if label is not None and spec in gz.datasets.names():
        raise ValueError(f"--label names a column of a data file; {spec!r} is a built-in dataset")
    if spec in gz.datasets.names():
        if n is None:
            raise ValueError(f"{spec!r} is a built-in dataset; {command} needs a data file")
        return gz.datasets.get(spec).sample(n, random_state=seed)
    if not (os.path.splitext(spec)[1] or os.path.sep in spec):
        raise ValueError(f"unknown dataset {spec!r}{_did_you_mean(spec, gz.datasets.names()) or ':'} not a built-in "
                         f"({', '.join(gz.datasets.names())}) nor a path to a .csv/.npy/.parquet file")
    if label is not None:
        X, cols, y = gz.datasets.load_file(spec, return_columns=True, allow_nan=True, label=label)
        X = _read_data_frame(spec, X, cols, command, allow_nan)
        return X, y
    X, cols = gz.datasets.load_file(spec, return_columns=True, allow_nan=True)
    return _read_data_frame(spec, X, cols, command, allow_nan)


def _read_data_frame(spec: str, X, cols: list[str], command: str, allow_nan: bool):
    """File rows ``X`` checked for missing cells, as a DataFrame when the file named its columns."""
    import numpy as np

    nan = np.isnan(X)
    if nan.any() and not allow_nan:
        i, j = np.argwhere(nan)[0]
        fix = ("fill them first with `genzoo impute MODEL FILE --out filled.csv`" if command == "train"
               else f"fill them with `genzoo impute MODEL {spec} --out filled.csv`")
        raise ValueError(f"{spec} has {int(nan.sum())} missing value(s) (first in data row {i + 1}, column "
                         f"{cols[j]!r}); `genzoo {command}` needs complete rows: drop those rows or {fix}")
    if cols == [f"x{j}" for j in range(X.shape[1])]:  # no header: columns by position
        return X
    import pandas as pd

    return pd.DataFrame(X, columns=cols)


def _columns(model) -> list[str]:
    return model._spec().names


# ----------------------------------------------------------------------------- commands
def _cmd_list(args) -> int:
    import genzoo as gz

    print("families:")
    for name in gz.families():
        m = gz.make(name)
        caps = ",".join(sorted(m.capabilities))
        print(f"  {name:<17} likelihood={m.likelihood_kind:<8} {caps:<36} {type(m).summary}")
    groups = [("datasets (2-D, exact densities):", "2d"), ("datasets (wider, exact densities):", "wide"),
              ("tables (scikit-learn's bundled copies; no known density):", "table"),
              ("text (word lists; `compare --data NAME` fits the string models):", "text"),
              ("images (`compare --data NAME` fits every image family):", "image")]
    for title, kind in groups:
        print(title)
        for name in gz.datasets.names(kind):
            ds = gz.datasets.get(name)
            print(f"  {name:<17} {getattr(ds, 'description', '')}")
    return 0


def _training_lines(model) -> list[str]:
    """What training did, one line per phase: steps run, validation loss, early stopping."""
    phases = getattr(model, "phases_", None)
    if not phases:
        return ["  closed-form fit (no training steps)"]
    restores = bool(getattr(model, "early_stopping", False))  # the loop keeps the best checked weights
    lines = []
    for ph in phases:
        # the phase's own record (a family may hold out rows in one phase and not in another); older
        # records lack it: then the model's setting
        held_out = bool(ph.get("held_out", getattr(model, "validation_fraction", 0) or 0))
        what = "validation loss" if held_out else "training loss (no validation split)"
        n, total = ph.get("n_steps", 0), ph.get("max_steps") or ph.get("n_steps", 0)
        if ph.get("early_stopped"):
            stop = "early stopping fired"
        elif ph.get("diverged"):
            stop = "stopped: the loss became NaN/inf"
        else:
            stop = "early stopping did not fire" if restores and held_out else "full budget"
        final, best = ph.get("final_val_loss"), ph.get("best_val_loss")
        loss = f"; final {what} {final:.4f}" if isinstance(final, float) else ""
        if isinstance(best, float) and best < 1e300 and best != final:
            loss += f", best {best:.4f}" + (" (its weights are kept)" if restores else "")
        lines.append(f"  {ph.get('name', 'fit')}: {n} of {total} steps, {stop}{loss}")
    return lines


def _cmd_train(args) -> int:
    import genzoo as gz
    from genzoo.params import validate_params

    defaults = gz.make(args.family).get_params()  # an unknown family fails here, with a suggestion
    hp = _hyperparameters(args.set)
    hp.setdefault("random_state", args.seed)
    if "verbose" in defaults:
        hp.setdefault("verbose", 0 if args.quiet else 1)
    if args.device is not None:
        if "device" not in defaults:
            raise ValueError(f"{args.family} takes no device (it does not run on torch)")
        hp["device"] = args.device
    model = gz.make(args.family, **hp)
    validate_params(model)  # a bad --set value fails before the data are read (fit checks again)
    _check_out(args.out)  # and an unwritable --out before any training
    y = None
    if args.label is not None:
        X, y = _read_data(args.data, args.n, args.seed, command="train", label=args.label)
    else:
        X = _read_data(args.data, args.n, args.seed, command="train")
    model.fit(X, y)
    model.save(args.out)
    cols = _columns(model)
    shown = ", ".join(cols[:6]) + (", ..." if len(cols) > 6 else "")
    print(f"trained {args.family} on {len(X)} rows x {len(cols)} columns ({shown})"
          + (f", conditioned on {args.label!r} ({len(model.classes_)} classes)" if y is not None else ""))
    print("\n".join(_training_lines(model)))
    for line in model.fit_choices():  # what the fit chose between candidate fits, and why
        print(f"  {line}")
    print(f"saved to {args.out}")
    return 0


def _cmd_sample(args) -> int:
    import genzoo as gz

    _check_out(args.out, TABLE_EXTS)
    model = gz.load(args.model, device=args.device)
    S = model.sample(args.n, random_state=args.seed, **_hyperparameters(args.set))
    _write_table(args.out, S, _columns(model))
    print(f"wrote {len(S)} samples to {args.out}")
    return 0


def _cmd_score(args) -> int:
    import numpy as np

    import genzoo as gz

    if args.out:
        _check_out(args.out, TABLE_EXTS)
    model = gz.load(args.model, device=args.device)
    lp = model.score_samples(_read_data(args.data, command="score"))
    if args.out:
        _write_table(args.out, lp[:, None], ["log_density"])
        print(f"wrote {len(lp)} log-densities (nats) to {args.out}; mean {np.mean(lp):.4f}")
    else:
        sys.stdout.write("\n".join(f"{v:.6f}" for v in lp) + "\n")
    return 0


def _cmd_impute(args) -> int:
    import numpy as np

    import genzoo as gz

    _check_out(args.out, TABLE_EXTS)
    model = gz.load(args.model, device=args.device)
    X = _read_data(args.data, command="impute", allow_nan=True)
    F = model.impute(X, random_state=args.seed)
    _write_table(args.out, F, _columns(model))
    print(f"filled {int(np.isnan(np.asarray(X, dtype=float)).sum())} missing value(s); wrote {args.out}")
    return 0


def _cmd_compare(args) -> int:
    from genzoo.compare import run_compare
    from genzoo.compare.images import image_terminal_table, is_image_data, run_image_compare
    from genzoo.compare.tables import summarise, terminal_table
    from genzoo.compare.text import is_text_data, run_text_compare, text_terminal_table

    # this process has not run torch yet, so its workers can be forked (no re-import, seconds saved);
    # a CUDA device named here is checked in this process, so its workers are spawned instead
    fork = sys.platform == "linux" and args.device in (None, "cpu")
    if is_image_data(args.data):  # the digits: every image family, one run per family and seed
        if args.label is not None:
            raise ValueError(f"--label names a column of a table file (.csv/.npy/.parquet); {args.data!r} has its "
                             "labels built in")
        records = run_image_compare(data=args.data, families=args.families or "all", seeds=args.seeds or 1,
                                    preset=args.preset, out=args.out, verbose=not args.quiet,
                                    params=_family_hyperparameters(args.set), device=args.device, force=args.force,
                                    workers=args.workers, start_method="fork" if fork else None)
        print(image_terminal_table(records))
        print(f"report: {os.path.abspath(os.path.join(args.out, 'report.html'))}")
        return 0
    args.seeds, args.families = args.seeds or 3, args.families or "core"
    if is_text_data(args.data):  # strings: the text models side by side, one run per row and seed
        if args.label is not None:
            raise ValueError("--label names a column of a table file (.csv/.npy/.parquet); text data has no columns")
        records = run_text_compare(data=args.data, families=args.families, seeds=args.seeds, preset=args.preset,
                                   out=args.out, verbose=not args.quiet, params=_family_hyperparameters(args.set),
                                   device=args.device, force=args.force)
        print(text_terminal_table(records))
        print(f"report: {os.path.abspath(os.path.join(args.out, 'report.html'))}")
        return 0

    records = run_compare(data=args.data, families=args.families, seeds=args.seeds, preset=args.preset,
                          out=args.out, verbose=not args.quiet, workers=args.workers,
                          params=_family_hyperparameters(args.set), device=args.device, force=args.force,
                          start_method="fork" if fork else None, label=args.label)
    print(terminal_table(summarise(records)))
    print(f"report: {os.path.abspath(os.path.join(args.out, 'report.html'))}")
    return 0


# ----------------------------------------------------------------------------- parser
class _HelpFormatter(argparse.HelpFormatter):
    """Appends ``(default: ...)`` to every option with a default the help text does not already state."""

    def _get_help_string(self, action: argparse.Action) -> str:
        text = action.help or ""
        if ("default" in text or not action.option_strings or action.required
                or action.default is None or action.default is False or action.default == argparse.SUPPRESS):
            return text
        return text + " (default: %(default)s)"


class _Parser(argparse.ArgumentParser):
    """argparse, but a usage error is one line (exit 2) with a did-you-mean where a choice was misspelt."""

    def __init__(self, *a, **k):
        k.setdefault("formatter_class", _HelpFormatter)
        super().__init__(*a, **k)

    def error(self, message: str):
        m = re.search(r"invalid choice: '?([^'\s]+)'? \(choose from (.*)\)", message)
        if m:
            choices = [c.strip().strip("'\"") for c in m.group(2).split(",")]
            message += _did_you_mean(m.group(1), choices)
        self.exit(EXIT_USAGE, f"{self.prog}: error: {message} (see --help)\n")


def build_parser() -> argparse.ArgumentParser:
    from genzoo import __version__

    p = _Parser(prog="genzoo", description="Every family of deep generative model, "
                                "trained on the same data and measured side by side.")
    p.add_argument("--version", action="version", version=f"genzoo {__version__}")
    p.add_argument("--debug", action="store_true", help="on an error, print the full traceback too")
    sub = p.add_subparsers(dest="command", required=True, metavar="COMMAND", parser_class=_Parser)
    common = argparse.ArgumentParser(add_help=False)  # --debug also after the command
    common.add_argument("--debug", action="store_true", default=argparse.SUPPRESS,
                        help="on an error, print the full traceback too")

    def command(name: str, text: str) -> argparse.ArgumentParser:
        return sub.add_parser(name, help=text, description=text, parents=[common])

    data_help = "built-in dataset name (see `genzoo list`) or a .csv/.npy/.parquet file"
    device_help = "torch device: cpu, cuda, cuda:1 or auto (= CUDA when available)"

    c = command("compare", "train every family on the same data and write a report")
    c.add_argument("--data", default="ring",
                   help=f"{data_help}; wider exact densities: mixture10, rings6, funnel; scikit-learn's tables "
                        "(labels included): wine, breast_cancer, diabetes; text: 'names' or a .txt file, one string "
                        "a line; images: digits")
    c.add_argument("--families", default=None,
                   help="comma-separated family names, 'core' (5 families + gmm, kde; on images the 5 + latent "
                        "diffusion and the VQ models) or 'all' (default: 'core'; on images 'all', every image family)")
    c.add_argument("--seeds", type=_positive_int, default=None,
                   help="training seeds per family (default: 3; 1 on images)")
    c.add_argument("--preset", choices=["quick", "default", "thorough"], default="default",
                   help="training budget")
    c.add_argument("--out", default="genzoo-compare", help="report folder (finished runs in it are reused)")
    c.add_argument("--set", action="append", metavar="FAMILY.KEY=VALUE",
                   help="a hyperparameter of one family, e.g. flow.max_steps=500; repeatable "
                        "(default: each family's defaults, budgets scaled by --preset)")
    c.add_argument("--device", default=None, help=f"{device_help} (default: each family's own)")
    c.add_argument("--workers", type=_positive_int, default=None,
                   help="runs trained side by side (default: 2 where there are 2+ cores, else 1; text: one at a time)")
    c.add_argument("--force", action="store_true",
                   help="retrain every run, ignoring finished runs cached in --out (default: reuse them)")
    c.add_argument("--quiet", action="store_true",
                   help="no progress bars on stderr; the results table still goes to stdout (default: bars on)")
    c.add_argument("--label", default=None, metavar="COLUMN",
                   help="a column of the data file holding class labels: families that take labels fit p(x | label), "
                        "and the report adds train-on-synthetic, test-on-real accuracy (default: none)")
    c.set_defaults(func=_cmd_compare)

    t = command("train", "fit one family and save the model")
    t.add_argument("family", help="family name (see `genzoo list`)")
    t.add_argument("--data", default="ring", help=data_help)
    t.add_argument("--out", required=True, help="model file to write, e.g. model.genzoo (required)")
    t.add_argument("-n", type=_positive_int, default=10_000, help="points to draw from a built-in dataset")
    t.add_argument("--seed", type=int, default=0, help="random seed of the data draw and the training")
    t.add_argument("--set", action="append", metavar="KEY=VALUE",
                   help="a hyperparameter, e.g. max_steps=500; repeatable (default: the family's defaults)")
    t.add_argument("--device", default=None, help=f"{device_help} (default: the family's own)")
    t.add_argument("--label", default=None, metavar="COLUMN",
                   help="a column of the data file holding class labels: taken out of the data and used to fit "
                        "p(x | label) (families that take labels; default: none)")
    t.add_argument("--quiet", action="store_true", help="no progress bar on stderr (default: a bar while training)")
    t.set_defaults(func=_cmd_train)

    load_help = "where the model computes: cpu, cuda, ... (default: where it was saved, if available here, else cpu)"
    s = command("sample", "draw samples from a saved model")
    s.add_argument("model", help="model file written by `genzoo train`")
    s.add_argument("-n", type=_positive_int, default=1000, help="number of samples")
    s.add_argument("--out", required=True, help=".csv, .npy or .parquet file to write (required)")
    s.add_argument("--seed", type=int, default=None, help="random seed (default: fresh randomness)")
    s.add_argument("--set", action="append", metavar="KEY=VALUE",
                   help="a sampling option, e.g. steps=50; repeatable (default: the family's defaults)")
    s.add_argument("--device", default=None, help=load_help)
    s.set_defaults(func=_cmd_sample)

    sc = command("score", "log-density (nats) of each row of a data file")
    sc.add_argument("model", help="model file written by `genzoo train`")
    sc.add_argument("data", help=".csv, .npy or .parquet file (columns matched by name when it has a header)")
    sc.add_argument("--out", default=None, help=".csv, .npy or .parquet file to write (default: print to stdout)")
    sc.add_argument("--device", default=None, help=load_help)
    sc.set_defaults(func=_cmd_score)

    im = command("impute", "fill the empty / NaN cells of a data file")
    im.add_argument("model", help="model file written by `genzoo train`")
    im.add_argument("data", help=".csv, .npy or .parquet file with empty or NaN cells")
    im.add_argument("--out", required=True, help=".csv, .npy or .parquet file to write (required)")
    im.add_argument("--seed", type=int, default=None, help="random seed (default: fresh randomness)")
    im.add_argument("--device", default=None, help=load_help)
    im.set_defaults(func=_cmd_impute)

    ls = command("list", "families, datasets and capabilities")
    ls.set_defaults(func=_cmd_list)
    return p


def _parse(argv: list[str] | None) -> argparse.Namespace:
    """Parse, naming the closest known option for an unknown one."""
    parser = build_parser()
    args, extras = parser.parse_known_args(argv)
    if extras:
        subs = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
        where = subs.choices.get(args.command, parser)
        known = [o for a in where._actions for o in a.option_strings]
        flag = next((x for x in extras if x.startswith("-")), "")
        where.error(f"unrecognized arguments: {' '.join(extras)}"
                    + (_did_you_mean(flag.split("=", 1)[0], known) if flag else ""))
    return args


def _one_line_warning(message, category, filename, lineno, file=None, line=None) -> None:
    """A Python warning as one line on stderr (no source line)."""
    print(f"genzoo: warning: {message}", file=sys.stderr)


def main(argv: list[str] | None = None) -> int:
    """The ``genzoo`` entry point; returns the exit status."""
    import logging
    import warnings

    args = _parse(argv)
    debug = bool(getattr(args, "debug", False) or os.environ.get("GENZOO_DEBUG"))
    # for this call only: genzoo's log messages and Python warnings, one line each, on stderr
    log = logging.getLogger("genzoo")
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("genzoo: %(message)s"))
    level, show = log.level, warnings.showwarning
    log.addHandler(handler)
    log.setLevel(logging.INFO if debug else logging.WARNING)
    warnings.showwarning = _one_line_warning
    try:
        return _run(args, debug)
    finally:
        log.removeHandler(handler)
        log.setLevel(level)
        warnings.showwarning = show


def _run(args: argparse.Namespace, debug: bool) -> int:
    import traceback

    from sklearn.exceptions import NotFittedError

    from genzoo.errors import UnsupportedError

    def fail(msg: str) -> int:
        if debug:
            traceback.print_exc()
        print(f"genzoo {args.command}: error: {msg}", file=sys.stderr)
        return EXIT_ERROR

    try:
        return args.func(args)
    except KeyboardInterrupt:
        print("genzoo: interrupted (finished results are kept)", file=sys.stderr)
        return 130
    except BrokenPipeError:  # e.g. `genzoo score ... | head`: the reader has all it wanted
        sys.stdout = open(os.devnull, "w")  # so that the flush at exit does not fail again
        return 0
    except (ValueError, UnsupportedError, NotFittedError) as e:
        return fail(str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__)
    except OSError as e:  # files: "no such model file: ...", "cannot write ...: Permission denied"
        if e.strerror:
            return fail(e.strerror + (f" ({e.filename})" if e.filename else ""))
        return fail(str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__)
    except Exception as e:  # anything else (a bug, a torch failure): still one line, unless debugging
        msg = str(e).strip().splitlines()[0] if str(e).strip() else ""
        return fail(f"{type(e).__name__}: {msg} (run with --debug for the traceback)")

if __name__ == "__main__":
    sys.exit(main())
