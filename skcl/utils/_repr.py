"""scikit-learn's repr for estimators whose defaults live in more than one ``__init__``."""

import inspect

__all__ = ["changed_params_repr"]


def changed_params_repr(estimator, defaults_from=()):
    """``Name(param=value, ...)`` with the parameters changed from their defaults.

    As scikit-learn prints an estimator (``print_changed_only``): sorted by
    name, nested estimators by their own repr (``regularizer=EWC(lam=10)``).
    Defaults are read from ``type(estimator).__init__`` and from the
    ``defaults_from`` callables, for parameters passed on through ``**kwargs``
    (skorch's ``warm_start``, ``compile``, ...), which scikit-learn's repr
    would list as changed.
    """
    defaults = {}
    for init in (*defaults_from, type(estimator).__init__):
        for name, parameter in inspect.signature(init).parameters.items():
            if parameter.default is not inspect.Parameter.empty:
                defaults[name] = parameter.default
    changed = [(name, value) for name, value in sorted(estimator.get_params(deep=False).items())
               if name not in defaults or not _same_default(value, defaults[name])]
    return f"{type(estimator).__name__}({', '.join(f'{k}={v!r}' for k, v in changed)})"


def _same_default(value, default):
    if value is default:
        return True
    return type(value) is type(default) and repr(value) == repr(default)
