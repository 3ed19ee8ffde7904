"""Settings changed between months: carried from a parameter object into its fitted copy."""

__all__ = ["carry_over_params"]


def carry_over_params(fitted, wanted):
    """Set on ``fitted`` the parameters of ``wanted`` that differ from its own.

    ``wanted`` is the user's parameter object, ``fitted`` the copy that holds
    the state (``regularizer_``, a buffer's memory). Only changed values are
    set, so a setter with side effects (a lower ``capacity`` subsamples the
    stored rows) runs only when asked; ``random_state`` is read once, when the
    copy is made, and is not carried over.

    Parameters
    ----------
    fitted : estimator
        The fitted copy, changed in place.
    wanted : estimator
        The object of the same class whose parameters are the current ones.
    """
    current = fitted.get_params(deep=False)
    changed = {key: value for key, value in wanted.get_params(deep=False).items()
               if key != "random_state" and not _same_value(current.get(key), value)}
    if changed:
        fitted.set_params(**changed)


def _same_value(a, b):
    """Whether two parameter values are the same (identity, or equal scalars)."""
    if a is b:
        return True
    try:
        return type(a) is type(b) and bool(a == b)
    except (TypeError, ValueError):  # arrays and other non-scalar comparisons
        return False
