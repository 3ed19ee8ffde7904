"""Third hostile pass (issue 23): crafted or mid-stream changes never get past unchecked."""

import numpy as np
import pytest
import scipy.sparse as sp

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
