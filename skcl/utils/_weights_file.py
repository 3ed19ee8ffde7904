"""Reading a weights file of ``ContinualClassifier.save_weights``, checked completely.

A weights file is data from outside: it may be damaged, foreign (any file at
all) or crafted. Everything the estimator would take from it is checked here,
before the estimator changes: only tensors and plain values are unpickled,
``classes`` is a list that ``classes_`` could be (unique scalars of one type,
in sorted order: the order of the columns of ``predict_proba``), and every
floating-point tensor is finite (a NaN weight makes every prediction NaN).
Classes are in sorted order unless the loading estimator has
``new_classes="grow"``, whose ``classes_`` lists added labels in order of
arrival.
"""

import pickle
import warnings
from numbers import Integral, Real

import numpy as np
import torch

__all__ = ["read_weights_file"]


def read_weights_file(f, expected_format, sorted_classes=True):
    """Read and check a weights file; return its payload (a dict).

    Parameters
    ----------
    f : str, path-like or file-like
        What to read.
    expected_format : str
        The ``"format"`` entry a file of the current version holds.
    sorted_classes : bool, default=True
        Whether ``classes`` must be in sorted order, as ``classes_`` is
        unless ``new_classes="grow"`` appended labels in order of arrival.

    Returns
    -------
    payload : dict
        ``module_state``, ``classes``, ``n_features_in``, ``feature_names_in``
        and the optional ``sparse_input``, all checked.
    """
    payload = _load(f)
    if not isinstance(payload, dict) or payload.get("format") != expected_format:
        raise ValueError(
            f"{f!r} is not a weights file written by ContinualClassifier.save_weights "
            f"(expected format {expected_format!r}); load joblib files with joblib.load"
        )
    state = payload.get("module_state")
    classes = payload.get("classes")
    n_features = payload.get("n_features_in")
    names = payload.get("feature_names_in")
    if (not isinstance(state, dict)
            or not all(isinstance(v, torch.Tensor) for v in state.values())
            or not isinstance(classes, list) or len(classes) < 2
            or not isinstance(n_features, int) or n_features < 1
            or not (names is None or (isinstance(names, list) and len(names) == n_features))):
        raise ValueError(
            f"{f!r} has the weights format but inconsistent contents (module_state, "
            "classes, n_features_in or feature_names_in); write it again with "
            "save_weights"
        )
    check_saved_classes(classes, f, sorted_classes)
    check_finite_state(state, f)
    return payload


def _load(f):
    try:
        with warnings.catch_warnings():
            # torch warns about the protocol of any non-torch pickle it refuses
            warnings.simplefilter("ignore", UserWarning)
            return torch.load(f, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as exc:
        raise ValueError(
            f"{f!r} holds objects other than tensors and plain values, so it was "
            "not loaded (it is not a file written by save_weights); load a joblib "
            "file with joblib.load, and only if you trust its source"
        ) from exc
    except (RuntimeError, EOFError) as exc:
        raise ValueError(
            f"{f!r} is damaged or truncated ({exc}); write it again with save_weights"
        ) from exc
    except (OSError, TypeError, AttributeError):
        raise   # no such file, a directory, an object that is not a file
    except Exception as exc:
        # torch's unpickler meets a text or foreign binary file's bytes as
        # unknown opcodes (KeyError, IndexError, ValueError ...)
        raise ValueError(
            f"{f!r} is not a file written by save_weights ({type(exc).__name__}: {exc}); "
            "load joblib files with joblib.load, and write weights with save_weights"
        ) from exc


def check_saved_classes(classes, f, sorted_classes=True):
    """Refuse ``classes`` that no fitted ``classes_`` could be."""
    kinds = {_label_kind(label) for label in classes}
    if None in kinds:
        bad = next(label for label in classes if _label_kind(label) is None)
        raise ValueError(
            f"{f!r} lists the class {bad!r} of type {type(bad).__name__}; classes are "
            "ints, floats, strings or bools: write the file again with save_weights"
        )
    if len(kinds) > 1:
        raise ValueError(
            f"{f!r} lists classes of mixed types ({sorted(kinds)}): {classes[:10]!r}; a "
            "fitted classes_ holds one type: write the file again with save_weights"
        )
    if kinds == {"float"} and not all(np.isfinite(classes)):
        raise ValueError(f"{f!r} lists a non-finite class in {classes[:10]!r}; write the "
                         "file again with save_weights")
    unique = np.unique(np.asarray(classes)).tolist()
    if len(unique) != len(classes):
        duplicated = sorted({c for c in classes if classes.count(c) > 1})
        raise ValueError(
            f"{f!r} lists the classes {duplicated[:10]!r} more than once; each column of "
            "predict_proba is one class: write the file again with save_weights"
        )
    if sorted_classes and unique != list(classes):
        raise ValueError(
            f"{f!r} lists its classes as {classes[:10]!r}, not in sorted order "
            f"({unique[:10]!r}); the output columns follow classes_, which is sorted, so "
            "these labels would name the wrong columns. A model trained with "
            "new_classes='grow' lists added classes in order of arrival: load it with "
            "new_classes='grow'; otherwise write the file again with save_weights"
        )


def check_finite_state(state, f):
    """Refuse NaN or infinite weights (they make every prediction NaN)."""
    for key, tensor in state.items():
        if tensor.is_floating_point() or tensor.is_complex():
            bad = ~torch.isfinite(tensor)
            if bad.any():
                raise ValueError(
                    f"{f!r} holds {int(bad.sum())} non-finite values (NaN or inf) in "
                    f"{key!r}; a model trained by skcl never does (a diverged month is "
                    "rolled back): write the file again from a healthy model"
                )


def _label_kind(label):
    # bool before int: True is an Integral
    if isinstance(label, (bool, np.bool_)):
        return "bool"
    if isinstance(label, Integral):
        return "int"
    if isinstance(label, Real):
        return "float"
    if isinstance(label, str):
        return "str"
    return None
