"""Class-incremental months: ``new_classes="grow"`` and every strategy's share of it."""

import io

import numpy as np
import pytest
import torch
from _helpers import fingerprint
from torch import nn

import skcl.classifier as classifier_module
from skcl import (
    AGEM,
    EWC,
    L2,
    MAS,
    SI,
    ContinualClassifier,
    DERpp,
    LwF,
    MonthlyAveragingClassifier,
    OnlineEWC,
    RehearsalBuffer,
)
from skcl._head_growth import HeadGrowth, find_output_layer
from skcl.modules import MLP
from skcl.regularizers import ImportanceRegularizer, Regularizer
from skcl.utils._labels import check_month_classes, encode_labels
from skcl.utils._sklearn_compat import InvalidParameterError

N_FEATURES = 6
# labels of each month: class 2 arrives at month 2, class 3 at month 4
MONTH_LABELS = [(0, 1), (0, 1), (0, 1, 2), (0, 1, 2), (0, 1, 2, 3)]


def _centers():
    return np.random.default_rng(1).normal(0, 3, size=(4, N_FEATURES))


def class_month(labels, n_rows=48, seed=0):
    """Well-separated Gaussian classes, ``n_rows`` rows of ``labels``."""
    rng = np.random.default_rng(seed)
    y = np.resize(np.asarray(labels), n_rows)
    rng.shuffle(y)
    X = (_centers()[y] + rng.normal(0, 0.5, (n_rows, N_FEATURES))).astype(np.float32)
    return X, y


def small_clf(**params):
    defaults = dict(module__hidden_units=(8,), max_epochs=2, batch_size=16, lr=1e-2,
                    random_state=0, new_classes="grow")
    defaults.update(params)
    if defaults["module__hidden_units"] is None:   # a module without that parameter
        del defaults["module__hidden_units"]
    return ContinualClassifier(**defaults)


STRATEGIES = {
    "finetune": {},
    "l2": {"regularizer": L2(lam=1.0)},
    "ewc": {"regularizer": EWC(lam=10.0)},
    "online_ewc": {"regularizer": OnlineEWC(lam=10.0)},
    "si": {"regularizer": SI(lam=1.0)},
    "mas": {"regularizer": MAS(lam=1.0)},
    "lwf": {"regularizer": LwF(lam=1.0)},
    "agem": {"regularizer": AGEM(memory=RehearsalBuffer(capacity=40), sample_size=16)},
    "derpp": {"regularizer": DERpp(memory=RehearsalBuffer(capacity=40))},
    "rehearsal": {"rehearsal": RehearsalBuffer(capacity=40, policy="class_balanced")},
    "retrain": {"update": "retrain"},
}


@pytest.mark.parametrize("name", list(STRATEGIES))
def test_every_strategy_trains_through_new_classes(name, monkeypatch):
    growths = []
    original = classifier_module.grow_output_layer

    def recording_growth(net, n_known, seed, required=True):
        before = {k: v.detach().clone() for k, v in net.module_.state_dict().items()}
        growth = original(net, n_known, seed, required=required)
        if growth is not None:
            regularizer = net.__dict__.get("regularizer_")
            weight = getattr(regularizer, "penalty_weight_", None)
            growths.append((growth, before, {k: v.detach().clone() for k, v
                                             in net.module_.state_dict().items()},
                            None if weight is None else (weight.clone(),
                                                         regularizer.param_names_,
                                                         regularizer.param_shapes_)))
        return growth

    monkeypatch.setattr(classifier_module, "grow_output_layer", recording_growth)
    clf = small_clf(**STRATEGIES[name])
    for month, labels in enumerate(MONTH_LABELS):
        clf.partial_fit(*class_month(labels, seed=month), month=month)

    assert clf.classes_.tolist() == [0, 1, 2, 3]
    assert clf.module_.layers[-1].out_features == 4
    if name != "retrain":   # retrain rebuilds the module at full size instead
        assert [(g.n_old, g.n_new) for g, *_ in growths] == [(2, 3), (3, 4)]
    for growth, before, after, penalty in growths:
        for key, axis in growth.class_axes.items():
            old_rows = after[key].narrow(axis, 0, growth.n_old)
            assert torch.equal(old_rows, before[key])      # the growth kept them
        for key in before:
            if key not in growth.class_axes:
                assert torch.equal(after[key], before[key])
        if isinstance(clf.regularizer_, ImportanceRegularizer):
            weight, names, shapes = penalty
            parts = dict(zip(names, weight.split([int(np.prod(s)) for s in shapes])))
            assert weight.numel() == sum(v.numel() for v in after.values())
            for key, axis in growth.class_axes.items():
                shape = shapes[names.index(key)]
                rows = parts[key].view(shape)
                new_rows = rows.narrow(axis, growth.n_old, growth.n_new - growth.n_old)
                assert torch.all(new_rows == 0)            # new rows: no anchor
                if name == "l2":
                    assert torch.all(rows.narrow(axis, 0, growth.n_old) == 1)

    X_test, y_test = class_month((0, 1, 2, 3), n_rows=80, seed=99)
    proba = clf.predict_proba(X_test)
    assert proba.shape == (80, 4)
    np.testing.assert_allclose(proba.sum(axis=1), 1.0, rtol=1e-5)
    old = np.isin(y_test, [0, 1])
    predicted_old = clf.predict(X_test[old])
    assert {0, 1} <= set(predicted_old.tolist())
    assert np.mean(predicted_old == y_test[old]) > 0.5


def test_growth_keeps_old_rows_and_optimizer_state_new_rows_fresh():
    clf = small_clf()
    clf.partial_fit(*class_month((0, 1)))
    head = clf.module_.layers[-1]
    weight, bias = head.weight.detach().clone(), head.bias.detach().clone()
    state = {k: v.clone() for k, v in clf.optimizer_.state[head.weight].items()}
    old_module, old_optimizer = clf.module_, clf.optimizer_

    clf.classes_ = np.array([0, 1, 2, 3])
    growth = classifier_module.grow_output_layer(clf, 2, seed=5)

    assert (growth.n_old, growth.n_new) == (2, 4)
    assert growth.class_axes == {"layers.2.weight": 0, "layers.2.bias": 0}
    new_head = clf.module_.layers[-1]
    assert new_head.weight.shape == (4, 8) and new_head.out_features == 4
    assert torch.equal(new_head.weight[:2], weight) and torch.equal(new_head.bias[:2], bias)
    # new rows drawn as nn.Linear(8, 2) draws them: U(-1/sqrt(8), 1/sqrt(8))
    assert new_head.weight[2:].abs().max() <= 8 ** -0.5
    assert not torch.equal(new_head.weight[2:], torch.zeros(2, 8))
    new_state = clf.optimizer_.state[new_head.weight]
    assert torch.equal(new_state["exp_avg"][:2], state["exp_avg"])
    assert torch.equal(new_state["exp_avg_sq"][:2], state["exp_avg_sq"])
    assert torch.all(new_state["exp_avg"][2:] == 0)
    assert torch.all(new_state["exp_avg_sq"][2:] == 0)
    assert torch.equal(new_state["step"], state["step"])
    # nothing changed in place: the old objects still hold the old head
    assert old_module.layers[-1].weight.shape == (2, 8)
    assert len(old_optimizer.state[old_module.layers[-1].weight]["exp_avg"]) == 2
    # the optimizer steps the new module's parameters
    optimized = {id(p) for group in clf.optimizer_.param_groups for p in group["params"]}
    assert optimized == {id(p) for p in clf.module_.parameters()}


def test_error_mode_refuses_and_leaves_estimator_unchanged():
    clf = small_clf(new_classes="error")
    clf.partial_fit(*class_month((0, 1)))
    before = fingerprint(clf)
    with pytest.raises(ValueError, match=r"labels \[2\] not in classes_ \[0, 1\].*"
                                          r"new_classes='grow'"):
        clf.partial_fit(*class_month((0, 1, 2), seed=1))
    assert fingerprint(clf) == before


def test_growth_rolled_back_with_a_failed_month():
    clf = small_clf(regularizer=EWC(lam=10.0))
    clf.partial_fit(*class_month((0, 1)))
    before = fingerprint(clf)
    X, y = class_month((0, 1, 2), seed=1)
    X[3, 0] = np.inf
    with pytest.raises(ValueError):
        clf.partial_fit(X, y)
    clf.set_params(lr=1e30)
    X, y = class_month((0, 1, 2), seed=1)
    with pytest.raises(FloatingPointError):
        clf.partial_fit(X * 1e30, y)
    clf.set_params(lr=1e-2)
    assert fingerprint(clf) == before
    clf.partial_fit(*class_month((0, 1, 2), seed=1))
    assert clf.classes_.tolist() == [0, 1, 2]


def test_classes_grow_in_order_of_arrival_and_encode():
    classes = check_month_classes(np.array(["b", "c"]), None)
    classes = check_month_classes(np.array(["a", "c", "z"]), None, classes,
                                  new_classes="grow")
    assert classes.tolist() == ["b", "c", "a", "z"]
    assert encode_labels(classes, np.array(["z", "b", "a"])).tolist() == [3, 0, 2]
    with pytest.raises(ValueError, match="dtype"):
        check_month_classes(np.array([5]), None, np.array(["b", "c"]), new_classes="grow")


def test_string_labels_grow_and_predict():
    clf = small_clf()
    names = np.array(["benign", "emotet", "zeus"])
    X, y = class_month((0, 1))
    clf.partial_fit(X, names[y])
    X, y = class_month((0, 1, 2), seed=1)
    clf.partial_fit(X, np.where(y == 2, "aaa-new", names[y]))
    assert clf.classes_.tolist() == ["benign", "emotet", "aaa-new"]
    assert set(clf.predict(X).tolist()) <= set(clf.classes_.tolist())


def test_an_integral_float_label_joins_integer_classes_as_an_integer():
    # a month labelled 2.0 after integer classes: classes_ stays integer, as
    # under new_classes="error" (predict would otherwise start answering floats)
    classes = check_month_classes(np.array([0.0, 2.0]), None, np.array([0, 1]),
                                  new_classes="grow")
    assert classes.tolist() == [0, 1, 2] and classes.dtype.kind == "i"
    assert check_month_classes(np.array([2.5]), None, np.array([0, 1]),
                               new_classes="grow").tolist() == [0.0, 1.0, 2.5]


def test_class_balanced_rehearsal_gives_new_class_its_share():
    clf = small_clf(rehearsal=RehearsalBuffer(capacity=30, policy="class_balanced"))
    for month, labels in enumerate(MONTH_LABELS[:3]):
        clf.partial_fit(*class_month(labels, seed=month))
    counts = np.bincount(clf.rehearsal_.y_, minlength=3)
    assert counts.tolist() == [10, 10, 10]


def test_derpp_pads_stored_logits_with_nan_and_masks_them():
    clf = small_clf(regularizer=DERpp(memory=RehearsalBuffer(capacity=200)))
    clf.partial_fit(*class_month((0, 1)))
    stored = clf.regularizer_.memory_.extra_.copy()
    clf.partial_fit(*class_month((0, 1, 2), seed=1))
    extra = clf.regularizer_.memory_.extra_
    assert extra.shape == (96, 3)
    old_rows = np.isnan(extra[:, 2])
    assert old_rows.sum() == 48
    np.testing.assert_array_equal(extra[old_rows, :2], stored)
    assert np.isfinite(clf.history_[-1]["train_loss"])


def test_lwf_distils_over_old_classes_only():
    lwf = LwF(lam=1.0, temperature=1.0)
    teacher = nn.Linear(3, 2)
    lwf.teacher_ = teacher.requires_grad_(False)
    X = torch.randn(5, 3)
    student = torch.cat([teacher(X), torch.randn(5, 1) * 10], dim=1)
    # the student agrees with the teacher on the old classes: no distillation loss
    assert lwf.batch_loss(None, X, None, student, 1).abs() < 1e-6


def test_custom_regularizer_without_grow_classes_is_refused():
    class Drift(Regularizer):
        def __init__(self, lam=1.0):
            self.lam = lam

        def penalty(self, module):
            if not hasattr(self, "anchor_"):
                return torch.zeros(())
            return sum(((p - a) ** 2).sum() for p, a in zip(module.parameters(),
                                                               self.anchor_))

        def consolidate(self, net, X, y):
            self.anchor_ = [p.detach().clone() for p in net.module_.parameters()]
            return self

    clf = small_clf(regularizer=Drift())
    clf.partial_fit(*class_month((0, 1)))
    before = fingerprint(clf)
    with pytest.raises(TypeError, match="Drift has fitted state and no grow_classes"):
        clf.partial_fit(*class_month((0, 1, 2), seed=1))
    assert fingerprint(clf) == before


class TwoHeads(nn.Module):
    """A module whose last registered linear layer is not its output layer."""

    def __init__(self, n_features=N_FEATURES, n_classes=2):
        super().__init__()
        self.out = nn.Linear(8, n_classes)
        self.body = nn.Linear(n_features, 8)

    def forward(self, X):
        return self.out(torch.relu(self.body(X)))

    def get_output_layer(self):
        return self.out


def test_user_module_output_layer_contract():
    clf = small_clf(module=TwoHeads, module__hidden_units=None)
    clf.partial_fit(*class_month((0, 1)))
    clf.partial_fit(*class_month((0, 1, 2), seed=1))
    assert clf.module_.out.weight.shape == (3, 8)
    assert clf.module_.body.weight.shape == (8, N_FEATURES)
    assert find_output_layer(clf.module_)[0] == "out"

    class NoLinear(nn.Module):
        def __init__(self):
            super().__init__()
            self.scale = nn.Parameter(torch.ones(2))

        def forward(self, X):
            return X[:, :2] * self.scale

    clf = small_clf(module=NoLinear(), module__hidden_units=None)
    clf.partial_fit(*class_month((0, 1)))
    with pytest.raises(TypeError, match="NoLinear has no nn.Linear.*get_output_layer"):
        clf.partial_fit(*class_month((0, 1, 2), seed=1))
    assert clf.classes_.tolist() == [0, 1]


def test_module_instance_grows_and_reloads():
    clf = small_clf(module=nn.Sequential(nn.Linear(N_FEATURES, 8), nn.ReLU(),
                                         nn.Linear(8, 2)), module__hidden_units=None)
    clf.partial_fit(*class_month((0, 1)))
    clf.partial_fit(*class_month((0, 1, 2), seed=1))
    X, _ = class_month((0, 1, 2), seed=7)
    buffer = io.BytesIO()
    clf.save_weights(buffer)
    buffer.seek(0)
    loaded = small_clf(module=clf.module, module__hidden_units=None,
                       new_classes="error").load_weights(buffer)
    assert loaded.classes_.tolist() == [0, 1, 2]
    np.testing.assert_array_equal(loaded.predict_proba(X), clf.predict_proba(X))


def test_module_instance_growth_is_reproducible_and_the_instance_untouched():
    """Classes at months 2 and 4: an instance's runs are bit-identical, as a class's.

    The instance's weights are the starting point as the user drew them; the
    copies, their growth (seeded from random_state) and the training are skcl's.
    """
    instance = MLP(n_features=N_FEATURES, n_classes=2, hidden_units=(8,), dropout=0.1)
    weights = {k: v.clone() for k, v in instance.state_dict().items()}

    def run(module):
        clf = small_clf(module=module, module__hidden_units=None,
                        regularizer=EWC(lam=10.0), rehearsal=RehearsalBuffer(capacity=30))
        for month, labels in enumerate(MONTH_LABELS):
            clf.partial_fit(*class_month(labels, seed=month))
        assert clf.classes_.tolist() == [0, 1, 2, 3]
        return clf

    def state(clf):
        return [fingerprint(part) for part in (clf.module_, clf.regularizer_, clf.rehearsal_)]

    first, second = run(instance), run(instance)
    assert state(first) == state(second)
    for a, b in zip(first.optimizer_.state_dict()["state"].values(),
                    second.optimizer_.state_dict()["state"].values()):
        assert all(torch.equal(a[key], b[key]) for key in a)
    X, _ = class_month((0, 1, 2, 3), seed=7)
    np.testing.assert_array_equal(first.predict_proba(X), second.predict_proba(X))
    # the user's object is neither trained nor grown
    assert instance.layers[-1].out_features == 2
    assert all(torch.equal(v, weights[k]) for k, v in instance.state_dict().items())
    # an instance built the same way (same torch seed) gives the same run
    torch.manual_seed(0)
    one = run(MLP(n_features=N_FEATURES, n_classes=2, hidden_units=(8,), dropout=0.1))
    torch.manual_seed(0)
    other = run(MLP(n_features=N_FEATURES, n_classes=2, hidden_units=(8,), dropout=0.1))
    assert state(one) == state(other)


def test_saved_grown_head_reloads_and_mismatch_names_classes(tmp_path):
    clf = small_clf()
    for month, labels in enumerate(MONTH_LABELS):
        clf.partial_fit(*class_month(labels, seed=month))
    path = tmp_path / "grown.pt"
    clf.save_weights(path)
    X, _ = class_month((0, 1, 2, 3), seed=7)
    loaded = small_clf(new_classes="error").load_weights(path)
    assert loaded.classes_.tolist() == [0, 1, 2, 3]
    np.testing.assert_array_equal(loaded.predict_proba(X), clf.predict_proba(X))
    # a module saved with module__n_classes=2 grew: the same parameters reload it
    grown = small_clf(module__n_classes=2).load_weights(path)
    np.testing.assert_array_equal(grown.predict_proba(X), clf.predict_proba(X))
    with pytest.raises(ValueError, match=r"n_classes=4 for the classes \[0, 1, 2, 3\]"):
        small_clf(module__hidden_units=(5,)).load_weights(path)


def test_snapshot_before_growth_predicts_its_classes():
    clf = small_clf(keep_snapshots=True)
    clf.partial_fit(*class_month((0, 1)))
    clf.partial_fit(*class_month((0, 1, 2), seed=1))
    first = clf.get_snapshot_estimator(0)
    X, _ = class_month((0, 1, 2), seed=7)
    assert first.classes_.tolist() == [0, 1]
    assert first.predict_proba(X).shape == (48, 2)
    assert clf.predict_proba(X).shape == (48, 3)


def test_fit_grows_with_the_stream():
    X = np.vstack([class_month(labels, seed=m)[0] for m, labels in enumerate(MONTH_LABELS)])
    y = np.concatenate([class_month(labels, seed=m)[1]
                        for m, labels in enumerate(MONTH_LABELS)])
    months = np.repeat(np.arange(len(MONTH_LABELS)), 48)
    clf = small_clf(regularizer=EWC(lam=10.0)).fit(X, y, months=months)
    assert clf.classes_.tolist() == [0, 1, 2, 3]
    assert clf.regularizer_.param_shapes_[-1] == (4,)


def test_averaging_aligns_members_columns():
    clf = MonthlyAveragingClassifier(small_clf(max_epochs=1), new_classes="grow",
                                     random_state=0)
    for month, labels in enumerate(MONTH_LABELS):
        clf.partial_fit(*class_month(labels, seed=month))
    X, _ = class_month((0, 1, 2, 3), seed=7)
    proba = clf.predict_proba(X)
    assert proba.shape == (48, 4)
    np.testing.assert_allclose(proba.sum(axis=1), 1.0, rtol=1e-6)
    # the first months' models never saw class 3: only the last one gives it mass
    assert clf.estimators_[0].classes_.tolist() == [0, 1]
    with pytest.raises(ValueError, match="not in classes_"):
        MonthlyAveragingClassifier(small_clf(max_epochs=1)).partial_fit(
            *class_month((0, 1))).partial_fit(*class_month((0, 1, 2), seed=1))


def test_head_growth_pad_flat_matches_per_parameter_padding():
    growth = HeadGrowth(n_old=2, n_new=3, class_axes={"w": 1, "b": 0})
    w, b, other = torch.arange(8.).view(4, 2), torch.tensor([1., 2.]), torch.ones(3)
    flat = torch.cat([other, w.reshape(-1), b])
    grown = growth.pad_flat(flat, ["o", "w", "b"], [(3,), (4, 2), (2,)], fill=-1.0)
    expected = torch.cat([other, growth.pad("w", w, -1.0).reshape(-1),
                          torch.tensor([1., 2., -1.])])
    assert torch.equal(grown, expected)
    assert growth.grown_shape("w", (4, 2)) == (4, 3)


def test_forgetting_scorer_reads_snapshots_across_growths():
    from skcl import ForgettingScorer

    clf = small_clf(keep_snapshots=True)
    X_parts, y_parts, month_parts = [], [], []
    for month, labels in enumerate(MONTH_LABELS):
        X, y = class_month(labels, seed=month)
        clf.partial_fit(X, y, month=month)
        X_test, y_test = class_month(labels, n_rows=20, seed=50 + month)
        X_parts.append(X_test)
        y_parts.append(y_test)
        month_parts.append(np.full(20, month))
    X, y, months = np.vstack(X_parts), np.concatenate(y_parts), np.concatenate(month_parts)
    forgetting = ForgettingScorer(aggregate="neg_forgetting")(clf, X, y, months=months)
    assert np.isfinite(forgetting)


def test_new_classes_changed_between_months_is_applied():
    clf = small_clf(new_classes="error")
    clf.partial_fit(*class_month((0, 1)))
    clf.set_params(new_classes="grow").partial_fit(*class_month((0, 1, 2), seed=1))
    assert clf.classes_.tolist() == [0, 1, 2]
    clf.set_params(new_classes="error").partial_fit(*class_month((0, 2), seed=2),
                                                     classes=[2, 0, 1])
    with pytest.raises(ValueError, match=r"labels \[3\] not in classes_ \[0, 1, 2\]"):
        clf.partial_fit(*class_month((0, 3), seed=3))
    with pytest.raises(InvalidParameterError, match="new_classes"):
        small_clf(new_classes="sometimes").partial_fit(*class_month((0, 1)))


@pytest.mark.cuda
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
@pytest.mark.parametrize("name", ["ewc", "derpp", "lwf", "rehearsal"])
def test_growth_on_cuda_keeps_everything_on_the_device(name):
    clf = small_clf(device="cuda", **STRATEGIES[name])
    for month, labels in enumerate(MONTH_LABELS):
        clf.partial_fit(*class_month(labels, seed=month))
    head = clf.module_.layers[-1]
    assert head.weight.device.type == "cuda" and head.out_features == 4
    state = clf.optimizer_.state[head.weight]
    assert state["exp_avg"].device.type == "cuda" and state["exp_avg"].shape == (4, 8)
    regularizer = clf.regularizer_
    if regularizer is not None and hasattr(regularizer, "penalty_center_"):
        assert regularizer.penalty_center_.device.type == "cuda"
    proba = clf.predict_proba(class_month((0, 1, 2, 3), seed=9)[0])
    np.testing.assert_allclose(proba.sum(axis=1), 1.0, rtol=1e-5)
