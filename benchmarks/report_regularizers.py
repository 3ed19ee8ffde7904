"""Forgetting and cost of the loss-level strategies on the embedded drifting stream.

Not run in CI. Prints, for naive fine-tuning, L2, EWC (every Fisher form) and
online EWC at a few values of ``lam``:

* the mean over the 12 months of the accuracy on each month's held-out test
  part, after training on all 12 months;
* the accuracy on month 1's test part after month 12 (forgetting);
* for the Hessian form, the fraction of negative diagonal entries;

then the time of one EWC training step relative to a naive one, and of the
empirical Fisher relative to one plain forward+backward epoch over the same
rows. Timings are medians of repeats; the machine may be shared, so they are
indicative.

Usage::

    python benchmarks/report_regularizers.py [--quick] [--threads N]
"""

import argparse
import statistics
import time

import numpy as np
import torch
from sklearn.model_selection import train_test_split

from skcl import EWC, L2, MLP, ContinualClassifier, OnlineEWC
from skcl.datasets import make_drifting_stream
from skcl.fisher import batch_fisher, empirical_fisher, per_sample_loss

GRID = {
    "retrain": [None],
    "naive": [None],
    "L2": [0.3, 3.0, 30.0],
    "EWC empirical": [10.0, 100.0, 1000.0],
    "EWC hessian": [10.0, 100.0, 1000.0],
    "EWC variance": [1e2, 1e4, 1e6],
    "EWC batch": [1e2, 1e3, 1e4],
    "OnlineEWC empirical": [10.0, 100.0, 1000.0],
}


def make_regularizer(name, lam):
    if name in ("naive", "retrain"):
        return None
    if name == "L2":
        return L2(lam=lam)
    kind, fisher = name.split()
    cls = EWC if kind == "EWC" else OnlineEWC
    return cls(lam=lam, fisher=fisher, random_state=0)


def split_stream(random_state=0):
    X, y, months = make_drifting_stream(n_months=12, random_state=random_state)
    strata = months * 2 + y
    train, test = train_test_split(np.arange(len(y)), test_size=0.3, stratify=strata,
                                   random_state=random_state)
    return X, y, months, np.sort(train), np.sort(test)


def run_strategy(name, lam, X, y, months, train, test, seed):
    strategy = "retrain" if name == "retrain" else "finetune"
    clf = ContinualClassifier(regularizer=make_regularizer(name, lam), update=strategy,
                              random_state=seed)
    for month in np.unique(months):
        rows = train[months[train] == month]
        clf.partial_fit(X[rows], y[rows], classes=[0, 1], month=month)
    per_month = [clf.score(X[test[months[test] == m]], y[test[months[test] == m]])
                 for m in np.unique(months)]
    return clf, float(np.mean(per_month)), per_month[0]


def paired_medians_ms(functions, repeats):
    """Median wall time of each function, the functions interleaved in every repeat."""
    times = {name: [] for name in functions}
    for _ in range(repeats):
        for name, function in functions.items():
            start = time.perf_counter()
            function()
            times[name].append(time.perf_counter() - start)
    return {name: 1000 * statistics.median(values) for name, values in times.items()}


def report_accuracy(X, y, months, train, test, seeds, grid):
    print(f"Accuracy after month 12, mean over seeds {seeds} "
          "(mean over the 12 months' test parts / month 1's test part)")
    print(f"{'strategy':<22}{'lam':>10}{'mean acc':>10}{'month 1':>10}{'neg. frac':>11}")
    for name, lams in grid.items():
        for lam in lams:
            means, firsts, negatives = [], [], []
            for seed in seeds:
                clf, mean_acc, first_acc = run_strategy(
                    name, lam, X, y, months, train, test, seed)
                means.append(mean_acc)
                firsts.append(first_acc)
                if name == "EWC hessian":
                    negatives.extend(clf.regularizer_.negative_fractions_)
            negative = f"{np.mean(negatives):>11.3f}" if negatives else f"{'':>11}"
            lam_text = "-" if lam is None else f"{lam:g}"
            print(f"{name:<22}{lam_text:>10}{np.mean(means):>10.3f}{np.mean(firsts):>10.3f}"
                  f"{negative}")


def report_timing(X, y, months, train, repeats):
    rows = train[months[train] < 2]
    month_rows = rows[months[rows] == 1]
    nets = {}
    for name, regularizer in (("naive", None), ("EWC", EWC(lam=100.0))):
        clf = ContinualClassifier(regularizer=regularizer, random_state=0)
        for month in (0, 1):
            part = rows[months[rows] == month]
            clf.partial_fit(X[part], y[part], classes=[0, 1])
        clf.module_.train()
        nets[name] = clf
    batch = (torch.as_tensor(X[month_rows[:128]]), torch.as_tensor(y[month_rows[:128]]))

    def steps(clf):
        return lambda: [clf.train_step(batch) for _ in range(50)]

    step_ms = paired_medians_ms({name: steps(clf) for name, clf in nets.items()}, repeats)
    module = nets["naive"].module_
    n_params = sum(p.numel() for p in module.parameters())
    print(f"\nOne training step (batch 128, default MLP 20-64-64-2, {n_params} parameters, "
          f"Adam), median of {repeats} x 50 steps:")
    print(f"  naive {step_ms['naive'] / 50:.3f} ms, EWC {step_ms['EWC'] / 50:.3f} ms, "
          f"ratio {step_ms['EWC'] / step_ms['naive']:.2f}")

    big = MLP(n_features=100, n_classes=2, hidden_units=(256, 256))
    X_big = torch.randn(4096, 100, generator=torch.Generator().manual_seed(0))
    y_big = (X_big[:, 0] > 0).long()
    cases = [("default MLP 20-64-64-2, one month's training part", module,
              torch.as_tensor(X[month_rows]), torch.as_tensor(y[month_rows])),
             ("MLP 100-256-256-2, random data", big, X_big, y_big)]
    criterion = torch.nn.CrossEntropyLoss()
    loss = per_sample_loss(criterion)
    for title, net_module, X_t, y_t in cases:
        params = list(net_module.parameters())

        def epoch(net_module=net_module, X_t=X_t, y_t=y_t, params=params):
            for start in range(0, len(X_t), 128):
                value = criterion(net_module(X_t[start:start + 128]), y_t[start:start + 128])
                torch.autograd.grad(value, params)

        functions = {
            "epoch": epoch,
            "linear": lambda m=net_module, X_t=X_t, y_t=y_t: empirical_fisher(m, X_t, y_t, loss),
            "batch": lambda m=net_module, X_t=X_t, y_t=y_t: batch_fisher(m, X_t, y_t, loss),
        }
        ms = paired_medians_ms(functions, repeats)
        ms.update(paired_medians_ms(
            {"vmap": lambda m=net_module, X_t=X_t, y_t=y_t:
                empirical_fisher(m, X_t, y_t, loss, method="vmap")},
            max(3, repeats // 5)))
        print(f"\nFisher over {len(X_t)} rows, {title}; medians of {repeats} repeats "
              f"({max(3, repeats // 5)} for vmap):")
        print(f"  plain forward+backward epoch (batch 128)    {ms['epoch']:8.2f} ms")
        for key, label in (("linear", "exact empirical Fisher, Linear identity"),
                           ("vmap", "exact empirical Fisher, torch.func vmap"),
                           ("batch", "squared mini-batch gradients (batch 256)")):
            print(f"  {label:<43} {ms[key]:8.2f} ms  ({ms[key] / ms['epoch']:.2f} x epoch)")


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true",
                        help="one seed and one lam per strategy")
    parser.add_argument("--seeds", type=int, default=3, help="training seeds to average")
    parser.add_argument("--threads", type=int, default=None, help="torch threads")
    parser.add_argument("--repeats", type=int, default=21, help="timing repeats")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    print(f"torch {torch.__version__}, {torch.get_num_threads()} thread(s)")
    X, y, months, train, test = split_stream()
    grid = {name: lams[1:2] if args.quick and len(lams) > 1 else lams
            for name, lams in GRID.items()}
    seeds = [0] if args.quick else list(range(args.seeds))
    report_accuracy(X, y, months, train, test, seeds, grid)
    report_timing(X, y, months, train, args.repeats)


if __name__ == "__main__":
    main()
