"""``--budget``: the strategy to use at each budget, and the frontier figure.

A budget ``F`` gives every strategy ``F`` times retrain's rows through
forward+backward (each strategy's ``spend`` in :mod:`.strategies` says
how it uses them). The strategy to use at a budget is chosen from the
aggregated summary by one rule (:func:`recommend`), and
:func:`plot_frontier` draws the past-months mean and the next-month score
of every strategy against its measured cost.
"""

import numpy as np

from ..utils._text import text_table
from .findings import interval
from .findings import plus_minus as _pm

#: A strategy may exceed its budget by this factor (whole epochs) and still count.
WITHIN_BUDGET = 1.05
#: The issue's target: past-months mean within this of retrain's (0.5 point).
TARGET_GAP = 0.005


def _mean(found):
    return None if not found or found.get("mean") is None else found["mean"]


def recommend(summary, budgets, *, seed_rows=(), reference="retrain", baseline="naive"):
    """Return, per budget, the strategy to use and how close it comes to the reference.

    The rule: among the strategies run at the budget whose measured cost
    (mean relative rows through forward+backward) is at most ``budget *
    WITHIN_BUDGET``, keep those whose next-month score is not below
    ``baseline``'s at the same budget (the deployed model must not get
    worse): the paired 95% interval over seeds of the difference reaches 0
    (with one seed, or without ``seed_rows``: the mean difference is at
    least 0). Recommend the one with the highest past-months mean. If none
    is kept, the highest mean within budget is named, with
    ``keeps_next_month`` False.

    Parameters
    ----------
    summary : list of dict
        :func:`~skcl._benchmark.report.aggregate`'s rows.
    budgets : list of float
        The run's budgets.
    seed_rows : list of dict, default=()
        :func:`~skcl._benchmark.report.seed_summaries`' rows, for the paired
        differences to the baseline.
    reference, baseline : str
        Registry names of the reference (retrain) and of the baseline whose
        next-month score must be kept (naive fine-tuning).

    Returns
    -------
    choices : list of dict
        Per budget: ``budget``, ``strategy`` (None if nothing ran within
        it), ``mean_score``, ``gap_to_reference``, ``next_month_score``,
        ``cost`` (intervals), ``baseline_next_month`` (the baseline's
        interval at this budget, or None), ``next_month_vs_baseline`` (the
        paired difference, an interval, or None), ``keeps_next_month``,
        ``target_met`` (the issue's target, on means over seeds: gap to the
        reference at least ``-TARGET_GAP`` and next-month score at least the
        baseline's), ``n_candidates``.
    """
    choices = []
    for budget in budgets:
        rows = [row for row in summary if row.get("budget") == budget
                and row["base"] != reference and row.get("cost")
                and _mean(row["cost"]) <= budget * WITHIN_BUDGET]
        base = next((row for row in summary if row.get("budget") == budget
                     and row["base"] == baseline), None)
        versus = {row["strategy"]: _next_month_difference(row, base, seed_rows)
                  for row in rows}
        keeping = [row for row in rows if _not_below(versus[row["strategy"]])]
        best = max(keeping or rows, key=lambda row: row["mean_score"]["mean"], default=None)
        choice = {"budget": budget, "strategy": None, "n_candidates": len(rows),
                  "baseline_next_month": base["next_month_score"] if base else None}
        if best is not None:
            gap = _mean(best["gap_to_reference"])
            difference = versus[best["strategy"]]
            choice.update(
                strategy=best["strategy"], mean_score=best["mean_score"],
                gap_to_reference=best["gap_to_reference"],
                next_month_score=best["next_month_score"], cost=best["cost"],
                next_month_vs_baseline=difference, keeps_next_month=bool(keeping),
                target_met=bool(gap is not None and gap >= -TARGET_GAP
                                and (difference is None or difference["mean"] >= 0)))
        choices.append(choice)
    return choices


def _next_month_difference(row, base, seed_rows):
    """Paired next-month difference of ``row`` to ``base`` over seeds, or None."""
    if base is None:
        return None
    if base["strategy"] == row["strategy"]:
        return {"mean": 0.0, "low": 0.0, "high": 0.0, "n": row.get("n_seeds")}
    by_seed = {}
    for seed_row in seed_rows:
        if seed_row["strategy"] in (row["strategy"], base["strategy"]):
            by_seed.setdefault(seed_row["seed"], {})[seed_row["strategy"]] = (
                seed_row.get("next_month_score"))
    pairs = [(values[row["strategy"]], values[base["strategy"]])
             for values in by_seed.values()
             if values.get(row["strategy"]) is not None
             and values.get(base["strategy"]) is not None]
    if not pairs:
        mine, theirs = _mean(row["next_month_score"]), _mean(base["next_month_score"])
        if mine is None or theirs is None:
            return None
        return {"mean": mine - theirs, "low": None, "high": None, "n": 1}
    return interval([a - b for a, b in pairs]).as_dict()


def _not_below(difference):
    """Whether a paired difference does not show a worse next month (None: no baseline)."""
    if difference is None:
        return True
    if difference.get("high") is None:
        return difference["mean"] >= 0
    return difference["high"] >= 0


def format_choices(choices, metric, reference="retrain"):
    """Return the per-budget choices as an aligned text table with a note on the rule."""
    lines = [["budget", "use", "mean", f"gap to {reference}", "next month",
              "vs naive", "naive next month", "cost", "target"]]
    for choice in choices:
        if choice["strategy"] is None:
            lines.append([f"{choice['budget']:g}", "(nothing within budget)"] + [""] * 7)
            continue
        target = "met" if choice["target_met"] else "not met"
        lines.append([f"{choice['budget']:g}", choice["strategy"],
                      _pm(choice["mean_score"]), _pm(choice["gap_to_reference"], True),
                      _pm(choice["next_month_score"]),
                      _pm(choice["next_month_vs_baseline"], True),
                      _pm(choice["baseline_next_month"]),
                      _pm(choice["cost"], fmt="{:.3f}x"), target])
    note = (f"metric: {metric}; per budget, the strategy to use: the highest past-months "
            f"mean among those within the budget (measured cost <= {WITHIN_BUDGET:g} x "
            "budget) whose next month is not below naive's at that budget (vs naive: "
            "paired difference over seeds, its 95% interval reaching 0); target (the "
            f"issue's, on means): gap >= -{TARGET_GAP:g} and next month >= naive's")
    return "\n".join(text_table(lines) + [note])


def plot_frontier(summary, metric, path, *, budgets=(), reference="retrain",
                  baseline="naive"):
    """Draw the past-months mean and the next-month score against cost, to ``path``.

    One panel per score; x is the measured cost relative to ``reference``
    (log scale), each point a strategy at one budget (mean over seeds; bars:
    95% intervals over seeds of the score and of the cost), points of one
    strategy joined across budgets. The reference is a black star at its
    cost of 1 with a dotted line at its score; ``baseline`` is drawn in red.

    Parameters
    ----------
    summary : list of dict
        :func:`~skcl._benchmark.report.aggregate`'s rows.
    metric : str
        The y-axis label.
    path : str or path-like
        Where to write the PNG.
    budgets : sequence of float, default=()
        Drawn as dashed vertical lines.

    Returns
    -------
    path : str or path-like
        ``path``, once written.
    """
    from matplotlib.figure import Figure
    from matplotlib.ticker import FormatStrFormatter, NullFormatter

    bases = list(dict.fromkeys(row["base"] for row in summary))
    figure = Figure(figsize=(13, 5.6), layout="constrained")
    axes = figure.subplots(1, 2)
    palette = ["tab:blue", "tab:orange", "tab:green", "tab:purple", "tab:brown",
               "tab:pink", "tab:olive", "tab:cyan", "tab:gray"]
    markers = "osD^v<>pPXh"
    for ax, column, title in ((axes[0], "mean_score", "past-months mean (final model)"),
                              (axes[1], "next_month_score",
                               "next-month score (deployed model)")):
        others = [b for b in bases if b not in (reference, baseline)]
        for base in bases:
            rows = sorted((row for row in summary if row["base"] == base
                           and row.get("cost") and row.get(column)),
                          key=lambda row: row["cost"]["mean"])
            if not rows:
                continue
            x = np.array([row["cost"]["mean"] for row in rows])
            y = np.array([row[column]["mean"] for row in rows])
            if base == reference:
                style = dict(color="black", marker="*", markersize=13)
                ax.axhline(y[0], color="black", linestyle=":", linewidth=1)
            elif base == baseline:
                style = dict(color="tab:red", marker="o", markersize=6)
            else:
                index = others.index(base)
                style = dict(color=palette[index % len(palette)],
                             marker=markers[index // len(palette) % len(markers)],
                             markersize=5)
            ax.errorbar(x, y, yerr=_half_widths(rows, column), xerr=_half_widths(rows, "cost"),
                        linewidth=1.2, capsize=2, label=base, **style)
        for budget in budgets:
            ax.axvline(budget, color="0.6", linestyle="--", linewidth=0.8)
        ax.set_xscale("log")
        ax.set_xticks(sorted({*budgets, 1.0}))
        ax.xaxis.set_major_formatter(FormatStrFormatter("%g"))
        ax.xaxis.set_minor_formatter(NullFormatter())
        ax.set_xlabel(f"cost: rows through forward+backward / {reference}'s (log scale)")
        ax.set_ylabel(metric)
        ax.set_title(title)
        ax.grid(alpha=0.3, which="both")
    handles, labels = axes[0].get_legend_handles_labels()
    figure.legend(handles, labels, loc="outside right center", fontsize="small",
                  frameon=False)
    figure.suptitle(f"{metric} against cost, each strategy at every budget: mean over "
                    "seeds, bars = 95% intervals over seeds")
    figure.savefig(path, dpi=110)
    return path


def _half_widths(rows, column):
    widths = [(row[column]["high"] - row[column]["low"]) / 2
              if row[column].get("low") is not None else 0.0 for row in rows]
    return np.asarray(widths)
