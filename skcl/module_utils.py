"""Helpers for code that works on a torch module: its trainable parameters, eval mode.

Every continual-learning strategy needs the same few things from the network
it protects: which weights to look at, and a way to run it for an estimate
without dropout or batch-norm updates and without leaving it in the wrong
mode. :mod:`skcl.regularizers` re-exports these helpers with
:func:`skcl.fisher.per_sample_loss`, so a custom strategy imports them from one
place.
"""

from contextlib import contextmanager

__all__ = ["evaluation_mode", "trainable_parameters"]


def trainable_parameters(module):
    """Return the module's parameters that require a gradient, by name.

    Shared parameters (tied weights) appear once, under their first name, as
    in ``module.named_parameters()``; frozen ones (``requires_grad=False``) are
    left out. The order is ``named_parameters()``'s, so it is the same for
    every module built from the same code.

    Parameters
    ----------
    module : torch.nn.Module
        The network.

    Returns
    -------
    parameters : dict of str to torch.nn.Parameter
        Name (as in ``module.named_parameters()``) to parameter, in order.

    Examples
    --------
    >>> from torch import nn
    >>> from skcl.module_utils import trainable_parameters
    >>> module = nn.Sequential(nn.Linear(3, 2), nn.Linear(2, 1))
    >>> module[0].weight.requires_grad_(False)
    Parameter containing:...
    >>> list(trainable_parameters(module))
    ['0.bias', '1.weight', '1.bias']
    """
    return {name: p for name, p in module.named_parameters() if p.requires_grad}


@contextmanager
def evaluation_mode(module):
    """Context manager: ``module.eval()`` inside, each submodule's own mode restored after.

    ``module.train()`` after an estimate would switch on submodules that were
    deliberately kept in evaluation mode (a frozen, pretrained batch-norm
    layer); this restores every submodule's ``training`` flag as it was, also
    when the body raises. Gradients are not switched on or off.

    Parameters
    ----------
    module : torch.nn.Module
        The network.

    Returns
    -------
    context : contextlib.AbstractContextManager
        Yields ``module``, in evaluation mode.

    Examples
    --------
    >>> from torch import nn
    >>> from skcl.module_utils import evaluation_mode
    >>> module = nn.Sequential(nn.Linear(3, 2), nn.Dropout(0.5))
    >>> module[1].eval()  # kept in evaluation mode on purpose
    Dropout(p=0.5, inplace=False)
    >>> with evaluation_mode(module):
    ...     module.training, module[1].training
    (False, False)
    >>> module.training, module[1].training
    (True, False)
    """
    modes = [(submodule, submodule.training) for submodule in module.modules()]
    module.eval()
    try:
        yield module
    finally:
        for submodule, training in modes:
            submodule.training = training
