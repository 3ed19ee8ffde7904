"""Fitted attributes: what a fresh ``fit`` forgets."""

__all__ = ["is_fitted", "reset_fitted_attributes"]


def is_fitted(estimator):
    """scikit-learn's test: ``__sklearn_is_fitted__``, else any ``name_`` attribute."""
    if hasattr(estimator, "__sklearn_is_fitted__"):
        return estimator.__sklearn_is_fitted__()
    return any(k.endswith("_") and not k.startswith("__") for k in vars(estimator))


def reset_fitted_attributes(estimator, keep=()):
    """Remove every public fitted attribute (a name ending in ``_``) of ``estimator``.

    Attributes are popped from ``__dict__`` directly: skorch's ``__delattr__``
    would also unregister component names it needs to initialize again.

    Parameters
    ----------
    estimator : object
        The estimator a ``fit`` starts over.
    keep : collection of str, default=()
        Fitted names to keep (skorch's bookkeeping).
    """
    for name in [k for k in estimator.__dict__ if k.endswith("_") and not k.startswith("_")]:
        if name not in keep:
            estimator.__dict__.pop(name)
