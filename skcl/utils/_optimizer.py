"""Changing the optimizer class of a trained network between months.

skorch's ``set_params(optimizer=OtherClass)`` on an initialized net sets the
parameter and then raises ("please open an issue"), leaving ``optimizer`` set
while training goes on with the old optimizer. Here the change is carried over:
the new optimizer is built at once over the current weights (its state, e.g.
Adam's moments, starts afresh: another class cannot use it), or, if it cannot
be built, nothing changes and the error says why.
"""

__all__ = ["replace_optimizer"]


def replace_optimizer(net, optimizer, params):
    """Set ``optimizer`` (a class) and its ``optimizer__*`` ``params``; rebuild ``optimizer_``.

    Atomic: if the optimizer cannot be built with these settings, the
    parameters and the live optimizer are left as they were.

    Parameters
    ----------
    net : skorch.NeuralNet
        An initialized net.
    optimizer : callable
        The new optimizer class (or factory).
    params : dict
        ``optimizer__<name>`` settings given in the same ``set_params`` call.
    """
    names = ["optimizer", *params]
    missing = object()
    previous = {name: net.__dict__.get(name, missing) for name in names}
    live = net.optimizer_
    try:
        net.optimizer = optimizer
        for name, value in params.items():
            setattr(net, name, value)
        net._initialize_optimizer()
    except Exception as exc:
        for name, value in previous.items():
            if value is missing:
                net.__dict__.pop(name, None)
            else:
                setattr(net, name, value)
        net.optimizer_ = live
        raise ValueError(
            f"set_params(optimizer={optimizer!r}) could not build the optimizer over "
            f"the trained module ({type(exc).__name__}: {exc}); the estimator keeps "
            f"optimizer={previous['optimizer']!r}. Pass an optimizer class and "
            "optimizer__* settings it accepts"
        ) from exc
