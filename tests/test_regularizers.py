"""L2, EWC and OnlineEWC: penalties against hand computations, plumbing, forgetting."""

import copy
import functools
import io
import pickle

import joblib
import numpy as np
import pytest
import torch
from _helpers import month_slices, state_equal
from sklearn.base import clone
from sklearn.model_selection import train_test_split
from skorch.dataset import ValidSplit
from torch import nn

from skcl import EWC, L2, ContinualClassifier, OnlineEWC, Regularizer
from skcl.datasets import make_drifting_stream
from skcl.fisher import empirical_fisher
from skcl.utils._sklearn_compat import InvalidParameterError

CE = nn.CrossEntropyLoss()


def fit_months(clf, X, y, months, n_months=None):
    for index, (_, rows) in enumerate(month_slices(months)):
        if n_months is not None and index == n_months:
            break
        clf.partial_fit(X[rows], y[rows], classes=[0, 1])
    return clf


def flat_params(module):
    return torch.cat([p.detach().reshape(-1) for p in module.parameters()])


def month_tensors(X, y, months, month):
    rows = months == month
    return torch.as_tensor(X[rows]), torch.as_tensor(y[rows])


class FakeNet:
    """The two attributes a regularizer reads from the net."""

    def __init__(self, module, criterion=None):
        self.module_ = module
        self.criterion_ = criterion or nn.CrossEntropyLoss()


# ----------------------------------------------------------------------
# sklearn parameter-object contract
# ----------------------------------------------------------------------
@pytest.mark.parametrize("regularizer", [L2(lam=3.0), EWC(lam=3.0, fisher="hessian"),
                                         OnlineEWC(lam=3.0, gamma=0.5)])
def test_parameters_clone_and_route_through_the_classifier(regularizer):
    params = regularizer.get_params()
    assert params["lam"] == 3.0
    cloned = clone(regularizer)
    assert cloned.get_params() == params and cloned is not regularizer
    clf = ContinualClassifier(regularizer=regularizer)
    assert clf.get_params()["regularizer__lam"] == 3.0
    clf.set_params(regularizer__lam=5)
    assert clf.regularizer.lam == 5
    assert clone(clf).regularizer.lam == 5


def test_constructor_stores_verbatim_and_validation_names_the_value(stream, make_clf):
    X, y, months = stream
    regularizer = EWC(lam=-1.0, fisher="exact")  # no error before fit
    assert regularizer.lam == -1.0
    rows = months == 0
    with pytest.raises(InvalidParameterError, match=r"'lam' parameter of .*L2.*Got -1"):
        make_clf(regularizer=L2(lam=-1)).partial_fit(X[rows], y[rows], classes=[0, 1])
    with pytest.raises(InvalidParameterError, match=r"'fisher' parameter of .*EWC.*'exact'"):
        make_clf(regularizer=EWC(fisher="exact")).partial_fit(X[rows], y[rows],
                                                             classes=[0, 1])
    with pytest.raises(InvalidParameterError, match=r"'gamma' parameter of OnlineEWC.*2"):
        OnlineEWC(gamma=2).consolidate(FakeNet(nn.Linear(3, 2)), None, None)
    clf = make_clf(regularizer=EWC(lam=1.0))
    clf.partial_fit(X[rows], y[rows], classes=[0, 1])
    clf.set_params(regularizer__negative="drop")  # checked at every partial_fit
    with pytest.raises(InvalidParameterError, match="'negative' parameter"):
        clf.partial_fit(X[months == 1], y[months == 1])
    assert clf.n_months_seen_ == 1  # rolled back


def test_base_class_hooks_must_be_implemented():
    with pytest.raises(NotImplementedError, match="must implement penalty"):
        Regularizer().penalty(nn.Linear(2, 2))
    with pytest.raises(NotImplementedError, match="must implement consolidate"):
        Regularizer().consolidate(None, None, None)


# ----------------------------------------------------------------------
# penalties against hand computations
# ----------------------------------------------------------------------
@pytest.mark.parametrize("regularizer", [L2(), EWC(), OnlineEWC()])
def test_penalty_is_zero_before_consolidation(regularizer):
    module = nn.Linear(3, 2).double()
    value = regularizer.penalty(module)
    assert value.shape == () and value.item() == 0.0 and value.dtype == torch.float64


def test_l2_penalty_matches_hand_computation():
    torch.manual_seed(0)
    module = nn.Sequential(nn.Linear(4, 3), nn.ReLU(), nn.Linear(3, 2))
    regularizer = L2(lam=0.7).consolidate(FakeNet(module), None, None)
    anchor = flat_params(module)
    with torch.no_grad():
        for p in module.parameters():
            p.add_(torch.randn_like(p))
    expected = 0.7 / 2 * (flat_params(module) - anchor).square().sum()
    value = regularizer.penalty(module)
    torch.testing.assert_close(value, expected)
    # differentiable: the gradient is lam * (theta - anchor)
    grads = torch.autograd.grad(value, list(module.parameters()))
    torch.testing.assert_close(torch.cat([g.reshape(-1) for g in grads]),
                               0.7 * (flat_params(module) - anchor))
    assert regularizer.anchor_["0.weight"].shape == (3, 4)


def three_months_of_ewc(regularizer, seed=0):
    """Consolidate a regularizer on 3 hand-made months; return it, module, anchors, Fishers."""
    torch.manual_seed(seed)
    module = nn.Sequential(nn.Linear(4, 5), nn.Tanh(), nn.Linear(5, 2))
    net = FakeNet(module)
    anchors, fishers = [], []
    for _ in range(3):
        X, y = torch.randn(30, 4), torch.randint(0, 2, (30,))
        with torch.no_grad():
            for p in module.parameters():
                p.add_(0.3 * torch.randn_like(p))
        anchors.append(flat_params(module))
        fisher = empirical_fisher(module, X, y, CE)
        fishers.append(torch.cat([f.reshape(-1) for f in fisher.values()]))
        regularizer.consolidate(net, X, y)
    with torch.no_grad():
        for p in module.parameters():
            p.add_(0.3 * torch.randn_like(p))
    return regularizer, module, anchors, fishers


def test_ewc_sums_one_term_per_month():
    regularizer, module, anchors, fishers = three_months_of_ewc(EWC(lam=20.0))
    assert regularizer.n_consolidations_ == 3
    # the last month's anchor and importance are kept, earlier ones only summed
    torch.testing.assert_close(flat_params_of(regularizer.anchor_), anchors[-1])
    torch.testing.assert_close(flat_params_of(regularizer.importance_), fishers[-1])
    theta = flat_params(module)
    expected = sum(20.0 / 2 * (f * (theta - a).square()).sum()
                   for a, f in zip(anchors, fishers))
    value = regularizer.penalty(module)
    torch.testing.assert_close(value, expected, rtol=1e-5, atol=1e-7)
    grads = torch.autograd.grad(value, list(module.parameters()))
    expected_grad = sum(20.0 * f * (theta - a) for a, f in zip(anchors, fishers))
    torch.testing.assert_close(torch.cat([g.reshape(-1) for g in grads]), expected_grad,
                               rtol=1e-4, atol=1e-7)
    assert regularizer.negative_fractions_ == [0.0, 0.0, 0.0]


def flat_params_of(tensors):
    return torch.cat([t.reshape(-1) for t in tensors.values()])


class ScriptedEWC(EWC):
    """EWC whose month importances are given, one per consolidation."""

    def __init__(self, lam=100.0, importances=()):
        super().__init__(lam)
        self.importances = importances

    def estimate_importance(self, net, X, y):
        return self.importances[self.__dict__.get("n_consolidations_", 0)]


def scripted_months(n_months, seed=0):
    """A module moved before each of ``n_months`` consolidations of a ScriptedEWC."""
    generator = torch.Generator().manual_seed(seed)
    module = nn.Sequential(nn.Linear(6, 5), nn.Tanh(), nn.Linear(5, 3))
    importances = []
    for month in range(n_months):
        importance = {}
        for name, p in module.named_parameters():
            value = torch.rand(p.shape, generator=generator) * 10.0 ** (month - 2)
            # some weights unused by some months, one by every month
            value[torch.rand(p.shape, generator=generator) < 0.3] = 0.0
            value.reshape(-1)[0] = 0.0
            importance[name] = value
        importances.append(importance)
    regularizer = ScriptedEWC(lam=3.0, importances=importances)
    anchors = []
    for _month in range(n_months):
        with torch.no_grad():
            for p in module.parameters():
                p.add_(torch.randn(p.shape, generator=generator))
        anchors.append(flat_params(module))
        regularizer.consolidate(FakeNet(module), None, None)
    with torch.no_grad():
        for p in module.parameters():
            p.add_(torch.randn(p.shape, generator=generator))
    return regularizer, module, anchors, [flat_params_of(i) for i in importances]


def test_ewc_merged_penalty_equals_the_sum_over_months():
    regularizer, module, anchors, importances = scripted_months(4)
    theta = flat_params(module).double()
    expected = sum(3.0 / 2 * (i.double() * (theta - a.double()).square()).sum()
                   for a, i in zip(anchors, importances))
    expected_grad = sum(3.0 * i.double() * (theta - a.double())
                        for a, i in zip(anchors, importances))
    value = regularizer.penalty(module)
    assert value.dtype == torch.float32
    torch.testing.assert_close(value.double(), expected, rtol=1e-5, atol=0)
    grads = torch.autograd.grad(value, list(module.parameters()))
    torch.testing.assert_close(flat_params_of(dict(enumerate(grads))).double(), expected_grad,
                               rtol=1e-5, atol=1e-6)
    # the fast path adds the same gradient and returns the same value
    for p in module.parameters():
        p.grad = None
    fast = regularizer.add_penalty_grad(module)
    torch.testing.assert_close(fast.double(), expected, rtol=1e-5, atol=0)
    torch.testing.assert_close(
        torch.cat([p.grad.reshape(-1) for p in module.parameters()]).double(),
        expected_grad, rtol=1e-5, atol=1e-6)
    # the weight no month uses is centred on the last anchor, with no weight
    assert regularizer.penalty_weight_[0].item() == 0.0
    assert regularizer.penalty_center_[0].item() == anchors[-1][0].item()
    assert regularizer.penalty_weight_.dtype == regularizer.penalty_center_.dtype \
        == torch.float32


def test_ewc_state_does_not_grow_with_the_months():
    def n_elements(regularizer):
        return sum(value.numel() for value in _tensors(vars(regularizer)))

    def _tensors(value):
        if isinstance(value, torch.Tensor):
            yield value
        elif isinstance(value, dict):
            for item in value.values():
                yield from _tensors(item)
        elif isinstance(value, (list, tuple)):
            for item in value:
                yield from _tensors(item)

    def fitted(regularizer):
        # the fitted state only, not the scripted importances (a parameter)
        state = copy.copy(regularizer)
        del state.importances
        return state

    three, eight = scripted_months(3)[0], scripted_months(8)[0]
    assert three.n_consolidations_ == 3 and eight.n_consolidations_ == 8
    assert n_elements(fitted(three)) == n_elements(fitted(eight)) > 0


def test_ewc_consolidation_replaces_its_fitted_tensors():
    regularizer, module, _, _ = scripted_months(2)
    before = dict(vars(regularizer))
    saved = {name: value.clone() for name, value in before.items()
             if isinstance(value, torch.Tensor)}
    regularizer.importances = regularizer.importances + regularizer.importances[:1]
    regularizer.consolidate(FakeNet(module), None, None)
    for name, value in saved.items():
        assert regularizer.__dict__[name] is not before[name], name
        assert torch.equal(before[name], value), name


@pytest.mark.parametrize("gamma", [1.0, 0.5, 0.0])
def test_online_ewc_accumulates_with_gamma(gamma):
    regularizer, module, anchors, fishers = three_months_of_ewc(
        OnlineEWC(lam=20.0, gamma=gamma))
    accumulated = gamma * (gamma * fishers[0] + fishers[1]) + fishers[2]
    kept = torch.cat([t.reshape(-1) for t in regularizer.importance_.values()])
    torch.testing.assert_close(kept, accumulated)
    theta = flat_params(module)
    expected = 20.0 / 2 * (accumulated * (theta - anchors[-1]).square()).sum()
    torch.testing.assert_close(regularizer.penalty(module), expected)


def test_module_changes_after_consolidation_are_reported():
    regularizer = L2().consolidate(FakeNet(nn.Linear(3, 2)), None, None)
    with pytest.raises(ValueError, match="has no parameter 'weight'"):
        regularizer.penalty(nn.Sequential(nn.Linear(3, 2)))
    with pytest.raises(ValueError, match="have 12 entries, but L2 was consolidated with 8"):
        regularizer.penalty(nn.Linear(5, 2))


# ----------------------------------------------------------------------
# importance estimates through the regularizers
# ----------------------------------------------------------------------
def tanh_net():
    torch.manual_seed(0)
    return FakeNet(nn.Sequential(nn.Linear(4, 6), nn.Tanh(), nn.Linear(6, 3)))


def test_hessian_negative_fraction_and_handling():
    X, y = torch.randn(50, 4, generator=torch.Generator().manual_seed(0)), torch.arange(50) % 3
    raw = {}
    for negative in ("keep", "clip", "abs"):
        regularizer = EWC(fisher="hessian", hessian_method="hutchinson", n_probes=3,
                          negative=negative, random_state=0)
        regularizer.consolidate(tanh_net(), X, y)
        raw[negative] = torch.cat([t.reshape(-1)
                                   for t in regularizer.importance_.values()])
        fraction = regularizer.negative_fraction_
        assert regularizer.negative_fractions_ == [fraction]
    assert 0 < fraction < 1
    assert (raw["keep"] < 0).float().mean().item() == pytest.approx(fraction)
    torch.testing.assert_close(raw["clip"], raw["keep"].clamp_min(0))
    torch.testing.assert_close(raw["abs"], raw["keep"].abs())


def test_importance_forms_call_the_estimators():
    X, y = torch.randn(40, 4, generator=torch.Generator().manual_seed(0)), torch.arange(40) % 3
    net = tanh_net()
    for fisher in ("empirical", "variance", "batch", "hessian"):
        regularizer = EWC(fisher=fisher, hessian_method="exact").consolidate(net, X, y)
        importance = regularizer.importance_
        assert set(importance) == {"0.weight", "0.bias", "2.weight", "2.bias"}
        assert all((t >= 0).all() for t in importance.values())
    expected = empirical_fisher(net.module_, X, y, CE)
    got = EWC().consolidate(net, X, y).importance_
    for name in expected:
        torch.testing.assert_close(got[name], expected[name])


def test_n_samples_subsample_is_seeded():
    X, y = torch.randn(60, 4, generator=torch.Generator().manual_seed(0)), torch.arange(60) % 3
    net = tanh_net()

    def importance(**params):
        regularizer = EWC(max_samples=20, **params).consolidate(net, X, y)
        return torch.cat([t.reshape(-1) for t in regularizer.importance_.values()])

    torch.testing.assert_close(importance(random_state=0), importance(random_state=0),
                               rtol=0, atol=0)
    assert not torch.equal(importance(random_state=0), importance(random_state=1))
    full = torch.cat([t.reshape(-1) for t in EWC().consolidate(net, X, y)
                      .importance_.values()])
    assert not torch.equal(importance(random_state=0), full)
    # an int seed draws afresh at each month, reproducibly
    regularizer = EWC(max_samples=20, random_state=0)
    first = regularizer.consolidate(net, X, y).importance_
    second = regularizer.consolidate(net, X, y).importance_
    assert not torch.equal(first["0.weight"], second["0.weight"])


class ProbabilityMLP(nn.Module):
    """Returns probabilities, as skorch's classifier expects with NLLLoss."""

    def __init__(self, n_features=20, n_classes=2):
        super().__init__()
        self.logits = nn.Sequential(nn.Linear(n_features, 8), nn.Tanh(),
                                    nn.Linear(8, n_classes))

    def forward(self, X):
        return torch.softmax(self.logits(X), dim=1)


def test_nll_loss_on_probabilities_matches_cross_entropy_on_logits(stream):
    X, y, months = stream
    clf = ContinualClassifier(ProbabilityMLP, criterion=nn.NLLLoss, regularizer=EWC(),
                              max_epochs=1, random_state=0)
    clf.partial_fit(X[months == 0], y[months == 0], classes=[0, 1])
    expected = empirical_fisher(clf.module_.logits, *month_tensors(X, y, months, 0), CE)
    got = clf.regularizer_.importance_
    for name, value in expected.items():
        torch.testing.assert_close(got["logits." + name], value, rtol=1e-3, atol=1e-7)


def test_criterion_without_per_sample_form_is_reported():
    net = FakeNet(nn.Linear(3, 2), criterion=lambda output, target: output.sum())
    with pytest.raises(TypeError, match="no 'reduction' attribute"):
        EWC().consolidate(net, torch.randn(5, 3), torch.zeros(5, dtype=torch.long))


# ----------------------------------------------------------------------
# training with the classifier
# ----------------------------------------------------------------------
@pytest.mark.parametrize("regularizer", [L2(lam=0.0), EWC(lam=0.0),
                                         OnlineEWC(lam=0.0, fisher="hessian",
                                                   hessian_method="hutchinson", n_probes=2)])
def test_zero_lam_trains_bit_identically_to_no_regularizer(stream, make_clf, regularizer):
    X, y, months = stream
    plain = fit_months(make_clf(), X, y, months, n_months=3)
    regularized = fit_months(make_clf(regularizer=regularizer), X, y, months, n_months=3)
    assert state_equal(plain.module_, regularized.module_)
    assert regularized.regularizer_.n_consolidations_ == 3


def test_huge_lam_holds_the_weights_at_the_anchor(stream, make_clf):
    X, y, months = stream
    distances = {}
    for name, regularizer in (("naive", None), ("L2", L2(lam=1e4)), ("EWC", EWC(lam=1e6))):
        clf = fit_months(make_clf(regularizer=regularizer, max_epochs=4), X, y, months, 1)
        anchor = flat_params(clf.module_)
        fisher = torch.cat([
            f.reshape(-1) for f in empirical_fisher(
                clf.module_, *month_tensors(X, y, months, 0), CE).values()])
        clf.partial_fit(X[months == 1], y[months == 1])
        moved = flat_params(clf.module_) - anchor
        distances[name] = (moved.abs().max().item(),
                           (fisher * moved.square()).sum().item())
    assert distances["L2"][0] < 0.05 * distances["naive"][0]
    assert distances["EWC"][1] < 0.05 * distances["naive"][1]


def test_validation_loss_excludes_the_penalty(stream, make_clf):
    X, y, months = stream
    clf = make_clf(regularizer=EWC(lam=1e4), train_split=ValidSplit(4))
    fit_months(clf, X, y, months, n_months=2)
    X_month, y_month = month_tensors(X, y, months, 1)
    _, valid = clf.get_split_datasets(X_month, y_month)
    X_valid, y_valid = valid.dataset.X[valid.indices], valid.dataset.y[valid.indices]
    with torch.no_grad():
        clf.module_.eval()
        expected = CE(clf.module_(X_valid), y_valid).item()
    penalty = clf.regularizer_.penalty(clf.module_).item()
    assert penalty > 1e-3
    assert clf.history[-1, "valid_loss"] == pytest.approx(expected, rel=1e-5)
    # the training loss does include it
    assert clf.history[-1, "train_loss"] > penalty


def test_joblib_round_trip_predicts_and_continues_identically(stream, make_clf):
    X, y, months = stream
    clf = fit_months(make_clf(regularizer=EWC(lam=100.0, max_samples=100)), X, y, months, 3)
    buffer = io.BytesIO()
    joblib.dump(clf, buffer)
    buffer.seek(0)
    loaded = joblib.load(buffer)
    np.testing.assert_array_equal(loaded.predict_proba(X), clf.predict_proba(X))
    assert loaded.regularizer_.n_consolidations_ == 3
    torch.testing.assert_close(loaded.regularizer_.penalty_weight_,
                               clf.regularizer_.penalty_weight_, rtol=0, atol=0)
    for estimator in (clf, loaded):
        estimator.partial_fit(X[months == 3], y[months == 3])
    assert state_equal(loaded.module_, clf.module_)
    torch.testing.assert_close(loaded.regularizer_.penalty_center_,
                               clf.regularizer_.penalty_center_, rtol=0, atol=0)


def test_refit_starts_from_fresh_regularizer_state(stream, make_clf):
    X, y, months = stream
    clf = make_clf(regularizer=OnlineEWC(lam=10.0))
    clf.fit(X, y, months=months)
    assert clf.regularizer_.n_consolidations_ == 6
    assert not hasattr(clf.regularizer, "n_consolidations_")
    clf.fit(X[months < 2], y[months < 2], months=months[months < 2])
    assert clf.regularizer_.n_consolidations_ == 2


def month_one_accuracy(regularizer, seed, n_samples_per_month=1000, **params):
    """Accuracy on month 1's held-out part after training on all 12 months."""
    X, y, months = make_drifting_stream(n_months=12, n_samples_per_month=n_samples_per_month,
                                        random_state=0)
    strata = months * 2 + y
    train, test = train_test_split(np.arange(len(y)), test_size=0.3, stratify=strata,
                                   random_state=0)
    clf = ContinualClassifier(regularizer=regularizer, random_state=seed, **params)
    clf.fit(X[train], y[train], months=months[train])
    first = test[months[test] == 0]
    return clf.score(X[first], y[first])


def test_ewc_and_l2_reduce_forgetting_of_the_first_month():
    small = dict(n_samples_per_month=150, module__hidden_units=(16,), max_epochs=4,
                 batch_size=64, lr=1e-2)
    naive = month_one_accuracy(None, seed=0, **small)
    assert naive < 0.6  # the stream does make naive fine-tuning forget
    for regularizer in (L2(lam=30.0), EWC(lam=1000.0)):
        assert month_one_accuracy(regularizer, seed=0, **small) > naive + 0.2


@pytest.mark.slow
@pytest.mark.parametrize("regularizer", [L2(lam=30.0), EWC(lam=1000.0),
                                         EWC(lam=300.0, fisher="hessian"),
                                         OnlineEWC(lam=1000.0)])
def test_regularizers_reduce_forgetting_on_the_full_stream(regularizer):
    """The default classifier on the default stream, three training seeds."""
    for seed in range(3):
        naive = naive_month_one_accuracy(seed)
        assert month_one_accuracy(clone(regularizer), seed=seed) > naive + 0.15


@functools.lru_cache
def naive_month_one_accuracy(seed):
    return month_one_accuracy(None, seed=seed)


# ----------------------------------------------------------------------
# the fast hook: add_penalty_grad, and the classifier's use of it
# ----------------------------------------------------------------------
def consolidated(kind):
    """A consolidated regularizer and its module, moved away from the anchor."""
    if kind != "L2":
        regularizer = EWC(lam=20.0) if kind == "EWC" else OnlineEWC(lam=20.0, gamma=0.5)
        regularizer, module, _, _ = three_months_of_ewc(regularizer)
        return regularizer, module
    torch.manual_seed(0)
    module = nn.Sequential(nn.Linear(4, 5), nn.Tanh(), nn.Linear(5, 2))
    regularizer = L2(lam=0.7).consolidate(FakeNet(module), None, None)
    with torch.no_grad():
        for p in module.parameters():
            p.add_(0.3 * torch.randn_like(p))
    return regularizer, module


@pytest.mark.parametrize("kind", ["L2", "EWC", "OnlineEWC"])
def test_add_penalty_grad_matches_autograd_of_penalty(kind):
    regularizer, module = consolidated(kind)
    params = list(module.parameters())
    expected_value = regularizer.penalty(module)
    expected = torch.autograd.grad(expected_value, params)
    start = [torch.randn_like(p) for p in params]
    for p, g in zip(params, start):
        p.grad = g.clone()
    params[0].grad = None  # created where missing
    for _ in range(2):  # the second call uses the cached parameter list
        value = regularizer.add_penalty_grad(module)
        assert value.shape == () and not value.requires_grad
        torch.testing.assert_close(value, expected_value.detach(), rtol=1e-6, atol=1e-8)
    for i, (p, g, s) in enumerate(zip(params, expected, start)):
        torch.testing.assert_close(p.grad, g + g if i == 0 else s + g + g,
                                   rtol=1e-6, atol=1e-7)


@pytest.mark.parametrize("regularizer", [L2(), EWC(), OnlineEWC(), L2(lam=0.0)])
def test_add_penalty_grad_is_zero_and_touches_no_gradient_without_a_penalty(regularizer):
    module = nn.Linear(3, 2).double()
    if regularizer.lam == 0:
        regularizer.consolidate(FakeNet(module), None, None)
        with torch.no_grad():
            module.weight.add_(1.0)
    module.weight.grad = torch.ones_like(module.weight)
    value = regularizer.add_penalty_grad(module)
    assert value.shape == () and value.item() == 0.0 and value.dtype == torch.float64
    assert module.bias.grad is None and (module.weight.grad == 1).all()


def test_add_penalty_grad_reports_module_changes():
    regularizer = L2().consolidate(FakeNet(nn.Linear(3, 2)), None, None)
    with pytest.raises(ValueError, match="has no parameter 'weight'"):
        regularizer.add_penalty_grad(nn.Sequential(nn.Linear(3, 2)))
    with pytest.raises(ValueError, match="have 12 entries, but L2 was consolidated with 8"):
        regularizer.add_penalty_grad(nn.Linear(5, 2))


@pytest.mark.parametrize("kind", ["L2", "EWC", "OnlineEWC"])
def test_add_penalty_grad_cache_survives_pickle_and_deepcopy(kind):
    regularizer, module = consolidated(kind)
    regularizer.add_penalty_grad(module)  # fills the cache
    for copied, copied_module in (
            copy.deepcopy((regularizer, module)),
            pickle.loads(pickle.dumps((regularizer, module)))):
        for m in (module, copied_module):
            m.zero_grad(set_to_none=True)
        value = regularizer.add_penalty_grad(module)
        copied_value = copied.add_penalty_grad(copied_module)
        torch.testing.assert_close(copied_value, value, rtol=0, atol=0)
        for p, q in zip(module.parameters(), copied_module.parameters()):
            torch.testing.assert_close(q.grad, p.grad, rtol=0, atol=0)
    assert clone(regularizer).get_params() == regularizer.get_params()


@pytest.mark.parametrize("regularizer", [L2(lam=10.0), EWC(lam=1e3),
                                         OnlineEWC(lam=1e3, gamma=0.5)])
def test_train_step_fast_path_matches_the_autograd_penalty(stream, make_clf, regularizer):
    X, y, months = stream
    clf = fit_months(make_clf(regularizer=regularizer), X, y, months, n_months=1)
    torch.manual_seed(1)
    with torch.no_grad():  # away from the anchor: a penalty and a gradient
        for p in clf.module_.parameters():
            p.add_(0.1 * torch.randn_like(p))
    X_batch, y_batch = (t[:64] for t in month_tensors(X, y, months, 1))
    params = list(clf.module_.parameters())
    clf.optimizer_.zero_grad()
    step = clf.train_step_single((X_batch, y_batch))
    fast = [p.grad.clone() for p in params]
    # the general path: autograd through loss + penalty
    clf.optimizer_.zero_grad()
    clf.module_.train()
    loss = CE(clf.module_(X_batch), y_batch)
    penalty = clf.regularizer_.penalty(clf.module_)
    assert penalty.item() > 1e-3
    (loss + penalty).backward()
    for f, p in zip(fast, params):
        torch.testing.assert_close(f, p.grad, rtol=1e-6, atol=1e-7)
    assert step["loss"].item() == pytest.approx(loss.item() + penalty.item(), rel=1e-6)


class AutogradEWC(EWC):
    """EWC through the general path: autograd of penalty, added in get_loss."""

    add_penalty_grad = None


def test_training_with_the_fast_path_matches_the_general_path(stream, make_clf):
    X, y, months = stream
    fast = fit_months(make_clf(regularizer=EWC(lam=1e3)), X, y, months, n_months=3)
    general = fit_months(make_clf(regularizer=AutogradEWC(lam=1e3)), X, y, months,
                         n_months=3)
    for p, q in zip(fast.module_.parameters(), general.module_.parameters()):
        torch.testing.assert_close(p, q, rtol=1e-5, atol=1e-6)
    # the recorded training loss includes the penalty on both paths
    np.testing.assert_allclose(fast.history[:, "train_loss"],
                               general.history[:, "train_loss"], rtol=1e-5)


# ----------------------------------------------------------------------
# CUDA
# ----------------------------------------------------------------------
@pytest.mark.cuda
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
@pytest.mark.parametrize("fisher", ["empirical", "hessian", "variance", "batch"])
def test_cuda_estimates_match_cpu_and_state_stays_on_the_device(stream, fisher):
    X, y, months = stream
    params = dict(lam=10.0, fisher=fisher, max_samples=100, hessian_method="hutchinson",
                  n_probes=5, random_state=0)
    clf = ContinualClassifier(device="cuda", module__hidden_units=(16,), max_epochs=2,
                              random_state=0, regularizer=EWC(**params))
    fit_months(clf, X, y, months, n_months=3)
    regularizer = clf.regularizer_
    for tensor in (regularizer.penalty_weight_, regularizer.penalty_center_,
                   *regularizer.anchor_.values(), *regularizer.importance_.values()):
        assert tensor.device.type == "cuda"
    assert regularizer.penalty(clf.module_).device.type == "cuda"
    # the same consolidation on CPU, from the same weights and rows
    X_month, y_month = month_tensors(X, y, months, 2)
    on_cuda = EWC(**params).consolidate(clf, X_month.cuda(), y_month.cuda())
    cpu_net = FakeNet(clf.module_.to("cpu"))
    on_cpu = EWC(**params).consolidate(cpu_net, X_month, y_month)
    for name, value in on_cpu.importance_.items():
        torch.testing.assert_close(on_cuda.importance_[name].cpu(), value,
                                   rtol=1e-4, atol=1e-7)
