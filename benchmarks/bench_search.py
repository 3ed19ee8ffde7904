"""GridSearchCV speed-up with n_jobs=2 over n_jobs=1 on a ContinualClassifier (issue #6).

A 3x3 grid, 3-fold CV (27 fits of the whole stream, month by month: 6
months x 600 rows, 20 features, 2 epochs per month) on
``skcl.datasets.make_drifting_stream``, with ``months`` routed to ``fit``
through scikit-learn's metadata routing. ``refit=False`` by default: the refit
is one more fit that runs alone in the parent, whatever ``n_jobs`` is (pass
``--refit`` to include it).

Two tables:

1. *Threads per worker*: ``torch.get_num_threads()`` as seen inside a
   ``ContinualClassifier.fit`` running in the search's workers, under joblib's
   default loky settings, under ``parallel_config(inner_max_num_threads=1)``
   and with the limit lifted (``inner_max_num_threads=<all cores>``: the
   oversubscribed case). Each configuration runs a short search (4 months x
   200 rows, 2-fold), which starts its worker processes when the previous
   configuration's cannot be reused, then one timed full search on the
   started workers (one run each: a coarse view, not a paired comparison).
2. *Speed-up*: ``n_jobs=1`` in the parent process with torch's default
   threads, ``n_jobs=1`` with 1 torch thread, and ``n_jobs=2`` (loky, 1 torch
   thread per worker), timed in rotation after a warm-up search that starts
   the workers, so all see the same background load and the reused workers'
   start is excluded.

Usage::

    python benchmarks/bench_search.py
    python benchmarks/bench_search.py --device cuda
    python benchmarks/bench_search.py --quick
"""

import os

import numpy as np
import sklearn
import torch
from _timing import (
    add_common_arguments,
    format_ms,
    format_ratio,
    machine_description,
    new_parser,
    paired_ratio,
    print_table,
    run_interleaved,
    setup,
    timed,
    write_json,
)
from joblib import parallel_config
from sklearn.model_selection import GridSearchCV, KFold

from skcl import ContinualClassifier
from skcl.datasets import make_drifting_stream

TARGET = 1.7


class ThreadReportingClassifier(ContinualClassifier):
    """A ContinualClassifier that records torch's intra-op threads during fit."""

    def fit(self, X, y, months=None, **fit_params):
        super().fit(X, y, months=months, **fit_params)
        # fitted state travels back to the parent with the estimator only on
        # refit, so the count is also written where the parent can read it
        self.torch_threads_ = torch.get_num_threads()
        report = os.environ.get("SKCL_BENCH_THREAD_REPORT")
        if report:
            with open(report, "a") as handle:
                handle.write(f"{os.getpid()} {self.torch_threads_}\n")
        return self


def param_grid(kind):
    if kind == "lr":
        return {"lr": [1e-3, 3e-3, 1e-2], "finetune_lr": [1e-4, 3e-4, 1e-3]}
    # kind == "strategy": regularizer strength x replay share
    return {"regularizer__lam": [1.0, 10.0, 100.0],
            "rehearsal__replay_ratio": [0.0, 0.25, 0.5]}


def make_estimator(kind, device, max_epochs, estimator_class=ContinualClassifier):
    params = dict(module__hidden_units=(64, 64), max_epochs=max_epochs, batch_size=128,
                  lr=1e-3, random_state=0, device=device)
    if kind == "strategy":
        import skcl

        params["regularizer"] = skcl.EWC(lam=10.0)
        params["rehearsal"] = skcl.RehearsalBuffer(capacity=2000, replay_ratio=0.25)
    return estimator_class(**params)


def make_search(estimator, kind, n_jobs, n_splits, refit):
    return GridSearchCV(estimator, param_grid(kind), cv=KFold(n_splits, shuffle=True,
                                                               random_state=0),
                        n_jobs=n_jobs, refit=refit)


def thread_report(path):
    counts = {}
    if os.path.exists(path):
        with open(path) as handle:
            for line in handle:
                pid, threads = line.split()
                counts.setdefault(int(threads), set()).add(pid)
        os.remove(path)
    return ", ".join(f"{threads} ({len(pids)} processes)"
                     for threads, pids in sorted(counts.items())) or "none recorded"


def main():
    parser = add_common_arguments(new_parser(__doc__.splitlines()[0]), default_repeats=3)
    parser.add_argument("--grid", choices=["lr", "strategy"], default=None,
                        help="'lr' (lr x finetune_lr) or 'strategy' (regularizer__lam x "
                             "rehearsal__replay_ratio; needs skcl.EWC and "
                             "skcl.RehearsalBuffer). Default: 'strategy' when available.")
    parser.add_argument("--refit", action="store_true", help="include the refit")
    parser.add_argument("--skip-threads", action="store_true",
                        help="skip the table of threads per worker")
    args = parser.parse_args()
    device, repeats = setup(args, default_repeats=3)
    import skcl

    kind = args.grid or ("strategy" if hasattr(skcl, "EWC") and hasattr(skcl, "RehearsalBuffer")
                         else "lr")
    # the thread table only needs a short search; the speed-up a longer one
    X_small, y_small, months_small = make_drifting_stream(
        n_months=4, n_samples_per_month=200, random_state=0)
    if args.quick:
        X, y, months = X_small, y_small, months_small
        n_splits, max_epochs = 2, 1
    else:
        X, y, months = make_drifting_stream(n_months=6, n_samples_per_month=600,
                                            random_state=0)
        n_splits, max_epochs = 3, 2
    n_cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    print(f"machine: {machine_description(device)}")
    print(f"data: make_drifting_stream {X.shape}, {len(np.unique(months))} months; grid "
          f"{param_grid(kind)}; {n_splits}-fold; max_epochs={max_epochs}; refit={args.refit}; "
          f"{repeats} repeats, median (min-max)")
    sklearn.set_config(enable_metadata_routing=True)
    results = {"machine": machine_description(device), "grid": kind}

    # warm-up in the parent: first-call costs (imports, allocator) out of the tables
    make_estimator(kind, device, max_epochs).fit(X_small, y_small, months=months_small)

    if not args.skip_threads:
        report = os.path.abspath(f".bench_search_threads_{os.getpid()}.txt")
        os.environ["SKCL_BENCH_THREAD_REPORT"] = report  # inherited by loky workers
        configs = {
            "n_jobs=1 (parent)": (1, {}),
            "n_jobs=2, loky defaults": (2, {}),
            "n_jobs=2, parallel_config(inner_max_num_threads=1)": (
                2, {"backend": "loky", "inner_max_num_threads": 1}),
            f"n_jobs=2, inner_max_num_threads={n_cores} (oversubscribed)": (
                2, {"backend": "loky", "inner_max_num_threads": n_cores}),
        }
        rows = []
        for name, (n_jobs, config) in configs.items():
            estimator = make_estimator(kind, device, max_epochs, ThreadReportingClassifier)
            short = make_search(estimator, kind, n_jobs, 2, args.refit)
            full = make_search(estimator, kind, n_jobs, n_splits, args.refit)
            with parallel_config(**config):
                first = timed(
                    lambda s=short: s.fit(X_small, y_small, months=months_small), device)
                second = timed(lambda s=full: s.fit(X, y, months=months), device)
            rows.append([name, thread_report(report), f"{first:.2f}", f"{second:.2f}"])
        del os.environ["SKCL_BENCH_THREAD_REPORT"]
        print_table("torch threads inside each fit, per configuration",
                    ["configuration", "torch threads: count",
                     "short search s (starts the workers)", "full search s (workers reused)"],
                    rows)
        results["threads"] = rows

    searches = {
        n_jobs: make_search(make_estimator(kind, device, max_epochs), kind, n_jobs,
                            n_splits, args.refit)
        for n_jobs in (1, 2)
    }

    def run(n_jobs, parent_threads=None):
        previous = torch.get_num_threads()
        if parent_threads is not None:
            torch.set_num_threads(parent_threads)
        try:
            with parallel_config(backend="loky", inner_max_num_threads=1):
                searches[n_jobs].fit(X, y, months=months)
        finally:
            torch.set_num_threads(previous)

    default_threads = torch.get_num_threads()
    run(2)  # warm-up: starts the loky workers, reused below
    names = {"n_jobs=1": f"1 (torch threads {default_threads}, the default)",
             "n_jobs=1, 1 thread": "1 (torch threads 1)",
             "n_jobs=2": "2 (loky, torch threads 1 per worker)"}
    times = run_interleaved({"n_jobs=1": lambda: run(1),
                             "n_jobs=1, 1 thread": lambda: run(1, parent_threads=1),
                             "n_jobs=2": lambda: run(2)}, repeats, device)
    rows = []
    for name, label in names.items():
        row = [label, format_ms(times[name]), "", ""]
        if name == "n_jobs=2":
            for base in ("n_jobs=1", "n_jobs=1, 1 thread"):
                speed_up = paired_ratio(times[base], times["n_jobs=2"])
                row = [label, format_ms(times[name]),
                       f"{format_ratio(*speed_up)} over {names[base]}",
                       f">= {TARGET}: {'met' if speed_up[0] >= TARGET else 'MISSED'}"]
                rows.append(row)
        else:
            rows.append(row)
    same = np.allclose(searches[1].cv_results_["mean_test_score"],
                       searches[2].cv_results_["mean_test_score"])
    print_table(
        f"GridSearchCV speed-up, {len(searches[1].cv_results_['params'])} candidates x "
        f"{n_splits} folds, device {device}",
        ["n_jobs", "search ms", "speed-up", "target"], rows)
    print(f"\nsame cv scores with n_jobs=1 and n_jobs=2: {same}")
    results["times"] = times
    write_json(args.json, results)


if __name__ == "__main__":
    main()
