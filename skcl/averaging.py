"""MonthlyAveragingClassifier: one fresh model per month, predictions averaged."""

from numbers import Real

import numpy as np
from sklearn.base import BaseEstimator, ClassifierMixin, clone
from sklearn.utils.multiclass import check_classification_targets
from sklearn.utils.validation import check_is_fitted

from ._sparse import check_sparse_structure
from .classifier import ContinualClassifier
from .utils._fitted import reset_fitted_attributes
from .utils._labels import check_month_classes, encode_labels
from .utils._months import check_month_label, stream_months
from .utils._predict import ArgmaxPredictMixin
from .utils._rollback import atomic, save_shallow_state
from .utils._seeding import draw_seed, make_rng
from .utils._sklearn_compat import (
    HasMethods,
    Interval,
    StrOptions,
    check_parameter_constraints,
    validate_data,
)

__all__ = ["MonthlyAveragingClassifier"]


class MonthlyAveragingClassifier(ArgmaxPredictMixin, ClassifierMixin, BaseEstimator):
    """Model averaging: a fresh model per month, their probabilities averaged.

    The model-averaging baseline of continual learning. Each ``partial_fit``
    trains a new, freshly initialized clone of ``estimator`` on that month
    only; prediction averages the probabilities of every monthly model, with
    equal weights or weights decaying with a model's age. Nothing is
    fine-tuned and no past data is kept, but memory and prediction time grow
    with the number of months (one model each). Read more in the
    :ref:`User Guide <model_averaging>`.

    Parameters
    ----------
    estimator : classifier or None, default=None
        Template of the monthly models; needs ``fit`` and ``predict_proba``.
        ``None`` uses ``ContinualClassifier()``. Each month's clone is fitted
        with ``fit(X_month, y_month_encoded)``, on labels encoded as indices
        into ``classes_``; when the clone has a ``random_state`` parameter left
        to ``None``, it is seeded from ``rng_``.
    weights : {"uniform", "recency"}, default="uniform"
        ``"uniform"``: the plain mean of the monthly models. ``"recency"``: the
        model trained ``k`` months before the newest weighs ``decay ** k``
        (weights normalized to sum to one), so recent months dominate.
    decay : float in (0, 1], default=0.5
        Per-month weight decay under ``weights="recency"`` (``1`` is uniform).
        Ignored under ``"uniform"``.
    new_classes : {"error", "grow"}, default="error"
        What a month with labels outside ``classes_`` does: ``"error"``
        refuses it, ``"grow"`` appends them to ``classes_`` in order of
        arrival. Each monthly model knows the classes of its own month; the
        average aligns their columns on ``classes_`` (a model gives the
        classes it never saw zero probability), so ``predict_proba`` always
        has one column per class of ``classes_`` and rows summing to one.
    random_state : int, RandomState instance or None, default=None
        Seeds the monthly clones (see ``estimator``), so that an int makes a
        run reproducible.

    Attributes
    ----------
    classes_ : ndarray of shape (n_classes,)
        Class labels, fixed at the first month (sorted); with
        ``new_classes="grow"``, later labels are appended in order of arrival.
    n_features_in_ : int
        Number of features, fixed at the first month.
    feature_names_in_ : ndarray of str
        Column names, when the first month was a DataFrame with string columns.
    estimators_ : list of estimators
        The monthly models, oldest first. Their own ``classes_`` are encoded
        labels (indices into ``classes_``).
    estimator_months_ : list
        Month label of each model in ``estimators_``.
    rng_ : numpy.random.Generator
        Source of the monthly seeds.

    See Also
    --------
    skcl.ContinualClassifier : One model fine-tuned month after month.
    skcl.RehearsalBuffer : Replay of past data, the data-level strategy.

    Examples
    --------
    >>> from skcl import ContinualClassifier, MonthlyAveragingClassifier
    >>> from skcl.datasets import make_drifting_stream
    >>> X, y, months = make_drifting_stream(n_months=3, n_samples_per_month=100,
    ...                                     random_state=0)
    >>> clf = MonthlyAveragingClassifier(ContinualClassifier(max_epochs=2),
    ...                                  weights="recency", random_state=0)
    >>> clf = clf.fit(X, y, months=months)
    >>> len(clf.estimators_)
    3
    >>> clf.predict_proba(X[:2]).shape
    (2, 2)
    """

    # ``months`` is what GridSearchCV must slice per fold: request it by default.
    __metadata_request__fit = {"months": True}

    _parameter_constraints = {
        "estimator": [HasMethods(["fit", "predict_proba"]), None],
        "weights": [StrOptions({"uniform", "recency"})],
        "decay": [Interval(Real, 0, 1, closed="right")],
        "new_classes": [StrOptions({"error", "grow"})],
        "random_state": ["random_state"],
    }

    def __init__(self, estimator=None, *, weights="uniform", decay=0.5, new_classes="error",
                 random_state=None):
        self.estimator = estimator
        self.weights = weights
        self.decay = decay
        self.new_classes = new_classes
        self.random_state = random_state

    @atomic
    def partial_fit(self, X, y, classes=None, month=None):
        """Train a fresh model on one month and add it to the average.

        Atomic: if it raises, the estimator is unchanged.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
            The month's features.
        y : array-like of shape (n_samples,)
            The month's labels; at least two classes (each month's model is
            trained from scratch).
        classes : array-like of shape (n_classes,), default=None
            Every label of the stream. Needed on the first call unless that
            month holds every label; must match ``classes_`` after.
        month : hashable, default=None
            The month's label, recorded in ``estimator_months_``. ``None`` uses the
            number of months seen so far.

        Returns
        -------
        self : MonthlyAveragingClassifier
            Fitted estimator, with the month's model appended to ``estimators_``.
        """
        check_parameter_constraints(self)
        month = check_month_label(month)
        check_sparse_structure(X)
        X, y = validate_data(self, X, y, reset="classes_" not in self.__dict__,
                             accept_sparse="csr")
        self._fit_month(X, y, classes, month)
        return self

    def _save_state(self):
        # Fitted lists are replaced, never modified in place: a shallow record
        # suffices, plus a copy of the generator that each month advances.
        return save_shallow_state(self, copied=("rng_",))

    @atomic
    def fit(self, X, y, months=None):
        """Reset, then train one model per month, in sorted month order.

        Equivalent to a fresh estimator's ``partial_fit`` on each distinct
        month in stream order, with ``classes`` set to every label in ``y``.
        Atomic: if it raises, the estimator is unchanged.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
            Features of the whole stream.
        y : array-like of shape (n_samples,)
            Labels of the whole stream.
        months : array-like of shape (n_samples,), default=None
            Month label of each row (any sortable labels). ``None`` treats
            everything as one month, so one model.

        Returns
        -------
        self : MonthlyAveragingClassifier
            Fitted estimator, with one model per month in ``estimators_``.
        """
        check_parameter_constraints(self)
        reset_fitted_attributes(self)
        check_sparse_structure(X)
        X, y = validate_data(self, X, y, reset=True, accept_sparse="csr")
        check_classification_targets(y)
        classes = np.unique(y) if self.new_classes == "error" else None
        for month, rows in stream_months(months, len(y)):
            self._fit_month(X[rows], y[rows], classes, month)
        return self

    def predict_proba(self, X):
        """Return the weighted mean of the monthly models' probabilities.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
            The rows to predict, with the features seen at the first month.

        Returns
        -------
        proba : ndarray of shape (n_samples, n_classes)
            Columns ordered as ``classes_``. A monthly model that never saw a
            class gives it zero probability.
        """
        check_is_fitted(self)
        check_sparse_structure(X)
        X = validate_data(self, X, reset=False, accept_sparse="csr")
        proba = np.zeros((X.shape[0], len(self.classes_)))
        for weight, model in zip(self._model_weights(), self.estimators_):
            columns = np.asarray(model.classes_, dtype=np.intp)
            proba[:, columns] += weight * model.predict_proba(X)
        return proba

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.non_deterministic = self.random_state is None
        tags.input_tags.allow_nan = False
        tags.input_tags.sparse = True
        return tags

    def _model_weights(self):
        n_models = len(self.estimators_)
        if self.weights == "uniform":
            return np.full(n_models, 1 / n_models)
        weights = float(self.decay) ** np.arange(n_models - 1, -1, -1)
        return weights / weights.sum()

    def _fit_month(self, X, y, classes, month):
        check_classification_targets(y)
        if "classes_" not in self.__dict__:
            self.rng_ = make_rng(self.random_state)
            self.estimators_, self.estimator_months_ = [], []
        self.classes_ = check_month_classes(y, classes, self.__dict__.get("classes_"),
                                            new_classes=self.new_classes)
        if month is None:
            month = len(self.estimator_months_)
        present = np.unique(y)
        if len(present) < 2:
            raise ValueError(
                f"month {month!r} has only one class ({present.tolist()[0]!r}); each "
                "month's model is trained from scratch and needs two classes: merge "
                "the month with a neighbour or leave it out"
            )

        if self.estimator is None:
            model = ContinualClassifier()
        else:
            model = clone(self.estimator)
        seed = draw_seed(self.rng_)
        params = model.get_params(deep=False)
        if "random_state" in params and params["random_state"] is None:
            model.set_params(random_state=seed)
        model.fit(X, encode_labels(self.classes_, y))
        self.estimators_ = [*self.estimators_, model]
        self.estimator_months_ = [*self.estimator_months_, month]
