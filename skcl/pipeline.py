"""ContinualPipeline: transformers and a continual classifier, trained month by month.

scikit-learn's :class:`~sklearn.pipeline.Pipeline` has no ``partial_fit``, so
a monthly job that hashes tokens or scales features had to transform every
month by hand. :class:`ContinualPipeline` is a ``Pipeline`` whose
``partial_fit`` trains one month: each transformer transforms the month
(stateless ones, such as ``FeatureHasher``, ``HashingVectorizer`` and
``FunctionTransformer``, always; learned ones are fitted on the first month
and then either stay frozen or follow the stream through their own
``partial_fit``), and the final step, a :class:`~skcl.ContinualClassifier`,
trains on the result.
"""

import copy

import numpy as np
import scipy.sparse as sp
from sklearn.pipeline import Pipeline
from sklearn.utils import get_tags

from .utils._arrays import sample_rows
from .utils._fitted import is_fitted
from .utils._months import check_month_label, stream_months
from .utils._sklearn_compat import StrOptions, validate_parameter_constraints

__all__ = ["ContinualPipeline", "make_continual_pipeline"]


class ContinualPipeline(Pipeline):
    """A pipeline trained one month at a time, ending in a continual classifier.

    ``partial_fit(X, y, month=...)`` passes the month through the
    transformers and trains the final step on it; ``fit(X, y, months=...)``
    trains on a whole stream, month by month, as successive ``partial_fit``
    calls on a fresh pipeline would. Prediction, scoring and ``set_params``
    (``step__param``, e.g. ``clf__regularizer__lam`` in ``GridSearchCV``) are
    scikit-learn's :class:`~sklearn.pipeline.Pipeline`'s.

    Each transformer, month by month:

    * **stateless** (scikit-learn's ``requires_fit`` tag is false:
      ``FeatureHasher``, ``HashingVectorizer``, ``FunctionTransformer``):
      transforms every month; nothing is learned;
    * **learned** (``StandardScaler``, ``IncrementalPCA``, ``OneHotEncoder``,
      ...): fitted on the first month (``fit_transform``); from the second
      month on it transforms with that state (``update_transformers=
      "first_month"``), or first updates it with its own ``partial_fit``
      (``"each_month"``; a transformer without ``partial_fit`` is then refused).

    Read more in the :ref:`User Guide <continual_pipeline>`.

    Parameters
    ----------
    steps : list of (str, estimator) tuples
        The transformers, then the final step: a :class:`~skcl.ContinualClassifier`
        (or any estimator with ``partial_fit(X, y, classes=..., month=...)``).
    update_transformers : {"first_month", "each_month"}, default="first_month"
        Whether learned transformers stay as fitted on the first month, or are
        updated with ``partial_fit`` on every later month before transforming
        it. Frozen is the default because everything the classifier keeps
        lives in the transformed space: its weights, a regularizer's anchors,
        the rows a rehearsal buffer replays; a transform that moves each month
        changes the meaning of all of them.
    memory : None
        Caching of fitted transformers (scikit-learn's); not supported, since a
        month's transformers depend on the months before it: must be ``None``.
    verbose : bool, default=False
        Passed to :class:`~sklearn.pipeline.Pipeline`.
    transform_input : None
        Must be ``None``: metadata is not transformed month by month.

    Attributes
    ----------
    named_steps : Bunch
        The steps by name, as in scikit-learn.
    classes_ : ndarray
        The final step's ``classes_``.
    months_ : list
        The final step's ``months_``: month labels trained on, in order.
    n_months_seen_ : int
        The final step's month count.
    n_samples_processed_ : int
        The final step's count of training rows processed.

    See Also
    --------
    make_continual_pipeline : Build one without naming the steps.
    skcl.ContinualClassifier : The final step.

    Examples
    --------
    >>> from sklearn.feature_extraction import FeatureHasher
    >>> from skcl import ContinualClassifier, ContinualPipeline
    >>> tokens = [["open", "read"], ["exec", "net"], ["open", "close"], ["net", "exec"]]
    >>> labels = ["benign", "malicious", "benign", "malicious"]
    >>> pipe = ContinualPipeline([
    ...     ("hash", FeatureHasher(n_features=64, input_type="string")),
    ...     ("clf", ContinualClassifier(max_epochs=2, random_state=0)),
    ... ])
    >>> pipe = pipe.partial_fit(tokens[:2], labels[:2], month="2024-01")
    >>> pipe = pipe.partial_fit(tokens[2:], labels[2:], month="2024-02")
    >>> pipe.months_
    ['2024-01', '2024-02']
    >>> pipe.predict([["exec", "net"]]).shape
    (1,)
    """

    _parameter_constraints = {
        "update_transformers": [StrOptions({"first_month", "each_month"})],
        "memory": [None],
        "transform_input": [None],
        "verbose": ["boolean"],
    }

    def __init__(self, steps, *, update_transformers="first_month", memory=None,
                 verbose=False, transform_input=None):
        super().__init__(steps, memory=memory, verbose=verbose,
                         transform_input=transform_input)
        self.update_transformers = update_transformers

    def fit(self, X, y, months=None, **fit_params):
        """Train on a stream one month at a time, from fresh transformers and model.

        Equivalent to ``partial_fit`` on each month in stream order on an
        unfitted pipeline (with ``classes`` set to every label in ``y``): the
        transformers are fitted on the first month and, with
        ``update_transformers="each_month"``, updated on each later month
        before it is transformed; the final step then ``fit``-s the
        transformed stream with ``months``. If anything raises, every step is
        left as it was.

        Parameters
        ----------
        X : array-like of shape (n_samples, ...)
            The stream's rows, as the first step takes them (a list of token
            lists for a ``FeatureHasher``, strings for a
            ``HashingVectorizer``, a numeric array, a DataFrame).
        y : array-like of shape (n_samples,)
            Labels.
        months : array-like of shape (n_samples,), default=None
            Month label of each row (see :ref:`month_labels`); ``None`` is a
            single month.
        **fit_params
            Passed to the final step's ``fit``.

        Returns
        -------
        self : ContinualPipeline
            The fitted pipeline.
        """
        self._check_params()
        y = np.asarray(y)
        n_samples = len(y)
        restore = self._save_transformers()
        try:
            parts, rows_of = [], []
            for index, (_, rows) in enumerate(stream_months(months, n_samples)):
                rows = np.flatnonzero(rows)
                parts.append(self._transform_month(sample_rows(X, rows), y[rows], first=index == 0))
                rows_of.append(rows)
            Xt = _in_row_order(parts, np.concatenate(rows_of))
            final = self._final_estimator
            if months is None:
                final.fit(Xt, y, **fit_params)
            else:
                final.fit(Xt, y, months=months, **fit_params)
        except BaseException:
            restore()
            raise
        return self

    def partial_fit(self, X, y, classes=None, month=None, **fit_params):
        """Train on one month: transform it through the steps, train the final step.

        The first call fits the transformers on the month; later calls
        transform it with them (after updating them with their
        ``partial_fit`` when ``update_transformers="each_month"``). If
        anything raises, every step is left as it was.

        Parameters
        ----------
        X : array-like of shape (n_samples, ...)
            The month's rows, as the first step takes them.
        y : array-like of shape (n_samples,)
            The month's labels.
        classes : array-like of shape (n_classes,), default=None
            Every label of the stream, for the final step's first call.
        month : hashable, default=None
            The month's label, recorded by the final step.
        **fit_params
            Passed to the final step's ``partial_fit``.

        Returns
        -------
        self : ContinualPipeline
            The pipeline, trained on one more month.
        """
        self._check_params()  # before anything reads the final step
        final = self._final_estimator
        first = not is_fitted(final)
        month = check_month_label(month)
        y = np.asarray(y)
        restore = self._save_transformers()
        try:
            Xt = self._transform_month(X, y, first=first)
            kwargs = {} if month is None else {"month": month}
            final.partial_fit(Xt, y, classes=classes, **kwargs, **fit_params)
        except BaseException:
            restore()
            raise
        return self

    # ------------------------------------------------------------------
    def _check_params(self):
        validate_parameter_constraints(self._parameter_constraints, {
            key: getattr(self, key) for key in self._parameter_constraints},
            caller_name=type(self).__name__)
        self._validate_steps()
        final = self._final_estimator
        if final == "passthrough" or not hasattr(final, "partial_fit"):
            raise TypeError(
                f"the last step of a ContinualPipeline must train month by month "
                f"(have partial_fit), got {final!r}; end it with a ContinualClassifier")
        if self.update_transformers == "each_month":
            frozen = [f"{name!r} ({type(step).__name__})"
                      for _, name, step in self._iter(with_final=False)
                      if not _stateless(step) and not hasattr(step, "partial_fit")]
            if frozen:
                raise ValueError(
                    f"update_transformers='each_month' updates each learned step with "
                    f"partial_fit, but step {', '.join(frozen)} has none; use an "
                    "incremental transformer (e.g. IncrementalPCA for PCA) or "
                    "update_transformers='first_month'")

    def _transform_month(self, X, y, first):
        Xt = X
        for _, _, step in self._iter(with_final=False):
            if first:
                Xt = step.fit_transform(Xt, y)
                continue
            if self.update_transformers == "each_month" and not _stateless(step):
                step.partial_fit(Xt, y)
            Xt = step.transform(Xt)
        return Xt

    def _save_transformers(self):
        """Copy the learned transformers' state; return the function restoring it."""
        saved = [(step, copy.deepcopy(step.__dict__))
                 for _, _, step in self._iter(with_final=False)]

        def restore():
            for step, state in saved:
                step.__dict__.clear()
                step.__dict__.update(state)

        return restore

    # the final step's fitted state, as Pipeline exposes classes_
    @property
    def months_(self):
        """The final step's ``months_``."""
        return self._final_estimator.months_

    @property
    def n_months_seen_(self):
        """The final step's ``n_months_seen_``."""
        return self._final_estimator.n_months_seen_

    @property
    def n_samples_processed_(self):
        """The final step's ``n_samples_processed_``."""
        return self._final_estimator.n_samples_processed_


def make_continual_pipeline(*steps, update_transformers="first_month"):
    """Build a :class:`ContinualPipeline`, naming the steps after their classes.

    As :func:`sklearn.pipeline.make_pipeline` does.

    Parameters
    ----------
    *steps : estimators
        The transformers, then a :class:`~skcl.ContinualClassifier`.
    update_transformers : {"first_month", "each_month"}, default="first_month"
        See :class:`ContinualPipeline`.

    Returns
    -------
    pipeline : ContinualPipeline
        The pipeline; a step's name is its class name in lower case.

    Examples
    --------
    >>> from sklearn.preprocessing import StandardScaler
    >>> from skcl import ContinualClassifier
    >>> from skcl.pipeline import make_continual_pipeline
    >>> pipe = make_continual_pipeline(StandardScaler(), ContinualClassifier())
    >>> list(pipe.named_steps)
    ['standardscaler', 'continualclassifier']
    """
    from sklearn.pipeline import make_pipeline

    named = make_pipeline(*steps).steps
    return ContinualPipeline(named, update_transformers=update_transformers)


def _stateless(step):
    return step == "passthrough" or not get_tags(step).requires_fit


def _in_row_order(parts, rows):
    """The months' transformed rows, stacked and put back in the stream's row order."""
    order = np.argsort(rows, kind="stable")
    if any(sp.issparse(part) for part in parts):
        return sp.vstack([sp.csr_matrix(part) for part in parts], format="csr")[order]
    if all(hasattr(part, "iloc") for part in parts):
        import pandas as pd

        return pd.concat(parts).iloc[order]
    return np.concatenate([np.asarray(part) for part in parts])[order]
