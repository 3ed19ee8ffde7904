"""Helpers shared by the tests, imported as ``from _helpers import ...``.

Fixtures live in ``conftest.py``; plain functions live here, because pytest
loads ``conftest.py`` itself and importing from it as a module is unsupported
(it breaks under ``--import-mode=importlib`` and with two conftest files).
"""

import numpy as np


def month_slices(months):
    """Yield ``(month, row_mask)`` in sorted month order."""
    for month in np.unique(months):
        yield month, months == month


def state_equal(a, b):
    """True if two modules' state dicts are bit-identical."""
    sa, sb = a.state_dict(), b.state_dict()
    return sa.keys() == sb.keys() and all(
        (sa[k].cpu() == sb[k].cpu()).all().item() for k in sa
    )


def fingerprint(obj, _seen=None):
    """A hashable, content-only summary of ``obj``'s state, for exact comparison.

    Tensors and arrays by their bytes, modules and optimizers by their state
    dicts, other objects by their attributes. Object identity is ignored, so an
    estimator restored from a deep copy has the same fingerprint.
    """
    import torch

    _seen = set() if _seen is None else _seen
    if isinstance(obj, torch.Tensor):
        return ("tensor", str(obj.dtype), tuple(obj.shape), obj.detach().cpu().numpy().tobytes())
    if isinstance(obj, np.ndarray):
        if obj.dtype == object:
            return ("array", tuple(fingerprint(v, _seen) for v in obj.ravel()))
        return ("array", str(obj.dtype), obj.shape, obj.tobytes())
    if isinstance(obj, np.random.Generator):
        return ("rng", repr(obj.bit_generator.state))
    if isinstance(obj, np.random.RandomState):
        return ("rng", repr(obj.get_state(legacy=False)))
    if isinstance(obj, (str, bytes, int, float, bool, type(None), np.generic)):
        return obj
    if isinstance(obj, type) or callable(obj) and not hasattr(obj, "__dict__"):
        return ("callable", getattr(obj, "__qualname__", repr(obj)))
    if isinstance(obj, torch.nn.Module):
        return ("module", fingerprint(dict(obj.state_dict()), _seen))
    if isinstance(obj, torch.optim.Optimizer):
        return ("optimizer", fingerprint(obj.state_dict(), _seen))
    if isinstance(obj, dict):
        return ("dict", tuple(sorted((repr(k), fingerprint(v, _seen)) for k, v in obj.items())))
    if isinstance(obj, (list, tuple)):
        return (type(obj).__name__, tuple(fingerprint(v, _seen) for v in obj))
    if id(obj) in _seen:
        return ("seen", type(obj).__qualname__)
    _seen.add(id(obj))
    if hasattr(obj, "__dict__"):
        return (type(obj).__qualname__, fingerprint(vars(obj), _seen))
    return ("opaque", type(obj).__qualname__)
