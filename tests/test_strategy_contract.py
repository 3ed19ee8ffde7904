"""The open strategy contract: hook resolution, the public base, the helpers."""

import re
import textwrap
from pathlib import Path

import numpy as np
import pytest
import scipy.sparse as sp
import torch
from _helpers import month_slices
from torch import nn

from skcl import (
    EWC,
    L2,
    MAS,
    SI,
    ContinualClassifier,
    ImportanceRegularizer,
    LwF,
    Regularizer,
)
from skcl.regularizers import evaluation_mode, per_sample_loss, trainable_parameters  # noqa: F401
from skcl.regularizers._base import training_hooks


class FakeNet:
    def __init__(self, module, criterion=None):
        self.module_ = module
        self.criterion_ = criterion or nn.CrossEntropyLoss()


def fit_months(clf, X, y, months, n_months):
    for index, (_, rows) in enumerate(month_slices(months)):
        if index == n_months:
            break
        clf.partial_fit(X[rows], y[rows], classes=[0, 1])
    return clf


# ----------------------------------------------------------------------
# no silent override: LoudL2
# ----------------------------------------------------------------------
class LoudL2(L2):
    """L2 with a 1000 times louder penalty, but the parent's fast hook."""

    def penalty(self, module):
        return 1000.0 * super().penalty(module)


class FastLoudL2(LoudL2):
    """A subclass that also writes the matching fast hook: used again."""

    def add_penalty_grad(self, module):
        return 1000.0 * L2.add_penalty_grad(self, module)


def test_hooks_are_resolved_from_what_each_class_overrides():
    assert vars(training_hooks(L2)) == dict(penalty=False, batch_loss=False,
                                            after_backward=True, add_penalty_grad=False)
    # a penalty override without the fast hook: the penalty, through autograd
    assert vars(training_hooks(LoudL2)) == dict(penalty=True, batch_loss=False,
                                                after_backward=False, add_penalty_grad=False)
    # a fast hook written below the penalty override is trusted again
    assert training_hooks(FastLoudL2).after_backward and not training_hooks(FastLoudL2).penalty

    class DuckFast:  # the old optional hook on a class outside the hierarchy
        def penalty(self, module):
            pass

        def add_penalty_grad(self, module):
            pass

    assert vars(training_hooks(DuckFast)) == dict(penalty=False, batch_loss=False,
                                                  after_backward=False, add_penalty_grad=True)


def test_loud_l2_trains_differently_from_l2_and_exactly_like_l2_1000x(stream, make_clf):
    X, y, months = stream
    plain = fit_months(make_clf(regularizer=L2(lam=0.05)), X, y, months, 3)
    loud = fit_months(make_clf(regularizer=LoudL2(lam=0.05)), X, y, months, 3)
    strong = fit_months(make_clf(regularizer=L2(lam=50.0)), X, y, months, 3)
    gap = max((p - q).abs().max().item()
              for p, q in zip(plain.module_.parameters(), loud.module_.parameters()))
    assert gap > 1e-2
    # LoudL2's own penalty was used: it trains as L2 with 1000 times the strength
    for p, q in zip(loud.module_.parameters(), strong.module_.parameters()):
        torch.testing.assert_close(p, q, rtol=1e-4, atol=1e-5)


# ----------------------------------------------------------------------
# the batch loss term and the gradient hook reach the training step
# ----------------------------------------------------------------------
class Recorder(Regularizer):
    """Records what the hooks see; adds a known term and a known gradient."""

    def __init__(self, term=0.0, grad_shift=0.0):
        self.term = term
        self.grad_shift = grad_shift

    def batch_loss(self, net, X, y, y_pred, month_index):
        self.seen_ = [*self.__dict__.get("seen_", []),
                      (X.shape, y.shape, tuple(y_pred.shape), y_pred.requires_grad,
                       month_index)]
        return self.term * y_pred.sum() / y_pred.shape[0]

    def after_backward(self, net, X, y):
        with torch.no_grad():
            for p in net.module_.parameters():
                p.grad.add_(self.grad_shift)
        return torch.tensor(7.0)

    def consolidate(self, net, X, y):
        return self


def test_batch_loss_and_after_backward_reach_the_training_step(stream, make_clf):
    X, y, months = stream
    clf = fit_months(make_clf(regularizer=Recorder(term=0.5, grad_shift=0.25),
                              batch_size=200, max_epochs=1), X, y, months, 2)
    seen = clf.regularizer_.seen_
    assert [s[-1] for s in seen] == [0, 1]  # the month index
    assert seen[0][:4] == (torch.Size([200, 20]), torch.Size([200]), (200, 2), True)
    # the step: loss + term (before backward) and the hook's value after it
    batch = (torch.as_tensor(X[:50]), torch.as_tensor(y[:50]))
    clf.optimizer_.zero_grad()
    step = clf.train_step_single(batch)
    clf.module_.train()
    out = clf.module_(batch[0])
    expected_loss = nn.functional.cross_entropy(out, batch[1]) + 0.5 * out.sum() / 50
    assert step["loss"].item() == pytest.approx(expected_loss.item() + 7.0, rel=1e-6)
    expected = torch.autograd.grad(expected_loss, list(clf.module_.parameters()))
    for p, g in zip(clf.module_.parameters(), expected):
        torch.testing.assert_close(p.grad, g + 0.25)
    # validation and scoring see none of it
    assert clf.get_loss(out, batch[1], X=batch[0]).item() == pytest.approx(
        nn.functional.cross_entropy(out, batch[1]).item())


# ----------------------------------------------------------------------
# ImportanceRegularizer: one method deep, checked
# ----------------------------------------------------------------------
class Returns(ImportanceRegularizer):
    def __init__(self, lam=1.0, value=None):
        self.lam = lam
        self.value = value

    def estimate_importance(self, net, X, y):
        return self.value(net.module_)


def test_importance_regularizer_accumulates_and_penalizes_by_hand():
    torch.manual_seed(0)
    module = nn.Linear(3, 2)
    net = FakeNet(module)
    regularizer = Returns(lam=0.4, value=lambda m: {n: p.detach().abs() + 1
                                                    for n, p in m.named_parameters()})
    first = torch.cat([p.detach().abs().reshape(-1) + 1 for p in module.parameters()])
    regularizer.consolidate(net, None, None)
    with torch.no_grad():
        module.weight.add_(1.0)
    second = torch.cat([p.detach().abs().reshape(-1) + 1 for p in module.parameters()])
    anchor = torch.cat([p.detach().reshape(-1) for p in module.parameters()])
    regularizer.consolidate(net, None, None)
    with torch.no_grad():
        module.bias.sub_(2.0)
    theta = torch.cat([p.detach().reshape(-1) for p in module.parameters()])
    expected = 0.4 / 2 * ((first + second) * (theta - anchor).square()).sum()
    torch.testing.assert_close(regularizer.penalty(module), expected)
    for p in module.parameters():
        p.grad = None
    torch.testing.assert_close(regularizer.add_penalty_grad(module), expected)
    torch.testing.assert_close(torch.cat([p.grad.reshape(-1) for p in module.parameters()]),
                               0.4 * (first + second) * (theta - anchor))
    assert regularizer.n_consolidations_ == 2


@pytest.mark.parametrize("value, error, match", [
    (lambda m: [p for p in m.parameters()], TypeError, "returned list, but a dict"),
    (lambda m: {"weight": torch.ones(2, 3)}, ValueError, r"missing \['bias'\]"),
    (lambda m: {"weight": torch.ones(2, 3), "bias": torch.ones(2), "w": torch.ones(1)},
     ValueError, r"unknown \['w'\]"),
    (lambda m: {"weight": torch.ones(3, 2), "bias": torch.ones(2)}, ValueError,
     r"shape \(3, 2\) for 'weight', whose shape is \(2, 3\)"),
    (lambda m: {"weight": torch.full((2, 3), float("nan")), "bias": torch.ones(2)},
     ValueError, "non-finite"),
])
def test_importance_regularizer_checks_what_estimate_importance_returns(value, error, match):
    with pytest.raises(error, match=match):
        Returns(value=value).consolidate(FakeNet(nn.Linear(3, 2)), None, None)


def test_importance_regularizer_without_the_method_says_which():
    with pytest.raises(NotImplementedError, match="must implement estimate_importance"):
        ImportanceRegularizer().consolidate(FakeNet(nn.Linear(3, 2)), None, None)


def test_ewc_fisher_goes_through_estimate_importance():
    torch.manual_seed(0)
    net = FakeNet(nn.Sequential(nn.Linear(4, 3), nn.Tanh(), nn.Linear(3, 2)))
    X, y = torch.randn(20, 4), torch.arange(20) % 2

    class Doubled(EWC):
        def estimate_importance(self, net, X, y):
            return {n: 2 * v for n, v in super().estimate_importance(net, X, y).items()}

    plain, doubled = EWC().consolidate(net, X, y), Doubled().consolidate(net, X, y)
    torch.testing.assert_close(doubled.penalty_weight_, 2 * plain.penalty_weight_)


# ----------------------------------------------------------------------
# the classes of docs/user_guide/extending.rst, run as written
# ----------------------------------------------------------------------
EXTENDING = Path(__file__).parents[1] / "docs" / "user_guide" / "extending.rst"


@pytest.fixture(scope="module")
def documented():
    """Every ``code-block:: python`` of the extending page, executed in one namespace."""
    blocks = re.findall(r"\.\. code-block:: python\n\n((?:    .*\n|\n)+)",
                        EXTENDING.read_text())
    namespace = {"ContinualClassifier": ContinualClassifier, "blocks": blocks}
    for block in blocks:
        exec(textwrap.dedent(block), namespace)
    return namespace


def test_documented_mas_is_about_fifteen_lines_and_matches_the_built_in(
        documented, stream, make_clf):
    (block,) = [b for b in documented["blocks"] if "class MyMAS" in b]
    lines = block[block.index("class MyMAS"):].strip().splitlines()
    assert len(lines) <= 16
    X, y, months = stream
    docs = fit_months(make_clf(regularizer=documented["MyMAS"](lam=5.0)), X, y, months, 2)
    built_in = fit_months(make_clf(regularizer=MAS(lam=5.0)), X, y, months, 2)
    for name, value in built_in.regularizer_.importance_.items():
        torch.testing.assert_close(docs.regularizer_.importance_[name], value,
                                   rtol=1e-4, atol=1e-6)
    assert training_hooks(documented["MyMAS"]).after_backward  # the fast path, for free


def test_documented_lwf_trains_as_the_built_in_at_temperature_one(
        documented, stream, make_clf):
    X, y, months = stream
    docs = fit_months(make_clf(regularizer=documented["MyLwF"](lam=2.0)), X, y, months, 3)
    built_in = fit_months(make_clf(regularizer=LwF(lam=2.0, temperature=1.0)),
                          X, y, months, 3)
    for p, q in zip(docs.module_.parameters(), built_in.module_.parameters()):
        torch.testing.assert_close(p, q, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("name, param", [("LoudL2", "regularizer"),
                                         ("OutputLayerL2", "regularizer"),
                                         ("FirstMonthGuard", "regularizer"),
                                         ("ReplayPositives", "rehearsal")])
def test_documented_strategies_train_and_act(documented, stream, make_clf, name, param):
    X, y, months = stream
    strategy = documented[name]()
    if name == "ReplayPositives":
        strategy.set_params(capacity=100, replay_ratio=0.3)
    clf = fit_months(make_clf(**{param: strategy}), X, y, months, 3)
    plain = fit_months(make_clf(), X, y, months, 3)
    assert not all(torch.equal(p, q) for p, q
                   in zip(clf.module_.parameters(), plain.module_.parameters()))


def _stream_as(form, stream, tmp_path):
    """The test stream's features as dense, sparse (CSR) or memory-mapped rows."""
    X, y, months = stream
    if form == "sparse":
        return sp.csr_matrix(X), y, months
    if form == "memmap":
        mapped = np.memmap(tmp_path / "X.f32", dtype=np.float32, mode="w+", shape=X.shape)
        mapped[:] = X
        mapped.flush()
        return np.memmap(tmp_path / "X.f32", dtype=np.float32, mode="r", shape=X.shape), y, months
    return X, y, months


@pytest.mark.parametrize("form", ["dense", "sparse", "memmap"])
@pytest.mark.parametrize("name, param", [("MyMAS", "regularizer"),
                                         ("MyLwF", "regularizer"),
                                         ("FirstMonthGuard", "regularizer"),
                                         ("ReplayPositives", "rehearsal")])
def test_the_guides_four_kinds_run_on_dense_sparse_and_memory_mapped_rows(
        documented, stream, make_clf, tmp_path, form, name, param):
    X, y, months = _stream_as(form, stream, tmp_path)
    strategy = documented[name]()
    if name == "ReplayPositives":
        # stored rows in memory-mapped files too, for the memory-mapped stream
        strategy.set_params(capacity=100, replay_ratio=0.3,
                            memmap_dir=str(tmp_path) if form == "memmap" else None)
    clf = fit_months(make_clf(max_epochs=1, **{param: strategy}), X, y, months, 3)
    plain = fit_months(make_clf(max_epochs=1), X, y, months, 3)
    assert not all(torch.equal(p, q) for p, q
                   in zip(clf.module_.parameters(), plain.module_.parameters()))
    if name == "ReplayPositives":
        stored = clf.rehearsal_.X_
        assert (sp.issparse(stored) if form == "sparse"
                else isinstance(stored, np.memmap) == (form == "memmap"))
    if name == "FirstMonthGuard":   # a copy: the caller's rows are shared on CPU
        assert clf.regularizer_.X_ref_.shape[0] == 200


def test_a_batch_loss_only_strategy_is_accepted(stream, make_clf):
    class BatchLossOnly:  # duck-typed: consolidate and one training hook, no penalty
        def get_params(self, deep=True):
            return {}

        def set_params(self, **params):
            return self

        def consolidate(self, net, X, y):
            return self

        def batch_loss(self, net, X, y, y_pred, month_index):
            return 0.0 * y_pred.sum()

    X, y, months = stream
    clf = fit_months(make_clf(regularizer=BatchLossOnly()), X, y, months, 2)
    assert clf.n_months_seen_ == 2


def test_the_strategy_protocol_is_public_on_the_base_classes(stream, make_clf):
    from skcl import RehearsalBuffer

    calls = []

    class Watched(L2):
        def check_params(self):
            calls.append("check_params")
            super().check_params()

        def save_state(self):
            calls.append("save_state")
            return super().save_state()

    X, y, months = stream
    fit_months(make_clf(regularizer=Watched(lam=1.0)), X, y, months, 2)
    assert calls.count("check_params") == 2 and calls.count("save_state") >= 1
    with pytest.raises(ValueError, match="lam"):
        L2(lam=-1.0).check_params()
    buffer = RehearsalBuffer(capacity=10)
    restore = buffer.save_state()
    buffer.partial_fit(X[:20], y[:20])
    restore()
    assert not hasattr(buffer, "X_")


# ----------------------------------------------------------------------
# helpers
# ----------------------------------------------------------------------
def test_evaluation_mode_restores_each_submodule_also_on_error():
    module = nn.Sequential(nn.Linear(3, 3), nn.Dropout(0.5), nn.BatchNorm1d(3))
    module[2].eval()
    with pytest.raises(RuntimeError, match="inside"):
        with evaluation_mode(module) as inside:
            assert inside is module
            assert not any(m.training for m in module.modules())
            raise RuntimeError("inside")
    assert [m.training for m in module.modules()] == [True, True, True, False]


def test_trainable_parameters_skips_frozen_and_shared_once():
    shared = nn.Linear(2, 2)
    module = nn.Sequential(shared, nn.ReLU(), shared, nn.Linear(2, 1))
    module[3].bias.requires_grad_(False)
    assert list(trainable_parameters(module)) == ["0.weight", "0.bias", "3.weight"]


def test_per_sample_loss_is_reexported_for_strategies():
    losses = per_sample_loss(nn.CrossEntropyLoss())(torch.zeros(3, 2), torch.tensor([0, 1, 0]))
    torch.testing.assert_close(losses, torch.full((3,), float(torch.log(torch.tensor(2.0)))))


def test_si_penalty_takes_the_fast_path_and_records_before_it():
    hooks = training_hooks(SI)
    assert hooks.after_backward and not hooks.penalty
    assert isinstance(ContinualClassifier(regularizer=SI()).regularizer, SI)
