"""Per-row group labels (malware families) passed through a classifier to its buffer.

``ContinualClassifier.fit`` / ``partial_fit`` take ``groups=``, one label per
row; each month's slice reaches the rehearsal buffer's ``partial_fit`` at the
month's end (see ``rehearsal_inputs`` in ``diverse_rehearsal.py``). Only a
buffer whose ``partial_fit`` takes ``groups`` (``DiverseRehearsalBuffer``) can
use them; given to any other strategy they are refused rather than dropped.
"""

import inspect

import numpy as np

from .utils._months import missing_mask

__all__ = ["check_group_labels", "check_groups", "month_groups"]


def check_groups(estimator, groups, n_rows):
    """Return ``groups`` as an array of one label per row, or refuse them.

    Parameters
    ----------
    estimator : ContinualClassifier
        Its ``rehearsal`` parameter must take ``groups`` in ``partial_fit``.
    groups : array-like of shape (n_rows,) or None
        The group label of each row.
    n_rows : int
        Rows of the call's ``X``.

    Returns
    -------
    groups : ndarray of shape (n_rows,) or None
        The labels, or None when none were given.
    """
    if groups is None:
        return None
    buffer = estimator.rehearsal
    takes_groups = (buffer is not None and "groups" in
                    inspect.signature(buffer.partial_fit).parameters)
    if not takes_groups:
        raise ValueError(
            f"groups= was passed, but rehearsal={buffer!r} cannot use it: group labels "
            "(e.g. malware families) decide which rows a DiverseRehearsalBuffer keeps, "
            "and no other strategy reads them. Pass rehearsal=DiverseRehearsalBuffer(...), "
            "or drop groups (under metadata routing: set_fit_request(groups=False))"
        )
    return check_group_labels(groups, n_rows, "X")


def check_group_labels(groups, n_rows, what):
    """``groups`` as an array of one present label per row of ``what``, or a ValueError."""
    groups = np.asarray(groups)
    if groups.shape != (n_rows,):
        raise ValueError(
            f"groups has shape {groups.shape}, but {what} has {n_rows} rows; pass one "
            "group label per row"
        )
    missing = missing_mask(groups)
    if missing.any():
        raise ValueError(
            f"groups has {int(missing.sum())} missing labels (None/NaN), at rows "
            f"{np.flatnonzero(missing)[:10].tolist()}; give those rows a group of their own"
        )
    return groups


def month_groups(net, X):
    """The group labels of the month being trained, when ``X`` holds its rows."""
    month = net.__dict__.get("_month")
    if month is None or X is not month.X_strategies:
        return None
    return month.groups
