"""The ``classes`` contract of a month-by-month ``partial_fit``, shared by the estimators."""

import numpy as np


def check_month_classes(y, classes, fitted_classes=None):
    """Return the estimator's ``classes_`` after checking one month's labels.

    At the first month (``fitted_classes is None``) the classes are ``classes``,
    or the month's own labels when ``classes`` is None (then at least two are
    needed). Afterwards they are fixed: ``classes`` must repeat them and every
    label of ``y`` must be among them.

    Parameters
    ----------
    y : ndarray of shape (n_samples,)
        The month's labels.
    classes : array-like or None
        The ``classes`` argument of ``partial_fit``.
    fitted_classes : ndarray or None, default=None
        The estimator's ``classes_``, or None before the first month.

    Returns
    -------
    classes_ : ndarray
        The sorted class labels.

    Raises
    ------
    ValueError
        If the first month has one class and ``classes`` was not given, if
        ``classes`` differs from ``fitted_classes``, or if ``y`` has labels
        outside the classes.
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
    elif classes is not None and not np.array_equal(np.unique(classes), fitted_classes):
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
            "partial_fit"
        )
    return fitted_classes
