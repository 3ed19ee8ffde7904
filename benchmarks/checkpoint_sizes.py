"""Checkpoint size and resume-equals-uninterrupted check for every benchmark strategy.

Run from the repository root (about a minute on two CPU cores)::

    OMP_NUM_THREADS=1 python benchmarks/checkpoint_sizes.py [--epochs 1]

On the benchmark's default stream (``make_drifting_stream(n_months=12,
n_samples_per_month=1000, random_state=0)``, 70% of each month for training as
``skcl-benchmark`` uses it, its network and buffer), each strategy is trained
on months 1-11, saved with :func:`skcl.checkpoint.save_checkpoint`, loaded
into a fresh estimator and trained on month 12; the same is done without
stopping. The table gives the checkpoint's size, a ``joblib.dump`` of the
same estimator for comparison, and whether the resumed weights, optimizer
state and predictions equal the uninterrupted run's bit for bit.
"""

import argparse
import io
import tempfile

import joblib
import numpy as np
import torch

from skcl._benchmark.strategies import BUFFER_SHARE, strategies
from skcl.checkpoint import load_checkpoint, save_checkpoint
from skcl.datasets import make_drifting_stream


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--epochs", type=int, default=1)
    args = parser.parse_args()
    X, y, months = make_drifting_stream(n_months=12, n_samples_per_month=1000,
                                        random_state=0)
    n_train = int(0.7 * 1000)
    config = {"hidden_units": [64, 64], "epochs": args.epochs, "batch_size": 128,
              "random_state": 0, "device": "cpu",
              "buffer_capacity": max(1, int(BUFFER_SHARE * n_train * 12))}
    month_rows = [np.flatnonzero(months == m)[:n_train] for m in range(12)]
    print("| strategy | checkpoint KiB | joblib KiB | resumed == uninterrupted |")
    print("| --- | ---: | ---: | --- |")
    for name, strategy in strategies().items():
        full = strategy.build(config)
        for m, rows in enumerate(month_rows):
            full.partial_fit(X[rows], y[rows], classes=[0, 1], month=m)
        stopped = strategy.build(config)
        for m, rows in enumerate(month_rows[:-1]):
            stopped.partial_fit(X[rows], y[rows], classes=[0, 1], month=m)
        with tempfile.TemporaryDirectory() as directory:
            path = save_checkpoint(stopped, directory)
            size = path.stat().st_size
            resumed = load_checkpoint(strategy.build(config), path)
        pickled = io.BytesIO()
        joblib.dump(stopped, pickled)
        resumed.partial_fit(X[month_rows[-1]], y[month_rows[-1]], month=11)
        nets = list(zip(getattr(full, "estimators_", [full]),
                        getattr(resumed, "estimators_", [resumed])))
        same = (all(_same_net(a, b) for a, b in nets)
                and np.array_equal(full.predict_proba(X), resumed.predict_proba(X)))
        print(f"| {name} | {size / 1024:.0f} | {len(pickled.getvalue()) / 1024:.0f} | "
              f"{'yes' if same else 'NO'} |", flush=True)


def _same_net(a, b):
    """Weights, optimizer state and months equal bit for bit."""
    return (all(torch.equal(u, v) for u, v in zip(a.module_.state_dict().values(),
                                                   b.module_.state_dict().values()))
            and all(torch.equal(u, v) for sa, sb in zip(
                a.optimizer_.state_dict()["state"].values(),
                b.optimizer_.state_dict()["state"].values())
                for u, v in zip(sa.values(), sb.values()))
            and a.months_ == b.months_)


if __name__ == "__main__":
    main()
