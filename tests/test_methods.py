"""SI, MAS, LwF, AGEM and DERpp against hand computations; tuning, persistence, rollback."""

import io

import joblib
import numpy as np
import pytest
import sklearn
import torch
from _helpers import month_slices, state_equal
from sklearn.base import clone
from sklearn.model_selection import GridSearchCV
from torch import nn

from skcl import (
    AGEM,
    MAS,
    SI,
    DERpp,
    ForgettingScorer,
    LwF,
    MonthlyKFold,
    RehearsalBuffer,
)
from skcl.datasets import make_drifting_stream

CE = nn.CrossEntropyLoss()


class FakeNet:
    """What the strategies read from the classifier, with its loss and forward."""

    def __init__(self, module, device="cpu"):
        self.module_ = module
        self.criterion_ = nn.CrossEntropyLoss()
        self.device = device

    def infer(self, X):
        return self.module_(X)

    def get_loss(self, y_pred, y_true, X=None, training=False):
        return self.criterion_(y_pred, y_true)


def flat(tensors):
    return torch.cat([t.detach().reshape(-1) for t in tensors])


def fit_months(clf, X, y, months, n_months=None):
    for index, (_, rows) in enumerate(month_slices(months)):
        if n_months is not None and index == n_months:
            break
        clf.partial_fit(X[rows], y[rows], classes=[0, 1])
    return clf


# ----------------------------------------------------------------------
# SI: the path integral of the optimizer's actual updates
# ----------------------------------------------------------------------
@pytest.mark.parametrize("optimizer", [torch.optim.SGD, torch.optim.Adam])
def test_si_importance_is_the_path_integral_of_the_actual_updates(optimizer):
    torch.manual_seed(0)
    module = nn.Sequential(nn.Linear(3, 4), nn.Tanh(), nn.Linear(4, 2))
    net = FakeNet(module)
    opt = optimizer(module.parameters(), lr=0.1)
    regularizer = SI(lam=2.0, damping=0.5)
    X, y = torch.randn(40, 3), torch.arange(40) % 2
    params = list(module.parameters())
    start = flat(params)
    integral = torch.zeros_like(start)
    for step in range(6):
        rows = slice(step * 6, step * 6 + 6)
        opt.zero_grad()
        CE(module(X[rows]), y[rows]).backward()
        gradient, before = flat(p.grad for p in params), flat(params)
        regularizer.after_backward(net, X[rows], y[rows])
        opt.step()
        integral -= gradient * (flat(params) - before)  # by hand: -g * (actual update)
    if optimizer is torch.optim.SGD:  # -g * (-lr g) = lr g^2 > 0 for every weight
        assert (integral >= 0).all()
    regularizer.consolidate(net, X, y)
    expected = (integral / ((flat(params) - start) ** 2 + 0.5)).clamp_min(0)
    torch.testing.assert_close(flat(regularizer.importance_.values()), expected)
    assert "_path" not in regularizer.__dict__  # the month's path is closed
    # the penalty: lam / 2 * sum(Omega (theta - anchor)^2), anchor = final weights
    with torch.no_grad():
        for p in params:
            p.add_(0.1)
    torch.testing.assert_close(regularizer.penalty(module),
                               1.0 * (expected * 0.01).sum())


def test_si_records_the_loss_gradient_before_adding_the_penalty_gradient():
    torch.manual_seed(0)
    module = nn.Linear(3, 2)
    net = FakeNet(module)
    regularizer = SI(lam=10.0).consolidate(net, None, None)  # zero importance...
    regularizer.penalty_weight_ = torch.ones_like(regularizer.penalty_weight_)  # ...made 1
    with torch.no_grad():
        module.weight.add_(1.0)
    loss_grad = [torch.randn_like(p) for p in module.parameters()]
    for p, g in zip(module.parameters(), loss_grad):
        p.grad = g.clone()
    value = regularizer.after_backward(net, None, None)
    assert value.item() == pytest.approx(10.0 / 2 * 6)
    recorded = regularizer._path["gradients"][1 - regularizer._path["current"]]
    torch.testing.assert_close(recorded, flat(loss_grad))
    torch.testing.assert_close(module.weight.grad, loss_grad[0] + 10.0)


class AutogradSI(SI):
    """SI through the general path: autograd of penalty, added in get_loss."""

    add_penalty_grad = None


def test_si_fast_path_trains_as_the_autograd_penalty(stream, make_clf):
    X, y, months = stream
    # two months: the second trains under the penalty. (Later months differ: on
    # the general path the gradient SI records includes the penalty's.)
    fast = fit_months(make_clf(regularizer=SI(lam=50.0)), X, y, months, 2)
    general = fit_months(make_clf(regularizer=AutogradSI(lam=50.0)), X, y, months, 2)
    assert fast.regularizer_.penalty_weight_.max().item() > 0
    for p, q in zip(fast.module_.parameters(), general.module_.parameters()):
        torch.testing.assert_close(p, q, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(fast.history[:, "train_loss"],
                               general.history[:, "train_loss"], rtol=1e-5)


def test_si_without_steps_adds_no_importance():
    module = nn.Linear(3, 2)
    regularizer = SI().consolidate(FakeNet(module), None, None)
    assert all((v == 0).all() for v in regularizer.importance_.values())


# ----------------------------------------------------------------------
# MAS: |d ||f(x)||^2 / d theta|, per sample, by hand on a linear model
# ----------------------------------------------------------------------
def test_mas_importance_matches_the_hand_gradient_of_a_linear_model():
    torch.manual_seed(0)
    module = nn.Linear(3, 2)
    X = torch.randn(5, 3)
    f = module(X).detach()                         # (5, 2)
    # ||Wx + b||^2: d/dW = 2 f x^T, d/db = 2 f, per sample; then |.| and mean
    expected_weight = (2 * f[:, :, None] * X[:, None, :]).abs().mean(0)
    expected_bias = (2 * f).abs().mean(0)
    regularizer = MAS(lam=3.0).consolidate(FakeNet(module), X, None)
    torch.testing.assert_close(regularizer.importance_["weight"], expected_weight)
    torch.testing.assert_close(regularizer.importance_["bias"], expected_bias)
    # a second month adds its importance to the first
    regularizer.consolidate(FakeNet(module), X[:2], None)
    torch.testing.assert_close(regularizer.importance_["bias"],
                               expected_bias + (2 * f[:2]).abs().mean(0))


def test_mas_max_samples_is_seeded():
    torch.manual_seed(0)
    module = nn.Sequential(nn.Linear(3, 4), nn.ReLU(), nn.Linear(4, 2))
    X = torch.randn(50, 3)
    a, b, c = (MAS(max_samples=10, random_state=seed).consolidate(FakeNet(module), X, None)
               for seed in (0, 0, 1))
    torch.testing.assert_close(a.penalty_weight_, b.penalty_weight_, rtol=0, atol=0)
    assert not torch.equal(a.penalty_weight_, c.penalty_weight_)


# ----------------------------------------------------------------------
# LwF: KL to last month's softened outputs, by hand
# ----------------------------------------------------------------------
def test_lwf_term_and_gradient_match_the_hand_computation():
    torch.manual_seed(0)
    module = nn.Linear(3, 3)
    net = FakeNet(module)
    regularizer = LwF(lam=0.7, temperature=2.0)
    X = torch.randn(4, 3)
    assert regularizer.batch_loss(net, X, None, module(X), 0) is None  # first month
    regularizer.consolidate(net, X, None)
    old = module(X).detach()
    with torch.no_grad():
        module.weight.add_(0.5)
    new = module(X)
    term = regularizer.batch_loss(net, X, None, new, 1)
    p_old = torch.softmax(old / 2, dim=1)
    log_new = torch.log_softmax(new.detach() / 2, dim=1)
    expected = 0.7 * (p_old * (torch.log(p_old) - log_new)).sum(1).mean()
    torch.testing.assert_close(term, expected)
    # d/dz: lam / n * (softmax(z / T) - p_old) / T
    (grad,) = torch.autograd.grad(term, new)
    torch.testing.assert_close(grad, 0.7 / 4 * (log_new.exp() - p_old) / 2)
    # the teacher is a frozen copy: training the module does not move it
    assert not any(p.requires_grad for p in regularizer.teacher_.parameters())
    torch.testing.assert_close(regularizer.teacher_(X), old)


# ----------------------------------------------------------------------
# A-GEM: projection onto the memory gradient's half-space, by hand
# ----------------------------------------------------------------------
def agem_setup(seed):
    torch.manual_seed(seed)
    module = nn.Linear(3, 2)
    net = FakeNet(module)
    X_mem, y_mem = torch.randn(8, 3), torch.arange(8) % 2
    regularizer = AGEM(sample_size=100, random_state=0).consolidate(net, X_mem, y_mem)
    reference = torch.autograd.grad(CE(module(X_mem), y_mem), list(module.parameters()))
    return module, net, regularizer, flat(reference)


@pytest.mark.parametrize("sign", [-1.0, 1.0])
def test_agem_projects_only_conflicting_gradients(sign):
    module, net, regularizer, r = agem_setup(0)
    g = sign * r + torch.randn_like(r) * 0.1  # conflicting or agreeing with the memory
    assert torch.sign(torch.dot(g, r)).item() == sign
    sizes = [p.numel() for p in module.parameters()]
    for p, part in zip(module.parameters(), g.split(sizes)):
        p.grad = part.view_as(p).clone()
    assert regularizer.after_backward(net, None, None) is None
    projected = flat(p.grad for p in module.parameters())
    expected = g - torch.dot(g, r) / torch.dot(r, r) * r if sign < 0 else g
    torch.testing.assert_close(projected, expected)
    if sign < 0:
        assert abs(torch.dot(projected, r).item()) < 1e-5


def test_agem_does_nothing_before_its_first_month():
    module = nn.Linear(3, 2)
    module.weight.grad = torch.ones_like(module.weight)
    assert AGEM().after_backward(FakeNet(module), None, None) is None
    assert (module.weight.grad == 1).all()


# ----------------------------------------------------------------------
# DER++: logits and labels replayed from the memory, by hand
# ----------------------------------------------------------------------
def test_derpp_term_matches_the_hand_computation():
    torch.manual_seed(0)
    module = nn.Sequential(nn.Linear(3, 4), nn.ReLU(), nn.Linear(4, 2))
    net = FakeNet(module)
    X_mem, y_mem = torch.randn(6, 3), torch.tensor([0, 1, 1, 0, 1, 0])
    stored = module(X_mem).detach()
    regularizer = DERpp(alpha=0.3, beta=0.8, batch_size=6, random_state=0)
    assert regularizer.batch_loss(net, X_mem, y_mem, None, 0) is None
    regularizer.consolidate(net, X_mem, y_mem)
    np.testing.assert_allclose(np.sort(regularizer.memory_.extra_, axis=0),
                               np.sort(stored.numpy(), axis=0), rtol=1e-6)
    with torch.no_grad():
        module[0].weight.add_(0.3)
    # the whole memory is drawn (in some order): the means do not depend on it
    term = regularizer.batch_loss(net, torch.zeros(2, 3), None, None, 1)
    out = module(X_mem)
    expected = (0.3 * ((out - stored) ** 2).mean()) + 0.8 * CE(out, y_mem)
    torch.testing.assert_close(term, expected)
    assert term.requires_grad
    # beta=0 is DER: the label term is gone
    regularizer.set_params(beta=0.0)
    torch.testing.assert_close(regularizer.batch_loss(net, X_mem, None, None, 1),
                               0.3 * ((out - stored) ** 2).mean())


# ----------------------------------------------------------------------
# through the classifier: tuning, persistence, composition, rollback
# ----------------------------------------------------------------------
METHODS = {
    "SI": (SI(lam=1.0), "regularizer__lam", [0.1, 10.0]),
    "MAS": (MAS(lam=1.0), "regularizer__lam", [0.1, 10.0]),
    "LwF": (LwF(lam=1.0), "regularizer__temperature", [1.0, 4.0]),
    "AGEM": (AGEM(memory=RehearsalBuffer(capacity=40), sample_size=16),
             "regularizer__memory__capacity", [10, 40]),
    "DERpp": (DERpp(memory=RehearsalBuffer(capacity=40)), "regularizer__alpha",
              [0.0, 1.0]),
}


@pytest.fixture(scope="module")
def small_stream():
    return make_drifting_stream(n_months=3, n_samples_per_month=90, random_state=1)


@pytest.mark.parametrize("name", [
    # a nested memory parameter and a batch-term parameter by default; the
    # plain regularizer__lam of SI and MAS (as L2's and EWC's) and LwF's with -m slow
    pytest.param(name, marks=[pytest.mark.slow] if name in ("SI", "MAS", "LwF") else [])
    for name in METHODS])
def test_each_method_tunes_in_grid_search(name, small_stream, make_clf):
    X, y, months = small_stream
    regularizer, key, values = METHODS[name]
    with sklearn.config_context(enable_metadata_routing=True):
        search = GridSearchCV(
            make_clf(regularizer=clone(regularizer), max_epochs=1),
            {key: values}, cv=MonthlyKFold(n_splits=2),
            scoring=ForgettingScorer(aggregate="mean"))
        search.fit(X, y, months=months)
    assert search.best_params_[key] in values
    fitted = search.best_estimator_.regularizer_
    prefix, _, attribute = key.partition("__")
    assert fitted.get_params()[attribute] == search.best_params_[key]
    scores = search.cv_results_["mean_test_score"]
    assert np.isfinite(scores).all()


@pytest.mark.parametrize("name", METHODS)
def test_each_method_resumes_bit_identically_from_joblib_with_rehearsal(
        name, stream, make_clf):
    X, y, months = stream
    make = lambda: make_clf(regularizer=clone(METHODS[name][0]),  # noqa: E731
                            rehearsal=RehearsalBuffer(capacity=100, replay_ratio=0.3))
    straight = fit_months(make(), X, y, months, 4)
    resumed = fit_months(make(), X, y, months, 2)
    buffer = io.BytesIO()
    joblib.dump(resumed, buffer)
    buffer.seek(0)
    resumed = joblib.load(buffer)
    for month in (2, 3):
        rows = months == month
        resumed.partial_fit(X[rows], y[rows])
    assert state_equal(straight.module_, resumed.module_)
    plain = fit_months(make_clf(), X, y, months, 4)
    assert not state_equal(straight.module_, plain.module_)  # the method did act


class FailingDERpp(DERpp):
    def consolidate(self, net, X, y):
        super().consolidate(net, X, y)
        if self.n_consolidations_ == 2:
            raise RuntimeError("disk full")
        return self


def test_a_failed_month_rolls_the_memory_back(stream, make_clf):
    X, y, months = stream
    clf = fit_months(make_clf(regularizer=FailingDERpp(memory=RehearsalBuffer(capacity=50))),
                     X, y, months, 1)
    memory = clf.regularizer_.memory_
    before = (memory.X_.copy(), memory.extra_.copy(), memory.n_samples_seen_,
              memory.rng_.bit_generator.state)
    with pytest.raises(RuntimeError, match="disk full"):
        clf.partial_fit(X[months == 1], y[months == 1])
    after = clf.regularizer_.memory_
    np.testing.assert_array_equal(after.X_, before[0])
    np.testing.assert_array_equal(after.extra_, before[1])
    assert after.n_samples_seen_ == before[2] and after.rng_.bit_generator.state == before[3]
    assert clf.regularizer_.n_consolidations_ == 1


def test_memory_settings_changed_between_months_carry_over(stream, make_clf):
    X, y, months = stream
    clf = fit_months(make_clf(regularizer=AGEM(memory=RehearsalBuffer(capacity=50))),
                     X, y, months, 1)
    clf.set_params(regularizer__memory__capacity=20)
    clf.partial_fit(X[months == 1], y[months == 1])
    assert clf.regularizer_.memory_.capacity == 20 and len(clf.regularizer_.memory_.y_) == 20


# ----------------------------------------------------------------------
# CUDA
# ----------------------------------------------------------------------
@pytest.mark.cuda
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
@pytest.mark.parametrize("name", METHODS)
def test_each_method_trains_on_cuda_like_on_cpu(name, stream, make_clf):
    X, y, months = stream
    fits = {device: fit_months(make_clf(regularizer=clone(METHODS[name][0]), device=device),
                               X, y, months, 3)
            for device in ("cuda", "cpu")}
    assert all(p.device.type == "cuda" for p in fits["cuda"].module_.parameters())
    state = fits["cuda"].regularizer_
    for tensor in [getattr(state, "penalty_weight_", None),
                   *getattr(state, "teacher_", torch.nn.Module()).parameters()]:
        assert tensor is None or tensor.device.type == "cuda"
    # not bit-identical across devices, but the same model up to float noise
    assert np.mean(fits["cuda"].predict(X) == fits["cpu"].predict(X)) > 0.9
