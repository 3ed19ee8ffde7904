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
    "as_layout",
    "cat_rows",
    "check_sparse_structure",
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


def check_sparse_structure(X, name="X"):
    """Refuse a scipy sparse matrix whose index arrays do not describe its shape.

    scipy checks a matrix's structure when it is built from arrays, but not
    when its arrays are changed afterwards or read from a crafted ``.npz``;
    its compiled routines (and torch's) then read and write out of bounds.
    This is the check every sparse entry point makes once, before anything
    reads the rows: for CSR/CSC/BSR, ``indptr`` has one entry per row (column)
    plus one, starts at 0, never decreases and ends at the number of stored
    entries, and every index is in ``0 .. n - 1``; for COO, every coordinate
    is inside the shape. Cost: a few vectorized passes over the index arrays
    (no copy of the values). Other formats (LIL, DOK, DIA) hold Python
    structures that scipy converts safely and are returned unchecked.

    Parameters
    ----------
    X : scipy.sparse matrix or array
        The matrix to check.
    name : str, default="X"
        How errors name it.

    Returns
    -------
    X : scipy.sparse matrix or array
        ``X`` itself, unchanged.
    """
    if not sp.issparse(X):
        return X
    fix = (f"; {name} is not a valid sparse matrix: build it with "
           "scipy.sparse.csr_matrix((data, indices, indptr), shape=...), which checks "
           "its structure, or find the bad entry with X.check_format(full_check=True)")
    shape = X.shape
    if len(shape) != 2 or min(shape) < 0:
        raise ValueError(f"{name} has shape {shape}; pass a 2-D matrix{fix}")
    if X.format == "coo":
        for axis, coords in enumerate(_coords(X)):
            _check_indices(coords, shape[axis], f"{name}.coords[{axis}]",
                           ("row", "column")[axis], fix)
        if len(X.data) != len(_coords(X)[0]):
            raise ValueError(f"{name} has {len(X.data)} values but {len(_coords(X)[0])} "
                             f"coordinates{fix}")
        return X
    if X.format not in ("csr", "csc", "bsr"):
        return X
    blocks = X.blocksize if X.format == "bsr" else (1, 1)
    n_major, n_minor = ((shape[0] // blocks[0], shape[1] // blocks[1]) if X.format != "csc"
                        else (shape[1], shape[0]))
    major, minor = ("row", "column") if X.format != "csc" else ("column", "row")
    indptr, indices = X.indptr, X.indices
    for array_name, array in (("indptr", indptr), ("indices", indices)):
        if not (isinstance(array, np.ndarray) and array.ndim == 1
                and array.dtype.kind in "iu"):
            raise TypeError(
                f"{name}.{array_name} must be a 1-D integer array, got "
                f"{type(array).__name__} of dtype {getattr(array, 'dtype', None)} and "
                f"shape {getattr(array, 'shape', None)}{fix}")
    if len(indptr) != n_major + 1:
        raise ValueError(
            f"{name}.indptr has {len(indptr)} entries, but a {X.format.upper()} matrix "
            f"of shape {shape} needs {n_major + 1} (one per {major}, plus one){fix}")
    if indptr[0] != 0:
        raise ValueError(f"{name}.indptr[0] is {int(indptr[0])}, not 0{fix}")
    steps = np.diff(indptr)
    if len(steps) and steps.min() < 0:
        at = int(np.argmax(steps < 0))
        raise ValueError(
            f"{name}.indptr decreases at {major} {at}: indptr[{at}] = {int(indptr[at])} "
            f"> indptr[{at + 1}] = {int(indptr[at + 1])}{fix}")
    if X.format != "bsr" and np.ndim(X.data) != 1:
        raise ValueError(f"{name}.data has shape {np.shape(X.data)}; a {X.format.upper()} "
                         f"matrix stores one value per entry, a 1-D array{fix}")
    n_stored = int(indptr[-1])
    data_length = len(X.data)
    if not n_stored == len(indices) == data_length:
        raise ValueError(
            f"{name}.indptr[-1] = {n_stored} stored entries, but {name}.indices has "
            f"{len(indices)} and {name}.data has {data_length}; the three must agree{fix}")
    _check_indices(indices, n_minor, f"{name}.indices", minor, fix, indptr=indptr,
                   major=major)
    return X


def _coords(X):
    return X.coords if hasattr(X, "coords") else (X.row, X.col)


def _check_indices(indices, bound, label, what, fix, indptr=None, major=None):
    """Refuse any entry of ``indices`` outside ``0 .. bound - 1``, naming the first."""
    indices = np.asarray(indices)
    if indices.dtype.kind not in "iu":
        raise TypeError(f"{label} must hold integers, got dtype {indices.dtype}{fix}")
    if not len(indices):
        return
    low, high = indices.min(), indices.max()
    if low >= 0 and high < bound:
        return
    at = int(np.argmax((indices < 0) | (indices >= bound)))
    where = ""
    if indptr is not None:
        where = f" ({major} {int(np.searchsorted(indptr, at, side='right')) - 1})"
    raise ValueError(
        f"{label}[{at}] = {int(indices[at])}{where} is not a valid {what} index: a "
        f"matrix of {bound} {what}s takes 0 .. {bound - 1}{fix}")


def as_layout(X, sparse):
    """``X`` as CSR rows if ``sparse``, else as a dense ndarray (no copy if it is one)."""
    if sparse == is_scipy_sparse(X):
        return X
    return to_csr(X, X.dtype) if sparse else X.toarray()


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
