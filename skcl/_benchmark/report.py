"""What ``skcl-benchmark`` prints and writes: per-seed summaries, intervals, files, figure."""

import csv
import io
import json
import math

import numpy as np

from ..evaluation import RECORD_COLUMNS, StreamEvaluation
from ..utils._files import write_atomically
from ..utils._text import text_table
from .findings import CONFIDENCE, interval
from .findings import plus_minus as _pm
from .strategies import FAMILIES

#: Per-seed values summarized with an interval, in table order.
INTERVAL_COLUMNS = ("mean_score", "gap_to_reference", "next_month_score", "worst_score",
                    "first_month_forgetting", "last_month_score")
#: Per-seed costs, each also relative to the reference's at the same seed.
COST_COLUMNS = ("train_rows", "forward_rows", "samples_processed", "fit_seconds",
                "tune_seconds", "peak_host_mb", "peak_device_mb")


def seed_summaries(results, months, metric, reference):
    """Return one summary row per (seed, strategy) with costs relative to ``reference``.

    Parameters
    ----------
    results : list of dict
        :func:`~skcl._benchmark.runner.run_task` results.
    months : list
        Month labels in training order.
    metric : str
        Name of the score.
    reference : str or None
        Strategy the relative columns compare against at the same seed.

    Returns
    -------
    rows : list of dict
        :attr:`~skcl.evaluation.StreamEvaluation.summary` rows with ``seed``,
        ``base`` (registry name), ``budget`` (None when run at its own
        settings), ``tune_seconds``, ``peak_host_mb``, ``peak_device_mb`` and
        ``negative_fraction`` added, and ``relative_<cost>`` for every cost
        (``relative_train_rows`` is the cost that budgets are stated in).
    """
    rows = []
    for seed in sorted({result["seed"] for result in results}):
        at_seed = [result for result in results if result["seed"] == seed]
        records = [row for result in at_seed for row in result["records"]]
        evaluation = StreamEvaluation(records, metric=metric, reference=reference,
                                      months=months)
        extra = {result["strategy"]: result for result in at_seed}
        for row in evaluation.summary:
            result = extra[row["strategy"]]
            fractions = result["negative_fractions"]
            row.update(
                seed=seed, base=result.get("base", row["strategy"]),
                budget=result.get("budget"), tune_seconds=result["tune_seconds"],
                peak_host_mb=_megabytes(result["peak_host_bytes"]),
                peak_device_mb=_megabytes(result["peak_device_bytes"]),
                negative_fraction=float(np.mean(fractions)) if fractions else None)
        by_name = {row["strategy"]: row for row in evaluation.summary}
        for row in evaluation.summary:
            for column in COST_COLUMNS:
                base = by_name.get(reference, {}).get(column)
                value = row[column]
                row[f"relative_{column}"] = (value / base if base and value is not None
                                             else None)
        rows.extend({"seed": seed, **row} for row in evaluation.summary)
    return rows


def per_seed_values(rows):
    """Return ``values[strategy][column]``: arrays over seeds, for the findings."""
    values = {}
    for row in rows:
        columns = values.setdefault(row["strategy"], {})
        for column, value in row.items():
            if isinstance(value, (int, float)) and not isinstance(value, bool):
                columns.setdefault(column, []).append(value)
    return {name: {column: np.asarray(v, dtype=float) for column, v in columns.items()
                   if len(v) == max(map(len, columns.values()))}
            for name, columns in values.items()}


def aggregate(rows):
    """Return one row per strategy: intervals of scores, means of costs over seeds.

    Parameters
    ----------
    rows : list of dict
        From :func:`seed_summaries`.

    Returns
    -------
    summary : list of dict
        ``strategy``, ``base``, ``budget``, ``n_seeds``, ``{column: {"mean",
        "low", "high", "n"}}`` for each of ``INTERVAL_COLUMNS`` (the
        next-month score as ``next_month_score``), the mean over seeds of
        every cost and ``relative_<cost>`` (None where not measured), and
        ``cost``: the interval of ``relative_train_rows``, the cost budgets
        are stated in.
    """
    summary = []
    for name, columns in per_seed_values(rows).items():
        seeds = [row for row in rows if row["strategy"] == name]
        entry = {"strategy": name, "base": seeds[0].get("base", name),
                 "budget": seeds[0].get("budget"), "n_seeds": len(seeds)}
        for column in INTERVAL_COLUMNS:
            entry[column] = (interval(columns[column]).as_dict()
                             if column in columns else None)
        for column in COST_COLUMNS:
            for key in (column, f"relative_{column}"):
                entry[key] = float(np.mean(columns[key])) if key in columns else None
        # the cost budgets are stated in, with its spread over seeds
        entry["cost"] = (interval(columns["relative_train_rows"]).as_dict()
                         if "relative_train_rows" in columns else None)
        summary.append(entry)
    return summary


def format_table(summary, metric, reference):
    """Return the aggregated summary as an aligned text table, best mean first."""
    rows = sorted(summary, key=lambda row: row["mean_score"]["mean"], reverse=True)
    device = any(row["peak_device_mb"] is not None for row in rows)
    header = ["strategy", "mean", "gap", "next month", "worst", "forgot", "last",
              "train rows", "fwd rows", "train s", "tune s", "peak MB"] + (
                  ["device MB"] if device else [])
    lines = [header]
    for row in rows:
        line = [row["strategy"], _pm(row["mean_score"]), _pm(row["gap_to_reference"], True),
                _pm(row.get("next_month_score")),
                _pm(row["worst_score"]), _pm(row["first_month_forgetting"], True),
                _pm(row["last_month_score"]),
                _cost(row, "train_rows", "{:,.0f}"),
                _cost(row, "forward_rows", "{:,.0f}", relative=False),
                _cost(row, "fit_seconds", "{:.1f}"),
                _cost(row, "tune_seconds", "{:.1f}", relative=False),
                _cost(row, "peak_host_mb", "{:.0f}")]
        if device:
            line.append(_cost(row, "peak_device_mb", "{:.0f}"))
        lines.append(line)
    text = text_table(lines)
    n_seeds = rows[0]["n_seeds"] if rows else 0
    note = (f"metric: {metric}; mean = final model on every month's test part (the past "
            "months' mean), next month = each month's model on the following month's "
            f"test part; +- half the {CONFIDENCE:.0%} interval over {n_seeds} seed(s)")
    if reference is not None:
        note += (f"; gap = paired difference to {reference!r}; train rows = rows through "
                 f"forward+backward, fwd rows = forward-only rows; costs: mean over seeds "
                 f"(x = relative to {reference!r}); tune s = tuning, apart from train s")
    return "\n".join(text + [note])


def write_results_csv(path, results):
    """Write every seed's records to ``path``, a ``seed`` column first (atomically)."""
    stream = io.StringIO(newline="")
    writer = csv.DictWriter(stream, fieldnames=("seed",) + RECORD_COLUMNS)
    writer.writeheader()
    for result in results:
        writer.writerows({"seed": result["seed"], **row} for row in result["records"])
    write_atomically(path, stream.getvalue().encode("utf-8"))


def write_json(path, payload):
    """Write ``payload`` as indented JSON (NaN written as null), atomically."""
    text = json.dumps(_json_safe(payload), indent=2, default=str) + "\n"
    write_atomically(path, text.encode("utf-8"))


def tuning_lines(results):
    """Return one line per tuned strategy: the values chosen at each seed."""
    chosen = {}
    for result in results:
        if result["best_params"]:
            text = ", ".join(f"{key}={value}" for key, value in result["best_params"].items())
            chosen.setdefault(result["strategy"], {}).setdefault(text, []).append(
                result["seed"])
    lines = []
    for name, by_value in chosen.items():
        lines.append(f"  {name}: " + "; ".join(
            f"{text} (seed{'s' if len(seeds) > 1 else ''} {', '.join(map(str, seeds))})"
            for text, seeds in by_value.items()))
    return lines


def final_curves(results, months):
    """Return ``{strategy: (mean, lowest, highest)}``: final-model scores per month over seeds."""
    finals = {}
    for result in results:
        evaluation = StreamEvaluation(result["records"], metric="", reference=None,
                                      months=months)
        finals.setdefault(result["strategy"], []).append(
            evaluation.matrix(result["strategy"])[-1])
    curves = {}
    for name, rows in finals.items():
        rows = np.asarray(rows)
        curves[name] = (rows.mean(axis=0), rows.min(axis=0), rows.max(axis=0))
    return curves


def plot_forgetting(curves, families, months, metric, path, next_month=None):
    """Draw each strategy's final per-month score, one panel per family, to ``path``.

    Lines are means over seeds, bands the range over seeds (the seed spread;
    none at one seed). ``retrain`` (black) and ``naive`` (red) appear in every panel as
    the two bounds. Each panel's y-axis is narrowed to its own strategies and
    ``retrain``; where ``naive`` falls below it, a note gives its minimum.

    Parameters
    ----------
    curves : dict
        From :func:`final_curves`.
    families : dict
        Strategy name to family name (one of ``FAMILIES``).
    months : list
        Month labels.
    metric : str
        The y-axis label.
    path : str or path-like
        Where to write the PNG.
    next_month : dict or None, default=None
        Strategy name to its next-month score (mean over seeds), shown in the
        legend beside each name.

    Returns
    -------
    path : str or path-like
        ``path``, once written.
    """
    from matplotlib.figure import Figure

    next_month = next_month or {}
    names = list(curves)
    panels = [family for family in FAMILIES if any(families[n] == family for n in names)]
    n_cols = min(3, len(panels))
    n_rows = math.ceil(len(panels) / n_cols)
    figure = Figure(figsize=(5.4 * n_cols, 4.6 * n_rows), layout="constrained")
    axes = np.atleast_1d(figure.subplots(n_rows, n_cols, squeeze=False)).ravel()
    positions = np.arange(len(months))
    bounds = {"retrain": ("black", 2.2), "naive": ("tab:red", 1.8)}
    palette = ["tab:blue", "tab:orange", "tab:green", "tab:purple", "tab:brown",
               "tab:pink", "tab:olive", "tab:cyan", "tab:gray"]

    def draw(ax, name, color, width, **style):
        mean, low, high = curves[name]
        label = name if next_month.get(name) is None else (
            f"{name} (next month {next_month[name]:.3f})")
        ax.plot(positions, mean, color=color, linewidth=width, marker="o", markersize=3,
                label=label, **style)
        if (high > low).any():
            ax.fill_between(positions, low, high, color=color, alpha=0.15, linewidth=0)

    for ax, family in zip(axes, panels):
        members = [n for n in names if families[n] == family and n not in bounds]
        shown = [n for n in bounds if n in curves] + members
        if family == "rehearsal + regularizer" and "rehearsal-fixed" in curves:
            # the combinations are read against rehearsal alone
            draw(ax, "rehearsal-fixed", "0.45", 1.6, linestyle="--", zorder=2)
            shown.append("rehearsal-fixed")
        for name in shown:
            if name == "rehearsal-fixed" and family != "rehearsal":
                continue
            if name in bounds:
                draw(ax, name, *bounds[name], zorder=3)
            else:
                draw(ax, name, palette[members.index(name) % len(palette)], 1.4)
        # the axis spans the panel's own strategies and retrain, so that small
        # differences between them stay visible; naive may leave it (noted)
        framed = [n for n in shown if n != "naive" or family == "baselines"]
        values = np.concatenate([np.ravel(curves[n]) for n in framed])
        low, high = float(np.nanmin(values)), float(np.nanmax(values))
        pad = max(0.08 * (high - low), 0.005)
        ax.set_ylim(low - pad, high + pad)
        if "naive" in curves and np.nanmin(curves["naive"][0]) < low - pad:
            ax.annotate(f"naive below axis (min {np.nanmin(curves['naive'][0]):.2f})",
                        xy=(0.98, 0.03), xycoords="axes fraction", fontsize="small",
                        horizontalalignment="right", color=bounds["naive"][0])
        ax.set_title(family)
        ax.set_xlabel("evaluated month")
        ax.set_ylabel(metric)
        step = max(1, len(positions) // 12)
        ax.set_xticks(positions[::step])
        ax.set_xticklabels([str(m) for m in months[::step]],
                           rotation=45 if len(str(months[-1])) > 3 else 0)
        ax.grid(alpha=0.3)
        ax.legend(fontsize="small", loc="upper center", bbox_to_anchor=(0.5, -0.2),
                  ncol=2, frameon=False)
    for ax in axes[len(panels):]:
        ax.set_visible(False)
    figure.suptitle(f"{metric} of each strategy's final model on every month's test part: "
                    "mean over seeds, band = range over seeds\n(each panel's y-axis "
                    "narrowed to its curves; in the legend: the next-month score of the "
                    "deployed models, mean over seeds)")
    figure.savefig(path, dpi=110)
    return path


def _megabytes(value):
    return None if value is None else value / 2**20


def _cost(row, column, fmt, relative=True):
    value = row[column]
    if value is None:
        return ""
    text = fmt.format(value)
    ratio = row.get(f"relative_{column}")
    if relative and ratio is not None:
        text += f" ({ratio:.2f}x)"
    return text


def _json_safe(value):
    if isinstance(value, dict):
        return {str(k): _json_safe(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_json_safe(v) for v in value]
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float) and value != value:
        return None
    return value
