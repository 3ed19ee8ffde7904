"""Forgetting and cost of the data-level strategies on the embedded drifting stream.

Not run in CI. On ``make_drifting_stream(n_months=12, random_state=0)``, with a
stratified held-out test part of every month (30%, the same split for every
strategy, made by :func:`skcl.evaluation.evaluate_stream`), prints for naive
fine-tuning, full retraining, rehearsal at replay ratios 0.25 / 0.5 / 0.75 with
fixed and growing epochs (plus the per-month and class-balanced policies at
0.5), rehearsal combined with EWC, and model averaging:

* the mean over the 12 months of the test accuracy after month 12;
* the month-1 test accuracy after month 12 (forgetting);
* the training rows processed (every epoch, replayed rows included), relative
  to full retraining.

Every strategy uses the same network and optimizer settings (ContinualClassifier
defaults). With ``--seeds N`` the models are trained with seeds 0..N-1 (the
stream and its split stay fixed) and the table shows mean and standard
deviation.

Usage::

    python benchmarks/report_rehearsal.py [--seeds N] [--capacity ROWS]
                                          [--threads N] [--progress] [--quick]
"""

import argparse
import statistics
import time

import torch

from skcl import EWC, ContinualClassifier, MonthlyAveragingClassifier, RehearsalBuffer
from skcl.datasets import make_drifting_stream
from skcl.evaluation import evaluate_stream


def strategies(seed, capacity, max_epochs, ewc_lam):
    def net(**params):
        return ContinualClassifier(max_epochs=max_epochs, random_state=seed, **params)

    def buffer(replay_ratio, epoch_size="fixed", policy="reservoir"):
        return RehearsalBuffer(capacity=capacity, replay_ratio=replay_ratio,
                               epoch_size=epoch_size, policy=policy)

    named = {"retrain": net(update="retrain"), "naive": net()}
    for epoch_size in ("fixed", "grow"):
        for ratio in (0.25, 0.5, 0.75):
            named[f"rehearsal {ratio:.2f} {epoch_size}"] = net(
                rehearsal=buffer(ratio, epoch_size))
    for policy in ("per_month", "class_balanced"):
        named[f"rehearsal 0.50 fixed {policy}"] = net(
            rehearsal=buffer(0.5, policy=policy))
    named[f"rehearsal 0.50 fixed + EWC(lam={ewc_lam:g})"] = net(
        rehearsal=buffer(0.5), regularizer=EWC(lam=ewc_lam, random_state=seed))
    for weights in ("uniform", "recency"):
        named[f"averaging {weights}"] = MonthlyAveragingClassifier(
            ContinualClassifier(max_epochs=max_epochs), weights=weights,
            random_state=seed)
    return named


def summarize(values):
    if len(values) == 1:
        return f"{values[0]:.3f}"
    return f"{statistics.mean(values):.3f} ± {statistics.stdev(values):.3f}"


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=1,
                        help="model seeds 0..N-1 (default 1)")
    parser.add_argument("--capacity", type=int, default=2000,
                        help="rehearsal buffer capacity in rows (default 2000)")
    parser.add_argument("--ewc-lam", type=float, default=100.0,
                        help="EWC strength for the combined strategy (default 100)")
    parser.add_argument("--threads", type=int, default=1,
                        help="torch threads (default 1)")
    parser.add_argument("--progress", action="store_true",
                        help="show progress on stderr")
    parser.add_argument("--quick", action="store_true",
                        help="4 months of 300 rows, 2 epochs: a smoke test")
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)

    n_months, n_rows, max_epochs = (4, 300, 2) if args.quick else (12, 1000, 5)
    X, y, months = make_drifting_stream(n_months=n_months, n_samples_per_month=n_rows,
                                        random_state=0)
    results = {}
    start = time.perf_counter()
    for seed in range(args.seeds):
        evaluation = evaluate_stream(
            strategies(seed, args.capacity, max_epochs, args.ewc_lam), X, y, months,
            test_size=0.3, reference="retrain", random_state=0, progress=args.progress)
        for row in evaluation.summary:
            results.setdefault(row["strategy"], []).append(row)

    print(f"make_drifting_stream(n_months={n_months}, n_samples_per_month={n_rows}, "
          "random_state=0); 30% of every month held out (stratified);")
    print(f"ContinualClassifier defaults, max_epochs={max_epochs}; rehearsal "
          f"capacity={args.capacity} rows; model seeds 0..{args.seeds - 1}; "
          f"{time.perf_counter() - start:.0f} s")
    header = (f"{'strategy':<40} {'mean acc':>15} {'month-1 acc':>15} "
              f"{'samples / retrain':>18}")
    print(header)
    print("-" * len(header))
    for name, rows in results.items():
        print(f"{name:<40} {summarize([r['mean_score'] for r in rows]):>15} "
              f"{summarize([r['first_month_score'] for r in rows]):>15} "
              f"{statistics.mean(r['relative_cost'] for r in rows):>18.2f}")


if __name__ == "__main__":
    main()
