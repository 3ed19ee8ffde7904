"""Input validation of ``ContinualClassifier``: scikit-learn's, explained, plus float32's range."""

import numpy as np

from ._sparse import check_sparse_structure, is_scipy_sparse, to_csr
from .utils._sklearn_compat import validate_data

_FLOAT32_MAX = float(np.finfo(np.float32).max)
_NO_Y = object()  # validation of X alone (prediction), as opposed to y=None


def _validate_input(estimator, X, y, reset):
    """scikit-learn's validation, with skcl's explanations and the float32 check."""
    check_sparse_structure(X)   # before anything reads a crafted matrix's rows
    try:
        if y is _NO_Y:
            X = validate_data(estimator, X, reset=reset, dtype=[np.float32, np.float64],
                              accept_sparse=["csr", "csc", "coo"])
        else:
            X, y = validate_data(estimator, X, y, reset=reset, dtype=[np.float32, np.float64],
                                 accept_sparse=["csr", "csc", "coo"])
    except (ValueError, TypeError) as exc:
        _explain_input_error(X, exc)
        raise
    if is_scipy_sparse(X):
        X = to_csr(X, X.dtype)   # rows are gathered and batched as CSR
    if X.dtype == np.float64 and X.size:
        # on the stored values: scipy's abs(X) would sum duplicates in the
        # caller's own matrix, in place
        too_large = (np.unique(X.indices[np.abs(X.data) > _FLOAT32_MAX])
                     if is_scipy_sparse(X)
                     else np.flatnonzero(np.abs(X).max(axis=0) > _FLOAT32_MAX))
        if len(too_large):
            names = getattr(estimator, "feature_names_in_", None)
            columns = [names[c] if names is not None else int(c) for c in too_large[:5]]
            raise ValueError(
                f"X has values beyond float32's range (+-{_FLOAT32_MAX:.3g}) in columns "
                f"{columns}, which training and prediction would turn into inf/NaN; "
                "scale or clip those features"
            )
    return X if y is _NO_Y else (X, y)


def _explain_input_error(X, exc):
    """Raise scikit-learn's input error again with the fix, judged from ``X`` itself."""
    missing = np.asarray(X.isna()) if hasattr(X, "isna") else None
    if missing is not None and missing.any():
        if isinstance(exc, ValueError):
            return  # scikit-learn's own "Input X contains NaN"
        columns = list(np.asarray(X.columns)[missing.any(axis=0)]) if missing.ndim == 2 else []
        raise ValueError(
            f"Input X contains missing values (NaN, None or pd.NA) in columns "
            f"{columns[:5]}; impute or drop them first (e.g. a SimpleImputer in a Pipeline)"
        ) from exc
    if not isinstance(exc, ValueError):
        return  # scikit-learn's TypeError for objects that are not numbers, as is
    dtypes = getattr(X, "dtypes", None)
    kinds = ({dtype.kind for dtype in dtypes} if dtypes is not None
             else {np.asarray(X).dtype.kind} if not hasattr(X, "tocsr") else set())
    if kinds & set("OUS"):
        try:
            np.asarray(X, dtype=np.float64)
        except (TypeError, ValueError):
            raise ValueError(
                f"X must be numeric, but {exc}; encode text or categorical "
                "columns first (e.g. a OneHotEncoder in a Pipeline)"
            ) from exc
    if kinds <= set("fiu") and kinds:
        values = np.asarray(X, dtype=np.float64)
        if np.isinf(values).any():
            raise ValueError(
                f"{exc} Replace or clip infinite values before training or predicting"
            ) from exc
