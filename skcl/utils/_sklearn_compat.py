"""Every private scikit-learn import skcl relies on, in one place.

An upgrade of scikit-learn that moves one of these names is then a one-file fix.
"""

import inspect

from sklearn.utils._param_validation import (  # noqa: F401
    HasMethods,
    Hidden,
    Interval,
    InvalidParameterError,
    Options,
    StrOptions,
    validate_parameter_constraints,
)
from sklearn.utils.validation import validate_data  # noqa: F401


def check_parameter_constraints(estimator):
    """Validate ``estimator``'s parameters against its ``_parameter_constraints``.

    scikit-learn's own ``BaseEstimator._validate_params`` is shadowed by skorch's
    method of the same name (which checks ``module__*``-style keys), so skcl calls
    the underlying function directly.
    """
    validate_parameter_constraints(
        estimator._parameter_constraints,
        estimator.get_params(deep=False),
        caller_name=type(estimator).__name__,
    )


def scorer_positive_label(scorer):
    """The ``pos_label`` a binary scorer scores, or ``None`` if it has none.

    Reads the private ``_score_func`` / ``_kwargs`` of scikit-learn's scorer
    objects (``make_scorer``, the named scorers); any other callable gives ``None``.
    """
    func = getattr(scorer, "_score_func", None)
    kwargs = getattr(scorer, "_kwargs", None)
    if func is None or kwargs is None:
        return None
    try:
        parameters = inspect.signature(func).parameters
    except (TypeError, ValueError):
        return None
    if "pos_label" not in parameters:
        return None
    average = kwargs.get("average", getattr(parameters.get("average"), "default", "binary"))
    if average != "binary":
        return None
    return kwargs.get("pos_label", parameters["pos_label"].default)
