"""Checks of a stream read from files, before the benchmark trains anything.

``skcl-benchmark --data`` reads months, labels and features written by anyone:
each is checked here for what would otherwise train silently (a missing month
becoming a month called ``nan``) or fail mid-run with a traceback (NaN
features in a ``.npz``, continuous labels), so the command line answers with a
usage error naming the rows.
"""

import numpy as np
import scipy.sparse as sp
from sklearn.utils.multiclass import type_of_target

from ._months import missing_mask

__all__ = ["check_loaded_stream"]

_FLOAT32_MAX = float(np.finfo(np.float32).max)


def check_loaded_stream(X, y, months, *, month_name="month", label_name="label"):
    """Raise ``ValueError`` for missing months or labels, non-class labels, bad features.

    Parameters
    ----------
    X : ndarray or scipy.sparse matrix of shape (n_samples, n_features)
        The features (already structurally valid).
    y : ndarray of shape (n_samples,)
        The labels.
    months : ndarray of shape (n_samples,)
        The month of each row.
    month_name, label_name : str
        How errors name the two columns.
    """
    for name, values in ((month_name, months), (label_name, y)):
        missing = missing_mask(np.asarray(values))
        if missing.any():
            rows = np.flatnonzero(missing)
            raise ValueError(
                f"the {name} column has {len(rows)} missing values (NaN or empty), at rows "
                f"{rows[:10].tolist()}; fill them in or drop those rows"
            )
    kind = type_of_target(np.asarray(y))
    if kind not in ("binary", "multiclass"):
        raise ValueError(
            f"the {label_name} column holds {kind} values (e.g. "
            f"{np.asarray(y)[:3].tolist()}), not class labels; a classification "
            "benchmark needs a column of classes (ints or strings)"
        )
    if np.dtype(X.dtype).kind not in "biuf":
        raise ValueError(
            f"the features are of dtype {X.dtype}, not real numbers; save them as floats"
        )
    if sp.issparse(X):
        bad = np.flatnonzero(~(np.abs(X.data) <= _FLOAT32_MAX))
        if len(bad):
            X = sp.csr_matrix(X)
            bad = np.flatnonzero(~(np.abs(X.data) <= _FLOAT32_MAX))
            row = int(np.searchsorted(X.indptr, bad[0], side="right") - 1)
            raise ValueError(
                f"the features hold {len(bad)} NaN, infinite or beyond-float32 values, "
                f"e.g. {float(X.data[bad[0]])!r} at row {row}, column {int(X.indices[bad[0]])}; "
                "impute, clip or drop them"
            )
