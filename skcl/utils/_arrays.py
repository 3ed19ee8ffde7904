"""Small helpers on array-likes and label lists, shared by every module."""

import numpy as np

__all__ = ["as_list", "n_rows", "plain", "plain_list", "sample_rows"]


def n_rows(X):
    """Number of rows of an array-like (numpy, DataFrame, sparse matrix, list)."""
    shape = getattr(X, "shape", None)
    return int(shape[0]) if shape is not None else len(X)


def sample_rows(X, rows):
    """Rows ``rows`` of an array, DataFrame, sparse matrix or list (token lists, texts)."""
    if hasattr(X, "iloc"):
        return X.iloc[rows]
    if hasattr(X, "shape"):
        return X[rows]
    return [X[i] for i in rows]


def as_list(labels):
    """Month labels as Python values, for messages and dict keys.

    datetime64 labels stay numpy scalars: ``tolist`` would turn nanosecond ones
    into plain ints.
    """
    labels = np.asarray(labels)
    return list(labels) if labels.dtype.kind in "mM" else labels.tolist()


def plain(value):
    """A numpy scalar as the Python scalar it holds (for CSV and JSON)."""
    return value.item() if isinstance(value, np.generic) else value


def plain_list(values):
    """Every value of ``values`` as a plain Python scalar (see :func:`plain`)."""
    return [plain(value) for value in values]
