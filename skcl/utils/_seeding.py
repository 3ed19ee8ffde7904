"""Every random draw of skcl is seeded from an estimator's ``random_state``, here.

Each estimator turns its ``random_state`` into a numpy ``Generator`` (``rng_``) at
the start of a stream and draws one integer seed per month from it. Torch draws
(shuffling, weight initialization, dropout) are seeded from those integers.
"""

import contextlib
import threading

import numpy as np
import torch
from sklearn.utils import check_random_state

__all__ = ["SEED_HIGH", "draw_seed", "make_rng", "seed_from", "seeded_global_torch",
           "torch_generator"]

SEED_HIGH = np.iinfo(np.int32).max

# torch's global generator is process-wide: two threads seeding it at once would
# each draw the other's numbers. Every skcl section that must use it (module
# construction, training with dropout) holds this lock.
_GLOBAL_TORCH_RNG_LOCK = threading.RLock()


def seed_from(random_state):
    """Return one integer seed drawn from a scikit-learn ``random_state``."""
    return int(check_random_state(random_state).randint(SEED_HIGH))


def make_rng(random_state):
    """Return a numpy ``Generator`` seeded by a scikit-learn ``random_state``.

    Parameters
    ----------
    random_state : int, RandomState instance or None
        As in scikit-learn; a ``RandomState`` is advanced by one draw.

    Returns
    -------
    rng : numpy.random.Generator
        The estimator's own source of seeds.
    """
    return np.random.default_rng(seed_from(random_state))


def draw_seed(rng):
    """Return the next integer seed of ``rng`` (a numpy ``Generator``)."""
    return int(rng.integers(SEED_HIGH))


def torch_generator(seed):
    """Return a CPU ``torch.Generator`` seeded with ``seed``.

    CPU generators serve every device: a permutation drawn on the CPU and moved
    to the GPU gives the same rows on both, so a CUDA run shuffles like a CPU one.
    """
    return torch.Generator().manual_seed(int(seed))


@contextlib.contextmanager
def seeded_global_torch(seed, device=None):
    """Run a block with torch's global generator seeded by ``seed``, then restore it.

    For draws that cannot take a ``torch.Generator`` (a module's default weight
    initialization, dropout). The block holds a process-wide lock, so threads that
    enter it run one after another and each sees its own seed; the caller's global
    sequence is restored on exit.

    Parameters
    ----------
    seed : int
        The seed.
    device : str, torch.device or None, default=None
        With a CUDA device, its generator is forked and seeded too.
    """
    device = torch.device("cpu") if device is None else torch.device(device)
    devices = []
    if device.type == "cuda":
        devices = [torch.cuda.current_device() if device.index is None else device.index]
    with _GLOBAL_TORCH_RNG_LOCK, torch.random.fork_rng(devices=devices):
        torch.manual_seed(int(seed))
        yield
