"""Validation of per-row month labels, shared by every entry point that takes them."""

import numpy as np


def check_months(months, n_rows, *, what="X"):
    """Return ``(months, month_order)``: the labels as an array and sorted unique.

    Parameters
    ----------
    months : array-like of shape (n_rows,)
        One month label per row.
    n_rows : int
        The number of rows the labels must match.
    what : str, default="X"
        What the rows belong to, for the error message.

    Returns
    -------
    months : ndarray of shape (n_rows,)
        The labels.
    month_order : ndarray
        The distinct labels in sorted order.

    Raises
    ------
    ValueError
        If there is not one label per row, or the labels cannot be sorted.
    """
    months = np.asarray(months)
    if months.ndim != 1 or len(months) != n_rows:
        raise ValueError(
            f"months has shape {months.shape}, but {what} has {n_rows} rows; pass "
            "one month label per row"
        )
    try:
        month_order = np.unique(months)
    except TypeError as exc:
        raise ValueError(
            f"month labels cannot be sorted ({exc}); use one comparable type, "
            "e.g. all ints or all 'YYYY-MM' strings"
        ) from exc
    return months, month_order
