"""Intervals over seeds, and the original study's seven claims judged from them.

Every per-seed value (a strategy's mean score, forgetting, ...) becomes a mean
with a two-sided 95% Student-t interval over seeds. A comparison between two
strategies is *paired*: the same seed (same first-month model draw, same
split) gives one difference, and the interval is over those differences.

A claim is a list of comparisons. Each comparison *holds* when its interval
lies on the claimed side (strictly), is *contradicted* when its interval
lies entirely on the other side (zero included), and is *undecided*
otherwise. A claim is ``reproduced`` when all its comparisons hold, ``not
reproduced`` when any is contradicted, ``inconclusive`` otherwise (always
at one seed, where there is no interval), and ``not tested`` when the run
did not include a strategy it needs.
"""

import math
from dataclasses import dataclass

import numpy as np
from scipy import stats

CONFIDENCE = 0.95
#: Half-width of "about the same" in the metric's units (1 point of accuracy).
EQUIVALENCE_MARGIN = 0.01
#: "Many" negative entries: at least this share of the raw importance estimate.
MANY_NEGATIVE = 0.10


@dataclass(frozen=True)
class Interval:
    """Mean of per-seed values with its two-sided Student-t interval.

    Parameters
    ----------
    mean : float
    low, high : float
        Bounds of the interval; NaN with fewer than two values.
    n : int
        Number of values (seeds).
    """

    mean: float
    low: float
    high: float
    n: int

    @property
    def half_width(self):
        """Half the interval's width (NaN without an interval)."""
        return (self.high - self.low) / 2

    def as_dict(self):
        """Return ``{"mean", "low", "high", "n"}``, NaN bounds as None (JSON)."""
        return {"mean": _finite(self.mean), "low": _finite(self.low),
                "high": _finite(self.high), "n": self.n}


def interval(values, confidence=CONFIDENCE):
    """Return the mean of ``values`` and its Student-t interval.

    Parameters
    ----------
    values : array-like of float
        One value per seed.
    confidence : float, default=0.95
        Coverage of the two-sided interval.

    Returns
    -------
    interval : Interval
        ``mean +- t(1 - (1 - confidence) / 2, n - 1) * sd / sqrt(n)`` with the
        sample standard deviation ``sd``; bounds NaN for ``n < 2``.
    """
    values = np.asarray(values, dtype=float)
    n = len(values)
    mean = float(values.mean()) if n else math.nan
    if n < 2:
        return Interval(mean, math.nan, math.nan, n)
    half = (stats.t.ppf(0.5 + confidence / 2, n - 1)
            * values.std(ddof=1) / math.sqrt(n))
    return Interval(mean, float(mean - half), float(mean + half), n)


def plus_minus(found, signed=False, fmt=None):
    """An :func:`interval` as text: ``mean +-half-width`` (just the mean without one).

    ``fmt`` formats the mean (default 4 decimals, with a sign when ``signed``);
    an empty string when there is no mean.
    """
    if not found or found.get("mean") is None:
        return ""
    fmt = fmt or ("{:+.4f}" if signed else "{:.4f}")
    text = fmt.format(found["mean"])
    if found.get("low") is None:
        return text
    return f"{text} +-{(found['high'] - found['low']) / 2:.4f}"


@dataclass(frozen=True)
class Comparison:
    """One claimed relation, judged from a paired interval over seeds.

    Parameters
    ----------
    left : str
        A strategy name.
    relation : {"greater", "less", "same", "at_least"}
        ``left``'s ``column`` is greater / less than ``right``'s, about the
        same (within ``EQUIVALENCE_MARGIN``), or (``at_least``) at least
        ``threshold`` on its own.
    right : str or None
        The other strategy (None for ``at_least``).
    column : str
        A per-seed value, e.g. ``mean_score`` or ``first_month_forgetting``.
    threshold : float, default=0.0
        For ``at_least``.
    """

    left: str
    relation: str
    right: str = None
    column: str = "mean_score"
    threshold: float = 0.0

    def strategies(self):
        """Return the strategies the comparison needs."""
        return [name for name in (self.left, self.right) if name is not None]

    def text(self):
        """Return the comparison in words."""
        column = self.column.replace("_", " ")
        if self.relation == "at_least":
            return f"{self.left} {column} >= {self.threshold:g}"
        sign = {"greater": ">", "less": "<", "same": "~="}[self.relation]
        return f"{self.left} {sign} {self.right} ({column})"

    def judge(self, values):
        """Return ``(status, interval)`` from ``values[strategy][column]`` arrays.

        ``status`` is ``"holds"``, ``"contradicted"`` or ``"undecided"``;
        the interval is of ``left - right`` per seed (or of ``left`` for
        ``at_least``).
        """
        left = np.asarray(values[self.left][self.column], dtype=float)
        if self.relation == "at_least":
            found = interval(left)
            low, high = found.low - self.threshold, found.high - self.threshold
        else:
            found = interval(left - np.asarray(values[self.right][self.column], dtype=float))
            low, high = found.low, found.high
        if math.isnan(low):
            return "undecided", found
        if self.relation in ("greater", "at_least"):
            status = "holds" if low > 0 else "contradicted" if high <= 0 else "undecided"
        elif self.relation == "less":
            status = "holds" if high < 0 else "contradicted" if low >= 0 else "undecided"
        else:
            margin = EQUIVALENCE_MARGIN
            status = ("holds" if -margin < low and high < margin
                      else "contradicted" if low >= margin or high <= -margin
                      else "undecided")
        return status, found


@dataclass(frozen=True)
class Claim:
    """One finding of the original study and the comparisons that test it.

    Parameters
    ----------
    number : int
    text : str
        The claim as the study states it.
    comparisons : tuple of Comparison
        All must hold for ``reproduced``.
    """

    number: int
    text: str
    comparisons: tuple


_REHEARSAL_COMBINATIONS = ("l2", "ewc-empirical", "ewc-hessian", "ewc-variance",
                           "online-ewc")

CLAIMS = (
    Claim(1, "model averaging is worse than both baselines", (
        Comparison("averaging", "less", "retrain"),
        Comparison("averaging", "less", "naive"))),
    Claim(2, "rehearsal reduces forgetting; replaying 50% works well", (
        Comparison("rehearsal-fixed", "less", "naive", "first_month_forgetting"),
        Comparison("rehearsal-fixed", "greater", "naive"))),
    Claim(3, "L2 trades learning for retention", (
        Comparison("l2", "less", "naive", "first_month_forgetting"),
        Comparison("l2", "less", "naive", "last_month_score"))),
    Claim(4, "a reduced fine-tuning learning rate moves toward retrain", (
        Comparison("low-lr", "greater", "naive"),)),
    Claim(5, "the Hessian Fisher has many negative entries and does poorly", (
        Comparison("ewc-hessian", "at_least", None, "negative_fraction", MANY_NEGATIVE),
        Comparison("ewc-hessian", "less", "ewc-empirical"))),
    Claim(6, "empirical-Fisher EWC is okay; variance-based EWC is more reliable", (
        Comparison("ewc-empirical", "greater", "naive"),
        Comparison("ewc-variance", "greater", "ewc-empirical", "worst_score"))),
    Claim(7, "rehearsal + a regularizer ~ rehearsal alone; a growing epoch is better", (
        *(Comparison(f"rehearsal+{name}", "same", "rehearsal-fixed")
          for name in _REHEARSAL_COMBINATIONS),
        Comparison("rehearsal-grow", "greater", "rehearsal-fixed"))),
)


def judge_claims(values, claims=CLAIMS):
    """Return each claim's verdict and the evidence behind it.

    Parameters
    ----------
    values : dict
        ``values[strategy][column]``: one value per seed, seeds in the same
        order for every strategy.
    claims : sequence of Claim, default=CLAIMS

    Returns
    -------
    findings : list of dict
        Per claim: ``number``, ``claim``, ``verdict`` (``reproduced``, ``not
        reproduced``, ``inconclusive`` or ``not tested``), ``n_seeds`` and
        ``evidence``: per comparison its ``comparison`` text, ``status`` and
        interval (``mean``, ``low``, ``high``).
    """
    findings = []
    for claim in claims:
        missing = sorted({name for comparison in claim.comparisons
                          for name in comparison.strategies() if name not in values})
        evidence = []
        if not missing:
            for comparison in claim.comparisons:
                if comparison.column not in values[comparison.left]:
                    missing.append(f"{comparison.left}'s {comparison.column}")
                    continue
                status, found = comparison.judge(values)
                evidence.append({"comparison": comparison.text(), "status": status,
                                 **found.as_dict()})
        statuses = [row["status"] for row in evidence]
        if missing:
            verdict = "not tested"
        elif "contradicted" in statuses:
            verdict = "not reproduced"
        elif all(status == "holds" for status in statuses):
            verdict = "reproduced"
        else:
            verdict = "inconclusive"
        n_seeds = len(next(iter(next(iter(values.values())).values()))) if values else 0
        findings.append({"number": claim.number, "claim": claim.text, "verdict": verdict,
                         "n_seeds": n_seeds, "missing": missing, "evidence": evidence})
    return findings


def format_findings(findings, markdown=False):
    """Return the findings as text (or a markdown document with one table).

    Parameters
    ----------
    findings : list of dict
        From :func:`judge_claims`.
    markdown : bool, default=False

    Returns
    -------
    text : str
    """
    n_seeds = findings[0]["n_seeds"] if findings else 0
    note = (f"Verdicts from paired {CONFIDENCE:.0%} Student-t intervals over {n_seeds} "
            f"seed(s): reproduced = every comparison's interval on the claimed side; "
            f"not reproduced = one entirely on the other side; inconclusive otherwise. "
            f"'~=' means within +-{EQUIVALENCE_MARGIN:g}.")
    rows = []
    for finding in findings:
        if finding["missing"]:
            evidence = "needs " + ", ".join(finding["missing"])
        else:
            evidence = "; ".join(
                f"{row['comparison']}: {_signed(row['mean'])} "
                f"[{_signed(row['low'])}, {_signed(row['high'])}] {row['status']}"
                for row in finding["evidence"])
        rows.append((str(finding["number"]), finding["claim"], finding["verdict"], evidence))
    if markdown:
        lines = ["# Findings of the original study, judged", "", note, "",
                 "| # | claim | verdict | evidence (difference [95% interval]) |",
                 "| --- | --- | --- | --- |"]
        lines += [f"| {' | '.join(row)} |" for row in rows]
        return "\n".join(lines) + "\n"
    lines = ["findings (the original study's claims)"]
    for number, claim, verdict, evidence in rows:
        lines.append(f"  {number}. {claim}: {verdict.upper()}")
        lines.append(f"     {evidence}")
    lines.append(note)
    return "\n".join(lines)


def _signed(value):
    return "n/a" if value is None or value != value else f"{value:+.4f}"


def _finite(value):
    return None if value is None or value != value else float(value)
