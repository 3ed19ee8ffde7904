"""scikit-learn's repr for an estimator whose defaults live in more than one ``__init__``."""

import inspect

__all__ = ["signature_with_passed_on_defaults"]


def signature_with_passed_on_defaults(init, passed_to):
    """``init``'s signature, with the keyword parameters its ``**kwargs`` pass on.

    skcl's classifier takes skorch's less common parameters (``warm_start``,
    ``compile``, ...) through ``**kwargs``; scikit-learn reads defaults from
    the ``__init__`` signature, so without them its repr of an estimator
    nested in a ``Pipeline`` or ``GridSearchCV`` lists them all as changed.
    """
    signature = inspect.signature(init)
    own = list(signature.parameters.values())
    names = {parameter.name for parameter in own}
    variadic = [p for p in own if p.kind is inspect.Parameter.VAR_KEYWORD]
    extra = [parameter.replace(kind=inspect.Parameter.KEYWORD_ONLY)
             for name, parameter in inspect.signature(passed_to).parameters.items()
             if name not in names and parameter.default is not inspect.Parameter.empty
             and parameter.kind is not inspect.Parameter.VAR_KEYWORD]
    fixed = [p for p in own if p.kind is not inspect.Parameter.VAR_KEYWORD]
    return signature.replace(parameters=[*fixed, *extra, *variadic])
