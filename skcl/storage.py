"""RowStore: past rows kept once, in month-sized chunks, in memory or on disk."""

import copy
import mmap
import os
import tempfile

import numpy as np
import scipy.sparse as sp

from ._sparse import check_sparse_structure, is_scipy_sparse, to_csr

__all__ = ["RowStore"]

# Rows are copied into a memory-mapped chunk in blocks of about this many bytes,
# so a month larger than RAM is never loaded whole.
_COPY_BLOCK_BYTES = 64 * 2**20


class RowStore:
    """Append-only rows (features and labels) in month-sized chunks.

    What :class:`~skcl.ContinualClassifier` keeps as ``past_data_`` under
    ``update="retrain"``: every month is appended as one chunk (a copy of its
    rows, made once), so the history is held exactly once, appending costs
    the new month only (never a re-concatenation of the past), and batches
    are gathered from the chunks by :meth:`take`. Dense rows are kept as
    numpy arrays, sparse rows as ``scipy.sparse`` CSR matrices (never
    densified). With ``memmap_dir``, chunks live in anonymous files there
    (unlinked at creation, so nothing is left behind) and only the rows of the
    batches being gathered are read into memory. A pickled store holds the
    rows themselves; unpickled, they go back under ``memmap_dir`` (or, where
    that directory does not exist, at the next :meth:`append`, which moves
    any chunk held in memory there).

    Stored chunks are read-only and never written again. A copy
    (``copy.deepcopy``, which :class:`~skcl.ContinualClassifier` makes of its
    state before each call) gets its own list of chunks but shares the chunk
    arrays themselves: it costs a few bytes per chunk, and appending to one
    copy never changes the other. To undo appends without a copy, take
    :meth:`checkpoint` before and :meth:`rollback` to it after.

    Parameters
    ----------
    memmap_dir : str, path-like or None, default=None
        Directory for the chunks' files; ``None`` keeps them in memory.

    Attributes
    ----------
    n_features_in_ : int
        Number of features, fixed by the first :meth:`append`.
    sparse_ : bool
        Whether rows are stored as CSR matrices (fixed by the first append).
    dtype_ : numpy.dtype
        Feature dtype of the stored rows (fixed by the first append).

    Examples
    --------
    >>> import numpy as np
    >>> from skcl import RowStore
    >>> store = RowStore()
    >>> store = store.append(np.ones((3, 2), dtype=np.float32), np.array([0, 1, 0]))
    >>> marker = store.checkpoint()
    >>> store = store.append(np.zeros((2, 2), dtype=np.float32), np.array([1, 1]))
    >>> len(store), store.n_chunks
    (5, 2)
    >>> X, y = store.take([4, 0])
    >>> X.tolist(), y.tolist()
    ([[0.0, 0.0], [1.0, 1.0]], [1, 0])
    >>> len(store.rollback(marker))
    3
    """

    def __init__(self, memmap_dir=None):
        self.memmap_dir = memmap_dir
        self._X_chunks = []
        self._y_chunks = []
        self._offsets = [0]

    # ------------------------------------------------------------------
    # writing
    # ------------------------------------------------------------------
    def append(self, X, y=None):
        """Store a copy of the rows ``X`` (and labels ``y``) as one new chunk.

        Parameters
        ----------
        X : ndarray or scipy.sparse matrix of shape (n_samples, n_features)
            The rows; sparse input is stored as CSR, dense input in the dtype
            of the first append.
        y : array-like of shape (n_samples,) or None, default=None
            Their labels; either every append passes labels or none does.

        Returns
        -------
        self : RowStore
            The store, one chunk longer.
        """
        X_chunk = self._checked_rows(X)
        y_chunk = None
        if self._X_chunks and (y is not None) != bool(self._y_chunks):
            raise ValueError(
                "pass y to every append or to none: the store holds "
                f"{'labels' if self._y_chunks else 'no labels'}"
            )
        if y is not None:
            y_chunk = np.array(y, copy=True)
            if y_chunk.shape != (X_chunk.shape[0],):
                raise ValueError(
                    f"X has {X_chunk.shape[0]} rows but y has shape {y_chunk.shape}; "
                    "pass one label per row of X"
                )
            y_chunk.flags.writeable = False
        X_chunk = self._stored_copy(X_chunk)
        # chunks reloaded in memory (see __setstate__) join the new one on disk
        self._X_chunks[:] = self._spilled(self._X_chunks)
        self._X_chunks.append(X_chunk)
        if y_chunk is not None:
            self._y_chunks.append(y_chunk)
        self._offsets.append(self._offsets[-1] + X_chunk.shape[0])
        return self

    def checkpoint(self):
        """Return a marker of the current length, for :meth:`rollback`.

        Returns
        -------
        marker : int
            The number of chunks stored now.
        """
        return len(self._X_chunks)

    def rollback(self, marker):
        """Drop every chunk appended after :meth:`checkpoint` returned ``marker``.

        Parameters
        ----------
        marker : int
            A value returned by :meth:`checkpoint` of this store.

        Returns
        -------
        self : RowStore
            The store, as long as it was at the checkpoint.
        """
        if not 0 <= marker <= len(self._X_chunks):
            raise ValueError(
                f"marker={marker!r} is not a checkpoint of this store, which holds "
                f"{len(self._X_chunks)} chunks; pass a value returned by checkpoint()"
            )
        del self._X_chunks[marker:]
        del self._y_chunks[marker:]
        del self._offsets[marker + 1:]
        if not self._X_chunks:
            for name in ("n_features_in_", "sparse_", "dtype_"):
                self.__dict__.pop(name, None)
        return self

    def save_state(self):
        """Record the length; return the function that truncates back to it.

        The rollback protocol (see :meth:`skcl.Regularizer.save_state`):
        :class:`~skcl.ContinualClassifier` calls it on the objects a call may
        change, and an append is undone by truncation, without any copy of
        the rows.

        Returns
        -------
        restore : callable
            Called without arguments, truncates the store back to its length
            now.
        """
        marker = self.checkpoint()
        return lambda: self.rollback(marker)

    # ------------------------------------------------------------------
    # reading
    # ------------------------------------------------------------------
    def __len__(self):
        return self._offsets[-1]

    @property
    def n_chunks(self):
        """Number of chunks (appends) stored."""
        return len(self._X_chunks)

    @property
    def has_labels(self):
        """Whether the rows were stored with labels."""
        return bool(self._y_chunks)

    @property
    def nbytes(self):
        """Bytes held by the stored rows and labels (in memory or on disk)."""
        total = 0
        for X in self._X_chunks:
            arrays = (X.data, X.indices, X.indptr) if sp.issparse(X) else (X,)
            total += sum(array.nbytes for array in arrays)
        return total + sum(y.nbytes for y in self._y_chunks)

    def chunks(self):
        """Return the stored chunks, oldest first.

        Returns
        -------
        chunks : list of tuple
            ``(X_chunk, y_chunk)`` per append (``y_chunk`` is ``None``
            without labels); the arrays are read-only and shared, not copied.
        """
        labels = self._y_chunks or [None] * len(self._X_chunks)
        return list(zip(self._X_chunks, labels))

    def take(self, index):
        """Gather rows by position, in the order given.

        Parameters
        ----------
        index : array-like of int
            Positions in ``0 .. len(self) - 1`` (repeats allowed).

        Returns
        -------
        X : ndarray or scipy.sparse.csr_matrix of shape (len(index), n_features)
            The rows, a new array (CSR when the store is sparse).
        y : ndarray of shape (len(index),) or None
            Their labels, or ``None`` without labels.
        """
        index = np.asarray(index, dtype=np.intp).reshape(-1)
        if index.size and (index.min() < 0 or index.max() >= len(self)):
            raise IndexError(
                f"index out of range for a RowStore of {len(self)} rows; pass "
                "positions in 0 .. len(store) - 1"
            )
        if "n_features_in_" not in self.__dict__:
            raise ValueError("the store is empty; append rows before taking any")
        if len(self._X_chunks) == 1:
            y = self._y_chunks[0][index] if self._y_chunks else None
            return self._X_chunks[0][index], y
        offsets = np.asarray(self._offsets)
        chunk_of = np.searchsorted(offsets, index, side="right") - 1
        order = np.argsort(chunk_of, kind="stable")
        bounds = np.searchsorted(chunk_of[order], np.arange(len(self._X_chunks) + 1))
        y = None
        if self._y_chunks:
            y = np.empty(len(index), dtype=self._y_chunks[0].dtype)
        if self.sparse_:
            parts = []
        else:
            X = np.empty((len(index), self.n_features_in_), dtype=self.dtype_)
        for chunk, (lo, hi) in enumerate(zip(bounds[:-1], bounds[1:])):
            if lo == hi:
                continue
            positions = order[lo:hi]
            local = index[positions] - offsets[chunk]
            if self.sparse_:
                parts.append(self._X_chunks[chunk][local])
            else:
                X[positions] = self._X_chunks[chunk][local]
            if y is not None:
                y[positions] = self._y_chunks[chunk][local]
        if self.sparse_:
            # the parts follow chunk order; put the rows back in index order
            inverse = np.empty_like(order)
            inverse[order] = np.arange(len(order))
            X = sp.vstack(parts, format="csr")[inverse] if parts else to_csr(
                sp.csr_matrix((0, self.n_features_in_), dtype=self.dtype_))
        return X, y

    # ------------------------------------------------------------------
    # copies and persistence
    # ------------------------------------------------------------------
    def __deepcopy__(self, memo):
        # chunks are read-only and never written again: share them, copy the lists
        new = type(self).__new__(type(self))
        memo[id(self)] = new
        state = dict(self.__dict__)
        for name in ("_X_chunks", "_y_chunks", "_offsets"):
            state[name] = list(state[name])
        new.__dict__.update({k: (v if k in ("_X_chunks", "_y_chunks", "_offsets")
                                 else copy.deepcopy(v, memo))
                             for k, v in state.items()})
        return new

    def __getstate__(self):
        # memory-mapped chunks live in anonymous files private to this
        # process: pickle their rows (joblib streams them from the map)
        state = dict(self.__dict__)
        state["_X_chunks"] = [_in_memory(X) for X in self._X_chunks]
        return state

    def __setstate__(self, state):
        # a pickled history comes back in memory; with memmap_dir, it goes
        # back to disk at once (or, where that folder does not exist on this
        # machine, at the next append, which refuses a missing folder)
        self.__dict__.update(state)
        for X in self._X_chunks:
            _freeze(X)
        for y in self._y_chunks:
            y.flags.writeable = False
        if self.memmap_dir is not None and os.path.isdir(self.memmap_dir):
            self._X_chunks = self._spilled(self._X_chunks)

    def __repr__(self):
        kind = "sparse" if self.__dict__.get("sparse_") else "dense"
        where = "in memory" if self.memmap_dir is None else f"in {self.memmap_dir!r}"
        return (f"RowStore({len(self)} {kind} rows in {self.n_chunks} chunks, "
                f"{where})")

    # ------------------------------------------------------------------
    # internals
    # ------------------------------------------------------------------
    def _checked_rows(self, X):
        sparse = is_scipy_sparse(X)
        check_sparse_structure(X)   # before anything reads a crafted matrix's rows
        if not sparse:
            X = np.asarray(X)
        if X.ndim != 2:
            raise ValueError(
                f"X has shape {X.shape}; pass a 2-D array of shape (n_samples, n_features)"
            )
        if "n_features_in_" not in self.__dict__:
            self.n_features_in_ = X.shape[1]
            self.sparse_ = sparse
            self.dtype_ = np.dtype(np.float32 if sparse else X.dtype)
            return to_csr(X, self.dtype_) if sparse else X
        if X.shape[1] != self.n_features_in_:
            raise ValueError(
                f"X has {X.shape[1]} features, but the RowStore holds rows of "
                f"{self.n_features_in_}; pass the same columns every month"
            )
        if sparse != self.sparse_:
            raise ValueError(
                f"X is {'sparse' if sparse else 'dense'} but the store holds "
                f"{'sparse' if self.sparse_ else 'dense'} rows; pass one kind every "
                "month (e.g. scipy.sparse.csr_matrix(X))"
            )
        return to_csr(X, self.dtype_) if sparse else X

    def _spilled(self, chunks):
        """``chunks`` with every in-memory one copied under ``memmap_dir`` (if set)."""
        if self.memmap_dir is None:
            return list(chunks)
        return [X if _on_disk(X) else self._stored_copy(X) for X in chunks]

    def _stored_copy(self, X):
        """A read-only copy of ``X`` in memory or under ``memmap_dir``."""
        if self.memmap_dir is None:
            if sp.issparse(X):
                X = sp.csr_matrix((X.data.copy(), X.indices.copy(), X.indptr.copy()),
                                  shape=X.shape)
            else:
                X = np.array(X, dtype=self.dtype_, order="C", copy=True)
            return _freeze(X)
        if not os.path.isdir(self.memmap_dir):
            raise ValueError(
                f"memmap_dir={self.memmap_dir!r} is not an existing directory; "
                "create it or pass memmap_dir=None to keep the rows in memory"
            )
        if sp.issparse(X):
            X = sp.csr_matrix(
                (_to_memmap(X.data, self.memmap_dir), _to_memmap(X.indices, self.memmap_dir),
                 _to_memmap(X.indptr, self.memmap_dir)), shape=X.shape, copy=False)
            return _freeze(X)
        return _freeze(_to_memmap(X, self.memmap_dir, dtype=self.dtype_))


def _to_memmap(array, directory, dtype=None):
    """Copy ``array`` into an anonymous memory-mapped file in ``directory``."""
    dtype = np.dtype(array.dtype if dtype is None else dtype)
    with tempfile.TemporaryFile(dir=directory, prefix="skcl-rows-") as file:
        # the map keeps the (already unlinked) file alive after it is closed
        out = np.memmap(file, dtype=dtype, mode="w+", shape=array.shape)
    row_bytes = max(1, int(np.prod(array.shape[1:], dtype=np.int64)) * dtype.itemsize)
    block = max(1, _COPY_BLOCK_BYTES // row_bytes)
    for start in range(0, array.shape[0], block):
        out[start:start + block] = array[start:start + block]
    out.flush()
    return out


def _on_disk(X):
    """Whether every array of ``X`` is a view of a memory-mapped file."""
    arrays = (X.data, X.indices, X.indptr) if sp.issparse(X) else (X,)
    return all(_maps_a_file(array) for array in arrays)


def _maps_a_file(array):
    # scipy wraps the maps in plain ndarray views: follow the chain of bases
    while array is not None:
        if isinstance(array, (np.memmap, mmap.mmap)):
            return True
        array = getattr(array, "base", None)
    return False


def _freeze(X):
    arrays = (X.data, X.indices, X.indptr) if sp.issparse(X) else (X,)
    for array in arrays:
        array.flags.writeable = False
    return X


def _in_memory(X):
    if sp.issparse(X):
        if any(isinstance(a, np.memmap) for a in (X.data, X.indices, X.indptr)):
            return sp.csr_matrix((np.asarray(X.data), np.asarray(X.indices),
                                  np.asarray(X.indptr)), shape=X.shape)
        return X
    return np.asarray(X) if isinstance(X, np.memmap) else X
