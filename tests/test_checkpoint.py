"""Complete, safe checkpoints (skcl/checkpoint.py): resume equals uninterrupted."""

import io
import json
import os
import pickle
import zipfile

import numpy as np
import pandas as pd
import pytest
import scipy.sparse as sp
import torch

from skcl import (
    AGEM,
    EWC,
    L2,
    MAS,
    SI,
    ContinualClassifier,
    DERpp,
    LwF,
    OnlineEWC,
    RehearsalBuffer,
)
from skcl.checkpoint import latest_checkpoint, load_checkpoint, save_checkpoint
from skcl.datasets import make_drifting_stream
from skcl.modules import MLP

MONTHS = [pd.Period("2024-01", "M"), pd.Period("2024-02", "M"), pd.Period("2024-03", "M")]


def _buffer(**params):
    return RehearsalBuffer(capacity=40, **params)


# every strategy, and rehearsal combined with each regularizer family
STRATEGIES = {
    "naive": {},
    "low-lr": {"finetune_lr": 1e-4},
    "low-lr-finish": {"finish_epochs": 1},
    "retrain": {"update": "retrain"},
    "retrain-memmap": {"update": "retrain", "memmap_dir": "TMP"},
    "snapshots": {"keep_snapshots": True},
    "ewc": {"regularizer": EWC()},
    "ewc-hessian": {"regularizer": EWC(fisher="hessian")},
    "online-ewc": {"regularizer": OnlineEWC(gamma=0.9)},
    "l2": {"regularizer": L2()},
    "si": {"regularizer": SI()},
    "mas": {"regularizer": MAS()},
    "lwf": {"regularizer": LwF()},
    "agem": {"regularizer": AGEM(sample_size=16)},
    "derpp": {"regularizer": DERpp(batch_size=16)},
    "rehearsal-reservoir": {"rehearsal": _buffer()},
    "rehearsal-per-month": {"rehearsal": _buffer(policy="per_month")},
    "rehearsal-class-balanced-grow": {"rehearsal": _buffer(policy="class_balanced",
                                                           epoch_size="grow")},
    "rehearsal-memmap": {"rehearsal": _buffer(memmap_dir="TMP")},
    "rehearsal+ewc": {"rehearsal": _buffer(), "regularizer": EWC()},
    "rehearsal+si": {"rehearsal": _buffer(), "regularizer": SI()},
    "rehearsal+lwf": {"rehearsal": _buffer(), "regularizer": LwF()},
    "rehearsal+agem": {"rehearsal": _buffer(), "regularizer": AGEM(sample_size=16)},
    "sparse+rehearsal+ewc": {"rehearsal": _buffer(), "regularizer": EWC(), "sparse": True},
    "dropout": {"module__dropout": 0.2},
    # a third class arrives in the second month: the saved head is grown
    "grow+rehearsal+ewc": {"new_classes": "grow", "rehearsal": _buffer(), "regularizer": EWC()},
    # the same with the module given as an instance (one object, as a script
    # would pass it): its copies grow and resume bit for bit as the class's do
    "grow+instance": {"new_classes": "grow", "rehearsal": _buffer(), "regularizer": EWC(),
                      "module": MLP(n_features=18, n_classes=2, hidden_units=(8,))},
}


@pytest.fixture(scope="module")
def stream():
    return make_drifting_stream(n_months=3, n_samples_per_month=60, n_features=18,
                                random_state=0)


def _make(name, tmp_path):
    params = dict(STRATEGIES[name])
    params.pop("sparse", None)
    if "module" not in params:  # an instance is built with its own sizes
        params = {"module__hidden_units": (8,), **params}
    for key, value in list(params.items()):
        if value == "TMP":
            params[key] = str(tmp_path)
        elif key == "rehearsal" and value.memmap_dir == "TMP":
            params[key] = value.set_params(memmap_dir=str(tmp_path))
    return ContinualClassifier(max_epochs=2, batch_size=16, random_state=0, **params)


def _month(stream, index, sparse, new_class=False):
    X, y, months = stream
    X_month, y_month = X[months == index], y[months == index].copy()
    if new_class and index >= 1:
        y_month[::5] = 2  # a third class arrives with the second month
    return (sp.csr_matrix(X_month) if sparse else X_month), y_month


def _state(clf):
    """What must be equal for two models to continue identically."""
    state = {"weights": [t.clone() for t in clf.module_.state_dict().values()],
             "months": list(clf.months_),
             "counters": (clf.n_months_seen_, clf.n_samples_seen_, clf.n_samples_processed_),
             "rng": clf.rng_.bit_generator.state, "epochs": len(clf.history_)}
    optimizer = clf.optimizer_.state_dict()["state"]
    state["optimizer"] = [t.clone() for s in optimizer.values() for t in s.values()]
    if clf.rehearsal_ is not None:
        X_ = clf.rehearsal_.X_
        state["buffer"] = (X_.toarray() if sp.issparse(X_) else np.asarray(X_),
                           clf.rehearsal_.y_, list(clf.rehearsal_.sample_months_))
    return state


def _assert_same(a, b):
    for key in a:
        left, right = a[key], b[key]
        if key in ("weights", "optimizer"):
            assert len(left) == len(right)
            assert all(torch.equal(u, v) for u, v in zip(left, right)), key
        elif key == "buffer":
            for u, v in zip(left, right):
                np.testing.assert_array_equal(u, v)
        else:
            assert left == right, key


@pytest.mark.parametrize("name", STRATEGIES)
def test_resume_from_checkpoint_equals_uninterrupted(name, stream, tmp_path):
    sparse = STRATEGIES[name].get("sparse", False)
    grow = STRATEGIES[name].get("new_classes") == "grow"
    X_test = _month(stream, 2, sparse)[0]
    uninterrupted = _make(name, tmp_path)
    for index in range(3):
        uninterrupted.partial_fit(*_month(stream, index, sparse, grow), classes=[0, 1],
                                  month=MONTHS[index])

    stopped = _make(name, tmp_path)
    for index in range(2):
        stopped.partial_fit(*_month(stream, index, sparse, grow), classes=[0, 1],
                            month=MONTHS[index])
    path = save_checkpoint(stopped, tmp_path / "checkpoints")
    del stopped
    resumed = load_checkpoint(_make(name, tmp_path), tmp_path / "checkpoints")
    assert resumed.months_ == MONTHS[:2]
    assert all(type(m) is pd.Period for m in resumed.months_)
    resumed.partial_fit(*_month(stream, 2, sparse, grow), month=MONTHS[2])
    if grow:
        assert resumed.classes_.tolist() == [0, 1, 2]

    _assert_same(_state(uninterrupted), _state(resumed))
    np.testing.assert_array_equal(uninterrupted.predict_proba(X_test),
                                  resumed.predict_proba(X_test))
    assert path.stat().st_size > 0


def test_strategy_state_is_restored_completely(stream, tmp_path):
    clf = _make("rehearsal+ewc", tmp_path)
    for index in range(2):
        clf.partial_fit(*_month(stream, index, False), classes=[0, 1], month=MONTHS[index])
    resumed = load_checkpoint(_make("rehearsal+ewc", tmp_path),
                              save_checkpoint(clf, tmp_path))
    for name in ("penalty_weight_", "penalty_center_", "_importance_sum_"):
        assert torch.equal(getattr(clf.regularizer_, name), getattr(resumed.regularizer_, name))
    assert resumed.regularizer_.random_state == clf.regularizer_.random_state
    assert resumed.rehearsal_.n_samples_seen_per_month_ == clf.rehearsal_.n_samples_seen_per_month_
    assert resumed.rehearsal_.rng_.bit_generator.state == clf.rehearsal_.rng_.bit_generator.state
    assert not resumed.rehearsal_.X_.flags.writeable  # stored rows stay read-only


def test_memmapped_rows_go_back_to_disk(stream, tmp_path):
    for name, rows in (("retrain-memmap", lambda c: c.past_data_._X_chunks[0]),
                       ("rehearsal-memmap", lambda c: c.rehearsal_.X_)):
        clf = _make(name, tmp_path)
        clf.partial_fit(*_month(stream, 0, False), classes=[0, 1])
        resumed = load_checkpoint(_make(name, tmp_path), save_checkpoint(clf, tmp_path / name))
        assert isinstance(rows(resumed), np.memmap)


def test_keep_last_rotates_and_latest_is_the_newest(stream, tmp_path):
    clf = _make("naive", tmp_path)
    assert latest_checkpoint(tmp_path / "none") is None
    for index in range(3):
        clf.partial_fit(*_month(stream, index, False), classes=[0, 1])
        save_checkpoint(clf, tmp_path, keep_last=2)
    assert sorted(os.listdir(tmp_path)) == ["checkpoint-000002.npz", "checkpoint-000003.npz"]
    assert latest_checkpoint(tmp_path).name == "checkpoint-000003.npz"
    assert load_checkpoint(_make("naive", tmp_path), tmp_path).n_months_seen_ == 3
    with pytest.raises(ValueError, match="keep_last=0 must be an int >= 1"):
        save_checkpoint(clf, tmp_path, keep_last=0)


def test_rotation_never_deletes_the_checkpoint_just_written(stream, tmp_path):
    # a rerun from an earlier month writes fewer months than the files there
    later = _make("naive", tmp_path)
    for index in range(3):
        later.partial_fit(*_month(stream, index, False), classes=[0, 1])
    save_checkpoint(later, tmp_path)
    rerun = _make("naive", tmp_path)
    rerun.partial_fit(*_month(stream, 0, False), classes=[0, 1])
    path = save_checkpoint(rerun, tmp_path, keep_last=1)
    assert path.exists()
    assert sorted(os.listdir(tmp_path)) == ["checkpoint-000001.npz"]


def test_a_failed_save_leaves_earlier_checkpoints(stream, tmp_path, monkeypatch):
    clf = _make("naive", tmp_path).partial_fit(*_month(stream, 0, False), classes=[0, 1])
    path = save_checkpoint(clf, tmp_path)
    before = path.read_bytes()
    clf.partial_fit(*_month(stream, 1, False))
    clf.strange_ = object()  # a fitted attribute the format cannot hold
    with pytest.raises(TypeError, match="cannot checkpoint strange_"):
        save_checkpoint(clf, tmp_path)
    assert os.listdir(tmp_path) == [path.name] and path.read_bytes() == before


def _fitted(stream, tmp_path, name="ewc"):
    clf = _make(name, tmp_path)
    return clf.partial_fit(*_month(stream, 0, False), classes=[0, 1], month="2024-01")


def _rewrite(path, edit):
    """Rewrite a checkpoint with its JSON document edited by ``edit``."""
    with np.load(path) as archive:
        arrays = {k: archive[k] for k in archive.files}
    meta = json.loads(arrays["skcl-checkpoint"].tobytes())
    edit(meta)
    arrays["skcl-checkpoint"] = np.frombuffer(json.dumps(meta).encode(), dtype=np.uint8)
    np.savez(path, **arrays)


class _Marker:
    """Unpickling this would create a file: proof that code ran."""

    def __init__(self, path):
        self.path = path

    def __reduce__(self):
        return (open, (self.path, "w"))


def test_a_pickle_is_refused_and_never_executed(stream, tmp_path):
    marker = tmp_path / "executed"
    clf = _fitted(stream, tmp_path)
    # a pickle posing as a checkpoint, and an npz holding a pickled object array
    (tmp_path / "evil.npz").write_bytes(pickle.dumps(_Marker(str(marker))))
    buffer = io.BytesIO()
    np.savez(buffer, **{"skcl-checkpoint": np.array([_Marker(str(marker))], dtype=object)})
    (tmp_path / "evil-array.npz").write_bytes(buffer.getvalue())
    before = _state(clf)
    for name in ("evil.npz", "evil-array.npz"):
        with pytest.raises(ValueError, match=f"{name}.* not a checkpoint"):
            load_checkpoint(clf, tmp_path / name)
    assert not marker.exists()
    _assert_same(before, _state(clf))  # untouched


@pytest.mark.parametrize("edit, match", [
    (lambda m: m.update(format="other/1"), "not a checkpoint written by save_checkpoint"),
    (lambda m: m.pop("state"), "'state' is missing"),
    (lambda m: m["state"].update(regularizer_={"$object": "os.system", "state": {}}),
     "class 'os.system', which this estimator does not use"),
    (lambda m: m["state"].update(rng_={"$generator": "Evil", "state": {}}),
     "unknown bit generator 'Evil'"),
    (lambda m: m["state"].update(months_={"$pickle": "x"}), "unknown tag"),
    (lambda m: m["state"].pop("classes_"), "inconsistent contents"),
    (lambda m: m["state"].update(months_={"$array": "a99999"}), "missing array"),
    (lambda m: m.update(estimator="Other"), "holds a Other, not a ContinualClassifier"),
])
def test_an_edited_checkpoint_is_refused_and_leaves_the_estimator(edit, match, stream,
                                                                   tmp_path):
    path = save_checkpoint(_fitted(stream, tmp_path), tmp_path)
    _rewrite(path, edit)
    clf = _fitted(stream, tmp_path, name="ewc")
    before = _state(clf)
    with pytest.raises(ValueError, match=match):
        load_checkpoint(clf, path)
    _assert_same(before, _state(clf))


def test_a_crafted_sparse_structure_is_refused(stream, tmp_path):
    clf = _make("sparse+rehearsal+ewc", tmp_path)
    clf.partial_fit(*_month(stream, 0, True), classes=[0, 1])
    path = save_checkpoint(clf, tmp_path)
    with np.load(path) as archive:
        arrays = {k: archive[k] for k in archive.files}
    meta = json.loads(arrays["skcl-checkpoint"].tobytes())
    buffer_state = dict(meta["state"]["rehearsal_"]["state"]["$dict"])
    indices_key = buffer_state["X_"]["$csr"][1]
    arrays[indices_key] = arrays[indices_key] + 10**6  # out of bounds
    np.savez(path, **arrays)
    with pytest.raises(ValueError, match="sparse matrix with a broken structure"):
        load_checkpoint(_make("sparse+rehearsal+ewc", tmp_path), path)


@pytest.mark.parametrize("content", [b"", b"not a zip", b"PK\x03\x04truncated"])
def test_a_damaged_file_is_refused_with_the_fix(content, tmp_path):
    path = tmp_path / "checkpoint-000001.npz"
    path.write_bytes(content)
    with pytest.raises(ValueError, match=r"checkpoint-000001.npz.*write it again with "
                                         "save_checkpoint"):
        load_checkpoint(ContinualClassifier(), path)


def test_a_truncated_checkpoint_is_refused(stream, tmp_path):
    path = save_checkpoint(_fitted(stream, tmp_path), tmp_path)
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])
    with pytest.raises(ValueError, match="damaged or truncated|not a checkpoint"):
        load_checkpoint(_make("ewc", tmp_path), path)


def test_an_estimator_built_differently_is_refused(stream, tmp_path):
    path = save_checkpoint(_fitted(stream, tmp_path), tmp_path)
    with pytest.raises(ValueError, match=r"regularizer='EWC' in the file, 'SI' here"):
        load_checkpoint(_make("si", tmp_path), path)
    wider = ContinualClassifier(regularizer=EWC(), module__hidden_units=(16,))
    with pytest.raises(ValueError, match=r"module__\*"):
        load_checkpoint(wider, path)
    with pytest.raises(FileNotFoundError, match="empty' does not exist"):
        load_checkpoint(_make("ewc", tmp_path), tmp_path / "empty")
    (tmp_path / "empty").mkdir()
    with pytest.raises(FileNotFoundError, match="holds no checkpoint"):
        load_checkpoint(_make("ewc", tmp_path), tmp_path / "empty")


def test_the_checkpoint_is_a_plain_zip_of_arrays_and_json(stream, tmp_path):
    path = save_checkpoint(_fitted(stream, tmp_path), tmp_path)
    with zipfile.ZipFile(path) as archive:
        names = archive.namelist()
    assert "skcl-checkpoint.npy" in names
    assert all(name.endswith(".npy") for name in names)


@pytest.mark.parametrize("labels", [
    [np.datetime64("2024-01", "M"), np.datetime64("2024-02", "M")],
    [np.datetime64("2024-01-01T00:00:00.000000001", "ns")] * 1
    + [np.datetime64("2024-02-01T00:00:00.000000001", "ns")],
    [pd.Timestamp("2024-01-01", tz="Europe/Paris"), pd.Timestamp("2024-02-01", tz="Europe/Paris")],
    [pd.Timestamp("2024-01-01"), pd.Timestamp("2024-02-01")],
    [__import__("datetime").date(2024, 1, 1), __import__("datetime").date(2024, 2, 1)],
    [__import__("datetime").datetime(2024, 1, 1, 12), __import__("datetime").datetime(2024, 2, 1)],
    [pd.Period("2024-01", "M"), pd.Period("2024-02", "M")],
    ["2024-01", "2024-02"], [1, 2], [np.int64(1), np.int64(2)], [1.5, 2.5],
])
def test_month_labels_of_every_kind_survive_a_checkpoint(labels, stream, tmp_path):
    clf = _make("rehearsal-per-month", tmp_path)
    for index, label in enumerate(labels):
        clf.partial_fit(*_month(stream, index, False), classes=[0, 1], month=label)
    resumed = load_checkpoint(_make("rehearsal-per-month", tmp_path),
                              save_checkpoint(clf, tmp_path))
    for saved, label in zip(resumed.months_, labels):
        assert saved == label and type(saved) is type(label)
        if isinstance(label, pd.Timestamp):
            assert saved.tz == label.tz
    assert list(resumed.rehearsal_.n_samples_seen_per_month_) == list(
        clf.rehearsal_.n_samples_seen_per_month_)
    np.testing.assert_array_equal(resumed.rehearsal_.sample_months_,
                                  clf.rehearsal_.sample_months_)
    assert resumed.rehearsal_.sample_months_.dtype == clf.rehearsal_.sample_months_.dtype


def test_model_averaging_resumes_from_checkpoint(stream, tmp_path):
    from skcl import MonthlyAveragingClassifier

    def make():
        return MonthlyAveragingClassifier(
            ContinualClassifier(max_epochs=2, batch_size=16, module__hidden_units=(8,),
                                regularizer=EWC()),
            weights="recency", random_state=0)

    uninterrupted = make()
    for index in range(3):
        uninterrupted.partial_fit(*_month(stream, index, False), classes=[0, 1],
                                  month=MONTHS[index])
    stopped = make()
    for index in range(2):
        stopped.partial_fit(*_month(stream, index, False), classes=[0, 1], month=MONTHS[index])
    path = save_checkpoint(stopped, tmp_path)
    assert path.name == "checkpoint-000002.npz"
    resumed = load_checkpoint(make(), path)
    assert resumed.estimator_months_ == MONTHS[:2]
    assert [m.random_state for m in resumed.estimators_] == [
        m.random_state for m in stopped.estimators_]
    resumed.partial_fit(*_month(stream, 2, False), month=MONTHS[2])
    X = stream[0]
    np.testing.assert_array_equal(uninterrupted.predict_proba(X), resumed.predict_proba(X))
    for a, b in zip(uninterrupted.estimators_, resumed.estimators_):
        _assert_same(_state(a), _state(b))


def test_only_continual_estimators_are_checkpointed(stream, tmp_path):
    from sklearn.exceptions import NotFittedError
    from sklearn.linear_model import SGDClassifier
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    with pytest.raises(NotFittedError):
        save_checkpoint(ContinualClassifier(), tmp_path)
    pipe = make_pipeline(StandardScaler(), SGDClassifier()).fit(*_month(stream, 0, False))
    with pytest.raises(TypeError, match=r"got a Pipeline ending in a SGDClassifier"):
        save_checkpoint(pipe, tmp_path)
    assert not list(tmp_path.glob("*.npz"))
