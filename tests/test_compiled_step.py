"""ContinualClassifier(step="compiled"): the compiled training step (issue 18).

The default tests never compile (compiling takes seconds to tens of seconds on
a CPU): they check the parameter and every reason a step must stay eager, with
``torch.compile`` made to fail if it were reached. The tests that compile are
``slow`` (CPU) or ``cuda``.
"""

import io
import pickle

import joblib
import numpy as np
import pytest
import torch
from _helpers import month_slices
from sklearn.base import clone
from sklearn.utils._param_validation import InvalidParameterError
from skorch.callbacks import Callback
from torch._dynamo.utils import counters

from skcl import EWC, L2, ContinualClassifier, OnlineEWC, RehearsalBuffer, _compiled_step
from skcl._compiled_step import compiled_train_step
from skcl.regularizers import MAS, SI, Regularizer

# Compiled and eager steps differ by float rounding only (inductor fuses and
# reorders the sums): after three months of the small models here, weights
# agree within 1e-6 (measured); the tests allow 1e-5.
WEIGHT_ATOL = 1e-5


def _months(stream, n_months=3):
    X, y, months = stream
    X = X.astype(np.float32)
    return [(X[rows], y[rows]) for _, rows in list(month_slices(months))[:n_months]]


def _train(clf, months):
    for X_month, y_month in months:
        clf.partial_fit(X_month, y_month, classes=[0, 1])
    return clf


def _max_weight_diff(a, b):
    return max((p - q).abs().max().item()
               for p, q in zip(a.module_.parameters(), b.module_.parameters()))


@pytest.fixture
def no_compile(monkeypatch):
    """Make any attempt to compile fail the test."""
    def refuse(fn, device_type):
        raise AssertionError(f"{fn.__name__} would have been compiled")
    monkeypatch.setattr(_compiled_step, "_compiled", refuse)


class _Drift(Regularizer):
    """A custom penalty (not the built-in quadratic form): must run eagerly."""

    def __init__(self, lam=0.1):
        self.lam = lam

    def penalty(self, module):
        if not hasattr(self, "anchor_"):
            return torch.zeros(())
        return self.lam * sum((p - a).abs().sum()
                              for p, a in zip(module.parameters(), self.anchor_))

    def consolidate(self, net, X, y):
        self.anchor_ = [p.detach().clone() for p in net.module_.parameters()]
        return self


class _EWCSquaredOnly(EWC):
    """A subclass of a built-in regularizer that changes its fast path."""

    def add_penalty_grad(self, module):
        return super().add_penalty_grad(module) * 1.0


class _GradCallback(Callback):
    def on_grad_computed(self, net, named_parameters, **kwargs):
        pass


class _FailAfterTwoBatches(Callback):
    armed = []  # class-level switch: rollback restores the callback's own attributes

    def on_batch_end(self, net, **kwargs):
        if self.armed and len(net.history_[-1]["batches"]) == 2:
            raise RuntimeError("boom")


class _OwnLoss(ContinualClassifier):
    def get_loss(self, y_pred, y_true, X=None, training=False):
        return super().get_loss(y_pred, y_true, X=X, training=training)


# ----------------------------------------------------------------------
# default suite: parameter checks and the eager fallbacks (nothing compiles)
# ----------------------------------------------------------------------
def test_step_parameter_is_validated(stream, make_clf):
    (X, y), = _months(stream, 1)
    with pytest.raises(InvalidParameterError, match="'step' parameter"):
        make_clf(step="fast").partial_fit(X, y, classes=[0, 1])
    with pytest.raises(ValueError, match="pass one of them"):
        make_clf(step="compiled", compile=True).partial_fit(X, y, classes=[0, 1])
    assert clone(make_clf(step="compiled")).get_params()["step"] == "compiled"


@pytest.mark.parametrize("params", [
    dict(regularizer=_Drift(lam=0.1)),
    dict(regularizer=_EWCSquaredOnly(lam=10.0)),
    dict(regularizer=SI(lam=1.0)),  # its own after_backward (the path integral)
    dict(optimizer=torch.optim.RMSprop),
    dict(callbacks=[_GradCallback()]),
], ids=["custom-regularizer", "subclassed-fast-path", "SI", "rmsprop", "grad-callback"])
def test_steps_it_cannot_reproduce_run_eagerly(stream, make_clf, no_compile, params):
    # every step is eager, so the weights are bit-identical to step="eager"
    months = _months(stream, 2)
    eager = _train(make_clf(**params), months)
    compiled = _train(make_clf(step="compiled", **clone_params(params)), months)
    assert _max_weight_diff(eager, compiled) == 0.0


def clone_params(params):
    return {key: clone(value) if hasattr(value, "get_params") else
            [clone(cb) for cb in value] if key == "callbacks" else value
            for key, value in params.items()}


def test_subclass_overriding_the_step_is_not_bypassed(stream, make_clf, no_compile):
    months = _months(stream, 2)
    params = dict(module__hidden_units=(16,), max_epochs=2, batch_size=64, lr=1e-2,
                  random_state=0)
    eager = _train(ContinualClassifier(**params), months)
    compiled = _train(_OwnLoss(step="compiled", **params), months)
    assert _max_weight_diff(eager, compiled) == 0.0


def test_which_batches_would_be_compiled(stream, make_clf, no_compile):
    (X, y), = _months(stream, 1)
    clf = make_clf().partial_fit(X, y, classes=[0, 1])  # trained eagerly
    X_t, y_t = torch.as_tensor(X[:64]), torch.as_tensor(y[:64])

    def decides_eager(batch, fit_params=None, net=clf):
        return compiled_train_step(net, batch, fit_params or {},
                                   base=ContinualClassifier) is None

    assert decides_eager((X_t[:40], y_t[:40]))  # the last, partial batch
    assert decides_eager((X_t, y_t), fit_params={"extra": 1})
    assert decides_eager({"X": X_t})
    with pytest.raises(AssertionError, match="would have been compiled"):
        decides_eager((X_t, y_t))  # a full batch: the compiled path
    fresh = make_clf()
    fresh.initialize()
    assert decides_eager((X_t, y_t), net=fresh)  # the optimizer's first step
    # skorch takes the log of the output before an NLLLoss: not in the graph
    clf.criterion_ = torch.nn.NLLLoss()
    assert decides_eager((X_t, y_t))


def test_penalty_not_aligned_with_the_optimizer_runs_eagerly(stream, make_clf, no_compile):
    # the fused update adds the penalty in the optimizer's parameter order;
    # a regularizer holding its parameters in another order must stay eager
    (X, y), = _months(stream, 1)
    clf = make_clf(regularizer=EWC(lam=1.0)).partial_fit(X, y, classes=[0, 1])
    params = clf.optimizer_.param_groups[0]["params"]
    plan = _compiled_step._plan_for(clf.optimizer_, params)
    assert _compiled_step._penalty(clf.regularizer_, clf.module_, params, plan)[2] == 1.0
    regularizer = clf.regularizer_
    regularizer.param_names_ = regularizer.param_names_[::-1]
    plan.penalty_key = None
    assert _compiled_step._penalty(regularizer, clf.module_, params, plan) is None


# ----------------------------------------------------------------------
# compiled (slow on CPU): same weights as eager, no recompilation per month
# ----------------------------------------------------------------------
STRATEGIES = {
    "finetune": dict(),
    "finetune_lr": dict(finetune_lr=3e-3, finish_epochs=1),
    "retrain": dict(update="retrain"),
    "L2": dict(regularizer=L2(lam=1.0)),
    "EWC": dict(regularizer=EWC(lam=50.0)),
    "OnlineEWC": dict(regularizer=OnlineEWC(lam=50.0, gamma=0.9)),
    "MAS": dict(regularizer=MAS(lam=50.0)),
    "rehearsal": dict(rehearsal=RehearsalBuffer(capacity=150)),
    "SGD-momentum": dict(optimizer=torch.optim.SGD, optimizer__momentum=0.9, lr=0.05),
    "AdamW": dict(optimizer=torch.optim.AdamW, optimizer__weight_decay=0.01),
}


@pytest.mark.slow
@pytest.mark.parametrize("name", list(STRATEGIES))
def test_compiled_matches_eager_and_compiles_once(stream, make_clf, name):
    months = _months(stream, 4)
    params = STRATEGIES[name]
    eager = make_clf(**clone_params(params))
    compiled = make_clf(step="compiled", **clone_params(params))
    # months 1-2 compile what the stream needs (with a regularizer: the
    # update with and without a penalty); later months reuse it
    _train(eager, months[:2])
    _train(compiled, months[:2])
    graphs = counters["stats"]["unique_graphs"]
    _train(eager, months[2:])
    _train(compiled, months[2:])
    assert counters["stats"]["unique_graphs"] == graphs, "a later month recompiled"
    assert _max_weight_diff(eager, compiled) < WEIGHT_ATOL
    losses_eager = [row["train_loss"] for row in eager.history_]
    losses_compiled = [row["train_loss"] for row in compiled.history_]
    np.testing.assert_allclose(losses_compiled, losses_eager, rtol=1e-5, atol=1e-6)


@pytest.mark.slow
def test_compiled_estimator_rolls_back_pickles_clones_and_saves(stream, make_clf):
    months = _months(stream, 3)
    armed = _FailAfterTwoBatches.armed
    clf = _train(make_clf(step="compiled", regularizer=EWC(lam=50.0),
                          callbacks=[_FailAfterTwoBatches()]), months[:2])
    before = {k: v.clone() for k, v in clf.module_.state_dict().items()}
    armed.append(True)  # fails after two compiled steps of month 3
    with pytest.raises(RuntimeError, match="boom"):
        clf.partial_fit(*months[2], classes=[0, 1])
    assert all(torch.equal(before[k], v) for k, v in clf.module_.state_dict().items())
    armed.clear()

    buffer = io.BytesIO()
    joblib.dump(clf, buffer)
    assert b"torch._dynamo" not in pickle.dumps(clf)
    loaded = joblib.load(io.BytesIO(buffer.getvalue()))
    twin = make_clf(regularizer=EWC(lam=50.0), callbacks=[_FailAfterTwoBatches()])  # eager twin
    _train(twin, months[:2])
    _train(loaded, months[2:])
    _train(twin, months[2:])
    assert _max_weight_diff(loaded, twin) < WEIGHT_ATOL

    weights = io.BytesIO()
    loaded.save_weights(weights)
    weights.seek(0)
    restored = make_clf(step="compiled", regularizer=EWC(lam=50.0)).load_weights(weights)
    np.testing.assert_array_equal(restored.predict_proba(months[0][0]),
                                  loaded.predict_proba(months[0][0]))
    assert clone(loaded).get_params()["step"] == "compiled"


@pytest.mark.cuda
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
@pytest.mark.parametrize("name", ["finetune", "retrain", "EWC", "rehearsal"])
def test_compiled_matches_eager_on_cuda(stream, make_clf, name):
    months = _months(stream, 4)
    params = STRATEGIES[name]
    eager = make_clf(device="cuda", **clone_params(params))
    compiled = make_clf(device="cuda", step="compiled", **clone_params(params))
    _train(eager, months[:2])
    _train(compiled, months[:2])
    graphs = counters["stats"]["unique_graphs"]
    _train(eager, months[2:])
    _train(compiled, months[2:])
    assert counters["stats"]["unique_graphs"] == graphs, "a later month recompiled"
    # cuBLAS and the fused kernels sum in other orders than the CPU
    assert _max_weight_diff(eager, compiled) < 1e-4
    restored = pickle.loads(pickle.dumps(compiled))
    np.testing.assert_allclose(restored.predict_proba(months[0][0]),
                               compiled.predict_proba(months[0][0]), atol=1e-6)
