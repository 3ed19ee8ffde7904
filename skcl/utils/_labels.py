"""The ``classes`` contract of a month-by-month ``partial_fit``, shared by the estimators."""

import numpy as np


def check_month_classes(y, classes, fitted_classes=None, new_classes="error"):
    """Return the estimator's ``classes_`` after checking one month's labels.

    At the first month (``fitted_classes is None``) the classes are ``classes``,
    or the month's own labels when ``classes`` is None (then at least two are
    needed), sorted. Afterwards, with ``new_classes="error"``, they are fixed:
    ``classes`` must repeat them and every label of ``y`` must be among them.
    With ``new_classes="grow"``, labels of ``y`` (and of ``classes``) not yet
    known are appended, sorted among themselves, after the known ones: the
    known classes keep their positions (their encoded labels and output rows),
    so ``classes_`` is sorted only until the first class is added.

    Parameters
    ----------
    y : ndarray of shape (n_samples,)
        The month's labels.
    classes : array-like or None
        The ``classes`` argument of ``partial_fit``.
    fitted_classes : ndarray or None, default=None
        The estimator's ``classes_``, or None before the first month.
    new_classes : {"error", "grow"}, default="error"
        What a label outside ``fitted_classes`` does: raise, or join the classes.

    Returns
    -------
    classes_ : ndarray
        The class labels: sorted, then any added ones in order of arrival.

    Raises
    ------
    ValueError
        If the first month has one class and ``classes`` was not given, or,
        with ``new_classes="error"``, if ``classes`` differs from
        ``fitted_classes`` or ``y`` has labels outside the classes.
    """
    if fitted_classes is None:
        if classes is None:
            fitted_classes = np.unique(y)
            if len(fitted_classes) < 2:
                raise ValueError(
                    f"the first month has only one class ({fitted_classes.tolist()[0]!r}) "
                    "and classes was not given; pass every label of the stream as "
                    "classes=[...] on the first partial_fit"
                )
        else:
            fitted_classes = np.unique(np.asarray(classes))
    elif new_classes == "grow":
        seen = np.unique(y) if classes is None else np.union1d(y, classes)
        added = np.setdiff1d(seen, fitted_classes)
        if len(added):
            _check_comparable(fitted_classes, added)
            if fitted_classes.dtype.kind in "iu" and added.dtype.kind == "f":
                as_integers = added.astype(fitted_classes.dtype)
                if np.array_equal(as_integers, added):  # 2.0 is the label 2
                    added = as_integers  # classes_ keeps its dtype, as under "error"
            return np.concatenate([fitted_classes, added])
        return fitted_classes
    elif classes is not None and not np.array_equal(np.unique(classes),
                                                     np.unique(fitted_classes)):
        raise ValueError(
            f"classes={np.unique(classes).tolist()!r} differs from classes_="
            f"{fitted_classes.tolist()!r} fixed by the first partial_fit; pass the "
            "same classes or call fit to start over"
        )
    unknown = np.setdiff1d(np.unique(y), fitted_classes)
    if len(unknown):
        raise ValueError(
            f"y has labels {unknown.tolist()!r} not in classes_ "
            f"{fitted_classes.tolist()!r}; pass every label in classes on the first "
            "partial_fit, or set new_classes='grow' to let the classes grow"
        )
    return fitted_classes


def _check_comparable(fitted_classes, added):
    """Refuse added labels of another kind than the known ones (e.g. str among ints)."""
    if (fitted_classes.dtype.kind in "OSU") != (added.dtype.kind in "OSU"):
        raise ValueError(
            f"the new labels {added.tolist()!r} are of dtype {added.dtype}, but "
            f"classes_ {fitted_classes.tolist()!r} are of dtype {fitted_classes.dtype}; "
            "use labels of one kind (all numbers or all strings)"
        )


def encode_labels(classes, y):
    """Return the position of each label of ``y`` in ``classes`` (sorted or not).

    Parameters
    ----------
    classes : ndarray of shape (n_classes,)
        Distinct labels, in the estimator's order (sorted, then any added ones).
    y : ndarray of shape (n_samples,)
        Labels, every one of them in ``classes``.

    Returns
    -------
    codes : ndarray of shape (n_samples,), int
        ``codes[i]`` is the index of ``y[i]`` in ``classes``.
    """
    order = np.argsort(classes, kind="stable")
    return order[np.searchsorted(classes[order], y)]
