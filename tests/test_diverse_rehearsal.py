"""DiverseRehearsalBuffer: strata, a budget per stratum and a share of outliers."""

import joblib
import numpy as np
import pytest
import torch
from sklearn.base import clone
from sklearn.preprocessing import StandardScaler

from skcl import ContinualClassifier, ContinualPipeline, DiverseRehearsalBuffer, RehearsalBuffer
from skcl.diverse_rehearsal import diverse_choice, hidden_representation
from skcl.modules import MLP
from skcl.utils._seeding import make_rng


def _families(n_rows=300, rare=4, seed=0):
    """Rows of three families, one of them rare, each family its own cloud."""
    rng = np.random.default_rng(seed)
    groups = np.array(["common"] * (n_rows - 2 * rare - 100) + ["other"] * 100
                      + ["rare"] * (2 * rare))
    centers = {"common": 0.0, "other": 5.0, "rare": -5.0}
    X = np.stack([rng.normal(centers[g], 1.0, size=3) for g in groups]).astype(np.float32)
    y = (groups != "common").astype(int)
    return X, y, groups


def test_diverse_choice_gives_equal_shares_and_keeps_each_strata_top_outliers():
    rng = np.random.default_rng(0)
    strata = np.repeat([0, 1, 2], [50, 30, 4])
    scores = rng.normal(size=len(strata))
    chosen = diverse_choice(strata, scores, budget=24, outlier_share=0.25, rng=rng)
    assert len(chosen) == len(set(chosen)) == 24
    # water-filling: the 4-row stratum keeps all, the others split the rest
    np.testing.assert_array_equal(np.bincount(strata[chosen]), [10, 10, 4])
    for stratum, share in ((0, 10), (1, 10)):
        rows = np.flatnonzero(strata == stratum)
        top = rows[np.argsort(-scores[rows])[:round(0.25 * share)]]
        assert set(top) <= set(chosen)
    # without outliers, the same shares, but no preference for high scores
    plain = diverse_choice(strata, scores, 24, 0.0, np.random.default_rng(0))
    np.testing.assert_array_equal(np.bincount(strata[plain]), [10, 10, 4])


def test_every_family_keeps_its_share_where_a_uniform_memory_loses_it():
    X, y, groups = _families()
    diverse = DiverseRehearsalBuffer(capacity=30, outlier_share=0.0, random_state=0)
    diverse.partial_fit(X, y, groups=groups)
    uniques, counts = np.unique(diverse.strata_, return_counts=True)
    assert len(uniques) == 3
    np.testing.assert_array_equal(np.sort(counts), [8, 11, 11])    # rare: all 8 rows
    assert (diverse.X_[:, 0] < -2.5).sum() == 8 and len(diverse.y_) == 30
    # the same family coming back joins its stratum
    diverse.partial_fit(X[-8:], y[-8:], groups=groups[-8:], month=1)
    assert diverse.n_strata_ == 3 and diverse.group_codes_["rare"] == 2
    reservoir = RehearsalBuffer(capacity=30, random_state=0).partial_fit(X, y)
    assert (reservoir.X_[:, 0] < -2.5).sum() < 4


def test_outlier_share_keeps_the_anomalous_rows():
    rng = np.random.default_rng(1)
    X = rng.normal(size=(400, 5)).astype(np.float32)
    X[:6] += 25.0                                    # six planted outliers
    y = rng.integers(0, 2, size=400)
    kept = {}
    for share in (0.0, 0.5):
        buffer = DiverseRehearsalBuffer(capacity=40, n_strata=1, outlier_share=share,
                                        representation="input", random_state=0)
        buffer.partial_fit(X, y)
        kept[share] = int((buffer.X_[:, 0] > 10).sum())
        assert len(buffer.outlier_scores_) == 40
    assert kept[0.5] == 6 and kept[0.0] < 4
    # 20 outlier slots: the month's 20 highest scores (same seed, same forest)
    # are all kept, beside 20 drawn uniformly from the rest
    replay = clone(buffer)
    replay.strata_rng_, replay.n_strata_, replay.group_codes_ = make_rng(0), 0, {}
    _, month_scores = replay._month_strata(X, 400, None, None)
    top20 = np.sort(month_scores)[::-1][:20]
    assert set(np.round(top20, 10)) <= set(np.round(buffer.outlier_scores_, 10))


def test_reproducible_with_random_state_and_strata_aligned_after_capacity_change():
    X, y, groups = _families(seed=3)
    buffers = [DiverseRehearsalBuffer(capacity=50, n_strata=4, representation="input",
                                      policy="per_month", random_state=7) for _ in range(2)]
    for buffer in buffers:
        for month in range(3):
            buffer.partial_fit(X + month, y, month=month)
    np.testing.assert_array_equal(buffers[0].X_, buffers[1].X_)
    np.testing.assert_array_equal(buffers[0].strata_, buffers[1].strata_)
    # policy="per_month": equal shares of months first
    assert sorted(np.bincount(buffers[0].sample_months_.astype(int))) == [16, 17, 17]
    assert len(np.unique(buffers[0].strata_)) == 12            # 4 clusters x 3 months
    buffers[0].set_params(capacity=20)
    assert len(buffers[0].strata_) == len(buffers[0].y_) == 20
    assert len(np.unique(buffers[0].strata_)) == 12


def test_hidden_representation_is_the_last_linear_layers_input():
    module = MLP(n_features=5, n_classes=2, hidden_units=(7, 3))
    X = torch.randn(10, 5)
    hidden = hidden_representation(module, X)
    assert hidden.shape == (10, 3)
    with torch.no_grad():
        expected = module.layers[:-1](X)
    np.testing.assert_allclose(hidden, expected.numpy(), rtol=1e-6)
    assert module.training                        # its mode is restored


def test_classifier_passes_its_hidden_representation(stream):
    X, y, months = stream
    clf = ContinualClassifier(module__hidden_units=(8,), max_epochs=1, random_state=0,
                              rehearsal=DiverseRehearsalBuffer(capacity=120, n_strata=3))
    clf.fit(X[months < 3], y[months < 3], months=months[months < 3])
    assert len(np.unique(clf.rehearsal_.strata_)) == 9
    assert clf.rehearsal_.X_.shape == (120, 20)
    again = clone(clf).fit(X[months < 3], y[months < 3], months=months[months < 3])
    np.testing.assert_array_equal(again.rehearsal_.X_, clf.rehearsal_.X_)


def test_errors_and_atomicity(tmp_path):
    X, y, groups = _families()
    buffer = DiverseRehearsalBuffer(capacity=30)
    with pytest.raises(ValueError, match="no embedding= was passed"):
        buffer.partial_fit(X, y)
    assert "X_" not in vars(buffer)
    buffer.partial_fit(X, y, groups=groups, embedding=X)
    before = (buffer.X_, buffer.strata_.copy(), buffer.n_strata_)
    with pytest.raises(ValueError, match="groups has shape"):
        buffer.partial_fit(X, y, groups=groups[:5], embedding=X, month=1)
    missing = np.asarray(groups, dtype=object).copy()
    missing[3] = None
    with pytest.raises(ValueError, match=r"groups has 1 missing labels .* at rows \[3\]"):
        buffer.partial_fit(X, y, groups=missing, embedding=X, month=1)
    with pytest.raises(ValueError, match="embedding has shape"):
        buffer.partial_fit(X, y, embedding=X[:5], month=1)
    rng_state = buffer.strata_rng_.bit_generator.state
    with pytest.raises(ValueError, match="extra"):
        # fails in the base buffer, after this month's clusters were drawn
        buffer.partial_fit(X, y, embedding=X, extra=np.zeros(3), month=1)
    assert buffer.strata_rng_.bit_generator.state == rng_state
    assert buffer.X_ is before[0] and buffer.n_strata_ == before[2]
    np.testing.assert_array_equal(buffer.strata_, before[1])
    with pytest.raises(ValueError, match="outlier_share"):
        DiverseRehearsalBuffer(outlier_share=2.0).partial_fit(X, y, groups=groups)
    joblib.dump(buffer, tmp_path / "b.joblib")
    loaded = joblib.load(tmp_path / "b.joblib")
    np.testing.assert_array_equal(loaded.strata_, buffer.strata_)
    assert clone(buffer).get_params()["n_strata"] == 8


def test_sparse_month_through_the_classifier(stream):
    import scipy.sparse as sp

    X, y, months = stream
    X_sparse = sp.csr_matrix(np.where(np.abs(X) > 1, X, 0).astype(np.float32))
    clf = ContinualClassifier(module__hidden_units=(8,), max_epochs=1, random_state=0,
                              rehearsal=DiverseRehearsalBuffer(capacity=100, n_strata=2))
    clf.fit(X_sparse[months < 2], y[months < 2], months=months[months < 2])
    assert sp.issparse(clf.rehearsal_.X_) and clf.rehearsal_.X_.shape == (100, 20)
    assert len(np.unique(clf.rehearsal_.strata_)) == 4


def test_families_reach_the_buffer_through_the_classifier():
    X, y, groups = _families()
    clf = ContinualClassifier(module__hidden_units=(8,), max_epochs=1, random_state=0,
                              rehearsal=DiverseRehearsalBuffer(capacity=30, outlier_share=0.0))
    clf.partial_fit(X, y, classes=[0, 1], month=0, groups=groups)
    buffer = clf.rehearsal_
    # one stratum per family, the rare family's 8 rows all kept
    assert sorted(buffer.group_codes_) == ["common", "other", "rare"]
    np.testing.assert_array_equal(np.sort(np.bincount(buffer.strata_)), [8, 11, 11])
    assert (buffer.X_[:, 0] < -2.5).sum() == 8
    # a family coming back in a later month joins its stratum
    clf.partial_fit(X[-8:], y[-8:], month=1, groups=groups[-8:])
    assert buffer.n_strata_ == 3
    # fit slices the groups by month: families of month 1 only (no clusters)
    months = np.repeat([0, 1], [150, 150])
    fitted = clone(clf).fit(X, y, months=months, groups=groups)
    assert fitted.rehearsal_.n_strata_ == len(set(groups[:150]) | set(groups[150:]))
    assert sorted(fitted.rehearsal_.group_codes_) == sorted(set(groups))
    # through a ContinualPipeline, fit's groups reach the final step's buffer
    pipe = ContinualPipeline([("scale", StandardScaler()), ("clf", clone(clf))])
    pipe.fit(X, y, months=months, groups=groups)
    assert sorted(pipe[-1].rehearsal_.group_codes_) == ["common", "other", "rare"]


def test_groups_are_refused_where_no_strategy_reads_them():
    X, y, groups = _families(n_rows=120)
    for rehearsal in (None, RehearsalBuffer(capacity=30)):
        clf = ContinualClassifier(module__hidden_units=(8,), max_epochs=1, random_state=0,
                                  rehearsal=rehearsal)
        with pytest.raises(ValueError, match=r"groups= was passed, but rehearsal=.*"
                                             r"DiverseRehearsalBuffer"):
            clf.partial_fit(X, y, classes=[0, 1], groups=groups)
        assert "classes_" not in vars(clf)
    clf = ContinualClassifier(module__hidden_units=(8,), max_epochs=1, random_state=0,
                              rehearsal=DiverseRehearsalBuffer(capacity=30))
    with pytest.raises(ValueError, match=r"groups has shape \(5,\), but X has 120 rows"):
        clf.fit(X, y, groups=groups[:5])
    bad = groups.astype(object)
    bad[3] = None
    with pytest.raises(ValueError, match=r"groups has 1 missing labels.*\[3\]"):
        clf.partial_fit(X, y, classes=[0, 1], groups=bad)
    assert "classes_" not in vars(clf)
