"""Render an ``skcl-benchmark`` run as the tables of the user guide's results page.

Not run in CI. Reads ``summary.json`` from a benchmark output directory and
writes ``docs/_static/benchmark_results.inc`` (reStructuredText, included by
``docs/user_guide/results.rst``): the run's command and wall time, the summary
table with 95% intervals, the values tuning chose, and the findings with
their verdicts, all copied from the file, none written by hand. Copy the
run's ``forgetting.png`` to ``docs/_static/`` alongside.

Usage::

    skcl-benchmark --seeds 3 --tune --jobs 2 --out results
    python benchmarks/report_benchmark.py results [--wall-note TEXT]
"""

import argparse
import json
from pathlib import Path

OUT = Path(__file__).resolve().parents[1] / "docs" / "_static" / "benchmark_results.inc"


def _pm(cell, signed=False):
    if not cell or cell["mean"] is None:
        return ""
    text = f"{cell['mean']:+.4f}" if signed else f"{cell['mean']:.4f}"
    if cell["low"] is None:
        return text
    return f"{text} ± {(cell['high'] - cell['low']) / 2:.4f}"


def _cost(row, column, fmt):
    value, ratio = row[column], row.get(f"relative_{column}")
    if value is None:
        return ""
    return fmt.format(value) + ("" if ratio is None else f" ({ratio:.2f}x)")


def _list_table(header, rows, widths):
    lines = [".. list-table::", "   :header-rows: 1", f"   :widths: {' '.join(map(str, widths))}",
             ""]
    for row in [header, *rows]:
        lines.append(f"   * - {row[0]}")
        lines += [f"     - {cell}" for cell in row[1:]]
    return lines


def render(summary):
    config = summary["config"]
    rows = sorted(summary["summary"], key=lambda r: r["mean_score"]["mean"], reverse=True)
    table = [[f"``{r['strategy']}``", _pm(r["mean_score"]), _pm(r["gap_to_reference"], True),
              _pm(r["first_month_forgetting"], True), _pm(r["last_month_score"]),
              _cost(r, "samples_processed", "{:,.0f}"), _cost(r, "fit_seconds", "{:.1f}"),
              f"{r['tune_seconds']:.1f}", _cost(r, "peak_host_mb", "{:.0f}")]
             for r in rows]
    lines = [
        f"Command: ``skcl-benchmark {' '.join(config['argv'])}`` on "
        f"``{config['data']}``, {config['epochs']} epochs per month, seeds "
        f"{', '.join(map(str, config['seeds']))}, {config['jobs']} job(s) x "
        f"{config['threads']} torch thread(s); wall time {summary['wall_seconds']:.0f} s.",
        "",
        f"Mean {summary['metric']} of each final model over every month's held-out part, "
        "± half the 95% Student-t interval over seeds; ``gap`` is the paired difference "
        f"to ``{summary['reference']}``; costs are means over seeds, relative to "
        f"``{summary['reference']}`` in brackets; ``tune s`` is the tuning's wall time, "
        "apart from the final training's ``train s``.",
        "",
    ]
    lines += _list_table(["strategy", "mean", "gap", "forgot", "last month", "samples",
                          "train s", "tune s", "peak MB"], table,
                         [22, 14, 14, 14, 14, 14, 10, 8, 10])
    if summary.get("tuning"):
        lines += ["", "Values chosen by tuning, per seed:", ""]
        choices = []
        for name, by_seed in summary["tuning"].items():
            chosen = "; ".join(
                f"seed {seed}: " + ", ".join(f"{k.split('__')[-1]}={v}"
                                             for k, v in entry["best_params"].items())
                for seed, entry in by_seed.items())
            choices.append([f"``{name}``", chosen])
        lines += _list_table(["strategy", "chosen"], choices, [25, 75])
    lines += ["", ".. _benchmark_findings:", "", "The study's findings, judged from the "
              "intervals (``findings.md`` of the run):", ""]
    findings = []
    for finding in summary["findings"]:
        evidence = "; ".join(
            f"{e['comparison']}: {_signed(e['mean'])} [{_signed(e['low'])}, "
            f"{_signed(e['high'])}] {e['status']}" for e in finding["evidence"]) or (
            "needs " + ", ".join(finding["missing"]))
        findings.append([str(finding["number"]), finding["claim"],
                         f"**{finding['verdict']}**", evidence])
    lines += _list_table(["#", "claim", "verdict", "evidence: difference [95% interval]"],
                         findings, [3, 30, 12, 55])
    return "\n".join(lines) + "\n"


def _signed(value):
    return "n/a" if value is None else f"{value:+.4f}"


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("results", help="an skcl-benchmark --out directory")
    args = parser.parse_args()
    summary = json.loads((Path(args.results) / "summary.json").read_text())
    OUT.write_text(render(summary), encoding="utf-8")
    print(f"wrote {OUT}")


if __name__ == "__main__":
    main()
