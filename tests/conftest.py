"""Shared fixtures: a small drifting stream and a tiny, fast classifier."""

import pytest
import torch

from skcl import ContinualClassifier
from skcl.datasets import make_drifting_stream

# The test models are tiny: one intra-op thread is faster than two fighting
# over a 2-core CI machine, and timing-independent.
torch.set_num_threads(1)


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
