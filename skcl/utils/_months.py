"""Month labels: validation, order and iteration, shared by every entry point.

A month label is any scalar the user's data carries: ints, ``"2024-03"``
strings, dates. The order of the stream is the sorted order of the labels,
except for an ordered pandas ``Categorical``, whose category order is the
stream's order (as pandas sorts it).
"""

import numbers

import numpy as np

__all__ = ["check_month_label", "check_months", "encode_months", "missing_mask", "stream_months"]


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
    except TypeError as exc:
        raise ValueError(
            f"month labels cannot be sorted ({exc}); use one comparable type, "
            "e.g. all ints or all 'YYYY-MM' strings"
        ) from exc
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
    """Return a scalar month label given to ``partial_fit(month=...)``, checked.

    ``None`` passes through; a ``pandas.Timestamp`` becomes ``numpy.datetime64``,
    so that it compares with the labels of a ``fit`` on a ``datetime64`` column.

    Raises
    ------
    ValueError
        If ``month`` is a list, array or other non-scalar, or missing (NaN/NaT).
    """
    if month is None:
        return None
    if hasattr(month, "to_datetime64"):  # pandas.Timestamp
        month = month.to_datetime64()
    if not (np.isscalar(month) or isinstance(month, np.generic | numbers.Number)):
        raise ValueError(
            f"month={month!r} is not a single label; partial_fit trains one month: "
            "pass its label (e.g. month='2024-03'), or call fit(X, y, months=...) "
            "for several"
        )
    if missing_mask(np.asarray([month])).any():
        raise ValueError(f"month={month!r} is a missing label; pass the month's label")
    return month
