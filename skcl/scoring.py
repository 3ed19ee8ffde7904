"""Per-month scores of continual learners, and what forgetting does to them.

:class:`ForgettingScorer` is a scikit-learn scorer that scores each month of
the test data separately and aggregates the per-month curve, so that
:class:`~sklearn.model_selection.GridSearchCV` can pick the hyper-parameters
that forget least. :func:`per_month_scores` returns the curve itself.

With per-month weight snapshots (``ContinualClassifier(keep_snapshots=True)``),
:func:`accuracy_matrix` evaluates the model kept after every training month on
every test month, and :func:`average_accuracy`, :func:`forgetting`,
:func:`backward_transfer` and :func:`forward_transfer` summarize that matrix;
:func:`negative_flip_rate` counts what a monthly update breaks.

Undefined scores
----------------
A month's score is *undefined* when the metric returns NaN (``roc_auc`` on a
month holding a single class, in scikit-learn >= 1.6) or raises ``ValueError``
on a month holding a single class (``neg_log_loss``). Undefined months are
reported as NaN by :func:`per_month_scores` and :func:`accuracy_matrix`, named
in an :class:`~sklearn.exceptions.UndefinedMetricWarning`, and left out of
every aggregate: the aggregate is computed on the remaining months as if the
undefined ones were not in the test set. A test month whose column of the
accuracy matrix holds any NaN is left out of the matrix summaries. If no month
is left, a ``ValueError`` is raised.
"""

import copy
import json
import re
import warnings
from numbers import Real

import numpy as np
import sklearn
from sklearn.base import BaseEstimator
from sklearn.exceptions import UndefinedMetricWarning
from sklearn.metrics import check_scoring, get_scorer, make_scorer, roc_curve
from sklearn.pipeline import Pipeline
from sklearn.utils import _safe_indexing
from sklearn.utils.metadata_routing import UNCHANGED, MetadataRequest

from .utils._arrays import as_list
from .utils._months import check_months
from .utils._seeding import seed_from, seeded_global_torch
from .utils._sklearn_compat import (
    InvalidParameterError,
    StrOptions,
    check_parameter_constraints,
    scorer_positive_label,
)

__all__ = [
    "ForgettingScorer",
    "accuracy_matrix",
    "get_metric_scorer",
    "make_tpr_at_fpr_scorer",
    "tpr_at_fpr",
    "average_accuracy",
    "backward_transfer",
    "forgetting",
    "forward_transfer",
    "negative_flip_rate",
    "next_month_score",
    "per_month_scores",
]

_MONTH_AGGREGATES = ("mean", "min", "last", "past", "seen", "future")
_SNAPSHOT_AGGREGATES = ("neg_forgetting", "bwt", "fwt", "neg_flip_rate", "next_month")


class ForgettingScorer(BaseEstimator):
    """Scorer that scores every month of the test data and aggregates the curve.

    Use it as ``scoring=`` in :class:`~sklearn.model_selection.GridSearchCV`,
    :func:`~sklearn.model_selection.cross_validate` and friends. Calling it as
    ``scorer(estimator, X, y, months=months)`` computes ``metric`` on each
    month's rows of the test data and returns one number, greater is better.

    Read more in the :ref:`User Guide <forgetting_scorer>`.

    Parameters
    ----------
    metric : str or callable, default="accuracy"
        The per-month metric: any scikit-learn scorer name (``"accuracy"``,
        ``"roc_auc"``, ``"balanced_accuracy"``, ``"neg_log_loss"``, ...),
        a detection rate ``"tpr_at_fpr=0.001@malicious"`` (see
        :func:`get_metric_scorer`), or a scorer callable
        ``metric(estimator, X, y) -> float`` (e.g. from
        :func:`~sklearn.metrics.make_scorer` or
        :func:`~skcl.scoring.make_tpr_at_fpr_scorer`). It receives no metadata.
    aggregate : str, default="mean"
        How the per-month scores become one number. From the current model:

        - ``"mean"``: mean over test months, the area under the per-month
          curve (with snapshots, this is the *average accuracy* of
          :func:`~skcl.scoring.average_accuracy`).
        - ``"min"``: the worst month.
        - ``"last"``: the newest test month.
        - ``"past"``: mean over test months before the newest one (how well
          the past is remembered).
        - ``"seen"``: mean over test months up to the estimator's last
          training month (``months_[-1]``).
        - ``"future"``: mean over test months after it (for
          :class:`~skcl.TemporalSplit`).

        From the per-month snapshots (needs ``keep_snapshots=True``):

        - ``"neg_forgetting"``: minus :func:`~skcl.scoring.forgetting`.
        - ``"bwt"``: :func:`~skcl.scoring.backward_transfer`.
        - ``"fwt"``: :func:`~skcl.scoring.forward_transfer`, against an
          untrained copy of the network (see ``random_state``).
        - ``"next_month"``: the deployed model's score,
          :func:`~skcl.scoring.next_month_score`: the model kept after each
          training month scored on the first test month after it (the month
          it would have served), averaged over those training months.
        - ``"neg_flip_rate"``: minus the mean
          :func:`~skcl.scoring.negative_flip_rate` of
          consecutive monthly models over all test rows (uses predictions,
          not ``metric``).

        Forgetting and flip rate are negated because scorers are
        greater-is-better, like scikit-learn's ``"neg_log_loss"``.
    random_state : int, RandomState instance or None, default=None
        Seeds the weights of the untrained network that ``aggregate="fwt"``
        uses as its baseline. Pass an int so every candidate of a search is
        compared with the same baseline. Unused by other aggregates.

    See Also
    --------
    skcl.scoring.per_month_scores : The per-month curve behind the aggregates.
    skcl.scoring.accuracy_matrix : The snapshot-by-month matrix behind
        forgetting and transfer.
    skcl.MonthlyKFold : A splitter whose test folds hold every month.

    Notes
    -----
    **Metadata routing.** The scorer requests ``months`` by default, as
    :class:`~skcl.ContinualClassifier` does for ``fit``: with
    ``sklearn.set_config(enable_metadata_routing=True)``, ``GridSearchCV.fit(X,
    y, months=months)`` hands each fold's scorer exactly ``months[test]``.
    ``set_score_request(months=False)`` (or an alias string) changes that.
    With routing off, scikit-learn passes no metadata to scorers: the scorer
    then sees ``months=None``, scores the whole test set as one month (the
    plain ``metric``, for ``"mean"``, ``"min"`` and ``"last"``), warns, and
    raises for aggregates that need months.

    **Undefined months** (e.g. ``roc_auc`` on a month with one class) are
    left out of the aggregate, with an
    :class:`~sklearn.exceptions.UndefinedMetricWarning` naming them; see the
    module documentation.

    **Cost.** The month aggregates call the estimator once per test month.
    The snapshot aggregates evaluate one model per training month on every
    test month, and the estimator keeps one CPU copy of its parameters per
    month (``keep_snapshots=True``): about ``n_months * n_parameters * 4``
    bytes for float32 weights, inside every fitted estimator of a search.

    Examples
    --------
    >>> from skcl import ContinualClassifier, ForgettingScorer
    >>> from skcl.datasets import make_drifting_stream
    >>> X, y, months = make_drifting_stream(n_months=3, n_samples_per_month=100,
    ...                                     random_state=0)
    >>> clf = ContinualClassifier(max_epochs=2, random_state=0).fit(X, y, months=months)
    >>> worst = ForgettingScorer(aggregate="min")
    >>> mean = ForgettingScorer(aggregate="mean")
    >>> bool(worst(clf, X, y, months=months) <= mean(clf, X, y, months=months))
    True
    """

    _parameter_constraints = {
        "metric": [str, callable],
        "aggregate": [StrOptions(set(_MONTH_AGGREGATES + _SNAPSHOT_AGGREGATES))],
        "random_state": ["random_state"],
    }

    def __init__(self, metric="accuracy", aggregate="mean", *, random_state=None):
        self.metric = metric
        self.aggregate = aggregate
        self.random_state = random_state

    def __call__(self, estimator, X, y, months=None):
        """Score ``estimator`` on ``X, y`` month by month and aggregate.

        Parameters
        ----------
        estimator : estimator object
            A fitted estimator, or a :class:`~sklearn.pipeline.Pipeline`
            ending in one. ``"seen"``/``"future"`` need its ``months_``; the
            snapshot aggregates need ``keep_snapshots=True``.
        X : array-like of shape (n_samples, n_features)
            Test features.
        y : array-like of shape (n_samples,)
            Test labels.
        months : array-like of shape (n_samples,), default=None
            Month of each test row. ``None`` scores all rows as one month.

        Returns
        -------
        score : float
            The aggregate; greater is better.
        """
        self._validate()
        y = np.asarray(y)
        if self.aggregate == "neg_flip_rate":
            if months is not None:
                check_months(months, len(y), what="y")
            return -_mean_flip_rate(estimator, X, y)
        if months is None:
            if not sklearn.get_config()["enable_metadata_routing"]:
                warnings.warn(
                    f"{self!r} got no months, so it scores the test set as a single "
                    "month. With metadata routing off, scikit-learn passes no metadata "
                    "to scorers: call sklearn.set_config(enable_metadata_routing=True) "
                    "so GridSearchCV/cross_validate pass each fold's months",
                    UserWarning,
                    stacklevel=2,
                )
            if self.aggregate not in ("mean", "min", "last"):
                raise ValueError(
                    f"aggregate={self.aggregate!r} needs the month of each test row, "
                    "got months=None; pass months=... (with metadata routing on, "
                    "GridSearchCV passes them when its fit gets months=...)"
                )
            return float(get_metric_scorer(self.metric, estimator)(estimator, X, y))

        months, labels = check_months(months, len(y), what="y")
        scorer = get_metric_scorer(self.metric, estimator)
        _check_positive_label(scorer, self.metric, estimator, y)
        if self.aggregate in _SNAPSHOT_AGGREGATES:
            return self._score_matrix(scorer, estimator, X, y, months, labels)

        scores = _month_scores(scorer, estimator, X, y, months, labels)
        defined = ~np.isnan(scores)
        labels, scores = labels[defined], scores[defined]
        if not len(scores):
            raise ValueError(
                f"metric {self.metric!r} is undefined on every test month; "
                "use a metric defined on single-class months (e.g. 'accuracy') or "
                "test on months holding every class"
            )
        if self.aggregate == "mean":
            return float(scores.mean())
        if self.aggregate == "min":
            return float(scores.min())
        if self.aggregate == "last":
            return float(scores[-1])
        if self.aggregate == "past":
            if len(scores) < 2:
                raise ValueError(
                    "aggregate='past' needs at least two test months with a defined "
                    f"score, got {as_list(labels)!r}; test on more months"
                )
            return float(scores[:-1].mean())
        last_trained = _last_trained_month(estimator, self.aggregate)
        try:
            later = _after(labels, last_trained)
        except TypeError as exc:
            raise ValueError(
                f"test months {as_list(labels)!r} cannot be compared with the last "
                f"training month {last_trained!r} ({exc}); use one label type"
            ) from exc
        chosen = later if self.aggregate == "future" else ~later
        if not chosen.any():
            side = "after" if self.aggregate == "future" else "up to"
            raise ValueError(
                f"aggregate={self.aggregate!r} found no test month {side} the last "
                f"training month {last_trained!r} among {as_list(labels)!r}; "
                "use a splitter such as TemporalSplit whose test set holds them"
            )
        return float(scores[chosen].mean())

    def set_score_request(self, *, months=UNCHANGED):
        """Set whether ``months`` is requested when the scorer is called.

        Only available with ``sklearn.set_config(enable_metadata_routing=True)``.
        The default request is ``months=True``.

        Parameters
        ----------
        months : bool, None or str, default=sklearn.utils.metadata_routing.UNCHANGED
            ``True``: requested; ``False``: not requested; ``None``: error if
            passed; a string: the name under which the caller passes it.

        Returns
        -------
        self : ForgettingScorer
        """
        if not sklearn.get_config()["enable_metadata_routing"]:
            raise RuntimeError(
                "This method is only available when metadata routing is enabled. You "
                "can enable it using sklearn.set_config(enable_metadata_routing=True)."
            )
        request = self.get_metadata_routing()
        if months is not UNCHANGED:
            request.score.add_request(param="months", alias=months)
        self._metadata_request = request
        return self

    def get_metadata_routing(self):
        """Return the scorer's metadata request (``months`` on ``score``).

        Returns
        -------
        request : sklearn.utils.metadata_routing.MetadataRequest
        """
        request = getattr(self, "_metadata_request", None)
        if request is None:
            request = MetadataRequest(owner=self)
            request.score.add_request(param="months", alias=True)
        return request

    def _validate(self):
        if self.aggregate in ("forgetting", "flip_rate", "negative_flip_rate"):
            raise InvalidParameterError(
                f"aggregate={self.aggregate!r} would make a scorer that prefers more "
                "forgetting; scorers are greater-is-better, so use "
                f"aggregate='neg_{self.aggregate.removeprefix('negative_')}' (or "
                "skcl.scoring.forgetting / negative_flip_rate for the raw value)"
            )
        check_parameter_constraints(self)

    def _score_matrix(self, scorer, estimator, X, y, months, month_order):
        caller = f"aggregate={self.aggregate!r}"
        trained = np.asarray(_check_snapshots(estimator, caller).months_)
        matrix, labels = _accuracy_matrix(scorer, estimator, X, y, months, caller)
        if self.aggregate == "next_month":
            # the matrix's columns are sorted; "next" is in stream order (an
            # ordered Categorical's category order), as the months were trained
            position = {label: i for i, label in enumerate(as_list(labels))}
            in_stream = [position[label] for label in as_list(month_order)]
            return _next_month_from(matrix[:, in_stream], trained, month_order, caller)
        missing = np.setdiff1d(trained, labels)
        if len(missing):
            raise ValueError(
                f"{caller} compares each training month with its own test rows, but "
                f"the test set has no rows of months {as_list(missing)!r}; use a "
                "splitter whose test folds hold every month (MonthlyKFold)"
            )
        square = matrix[:, np.searchsorted(labels, trained)]
        if self.aggregate == "neg_forgetting":
            return -forgetting(square)
        if self.aggregate == "bwt":
            return backward_transfer(square)
        baseline = _month_scores(scorer, _untrained_model(estimator, self.random_state),
                                 X, y, months, trained)
        return forward_transfer(square, baseline)


def per_month_scores(estimator, X, y, months, *, metric="accuracy"):
    """Return the metric on each month of the test data.

    Parameters
    ----------
    estimator : estimator object
        A fitted estimator (or pipeline).
    X : array-like of shape (n_samples, n_features)
        Test features.
    y : array-like of shape (n_samples,)
        Test labels.
    months : array-like of shape (n_samples,)
        Month of each test row.
    metric : str or callable, default="accuracy"
        A scikit-learn scorer name or scorer callable, as in
        :class:`ForgettingScorer`.

    Returns
    -------
    scores : dict
        ``{month: score}`` in sorted month order; NaN where the metric is
        undefined (with an :class:`~sklearn.exceptions.UndefinedMetricWarning`).
        A plain dict keeps pandas optional: ``pandas.Series(scores)`` makes it
        a table.

    See Also
    --------
    ForgettingScorer : Aggregates these scores into one number.
    accuracy_matrix : The same for every per-month snapshot.

    Examples
    --------
    >>> import numpy as np
    >>> from sklearn.dummy import DummyClassifier
    >>> from skcl.scoring import per_month_scores
    >>> X = np.zeros((6, 1)); y = np.array([0, 0, 1, 0, 1, 1])
    >>> months = np.array([1, 1, 2, 2, 3, 3])
    >>> clf = DummyClassifier(strategy="constant", constant=0).fit(X, y)
    >>> per_month_scores(clf, X, y, months)
    {1: 1.0, 2: 0.5, 3: 0.0}
    """
    y = np.asarray(y)
    months, labels = check_months(months, len(y), what="y")
    scorer = get_metric_scorer(metric, estimator)
    scores = _month_scores(scorer, estimator, X, y, months, labels)
    return dict(zip(as_list(labels), scores.tolist()))


def accuracy_matrix(estimator, X, y, months, *, metric="accuracy"):
    """Score the model kept after every training month on every test month.

    Parameters
    ----------
    estimator : ContinualClassifier or Pipeline ending in one
        Fitted with ``keep_snapshots=True``.
    X : array-like of shape (n_samples, n_features)
        Test features.
    y : array-like of shape (n_samples,)
        Test labels.
    months : array-like of shape (n_samples,)
        Month of each test row.
    metric : str or callable, default="accuracy"
        A scikit-learn scorer name or scorer callable.

    Returns
    -------
    R : ndarray of shape (n_training_months, n_test_months)
        ``R[i, j]`` is the metric on test month ``j`` of the model kept after
        training month ``i``. Rows follow ``estimator.months_`` (training
        order), columns ``numpy.unique(months)``; NaN where undefined.

    See Also
    --------
    average_accuracy, forgetting, backward_transfer, forward_transfer :
        Summaries of ``R``, once its columns are the training months.

    Notes
    -----
    The snapshots cost one CPU copy of the parameters per training month;
    evaluating them costs ``n_training_months * n_test_months`` metric calls.

    Examples
    --------
    >>> from skcl import ContinualClassifier
    >>> from skcl.datasets import make_drifting_stream
    >>> from skcl.scoring import accuracy_matrix
    >>> X, y, months = make_drifting_stream(n_months=3, n_samples_per_month=100,
    ...                                     random_state=0)
    >>> clf = ContinualClassifier(max_epochs=1, keep_snapshots=True, random_state=0)
    >>> accuracy_matrix(clf.fit(X, y, months=months), X, y, months).shape
    (3, 3)
    """
    y = np.asarray(y)
    months, _ = check_months(months, len(y), what="y")
    scorer = get_metric_scorer(metric, estimator)
    matrix, _ = _accuracy_matrix(scorer, estimator, X, y, months, "accuracy_matrix")
    return matrix


def average_accuracy(R):
    """Mean of the last row of an accuracy matrix: the final model on every month.

    ``ACC = mean_j R[T, j]`` (Lopez-Paz & Ranzato, 2017), with ``T`` the last
    training month.

    Parameters
    ----------
    R : array-like of shape (n_training_months, n_test_months)
        Accuracy matrix, as returned by :func:`accuracy_matrix`.

    Returns
    -------
    average_accuracy : float
        The mean of ``R[-1, j]`` over the test months ``j`` whose column holds
        no NaN; greater is better.

    See Also
    --------
    forgetting : Drop from each month's best score to its final score.
    backward_transfer : Change of each month's score since it was learned.
    forward_transfer : Score on each month before training on it, against a
        baseline.

    Notes
    -----
    Test months whose column holds a NaN (undefined metric) are left out.

    Examples
    --------
    >>> from skcl.scoring import average_accuracy
    >>> average_accuracy([[0.9, 0.5], [0.7, 0.8]])
    0.75
    """
    R = _check_matrix(R, "average_accuracy", square=False)
    columns = _defined_columns(R, range(R.shape[1]), "average_accuracy")
    return float(R[-1, columns].mean())


def next_month_score(R):
    """Mean score of each month's model on the month after it: the deployed model's score.

    ``NEXT = mean_{t < T} R[t, t + 1]``: the model trained up to month ``t``
    is the one a detection team ships and runs during month ``t + 1``, so its
    score on month ``t + 1``'s held-out rows is what the team lives by. It
    rewards adapting to the newest months, where :func:`average_accuracy`
    rewards remembering every month: judge a strategy on both.

    Parameters
    ----------
    R : array-like of shape (n_months, n_months)
        Square accuracy matrix, training months by test months in the same
        order, as :func:`accuracy_matrix` returns for a test set holding
        every training month.

    Returns
    -------
    next_month_score : float
        The mean of ``R[t, t + 1]`` over ``t = 0 .. T - 1`` where it is
        defined (not NaN); greater is better.

    See Also
    --------
    average_accuracy : The final model on every month.
    forward_transfer : Score on each month before training on it, against a
        baseline.
    ForgettingScorer : ``aggregate="next_month"`` computes it from a model
        kept with ``keep_snapshots=True``.

    Examples
    --------
    >>> from skcl.scoring import next_month_score
    >>> next_month_score([[0.9, 0.5, 0.5],
    ...                   [0.8, 0.9, 0.75],
    ...                   [0.7, 0.8, 0.9]])
    0.625
    """
    R = _check_matrix(R, "next_month_score", square=True)
    months = np.arange(R.shape[0])
    return _next_month_from(R, months, months, "next_month_score")


def _next_month_from(R, trained, labels, caller):
    """Mean of ``R[i, j(i)]``, ``j(i)`` the first test month after training month ``i``."""
    try:
        # the first test month after each training month, in stream order
        # (an ordered Categorical's category order, not its labels' own sort)
        following = [int(np.argmax(after)) if after.any() else len(labels)
                     for after in (_after(labels, month) for month in as_list(trained))]
    except TypeError as exc:
        raise ValueError(
            f"{caller}: test months {as_list(labels)!r} cannot be compared with the "
            f"training months {as_list(trained)!r} ({exc}); use one label type"
        ) from exc
    scores = [R[i, j] for i, j in enumerate(following) if j < R.shape[1]]
    scores = [score for score in scores if not np.isnan(score)]
    if not scores:
        raise ValueError(
            f"{caller} scores each month's model on the month after it, but no test "
            f"month {as_list(labels)!r} follows a training month {as_list(trained)!r} "
            "with a defined score; test on at least two consecutive months "
            "(MonthlyKFold's test folds hold every month)"
        )
    return float(np.mean(scores))


def forgetting(R):
    """Average forgetting (Chaudhry et al., 2018) of a square accuracy matrix.

    For each month ``j`` before the last one ``T``, the drop from the best
    score month ``j`` ever had before the final model to its final score:
    ``F = mean_{j<T} (max_{i<T} R[i, j] - R[T, j])``. Positive means
    forgotten; lower is better.

    Parameters
    ----------
    R : array-like of shape (n_months, n_months)
        Accuracy matrix whose rows and columns are the same months, in
        training order (row ``i``: after training month ``i``; column ``j``:
        tested on month ``j``); at least 2 months.

    Returns
    -------
    forgetting : float
        ``F``: the mean drop over the months before the last one whose
        column holds no NaN; lower is better.

    See Also
    --------
    backward_transfer : The signed change against the just-trained score.

    Notes
    -----
    Test months whose column holds a NaN are left out. Chaudhry, Dokania,
    Ajanthan & Torr, "Riemannian Walk for Incremental Learning", ECCV 2018.

    Examples
    --------
    >>> from skcl.scoring import forgetting
    >>> R = [[0.9, 0.2, 0.1],
    ...      [0.7, 0.8, 0.3],
    ...      [0.6, 0.9, 0.9]]
    >>> round(forgetting(R), 6)  # month 0: 0.9 - 0.6; month 1: 0.8 - 0.9
    0.1
    """
    R = _check_matrix(R, "forgetting", square=True)
    last = R.shape[0] - 1
    columns = _defined_columns(R, range(last), "forgetting")
    drops = R[:last, columns].max(axis=0) - R[last, columns]
    return float(drops.mean())


def backward_transfer(R):
    """Backward transfer (Lopez-Paz & Ranzato, 2017) of a square accuracy matrix.

    ``BWT = mean_{j<T} (R[T, j] - R[j, j])``: how training on later months
    changed the score of each earlier month, measured from just after that
    month was learned. Negative means forgetting; greater is better.

    Parameters
    ----------
    R : array-like of shape (n_months, n_months)
        Square accuracy matrix, rows and columns in training order; at least
        2 months.

    Returns
    -------
    backward_transfer : float
        ``BWT``: the mean change over the months before the last one whose
        column holds no NaN; negative means forgetting.

    See Also
    --------
    forgetting : The drop from each month's best score instead.
    forward_transfer : The score of each month before it is trained on.

    Notes
    -----
    Test months whose column holds a NaN are left out. Lopez-Paz & Ranzato,
    "Gradient Episodic Memory for Continual Learning", NeurIPS 2017.

    Examples
    --------
    >>> from skcl.scoring import backward_transfer
    >>> R = [[0.9, 0.2, 0.1],
    ...      [0.7, 0.8, 0.3],
    ...      [0.6, 0.9, 0.9]]
    >>> round(backward_transfer(R), 6)  # ((0.6 - 0.9) + (0.9 - 0.8)) / 2
    -0.1
    """
    R = _check_matrix(R, "backward_transfer", square=True)
    last = R.shape[0] - 1
    columns = _defined_columns(R, range(last), "backward_transfer")
    return float((R[last, columns] - R[columns, columns]).mean())


def forward_transfer(R, baseline):
    """Forward transfer (Lopez-Paz & Ranzato, 2017) of a square accuracy matrix.

    ``FWT = mean_{j>1} (R[j-1, j] - b[j])``: how much the model trained up to
    the month before ``j`` already knows about month ``j``, compared with a
    model that learned nothing. Greater is better.

    Parameters
    ----------
    R : array-like of shape (n_months, n_months)
        Square accuracy matrix, rows and columns in training order; at least
        2 months.
    baseline : array-like of shape (n_months,)
        ``b[j]``, the metric of an untrained model on month ``j``.
        :class:`ForgettingScorer` (``aggregate="fwt"``) uses the estimator's
        own network, freshly initialized (seeded by its ``random_state``).

    Returns
    -------
    forward_transfer : float
        ``FWT``: the mean gain over the baseline on the months after the
        first one whose column and baseline hold no NaN; greater is better.

    See Also
    --------
    backward_transfer : The change of each month's score after it is trained on.

    Notes
    -----
    Months whose column of ``R`` or whose baseline is NaN are left out.

    Examples
    --------
    >>> from skcl.scoring import forward_transfer
    >>> R = [[0.9, 0.2, 0.1],
    ...      [0.7, 0.8, 0.3],
    ...      [0.6, 0.9, 0.9]]
    >>> round(forward_transfer(R, [0.5, 0.5, 0.5]), 6)  # ((0.2-0.5) + (0.3-0.5)) / 2
    -0.25
    """
    R = _check_matrix(R, "forward_transfer", square=True)
    baseline = np.asarray(baseline, dtype=float)
    if baseline.shape != (R.shape[0],):
        raise ValueError(
            f"baseline has shape {baseline.shape}, but R has {R.shape[0]} months; pass "
            "one baseline score per month"
        )
    with_baseline = np.vstack([R, baseline])
    columns = _defined_columns(with_baseline, range(1, R.shape[0]), "forward_transfer")
    return float((R[columns - 1, columns] - baseline[columns]).mean())


def negative_flip_rate(y_true, y_pred_before, y_pred_after):
    """Share of samples an update breaks: right before it, wrong after it.

    ``NFR = mean(y_pred_before == y_true and y_pred_after != y_true)``; lower
    is better. Between two consecutive monthly models, it is the share of
    decisions a user sees regress when the model is updated.

    Parameters
    ----------
    y_true : array-like of shape (n_samples,)
        True labels.
    y_pred_before : array-like of shape (n_samples,)
        Predictions of the earlier model.
    y_pred_after : array-like of shape (n_samples,)
        Predictions of the updated model.

    Returns
    -------
    negative_flip_rate : float
        Fraction of the samples, in [0, 1], that the earlier model predicted
        right and the updated model predicts wrong.

    See Also
    --------
    ForgettingScorer : ``aggregate="neg_flip_rate"`` averages it over updates.

    Examples
    --------
    >>> from skcl.scoring import negative_flip_rate
    >>> negative_flip_rate([0, 1, 1, 0], [0, 1, 0, 1], [1, 1, 1, 1])
    0.25
    """
    y_true, before, after = (np.asarray(a) for a in (y_true, y_pred_before, y_pred_after))
    if not y_true.shape == before.shape == after.shape or y_true.ndim != 1:
        raise ValueError(
            f"y_true, y_pred_before and y_pred_after have shapes {y_true.shape}, "
            f"{before.shape} and {after.shape}; pass three 1-d arrays of one length"
        )
    return float(np.mean((before == y_true) & (after != y_true)))


# ----------------------------------------------------------------------
# helpers
# ----------------------------------------------------------------------
def _check_positive_label(scorer, metric, estimator, y):
    """Refuse a binary metric whose ``pos_label`` is not a class.

    Months with one class score NaN when the metric fails on them, so a
    missing ``pos_label`` would otherwise pass for an undefined metric.
    """
    pos_label = scorer_positive_label(scorer)
    classes = getattr(_final_step(estimator), "classes_", None)
    classes = np.unique(y) if classes is None else np.asarray(classes)
    if pos_label is None or len(classes) != 2 or pos_label in classes.tolist():
        return
    raise ValueError(
        f"metric {metric!r} scores the positive class pos_label={pos_label!r}, which "
        f"is not one of the classes {classes.tolist()!r}; pass a scorer naming it, "
        f"e.g. ForgettingScorer(make_scorer(f1_score, pos_label={classes.tolist()[1]!r}))"
    )


def _score_one(scorer, estimator, X, y):
    """The metric on one month, NaN where it is undefined (see module docs)."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            score = float(scorer(estimator, X, y))
        except ValueError:
            if np.unique(y).size > 1:
                raise
            score = np.nan
    if not np.isnan(score):
        # warnings of a defined score are the caller's business: pass them on
        for w in caught:
            warnings.warn_explicit(w.message, w.category, w.filename, w.lineno)
    return score


def _after(labels, month):
    """Which ``labels`` (in stream order) come after ``month``.

    By position when ``month`` is one of them (the stream order, which for an
    ordered Categorical is its category order, not the labels' own ``>``),
    else by comparison.
    """
    position = [i for i, label in enumerate(as_list(labels)) if label == month]
    if position:
        return np.arange(len(labels)) > position[0]
    return np.asarray(labels > month, dtype=bool)


def _month_scores(scorer, estimator, X, y, months, labels, warn=True):
    scores = np.array([
        _score_one(scorer, estimator, _safe_indexing(X, np.flatnonzero(months == m)),
                   y[months == m])
        for m in labels
    ])
    if warn:
        _warn_undefined(labels, np.isnan(scores))
    return scores


def _warn_undefined(labels, undefined):
    if undefined.any():
        warnings.warn(
            f"the metric is undefined on months {as_list(labels[undefined])!r} "
            "(NaN, or a single class where it needs two); they are left out of "
            "the aggregates",
            UndefinedMetricWarning,
            stacklevel=3,
        )


def _final_step(estimator):
    return estimator.steps[-1][1] if isinstance(estimator, Pipeline) else estimator


def _with_final_step(estimator, model):
    """``estimator`` with its final step replaced by ``model`` (shallow copy)."""
    if not isinstance(estimator, Pipeline):
        return model
    pipeline = copy.copy(estimator)
    pipeline.steps = [*estimator.steps[:-1], (estimator.steps[-1][0], model)]
    return pipeline


def _has_snapshots(estimator):
    final = _final_step(estimator)
    return bool(getattr(final, "keep_snapshots", False) and getattr(final, "snapshots_", None))


def _check_snapshots(estimator, caller):
    if not _has_snapshots(estimator):
        raise ValueError(
            f"{caller} needs the weights kept after every training month, but "
            f"{type(_final_step(estimator)).__name__} has no snapshots_; fit a "
            "ContinualClassifier with keep_snapshots=True (memory: one copy of the "
            "parameters per month)"
        )
    return _final_step(estimator)


def _snapshot_models(estimator, caller):
    """Yield the estimator with the weights of each month in turn.

    One copy of the estimator is made, and each snapshot is loaded into it in
    place: use each yielded model before advancing.
    """
    final = _check_snapshots(estimator, caller)
    model = final.get_snapshot_estimator(0)
    wrapped = _with_final_step(estimator, model)
    for index, state in enumerate(final.snapshots_):
        current = model.module_.state_dict()
        if any(current[key].shape != value.shape for key, value in state.items()):
            # classes were added that month (new_classes="grow"): a copy with its head
            model = final.get_snapshot_estimator(index)
            wrapped = _with_final_step(estimator, model)
        model.module_.load_state_dict(state)
        yield wrapped


def _accuracy_matrix(scorer, estimator, X, y, months, caller):
    months, labels = check_months(months, len(months), what="y")
    matrix = np.vstack([
        _month_scores(scorer, model, X, y, months, labels, warn=False)
        for model in _snapshot_models(estimator, caller)
    ])
    _warn_undefined(labels, np.isnan(matrix).any(axis=0))
    return matrix, labels


def _mean_flip_rate(estimator, X, y):
    predictions = [model.predict(X) for model in
                   _snapshot_models(estimator, "aggregate='neg_flip_rate'")]
    if len(predictions) < 2:
        raise ValueError(
            "aggregate='neg_flip_rate' compares consecutive monthly models, but the "
            "estimator was trained on a single month; train on two or more"
        )
    return float(np.mean([negative_flip_rate(y, before, after)
                          for before, after in zip(predictions[:-1], predictions[1:])]))


def _untrained_model(estimator, random_state):
    """The estimator's network with fresh weights: the forward-transfer baseline."""
    final = _check_snapshots(estimator, "aggregate='fwt'")
    model = final.get_snapshot_estimator(0)
    with seeded_global_torch(seed_from(random_state)):
        model.initialize_module()
    model.module_.to(model.device)
    return _with_final_step(estimator, model)


def _last_trained_month(estimator, aggregate):
    trained = getattr(_final_step(estimator), "months_", None)
    if not trained:
        raise ValueError(
            f"aggregate={aggregate!r} compares test months with the estimator's last "
            f"training month, but {type(_final_step(estimator)).__name__} has no "
            "months_; use a fitted ContinualClassifier"
        )
    return as_list(np.asarray(trained[-1:]))[0]


def _check_matrix(R, caller, square):
    R = np.asarray(R, dtype=float)
    if R.ndim != 2 or R.shape[0] < (2 if square else 1) or (
            square and R.shape[0] != R.shape[1]):
        expected = "a square matrix of at least 2 months" if square else "a 2-d matrix"
        raise ValueError(
            f"{caller} needs {expected}, got shape {R.shape}; "
            + ("select the columns of the training months, in training order"
               if square else "pass the output of accuracy_matrix")
        )
    return R


def _defined_columns(R, candidates, caller):
    candidates = np.asarray(list(candidates), dtype=int)
    columns = candidates[~np.isnan(R[:, candidates]).any(axis=0)]
    if not len(columns):
        raise ValueError(
            f"{caller}: every month it averages over has an undefined (NaN) score; "
            "use a metric defined on these months (e.g. 'accuracy')"
        )
    return columns


# ----------------------------------------------------------------------
# Detection at a fixed false-positive rate
# ----------------------------------------------------------------------
_TPR_AT_FPR = re.compile(r"^tpr_at_fpr(?:=(?P<max_fpr>[^@]+))?(?:@(?P<pos_label>.+))?$")


def tpr_at_fpr(y_true, y_score, *, max_fpr=0.01, pos_label=None, sample_weight=None):
    """True-positive rate at a false-positive rate of at most ``max_fpr``.

    The share of positives (e.g. malicious files) detected by the strictest
    threshold that flags at most ``max_fpr`` of the negatives: the largest
    ``tpr`` on the ROC curve (:func:`sklearn.metrics.roc_curve`, every
    threshold kept) among the points with ``fpr <= max_fpr``, without
    interpolation. A detection team runs at a fixed false-alarm budget (1%,
    0.1%); this is the rate of detection it gets there.

    Parameters
    ----------
    y_true : array-like of shape (n_samples,)
        True labels; exactly two classes.
    y_score : array-like of shape (n_samples,)
        Scores, higher meaning more likely ``pos_label`` (the probability of
        the positive class, or a decision function).
    max_fpr : float, default=0.01
        The false-positive budget, in (0, 1].
    pos_label : int, str or None, default=None
        The positive class (which label is malicious). ``None`` is the greater
        of the two labels, the class whose probability ``predict_proba``
        gives in its second column (as ``roc_auc`` scores it).
    sample_weight : array-like of shape (n_samples,), default=None
        Sample weights.

    Returns
    -------
    tpr : float
        The true-positive rate at that threshold, in [0, 1].

    Raises
    ------
    ValueError
        If ``y_true`` does not hold exactly two classes, ``pos_label`` is not
        one of them, or ``max_fpr`` is outside (0, 1].

    See Also
    --------
    make_tpr_at_fpr_scorer : The scorer for ``GridSearchCV``, ``evaluate_stream``
        and :class:`~skcl.ForgettingScorer`.

    Examples
    --------
    >>> from skcl.scoring import tpr_at_fpr
    >>> y = ["benign"] * 4 + ["malicious"] * 4
    >>> score = [0.1, 0.2, 0.3, 0.9, 0.4, 0.8, 0.95, 0.99]
    >>> tpr_at_fpr(y, score, max_fpr=0.25, pos_label="malicious")  # 1 of 4 negatives
    1.0
    >>> tpr_at_fpr(y, score, max_fpr=0.0, pos_label="malicious")
    Traceback (most recent call last):
    ...
    ValueError: max_fpr=0.0 must be in (0, 1]; e.g. 0.01 for a 1% false-positive budget
    >>> tpr_at_fpr(y, score, max_fpr=0.2, pos_label="malicious")  # no false positive
    0.5
    """
    if (isinstance(max_fpr, bool) or not isinstance(max_fpr, Real)
            or not 0 < max_fpr <= 1):
        raise ValueError(
            f"max_fpr={max_fpr!r} must be in (0, 1]; e.g. 0.01 for a 1% false-positive "
            "budget")
    y_true = np.asarray(y_true)
    classes = np.unique(y_true)
    if len(classes) != 2:
        raise ValueError(
            f"tpr_at_fpr needs both classes in y_true, got {as_list(classes)!r}; score "
            "it on rows holding positives and negatives")
    if pos_label is None:
        pos_label = classes[-1]
    elif pos_label not in classes.tolist():
        raise ValueError(
            f"pos_label={pos_label!r} is not one of the classes {as_list(classes)!r}; "
            "pass the label of the positive (e.g. malicious) class")
    fpr, tpr, _ = roc_curve(y_true, y_score, pos_label=pos_label,
                            sample_weight=sample_weight, drop_intermediate=False)
    return float(tpr[fpr <= max_fpr].max())


def make_tpr_at_fpr_scorer(max_fpr=0.01, *, pos_label=None):
    """Return a scorer of :func:`tpr_at_fpr` on ``predict_proba`` (or ``decision_function``).

    Parameters
    ----------
    max_fpr : float, default=0.01
        The false-positive budget, in (0, 1].
    pos_label : int, str or None, default=None
        The positive class; its probability column is scored. ``None`` is
        the greater label (``classes_[1]``).

    Returns
    -------
    scorer : callable
        ``scorer(estimator, X, y) -> float``, greater is better, for
        ``GridSearchCV(scoring=...)``, :func:`~skcl.evaluate_stream`'s
        ``metric`` and :class:`~skcl.ForgettingScorer`'s ``metric``.

    Examples
    --------
    >>> import numpy as np
    >>> from sklearn.linear_model import LogisticRegression
    >>> from skcl.scoring import make_tpr_at_fpr_scorer
    >>> X = np.arange(8.0).reshape(-1, 1)
    >>> y = np.array(["benign"] * 4 + ["malicious"] * 4)
    >>> scorer = make_tpr_at_fpr_scorer(0.01, pos_label="malicious")
    >>> scorer(LogisticRegression().fit(X, y), X, y)
    1.0
    """
    tpr_at_fpr([0, 1], [0.0, 1.0], max_fpr=max_fpr)  # checks max_fpr now
    kwargs = {"max_fpr": max_fpr}
    if pos_label is not None:
        kwargs["pos_label"] = pos_label
    return make_scorer(tpr_at_fpr, response_method=("predict_proba", "decision_function"),
                       **kwargs)


def get_metric_scorer(metric, estimator=None):
    """Return the scorer a metric name or callable stands for.

    scikit-learn's scorer names, plus ``"tpr_at_fpr"`` (:func:`tpr_at_fpr` at a
    1% budget, positive class ``classes_[1]``) and its forms
    ``"tpr_at_fpr=0.001"`` (another budget) and ``"tpr_at_fpr=0.001@malicious"``
    (and a positive label; read as JSON when it is a number, ``@1``, else
    as text). These names work wherever skcl takes a metric:
    :class:`~skcl.ForgettingScorer`, :func:`~skcl.evaluate_stream`,
    :func:`per_month_scores` and ``skcl-benchmark --metric``.

    Parameters
    ----------
    metric : str or callable
        A metric name, or a scorer callable (returned as it is).
    estimator : estimator or None, default=None
        Passed to :func:`sklearn.metrics.check_scoring` for names it knows.

    Returns
    -------
    scorer : callable
        ``scorer(estimator, X, y) -> float``.

    Examples
    --------
    >>> import numpy as np
    >>> from sklearn.linear_model import LogisticRegression
    >>> from skcl.scoring import get_metric_scorer
    >>> X = np.arange(8.0).reshape(-1, 1)
    >>> y = np.array(["benign"] * 4 + ["malicious"] * 4)
    >>> scorer = get_metric_scorer("tpr_at_fpr=0.001@malicious")
    >>> scorer(LogisticRegression().fit(X, y), X, y)
    1.0
    """
    if isinstance(metric, str):
        match = _TPR_AT_FPR.match(metric)
        if match is not None:
            max_fpr = match["max_fpr"]
            try:
                max_fpr = 0.01 if max_fpr is None else float(max_fpr)
            except ValueError:
                raise ValueError(
                    f"metric={metric!r}: {max_fpr!r} is not a number; write e.g. "
                    "'tpr_at_fpr=0.001' or 'tpr_at_fpr=0.001@malicious'") from None
            pos_label = match["pos_label"]
            if pos_label is not None:
                try:
                    parsed = json.loads(pos_label)
                except ValueError:
                    parsed = pos_label
                pos_label = parsed if isinstance(parsed, int | str) else pos_label
            return make_tpr_at_fpr_scorer(max_fpr, pos_label=pos_label)
        if estimator is None:
            return get_scorer(metric)
    if estimator is None:
        return metric
    return check_scoring(estimator, scoring=metric)
