"""``skcl-benchmark``: every continual-learning strategy against full retraining.

Run it as ``skcl-benchmark`` (the console script) or ``python -m
skcl.benchmark``. It trains each strategy month by month on a stream (the
embedded :func:`~skcl.datasets.make_drifting_stream` by default, or a CSV or
parquet file), scores every intermediate model on every month's held-out part
with :func:`~skcl.evaluation.evaluate_stream`, prints the summary table sorted
by mean score, and writes three files to ``--out``:

``results.csv``
    The tidy table: one row per (strategy, training month, evaluated month)
    with the score, the cumulative samples processed and the wall time.
``summary.json``
    The run's configuration and one summary row per strategy (mean, worst,
    first- and last-month score of the final model, gap and cost relative to
    ``retrain``).
``forgetting.png``
    Per evaluated month, the score of each strategy's final model, one panel
    per strategy family; ``retrain`` in black and ``naive`` in red in every
    panel (needs matplotlib, the ``plot`` extra).

Strategies and their hyper-parameters
-------------------------------------
All strategies share one network and one first month: the bundled
:class:`~skcl.MLP` with two hidden layers of 64 units, Adam at ``lr=1e-3``,
batches of 128 rows, ``--epochs`` epochs per month (default 5) and the same
``--random-state`` seed, so every fine-tuning strategy starts from the very
same model after month one and differs only in what it does afterwards.
The values below are ordinary defaults from the literature's usual ranges,
set once and not tuned on the benchmark's data; ``--list-strategies`` prints
them.

* ``retrain``: re-initialize and train on every month so far, every month
  (the reference: best retention, highest cost).
* ``naive``: keep fine-tuning at ``lr`` (the lower bound on retention).
* ``averaging``: :class:`~skcl.MonthlyAveragingClassifier`, one fresh model
  per month (seeded differently each month), probabilities averaged.
* ``rehearsal-fixed``: :class:`~skcl.RehearsalBuffer` (reservoir policy)
  holding a quarter of the stream's training rows (2,100 on the default
  stream), ``replay_ratio=0.5``, epochs as long as the month (half new, half
  replayed rows).
* ``rehearsal-grow``: the same buffer, each epoch the month's rows plus as
  many replayed rows (twice as long).
* ``low-lr``: fine-tune at ``finetune_lr = 0.1 * lr``.
* ``low-lr-finish``: fine-tune at ``lr``, then close every month with two
  finishing epochs at ``0.1 * lr`` (``finish_epochs=2``).
* ``l2``: :class:`~skcl.L2` pull towards the previous month's weights at its
  default ``lam=1``.
* ``ewc-empirical``, ``ewc-hessian``: :class:`~skcl.EWC` at its default
  ``lam=100`` with the empirical Fisher and with the Hessian diagonal
  (negative entries clipped, the class default).
* ``ewc-variance``: EWC with the variance-based importance at ``lam=5000``:
  that importance is on another scale (fourth powers of gradients, about 1/50
  of the Fisher's total after the first month of the default stream), so
  ``lam`` is scaled to give the penalty the same weight, not tuned on results.
* ``online-ewc``: :class:`~skcl.OnlineEWC`, empirical Fisher, ``lam=100``,
  ``gamma=0.9`` (a tenth of the accumulated importance fades per month, its
  purpose on a drifting stream).
* ``rehearsal+<regularizer>``: ``rehearsal-fixed`` combined with each of the
  five regularizers above.

Costs, in ``samples_processed`` (see :func:`~skcl.evaluation.evaluate_stream`):
with ``M`` months of ``n`` training rows and ``E`` epochs, fine-tuning
strategies and ``rehearsal-fixed`` process ``E * M * n`` rows,
``rehearsal-grow`` about twice that, and ``retrain`` ``E * n * M (M + 1) / 2``.
"""

import argparse
import json
import math
import sys
from pathlib import Path

import numpy as np

from .classifier import ContinualClassifier
from .evaluation import evaluate_stream

__all__ = ["main"]

#: Figure panels, in order.
FAMILIES = ("baselines", "rehearsal", "learning rate", "regularizers",
            "rehearsal + regularizer")

_LR = 1e-3
_HIDDEN_UNITS = (64, 64)
_FINISH_EPOCHS = 2
_QUICK_HIDDEN_UNITS = (16,)
_BUFFER_SHARE = 0.25       # of the stream's training rows
_REPLAY_RATIO = 0.5
_L2_LAM = 1.0              # L2's default
_EWC_LAM = {
    "empirical": 100.0,    # EWC's default
    "hessian": 100.0,      # same scale as the Fisher (both are curvatures of the loss)
    # Variance importances are fourth powers of gradients: after the first month
    # of the default stream they sum to about 1/50 of the empirical Fisher's,
    # so lam is scaled up by that factor to give the penalty the same weight.
    "variance": 5000.0,
}
_ONLINE_GAMMA = 0.9        # forget a tenth of the past importance per month


# ----------------------------------------------------------------------
# strategy registry
# ----------------------------------------------------------------------
def _classifier(config, **params):
    defaults = dict(
        module__hidden_units=config["hidden_units"], max_epochs=config["epochs"],
        batch_size=config["batch_size"], lr=_LR, random_state=config["random_state"],
        device=config["device"],
    )
    defaults.update(params)
    return ContinualClassifier(**defaults)


def _buffer(config, epoch_size="fixed"):
    from .rehearsal import RehearsalBuffer

    return RehearsalBuffer(capacity=config["buffer_capacity"],
                           replay_ratio=_REPLAY_RATIO, epoch_size=epoch_size)


def _averaging(config):
    from .averaging import MonthlyAveragingClassifier

    # members left unseeded: the averaging estimator seeds each month's fresh
    # model differently from its own random_state
    return MonthlyAveragingClassifier(estimator=_classifier(config, random_state=None),
                                      random_state=config["random_state"])


def _l2(config):
    from .regularizers import L2

    return L2(lam=_L2_LAM)


def _ewc(fisher):
    def build(config):
        from .regularizers import EWC

        return EWC(lam=_EWC_LAM[fisher], fisher=fisher)
    return build


def _online_ewc(config):
    from .regularizers import OnlineEWC

    return OnlineEWC(lam=_EWC_LAM["empirical"], gamma=_ONLINE_GAMMA)


_REGULARIZERS = {
    "l2": (_l2, f"L2 pull towards the previous month's weights, lam={_L2_LAM:g}"),
    "ewc-empirical": (_ewc("empirical"),
                      f"EWC, empirical Fisher, lam={_EWC_LAM['empirical']:g}"),
    "ewc-hessian": (_ewc("hessian"),
                    f"EWC, Hessian diagonal (negatives clipped), "
                    f"lam={_EWC_LAM['hessian']:g}"),
    "ewc-variance": (_ewc("variance"),
                     f"EWC, per-sample variance of squared gradients, "
                     f"lam={_EWC_LAM['variance']:g} (scale-matched to the Fisher's)"),
    "online-ewc": (_online_ewc, f"online EWC, empirical Fisher, "
                                f"lam={_EWC_LAM['empirical']:g}, gamma={_ONLINE_GAMMA:g}"),
}


def _registry():
    """Return ``{name: (family, description, build(config) -> estimator)}``."""
    strategies = {
        "retrain": ("baselines", "re-initialize and train on all months so far, every month",
                    lambda c: _classifier(c, update="retrain")),
        "naive": ("baselines", "fine-tune at the first month's lr",
                  lambda c: _classifier(c)),
        "averaging": ("baselines", "one fresh model per month, probabilities averaged",
                      _averaging),
        "rehearsal-fixed": (
            "rehearsal",
            f"replay {_REPLAY_RATIO:.0%} of each epoch from a buffer of "
            f"{_BUFFER_SHARE:.0%} of the stream; epoch as long as the month",
            lambda c: _classifier(c, rehearsal=_buffer(c, "fixed"))),
        "rehearsal-grow": (
            "rehearsal",
            "same buffer; epoch = the month plus replayed rows (grows with replay)",
            lambda c: _classifier(c, rehearsal=_buffer(c, "grow"))),
        "low-lr": ("learning rate", "fine-tune at 0.1x the first month's lr",
                   lambda c: _classifier(c, finetune_lr=0.1 * _LR)),
        "low-lr-finish": (
            "learning rate",
            f"fine-tune at lr, then {_FINISH_EPOCHS} finishing epochs at 0.1x lr each month",
            lambda c: _classifier(c, finish_epochs=_FINISH_EPOCHS, finish_lr=0.1 * _LR)),
    }
    for name, (build_regularizer, text) in _REGULARIZERS.items():
        strategies[name] = (
            "regularizers", text,
            lambda c, b=build_regularizer: _classifier(c, regularizer=b(c)))
    for name, (build_regularizer, text) in _REGULARIZERS.items():
        strategies[f"rehearsal+{name}"] = (
            "rehearsal + regularizer", f"rehearsal-fixed and {text}",
            lambda c, b=build_regularizer: _classifier(
                c, regularizer=b(c), rehearsal=_buffer(c, "fixed")))
    return strategies


# ----------------------------------------------------------------------
# command line
# ----------------------------------------------------------------------
def _positive_int(minimum):
    def parse(text):
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(
                f"{text!r} is not an integer; pass a whole number >= {minimum}") from None
        if value < minimum:
            raise argparse.ArgumentTypeError(
                f"{text!r} is too small; pass a whole number >= {minimum}")
        return value
    return parse


def _build_parser():
    parser = argparse.ArgumentParser(
        prog="skcl-benchmark",
        description=(
            "Compare continual-learning strategies against full retraining, month by "
            "month: prints a summary table and writes results.csv, summary.json and "
            "forgetting.png."
        ),
    )
    parser.add_argument(
        "--data", metavar="PATH",
        help="CSV or parquet file with a month column, a label column and numeric "
             "feature columns, or a scipy.sparse .npz matrix with --labels "
             "(default: the embedded make_drifting_stream)")
    parser.add_argument(
        "--labels", metavar="PATH",
        help="with a sparse --data .npz: CSV or .npz file holding the month and label "
             "columns, one row per matrix row (see skcl.datasets.load_sparse_stream)")
    parser.add_argument("--month-column", default="month", metavar="NAME",
                        help="month column of --data (default: %(default)s)")
    parser.add_argument("--label-column", default="label", metavar="NAME",
                        help="label column of --data (default: %(default)s)")
    parser.add_argument(
        "--months", type=_positive_int(2), metavar="N",
        help="number of months: the first N of --data, or an N-month embedded stream "
             "(default: all of --data; 12 embedded, 4 with --quick)")
    parser.add_argument(
        "--strategies", metavar="A,B,...",
        help="comma-separated strategy names (default: all; see --list-strategies)")
    parser.add_argument("--list-strategies", action="store_true",
                        help="print the strategy names, families and settings, and exit")
    parser.add_argument(
        "--metric", choices=("accuracy", "roc_auc"), default="accuracy",
        help="score of each month's test part (roc_auc is one-vs-rest for more than two "
             "classes; default: %(default)s)")
    parser.add_argument("--device", default="cpu",
                        help="torch device, e.g. cpu or cuda (default: %(default)s)")
    parser.add_argument("--out", default="skcl-benchmark-results", metavar="DIR",
                        help="output directory, created if needed (default: %(default)s)")
    parser.add_argument("--quick", action="store_true",
                        help="tiny run for smoke tests (seconds): 4 months of 150 rows "
                             "(the first 3 months of --data), 2 epochs, a 16-unit network")
    parser.add_argument("--epochs", type=_positive_int(1), metavar="N",
                        help="training epochs per month (default: 5, 2 with --quick)")
    parser.add_argument("--random-state", type=int, default=0, metavar="SEED",
                        help="seed of the data, the splits and every model "
                             "(default: %(default)s)")
    return parser


def _select_strategies(parser, text, registry):
    if text is None:
        return list(registry)
    names = [name.strip() for name in text.split(",") if name.strip()]
    if not names:
        parser.error(f"--strategies {text!r} names no strategy; see --list-strategies")
    unknown = [name for name in names if name not in registry]
    if unknown:
        parser.error(
            f"unknown strategy {unknown[0]!r} in --strategies {text!r}; choose from "
            f"{', '.join(registry)} (see --list-strategies)")
    duplicates = sorted({name for name in names if names.count(name) > 1})
    if duplicates:
        parser.error(f"--strategies {text!r} repeats {', '.join(duplicates)}; name each once")
    return names


def _check_device(parser, device):
    import torch

    try:
        parsed = torch.device(device)
    except (RuntimeError, ValueError):
        parser.error(f"--device {device!r} is not a torch device; use e.g. cpu or cuda")
    if parsed.type == "cuda" and not torch.cuda.is_available():
        parser.error(f"--device {device!r}: CUDA is not available on this machine; "
                     "use --device cpu")


def _load_data(parser, args):
    """Return ``X, y, months, description`` from --data or the embedded stream."""
    if args.data is None:
        from .datasets import make_drifting_stream

        n_months = args.months or (4 if args.quick else 12)
        n_rows = 150 if args.quick else 1000
        X, y, months = make_drifting_stream(n_months=n_months, n_samples_per_month=n_rows,
                                            random_state=args.random_state)
        return X, y, months, (f"make_drifting_stream(n_months={n_months}, "
                              f"n_samples_per_month={n_rows}, "
                              f"random_state={args.random_state})")
    path = Path(args.data)
    if not path.is_file():
        parser.error(f"--data {args.data!r}: no such file")
    if path.suffix.lower() == ".npz":
        return _load_sparse_data(parser, args)
    try:
        import pandas as pd
    except ImportError:
        parser.error(f"--data {args.data!r} needs pandas to read it; pip install pandas")
    suffixes = "".join(path.suffixes).lower()
    try:
        if suffixes.endswith((".parquet", ".pq")):
            frame = pd.read_parquet(path)
        elif ".csv" in suffixes:
            frame = pd.read_csv(path)
        else:
            parser.error(f"--data {args.data!r}: unknown file type {path.suffix!r}; pass "
                         "a .csv (optionally compressed, e.g. .csv.gz) or .parquet file")
    except (ValueError, ImportError, OSError) as exc:
        parser.error(f"--data {args.data!r} could not be read: {exc}")
    for option, column in (("--month-column", args.month_column),
                           ("--label-column", args.label_column)):
        if column not in frame.columns:
            parser.error(
                f"{option} {column!r} is not a column of {args.data!r}; its columns are "
                f"{', '.join(map(str, frame.columns))}; pass {option} NAME")
    if args.month_column == args.label_column:
        parser.error(f"--month-column and --label-column are both {args.month_column!r}; "
                     "they must name different columns")
    features = frame.drop(columns=[args.month_column, args.label_column])
    if features.shape[1] == 0:
        parser.error(f"--data {args.data!r} has no feature columns besides "
                     f"{args.month_column!r} and {args.label_column!r}")
    not_numeric = [str(c) for c in features.columns
                   if not pd.api.types.is_numeric_dtype(features[c])
                   or pd.api.types.is_bool_dtype(features[c])]
    if not_numeric:
        parser.error(f"--data {args.data!r}: feature columns must be numeric; "
                     f"{', '.join(not_numeric)} are not (encode or drop them)")
    missing = [str(c) for c in features.columns if features[c].isna().any()]
    missing += [c for c in (args.month_column, args.label_column) if frame[c].isna().any()]
    if missing:
        parser.error(f"--data {args.data!r} has missing values in {', '.join(missing)}; "
                     "impute or drop those rows")
    months = frame[args.month_column].to_numpy()
    if np.issubdtype(months.dtype, np.datetime64):
        months = np.datetime_as_string(months, unit="D")
    try:
        month_order = np.unique(months)
    except TypeError:
        parser.error(f"--month-column {args.month_column!r} mixes types that cannot be "
                     "sorted; use one type, e.g. 'YYYY-MM' strings")
    if args.months is not None:
        if args.months > len(month_order):
            parser.error(
                f"--months {args.months} exceeds the {len(month_order)} months in "
                f"{args.data!r}; pass --months {len(month_order)} or fewer")
        month_order = month_order[:args.months]
    elif args.quick:
        month_order = month_order[:3]
    keep = np.isin(months, month_order)
    X = features.to_numpy(dtype=np.float32)[keep]
    y = frame[args.label_column].to_numpy()[keep]
    return X, y, months[keep], f"{args.data} ({len(month_order)} months)"


def _load_sparse_data(parser, args):
    """``--data X.npz --labels labels.csv``: a sparse stream, never densified."""
    from .datasets import load_sparse_stream

    if args.labels is None:
        parser.error(f"--data {args.data!r} is a sparse matrix: pass --labels PATH with "
                     "its month and label columns")
    try:
        X, y, months = load_sparse_stream(args.data, args.labels,
                                          month_column=args.month_column,
                                          label_column=args.label_column)
    except (OSError, ValueError, ImportError) as exc:
        parser.error(f"--data {args.data!r} --labels {args.labels!r}: {exc}")
    month_order = np.unique(months)
    if args.months is not None:
        if args.months > len(month_order):
            parser.error(
                f"--months {args.months} exceeds the {len(month_order)} months in "
                f"{args.labels!r}; pass --months {len(month_order)} or fewer")
        month_order = month_order[:args.months]
    elif args.quick:
        month_order = month_order[:3]
    keep = np.flatnonzero(np.isin(months, month_order))
    return (X[keep], y[keep], months[keep],
            f"{args.data} + {args.labels} ({len(month_order)} months, sparse)")


# ----------------------------------------------------------------------
# outputs
# ----------------------------------------------------------------------
def _negative_fractions(result):
    """Per strategy whose regularizer reports them, the raw importances' negative share."""
    fractions = {}
    for name, estimator in result.estimators.items():
        regularizer = getattr(estimator, "regularizer_", None)
        values = getattr(regularizer, "negative_fractions_", None)
        if values:
            fractions[name] = [float(value) for value in values]
    return fractions


def _write_summary(path, result, config, families, descriptions):
    strategies = {name: {"family": families[name], "description": descriptions[name]}
                  for name in result.strategies}
    for name, values in _negative_fractions(result).items():
        strategies[name]["negative_fraction_per_month"] = values
    payload = {
        "metric": result.metric,
        "reference": result.reference,
        "months": result.months,
        "config": config,
        "strategies": strategies,
        "summary": result.summary,
    }
    path.write_text(json.dumps(payload, indent=2, default=str) + "\n", encoding="utf-8")


def _plot_forgetting(result, families, path):
    """Draw each strategy's final per-month score, one panel per family, to ``path``.

    ``retrain`` (black) and ``naive`` (red) appear in every panel as the two
    bounds. Each panel's y-axis is narrowed to its own strategies and
    ``retrain``; where ``naive`` falls below it, a note gives its minimum.

    Parameters
    ----------
    result : StreamEvaluation
        From :func:`~skcl.evaluation.evaluate_stream`.
    families : dict
        Strategy name to family name (one of ``FAMILIES``).
    path : str or path-like
        Where to write the PNG.

    Returns
    -------
    path : str or path-like
        ``path``, once written.
    """
    from matplotlib.figure import Figure

    panels = [family for family in FAMILIES
              if any(families[name] == family for name in result.strategies)]
    n_cols = min(3, len(panels))
    n_rows = math.ceil(len(panels) / n_cols)
    figure = Figure(figsize=(5.4 * n_cols, 4.6 * n_rows), layout="constrained")
    axes = np.atleast_1d(figure.subplots(n_rows, n_cols, squeeze=False)).ravel()
    positions = np.arange(len(result.months))
    finals = {name: result.matrix(name)[-1] for name in result.strategies}
    bounds = {"retrain": ("black", 2.2), "naive": ("tab:red", 1.8)}
    palette = ["tab:blue", "tab:orange", "tab:green", "tab:purple", "tab:brown",
               "tab:pink", "tab:olive", "tab:cyan", "tab:gray"]
    for ax, family in zip(axes, panels):
        members = [name for name in result.strategies
                   if families[name] == family and name not in bounds]
        shown = [name for name in bounds if name in finals] + members
        if family == "rehearsal + regularizer" and "rehearsal-fixed" in finals:
            # the combinations are read against rehearsal alone
            ax.plot(positions, finals["rehearsal-fixed"], color="0.45", linewidth=1.6,
                    linestyle="--", label="rehearsal-fixed", zorder=2)
            shown.append("rehearsal-fixed")
        for name in shown:
            if name == "rehearsal-fixed" and family != "rehearsal":
                continue
            if name in bounds:
                color, width = bounds[name]
                ax.plot(positions, finals[name], color=color, linewidth=width,
                        marker="o", markersize=3, label=name, zorder=3)
            else:
                color = palette[members.index(name) % len(palette)]
                ax.plot(positions, finals[name], color=color, linewidth=1.4,
                        marker="o", markersize=3, label=name)
        # the axis spans the panel's own strategies and retrain, so that small
        # differences between them stay visible; naive may leave it (noted)
        framed = [name for name in shown if name != "naive" or family == "baselines"]
        values = np.concatenate([finals[name] for name in framed])
        low, high = float(np.nanmin(values)), float(np.nanmax(values))
        pad = max(0.08 * (high - low), 0.005)
        ax.set_ylim(low - pad, high + pad)
        if "naive" in finals and np.nanmin(finals["naive"]) < low - pad:
            ax.annotate(f"naive below axis (min {np.nanmin(finals['naive']):.2f})",
                        xy=(0.98, 0.03), xycoords="axes fraction", fontsize="small",
                        horizontalalignment="right", color=bounds["naive"][0])
        ax.set_title(family)
        ax.set_xlabel("evaluated month")
        ax.set_ylabel(result.metric)
        step = max(1, len(positions) // 12)
        ax.set_xticks(positions[::step])
        ax.set_xticklabels([str(m) for m in result.months[::step]],
                           rotation=45 if len(str(result.months[-1])) > 3 else 0)
        ax.grid(alpha=0.3)
        ax.legend(fontsize="small", loc="upper center", bbox_to_anchor=(0.5, -0.2),
                  ncol=3, frameon=False)
    for ax in axes[len(panels):]:
        ax.set_visible(False)
    figure.suptitle(f"{result.metric} of each strategy's final model on every month's "
                    "test part (each panel's y-axis narrowed to its curves)")
    figure.savefig(path, dpi=110)
    return path


# ----------------------------------------------------------------------
# entry point
# ----------------------------------------------------------------------
def main(argv=None):
    """Run the benchmark from the command line (``skcl-benchmark``).

    Parameters
    ----------
    argv : list of str or None, default=None
        Command-line arguments without the program name; ``None`` reads
        ``sys.argv``.

    Returns
    -------
    status : int
        0 on success. Invalid options exit through ``SystemExit(2)`` with a
        message naming the value and the fix, as argparse does.

    Examples
    --------
    >>> from skcl.benchmark import main
    >>> main(["--quick", "--out", "results"])  # doctest: +SKIP
    0
    """
    parser = _build_parser()
    args = parser.parse_args(argv)
    registry = _registry()
    if args.list_strategies:
        width = max(map(len, registry))
        for name, (family, description, _) in registry.items():
            print(f"{name.ljust(width)}  [{family}] {description}")
        return 0
    names = _select_strategies(parser, args.strategies, registry)
    _check_device(parser, args.device)
    X, y, months, data_description = _load_data(parser, args)

    test_size = 0.3
    n_train_rows = sum(len(y[months == month]) - math.ceil(test_size * np.sum(months == month))
                       for month in np.unique(months))
    config = {
        "data": data_description,
        "n_rows": int(len(y)),
        "n_features": int(X.shape[1]),
        "classes": [c.item() if isinstance(c, np.generic) else c for c in np.unique(y)],
        "test_size": test_size,
        "epochs": args.epochs or (2 if args.quick else 5),
        "hidden_units": list(_QUICK_HIDDEN_UNITS if args.quick else _HIDDEN_UNITS),
        "lr": _LR,
        "batch_size": 32 if args.quick else 128,
        "buffer_capacity": max(1, int(_BUFFER_SHARE * n_train_rows)),
        "device": args.device,
        "random_state": args.random_state,
        "argv": list(sys.argv[1:] if argv is None else argv),
    }
    build_config = dict(config, hidden_units=tuple(config["hidden_units"]))
    strategies = {name: registry[name][2](build_config) for name in names}
    metric = args.metric
    if metric == "roc_auc" and len(config["classes"]) > 2:
        metric = "roc_auc_ovr"

    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    print(f"skcl-benchmark: {len(names)} strategies on {data_description}, "
          f"{config['epochs']} epoch(s) per month, device {args.device}", flush=True)
    # Adam's first construction imports torch's compiler stack (about a second);
    # pay for it here so that it is not charged to the first strategy's time.
    import torch

    torch.optim.Adam([torch.zeros(1, requires_grad=True)])
    result = evaluate_stream(strategies, X, y, months, test_size=test_size, metric=metric,
                             random_state=args.random_state, progress=True)

    families = {name: registry[name][0] for name in registry}
    descriptions = {name: registry[name][1] for name in registry}
    result.to_csv(out / "results.csv")
    _write_summary(out / "summary.json", result, config, families, descriptions)
    written = ["results.csv", "summary.json"]
    try:
        import matplotlib  # noqa: F401
    except ImportError:
        print("matplotlib is not installed: skipped forgetting.png "
              "(pip install 'skcl[plot]' to draw it)", file=sys.stderr)
    else:
        _plot_forgetting(result, families, out / "forgetting.png")
        written.append("forgetting.png")
    print()
    print(result.format_summary())
    negative = {name: np.mean(values) for name, values in _negative_fractions(result).items()
                if max(values) > 0}
    if negative:
        print("negative share of the raw importance estimate, mean over months: "
              + ", ".join(f"{name} {value:.1%}" for name, value in negative.items()))
    print(f"\nwrote {', '.join(written)} to {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
