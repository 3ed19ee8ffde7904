"""What a finished ``skcl-benchmark`` run writes to ``--out`` and prints."""

import sys

from ..utils._files import write_atomically
from ..utils._months import check_months
from .budget import format_choices, plot_frontier, recommend
from .class_incremental import write_class_table
from .findings import format_findings, judge_claims
from .report import (
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


def publish(plan, results, wall_seconds):
    """Write ``results.csv``, ``summary.json``, ``findings.md`` and the figures; print.

    Parameters
    ----------
    plan : Plan
        The run's :class:`~skcl._benchmark.cli.Plan`.
    results : list of dict
        :func:`~skcl._benchmark.runner.run_task` results, in task order.
    wall_seconds : float
        The run's wall time.
    """
    config, registry, out = plan.config, plan.registry, plan.out
    metric, reference = config["metric"], plan.reference
    _, month_order = check_months(plan.months, len(plan.y))
    month_labels = [m.item() if hasattr(m, "item") else m for m in month_order]
    rows = seed_summaries(results, month_labels, metric, reference)
    summary = aggregate(rows)
    # the study's claims compare strategies at their own settings, not at a budget
    findings = [] if plan.budgets else judge_claims(per_seed_values(rows))
    choices = (recommend(summary, plan.budgets, seed_rows=rows, reference=reference)
               if plan.budgets else [])
    labels = list(dict.fromkeys(result["strategy"] for result in results))
    bases = {result["strategy"]: result.get("base", result["strategy"]) for result in results}
    write_results_csv(out / "results.csv", results)
    write_json(out / "summary.json", {
        "metric": metric, "reference": reference, "months": month_labels,
        "config": config, "wall_seconds": wall_seconds,
        "strategies": {name: {"family": registry[name].family,
                              "description": registry[name].description,
                              "grid": {k: list(v) for k, v in registry[name].grid.items()}}
                       for name in plan.names},
        "summary": summary, "seeds": rows,
        "budgets": {"values": plan.budgets, "choices": choices,
                    "params": _budget_params(results)},
        "tuning": {name: {str(r["seed"]): {"best_params": r["best_params"],
                                           "tune_seconds": r["tune_seconds"],
                                           "cv_results": r["cv_results"]}
                          for r in results if r["strategy"] == name and r["best_params"]}
                   for name in labels if plan.args.tune and registry[bases[name]].grid},
        "findings": findings,
    })
    write_atomically(out / "findings.md",
                     format_findings(findings, markdown=True).encode("utf-8"))
    written = ["results.csv", "summary.json", "findings.md"]
    written += _figures(plan, results, summary, month_labels, bases)
    print()
    print(format_table(summary, metric, reference))
    negative = {row["strategy"]: row["negative_fraction"] for row in summary
                if row.get("negative_fraction")}
    if negative:
        print("negative share of the raw importance estimate, mean over months and seeds: "
              + ", ".join(f"{name} {value:.1%}" for name, value in negative.items()))
    if choices:
        print("\nthe strategy to use per budget:")
        print(format_choices(choices, metric, reference))
    if plan.args.tune:
        print("\nchosen by tuning (GridSearchCV on the training parts):")
        print("\n".join(tuning_lines(results)))
    print()
    print(format_findings(findings) if findings else
          "findings (the original study's claims): judged without --budget only")
    if plan.args.new_classes:
        written.append(write_class_table(out, results, reference))
    print(f"\n{len(results)} task(s) in {wall_seconds:.1f} s; wrote {', '.join(written)} "
          f"to {out}")


def _budget_params(results):
    """``{strategy label: settings its spend chose}`` (the same at every seed)."""
    return {result["strategy"]: result["budget_params"] for result in results
            if result.get("budget_params")}


def _figures(plan, results, summary, month_labels, bases):
    try:
        import matplotlib  # noqa: F401
    except ImportError:
        names = "forgetting.png" + (" and frontier.png" if plan.budgets else "")
        print(f"matplotlib is not installed: skipped {names} "
              "(pip install 'skcl[plot]' to draw it)", file=sys.stderr)
        return []
    metric = plan.config["metric"]
    plot_forgetting(final_curves(results, month_labels),
                    {label: plan.registry[base].family for label, base in bases.items()},
                    month_labels, metric, plan.out / "forgetting.png",
                    next_month={row["strategy"]: (row["next_month_score"] or {}).get("mean")
                                for row in summary})
    written = ["forgetting.png"]
    if plan.budgets:
        plot_frontier(summary, metric, plan.out / "frontier.png", budgets=plan.budgets,
                      reference=plan.reference or "retrain")
        written.append("frontier.png")
    return written
