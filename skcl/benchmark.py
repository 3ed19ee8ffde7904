"""``skcl-benchmark``: every continual-learning strategy against full retraining.

Run it as ``skcl-benchmark`` (the console script) or ``python -m
skcl.benchmark``. It trains each strategy month by month on a stream (the
embedded :func:`~skcl.datasets.make_drifting_stream` by default, or a CSV or
parquet file) at several seeds (``--seeds``, default 3), optionally after
tuning it (``--tune``), scores every intermediate model on every month's
held-out part with :func:`~skcl.evaluation.evaluate_stream`, prints the
summary table (means with 95% intervals over seeds, differences to
``retrain`` as paired intervals, costs relative to ``retrain``) and the
verdicts on the original study's seven findings, and writes to ``--out``:

``results.csv``
    The tidy table: one row per (seed, strategy, training month, evaluated
    month) with the score, the cumulative samples processed and the wall time.
``summary.json``
    The configuration; per strategy its family, description and tuning grid;
    one summary row per (seed, strategy) (``seeds``); the intervals and mean
    costs per strategy (``summary``); the values tuning chose at each seed
    with every candidate's cross-validated score (``tuning``); the findings;
    the run's wall time.
``findings.md``
    The findings table: each claim, its verdict, and the intervals behind it.
``forgetting.png``
    Per evaluated month, the score of each strategy's final model (mean over
    seeds, band = 95% interval), one panel per strategy family; ``retrain`` in
    black and ``naive`` in red in every panel (needs matplotlib, the ``plot``
    extra).
``class_incremental.md``
    With ``--new-classes`` only: the class-incremental table (average
    incremental accuracy, final accuracy, forgetting per class, cost; mean and
    standard deviation over seeds) of a run where each malware family is a
    label that arrives mid-stream and every strategy grows its classes (see
    :ref:`new_classes`).

Strategies and their hyper-parameters
-------------------------------------
All strategies share one network: the bundled :class:`~skcl.MLP` with two
hidden layers of 64 units, Adam at ``lr=1e-3``, batches of 128 rows and
``--epochs`` epochs per month (default 5). At each seed every fine-tuning
strategy starts from the very same model after month one and differs only in
what it does afterwards. Without ``--tune`` the values below are ordinary
defaults from the literature's usual ranges; ``--list-strategies`` prints them
with the grid ``--tune`` searches.

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
  ``lam`` is scaled to give the penalty the same weight.
* ``online-ewc``: :class:`~skcl.OnlineEWC`, empirical Fisher, ``lam=100``,
  ``gamma=0.9`` (a tenth of the accumulated importance fades per month).
* ``rehearsal+<regularizer>``: ``rehearsal-fixed`` combined with each of the
  five regularizers above.

Tuning
------
``--tune`` runs :class:`~sklearn.model_selection.GridSearchCV` for every
strategy with a grid (all but ``retrain`` and ``naive``): ``lam`` over
decades for the regularizers, replay ratio and buffer policy for rehearsal,
``finetune_lr`` or the finishing epochs and their rate for the learning-rate
strategies, the weighting for averaging. Each candidate is trained on the
stream with :class:`~skcl.MonthlyKFold` (3 folds, 2 with ``--quick``; every
fold holds every month) and scored by :class:`~skcl.ForgettingScorer`
(``aggregate="mean"``, the benchmark's own criterion), on the **training
parts only**: the held-out parts that the table reports are never seen by
the search. Tuning is repeated at every seed; its time is the ``tune s``
column, apart from the final training's ``train s``.

Costs
-----
``samples`` (see :func:`~skcl.evaluation.evaluate_stream`): with ``M``
months of ``n`` training rows and ``E`` epochs, fine-tuning strategies and
``rehearsal-fixed`` process ``E * M * n`` rows, ``rehearsal-grow`` about
twice that, and ``retrain`` ``E * n * M (M + 1) / 2``. ``train s`` is the
wall time inside ``partial_fit``; ``peak MB`` the growth of the process's
resident memory during the final training and scoring (Linux; a lower bound
in a reused worker process); ``device MB`` the peak CUDA memory allocated,
on CUDA runs. Each cost is also given relative to ``retrain`` at the same
seed.

Parallel runs
-------------
Each (strategy, seed) is one task. ``--jobs N`` runs them in ``N`` joblib
worker processes, ``--dask-scheduler ADDRESS`` on a ``dask.distributed``
cluster (``joblib.parallel_config(backend="dask")``; the ``dask`` extra).
Every task sets torch to ``--threads`` threads (default 1), so the results
are identical to ``--jobs 1`` for the same seeds.
"""

import argparse
import math
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from joblib import parallel_config

from ._benchmark.class_incremental import write_class_table
from ._benchmark.findings import format_findings, judge_claims
from ._benchmark.report import (
    aggregate,
    final_curves,
    format_table,
    per_seed_values,
    plot_forgetting,
    seed_summaries,
    tuning_lines,
    write_json,
    write_results_csv,
)
from ._benchmark.runner import TaskProgress, run_tasks
from ._benchmark.strategies import BUFFER_SHARE, LR, strategies
from ._hashing import hash_columns
from .datasets import load_sparse_stream, make_drifting_stream
from .evaluation import _split_months
from .scoring import get_metric_scorer
from .utils._arrays import plain as _plain
from .utils._months import check_months
from .utils._stream_checks import check_loaded_stream

__all__ = ["main"]

_HIDDEN_UNITS = (64, 64)
_QUICK_HIDDEN_UNITS = (16,)
_TEST_SIZE = 0.3
_SEED_MAX = 2**32 - 1
_FLOAT32_MAX = float(np.finfo(np.float32).max)
_DASK_TIMEOUT = "10s"


# ----------------------------------------------------------------------
# command line
# ----------------------------------------------------------------------
def _metric(text):
    """``--metric``: accuracy, roc_auc, or a checked ``tpr_at_fpr`` form."""
    if text in ("accuracy", "roc_auc"):
        return text
    if text.startswith("tpr_at_fpr"):
        try:
            get_metric_scorer(text)
        except ValueError as exc:
            raise argparse.ArgumentTypeError(str(exc)) from None
        return text
    raise argparse.ArgumentTypeError(
        f"{text!r} is not a metric; pass accuracy, roc_auc or tpr_at_fpr=0.01")


def _positive_int(minimum, maximum=None):
    def parse(text):
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(
                f"{text!r} is not an integer; pass a whole number >= {minimum}") from None
        if value < minimum:
            raise argparse.ArgumentTypeError(
                f"{text!r} is too small; pass a whole number >= {minimum}")
        if maximum is not None and value > maximum:
            raise argparse.ArgumentTypeError(
                f"{text!r} is too large; pass a whole number <= {maximum}")
        return value
    return parse


def _build_parser():
    parser = argparse.ArgumentParser(
        prog="skcl-benchmark",
        description=(
            "Compare continual-learning strategies against full retraining, month by "
            "month, over several seeds: prints a summary table with 95%% intervals and "
            "the original study's findings judged, and writes results.csv, "
            "summary.json, findings.md and forgetting.png."
        ),
    )
    parser.add_argument(
        "--data", metavar="PATH",
        help="CSV or parquet file with a month column, a label column and numeric "
             "feature columns, or a scipy.sparse .npz matrix with --labels "
             "(default: the embedded make_drifting_stream)")
    parser.add_argument(
        "--hash-features", type=_positive_int(2), metavar="N",
        help="hash the --data feature columns into N sparse features: each token "
             "(whitespace-separated) of a text column is one feature, each numeric "
             "column one more (scikit-learn's FeatureHasher)")
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
                        help="print the strategy names, families, settings and tuning "
                             "grids, and exit")
    parser.add_argument(
        "--metric", type=_metric, default="accuracy",
        help="score of each month's test part: accuracy, roc_auc (one-vs-rest for more "
             "than two classes) or tpr_at_fpr[=MAX_FPR][@POSITIVE_LABEL], the detection "
             "rate at a false-positive budget (default 0.01; positive label: the greater "
             "label), e.g. tpr_at_fpr=0.001@malicious (default: %(default)s)")
    parser.add_argument("--device", default="cpu",
                        help="torch device, e.g. cpu or cuda (default: %(default)s)")
    parser.add_argument("--out", default="skcl-benchmark-results", metavar="DIR",
                        help="output directory, created if needed (default: %(default)s)")
    parser.add_argument("--quick", action="store_true",
                        help="tiny run for smoke tests (seconds): 4 months of 150 rows "
                             "(the first 3 months of --data), 2 epochs, a 16-unit network, "
                             "1 seed, grids cut to their end values and 2 tuning folds")
    parser.add_argument("--epochs", type=_positive_int(1), metavar="N",
                        help="training epochs per month (default: 5, 2 with --quick)")
    parser.add_argument("--seeds", type=_positive_int(1), metavar="N",
                        help="repetitions of every strategy with different model seeds "
                             "(--random-state, +1, ...); default: 3, 1 with --quick")
    parser.add_argument("--vary-split", action="store_true",
                        help="also draw each seed's held-out parts anew (default: one "
                             "split, seeded by --random-state, for every seed)")
    parser.add_argument("--tune", action="store_true",
                        help="grid-search every strategy's key knobs on the training "
                             "parts (MonthlyKFold, ForgettingScorer) before training it")
    parser.add_argument("--jobs", type=_positive_int(1), default=1, metavar="N",
                        help="(strategy, seed) tasks run in parallel worker processes "
                             "(default: %(default)s)")
    parser.add_argument("--threads", type=_positive_int(1), default=1, metavar="N",
                        help="torch threads of each task (default: %(default)s; the same "
                             "value gives the same results at any --jobs)")
    parser.add_argument("--dask-scheduler", metavar="ADDRESS",
                        help="run the tasks on this dask.distributed scheduler, e.g. "
                             "tcp://10.0.0.5:8786 (needs the dask extra)")
    parser.add_argument("--new-classes", action="store_true",
                        help="class-incremental run: every label is a family that may "
                             "arrive mid-stream (the embedded stream with "
                             "labels='family'), every strategy grows its classes "
                             "(new_classes='grow'), and a class-incremental table is "
                             "printed and written to class_incremental.md")
    parser.add_argument("--random-state", type=_positive_int(0, _SEED_MAX), default=0,
                        metavar="SEED",
                        help="seed of the data, the splits and the first model seed "
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
    try:
        parsed = torch.device(device)
    except (RuntimeError, ValueError):
        parser.error(f"--device {device!r} is not a torch device; use e.g. cpu or cuda")
    if parsed.type == "cuda" and not torch.cuda.is_available():
        parser.error(f"--device {device!r}: CUDA is not available on this machine; "
                     "use --device cpu")


def _check_out(parser, text):
    """Refuse an --out that is a file, lies under a file, or cannot be written."""
    out = Path(text)
    if out.exists() and not out.is_dir():
        parser.error(f"--out {text!r} is an existing file; pass a directory "
                     "(created if needed)")
    existing = out
    while not existing.exists() and existing != existing.parent:
        existing = existing.parent
    if not existing.is_dir():
        parser.error(f"--out {text!r} lies under {str(existing)!r}, which is a file; "
                     "pass a directory path")
    try:
        out.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryFile(dir=out):
            pass
    except OSError as exc:
        parser.error(f"--out {text!r} is not writable ({exc.strerror or exc}); pass a "
                     "directory you can write to")
    return out


def _read_frame(parser, path, text):
    try:
        import pandas as pd
    except ImportError:
        parser.error(f"--data {text!r} needs pandas to read it; pip install pandas")
    suffixes = "".join(path.suffixes).lower()
    try:
        if suffixes.endswith((".parquet", ".pq")):
            return pd.read_parquet(path)
        if ".csv" in suffixes:
            return pd.read_csv(path)
    except (ValueError, ImportError, OSError) as exc:
        parser.error(f"--data {text!r} could not be read: {exc}")
    parser.error(f"--data {text!r}: unknown file type {path.suffix!r}; pass "
                 "a .csv (optionally compressed, e.g. .csv.gz) or .parquet file")


def _load_data(parser, args):
    """Return ``X, y, months, description`` from --data or the embedded stream."""
    if args.data is None:
        if args.hash_features:
            parser.error("--hash-features hashes the columns of --data; pass --data PATH "
                         "(the embedded stream is numeric)")
        n_months = args.months or (4 if args.quick else 12)
        n_rows = 150 if args.quick else 1000
        labels = "family" if args.new_classes else "binary"
        X, y, months = make_drifting_stream(n_months=n_months, n_samples_per_month=n_rows,
                                            labels=labels, random_state=args.random_state)
        return X, y, months, (f"make_drifting_stream(n_months={n_months}, "
                              f"n_samples_per_month={n_rows}, labels={labels!r}, "
                              f"random_state={args.random_state})")
    path = Path(args.data)
    if not path.is_file():
        parser.error(f"--data {args.data!r}: no such file")
    if path.suffix.lower() == ".npz":
        if args.hash_features:
            parser.error(f"--hash-features hashes the columns of a CSV or parquet --data; "
                         f"{args.data!r} is a sparse matrix already: drop --hash-features")
        return _load_sparse_data(parser, args)
    import pandas as pd

    frame = _read_frame(parser, path, args.data)
    if len(frame) == 0:
        parser.error(f"--data {args.data!r} has a header but no rows; pass a file with "
                     "at least two months of rows")
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
    if not_numeric and not args.hash_features:
        parser.error(f"--data {args.data!r}: feature columns must be numeric; "
                     f"{', '.join(not_numeric)} are not (encode or drop them, or hash them "
                     "with --hash-features N)")
    missing = [str(c) for c in features.columns if features[c].isna().any()]
    missing += [c for c in (args.month_column, args.label_column) if frame[c].isna().any()]
    if missing:
        parser.error(f"--data {args.data!r} has missing values in {', '.join(missing)}; "
                     "impute or drop those rows")
    numeric = features[[c for c in features.columns if str(c) not in not_numeric]]
    values = numeric.to_numpy(dtype=np.float64)
    # float32 is what the networks compute in: a larger value would become inf
    too_large = ~(np.abs(values) <= _FLOAT32_MAX)
    if too_large.any():
        columns = [str(numeric.columns[j]) for j in np.flatnonzero(too_large.any(axis=0))]
        row = int(np.flatnonzero(too_large.any(axis=1))[0])
        parser.error(
            f"--data {args.data!r}: feature column(s) {', '.join(columns)} hold infinite "
            f"values or values beyond float32's range (+-{_FLOAT32_MAX:.3g}), e.g. "
            f"{values[row, np.flatnonzero(too_large[row])[0]]!r} in row {row}; rescale, "
            "clip or drop them")
    months = frame[args.month_column].to_numpy()
    _check_loaded(parser, args, values, frame[args.label_column].to_numpy(), months)
    if np.issubdtype(months.dtype, np.datetime64):
        months = np.datetime_as_string(months, unit="D")
    try:
        # the one month check: a warning names the order of date-like strings
        _, month_order = check_months(months, len(months))
    except ValueError:
        parser.error(f"--month-column {args.month_column!r} mixes types that cannot be "
                     "sorted; use one type, e.g. 'YYYY-MM' strings")
    month_order = _first_months(parser, args, month_order, args.data)
    keep = np.isin(months, month_order)
    y = frame[args.label_column].to_numpy()[keep]
    description = f"{args.data} ({len(month_order)} months)"
    if args.hash_features:
        # stateless: hashing the file once equals a FeatureHasher step per month
        X = hash_columns(features[keep], not_numeric, args.hash_features)
        return X, y, months[keep], f"{description}, hashed to {args.hash_features} features"
    X = values[keep].astype(np.float32)
    return X, y, months[keep], description


def _check_loaded(parser, args, X, y, months):
    """A usage error for missing months or labels, non-class labels, NaN features."""
    try:
        check_loaded_stream(X, y, months, month_name=f"--month-column {args.month_column!r}",
                            label_name=f"--label-column {args.label_column!r}")
    except ValueError as exc:
        source = args.data if args.labels is None else f"{args.data} + {args.labels}"
        parser.error(f"--data {source!r}: {exc}")


def _first_months(parser, args, month_order, source):
    """The months a run uses: the first ``--months`` (3 with ``--quick``), or all.

    Both loaders (dense and sparse) go through it, so both refuse a stream of
    fewer than two months before anything trains.
    """
    if args.months is not None:
        if args.months > len(month_order):
            parser.error(
                f"--months {args.months} exceeds the {len(month_order)} months in "
                f"{source!r}; pass --months {len(month_order)} or fewer")
        month_order = month_order[:args.months]
    elif args.quick:
        month_order = month_order[:3]
    if len(month_order) < 2:
        parser.error(f"--data {args.data!r} holds {len(month_order)} month "
                     f"({', '.join(map(str, month_order))}); a continual benchmark needs "
                     "at least 2")
    return month_order


def _load_sparse_data(parser, args):
    """``--data X.npz --labels labels.csv``: a sparse stream, never densified."""
    if args.labels is None:
        parser.error(f"--data {args.data!r} is a sparse matrix: pass --labels PATH with "
                     "its month and label columns")
    try:
        X, y, months = load_sparse_stream(args.data, args.labels,
                                          month_column=args.month_column,
                                          label_column=args.label_column)
    except (OSError, ValueError, ImportError) as exc:
        parser.error(f"--data {args.data!r} --labels {args.labels!r}: {exc}")
    _check_loaded(parser, args, X, y, months)
    month_order = _first_months(parser, args, np.unique(months), args.labels)
    keep = np.flatnonzero(np.isin(months, month_order))
    return (X[keep], y[keep], months[keep],
            f"{args.data} + {args.labels} ({len(month_order)} months, sparse)")


def _check_stream(parser, args, y, months, split_seeds, tune_folds):
    """Refuse, before anything trains, a stream the benchmark cannot score."""
    classes = np.unique(y)
    source = f"--data {args.data!r}" if args.data else "the stream"
    if len(classes) < 2:
        parser.error(
            f"--label-column {args.label_column!r} of {source} holds a single class "
            f"({_plain(classes[0])!r}): every model would score a meaningless {args.metric} of "
            "1.0 or none at all; pass a label column with at least two classes")
    if args.metric.startswith("tpr_at_fpr"):
        if len(classes) != 2:
            parser.error(f"--metric {args.metric} scores a detector of two classes, but "
                         f"{source} has {len(classes)}; use --metric accuracy or roc_auc")
        pos_label = get_metric_scorer(args.metric)._kwargs.get("pos_label")
        if pos_label is not None and pos_label not in classes.tolist():
            parser.error(f"--metric {args.metric}: the positive label {pos_label!r} is not "
                         f"a class of {source} ({[_plain(c) for c in classes]}); name one")
    months, month_order = check_months(months, len(y))
    for split_seed in split_seeds:
        try:
            splits = _split_months(y, months, month_order, _TEST_SIZE, split_seed)
        except ValueError as exc:
            parser.error(f"{source}: {exc}")
        for month, (train, test) in zip(month_order, splits):
            if args.metric != "accuracy" and len(np.unique(y[test])) < 2:
                parser.error(
                    f"{source}: month {_plain(month)!r} holds one class "
                    f"({_plain(np.unique(y[test])[0])!r}), "
                    f"where {args.metric} is undefined; use --metric accuracy, or drop or "
                    "merge the month")
            if args.tune and len(train) < tune_folds:
                parser.error(
                    f"{source}: month {_plain(month)!r} has {len(train)} training rows, too few "
                    f"for --tune's {tune_folds} folds; drop --tune or merge the month")


def _dask_client(parser, address):
    try:
        from dask.distributed import Client
    except ImportError:
        parser.error("--dask-scheduler needs dask.distributed; pip install 'skcl[dask]'")
    try:
        return Client(address, timeout=_DASK_TIMEOUT)
    except (OSError, TimeoutError, ValueError, TypeError) as exc:
        parser.error(f"--dask-scheduler {address!r}: cannot connect ({exc}); pass the "
                     "address a dask scheduler prints, e.g. tcp://127.0.0.1:8786")


def _list_strategies(registry):
    width = max(map(len, registry))
    for name, strategy in registry.items():
        grid = "; ".join(f"{key} in {list(values)}" for key, values in strategy.grid.items())
        print(f"{name.ljust(width)}  [{strategy.family}] {strategy.description}"
              + (f"\n{' ' * width}  --tune: {grid}" if grid else ""))


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
        0 on success. Invalid options and data that cannot be benchmarked
        exit through ``SystemExit(2)`` with a one-line message naming the
        value and the fix, as argparse does, before any strategy trains.

    Examples
    --------
    >>> from skcl.benchmark import main
    >>> main(["--quick", "--seeds", "2", "--tune", "--out", "results"])  # doctest: +SKIP
    0
    """
    parser = _build_parser()
    args = parser.parse_args(argv)
    registry = strategies()
    if args.list_strategies:
        _list_strategies(registry)
        return 0
    names = _select_strategies(parser, args.strategies, registry)
    _check_device(parser, args.device)
    n_seeds = args.seeds or (1 if args.quick else 3)
    if args.random_state + n_seeds - 1 > _SEED_MAX:
        parser.error(f"--random-state {args.random_state} with --seeds {n_seeds} needs "
                     f"seeds up to {args.random_state + n_seeds - 1}, beyond {_SEED_MAX}; "
                     "pass a smaller --random-state")
    if args.dask_scheduler is not None and args.jobs != 1:
        parser.error("--jobs and --dask-scheduler exclude each other: under dask every "
                     "worker of the cluster runs tasks; drop --jobs")
    if args.new_classes and (args.tune or args.metric != "accuracy"):
        parser.error("--new-classes scores accuracy without tuning (a model cannot be "
                     "scored by roc_auc on classes it has not met yet); drop --tune and "
                     "--metric roc_auc")
    seeds = [args.random_state + index for index in range(n_seeds)]
    split_seeds = seeds if args.vary_split else [args.random_state] * n_seeds
    tune_folds = 2 if args.quick else 3
    X, y, months, data_description = _load_data(parser, args)
    _check_stream(parser, args, y, months, sorted(set(split_seeds)), tune_folds)
    out = _check_out(parser, args.out)
    client = None if args.dask_scheduler is None else _dask_client(parser, args.dask_scheduler)

    n_train_rows = sum(len(y[months == month]) - math.ceil(_TEST_SIZE * np.sum(months == month))
                       for month in np.unique(months))
    classes = np.unique(y)
    metric = "roc_auc_ovr" if args.metric == "roc_auc" and len(classes) > 2 else args.metric
    config = {
        "data": data_description,
        "n_rows": int(len(y)),
        "n_features": int(X.shape[1]),
        "classes": [c.item() if isinstance(c, np.generic) else c for c in classes],
        "test_size": _TEST_SIZE,
        "epochs": args.epochs or (2 if args.quick else 5),
        "hidden_units": list(_QUICK_HIDDEN_UNITS if args.quick else _HIDDEN_UNITS),
        "lr": LR,
        "batch_size": 32 if args.quick else 128,
        "buffer_capacity": max(1, int(BUFFER_SHARE * n_train_rows)),
        "device": args.device,
        "random_state": args.random_state,
        "seeds": seeds,
        "split_seeds": split_seeds,
        "metric": metric,
        "tune": args.tune,
        "quick": args.quick,
        "tune_folds": tune_folds,
        "threads": args.threads,
        "jobs": args.jobs,
        "dask_scheduler": args.dask_scheduler,
        "argv": list(sys.argv[1:] if argv is None else argv),
        "new_classes": args.new_classes,
    }
    tasks = [(name, seed, split_seed) for seed, split_seed in zip(seeds, split_seeds)
             for name in names]
    print(f"skcl-benchmark: {len(names)} strategies x {n_seeds} seed(s) on "
          f"{data_description}, {config['epochs']} epoch(s) per month"
          f"{', tuned' if args.tune else ''}, device {args.device}, "
          + (f"dask scheduler {args.dask_scheduler}" if client is not None
             else f"{args.jobs} job(s) x {args.threads} thread(s)"), flush=True)
    progress = TaskProgress(len(tasks))
    start = time.perf_counter()
    try:
        if client is None:
            results = run_tasks(tasks, config=config, X=X, y=y, months=months,
                                n_jobs=args.jobs, on_done=progress.done)
        else:
            with client, parallel_config(backend="dask"):
                results = run_tasks(tasks, config=config, X=X, y=y, months=months,
                                    n_jobs=-1, on_done=progress.done)
    finally:
        progress.close()
    wall_seconds = time.perf_counter() - start

    _, month_order = check_months(months, len(y))
    month_labels = [m.item() if isinstance(m, np.generic) else m for m in month_order]
    reference = "retrain" if "retrain" in names else None
    rows = seed_summaries(results, month_labels, metric, reference)
    summary = aggregate(rows)
    findings = judge_claims(per_seed_values(rows))
    write_results_csv(out / "results.csv", results)
    write_json(out / "summary.json", {
        "metric": metric, "reference": reference, "months": month_labels,
        "config": config, "wall_seconds": wall_seconds,
        "strategies": {name: {"family": registry[name].family,
                              "description": registry[name].description,
                              "grid": {k: list(v) for k, v in registry[name].grid.items()}}
                       for name in names},
        "summary": summary, "seeds": rows,
        "tuning": {name: {str(r["seed"]): {"best_params": r["best_params"],
                                           "tune_seconds": r["tune_seconds"],
                                           "cv_results": r["cv_results"]}
                          for r in results if r["strategy"] == name and r["best_params"]}
                   for name in names if args.tune and registry[name].grid},
        "findings": findings,
    })
    (out / "findings.md").write_text(format_findings(findings, markdown=True),
                                     encoding="utf-8")
    written = ["results.csv", "summary.json", "findings.md"]
    try:
        import matplotlib  # noqa: F401
    except ImportError:
        print("matplotlib is not installed: skipped forgetting.png "
              "(pip install 'skcl[plot]' to draw it)", file=sys.stderr)
    else:
        plot_forgetting(final_curves(results, month_labels),
                        {name: registry[name].family for name in names}, month_labels,
                        metric, out / "forgetting.png")
        written.append("forgetting.png")
    print()
    print(format_table(summary, metric, reference))
    negative = {row["strategy"]: row["negative_fraction"] for row in summary
                if row.get("negative_fraction")}
    if negative:
        print("negative share of the raw importance estimate, mean over months and seeds: "
              + ", ".join(f"{name} {value:.1%}" for name, value in negative.items()))
    if args.tune:
        print("\nchosen by tuning (GridSearchCV on the training parts):")
        print("\n".join(tuning_lines(results)))
    print()
    print(format_findings(findings))
    if args.new_classes:
        written.append(write_class_table(out, results, reference))
    print(f"\n{len(tasks)} task(s) in {wall_seconds:.1f} s; wrote {', '.join(written)} "
          f"to {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
