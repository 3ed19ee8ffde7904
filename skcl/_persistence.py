"""The weights file of ``ContinualClassifier``: writing, reading and checking it.

``ContinualClassifier.save_weights`` / ``load_weights`` are thin public methods
calling :func:`save_weights` / :func:`load_weights` here. The file holds only
tensors and plain values, read back with ``torch.load(weights_only=True)``.
"""

import io
import os

import numpy as np
import torch

from ._distributed import run_on_main_process
from ._head_growth import grow_output_layer
from .utils._files import write_atomically
from .utils._seeding import draw_seed, seeded_global_torch
from .utils._weights_file import read_weights_file

_WEIGHTS_FORMAT = "skcl.weights/1"
# skorch's bookkeeping, which a fresh ``fit`` keeps (shared with classifier.py)
_SKORCH_STATE = {"initialized_", "virtual_params_", "init_context_", "prefixes_",
                 "cuda_dependent_attributes_"}


def save_weights(estimator, f):
    """Write ``estimator``'s weights file (see ``ContinualClassifier.save_weights``)."""
    estimator.check_is_fitted()
    feature_names = getattr(estimator, "feature_names_in_", None)
    payload = {
        "format": _WEIGHTS_FORMAT,
        "module_state": {k: v.detach().to("cpu")
                         for k, v in estimator.module_.state_dict().items()},
        "classes": estimator.classes_.tolist(),
        "n_features_in": int(estimator.n_features_in_),
        "feature_names_in": None if feature_names is None else feature_names.tolist(),
        # the bundled MLP's first layer differs for sparse input (optional key)
        "sparse_input": bool(estimator.__dict__.get("_sparse_input", False)),
    }
    buffer = io.BytesIO()
    torch.save(payload, buffer)
    if hasattr(f, "write"):
        f.write(buffer.getvalue())
        return
    # under distributed=True, rank 0 writes and the other ranks wait for it
    run_on_main_process(estimator, lambda: write_atomically(os.fspath(f), buffer.getvalue()))


def load_weights(estimator, f):
    """Load a weights file into ``estimator`` (see ``ContinualClassifier.load_weights``)."""
    # classes_ is sorted, except where new_classes="grow" appended labels
    payload = _read_weights(f, sorted_classes=estimator.new_classes != "grow")
    estimator._check_params()
    check_weights_match(estimator, payload, f)
    rebuild_network(estimator, np.asarray(payload["classes"]), payload["n_features_in"],
                    bool(payload.get("sparse_input", False)), payload["module_state"],
                    seed=None)
    if payload["feature_names_in"] is not None:
        estimator.feature_names_in_ = np.asarray(payload["feature_names_in"], dtype=object)
    return estimator


def rebuild_network(estimator, classes, n_features, sparse_input, module_state, seed):
    """Start ``estimator``'s stream over with a network holding ``module_state``.

    What loading a weights file and a checkpoint share: every fitted attribute
    forgotten, the classes and width set, the network built (``seed=None``:
    from the estimator's fresh ``rng_``), grown to the saved classes where a
    module instance has its first size (``new_classes="grow"`` saved it
    grown), then its weights loaded.
    """
    estimator._reset()
    estimator.classes_ = classes
    estimator.n_features_in_ = n_features
    estimator._start_stream(sparse_input=sparse_input)
    if seed is None:
        seed = draw_seed(estimator.rng_)
    with seeded_global_torch(seed, estimator.device):
        estimator._initialize_month_state()
    grow_output_layer(estimator, None, seed, required=False)
    estimator.module_.load_state_dict(module_state)


def check_weights_match(estimator, payload, f):
    """Refuse a payload whose tensors this estimator's module cannot hold.

    The module is built on the ``meta`` device: shapes without memory, so
    a file claiming millions of features costs nothing to refuse.
    """
    probe = type(estimator).__new__(type(estimator))
    probe.__dict__.update({k: v for k, v in estimator.__dict__.items()
                           if not k.endswith("_") or k in _SKORCH_STATE})
    probe.classes_ = np.asarray(payload["classes"])
    probe.n_features_in_ = payload["n_features_in"]
    probe._sparse_input = bool(payload.get("sparse_input", False))
    with torch.device("meta"), probe._current_init_context("module"):
        probe.initialize_module()
        grow_output_layer(probe, None, None, required=False)
        expected = probe.module_.state_dict()
    saved = payload["module_state"]
    problems = [f"{key!r} is missing" for key in expected if key not in saved]
    problems += [f"{key!r} is not in this module" for key in saved if key not in expected]
    problems += [
        f"{key!r} has shape {tuple(saved[key].shape)} where this module has "
        f"{tuple(expected[key].shape)}"
        for key in expected
        if key in saved and tuple(saved[key].shape) != tuple(expected[key].shape)
    ]
    if problems:
        raise ValueError(
            f"{f!r} does not fit this estimator's module (built with its module__* "
            f"parameters, n_features={payload['n_features_in']}, n_classes="
            f"{len(payload['classes'])} for the classes {payload['classes'][:20]!r})"
            f": {'; '.join(problems[:5])}. Set the module parameters of the "
            "estimator that saved it"
        )


def _read_weights(f, sorted_classes=True):
    """Read and check a weights file: only tensors and plain values, skcl's format."""
    return read_weights_file(f, _WEIGHTS_FORMAT, sorted_classes=sorted_classes)
