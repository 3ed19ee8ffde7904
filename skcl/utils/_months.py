"""Month labels: validation, order and iteration, shared by every entry point.

A month label is any scalar the user's data carries: ints, ``"2024-03"``
strings, ``numpy.datetime64``, ``datetime.date`` / ``datetime.datetime``,
``pandas.Timestamp``, ``pandas.Period``. Labels are kept as given (in
``months_``, the buffer, the evaluation records). The order of the stream is
the sorted order of the labels, except for an ordered pandas ``Categorical``,
whose category order is the stream's order (as pandas sorts it).

Strings that read as dates or numbers but do not sort as them (``"9/2024"``
after ``"10/2024"``, ``"Apr"`` before ``"Jan"``, ``"10"`` before ``"9"``) are
still sorted as strings, with a warning naming the order used: the stream
order is the labels' order, never a guess.
"""

import calendar
import re
import warnings

import numpy as np

__all__ = ["check_month_label", "check_months", "encode_months", "missing_mask",
           "month_labels", "stream_months"]


def missing_mask(values):
    """True where a label is missing (None, NaN, NaT), whatever the dtype."""
    if values.dtype.kind in "mM":
        return np.isnat(values)
    if values.dtype.kind == "f":
        return np.isnan(values)
    if values.dtype.kind == "O":
        # NaN and NaT are the values not equal to themselves
        return np.array([v is None or v != v for v in values], dtype=bool)
    return np.zeros(len(values), dtype=bool)


def check_months(months, n_rows, *, what="X"):
    """Return ``(months, month_order)``: the labels as an array and in stream order.

    Parameters
    ----------
    months : array-like of shape (n_rows,)
        One month label per row (a list, numpy array, pandas Series or
        Categorical).
    n_rows : int
        The number of rows the labels must match.
    what : str, default="X"
        What the rows belong to, for the error message.

    Returns
    -------
    months : ndarray of shape (n_rows,)
        The labels.
    month_order : ndarray
        The distinct labels in stream order: sorted, or in category order for
        an ordered pandas ``Categorical``.

    Raises
    ------
    ValueError
        If there is not one label per row, a label is missing (NaN, NaT,
        None), or the labels cannot be sorted.
    """
    dtype = getattr(months, "dtype", None)
    categories = getattr(dtype, "categories", None)
    ordered = categories is not None and bool(getattr(dtype, "ordered", False))
    months = np.asarray(months)
    if months.ndim != 1 or len(months) != n_rows:
        raise ValueError(
            f"months has shape {months.shape}, but {what} has {n_rows} rows; pass "
            "one month label per row"
        )
    missing = missing_mask(months)
    if missing.any():
        rows = np.flatnonzero(missing)
        raise ValueError(
            f"months has {len(rows)} missing labels (NaN/NaT/None), at rows "
            f"{rows[:10].tolist()}{' ...' if len(rows) > 10 else ''}; give every row "
            "a month or drop those rows"
        )
    if ordered:
        present = set(months.tolist())
        month_order = np.asarray([c for c in categories if c in present], dtype=months.dtype)
        return months, month_order
    try:
        month_order = np.unique(months)
    except (TypeError, ValueError) as exc:  # pandas' IncompatibleFrequency is a ValueError
        raise ValueError(
            f"month labels cannot be sorted ({exc}); use one comparable type, "
            "e.g. all ints, all dates or all 'YYYY-MM' strings"
        ) from exc
    _warn_if_not_time_order(month_order)
    return months, month_order


def encode_months(months, month_order):
    """Return each row's position in ``month_order`` (``np.unique``'s inverse)."""
    if len(month_order) and np.all(month_order[:-1] < month_order[1:]):
        return np.searchsorted(month_order, months)
    position = {label: code for code, label in enumerate(month_order.tolist())}
    return np.array([position[label] for label in months.tolist()], dtype=np.intp)


def stream_months(months, n_rows):
    """Yield ``(month, rows)`` for each month of a stream, in stream order.

    Parameters
    ----------
    months : array-like of shape (n_rows,) or None
        One month label per row; ``None`` makes the whole stream month ``0``.
    n_rows : int
        The number of rows.

    Yields
    ------
    month : scalar
        The month's label.
    rows : ndarray of bool of shape (n_rows,)
        Which rows belong to it.
    """
    if months is None:
        yield 0, np.ones(n_rows, dtype=bool)
        return
    months, month_order = check_months(months, n_rows)
    codes = encode_months(months, month_order)
    for code, month in enumerate(month_order):
        yield month, codes == code


def check_month_label(month):
    """Return a scalar month label (``partial_fit(month=...)``, the buffer's), checked.

    ``None`` passes through. Any other scalar is returned as given, so
    ``months_`` holds what the user passed: ints, strings, ``numpy.datetime64``,
    ``datetime.date`` / ``datetime.datetime``, ``pandas.Timestamp``,
    ``pandas.Period``.

    Raises
    ------
    ValueError
        If ``month`` is a list, array or other non-scalar, or missing (NaN/NaT).
    """
    if month is None:
        return None
    if np.ndim(month) != 0 or isinstance(month, dict | set | frozenset) or not _hashable(month):
        raise ValueError(
            f"month={month!r} is not a single label; partial_fit trains one month: "
            "pass its label (e.g. month='2024-03' or a date), or call "
            "fit(X, y, months=...) for several"
        )
    if missing_mask(np.asarray([month], dtype=object)).any():
        raise ValueError(f"month={month!r} is a missing label; pass the month's label")
    return month


def month_labels(month_order):
    """The labels of ``month_order`` as the user's scalars, for records and ``months_``.

    Python scalars for numpy numbers and strings (``tolist``); datetime64 labels
    stay numpy scalars, since ``tolist`` would turn nanosecond ones into ints.
    """
    month_order = np.asarray(month_order)
    return list(month_order) if month_order.dtype.kind in "mM" else month_order.tolist()


def _hashable(value):
    try:
        hash(value)
    except TypeError:
        return False
    return True


_INTEGER = re.compile(r"[+-]?[0-9]+")
_MONTH_NAMES = {name.lower(): number for names in (calendar.month_name, calendar.month_abbr)
                for number, name in enumerate(names) if name}


def _time_order(labels):
    """The order of string ``labels`` as time (or numbers), or None if they are not.

    Returns ``(what, order)``: what they look like, and their positions
    sorted as such.
    """
    text = [str(label).strip() for label in labels]
    if all(t.lower() in _MONTH_NAMES for t in text):
        return "month names", np.argsort([_MONTH_NAMES[t.lower()] for t in text], kind="stable")
    if all(_INTEGER.fullmatch(t) for t in text):  # what int() reads ("²" is a digit too)
        return "numbers", np.argsort([int(t) for t in text], kind="stable")
    if not all(any(c.isdigit() for c in t) for t in text):
        return None
    try:
        import pandas as pd
    except ImportError:  # pandas is optional: no date reading without it
        return None
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # pandas' format-inference warnings
            times = pd.to_datetime(pd.Series(text), errors="raise")
    except (ValueError, TypeError, OverflowError):
        return None
    if times.isna().any():
        return None
    return "dates", np.argsort(times.to_numpy(), kind="stable")


def _warn_if_not_time_order(month_order):
    """Warn when string labels look like dates/numbers but do not sort as them."""
    if month_order.dtype.kind not in "US" and not (
            month_order.dtype.kind == "O" and all(isinstance(m, str) for m in month_order)):
        return
    if len(month_order) < 2:
        return
    found = _time_order(month_order)
    if found is None:
        return
    what, order = found
    if np.array_equal(order, np.arange(len(month_order))):
        return
    used = month_labels(month_order)
    shown = used if len(used) <= 6 else [*used[:6], "..."]
    as_time = month_labels(month_order[order])
    shown_time = as_time if len(as_time) <= 6 else [*as_time[:6], "..."]
    warnings.warn(
        f"month labels look like {what} but are strings, sorted as text: the stream "
        f"order used is {shown}, not {shown_time}. Pass dates (datetime64, "
        "pandas.Period), zero-padded 'YYYY-MM' strings, or an ordered "
        "pandas.Categorical to set the order",
        UserWarning,
        stacklevel=3,
    )
