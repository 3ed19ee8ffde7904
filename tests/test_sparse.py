"""Sparse input end to end: every entry point, every strategy, nothing densified."""

import resource

import numpy as np
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
    ForgettingScorer,
    LwF,
    MonthlyKFold,
    OnlineEWC,
    RehearsalBuffer,
    TemporalSplit,
    evaluate_stream,
)
from skcl.modules import SparseInputLinear

STRATEGIES = {
    "naive": {},
    "ewc": {"regularizer": EWC(lam=10.0)},
    "online_ewc": {"regularizer": OnlineEWC(lam=10.0)},
    "l2": {"regularizer": L2(lam=1.0)},
    "rehearsal": {"rehearsal": RehearsalBuffer(capacity=150)},
    "retrain": {"update": "retrain"},
    "der++": {"regularizer": DERpp()},
    "agem": {"regularizer": AGEM()},
    "lwf": {"regularizer": LwF()},
    "si": {"regularizer": SI()},
    "mas": {"regularizer": MAS()},
}


@pytest.fixture(scope="module")
def sparse_stream():
    rng = np.random.default_rng(0)
    n_months, n_rows, n_features = 3, 200, 40
    X = rng.normal(size=(n_months * n_rows, n_features)).astype(np.float32)
    X[rng.random(X.shape) < 0.85] = 0.0
    weights = rng.normal(size=n_features)
    y = (X @ weights + rng.normal(scale=0.5, size=len(X)) > 0).astype(int)
    months = np.repeat(np.arange(n_months), n_rows)
    return X, y, months


def _clf(**params):
    return ContinualClassifier(max_epochs=2, batch_size=64, random_state=0,
                               module__hidden_units=(8,), **params)


@pytest.mark.parametrize("strategy", sorted(STRATEGIES))
def test_sparse_training_equals_dense_training(sparse_stream, strategy):
    # the same first layer on both sides: the sparse path is the dense one's math
    X, y, months = sparse_stream
    dense = _clf(module__sparse_input=True, **STRATEGIES[strategy]).fit(X, y, months=months)
    sparse = _clf(**STRATEGIES[strategy]).fit(sp.csr_matrix(X), y, months=months)
    assert isinstance(sparse.module_.layers[0], SparseInputLinear)
    np.testing.assert_allclose(sparse.predict_proba(sp.csr_matrix(X)), dense.predict_proba(X),
                               atol=1e-5)
    assert sparse.score(sp.csc_matrix(X), y) == pytest.approx(dense.score(X, y), abs=1e-6)


@pytest.mark.parametrize("convert", [sp.csc_matrix, sp.coo_matrix, sp.csr_array,
                                     lambda X: sp.csr_matrix(X).astype(np.float64)])
def test_every_sparse_format_is_accepted(sparse_stream, convert):
    X, y, months = sparse_stream
    rows = months == 0
    reference = _clf().partial_fit(sp.csr_matrix(X[rows]), y[rows], classes=[0, 1])
    clf = _clf().partial_fit(convert(X[rows]), y[rows], classes=[0, 1])
    np.testing.assert_allclose(clf.predict_proba(convert(X)), reference.predict_proba(
        sp.csr_matrix(X)), atol=1e-6)


def test_rehearsal_buffer_keeps_csr_rows_and_draws_as_dense(sparse_stream, tmp_path):
    X, y, months = sparse_stream
    dense = RehearsalBuffer(capacity=120, random_state=0)
    sparse = RehearsalBuffer(capacity=120, random_state=0)
    on_disk = RehearsalBuffer(capacity=120, random_state=0, memmap_dir=tmp_path)
    for month in range(3):
        rows = months == month
        dense.partial_fit(X[rows], y[rows], month=month)
        sparse.partial_fit(sp.csr_matrix(X[rows]), y[rows], month=month)
        on_disk.partial_fit(sp.csc_matrix(X[rows]), y[rows], month=month)
    for buffer in (sparse, on_disk):
        assert sp.isspmatrix_csr(buffer.X_)
        np.testing.assert_array_equal(buffer.X_.toarray(), dense.X_)
    assert list(tmp_path.iterdir()) == []
    X_mix, y_mix = sparse.fit_resample(sp.csr_matrix(X[:50]), y[:50])
    X_ref, y_ref = dense.fit_resample(X[:50], y[:50])
    assert sp.issparse(X_mix)
    np.testing.assert_array_equal(X_mix.toarray(), X_ref)
    np.testing.assert_array_equal(y_mix, y_ref)
    with pytest.raises(ValueError, match="X is dense but the buffer stores sparse rows"):
        sparse.partial_fit(X[:5], y[:5], month=9)


def test_evaluation_scoring_and_splitters_take_sparse(sparse_stream):
    X, y, months = sparse_stream
    X_sparse = sp.csr_matrix(X)
    result = evaluate_stream({"naive": _clf()}, X_sparse, y, months, random_state=0)
    reference = evaluate_stream({"naive": _clf(module__sparse_input=True)}, X, y, months,
                                random_state=0)
    np.testing.assert_allclose([r["score"] for r in result.records],
                               [r["score"] for r in reference.records], atol=1e-6)
    clf = _clf().fit(X_sparse, y, months=months)
    scorer = ForgettingScorer(aggregate="mean")
    assert scorer(clf, X_sparse, y, months=months) == pytest.approx(
        scorer(clf, X_sparse.toarray(), y, months=months))
    for splitter in (MonthlyKFold(n_splits=2), TemporalSplit(n_splits=2)):
        splits = list(splitter.split(X_sparse, y, groups=months))
        assert [tuple(map(tuple, s)) for s in splits] == [
            tuple(map(tuple, s)) for s in splitter.split(X, y, groups=months)]


@pytest.mark.parametrize("strategy", ["naive", "ewc", "rehearsal",
                                      pytest.param("retrain", marks=pytest.mark.slow)])
def test_a_month_too_wide_to_densify_trains(strategy):
    # 2**22 features x 1,500 rows: 25 GB dense per month (more than this
    # machine's memory), 12 non-zeros per row
    n_features, n_rows, nnz = 2 ** 22, 1500, 12
    rng = np.random.default_rng(0)
    months = []
    for _ in range(2):
        columns = np.sort(rng.choice(n_features, size=(n_rows, nnz)), axis=1)
        X = sp.csr_matrix((np.ones(n_rows * nnz, dtype=np.float32), columns.ravel(),
                           np.arange(0, n_rows * nnz + 1, nnz)), shape=(n_rows, n_features))
        y = (columns[:, 0] < n_features // 2).astype(int)
        months.append((X, y))
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    params = dict(STRATEGIES[strategy])
    if strategy == "ewc":
        params["regularizer"] = EWC(lam=10.0, max_samples=300)
    clf = ContinualClassifier(max_epochs=1, batch_size=500, random_state=0,
                              module__hidden_units=(2,), **params)
    for X, y in months:
        clf.partial_fit(X, y, classes=[0, 1])
    proba = clf.predict_proba(months[0][0])
    grown = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024 - before
    assert proba.shape == (n_rows, 2) and np.isfinite(proba).all()
    # the model (2**22 x 2 weights, its gradient and Adam's moments) is ~130 MB
    assert grown < 1.5 * 2 ** 30, f"peak RSS grew by {grown / 2**30:.2f} GiB"


@pytest.mark.cuda
def test_sparse_batches_reach_cuda_as_sparse_tensors(sparse_stream):
    X, y, months = sparse_stream
    seen = []

    class Recorder(SparseInputLinear):
        def forward(self, X):
            seen.append((X.layout, X.device.type))
            return super().forward(X)

    clf = _clf(device="cuda").fit(sp.csr_matrix(X), y, months=months)
    clf.module_.layers[0].__class__ = Recorder
    clf.predict_proba(sp.csr_matrix(X[:10]))
    assert seen == [(torch.sparse_csr, "cuda")]
    cpu = _clf(module__sparse_input=True).fit(X, y, months=months)
    np.testing.assert_allclose(clf.predict_proba(sp.csr_matrix(X)), cpu.predict_proba(X),
                               atol=1e-4)


def test_benchmark_cli_reads_a_sparse_npz_with_a_labels_file(tmp_path, capsys):
    from skcl.benchmark import main
    from skcl.datasets import load_sparse_stream

    rng = np.random.default_rng(0)
    X = sp.random(180, 2000, density=0.02, format="csr", random_state=0, dtype=np.float32)
    y = (X @ rng.normal(size=2000) > 0).astype(int)
    sp.save_npz(tmp_path / "X.npz", X)
    np.savez(tmp_path / "labels.npz", month=np.repeat([201901, 201902, 201903], 60), label=y)
    X_loaded, y_loaded, months = load_sparse_stream(tmp_path / "X.npz", tmp_path / "labels.npz")
    assert sp.isspmatrix_csr(X_loaded) and (X_loaded != X).nnz == 0
    main(["--data", str(tmp_path / "X.npz"), "--labels", str(tmp_path / "labels.npz"),
          "--quick", "--strategies", "naive,rehearsal-fixed", "--out", str(tmp_path / "out")])
    assert (tmp_path / "out" / "results.csv").is_file()
    assert "sparse" in (tmp_path / "out" / "summary.json").read_text()
    with pytest.raises(SystemExit):
        main(["--data", str(tmp_path / "X.npz"), "--out", str(tmp_path / "out")])
    assert "pass --labels PATH" in capsys.readouterr().err
    np.savez(tmp_path / "one_month.npz", month=np.zeros(180, dtype=int), label=y)
    with pytest.raises(SystemExit) as exit_info:
        main(["--data", str(tmp_path / "X.npz"), "--labels", str(tmp_path / "one_month.npz"),
              "--quick", "--out", str(tmp_path / "out1")])
    assert exit_info.value.code == 2
    assert "holds 1 month (0); a continual benchmark needs at least 2" in capsys.readouterr().err
    np.savez(tmp_path / "short.npz", month=[0, 1], label=[0, 1])
    with pytest.raises(ValueError, match="has 2 rows but the matrix"):
        load_sparse_stream(tmp_path / "X.npz", tmp_path / "short.npz")


@pytest.mark.cuda
def test_months_beyond_the_device_budget_stream_from_the_host(sparse_stream, monkeypatch):
    import skcl._month

    X, y, months = sparse_stream
    params = dict(regularizer=EWC(lam=10.0), rehearsal=RehearsalBuffer(capacity=150))
    on_device = _clf(device="cuda", **params).fit(X, y, months=months)
    monkeypatch.setattr(skcl._month, "DEVICE_BUDGET_FRACTION", 0.0)
    streamed = _clf(device="cuda", **params).fit(X, y, months=months)
    retrained = _clf(device="cuda", update="retrain").fit(X, y, months=months)
    np.testing.assert_allclose(streamed.predict_proba(X), on_device.predict_proba(X),
                               atol=1e-4)
    assert retrained.score(X, y) > 0.6
