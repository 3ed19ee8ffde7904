"""All-or-nothing public calls: one decorator for every estimator of skcl.

A state-changing call (``fit``, ``partial_fit``, ``load_weights``) either
completes or leaves the estimator exactly as it was, whatever it raises
(``KeyboardInterrupt`` and CUDA out-of-memory included). Each estimator says what
a call can change through ``save_state()`` (or a private ``_save_state()``),
which returns a function that puts the state back; the default,
:func:`save_shallow_state`, suits estimators whose fitted attributes are
replaced and never modified in place.
"""

import copy
import functools

__all__ = ["atomic", "save_shallow_state", "saved_state"]


def save_shallow_state(estimator, copied=()):
    """Record ``estimator.__dict__`` by reference; return the function restoring it.

    Costs one dict of references. Correct when every fitted attribute a call
    changes is replaced (``self.items_ = [*self.items_, item]``), never modified in
    place; the attributes named in ``copied`` (e.g. a random generator that the
    call advances in place) are deep-copied instead.

    Parameters
    ----------
    estimator : object
        The estimator about to be changed.
    copied : collection of str, default=()
        Attributes modified in place by the call, recorded as copies.

    Returns
    -------
    restore : callable
        Called without arguments, puts the recorded attributes back.
    """
    state = dict(estimator.__dict__)
    for name in copied:
        if name in state:
            state[name] = copy.deepcopy(state[name])

    def restore():
        estimator.__dict__.clear()
        estimator.__dict__.update(state)

    return restore


def saved_state(obj):
    """Record ``obj``'s state; return the function that puts it back.

    Through its ``save_state()`` (the strategies' public protocol) or private
    ``_save_state()`` (the estimators'), else :func:`save_shallow_state`.
    """
    save = getattr(obj, "save_state", None) or getattr(obj, "_save_state", None)
    return save() if save is not None else save_shallow_state(obj)


def atomic(method):
    """Decorate a method so that any exception leaves its object as before the call.

    The object's ``save_state()`` or ``_save_state()`` (default
    :func:`save_shallow_state`) runs before
    the call; if the call raises, the returned function restores the state, a
    note saying so is added to the exception, and it propagates.
    """

    @functools.wraps(method)
    def wrapper(self, *args, **kwargs):
        restore = saved_state(self)
        try:
            return method(self, *args, **kwargs)
        except BaseException as exc:
            restore()
            exc.add_note(
                f"{type(self).__name__}.{method.__name__} was rolled back: the "
                "estimator is exactly as it was before the call"
            )
            raise

    return wrapper
