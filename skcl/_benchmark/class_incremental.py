"""``skcl-benchmark --new-classes``: the class-incremental table over seeds.

Each task's result carries the class-incremental scores of
:func:`~skcl.evaluate_stream` (``class_records`` and ``seen_accuracy``); this
module summarizes them per seed (with
:func:`skcl._class_incremental.class_summary`) and aggregates them over the
seeds as mean and standard deviation, next to the training cost relative to
retraining.
"""

import numpy as np

from .._class_incremental import class_summary
from ..utils._files import write_atomically
from ..utils._text import text_table

#: (key, heading) of the table's score columns, in order.
_COLUMNS = (("average_incremental_accuracy", "avg incr. acc"),
            ("final_seen_accuracy", "final acc"),
            ("mean_class_forgetting", "class forgetting"),
            ("max_class_forgetting", "worst class forgetting"))


def class_incremental_rows(results):
    """One summary per (strategy, seed): the class scores and the samples processed.

    Parameters
    ----------
    results : list of dict
        The tasks' results, each with ``class_records``, ``seen_accuracy`` and
        ``records``.

    Returns
    -------
    rows : list of dict
        ``strategy``, ``seed``, the keys of ``class_summary`` and
        ``samples_processed`` (after the last month).
    """
    rows = []
    for result in results:
        summary = class_summary(result["class_records"], result["seen_accuracy"])
        last = max(row["n_months_trained"] for row in result["records"])
        samples = next(row["samples_processed"] for row in result["records"]
                       if row["n_months_trained"] == last)
        rows.append({"strategy": result["strategy"], "seed": result["seed"], **summary,
                     "samples_processed": int(samples)})
    return rows


def aggregate_class_rows(rows, reference="retrain"):
    """Mean and standard deviation over seeds, per strategy, in first-seen order.

    Parameters
    ----------
    rows : list of dict
        From :func:`class_incremental_rows`.
    reference : str or None, default="retrain"
        The strategy whose samples processed the cost is relative to.

    Returns
    -------
    summary : list of dict
        Per strategy: ``strategy``, ``n_seeds``, ``<key>_mean`` and
        ``<key>_std`` for each score column, ``relative_cost``.
    """
    names = list(dict.fromkeys(row["strategy"] for row in rows))
    cost = {name: np.mean([r["samples_processed"] for r in rows if r["strategy"] == name])
            for name in names}
    out = []
    for name in names:
        mine = [row for row in rows if row["strategy"] == name]
        entry = {"strategy": name, "n_seeds": len(mine)}
        for key, _ in _COLUMNS:
            values = [row[key] for row in mine if row[key] is not None]
            entry[f"{key}_mean"] = float(np.mean(values)) if values else None
            entry[f"{key}_std"] = float(np.std(values, ddof=1)) if len(values) > 1 else None
        entry["relative_cost"] = (float(cost[name] / cost[reference])
                                  if reference in cost and cost[reference] else None)
        out.append(entry)
    return out


def format_class_table(summary, markdown=False):
    """The class-incremental table, best average incremental accuracy first.

    Parameters
    ----------
    summary : list of dict
        From :func:`aggregate_class_rows`.
    markdown : bool, default=False
        A Markdown table instead of aligned text.

    Returns
    -------
    table : str
        One line per strategy: mean +- std over seeds of each score, and the
        cost relative to retraining.
    """
    def cell(entry, key):
        mean, std = entry[f"{key}_mean"], entry[f"{key}_std"]
        if mean is None:
            return ""
        return f"{mean:.3f}" if std is None else f"{mean:.3f} ± {std:.3f}"

    ordered = sorted(summary, key=lambda e: -(e["average_incremental_accuracy_mean"] or 0))
    header = ["strategy", *(heading for _, heading in _COLUMNS), "cost"]
    lines = [[entry["strategy"], *(cell(entry, key) for key, _ in _COLUMNS),
              "" if entry["relative_cost"] is None else f"{entry['relative_cost']:.2f}x"]
             for entry in ordered]
    if markdown:
        rule = ["---"] * len(header)
        return "\n".join("| " + " | ".join(line) + " |" for line in [header, rule, *lines])
    seeds = max(entry["n_seeds"] for entry in summary)
    note = (f"class-incremental scores (accuracy of predict), mean ± std over {seeds} "
            "seed(s); forgetting: best class accuracy before the last month minus "
            "the final one; cost: samples processed / retrain's")
    return "\n".join(text_table([header, *lines]) + [note])


def write_class_table(out, results, reference):
    """Print the class-incremental table and write it to ``out/class_incremental.md``.

    Parameters
    ----------
    out : pathlib.Path
        The output directory.
    results : list of dict
        The tasks' results.
    reference : str or None
        The strategy the cost is relative to.

    Returns
    -------
    name : str
        The file written, ``"class_incremental.md"``.
    """
    summary = aggregate_class_rows(class_incremental_rows(results), reference)
    print()
    print(format_class_table(summary))
    write_atomically(str(out / "class_incremental.md"),
                     (format_class_table(summary, markdown=True) + "\n").encode("utf-8"))
    return "class_incremental.md"
