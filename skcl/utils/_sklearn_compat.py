"""Every private scikit-learn import skcl relies on, in one place.

An upgrade of scikit-learn that moves one of these names is then a one-file fix.
"""

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
