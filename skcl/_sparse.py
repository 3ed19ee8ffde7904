"""Sparse rows between scipy and torch: the conversions every sparse path shares.

On the host, sparse rows are ``scipy.sparse`` CSR matrices (``float32`` values,
``int32`` or ``int64`` indices). On their way to a module they become torch
tensors of layout ``torch.sparse_csr`` sharing the host arrays (no copy on
CPU), which ``torch.nn.Linear``, ``torch.sparse.mm`` and ``@`` multiply
without densifying. Torch's CSR support lacks row indexing and element-wise
powers, so the few such operations the package needs live here.
"""

import warnings

import numpy as np
import scipy.sparse as sp
import torch

__all__ = [
    "cat_rows",
    "host_rows",
    "is_scipy_sparse",
    "is_torch_sparse",
    "to_csr",
    "to_torch_csr",
    "to_scipy_csr",
    "torch_csr_rows",
    "torch_csr_take",
    "torch_csr_values_map",
    "torch_rows",
]


def is_scipy_sparse(X):
    """True for a ``scipy.sparse`` matrix or array of any format."""
    return sp.issparse(X)


def is_torch_sparse(X):
    """True for a torch tensor of any sparse layout (COO, CSR, CSC, ...)."""
    return isinstance(X, torch.Tensor) and X.layout != torch.strided


def to_csr(X, dtype=np.float32):
    """``X`` as a ``scipy.sparse.csr_matrix`` of ``dtype`` with sorted indices.

    Returns ``X`` itself when it already is one (no copy).
    """
    if not isinstance(X, sp.csr_matrix):
        X = sp.csr_matrix(X)
    if X.dtype != dtype:
        X = X.astype(dtype)
    if not X.has_sorted_indices:
        X = X.sorted_indices()
    return X


def to_torch_csr(X, device=None, non_blocking=False):
    """A torch ``sparse_csr`` tensor holding the scipy CSR matrix ``X``.

    On CPU the tensor shares ``X``'s arrays (no copy); on another device it is
    one copy of the non-zeros. Index dtype (int32 or int64) is kept: torch's
    sparse products accept both, and int32 halves the bytes moved.
    """
    indptr, indices = X.indptr, X.indices
    if indptr.dtype != indices.dtype:
        indptr, indices = indptr.astype(np.int64), indices.astype(np.int64)
    with warnings.catch_warnings():
        # "sparse CSR support is in beta": the operations used here are stable
        warnings.simplefilter("ignore", UserWarning)
        tensor = torch.sparse_csr_tensor(
            _from_numpy(indptr), _from_numpy(indices), _from_numpy(X.data),
            size=X.shape, check_invariants=False,
        )
    if device is not None and torch.device(device) != tensor.device:
        tensor = tensor.to(device, non_blocking=non_blocking)
    return tensor


def to_scipy_csr(X):
    """A ``scipy.sparse.csr_matrix`` with the rows of a torch CSR (or COO) tensor."""
    if X.layout != torch.sparse_csr:
        X = X.to_sparse_csr()
    X = X.detach().cpu()
    return sp.csr_matrix(
        (X.values().numpy(), X.col_indices().numpy(), X.crow_indices().numpy()),
        shape=tuple(X.shape),
    )


def torch_csr_rows(X, start, stop):
    """Rows ``start:stop`` of a torch CSR tensor (CSR tensors cannot be sliced)."""
    crow = X.crow_indices()
    stop = min(stop, X.shape[0])
    first, last = int(crow[start]), int(crow[stop])
    return _csr_like(X, crow[start:stop + 1] - first, X.col_indices()[first:last],
                     X.values()[first:last], (stop - start, X.shape[1]))


def torch_csr_take(X, rows):
    """Rows ``rows`` (an index tensor or array) of a torch CSR tensor, in that order."""
    host = to_scipy_csr(X)[np.asarray(torch.as_tensor(rows).cpu())]
    return to_torch_csr(host, device=X.device).to(X.dtype)


def torch_csr_values_map(X, function):
    """A CSR tensor with ``X``'s pattern and ``function(values)`` as values.

    Valid for element-wise functions with ``function(0) == 0`` (``square``,
    a power): the result is then the dense ``function(X)``, kept sparse.
    """
    return _csr_like(X, X.crow_indices(), X.col_indices(), function(X.values()),
                     tuple(X.shape))


def _csr_like(X, crow, col, values, shape):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        return torch.sparse_csr_tensor(crow, col, values, size=shape,
                                       check_invariants=False)


def _from_numpy(array):
    # torch.from_numpy refuses read-only arrays with a warning; memory-mapped
    # or shared chunks are read-only, and torch never writes through these
    if not array.flags.writeable:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", UserWarning)
            return torch.from_numpy(array)
    return torch.from_numpy(np.ascontiguousarray(array))


def host_rows(X):
    """A tensor's rows on the host: a scipy CSR matrix if sparse, else an ndarray."""
    return to_scipy_csr(X) if is_torch_sparse(X) else X.detach().cpu().numpy()


def torch_rows(X, start, stop):
    """Rows ``start:stop`` of a dense or CSR tensor."""
    if X.layout == torch.sparse_csr:
        return torch_csr_rows(X, start, stop)
    return X[start:stop]


def cat_rows(tensors):
    """Concatenate dense tensors, or CSR tensors (through the host), by rows."""
    if tensors[0].layout != torch.sparse_csr:
        return torch.cat(tensors)
    if len(tensors) == 1:
        return tensors[0]
    stacked = sp.vstack([to_scipy_csr(t) for t in tensors], format="csr")
    return to_torch_csr(stacked, device=tensors[0].device)
