"""The memory page (docs/user_guide/memory.rst) counted: each strategy's weight-sized tensors.

Every tensor a fitted strategy holds (in its attributes, their dicts, lists and
sub-objects, a teacher module's parameters included) is counted once per
storage, in units of one float32 copy of the penalized weights (P values, 4P
bytes; a float64 copy counts 2). The page's table of these counts is read and
compared, so the page cannot drift from the code.
"""

import re
from pathlib import Path

import pytest
import torch

from skcl import EWC, L2, MAS, SI, LwF, OnlineEWC

MEMORY_PAGE = Path(__file__).parents[1] / "docs" / "user_guide" / "memory.rst"
STRATEGIES = {"L2": L2, "EWC": EWC, "OnlineEWC": OnlineEWC, "SI": SI, "MAS": MAS, "LwF": LwF}


def weight_copies(obj, module):
    """Copies of ``module``'s weights held by ``obj``: its distinct storages' bytes / 4P.

    The live module's own parameters (which a cache may list) are not copies.
    """
    live = {p.untyped_storage().data_ptr() for p in module.parameters()}
    n_weights = sum(p.numel() for p in module.parameters())
    storages, seen = {}, set()

    def walk(value):
        if id(value) in seen:
            return
        seen.add(id(value))
        if isinstance(value, torch.Tensor):
            storage = value.untyped_storage()
            storages[storage.data_ptr()] = storage.nbytes()
        elif isinstance(value, torch.nn.Module):
            for tensor in value.state_dict(keep_vars=True).values():
                walk(tensor)
        elif isinstance(value, dict):
            for item in value.values():
                walk(item)
        elif isinstance(value, (list, tuple)):
            for item in value:
                walk(item)
        elif hasattr(value, "__dict__") and not isinstance(value, type):
            walk(vars(value))

    walk(vars(obj))
    copies = sum(nbytes for ptr, nbytes in storages.items() if ptr not in live)
    # scalars (an offset, a step count) are a few bytes: round them away
    return round(copies / (4 * n_weights), 1)


def documented_counts():
    """The page's table: ``strategy`` -> (between months, during a month)."""
    table = MEMORY_PAGE.read_text().split(".. _memory_counts:")[1]
    rows = re.findall(r"\* - ``(\w+)``\n\s+- (\d+)\n\s+- (\d+)", table)
    return {name: (int(rest), int(training)) for name, rest, training in rows}


@pytest.mark.parametrize("name", sorted(STRATEGIES))
def test_the_memory_page_states_what_each_strategy_keeps(stream, make_clf, name):
    X, y, months = stream
    clf = make_clf(regularizer=STRATEGIES[name](), max_epochs=1)
    for month in range(2):
        clf.partial_fit(X[months == month], y[months == month], classes=[0, 1])
    between_months = weight_copies(clf.regularizer_, clf.module_)
    # one more step of training: what the strategy holds during a month
    batch = (torch.as_tensor(X[:64]), torch.as_tensor(y[:64]))
    clf.train_step(batch)
    during = weight_copies(clf.regularizer_, clf.module_)
    assert documented_counts()[name] == (between_months, during)


def test_no_stale_centre_survives_a_consolidation(stream, make_clf):
    X, y, months = stream
    clf = make_clf(regularizer=EWC(), max_epochs=1)
    for month in range(3):
        clf.partial_fit(X[months == month], y[months == month], classes=[0, 1])
        cache = clf.regularizer_.__dict__.get("_grad_cache")
        assert cache is None  # rebuilt at the next month's first step, never stale
