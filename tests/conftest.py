"""Shared fixtures: a small drifting stream and a tiny, fast classifier."""

import numpy as np
import pytest

from skcl import ContinualClassifier
from skcl.datasets import make_drifting_stream


@pytest.fixture(scope="session")
def stream():
    """Six months of 200 rows, 20 features."""
    return make_drifting_stream(n_months=6, n_samples_per_month=200, random_state=0)


@pytest.fixture
def make_clf():
    """Factory of small, seeded classifiers; keyword arguments override defaults."""

    def factory(**params):
        defaults = dict(module__hidden_units=(16,), max_epochs=2, batch_size=64,
                        lr=1e-2, random_state=0)
        defaults.update(params)
        return ContinualClassifier(**defaults)

    return factory


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
