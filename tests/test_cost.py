"""The cost counters: rows through forward+backward, forward-only rows, seconds."""

import numpy as np
import pytest
import torch

from skcl import AGEM, EWC, MAS, ContinualClassifier, DERpp, LwF, RehearsalBuffer
from skcl.datasets import make_drifting_stream
from skcl.evaluation import evaluate_stream

# 3 months of 100 rows, 2 epochs of 2 batches of 50
N_MONTHS, N_ROWS, EPOCHS, BATCH = 3, 100, 2, 50


@pytest.fixture(scope="module")
def stream():
    return make_drifting_stream(n_months=N_MONTHS, n_samples_per_month=N_ROWS,
                                random_state=0)


def _fit(stream, **params):
    X, y, months = stream
    clf = ContinualClassifier(module__hidden_units=(4,), max_epochs=EPOCHS,
                              batch_size=BATCH, random_state=0, **params)
    return clf.fit(X, y, months=months)


OPTIMIZER_ROWS = N_MONTHS * EPOCHS * N_ROWS           # every month, every epoch
LATER_BATCHES = (N_MONTHS - 1) * EPOCHS * (N_ROWS // BATCH)


@pytest.mark.parametrize("name, params, extra_train, forward", [
    ("naive", {}, 0, 0),
    # LwF's teacher sees every training row of the later months, forward only
    ("lwf", {"regularizer": LwF()}, 0, (N_MONTHS - 1) * EPOCHS * N_ROWS),
    # DER++: two memory draws of a batch each per step (forward+backward), and
    # the logits of every month recorded at its end (forward only)
    ("derpp", {"regularizer": DERpp(memory=RehearsalBuffer(capacity=60))},
     LATER_BATCHES * 2 * BATCH, N_MONTHS * N_ROWS),
    # A-GEM: a reference gradient of sample_size memory rows per step
    ("agem", {"regularizer": AGEM(memory=RehearsalBuffer(capacity=60), sample_size=16)},
     LATER_BATCHES * 16, 0),
    # EWC and MAS: the importance estimate over each month (per-sample
    # gradients; MAS's through torch.func.vmap, counted by physical rows)
    ("ewc", {"regularizer": EWC()}, N_MONTHS * N_ROWS, 0),
    ("mas", {"regularizer": MAS()}, N_MONTHS * N_ROWS, 0),
])
def test_rows_are_counted_exactly(stream, name, params, extra_train, forward):
    clf = _fit(stream, **params)
    assert clf.n_samples_processed_ == OPTIMIZER_ROWS
    assert clf.n_train_rows_ == OPTIMIZER_ROWS + extra_train
    assert clf.n_forward_rows_ == forward
    assert clf.train_seconds_ > 0


def test_a_submodule_of_the_modules_own_class_is_not_counted_again(stream):
    # nn.Sequential inside nn.Sequential: the inner call runs on rows already counted
    X, y, months = stream
    nested = torch.nn.Sequential(torch.nn.Sequential(torch.nn.Linear(X.shape[1], 4),
                                                     torch.nn.ReLU()),
                                 torch.nn.Linear(4, 2))
    clf = ContinualClassifier(module=nested, max_epochs=EPOCHS, batch_size=BATCH,
                              regularizer=LwF(), random_state=0)
    clf.fit(X, y, months=months)
    assert clf.n_train_rows_ == OPTIMIZER_ROWS
    assert clf.n_forward_rows_ == (N_MONTHS - 1) * EPOCHS * N_ROWS


def test_retrain_counts_every_revisit_and_rollback_keeps_counters(stream):
    clf = _fit(stream, update="retrain")
    assert clf.n_train_rows_ == EPOCHS * N_ROWS * (1 + 2 + 3)
    X, y, months = stream
    before = (clf.n_train_rows_, clf.n_forward_rows_, clf.train_seconds_)
    with pytest.raises(ValueError):
        clf.partial_fit(X[:5], np.full(5, 7), month=9)  # an unknown label
    assert (clf.n_train_rows_, clf.n_forward_rows_, clf.train_seconds_) == before


def test_evaluate_stream_cost_is_train_rows(stream):
    X, y, months = stream
    base = dict(module__hidden_units=(4,), max_epochs=EPOCHS, batch_size=BATCH,
                random_state=0)
    result = evaluate_stream(
        {"retrain": ContinualClassifier(update="retrain", **base),
         "derpp": ContinualClassifier(
             regularizer=DERpp(memory=RehearsalBuffer(capacity=60)), **base)},
        X, y, months, test_size=0.3, random_state=0)
    retrain, derpp = result.summary
    assert derpp["train_rows"] > derpp["samples_processed"]
    assert derpp["forward_rows"] > 0
    assert derpp["relative_cost"] == pytest.approx(derpp["train_rows"]
                                                   / retrain["train_rows"])
