"""Cross-validation splitters that know about months.

Both splitters read the month of each row from ``months`` (metadata routing) or
``groups`` (the way scikit-learn splitters take group labels), so they plug into
:class:`~sklearn.model_selection.GridSearchCV` and
:func:`~sklearn.model_selection.cross_validate` as ``cv=`` with metadata routing
on (``search.fit(X, y, months=months)``) or off (``search.fit(X, y,
groups=months, months=months)``).
"""

import math
from numbers import Integral, Real

import numpy as np
from sklearn.model_selection import BaseCrossValidator
from sklearn.utils import check_random_state

from .utils._arrays import as_list, n_rows
from .utils._months import check_months, encode_months
from .utils._sklearn_compat import Interval, validate_parameter_constraints

__all__ = ["MonthlyKFold", "TemporalSplit"]


class _MonthSplitter(BaseCrossValidator):
    """What every month-aware splitter shares: its month request and ``n_splits``."""

    # months arrive as ``months`` metadata or, the way sklearn splitters take
    # them, as ``groups``; both are requested so GridSearchCV routes them here.
    __metadata_request__split = {"groups": True, "months": True}

    def get_n_splits(self, X=None, y=None, groups=None, months=None):
        """Return the number of splits, ``n_splits``.

        Parameters
        ----------
        X, y, groups, months : object
            Ignored; present for API compatibility.

        Returns
        -------
        n_splits : int
            The number of train/test pairs that ``split`` yields.
        """
        _validate_splitter(self)
        return self.n_splits


class MonthlyKFold(_MonthSplitter):
    """K-fold cross-validation in which every fold holds every month.

    Each month's rows are divided into ``n_splits`` folds of near-equal size
    (optionally per month and class), so every train set and every test set
    contains rows of every month. A continual learner fitted on a train set
    then sees the whole stream, month by month, and a
    :class:`~skcl.ForgettingScorer` can score every month on the test set.

    Read more in the :ref:`User Guide <splitters>`.

    Parameters
    ----------
    n_splits : int, default=5
        Number of folds; at least 2. Every month needs at least ``n_splits``
        rows.
    shuffle : bool, default=False
        Whether to shuffle the rows of each month before dividing them.
        ``False`` keeps the order of the rows (contiguous blocks per month),
        as :class:`~sklearn.model_selection.KFold` does.
    random_state : int, RandomState instance or None, default=None
        Seeds the shuffle; only allowed with ``shuffle=True``.
    stratify_by_class : bool, default=False
        Divide each (month, class) cell separately, so every fold also keeps
        each month's class proportions. Needs ``y``.

    See Also
    --------
    TemporalSplit : Train on the past, test on held-out past and the future.
    sklearn.model_selection.StratifiedGroupKFold : Keeps groups apart instead.

    Notes
    -----
    With metadata routing on, ``split`` requests both ``months`` and
    ``groups`` by default, so ``GridSearchCV.fit(X, y, months=months)``
    reaches it; with routing off, pass ``groups=months`` (and ``months=months``
    for the estimator). Folds are balanced across months: the rows left over
    when a month (or cell) does not divide evenly go to the next folds in
    turn, so fold sizes differ by at most one row per month.

    Examples
    --------
    >>> import numpy as np
    >>> from skcl import MonthlyKFold
    >>> months = np.repeat([0, 1, 2], 4)
    >>> X = np.zeros((12, 1))
    >>> for train, test in MonthlyKFold(n_splits=2).split(X, months=months):
    ...     print(months[test])
    [0 0 1 1 2 2]
    [0 0 1 1 2 2]
    """

    _parameter_constraints = {
        "n_splits": [Interval(Integral, 2, None, closed="left")],
        "shuffle": ["boolean"],
        "random_state": ["random_state"],
        "stratify_by_class": ["boolean"],
    }

    def __init__(self, n_splits=5, *, shuffle=False, random_state=None,
                 stratify_by_class=False):
        self.n_splits = n_splits
        self.shuffle = shuffle
        self.random_state = random_state
        self.stratify_by_class = stratify_by_class

    def split(self, X, y=None, groups=None, months=None):
        """Generate train and test indices, every month on both sides.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
            Training data; only its length is used.
        y : array-like of shape (n_samples,), default=None
            Labels; required with ``stratify_by_class=True``.
        groups : array-like of shape (n_samples,), default=None
            Month of each row, when given as group labels.
        months : array-like of shape (n_samples,), default=None
            Month of each row, when given as metadata. Pass ``months`` or
            ``groups`` (or both, if equal).

        Yields
        ------
        train : ndarray
            Training indices of the split, sorted.
        test : ndarray
            Test indices of the split, sorted.
        """
        _validate_splitter(self)
        n_samples = n_rows(X)
        months, labels = _resolve_months(self, n_samples, groups, months)
        if self.stratify_by_class:
            if y is None:
                raise ValueError(
                    "MonthlyKFold(stratify_by_class=True) needs y to stratify by "
                    "class; pass y to split (GridSearchCV does)"
                )
            y = np.asarray(y)
            if len(y) != n_samples:
                raise ValueError(
                    f"y has {len(y)} rows, but X has {n_samples}; pass one label per row"
                )
        month_codes = encode_months(months, labels)
        counts = np.bincount(month_codes, minlength=len(labels))
        small = counts < self.n_splits
        if small.any():
            month, count = as_list(labels[small])[0], counts[small][0]
            raise ValueError(
                f"month {month!r} has {count} rows, fewer than n_splits="
                f"{self.n_splits}; every month needs at least n_splits rows so that "
                "every fold holds it: lower n_splits or drop the month"
            )

        rng = check_random_state(self.random_state) if self.shuffle else None
        fold_of = np.empty(n_samples, dtype=np.intp)
        offset = 0
        for code in range(len(labels)):
            month_rows = np.flatnonzero(month_codes == code)
            if self.stratify_by_class:
                cell_labels = y[month_rows]
                cells = [month_rows[cell_labels == label]
                         for label in np.unique(cell_labels)]
            else:
                cells = [month_rows]
            for rows in cells:
                if rng is not None:
                    rows = rng.permutation(rows)
                fold_of[rows], offset = _assign_folds(len(rows), self.n_splits, offset)

        indices = np.arange(n_samples)
        for fold in range(self.n_splits):
            test_mask = fold_of == fold
            yield indices[~test_mask], indices[test_mask]


class TemporalSplit(_MonthSplitter):
    """Rolling-origin split: train on the past, test on held-out past and the future.

    The sorted months are cut at ``n_splits`` successive months ``T`` (the
    ``n_splits`` months before the newest one). For a cut ``T``, the train set is
    part of every month up to and including ``T``; the test set is the held-out
    rest of those months (``test_size`` of each) plus every row of every month
    after ``T``. A continual learner is thus scored both on what it has seen
    (``ForgettingScorer(aggregate="seen")``) and on months it has not
    (``aggregate="future"``).

    The held-out rows of a month are the same in every split, so the splits
    differ only in where the past ends.

    Read more in the :ref:`User Guide <splitters>`.

    Parameters
    ----------
    n_splits : int, default=3
        Number of cuts; needs at least ``n_splits + 1`` distinct months.
    test_size : float, default=0.3
        Share of each month up to the cut held out for testing, in (0, 1),
        rounded up to whole rows. Every month needs at least 2 rows.
    shuffle : bool, default=False
        ``False`` holds out the last rows of each month (its most recent ones
        when rows are in time order); ``True`` holds out random rows.
    random_state : int, RandomState instance or None, default=None
        Seeds the shuffle; only allowed with ``shuffle=True``.

    See Also
    --------
    MonthlyKFold : Every fold holds every month.
    sklearn.model_selection.TimeSeriesSplit : Rolling origin over rows.

    Notes
    -----
    Like :class:`MonthlyKFold`, ``split`` requests ``months`` and ``groups``
    by default under metadata routing; with routing off pass ``groups=months``.

    Examples
    --------
    >>> import numpy as np
    >>> from skcl import TemporalSplit
    >>> months = np.repeat([0, 1, 2, 3], 4)
    >>> X = np.zeros((16, 1))
    >>> for train, test in TemporalSplit(n_splits=2, test_size=0.25).split(
    ...         X, months=months):
    ...     print(np.unique(months[train]), np.unique(months[test]))
    [0 1] [0 1 2 3]
    [0 1 2] [0 1 2 3]
    >>> train, test = next(TemporalSplit(n_splits=2, test_size=0.25).split(
    ...     X, months=months))
    >>> months[test]
    array([0, 1, 2, 2, 2, 2, 3, 3, 3, 3])
    """

    _parameter_constraints = {
        "n_splits": [Interval(Integral, 1, None, closed="left")],
        "test_size": [Interval(Real, 0, 1, closed="neither")],
        "shuffle": ["boolean"],
        "random_state": ["random_state"],
    }

    def __init__(self, n_splits=3, *, test_size=0.3, shuffle=False, random_state=None):
        self.n_splits = n_splits
        self.test_size = test_size
        self.shuffle = shuffle
        self.random_state = random_state

    def split(self, X, y=None, groups=None, months=None):
        """Generate train and test indices, one pair per cut month.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
            Training data; only its length is used.
        y : array-like of shape (n_samples,), default=None
            Ignored.
        groups : array-like of shape (n_samples,), default=None
            Month of each row, when given as group labels.
        months : array-like of shape (n_samples,), default=None
            Month of each row, when given as metadata. Pass ``months`` or
            ``groups`` (or both, if equal).

        Yields
        ------
        train : ndarray
            Rows of the months up to the cut, less their held-out share.
        test : ndarray
            The held-out share of those months and every row after the cut.
        """
        _validate_splitter(self)
        n_samples = n_rows(X)
        months, labels = _resolve_months(self, n_samples, groups, months)
        month_codes = encode_months(months, labels)
        if len(labels) < self.n_splits + 1:
            raise ValueError(
                f"TemporalSplit(n_splits={self.n_splits}) needs at least "
                f"{self.n_splits + 1} distinct months (one after the last cut), got "
                f"{len(labels)}: {as_list(labels)!r}; lower n_splits"
            )
        rng = check_random_state(self.random_state) if self.shuffle else None
        held_out = np.zeros(n_samples, dtype=bool)
        for code in range(len(labels)):
            rows = np.flatnonzero(month_codes == code)
            if len(rows) < 2:
                raise ValueError(
                    f"month {as_list(labels)[code]!r} has {len(rows)} row; TemporalSplit needs "
                    "at least 2 rows per month (one to train on, one to test)"
                )
            n_test = min(max(math.ceil(self.test_size * len(rows)), 1), len(rows) - 1)
            if rng is not None:
                rows = rng.permutation(rows)
            held_out[rows[len(rows) - n_test:]] = True

        indices = np.arange(n_samples)
        first_cut = len(labels) - 1 - self.n_splits
        for cut in range(first_cut, len(labels) - 1):
            past = month_codes <= cut
            yield indices[past & ~held_out], indices[~past | held_out]


def _validate_splitter(splitter):
    """Check ``splitter``'s parameters against its ``_parameter_constraints``."""
    validate_parameter_constraints(
        splitter._parameter_constraints,
        {name: getattr(splitter, name) for name in splitter._parameter_constraints},
        caller_name=type(splitter).__name__,
    )
    if not splitter.shuffle and splitter.random_state is not None:
        raise ValueError(
            f"random_state={splitter.random_state!r} has no effect since shuffle is "
            "False; set shuffle=True or leave random_state=None"
        )


def _assign_folds(n_rows, n_splits, offset):
    """Fold index of each of ``n_rows`` consecutive rows, and the next offset.

    Rows are cut into ``n_splits`` contiguous blocks whose sizes differ by at
    most one; the larger blocks go to the folds starting at ``offset`` (mod
    ``n_splits``), so that the leftover rows of successive cells fall on
    successive folds and the totals stay balanced.
    """
    sizes = np.full(n_splits, n_rows // n_splits)
    sizes[:n_rows % n_splits] += 1
    folds = (np.repeat(np.arange(n_splits), sizes) + offset) % n_splits
    return folds, (offset + n_rows) % n_splits


def _resolve_months(splitter, n_samples, groups, months):
    """Return ``(months, month_order)`` passed as ``months`` or ``groups``, checked."""
    name = type(splitter).__name__
    if months is None and groups is None:
        raise ValueError(
            f"{name}.split needs the month of each row, but got months=None and "
            "groups=None. With sklearn.set_config(enable_metadata_routing=True), pass "
            "months=... to GridSearchCV.fit / cross_validate(params=...); with routing "
            "off, pass groups=months"
        )
    if months is not None and groups is not None:
        if not np.array_equal(np.asarray(months), np.asarray(groups)):
            raise ValueError(
                f"{name}.split got both months and groups, and they differ; it reads "
                "the month of each row from either one: pass one, or the same labels"
            )
    return check_months(months if months is not None else groups, n_samples)
