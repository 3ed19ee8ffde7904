"""Sweep warm-started cumulative training at a budget for issue 21's target.

The target: at <= ``--budget`` (0.25) of retrain's training rows, a past-months
mean within 0.5 point of retrain's AND a next-month score at least naive
fine-tuning's (both at the same budget, means over seeds). This script runs
``retrain``, ``naive@budget`` and a grid of cumulative-finish variants
(``E`` epochs of the month plus a share of the history, then ``K``
finishing epochs on the month alone or on a small share of the history at
``finish_lr``, optionally with an lr schedule or weight averaging) through
the benchmark's own task runner (:func:`skcl._benchmark.runner.run_task`),
each spending its budget through a ``spend`` function of the registry's
interface, and prints, per stream, every variant's gap to retrain and
next-month difference to naive (paired over seeds, mean and 95%
half-interval), its measured cost, and the frontier: the best past-months gap
among variants whose next month is not below naive's, and the best next month
among variants within 0.5 point of retrain on the past.

Usage (about 4 minutes per grid on 2 cores for both streams and 3 seeds)::

    python benchmarks/sweep_frontier.py --random-state 0 --seeds 3 --jobs 2
    python benchmarks/sweep_frontier.py --random-state 0 --seeds 3 --grid refine
    python benchmarks/sweep_frontier.py --random-state 3 --seeds 3 --jobs 2 \
        --only NAME[,NAME...]      # confirm chosen variants on fresh seeds

``--random-state R`` seeds the stream (as ``skcl-benchmark``'s does) and the
models (seeds R..R+seeds-1).
"""

import argparse
import itertools
import json
import multiprocessing
import sys

from skcl._benchmark import runner
from skcl._benchmark import strategies as registry_module
from skcl._benchmark.cli import build_parser, make_plan
from skcl._benchmark.findings import interval
from skcl._benchmark.report import seed_summaries
from skcl._benchmark.strategies import Strategy, _classifier

TARGET_GAP = 0.005


def spend_finish(epochs, finish_epochs, finish_history=0.0):
    """``spend`` of a variant: ``epochs`` x (month + f x history) + ``finish_epochs`` x
    (month + ``finish_history`` x history) <= rows, solved for ``f``."""
    def spend(rows, shape):
        n, past = shape.n_rows, shape.history_rows
        finishing = finish_epochs * (n + finish_history * past)
        fraction = (rows - finishing - epochs * n) / (epochs * past)
        fraction = min(1.0, max(fraction, 1.0 / past))
        return {"max_epochs": epochs, "history_fraction": fraction}
    return spend


#: The grids: ``main`` first, then ``refine`` (higher rates around main's
#: frontier); each (E epochs, K finishing epochs, finish_lr, finetune_lr,
#: finish_history_fraction).
GRIDS = {
    "main": ((1, 2), (1, 2, 3), (1e-3, 2e-3, 3e-3), (1e-3, 2e-3), (0.0, 0.05)),
    "refine": ((1, 2), (1, 2, 3), (4e-3, 5e-3), (2e-3, 3e-3), (0.0, 0.05)),
}


def variants():
    """``{name: (grid, Strategy)}``: every variant swept (names spell the settings)."""
    found = {}
    for grid_name, grid in GRIDS.items():
        for epochs, finish, finish_lr, lr, finish_history in itertools.product(*grid):
            name = f"cf-E{epochs}-K{finish}-flr{finish_lr:g}-lr{lr:g}-fh{finish_history:g}"
            params = dict(update="cumulative", finetune_lr=lr, max_epochs=epochs,
                          history_fraction=0.5, finish_epochs=finish, finish_lr=finish_lr,
                          finish_history_fraction=finish_history)
            found.setdefault(name, (grid_name, _variant(
                name, params, spend_finish(epochs, finish, finish_history))))
    # lr schedule and weight averaging on top of the hint (E=2, K=1, month alone, 2e-3)
    base = dict(update="cumulative", finetune_lr=2e-3, max_epochs=2, history_fraction=0.5,
                finish_epochs=1, finish_lr=2e-3, finish_history_fraction=0.0)
    extras = {
        "cf-cosine0.3": dict(lr_schedule="cosine", final_lr_fraction=0.3),
        "cf-cosine0.5": dict(lr_schedule="cosine", final_lr_fraction=0.5),
        "cf-ema0.2": dict(weight_averaging="ema", averaging_decay=0.2),
        "cf-ema0.4": dict(weight_averaging="ema", averaging_decay=0.4),
        "cf-interp0.2": dict(weight_averaging="interpolate", averaging_decay=0.2),
        "cf-interp0.4": dict(weight_averaging="interpolate", averaging_decay=0.4),
    }
    for name, extra in extras.items():
        found[name] = ("main", _variant(name, {**base, **extra}, spend_finish(2, 1)))
    return found


def _variant(name, params, spend):
    return Strategy(name, "warm start and averaging", name,
                    lambda c, p=params: _classifier(c, **p), spend=spend)


_VARIANTS = variants()
_REGISTRY = registry_module.strategies
# run_task looks strategies up by name: add the variants (module level, so
# that worker processes see them too)
runner.strategies = lambda: {**_REGISTRY(),
                              **{name: found for name, (_, found) in _VARIANTS.items()}}


def _run(task):
    plan_config, X, y, months, name, seed, split_seed, budget = task
    return runner.run_task(name, seed, split_seed, plan_config, X, y, months, budget)


def sweep_stream(stream, metric, args, names):
    argv = ["--stream", stream, "--metric", metric, "--months", str(args.months),
            "--rows", str(args.rows), "--seeds", str(args.seeds), "--random-state",
            str(args.random_state), "--strategies", "retrain,naive", "--out",
            f"/tmp/sweep_frontier_{stream}"]
    plan = make_plan(build_parser(), build_parser().parse_args(argv), argv)
    tasks = [(plan.config, plan.X, plan.y, plan.months, name, seed, split, budget)
             for seed, split in zip(plan.seeds, plan.split_seeds)
             for name, budget in [("retrain", None), ("naive", args.budget)]
             + [(name, args.budget) for name in names]]
    with multiprocessing.get_context("fork").Pool(args.jobs) as pool:
        results = pool.map(_run, tasks, chunksize=1)
    order = list(dict.fromkeys(plan.months))
    rows = seed_summaries(results, order, plan.config["metric"], "retrain")
    by = {(row["strategy"], row["seed"]): row for row in rows}
    naive = f"naive@{args.budget:g}"
    table = []
    for name in names:
        label = f"{name}@{args.budget:g}"
        seeds = plan.seeds
        gap = [by[label, s]["gap_to_reference"] for s in seeds]
        nxt = [by[label, s]["next_month_score"] - by[naive, s]["next_month_score"]
               for s in seeds]
        cost = [by[label, s]["relative_train_rows"] for s in seeds]
        params = next(r["budget_params"] for r in results if r["strategy"] == label)
        table.append(dict(name=name, gap=interval(gap).as_dict(),
                          next_vs_naive=interval(nxt).as_dict(), cost=max(cost),
                          history_fraction=params.get("history_fraction")))
    reference = dict(
        retrain_mean=interval([by["retrain", s]["mean_score"] for s in plan.seeds]).as_dict(),
        retrain_next=interval([by["retrain", s]["next_month_score"]
                               for s in plan.seeds]).as_dict(),
        naive_next=interval([by[naive, s]["next_month_score"] for s in plan.seeds]).as_dict(),
        naive_gap=interval([by[naive, s]["gap_to_reference"] for s in plan.seeds]).as_dict())
    return table, reference


def _pm(found):
    half = (found["high"] - found["mean"]) if found.get("high") is not None else float("nan")
    return f"{100 * found['mean']:+.2f} ± {100 * half:.2f}"


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--random-state", type=int, default=0)
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--months", type=int, default=10)
    parser.add_argument("--rows", type=int, default=600)
    parser.add_argument("--budget", type=float, default=0.25)
    parser.add_argument("--jobs", type=int, default=2)
    parser.add_argument("--grid", default="main", choices=sorted(GRIDS),
                        help="which grid to sweep (ignored with --only)")
    parser.add_argument("--only", default=None, help="comma-separated variant names")
    parser.add_argument("--streams", default="drifting=accuracy,detection=roc_auc")
    parser.add_argument("--json", default=None, help="write the tables here")
    args = parser.parse_args(argv)
    names = ([name for name, (grid, _) in _VARIANTS.items() if grid == args.grid]
             if args.only is None else args.only.split(","))
    unknown = [name for name in names if name not in _VARIANTS]
    if unknown:
        parser.error(f"unknown variant {unknown[0]!r}; one of {', '.join(_VARIANTS)}")
    out = {}
    for item in args.streams.split(","):
        stream, metric = item.split("=")
        table, reference = sweep_stream(stream, metric, args, names)
        out[stream] = dict(table=table, reference=reference)
        print(f"\n== {stream} ({metric}), seeds {args.random_state}.."
              f"{args.random_state + args.seeds - 1}, budget {args.budget:g}: retrain "
              f"{_pm(reference['retrain_mean'])} pt past, next {_pm(reference['retrain_next'])};"
              f" naive@{args.budget:g} next {_pm(reference['naive_next'])}, "
              f"gap {_pm(reference['naive_gap'])}")
        print(f"{'variant':44s} {'gap to retrain (pt)':>20s} {'next vs naive (pt)':>20s}"
              f" {'cost':>6s} {'hist f':>7s}")
        for row in sorted(table, key=lambda r: -r["gap"]["mean"]):
            hit = (row["gap"]["mean"] >= -TARGET_GAP and row["next_vs_naive"]["mean"] >= 0
                   and row["cost"] <= args.budget * 1.05)
            print(f"{row['name']:44s} {_pm(row['gap']):>20s} {_pm(row['next_vs_naive']):>20s}"
                  f" {row['cost']:6.3f} {row['history_fraction'] or 0:7.3f}"
                  f"{'  TARGET' if hit else ''}")
        keeping = [r for r in table if r["next_vs_naive"]["mean"] >= 0]
        close = [r for r in table if r["gap"]["mean"] >= -TARGET_GAP]
        if keeping:
            best = max(keeping, key=lambda r: r["gap"]["mean"])
            print(f"frontier: best gap with next >= naive: {best['name']} "
                  f"{_pm(best['gap'])} (next {_pm(best['next_vs_naive'])})")
        if close:
            best = max(close, key=lambda r: r["next_vs_naive"]["mean"])
            print(f"frontier: best next with gap >= -0.5 pt: {best['name']} "
                  f"{_pm(best['next_vs_naive'])} (gap {_pm(best['gap'])})")
    if args.json:
        with open(args.json, "w") as handle:
            json.dump(out, handle, indent=1)
    return 0


if __name__ == "__main__":
    sys.exit(main())
