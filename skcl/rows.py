"""Rows of any form skcl hands to a strategy: helpers that work on all of them.

A custom strategy meets rows in a few forms, and code written for one breaks
on another (``np.concatenate`` on a sparse buffer, ``X.split(1)`` on a sparse
tensor). These helpers take each of them:

* in ``consolidate(net, X, y)`` and the training hooks, ``X`` is a torch
  tensor: dense (``torch.strided``) or of layout ``torch.sparse_csr`` for a
  sparse stream, on the device (or on the host for a dense month beyond the
  device's budget);
* in a :class:`~skcl.RehearsalBuffer`, the stored rows ``X_`` are a read-only
  ``ndarray``, a read-only ``numpy.memmap`` (with ``memmap_dir``) or a
  ``scipy.sparse.csr_matrix``, and the month passed to ``fit_resample`` /
  :meth:`~skcl.RehearsalBuffer.mix` is an ``ndarray`` or a CSR matrix.
"""

import numpy as np
import scipy.sparse as sp
import torch

from ._sparse import cat_rows, host_rows, is_scipy_sparse, torch_csr_take, torch_rows

__all__ = ["concat_rows", "row_chunks", "take_rows", "to_host_rows"]


def row_chunks(X, chunk_size=1024):
    """Yield consecutive blocks of at most ``chunk_size`` rows of ``X``.

    Parameters
    ----------
    X : torch.Tensor, ndarray or scipy.sparse matrix of shape (n_samples, n_features)
        Dense or ``sparse_csr`` tensor, array (memory-mapped included) or
        sparse matrix.
    chunk_size : int, default=1024
        Rows per block (``1``: one row at a time).

    Yields
    ------
    block : same kind as ``X``
        Rows ``start:start + chunk_size``, a view where the form allows.

    Examples
    --------
    >>> import torch
    >>> from skcl.rows import row_chunks
    >>> [block.shape[0] for block in row_chunks(torch.zeros(5, 2).to_sparse_csr(), 2)]
    [2, 2, 1]
    """
    if chunk_size < 1:
        raise ValueError(f"chunk_size={chunk_size!r} must be a positive number of rows")
    n_rows = X.shape[0]
    for start in range(0, n_rows, chunk_size):
        stop = min(start + chunk_size, n_rows)
        yield torch_rows(X, start, stop) if isinstance(X, torch.Tensor) else X[start:stop]


def take_rows(X, index):
    """Return the rows ``index`` of ``X``, in that order, in ``X``'s form.

    Parameters
    ----------
    X : torch.Tensor, ndarray or scipy.sparse matrix of shape (n_samples, n_features)
        Dense or ``sparse_csr`` tensor, array (memory-mapped included) or
        sparse matrix.
    index : array-like of int
        Row positions.

    Returns
    -------
    rows : same kind as ``X``
        A copy of the rows (an in-memory ``ndarray`` for a memory-mapped
        ``X``; a CSR matrix for any scipy sparse format).

    Examples
    --------
    >>> import numpy as np, scipy.sparse as sp
    >>> from skcl.rows import take_rows
    >>> take_rows(sp.csr_matrix(np.eye(3)), [2, 0]).toarray()
    array([[0., 0., 1.],
           [1., 0., 0.]])
    """
    if isinstance(X, torch.Tensor):
        if X.layout == torch.sparse_csr:
            return torch_csr_take(X, index)
        return X[torch.as_tensor(np.asarray(index), dtype=torch.long, device=X.device)]
    index = np.asarray(index, dtype=np.intp)
    if is_scipy_sparse(X):
        return sp.csr_matrix(X)[index]
    return np.asarray(X[index])


def concat_rows(parts):
    """Stack the rows of ``parts``, all of one form, into one block of that form.

    Parameters
    ----------
    parts : sequence of torch.Tensor, ndarray or scipy.sparse matrix
        Blocks with the same number of columns: all tensors (dense, or all
        ``sparse_csr``), or host rows (arrays and sparse matrices; one sparse
        part makes the result sparse).

    Returns
    -------
    rows : torch.Tensor, ndarray or scipy.sparse.csr_matrix
        The rows of every part, in order.

    Examples
    --------
    >>> import numpy as np, scipy.sparse as sp
    >>> from skcl.rows import concat_rows
    >>> concat_rows([sp.csr_matrix(np.eye(2)), np.ones((1, 2))]).toarray()
    array([[1., 0.],
           [0., 1.],
           [1., 1.]])
    """
    parts = list(parts)
    if not parts:
        raise ValueError("parts is empty; pass at least one block of rows")
    if isinstance(parts[0], torch.Tensor):
        return cat_rows(parts)
    if any(is_scipy_sparse(part) for part in parts):
        return sp.vstack([sp.csr_matrix(part) for part in parts], format="csr")
    return np.concatenate([np.asarray(part) for part in parts])


def to_host_rows(X):
    """Return a tensor's rows on the host: a scipy CSR matrix if sparse, else an ndarray.

    Parameters
    ----------
    X : torch.Tensor of shape (n_samples, n_features)
        Dense or sparse, on any device.

    Returns
    -------
    rows : ndarray or scipy.sparse.csr_matrix
        Shares ``X``'s memory on the CPU where it can.

    Examples
    --------
    >>> import torch
    >>> from skcl.rows import to_host_rows
    >>> to_host_rows(torch.eye(2).to_sparse_csr()).toarray()
    array([[1., 0.],
           [0., 1.]], dtype=float32)
    """
    return host_rows(X)
