"""Render ``skcl-benchmark --budget`` runs as the tables of the results page and README.

Not run in CI. Reads ``summary.json`` from each budget run's output
directory and writes, per run, ``docs/_static/budget_<NAME>.inc``
(reStructuredText, included by ``docs/user_guide/results.rst``) and prints
the same tables in Markdown (for ``benchmarks/README.md``): the command and
wall time, the strategy to use per budget (gap to retrain and next-month
score with their intervals), and every strategy at every budget. All numbers
are copied from the file. Copy each run's ``frontier.png`` to
``docs/_static/frontier_<NAME>.png`` alongside.

Usage::

    skcl-benchmark --stream detection --budget 0.1,0.25,0.5 --out results/detection
    python benchmarks/report_budget.py detection=results/detection drifting=...
"""

import argparse
import json
from pathlib import Path

STATIC = Path(__file__).resolve().parents[1] / "docs" / "_static"


def _pm(cell, signed=False, digits=4):
    if not cell or cell.get("mean") is None:
        return ""
    text = f"{cell['mean']:+.{digits}f}" if signed else f"{cell['mean']:.{digits}f}"
    if cell.get("low") is None:
        return text
    return f"{text} ± {(cell['high'] - cell['low']) / 2:.{digits}f}"


def _command(summary):
    config = summary["config"]
    return (f"``skcl-benchmark {' '.join(config['argv'])}`` on ``{config['data']}``, "
            f"{config['epochs']} epochs per month for retrain, seeds "
            f"{', '.join(map(str, config['seeds']))}, metric {config['metric']}, "
            f"{config['jobs']} job(s) x {config['threads']} torch thread(s); wall time "
            f"{summary['wall_seconds']:.0f} s.")


def tables(summary):
    """Return ``(choices, everything)``: header + rows of the two tables."""
    choices = [["budget", "use", "mean", "gap to retrain", "next month",
                "next month vs naive", "naive next month", "cost", "target"]]
    for choice in summary["budgets"]["choices"]:
        if choice["strategy"] is None:
            choices.append([f"{choice['budget']:g}", "(none within budget)"] + [""] * 7)
            continue
        target = "met" if choice["target_met"] else "not met"
        choices.append([f"{choice['budget']:g}", f"``{choice['strategy']}``",
                        _pm(choice["mean_score"]), _pm(choice["gap_to_reference"], True),
                        _pm(choice["next_month_score"]),
                        _pm(choice.get("next_month_vs_baseline"), True),
                        _pm(choice["baseline_next_month"]),
                        _pm(choice["cost"], digits=3), target])
    every = [["strategy", "mean", "gap", "next month", "cost", "train s"]]
    rows = sorted(summary["summary"], key=lambda r: (r["budget"] or 9, -r["mean_score"]["mean"]))
    for row in rows:
        every.append([f"``{row['strategy']}``", _pm(row["mean_score"]),
                      _pm(row["gap_to_reference"], True), _pm(row["next_month_score"]),
                      _pm(row["cost"], digits=3),
                      f"{row['fit_seconds']:.1f} ({row['relative_fit_seconds']:.2f}x)"])
    return choices, every


def _rst(table, widths):
    lines = [".. list-table::", "   :header-rows: 1", f"   :widths: {' '.join(map(str, widths))}",
             ""]
    for row in table:
        lines.append(f"   * - {row[0]}")
        lines += [f"     - {cell}" if cell else "     -" for cell in row[1:]]
    return lines


def _markdown(table):
    rows = [[cell.replace("``", "`") for cell in row] for row in table]
    lines = ["| " + " | ".join(rows[0]) + " |", "|" + "---|" * len(rows[0])]
    lines += ["| " + " | ".join(row) + " |" for row in rows[1:]]
    return lines


def render(summary):
    choices, every = tables(summary)
    lines = [f"Command: {_command(summary)}", "",
             "The strategy to use per budget (mean ± half the 95% interval over seeds; "
             "cost = rows through forward+backward relative to retrain's at the same seed):",
             "", *_rst(choices, (7, 20, 12, 12, 12, 12, 12, 10, 7)), "",
             "Every strategy at every budget:", "",
             *_rst(every, (30, 16, 16, 16, 14, 12)), ""]
    return "\n".join(lines)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("runs", nargs="+", metavar="NAME=DIR",
                        help="a name for the run and its --out directory")
    args = parser.parse_args(argv)
    for run in args.runs:
        name, _, directory = run.partition("=")
        summary = json.loads((Path(directory) / "summary.json").read_text())
        (STATIC / f"budget_{name}.inc").write_text(render(summary), encoding="utf-8")
        choices, every = tables(summary)
        print(f"### {name}\n\nCommand: {_command(summary).replace('``', '`')}\n")
        print("\n".join(_markdown(choices)) + "\n")
        print("<details><summary>every strategy at every budget</summary>\n")
        print("\n".join(_markdown(every)) + "\n\n</details>\n")


if __name__ == "__main__":
    main()
