"""RehearsalBuffer: capacity, sampling policies, replay mixing, persistence."""

import copy
import os
import pickle

import joblib
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from sklearn.base import clone
from sklearn.exceptions import NotFittedError
from sklearn.model_selection import train_test_split

from skcl import EWC, ContinualClassifier, RehearsalBuffer
from skcl.datasets import make_drifting_stream
from skcl.utils._sklearn_compat import InvalidParameterError

POLICIES = ["reservoir", "per_month", "class_balanced"]


def make_batches(sizes, n_features=3, positive_fraction=0.3, seed=0):
    """Batches whose column 0 is a global row id, with labels and month labels."""
    rng = np.random.default_rng(seed)
    batches, start = [], 0
    for month, size in enumerate(sizes):
        X = rng.normal(size=(size, n_features))
        X[:, 0] = np.arange(start, start + size)
        y = (rng.random(size) < positive_fraction).astype(np.int64)
        batches.append((X, y, month))
        start += size
    return batches


def fill(buffer, batches):
    for X, y, month in batches:
        buffer.partial_fit(X, y, month=month)
    return buffer


def stored_ids(buffer):
    return buffer.X_[:, 0].astype(int)


# ----------------------------------------------------------------------
# capacity and what is stored
# ----------------------------------------------------------------------
@settings(max_examples=40, deadline=None)
@given(
    sizes=st.lists(st.integers(1, 40), min_size=1, max_size=8),
    capacity=st.integers(1, 60),
    policy=st.sampled_from(POLICIES),
    seed=st.integers(0, 1000),
)
def test_capacity_is_never_exceeded_and_rows_are_genuine(sizes, capacity, policy, seed):
    batches = make_batches(sizes, seed=seed)
    buffer = RehearsalBuffer(capacity=capacity, policy=policy, random_state=seed)
    seen = 0
    for X, y, month in batches:
        buffer.partial_fit(X, y, month=month)
        seen += len(y)
        assert len(buffer.y_) == len(buffer.sample_months_) == len(buffer.X_)
        assert len(buffer.y_) == min(capacity, seen)
        assert buffer.n_samples_seen_ == seen
    all_X = np.concatenate([X for X, _, _ in batches])
    all_y = np.concatenate([y for _, y, _ in batches])
    all_months = np.concatenate([np.full(len(y), m) for _, y, m in batches])
    ids = stored_ids(buffer)
    assert len(np.unique(ids)) == len(ids)
    np.testing.assert_array_equal(buffer.X_, all_X[ids])
    np.testing.assert_array_equal(buffer.y_, all_y[ids])
    np.testing.assert_array_equal(buffer.sample_months_, all_months[ids])


def test_capacity_none_keeps_everything():
    batches = make_batches([30, 50, 20])
    buffer = fill(RehearsalBuffer(capacity=None, random_state=0), batches)
    np.testing.assert_array_equal(np.sort(stored_ids(buffer)), np.arange(100))
    assert buffer.n_samples_seen_per_month_ == {0: 30, 1: 50, 2: 20}


def _inclusion_frequency(policy, sizes, capacity, n_runs):
    batches = make_batches(sizes, seed=1)
    counts = np.zeros(sum(sizes))
    for run in range(n_runs):
        buffer = fill(RehearsalBuffer(capacity=capacity, policy=policy, random_state=run),
                      batches)
        counts[stored_ids(buffer)] += 1
    return counts / n_runs, buffer, batches


def test_reservoir_keeps_every_seen_row_with_equal_probability():
    # 180 rows in batches of uneven size, capacity 45: each row kept w.p. 1/4.
    # "keep the last 45 rows" gives 0 for old rows; "replace with prob 1/2"
    # drives the first batches towards 0; both fail the halves and the bound.
    sizes = [10, 50, 5, 40, 30, 45]
    frequency, _, _ = _inclusion_frequency("reservoir", sizes, capacity=45, n_runs=300)
    expected = 45 / 180
    assert abs(frequency[:90].mean() - expected) < 0.02
    assert abs(frequency[90:].mean() - expected) < 0.02
    # per row: standard deviation sqrt(.25 * .75 / 300) = 0.025
    assert np.abs(frequency - expected).max() < 0.11
    starts = np.cumsum([0, *sizes])
    batch_means = [frequency[a:b].mean() for a, b in zip(starts[:-1], starts[1:])]
    np.testing.assert_allclose(batch_means, expected, atol=0.05)
    # A short stream shows off-by-one errors (slot drawn from 0..t-1 instead
    # of 0..t keeps row 2 for sure): 8 rows, 2 slots, each kept w.p. 1/4.
    frequency, _, _ = _inclusion_frequency("reservoir", [8], capacity=2, n_runs=400)
    assert np.abs(frequency - 0.25).max() < 0.08


@pytest.mark.parametrize("policy", ["per_month", "class_balanced"])
def test_shares_are_uniform_samples_within_each_group(policy):
    # The group shares are fixed by the counts, so each row of a group should
    # be kept with probability (group's final share) / (group's rows seen).
    sizes = [60, 20, 90, 40]
    frequency, buffer, batches = _inclusion_frequency(policy, sizes, capacity=60,
                                                      n_runs=200)
    keys = (np.concatenate([np.full(len(y), m) for _, y, m in batches])
            if policy == "per_month" else np.concatenate([y for _, y, _ in batches]))
    stored_keys = buffer.sample_months_ if policy == "per_month" else buffer.y_
    for key in np.unique(keys):
        rows = np.flatnonzero(keys == key)
        expected = np.sum(stored_keys == key) / len(rows)
        half = len(rows) // 2
        assert abs(frequency[rows[:half]].mean() - expected) < 0.05
        assert abs(frequency[rows[half:]].mean() - expected) < 0.05


def test_per_month_keeps_equal_shares_and_shrinks_old_months():
    batches = make_batches([100, 30, 200, 80])
    buffer = RehearsalBuffer(capacity=120, policy="per_month", random_state=0)
    expected_after = [
        {0: 100},
        {0: 90, 1: 30},             # month 1 has only 30 rows and lends the rest
        {0: 45, 1: 30, 2: 45},
        {0: 30, 1: 30, 2: 30, 3: 30},
    ]
    for (X, y, month), expected in zip(batches, expected_after):
        buffer.partial_fit(X, y, month=month)
        months, counts = np.unique(buffer.sample_months_, return_counts=True)
        assert dict(zip(months.tolist(), counts.tolist())) == expected


def test_per_month_stores_each_new_month_even_below_one_row_per_month():
    buffer = RehearsalBuffer(capacity=3, policy="per_month", random_state=0)
    for X, y, month in make_batches([10] * 5):
        buffer.partial_fit(X, y, month=month)
        assert month in buffer.sample_months_
    assert sorted(buffer.sample_months_.tolist()) == [2, 3, 4]


def test_class_balanced_keeps_equal_class_shares():
    batches = make_batches([200, 200, 200], positive_fraction=0.1)
    buffer = fill(RehearsalBuffer(capacity=60, policy="class_balanced", random_state=0),
                  batches)
    np.testing.assert_array_equal(np.bincount(buffer.y_), [30, 30])
    reservoir = fill(RehearsalBuffer(capacity=60, random_state=0), batches)
    assert np.bincount(reservoir.y_)[1] < 15


def test_a_new_class_takes_its_share_from_the_others():
    X = np.arange(30, dtype=float).reshape(-1, 1)
    buffer = RehearsalBuffer(capacity=12, policy="class_balanced", random_state=0)
    buffer.partial_fit(X[:20], np.repeat([0, 1], 10))
    buffer.partial_fit(X[20:], np.full(10, 2))
    np.testing.assert_array_equal(np.bincount(buffer.y_), [4, 4, 4])


def test_month_none_uses_a_running_counter_and_labels_can_be_strings():
    buffer = RehearsalBuffer(capacity=50, policy="per_month", random_state=0)
    X = np.zeros((10, 2))
    buffer.partial_fit(X, np.arange(10) % 2)
    buffer.partial_fit(X, np.arange(10) % 2)
    assert list(buffer.n_samples_seen_per_month_) == [0, 1]
    labelled = RehearsalBuffer(capacity=15, policy="per_month", random_state=0)
    labelled.partial_fit(X, np.arange(10) % 2, month="2024-01")
    labelled.partial_fit(X, np.arange(10) % 2, month="2024-02")
    assert sorted(set(labelled.sample_months_.tolist())) == ["2024-01", "2024-02"]


# ----------------------------------------------------------------------
# sample and fit_resample
# ----------------------------------------------------------------------
def test_sample_without_and_with_repetition():
    buffer = fill(RehearsalBuffer(capacity=40, random_state=0), make_batches([25, 25]))
    X, y, months = buffer.sample(30)
    assert len(np.unique(X[:, 0])) == 30
    _, counts = np.unique(buffer.sample(100)[0][:, 0], return_counts=True)
    assert len(counts) == 40 and set(counts) == {2, 3}   # 100 = 2 * 40 + 20
    assert buffer.sample(0)[0].shape == (0, 3)
    with pytest.raises(NotFittedError, match="partial_fit"):
        RehearsalBuffer().sample(3)
    with pytest.raises(ValueError, match="n_samples=-1"):
        buffer.sample(-1)


@pytest.mark.parametrize(
    "epoch_size, replay_ratio, n_new, n_replayed",
    [("fixed", 0.25, 75, 25), ("fixed", 0.5, 50, 50), ("fixed", 0.75, 25, 75),
     ("grow", 0.25, 100, 33), ("grow", 0.5, 100, 100), ("grow", 0.75, 100, 300)],
)
def test_fit_resample_row_counts_and_replayed_rows_are_genuine(
        epoch_size, replay_ratio, n_new, n_replayed):
    past = make_batches([80, 80])
    buffer = fill(RehearsalBuffer(capacity=120, replay_ratio=replay_ratio,
                                  epoch_size=epoch_size, random_state=0), past)
    X_new, y_new, _ = make_batches([160, 100])[1]        # ids 160..259: new rows
    stored_before = buffer.X_.copy()
    X_mix, y_mix = buffer.fit_resample(X_new, y_new)
    ids = X_mix[:, 0].astype(int)
    is_new = ids >= 160
    assert len(ids) == n_new + n_replayed
    assert is_new.sum() == n_new and (~is_new).sum() == n_replayed
    assert len(np.unique(ids[is_new])) == n_new                     # a subset, no repeats
    np.testing.assert_array_equal(X_mix[is_new], X_new[ids[is_new] - 160])
    np.testing.assert_array_equal(y_mix[is_new], y_new[ids[is_new] - 160])
    past_y = np.concatenate([y for _, y, _ in past])
    assert np.isin(ids[~is_new], stored_ids(buffer)).all()         # genuine stored rows
    np.testing.assert_array_equal(y_mix[~is_new], past_y[ids[~is_new]])
    assert not np.all(np.diff(ids) > 0)                             # shuffled
    np.testing.assert_array_equal(buffer.X_, stored_before)         # memory unchanged
    assert buffer.n_samples_seen_ == 160


def test_fit_resample_draws_afresh_each_call():
    buffer = fill(RehearsalBuffer(capacity=100, random_state=0), make_batches([100]))
    X_new, y_new, _ = make_batches([100, 50])[1]
    first, _ = buffer.fit_resample(X_new, y_new)
    second, _ = buffer.fit_resample(X_new, y_new)
    assert not np.array_equal(first, second)


def test_fit_resample_returns_new_data_unchanged_without_replay():
    X, y, _ = make_batches([20])[0]
    X_out, y_out = RehearsalBuffer(random_state=0).fit_resample(X, y)
    np.testing.assert_array_equal(X_out, X)
    np.testing.assert_array_equal(y_out, y)
    buffer = fill(RehearsalBuffer(replay_ratio=0.0, random_state=0), make_batches([30]))
    X_out, y_out = buffer.fit_resample(X, y)
    np.testing.assert_array_equal(X_out, X)
    np.testing.assert_array_equal(y_out, y)


def test_standalone_use_in_front_of_an_sklearn_model():
    from sklearn.linear_model import SGDClassifier

    buffer = RehearsalBuffer(capacity=200, replay_ratio=0.5, random_state=0)
    model = SGDClassifier(random_state=0)
    for X, y, month in make_batches([100, 100, 100]):
        X_mix, y_mix = buffer.fit_resample(X, y)
        model.partial_fit(X_mix, y_mix, classes=[0, 1])
        buffer.partial_fit(X, y, month=month)
    assert buffer.n_samples_seen_ == 300


# ----------------------------------------------------------------------
# copies, atomicity, validation
# ----------------------------------------------------------------------
@pytest.mark.parametrize("capacity", [None, 50])
def test_partial_fit_copies_the_callers_arrays(capacity):
    X, y, _ = make_batches([40])[0]
    buffer = RehearsalBuffer(capacity=capacity, random_state=0).partial_fit(X, y)
    assert not np.shares_memory(buffer.X_, X) and not np.shares_memory(buffer.y_, y)
    kept = buffer.X_.copy()
    X[:] = -1
    y[:] = 7
    np.testing.assert_array_equal(buffer.X_, kept)
    assert set(buffer.y_) <= {0, 1}
    assert not buffer.X_.flags.writeable


def _snapshot(buffer):
    state = copy.deepcopy(buffer.__dict__)
    state["rng_"] = buffer.rng_.bit_generator.state
    return state


def test_partial_fit_is_atomic(monkeypatch):
    batches = make_batches([30, 30])
    buffer = fill(RehearsalBuffer(capacity=40, random_state=0), batches[:1])
    before = _snapshot(buffer)
    X, y, _ = batches[1]
    bad_X = X.copy()
    bad_X[3, 1] = np.nan
    with pytest.raises(ValueError, match="nan"):
        buffer.partial_fit(bad_X, y)

    def fail(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(RehearsalBuffer, "_gather", fail)
    with pytest.raises(KeyboardInterrupt):
        buffer.partial_fit(X, y)   # fails after drawing from the generator
    after = _snapshot(buffer)
    assert after.keys() == before.keys()
    for name, value in before.items():
        if isinstance(value, np.ndarray):
            np.testing.assert_array_equal(after[name], value)
        else:
            assert after[name] == value, name
    fresh = RehearsalBuffer(random_state=0)
    with pytest.raises(KeyboardInterrupt):
        fresh.partial_fit(X, y)
    assert not [name for name in vars(fresh) if name.endswith("_")]


def test_invalid_parameters_raise_sklearn_errors():
    X, y, _ = make_batches([10])[0]
    for params, name in [({"capacity": 0}, "capacity"), ({"replay_ratio": 1.0}, "replay_ratio"),
                         ({"replay_ratio": -0.1}, "replay_ratio"),
                         ({"policy": "fifo"}, "policy"), ({"epoch_size": "big"}, "epoch_size")]:
        with pytest.raises(InvalidParameterError, match=name):
            RehearsalBuffer(**params).partial_fit(X, y)
        with pytest.raises(InvalidParameterError, match=name):
            RehearsalBuffer(**params).fit_resample(X, y)


def test_invalid_data_raises_with_the_value_and_the_fix(tmp_path):
    X, y, _ = make_batches([10])[0]
    buffer = RehearsalBuffer(random_state=0).partial_fit(X, y)
    with pytest.raises(ValueError, match="X has 4 features, but RehearsalBuffer is "
                                         "expecting 3 features.*same columns"):
        buffer.partial_fit(np.zeros((5, 4)), np.zeros(5))
    with pytest.raises(ValueError, match="X has 4 features"):
        buffer.fit_resample(np.zeros((5, 4)), np.zeros(5))
    with pytest.raises(ValueError, match="X has 10 rows but y has 9 labels"):
        buffer.partial_fit(X, y[:9])
    bad = X.copy()
    bad[2, 0] = np.inf
    with pytest.raises(ValueError, match="inf.*row 2, column 0.*impute or drop"):
        buffer.partial_fit(bad, y)
    with pytest.raises(ValueError, match="y has dtype <U1.*one kind"):
        buffer.partial_fit(X, np.array(list("ababababab")))
    with pytest.raises(ValueError, match="y has dtype <U1.*one kind"):
        buffer.fit_resample(X, np.array(list("ababababab")))
    with pytest.raises(ValueError, match="month=.* is not a single label"):
        buffer.partial_fit(X, y, month=[1, 2])
    with pytest.raises(ValueError, match="memmap_dir=.*not an existing directory"):
        RehearsalBuffer(memmap_dir=str(tmp_path / "missing")).partial_fit(X, y)
    assert buffer.n_samples_seen_ == 10


# ----------------------------------------------------------------------
# reproducibility and persistence
# ----------------------------------------------------------------------
def test_random_state_makes_runs_reproducible():
    batches = make_batches([50, 70, 40])
    a = fill(RehearsalBuffer(capacity=60, random_state=3), batches)
    b = fill(RehearsalBuffer(capacity=60, random_state=3), batches)
    c = fill(RehearsalBuffer(capacity=60, random_state=4), batches)
    np.testing.assert_array_equal(a.X_, b.X_)
    assert not np.array_equal(np.sort(stored_ids(a)), np.sort(stored_ids(c)))
    np.testing.assert_array_equal(a.fit_resample(*batches[0][:2])[0],
                                  b.fit_resample(*batches[0][:2])[0])


@pytest.mark.parametrize("memmap", [False, True])
def test_joblib_round_trip_continues_identically(tmp_path, memmap):
    memmap_dir = str(tmp_path) if memmap else None
    batches = make_batches([50, 70, 40, 60])
    buffer = fill(RehearsalBuffer(capacity=60, memmap_dir=memmap_dir, random_state=0),
                  batches[:2])
    joblib.dump(buffer, tmp_path / "buffer.joblib")
    loaded = joblib.load(tmp_path / "buffer.joblib")
    for continued in (buffer, loaded):
        fill(continued, batches[2:])
    np.testing.assert_array_equal(loaded.X_, buffer.X_)
    np.testing.assert_array_equal(loaded.sample_months_, buffer.sample_months_)
    np.testing.assert_array_equal(loaded.fit_resample(*batches[0][:2])[0],
                                  buffer.fit_resample(*batches[0][:2])[0])
    assert loaded.n_samples_seen_per_month_ == buffer.n_samples_seen_per_month_


def test_memmap_mode_matches_memory_mode_and_leaves_no_files(tmp_path):
    batches = make_batches([50, 70, 40])
    in_memory = fill(RehearsalBuffer(capacity=60, random_state=0), batches)
    mapped = fill(RehearsalBuffer(capacity=60, memmap_dir=tmp_path, random_state=0),
                  batches)
    assert isinstance(mapped.X_, np.memmap) and not isinstance(in_memory.X_, np.memmap)
    np.testing.assert_array_equal(mapped.X_, in_memory.X_)
    assert os.listdir(tmp_path) == []        # anonymous temporary files only
    assert copy.deepcopy(mapped).X_ is mapped.X_   # read-only: copies share the map
    X_past, _, _ = mapped.sample(10)
    assert type(X_past) is np.ndarray
    mapped_loaded = joblib.load(_dump(mapped, tmp_path), mmap_mode="r")
    fill(mapped_loaded, batches[:1])
    assert isinstance(mapped_loaded.X_, np.memmap) and len(mapped_loaded.y_) == 60


def _dump(obj, folder):
    path = folder / "dumped.joblib"
    joblib.dump(obj, path)
    return path


def test_clone_drops_stored_rows():
    buffer = fill(RehearsalBuffer(capacity=20, random_state=0), make_batches([30]))
    assert not hasattr(clone(buffer), "X_")


# ----------------------------------------------------------------------
# inside ContinualClassifier
# ----------------------------------------------------------------------
@pytest.mark.parametrize("epoch_size, rows_per_epoch", [("fixed", 200), ("grow", 400)])
def test_classifier_trains_each_epoch_on_the_mix(stream, make_clf, epoch_size,
                                                 rows_per_epoch):
    X, y, months = stream
    clf = make_clf(rehearsal=RehearsalBuffer(capacity=300, replay_ratio=0.5,
                                             epoch_size=epoch_size))
    clf.fit(X[months < 3], y[months < 3], months=months[months < 3])
    assert clf.rehearsal_.n_samples_seen_ == 600 and len(clf.rehearsal_.y_) == 300
    assert clf.rehearsal_.random_state is not None          # seeded by the classifier
    batch_counts = [row["train_batch_count"] for row in clf.history]
    assert batch_counts == [4, 4] + [int(np.ceil(rows_per_epoch / 64))] * 4


def test_buffer_with_a_regularizer_trains_and_persists(stream, make_clf, tmp_path):
    X, y, months = stream
    clf = make_clf(rehearsal=RehearsalBuffer(capacity=200, random_state=0),
                   regularizer=EWC(lam=10, random_state=0))
    clf.fit(X[months < 4], y[months < 4], months=months[months < 4])
    joblib.dump(clf, tmp_path / "clf.joblib")
    loaded = joblib.load(tmp_path / "clf.joblib")
    for continued in (clf, loaded):
        continued.partial_fit(X[months == 4], y[months == 4], month=4)
    np.testing.assert_array_equal(loaded.predict_proba(X), clf.predict_proba(X))
    np.testing.assert_array_equal(loaded.rehearsal_.X_, clf.rehearsal_.X_)


def test_rehearsal_forgets_month_one_less_than_naive_finetuning():
    X, y, months = make_drifting_stream(n_months=6, n_samples_per_month=300, random_state=0)
    train, test = train_test_split(np.arange(len(y)), test_size=0.3, stratify=months,
                                   random_state=0)
    first_month_test = test[months[test] == 0]
    scores = {}
    for name, rehearsal in [("naive", None),
                            ("rehearsal", RehearsalBuffer(capacity=1000, replay_ratio=0.5))]:
        clf = ContinualClassifier(module__hidden_units=(16,), max_epochs=4, lr=1e-2,
                                  batch_size=64, rehearsal=rehearsal, random_state=0)
        clf.fit(X[train], y[train], months=months[train])
        scores[name] = clf.score(X[first_month_test], y[first_month_test])
    assert scores["rehearsal"] > scores["naive"] + 0.15


def test_the_mix_is_drawn_from_host_rows_never_read_back_from_the_device(monkeypatch):
    """Each epoch draws a fresh replay mix from the month's host rows (no round trip)."""
    from skcl import ContinualClassifier
    from skcl import _month as month_module
    from skcl.datasets import make_drifting_stream

    read_back, mixes = [], []
    monkeypatch.setattr(month_module, "dataset_tensors",
                        lambda dataset: read_back.append(dataset))
    original = RehearsalBuffer.fit_resample

    def recording(self, X, y):
        mixes.append(X)
        return original(self, X, y)

    monkeypatch.setattr(RehearsalBuffer, "fit_resample", recording)
    X, y, months = make_drifting_stream(n_months=3, n_samples_per_month=100, random_state=0)
    clf = ContinualClassifier(max_epochs=3, random_state=0, module__hidden_units=(8,),
                              rehearsal=RehearsalBuffer(capacity=100))
    clf.fit(X, y, months=months)
    assert read_back == []
    assert len(mixes) == 6  # 3 epochs of months 2 and 3; month 1 has nothing to replay
    # the month's own rows, as the caller passed them (months 2 and 3)
    assert np.shares_memory(mixes[0], mixes[2]) and isinstance(mixes[0], np.ndarray)
    assert "_month" not in clf.__dict__


# ----------------------------------------------------------------------
# the optional extra array (logits for DER)
# ----------------------------------------------------------------------
@pytest.mark.parametrize("policy", ["reservoir", "per_month", "class_balanced"])
def test_extra_array_stays_with_its_rows_through_eviction_sampling_and_pickle(policy):
    rng = np.random.default_rng(0)
    buffer = RehearsalBuffer(capacity=30, policy=policy, random_state=0)
    for month in range(4):
        X = rng.normal(size=(25, 3)).astype(np.float32)
        y = rng.integers(0, 2, size=25)
        # each row's extra is a function of the row: alignment is checkable
        buffer.partial_fit(X, y, month=month, extra=np.stack([X.sum(1), X[:, 0] * y], 1))
    expected = np.stack([buffer.X_.sum(1), buffer.X_[:, 0] * buffer.y_], 1)
    np.testing.assert_allclose(buffer.extra_, expected, rtol=1e-6)
    assert buffer.extra_.shape == (30, 2) and not buffer.extra_.flags.writeable
    X_s, y_s, _, extra_s = buffer.sample(50, return_extra=True)
    np.testing.assert_allclose(extra_s, np.stack([X_s.sum(1), X_s[:, 0] * y_s], 1), rtol=1e-6)
    loaded = pickle.loads(pickle.dumps(buffer))
    np.testing.assert_array_equal(loaded.extra_, buffer.extra_)
    assert all(np.array_equal(a, b) for a, b in zip(loaded.sample(7, return_extra=True),
                                                    buffer.sample(7, return_extra=True)))
    assert copy.deepcopy(buffer).extra_ is buffer.extra_  # read-only: shared


def test_extra_array_must_be_passed_every_time_or_never():
    X, y = np.ones((4, 2)), np.array([0, 1, 0, 1])
    plain = RehearsalBuffer(capacity=10).partial_fit(X, y)
    assert plain.extra_ is None
    with pytest.raises(ValueError, match="stores no extra array"):
        plain.sample(2, return_extra=True)
    with pytest.raises(ValueError, match="stored without one"):
        plain.partial_fit(X, y, extra=np.zeros((4, 2)))
    with_extra = RehearsalBuffer(capacity=10).partial_fit(X, y, extra=np.zeros((4, 2)))
    with pytest.raises(ValueError, match="must be passed to every partial_fit"):
        with_extra.partial_fit(X, y)
    with pytest.raises(ValueError, match=r"entries of shape \(3,\).*stores entries of shape"):
        with_extra.partial_fit(X, y, extra=np.zeros((4, 3)))
    with pytest.raises(ValueError, match="one numeric entry per row"):
        RehearsalBuffer().partial_fit(X, y, extra=np.zeros((3, 2)))
    assert len(with_extra.y_) == 4  # the failed calls changed nothing
