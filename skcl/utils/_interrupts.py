"""Telling a callback's early stop from Ctrl-C, from the bytecode (no source files).

skorch's convention, kept by its own ``partial_fit``: a callback stops training
by raising ``KeyboardInterrupt`` in ``on_epoch_end`` (``EarlyStopping``). A real
Ctrl-C also arrives as ``KeyboardInterrupt``, raised by the interpreter at
whatever instruction it is running when it checks for signals (a call, a jump
back), never at a ``raise`` statement. So the instruction the exception left
from tells them apart: it is read from the code object, which exists whether or
not the source files are installed (zipped or byte-compiled-only deployments).
"""

import dis
import functools

__all__ = ["stopped_by_callback"]


def stopped_by_callback(exc, callbacks):
    """Whether ``exc`` was raised by a ``raise`` statement in a callback's ``on_epoch_end``.

    Parameters
    ----------
    exc : KeyboardInterrupt
        The exception caught around skorch's fit loop.
    callbacks : list of (str, Callback)
        The net's initialized callbacks (``callbacks_``).
    """
    tb = exc.__traceback__
    if tb is None:
        return False
    while tb.tb_next is not None:
        tb = tb.tb_next
    frame = tb.tb_frame
    if frame.f_code.co_name != "on_epoch_end":
        return False
    owner = frame.f_locals.get("self")
    if not any(owner is callback for _, callback in callbacks):
        return False
    instruction = _instructions(frame.f_code).get(tb.tb_lasti)
    # RAISE_VARARGS with an operand is ``raise X`` / ``raise X from Y``; a bare
    # ``raise`` (operand 0) re-raises what was caught, possibly a Ctrl-C
    return (instruction is not None and instruction.opname == "RAISE_VARARGS"
            and bool(instruction.arg))


@functools.lru_cache(maxsize=64)
def _instructions(code):
    return {instruction.offset: instruction for instruction in dis.get_instructions(code)}
