"""Tune a ContinualClassifier for forgetting with GridSearchCV (issue #5).

A 3x3 grid over ``regularizer__lam`` (an :class:`~skcl.L2` pull towards last
month's weights, or :class:`~skcl.EWC` with ``--regularizer ewc``) and
``rehearsal__replay_ratio`` (a :class:`~skcl.RehearsalBuffer`), on
``make_drifting_stream``, cross-validated with :class:`~skcl.MonthlyKFold`
(every fold trains and tests on every month) and scored with
:class:`~skcl.ForgettingScorer`: ``past`` (mean over the months before the
newest: what the final model still knows; used to refit), ``mean`` and
``worst`` (the weakest month). ``months`` reach ``fit``, the scorer and the
splitter through scikit-learn's metadata routing.

It prints the ``cv_results_`` table (parameters, mean/std test scores, rank,
mean fit time), the best parameters against the unregularized, replay-free
corner of the grid, and the wall time of the same search with

* ``n_jobs=1``, torch's default intra-op threads (all cores, one fit at a time);
* ``n_jobs=1``, one torch thread;
* ``n_jobs=2`` (joblib's loky processes), one torch thread per worker.

Threads per worker: joblib's loky backend already caps each worker's OpenMP
threads at ``cpu_count // n_jobs`` (through ``OMP_NUM_THREADS``, which torch
reads when the worker imports it), so two workers on two cores each get one
thread and do not oversubscribe. The script makes that explicit with
``joblib.parallel_config(inner_max_num_threads=1)`` and checks it: each fit
records ``torch.get_num_threads()`` in its worker. Nothing in
``ContinualClassifier`` needs to set threads. The ``n_jobs=2`` search runs
after a warm-up search that starts the workers (their start, mostly importing
torch, is reported apart); ``idle_worker_timeout`` keeps them alive through
the serial runs, and the script checks that the timed searches reused them.

Timings on a shared machine are noisy; the three searches run back to back
``--repeats`` times in rotating order and the median is reported.

Usage::

    python benchmarks/report_search.py
    python benchmarks/report_search.py --quick            # seconds-long smoke run
    python benchmarks/report_search.py --regularizer ewc --table-only
"""

import argparse
import os
import platform
import statistics
import time

import joblib
import numpy as np
import sklearn
import torch
from sklearn.model_selection import GridSearchCV

from skcl import ContinualClassifier, ForgettingScorer, MonthlyKFold
from skcl.datasets import make_drifting_stream


class ThreadRecordingClassifier(ContinualClassifier):
    """A ContinualClassifier that records its process and torch threads while it fits."""

    def fit(self, X, y, months=None, **fit_params):
        threads = torch.get_num_threads()
        super().fit(X, y, months=months, **fit_params)
        self.torch_threads_ = threads
        self.pid_ = os.getpid()
        return self


def thread_scorer(estimator, X, y, months=None):
    """A 'score' that reports the fitted estimator's torch threads into cv_results_."""
    return float(estimator.torch_threads_)


def pid_scorer(estimator, X, y, months=None):
    """A 'score' that reports the process that fitted the estimator."""
    return float(estimator.pid_)


def worker_pids(search):
    results = search.cv_results_
    return {int(results[f"split{k}_test_pid"][c]) for k in range(search.n_splits_)
            for c in range(len(results["params"]))}


def parse_args():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--n-months", type=int, default=8)
    parser.add_argument("--n-samples-per-month", type=int, default=3000)
    parser.add_argument("--max-epochs", type=int, default=4)
    parser.add_argument("--n-splits", type=int, default=3)
    parser.add_argument("--regularizer", choices=["l2", "ewc"], default="l2")
    parser.add_argument("--lams", type=float, nargs=3, default=None,
                        help="the three lam values (default: 0, 1, 10 for L2; "
                             "0, 10, 100 for EWC)")
    parser.add_argument("--ratios", type=float, nargs=3, default=[0.0, 0.25, 0.5])
    parser.add_argument("--repeats", type=int, default=1,
                        help="timed repeats of each n_jobs configuration")
    parser.add_argument("--table-only", action="store_true",
                        help="one search (n_jobs=1, one torch thread): the table, no timings")
    parser.add_argument("--quick", action="store_true",
                        help="tiny data and one epoch: checks the script runs")
    return parser.parse_args()


def make_search(args, n_jobs):
    from skcl import EWC, L2, RehearsalBuffer

    regularizer = L2() if args.regularizer == "l2" else EWC()
    lams = args.lams or ([0.0, 1.0, 10.0] if args.regularizer == "l2" else [0.0, 10.0, 100.0])
    clf = ThreadRecordingClassifier(
        module__hidden_units=(64,), max_epochs=args.max_epochs, batch_size=128,
        lr=1e-2, finetune_lr=1e-3, regularizer=regularizer,
        rehearsal=RehearsalBuffer(capacity=2_000, random_state=0), random_state=0,
    )
    scoring = {
        "past": ForgettingScorer(aggregate="past"),
        "mean": ForgettingScorer(aggregate="mean"),
        "worst": ForgettingScorer(aggregate="min"),
        "threads": thread_scorer,
        "pid": pid_scorer,
    }
    grid = {"regularizer__lam": lams, "rehearsal__replay_ratio": args.ratios}
    return GridSearchCV(clf, grid, scoring=scoring, refit="past",
                        cv=MonthlyKFold(n_splits=args.n_splits, shuffle=True, random_state=0),
                        n_jobs=n_jobs, error_score="raise")


def print_results(search):
    results = search.cv_results_
    header = (f"{'lam':>7} {'replay':>6} | {'past':>15} {'mean':>15} {'worst':>15} | "
              f"{'rank':>4} {'fit s':>6}")
    print(header)
    print("-" * len(header))
    for k in np.argsort(results["rank_test_past"], kind="stable"):
        params = results["params"][k]
        cells = [f"{results[f'mean_test_{name}'][k]:.4f} ± {results[f'std_test_{name}'][k]:.4f}"
                 for name in ("past", "mean", "worst")]
        print(f"{params['regularizer__lam']:>7g} {params['rehearsal__replay_ratio']:>6g} | "
              f"{cells[0]:>15} {cells[1]:>15} {cells[2]:>15} | "
              f"{results['rank_test_past'][k]:>4} {results['mean_fit_time'][k]:>6.2f}")
    corner = next(k for k, p in enumerate(results["params"])
                  if p["regularizer__lam"] == 0 and p["rehearsal__replay_ratio"] == 0)
    best = search.best_index_
    print(f"\nbest (refit on 'past'): {search.best_params_}")
    for name in ("past", "mean", "worst"):
        gain = results[f"mean_test_{name}"][best] - results[f"mean_test_{name}"][corner]
        spread = max(results[f"std_test_{name}"][best], results[f"std_test_{name}"][corner])
        print(f"  {name:>5}: best {results[f'mean_test_{name}'][best]:.4f} vs "
              f"lam=0, replay=0 {results[f'mean_test_{name}'][corner]:.4f} "
              f"(gain {gain:+.4f}, fold std up to {spread:.4f})")


def main():
    args = parse_args()
    if args.quick:
        args.n_months, args.n_samples_per_month, args.max_epochs = 4, 120, 1
        args.n_splits = 2
    sklearn.set_config(enable_metadata_routing=True)
    X, y, months = make_drifting_stream(n_months=args.n_months,
                                        n_samples_per_month=args.n_samples_per_month,
                                        random_state=0)
    default_threads = torch.get_num_threads()
    print(f"python {platform.python_version()}, torch {torch.__version__}, "
          f"scikit-learn {sklearn.__version__}, joblib {joblib.__version__}; "
          f"{os.cpu_count()} CPUs, torch default threads {default_threads}")
    print(f"data: {args.n_months} months x {args.n_samples_per_month} rows, "
          f"{X.shape[1]} features; {args.regularizer.upper()} x RehearsalBuffer, "
          f"{args.max_epochs} epochs/month, MonthlyKFold(n_splits={args.n_splits})\n")

    if args.table_only:
        torch.set_num_threads(1)
        print_results(make_search(args, n_jobs=1).fit(X, y, months=months))
        return

    def serial(threads):
        def run():
            torch.set_num_threads(threads)
            try:
                return make_search(args, n_jobs=1).fit(X, y, months=months)
            finally:
                torch.set_num_threads(default_threads)
        return run

    def parallel():
        # idle_worker_timeout: keep the started workers through the serial runs
        with joblib.parallel_config(backend="loky", inner_max_num_threads=1,
                                    idle_worker_timeout=3600):
            return make_search(args, n_jobs=2).fit(X, y, months=months)

    # start the loky workers (importing torch and skcl) outside the timings
    start = time.perf_counter()
    warmup_pids = worker_pids(parallel())
    warmup = time.perf_counter() - start

    variants = {f"n_jobs=1, {default_threads} torch threads": serial(default_threads),
                "n_jobs=1, 1 torch thread": serial(1),
                "n_jobs=2 (loky), 1 torch thread per worker": parallel}
    times = {name: [] for name in variants}
    searches = {}
    names = list(variants)
    for repeat in range(args.repeats):
        for name in names[repeat % len(names):] + names[:repeat % len(names)]:
            start = time.perf_counter()
            searches[name] = variants[name]()
            times[name].append(time.perf_counter() - start)
            print(f"  repeat {repeat}: {name:<45} {times[name][-1]:7.2f} s", flush=True)
    print()

    print_results(searches[names[0]])
    print("\nwall time of the whole search (9 candidates x "
          f"{args.n_splits} folds + refit), median of {args.repeats}:")
    for name in names:
        threads = sorted(set(searches[name].cv_results_["mean_test_threads"].tolist()))
        print(f"  {name:<45} {statistics.median(times[name]):7.2f} s  "
              f"(torch threads seen in fits: {threads})")
    print(f"  speed-up n_jobs=2 vs n_jobs=1 with {default_threads} threads: "
          f"{statistics.median(times[names[0]]) / statistics.median(times[names[2]]):.2f}x; "
          f"vs 1 thread: "
          f"{statistics.median(times[names[1]]) / statistics.median(times[names[2]]):.2f}x")
    reused = worker_pids(searches[names[2]]) <= warmup_pids
    print(f"  (first n_jobs=2 search, starting the workers: {warmup:.2f} s; the timed "
          f"searches reused those worker processes: {reused})")
    same = np.allclose(searches[names[0]].cv_results_["mean_test_past"],
                       searches[names[2]].cv_results_["mean_test_past"])
    print(f"  n_jobs=1 and n_jobs=2 scores identical: {same}")
    print("Timings are noisy: other processes share this machine's cores.")


if __name__ == "__main__":
    main()
