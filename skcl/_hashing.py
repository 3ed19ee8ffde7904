"""A table with text columns as one sparse matrix: the feature hashing of ``--hash-features``.

Hashing is stateless (no vocabulary is learned), so hashing a whole file once
gives every month the very rows a ``FeatureHasher`` step of a
:class:`~skcl.ContinualPipeline` would give it month by month.
"""

import numpy as np
from sklearn.feature_extraction import FeatureHasher

__all__ = ["hash_columns"]


def hash_columns(frame, text_columns, n_features):
    """Hash the rows of ``frame`` into a CSR matrix of ``n_features`` float32 columns.

    Each text column contributes one feature per whitespace-separated token,
    named ``"column=token"`` (a token repeated in a cell counts once per
    occurrence); each other column one feature named after it, holding its
    value. Names are hashed by scikit-learn's :class:`FeatureHasher`.
    """
    text_columns = [str(c) for c in text_columns]
    names = [str(c) for c in frame.columns]

    def rows():
        for record in frame.itertuples(index=False, name=None):
            row = {}
            for name, value in zip(names, record):
                if name in text_columns:
                    for token in str(value).split():
                        key = f"{name}={token}"
                        row[key] = row.get(key, 0.0) + 1.0
                else:
                    row[name] = float(value)
            yield row

    hasher = FeatureHasher(n_features=n_features, input_type="dict", dtype=np.float32)
    return hasher.transform(rows()).tocsr()
