"""Third hostile pass (issue 23): crafted or mid-stream changes never get past unchecked."""

import os
import stat

import numpy as np
import pytest
import scipy.sparse as sp
import torch

from skcl import ContinualClassifier, MonthlyAveragingClassifier, RehearsalBuffer, RowStore
from skcl._sparse import check_sparse_structure


def _sparse_month(n_rows=60, n_features=20, seed=0):
    rng = np.random.default_rng(seed)
    X = sp.random(n_rows, n_features, density=0.3, format="csr", random_state=seed,
                  dtype=np.float32)
    y = np.arange(n_rows) % 2
    rng.shuffle(y)
    return X, y


def _broken(kind, X):
    """A copy of the CSR ``X`` with one structural defect of ``kind``."""
    X = X.copy()
    if kind == "index far beyond n_features":
        X.indices[3] = 10**6
    elif kind == "index equal to n_features":
        X.indices[3] = X.shape[1]
    elif kind == "negative index":
        X.indices[3] = -1
    elif kind == "short indptr":
        X.indptr = X.indptr[:-5]
    elif kind == "decreasing indptr":
        X.indptr[5] = X.indptr[7] + 3
    elif kind == "indptr not starting at 0":
        X.indptr = X.indptr + 1
    elif kind == "float indices":
        X.indices = X.indices.astype(np.float64)
    elif kind == "2-D data":
        X.data = X.data.reshape(-1, 1)
    return X


BROKEN = {
    "index far beyond n_features": (ValueError, r"X.indices\[3\] = 1000000 \(row \d+\) is "
                                    r"not a valid column index: a matrix of 20 columns"),
    "index equal to n_features": (ValueError, r"X.indices\[3\] = 20 \(row \d+\)"),
    "negative index": (ValueError, r"X.indices\[3\] = -1 \(row \d+\)"),
    "short indptr": (ValueError, r"X.indptr has 56 entries, but a CSR matrix of shape "
                     r"\(60, 20\) needs 61"),
    "decreasing indptr": (ValueError, r"X.indptr decreases at row 5"),
    "indptr not starting at 0": (ValueError, r"X.indptr\[0\] is 1, not 0"),
    "float indices": (TypeError, r"X.indices must be a 1-D integer array"),
    "2-D data": (ValueError, r"X.data has shape \(\d+, 1\); a CSR matrix stores one value"),
}


@pytest.mark.parametrize("kind", sorted(BROKEN))
def test_broken_sparse_structure_is_refused_by_every_entry_point(kind):
    # item 1: an out-of-range index crashed the process (SIGSEGV) or read out of
    # bounds silently; a decreasing indptr ended in a C++ error
    X, y = _sparse_month()
    bad = _broken(kind, X)
    error, pattern = BROKEN[kind]
    with pytest.raises(error, match=pattern):
        ContinualClassifier(max_epochs=1, random_state=0).partial_fit(bad, y, classes=[0, 1])
    with pytest.raises(error, match=pattern):
        ContinualClassifier(max_epochs=1, random_state=0).fit(bad, y)
    clf = ContinualClassifier(max_epochs=1, random_state=0).partial_fit(X, y)
    with pytest.raises(error, match=pattern):
        clf.predict_proba(bad)
    with pytest.raises(error, match=pattern):
        RehearsalBuffer(capacity=10).partial_fit(bad, y)
    with pytest.raises(error, match=pattern):
        RowStore().append(bad, y)
    with pytest.raises(error, match=pattern):
        MonthlyAveragingClassifier(ContinualClassifier(max_epochs=1)).partial_fit(bad, y)


@pytest.mark.parametrize("fmt", ["csc", "coo", "bsr"])
def test_broken_structure_of_other_formats_is_refused(fmt):
    X, _ = _sparse_month()
    X = X.asformat(fmt)
    if fmt == "coo":
        X.col[2] = 20
        pattern = r"X.coords\[1\]\[2\] = 20 is not a valid column index"
    elif fmt == "csc":
        X.indices[2] = 60
        pattern = r"X.indices\[2\] = 60 \(column 0\) is not a valid row index"
    else:
        X.indices[0] = 20
        pattern = r"X.indices\[0\] = 20 \(row 0\) is not a valid column index"
    with pytest.raises(ValueError, match=pattern):
        check_sparse_structure(X)


def test_valid_sparse_matrices_pass_unchanged():
    X, _ = _sparse_month()
    for fmt in ("csr", "csc", "coo", "bsr", "lil", "dok"):
        converted = X.asformat(fmt)
        assert check_sparse_structure(converted) is converted
    empty = sp.csr_matrix((3, 5), dtype=np.float32)
    assert check_sparse_structure(empty) is empty


def _save_crafted_npz(path, X):
    # the arrays scipy.sparse.save_npz writes, without its checks
    np.savez(path, format=np.array("csr"), shape=np.array(X.shape), data=X.data,
             indices=X.indices, indptr=X.indptr)


@pytest.mark.parametrize("kind", ["index far beyond n_features", "negative index",
                                  "decreasing indptr"])
def test_crafted_npz_is_a_usage_error_of_the_cli(kind, tmp_path, capsys):
    from skcl.benchmark import main

    X, y = _sparse_month(n_rows=90)
    _save_crafted_npz(tmp_path / "X.npz", _broken(kind, X))
    np.savez(tmp_path / "labels.npz", month=np.repeat([1, 2, 3], 30), label=y)
    with pytest.raises(SystemExit) as exit_info:
        main(["--data", str(tmp_path / "X.npz"), "--labels", str(tmp_path / "labels.npz"),
              "--quick", "--strategies", "naive", "--out", str(tmp_path / "out")])
    assert exit_info.value.code == 2
    assert "X.npz" in capsys.readouterr().err


# ----------------------------------------------------------------------
# item 6: load_weights checks classes and weights; item 11: file modes, links
# ----------------------------------------------------------------------
@pytest.fixture
def saved_weights(stream, make_clf, tmp_path):
    X, y, months = stream
    clf = make_clf().partial_fit(X[months == 0], y[months == 0], classes=[0, 1])
    path = tmp_path / "weights.pt"
    clf.save_weights(path)
    return clf, path, X


def _rewrite(path, **changes):
    payload = torch.load(path, weights_only=True)
    payload.update(changes)
    torch.save(payload, path)


@pytest.mark.parametrize("classes, pattern", [
    ([1, 0], r"lists its classes as \[1, 0\], not in sorted order \(\[0, 1\]\)"),
    ([0, 0], r"lists the classes \[0\] more than once"),
    ([0, "1"], r"classes of mixed types \(\['int', 'str'\]\)"),
    ([0, [1]], r"lists the class \[1\] of type list"),
    ([0.0, float("nan")], r"non-finite class"),
])
def test_load_weights_refuses_impossible_classes(saved_weights, make_clf, classes, pattern):
    clf, path, X = saved_weights
    _rewrite(path, classes=classes)
    fresh = make_clf()
    with pytest.raises(ValueError, match=pattern):
        fresh.load_weights(path)
    assert not hasattr(fresh, "module_") or not fresh.initialized_


def test_load_weights_refuses_non_finite_weights(saved_weights, make_clf):
    clf, path, X = saved_weights
    state = {k: v.clone() for k, v in clf.module_.state_dict().items()}
    key = next(iter(state))
    state[key].view(-1)[0] = float("nan")
    _rewrite(path, module_state=state)
    with pytest.raises(ValueError, match=rf"1 non-finite values \(NaN or inf\) in {key!r}"):
        make_clf().load_weights(path)


@pytest.mark.parametrize("contents", [b"hello, this is text\n", b"\x00\x01\x02garbage",
                                      b"PK\x03\x04broken zip"])
def test_load_weights_of_a_foreign_file_is_the_documented_error(make_clf, tmp_path,
                                                                contents):
    path = tmp_path / "notes.txt"
    path.write_bytes(contents)
    with pytest.raises(ValueError, match="not a file written by save_weights|"
                                         "not a weights file|damaged or truncated"):
        make_clf().load_weights(path)


def test_save_weights_keeps_an_existing_files_mode(saved_weights, tmp_path):
    clf, path, X = saved_weights
    os.chmod(path, 0o644)
    clf.save_weights(path)
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o644
    os.chmod(path, 0o640)
    clf.save_weights(path)
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o640


@pytest.mark.parametrize("umask", [0o022, 0o077])
def test_save_weights_new_file_follows_the_umask(saved_weights, tmp_path, umask):
    clf, _, X = saved_weights
    previous = os.umask(umask)
    try:
        clf.save_weights(tmp_path / "new.pt")
    finally:
        os.umask(previous)
    assert stat.S_IMODE(os.stat(tmp_path / "new.pt").st_mode) == 0o666 & ~umask


def test_save_weights_writes_through_a_symlink(saved_weights, make_clf, tmp_path):
    clf, path, X = saved_weights
    (tmp_path / "releases").mkdir()
    target = tmp_path / "releases" / "v1.pt"
    target.write_bytes(b"old")
    os.chmod(target, 0o644)
    link = tmp_path / "current.pt"
    link.symlink_to(target)
    clf.save_weights(link)
    assert link.is_symlink() and os.readlink(link) == str(target)
    assert stat.S_IMODE(os.stat(target).st_mode) == 0o644
    loaded = make_clf().load_weights(target)
    np.testing.assert_array_equal(loaded.predict_proba(X), clf.predict_proba(X))
    assert sorted(p.name for p in (tmp_path / "releases").iterdir()) == ["v1.pt"]


def test_save_weights_onto_a_directory_is_refused(saved_weights, tmp_path):
    clf, _, _ = saved_weights
    (tmp_path / "folder").mkdir()
    with pytest.raises(IsADirectoryError, match="is not a regular file"):
        clf.save_weights(tmp_path / "folder")


# ----------------------------------------------------------------------
# item 2: a raised capacity grows the buffer
# ----------------------------------------------------------------------
@pytest.mark.parametrize("policy", ["reservoir", "per_month", "class_balanced"])
def test_raised_buffer_capacity_grows_the_buffer(policy):
    rng = np.random.default_rng(0)
    buffer = RehearsalBuffer(capacity=60, policy=policy, random_state=0)
    for month in range(3):
        buffer.partial_fit(rng.normal(size=(100, 4)), rng.integers(0, 2, 100), month=month)
    assert len(buffer.y_) == 60
    buffer.set_params(capacity=500)
    buffer.partial_fit(rng.normal(size=(100, 4)), rng.integers(0, 2, 100), month=3)
    # every arriving row fills a free slot first: 60 kept + 100 new
    assert len(buffer.y_) == 160
    assert (buffer.sample_months_ == 3).sum() == 100
    buffer.partial_fit(rng.normal(size=(400, 4)), rng.integers(0, 2, 400), month=4)
    assert len(buffer.y_) == 500


def test_raised_memory_capacity_grows_a_classifiers_buffer_and_agem_memory(stream, make_clf):
    from skcl import AGEM, DERpp

    X, y, months = stream
    for params, path in [
        ({"rehearsal": RehearsalBuffer(capacity=60)}, ("rehearsal_",)),
        ({"regularizer": AGEM(memory=RehearsalBuffer(capacity=60))},
         ("regularizer_", "memory_")),
        ({"regularizer": DERpp(memory=RehearsalBuffer(capacity=60))},
         ("regularizer_", "memory_")),
    ]:
        clf = make_clf(max_epochs=1, **params)
        for month in range(2):
            clf.partial_fit(X[months == month], y[months == month], classes=[0, 1])
        key = "rehearsal__capacity" if "rehearsal" in params else \
            "regularizer__memory__capacity"
        clf.set_params(**{key: 500})
        clf.partial_fit(X[months == 2], y[months == 2])
        memory = clf
        for name in path:
            memory = getattr(memory, name)
        assert len(memory.y_) == 260, params


# ----------------------------------------------------------------------
# item 7: a month of the other layout than the stream's
# ----------------------------------------------------------------------
def _strategies_storing_rows():
    from skcl import AGEM, DERpp

    return {"buffer": {"rehearsal": RehearsalBuffer(capacity=50)},
            "retrain": {"update": "retrain"},
            "agem": {"regularizer": AGEM(memory=RehearsalBuffer(capacity=50))},
            "der++": {"regularizer": DERpp(memory=RehearsalBuffer(capacity=50))}}


@pytest.mark.parametrize("strategy", ["buffer", "retrain", "agem", "der++"])
@pytest.mark.parametrize("first", ["sparse", "dense"])
def test_a_month_of_the_other_layout_trains_as_the_streams(strategy, first, make_clf):
    X, y = _sparse_month(n_rows=150)
    dense = X.toarray()
    layouts = {"sparse": X, "dense": dense}
    second = "dense" if first == "sparse" else "sparse"
    mixed = make_clf(max_epochs=1, **_strategies_storing_rows()[strategy])
    mixed.partial_fit(layouts[first][:75], y[:75], classes=[0, 1])
    mixed.partial_fit(layouts[second][75:], y[75:])
    same = make_clf(max_epochs=1, **_strategies_storing_rows()[strategy])
    same.partial_fit(layouts[first][:75], y[:75], classes=[0, 1])
    same.partial_fit(layouts[first][75:], y[75:])
    np.testing.assert_allclose(mixed.predict_proba(dense), same.predict_proba(dense),
                               atol=1e-6)


def test_buffer_fit_resample_refuses_the_other_layout():
    X, y = _sparse_month()
    buffer = RehearsalBuffer(capacity=30, random_state=0).partial_fit(X, y)
    with pytest.raises(ValueError, match="X is dense but the buffer stores sparse rows"):
        buffer.fit_resample(X.toarray(), y)


# ----------------------------------------------------------------------
# item 3: a reloaded history goes back to memmap_dir
# ----------------------------------------------------------------------
def _on_disk(chunk):
    from skcl.storage import _on_disk

    return _on_disk(chunk)


@pytest.mark.parametrize("layout", ["dense", "sparse"])
def test_reloaded_history_returns_to_memmap_dir(layout, stream, make_clf, tmp_path):
    import joblib

    X, y, months = stream
    X = sp.csr_matrix(X) if layout == "sparse" else X
    clf = make_clf(update="retrain", memmap_dir=str(tmp_path), max_epochs=1)
    for month in range(2):
        rows = np.flatnonzero(months == month)
        clf.partial_fit(X[rows], y[rows], classes=[0, 1])
    assert all(_on_disk(chunk) for chunk, _ in clf.past_data_.chunks())
    joblib.dump(clf, tmp_path / "model.joblib")
    resumed = joblib.load(tmp_path / "model.joblib")
    assert all(_on_disk(chunk) for chunk, _ in resumed.past_data_.chunks())
    rows = np.flatnonzero(months == 2)
    resumed.partial_fit(X[rows], y[rows])
    assert all(_on_disk(chunk) for chunk, _ in resumed.past_data_.chunks())
    first = resumed.past_data_.chunks()[0][0]
    expected = X[months == 0]
    if layout == "sparse":
        assert (first != expected).nnz == 0
    else:
        np.testing.assert_array_equal(first, expected)


def test_history_loaded_where_memmap_dir_is_missing_moves_at_the_next_month(stream, tmp_path):
    import pickle

    X, y, months = stream
    store = RowStore(memmap_dir=str(tmp_path / "rows"))
    (tmp_path / "rows").mkdir()
    store.append(X[:50], y[:50])
    data = pickle.dumps(store)
    (tmp_path / "rows").rmdir()
    loaded = pickle.loads(data)    # loads, in memory, on a machine without the folder
    assert not _on_disk(loaded.chunks()[0][0])
    with pytest.raises(ValueError, match="is not an existing directory"):
        loaded.append(X[50:60], y[50:60])
    (tmp_path / "rows").mkdir()
    loaded.append(X[50:60], y[50:60])
    assert all(_on_disk(chunk) for chunk, _ in loaded.chunks())


@pytest.mark.parametrize("layout", ["dense", "sparse"])
def test_reloaded_buffer_returns_to_memmap_dir(layout, tmp_path):
    import pickle

    X, y = _sparse_month()
    X = X.toarray() if layout == "dense" else X
    buffer = RehearsalBuffer(capacity=40, memmap_dir=str(tmp_path), random_state=0)
    buffer.partial_fit(X, y)
    assert _on_disk(buffer.X_)
    loaded = pickle.loads(pickle.dumps(buffer))
    assert _on_disk(loaded.X_)
    np.testing.assert_array_equal(_dense(loaded.X_), _dense(buffer.X_))


def _dense(X):
    return X.toarray() if sp.issparse(X) else np.asarray(X)


# ----------------------------------------------------------------------
# item 5: another optimizer class on a trained model
# ----------------------------------------------------------------------
def test_set_params_optimizer_on_a_trained_model_is_carried_over(stream, make_clf):
    X, y, months = stream
    clf = make_clf().partial_fit(X[months == 0], y[months == 0], classes=[0, 1])
    weights = {k: v.clone() for k, v in clf.module_.state_dict().items()}
    clf.set_params(optimizer=torch.optim.SGD, optimizer__momentum=0.9)
    assert type(clf.optimizer_) is torch.optim.SGD
    assert clf.optimizer_.param_groups[0]["momentum"] == 0.9
    assert not clf.optimizer_.state          # a fresh state
    for key, value in clf.module_.state_dict().items():   # the weights stay
        assert torch.equal(value, weights[key])
    clf.partial_fit(X[months == 1], y[months == 1])
    assert type(clf.optimizer_) is torch.optim.SGD
    assert clf.optimizer_.state               # the month trained with it


def test_set_params_optimizer_that_cannot_be_built_changes_nothing(stream, make_clf):
    X, y, months = stream
    clf = make_clf().partial_fit(X[months == 0], y[months == 0], classes=[0, 1])
    live = clf.optimizer_
    with pytest.raises(ValueError, match=r"could not build the optimizer .* keeps "
                                         r"optimizer=<class 'torch.optim.adam.Adam'>"):
        clf.set_params(optimizer=torch.optim.SGD, optimizer__no_such_setting=1)
    assert clf.optimizer is torch.optim.Adam and clf.optimizer_ is live
    assert "optimizer__no_such_setting" not in clf.__dict__
    clf.partial_fit(X[months == 1], y[months == 1])


# ----------------------------------------------------------------------
# item 8: a device changed mid-stream applies at the next fit
# ----------------------------------------------------------------------
def test_changed_device_is_refused_until_the_next_fit(stream, make_clf):
    X, y, months = stream
    clf = make_clf().partial_fit(X[months == 0], y[months == 0], classes=[0, 1])
    before = clf.predict_proba(X[:10])
    clf.set_params(device="meta")   # any device other than the stream's
    with pytest.raises(ValueError, match=r"device='meta' was set after 1 months trained "
                                         r"on 'cpu'.*set device='cpu' back"):
        clf.partial_fit(X[months == 1], y[months == 1])
    with pytest.raises(ValueError, match="device='meta' was set after 1 months"):
        clf.predict_proba(X[:10])
    assert clf.n_months_seen_ == 1
    clf.set_params(device="cpu")
    np.testing.assert_array_equal(clf.predict_proba(X[:10]), before)
    clf.partial_fit(X[months == 1], y[months == 1])
    assert clf.n_months_seen_ == 2


# ----------------------------------------------------------------------
# item 10: pd.NA gets scikit-learn's missing-value error, not a float() TypeError
# ----------------------------------------------------------------------
@pytest.mark.parametrize("column_dtype", ["Float64", "Int64", "object"])
def test_pandas_missing_values_get_the_missing_value_error(column_dtype, stream, make_clf):
    pd = pytest.importorskip("pandas")
    X, y, months = stream
    frame = pd.DataFrame(X[:60, :3].round() if column_dtype == "Int64" else X[:60, :3],
                         columns=["a", "b", "c"]).astype(column_dtype)
    frame.loc[4, "b"] = pd.NA
    with pytest.raises(ValueError, match="Input X contains (NaN|missing values .* "
                                         r"in columns \['b'\])"):
        make_clf().partial_fit(frame, y[:60], classes=[0, 1])
    clf = make_clf().partial_fit(X[:60, :3], y[:60], classes=[0, 1])
    with pytest.raises(ValueError, match="Input X contains (NaN|missing values)"):
        clf.predict_proba(frame)


# ----------------------------------------------------------------------
# item 9: the CLI refuses missing months, NaN features and continuous labels
# ----------------------------------------------------------------------
def _cli_error(argv, capsys):
    from skcl.benchmark import main

    with pytest.raises(SystemExit) as exit_info:
        main([*argv, "--strategies", "naive"])
    assert exit_info.value.code == 2
    return capsys.readouterr().err


def test_cli_refuses_a_missing_month_in_a_sparse_labels_file(tmp_path, capsys):
    pd = pytest.importorskip("pandas")
    X, y = _sparse_month(n_rows=90)
    sp.save_npz(tmp_path / "X.npz", X)
    months = np.repeat([1.0, 2.0, 3.0], 30)
    months[40] = np.nan
    pd.DataFrame({"month": months, "label": y}).to_csv(tmp_path / "labels.csv", index=False)
    err = _cli_error(["--data", str(tmp_path / "X.npz"), "--labels",
                      str(tmp_path / "labels.csv"), "--out", str(tmp_path / "out")], capsys)
    assert "--month-column 'month' column has 1 missing values" in err and "[40]" in err


def test_cli_refuses_nan_in_a_sparse_npz(tmp_path, capsys):
    X, y = _sparse_month(n_rows=90)
    X = X.astype(np.float64)
    X.data[7] = np.nan
    sp.save_npz(tmp_path / "X.npz", X)
    np.savez(tmp_path / "labels.npz", month=np.repeat([1, 2, 3], 30), label=y)
    err = _cli_error(["--data", str(tmp_path / "X.npz"), "--labels",
                      str(tmp_path / "labels.npz"), "--out", str(tmp_path / "out")], capsys)
    assert "the features hold 1 NaN, infinite or beyond-float32 values, e.g. nan" in err


def test_cli_refuses_complex_features_in_a_sparse_npz(tmp_path, capsys):
    X, y = _sparse_month(n_rows=90)
    sp.save_npz(tmp_path / "X.npz", X.astype(np.complex64))
    np.savez(tmp_path / "labels.npz", month=np.repeat([1, 2, 3], 30), label=y)
    err = _cli_error(["--data", str(tmp_path / "X.npz"), "--labels",
                      str(tmp_path / "labels.npz"), "--out", str(tmp_path / "out")], capsys)
    assert "the features are of dtype complex64, not real numbers" in err


def test_cli_refuses_continuous_labels_in_a_csv(tmp_path, capsys):
    pd = pytest.importorskip("pandas")
    rng = np.random.default_rng(0)
    frame = pd.DataFrame(rng.normal(size=(300, 3)), columns=list("abc"))
    frame["month"] = np.repeat([1, 2, 3], 100)
    frame["label"] = np.round(rng.normal(size=300), 1)
    frame.to_csv(tmp_path / "stream.csv", index=False)
    err = _cli_error(["--data", str(tmp_path / "stream.csv"), "--out", str(tmp_path / "o")],
                     capsys)
    assert "--label-column 'label' column holds continuous values" in err


# ----------------------------------------------------------------------
# item 4: skorch's compile=True with EWC / OnlineEWC
# ----------------------------------------------------------------------
def test_per_sample_loss_of_a_compiled_criterion_leaves_training_loss_reduced():
    from skcl.fisher import per_sample_loss

    criterion = torch.nn.CrossEntropyLoss()
    compiled = torch.compile(criterion)       # what skorch's compile=True holds
    loss = per_sample_loss(compiled)
    assert criterion.reduction == "mean" and compiled.reduction == "mean"
    output, target = torch.randn(4, 3), torch.tensor([0, 1, 2, 0])
    assert loss(output, target).shape == (4,)
    torch.testing.assert_close(loss(output, target).mean(), criterion(output, target))


@pytest.mark.slow
@pytest.mark.parametrize("regularizer", ["EWC", "OnlineEWC"])
def test_compile_true_with_ewc_trains_every_month_as_eager(regularizer, stream, make_clf):
    import skcl

    X, y, months = stream
    probas = []
    for compile_ in (False, True):
        clf = make_clf(compile=compile_, regularizer=getattr(skcl, regularizer)(lam=10.0))
        for month in range(3):
            clf.partial_fit(X[months == month], y[months == month], classes=[0, 1])
        probas.append(clf.predict_proba(X))
    np.testing.assert_allclose(probas[0], probas[1], atol=1e-5)


# ----------------------------------------------------------------------
# property: random CSR structures, dtypes and month labels through every
# sparse entry point: a clear ValueError/TypeError, or the result of the same
# data made valid; never a crash, never an out-of-bounds read
# ----------------------------------------------------------------------
from hypothesis import HealthCheck, given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

_DATA_DTYPES = [np.float32, np.float64, np.float16, np.int64, np.bool_, np.complex64]
_INDEX_DTYPES = [np.int32, np.int64, np.int16, np.uint32, np.float64]


@st.composite
def csr_parts(draw):
    """``(data, indices, indptr, shape)``: valid, or broken in one or more ways."""
    n_rows = draw(st.integers(2, 6))
    n_features = draw(st.integers(1, 5))
    counts = draw(st.lists(st.integers(0, 3), min_size=n_rows, max_size=n_rows))
    indptr = np.concatenate([[0], np.cumsum(counts)])
    nnz = int(indptr[-1])
    indices = np.array(draw(st.lists(st.integers(0, n_features - 1), min_size=nnz,
                                     max_size=nnz)), dtype=np.int64)
    data = np.array(draw(st.lists(st.integers(-4, 4), min_size=nnz, max_size=nnz)),
                    dtype=np.float64) / 2
    for defect in draw(st.lists(st.sampled_from(
            ["index", "indptr_value", "indptr_length", "data_length"]), unique=True,
            max_size=2)):
        if defect == "index" and nnz:
            indices[draw(st.integers(0, nnz - 1))] = draw(st.sampled_from(
                [-1, n_features, n_features + 7, 10**6, -(10**6)]))
        elif defect == "indptr_value" and len(indptr):
            indptr[draw(st.integers(0, len(indptr) - 1))] += draw(st.sampled_from(
                [-2, -1, 1, 3]))
        elif defect == "indptr_length":
            indptr = indptr[:draw(st.integers(0, n_rows))]
        elif defect == "data_length":
            data = data[:max(nnz - 1, 0)] if draw(st.booleans()) else np.append(data, 1.0)
    data = data.astype(draw(st.sampled_from(_DATA_DTYPES)))
    index_dtype = draw(st.sampled_from(_INDEX_DTYPES))
    with np.errstate(invalid="ignore"):
        indices, indptr = indices.astype(index_dtype), indptr.astype(index_dtype)
    return data, indices, indptr, (n_rows, n_features)


def _crafted(parts):
    """A CSR matrix holding exactly these arrays (scipy's checks bypassed)."""
    data, indices, indptr, shape = parts
    X = sp.csr_matrix(shape, dtype=np.float32)
    X.data, X.indices, X.indptr = data, indices, indptr
    return X


def _made_valid(parts):
    """The same data as a canonical float32 CSR, or None if the structure is invalid.

    Written from the definition, independently of skcl: one non-decreasing
    pointer per row plus one, from 0 to the number of entries, which data and
    indices both hold, and integer column indices inside the shape; real data.
    """
    data, indices, indptr, (n_rows, n_features) = parts
    if indices.dtype.kind not in "iu" or indptr.dtype.kind not in "iu":
        return None
    if data.dtype.kind == "c":
        return None
    if (len(indptr) != n_rows + 1 or indptr[0] != 0 or np.any(np.diff(indptr.astype(
            np.int64)) < 0) or not int(indptr[-1]) == len(indices) == len(data)):
        return None
    if len(indices) and (indices.astype(np.int64).min() < 0
                         or indices.astype(np.int64).max() >= n_features):
        return None
    dense = np.zeros((n_rows, n_features), dtype=np.float64)
    for row in range(n_rows):
        for k in range(int(indptr[row]), int(indptr[row + 1])):
            dense[row, int(indices[k])] += float(data[k])
    return sp.csr_matrix(dense.astype(np.float32))


_MONTHS = st.one_of(st.none(), st.integers(-3, 3), st.sampled_from(
    ["2024-01", "", float("nan"), 1.5, (1, 2), [3], np.datetime64("NaT")]))


def _month_is_valid(month):
    return month is None or (isinstance(month, (int, float, str)) and month == month)


def _check_entry_points(parts, month, tmp_path):
    reference = _made_valid(parts)
    n_rows = parts[3][0]
    y = np.arange(n_rows) % 2
    expect_ok = reference is not None and _month_is_valid(month)

    def run(X, month):
        clf = ContinualClassifier(max_epochs=1, batch_size=4, random_state=0,
                                  module__hidden_units=(3,))
        clf.partial_fit(X, y, classes=[0, 1], month=month)
        buffer = RehearsalBuffer(capacity=3, random_state=0).partial_fit(X, y, month=month)
        return clf.predict_proba(X), clf.months_, buffer.X_.toarray()

    crafted = _crafted(parts)
    arrays = [array.copy() for array in (crafted.data, crafted.indices, crafted.indptr)]
    try:
        result = run(crafted, month)
    except (ValueError, TypeError):
        assert not expect_ok, "valid data was refused"
    else:
        assert expect_ok, "invalid data was accepted"
        expected = run(reference, month)
        np.testing.assert_allclose(result[0], expected[0], rtol=1e-5, atol=1e-6)
        assert result[1] == expected[1]
        np.testing.assert_array_equal(result[2], expected[2])
    # the caller's matrix is never changed (no in-place sum of duplicates)
    for array, before in zip((crafted.data, crafted.indices, crafted.indptr), arrays):
        np.testing.assert_array_equal(array, before)
    # a fitted model's predict_proba, on a crafted matrix of its width
    trained = ContinualClassifier(max_epochs=1, random_state=0, module__hidden_units=(3,))
    trained.partial_fit(np.eye(n_rows, parts[3][1], dtype=np.float32), y)
    try:
        proba = trained.predict_proba(_crafted(parts))
    except (ValueError, TypeError):
        assert reference is None
    else:
        assert reference is not None
        np.testing.assert_allclose(proba, trained.predict_proba(reference), rtol=1e-5,
                                   atol=1e-6)
    # the CLI's loader, on the arrays written as scipy.sparse.save_npz writes them
    from skcl.datasets import load_sparse_stream

    data, indices, indptr, shape = parts
    path = tmp_path / "X.npz"
    np.savez(path, format=np.array("csr"), shape=np.array(shape), data=data,
             indices=indices, indptr=indptr)
    np.savez(tmp_path / "labels.npz", month=np.zeros(n_rows, dtype=int), label=y)
    try:
        loaded, _, _ = load_sparse_stream(path, tmp_path / "labels.npz")
    except (ValueError, TypeError):
        assert reference is None or data.dtype.kind not in "fiub"
    else:
        # scipy's loader casts integral float indices to ints: valid data too
        # (complex values load as saved: the CLI refuses them, see test below)
        # and scipy's constructor drops entries stored beyond indptr[-1] (prune)
        end = int(indptr[-1]) if len(indptr) else 0
        cast = ((data.real if data.dtype.kind == "c" else data)[:end],
                indices.astype(np.int64)[:end], indptr.astype(np.int64), shape)
        assert reference is not None or _made_valid(cast) is not None
        expected = reference if reference is not None else _made_valid(cast)
        np.testing.assert_array_equal(loaded.astype(np.float32).toarray()
                                      if loaded.dtype.kind != "c" else
                                      loaded.real.astype(np.float32).toarray(),
                                      expected.toarray())


@settings(max_examples=20, deadline=None, derandomize=True,
          suppress_health_check=[HealthCheck.function_scoped_fixture,
                                 HealthCheck.too_slow])
@given(parts=csr_parts(), month=_MONTHS)
def test_random_csr_structures_are_refused_or_equal_to_the_valid_data(parts, month,
                                                                       tmp_path):
    _check_entry_points(parts, month, tmp_path)


@pytest.mark.slow
@settings(max_examples=400, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture,
                                 HealthCheck.too_slow])
@given(parts=csr_parts(), month=_MONTHS)
def test_random_csr_structures_many_examples(parts, month, tmp_path):
    _check_entry_points(parts, month, tmp_path)


def test_a_float64_matrix_with_duplicates_is_not_changed_in_place():
    # found by the property test: scipy's abs(X) in the float32-range check
    # summed the duplicates of the caller's own matrix, in place
    X = sp.csr_matrix((np.array([0.5, 0.25, 1.0]), np.array([1, 1, 0]), np.array([0, 2, 3])),
                      shape=(2, 2))
    indptr, indices = X.indptr.copy(), X.indices.copy()
    clf = ContinualClassifier(max_epochs=1, random_state=0).partial_fit(X, [0, 1])
    clf.predict_proba(X)
    np.testing.assert_array_equal(X.indptr, indptr)
    np.testing.assert_array_equal(X.indices, indices)


def test_load_weights_with_new_classes_grow_accepts_classes_in_arrival_order(saved_weights,
                                                                             make_clf):
    clf, path, X = saved_weights
    _rewrite(path, classes=[1, 0])      # what a grown model may list
    loaded = make_clf(new_classes="grow").load_weights(path)
    assert loaded.classes_.tolist() == [1, 0]
    with pytest.raises(ValueError, match="load it with new_classes='grow'"):
        make_clf().load_weights(path)
