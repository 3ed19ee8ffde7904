"""Helpers for data-parallel training on ``torch.distributed``.

A script launched by ``torchrun`` or ``accelerate launch`` calls
:func:`init_distributed` once, passes the device it returns and
``distributed=True`` to :class:`~skcl.ContinualClassifier`, and writes
files from the main process only (:func:`is_main_process`). Read more in the
:ref:`User Guide <distributed>`.
"""

import datetime
import os

import torch

__all__ = ["init_distributed", "is_main_process"]

# what torchrun and accelerate launch set for every process
_LAUNCHER_VARIABLES = ("RANK", "WORLD_SIZE", "MASTER_ADDR", "MASTER_PORT")


def init_distributed(backend=None, *, timeout=None):
    """Join the process group of a ``torchrun`` / ``accelerate launch`` job.

    Reads the launcher's environment (``RANK``, ``WORLD_SIZE``,
    ``MASTER_ADDR``, ``MASTER_PORT``, ``LOCAL_RANK``), initializes the
    default ``torch.distributed`` process group unless it is initialized
    already, and with CUDA makes this process's GPU (``cuda:LOCAL_RANK``) the
    current device.

    Parameters
    ----------
    backend : {"nccl", "gloo"} or None, default=None
        The communication backend; ``None`` picks ``"nccl"`` when CUDA is
        available and ``"gloo"`` otherwise. Where a process group exists
        already (started by the launcher or the script), its own backend is
        used, and the device returned follows it.
    timeout : float or None, default=None
        Seconds a collective waits for the other ranks before it fails (and
        the call that waited rolls back); ``None`` keeps torch's default.

    Returns
    -------
    device : str
        The device this rank trains on: ``"cuda:<LOCAL_RANK>"`` with the
        nccl backend, else ``"cpu"``. Pass it as the classifier's ``device``.

    See Also
    --------
    is_main_process : Whether this process writes the files.
    skcl.ContinualClassifier : Its ``distributed=True`` trains on the group.

    Examples
    --------
    In a script started by ``torchrun --nproc-per-node=4 train.py``:

    >>> from skcl import ContinualClassifier
    >>> from skcl.distributed import init_distributed
    >>> device = init_distributed()                       # doctest: +SKIP
    >>> clf = ContinualClassifier(device=device, distributed=True)  # doctest: +SKIP
    """
    import torch.distributed as dist

    if not dist.is_available():
        raise RuntimeError(
            "this torch build has no torch.distributed; install a build with "
            "distributed support (the pip wheels have it) or train in one process"
        )
    if dist.is_initialized():
        # a group started by the launcher or the user: its backend decides the device
        backend = dist.get_backend()
    elif backend is None:
        backend = "nccl" if torch.cuda.is_available() else "gloo"
    if backend not in ("nccl", "gloo"):
        raise ValueError(f"backend={backend!r} is not supported; pass 'nccl' or 'gloo'")
    if backend == "nccl" and not torch.cuda.is_available():
        raise ValueError(
            "backend='nccl' needs CUDA, which is not available on this machine; "
            "pass backend='gloo' (or None)"
        )
    device = "cpu"
    if backend == "nccl":
        local_rank = int(os.environ.get("LOCAL_RANK", 0))
        torch.cuda.set_device(local_rank)
        device = f"cuda:{local_rank}"
    if dist.is_initialized():
        return device
    missing = [name for name in _LAUNCHER_VARIABLES if name not in os.environ]
    if missing:
        raise RuntimeError(
            f"the environment lacks {missing}, which torchrun and accelerate launch "
            "set for every process; start the script with `torchrun "
            "--nproc-per-node=N script.py` (or `accelerate launch`)"
        )
    kwargs = {}
    if timeout is not None:
        kwargs["timeout"] = datetime.timedelta(seconds=float(timeout))
    dist.init_process_group(backend=backend, **kwargs)
    return device


def is_main_process():
    """Whether this process is rank 0, or not part of a process group.

    Guard what one process should do for the whole job: ``joblib.dump`` of
    the estimator, logging, evaluation. (``save_weights`` of a
    ``distributed=True`` classifier writes from rank 0 by itself.)

    Returns
    -------
    main : bool
        ``True`` on rank 0 and in a process without an initialized group.

    See Also
    --------
    init_distributed : Join the group.

    Examples
    --------
    >>> from skcl.distributed import is_main_process
    >>> is_main_process()   # not launched by torchrun
    True
    """
    import torch.distributed as dist

    return not (dist.is_available() and dist.is_initialized()) or dist.get_rank() == 0
