"""GPU behaviour: training on CUDA, and CUDA-trained models loading on CPU.

Run with ``python -m pytest -m cuda`` on a machine with a GPU; skipped elsewhere.
"""

import subprocess
import sys
import textwrap

import joblib
import numpy as np
import pytest
import torch

from skcl import ContinualClassifier

pytestmark = [
    pytest.mark.cuda,
    pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device"),
]


def _strategy_params():
    """Regularizer and rehearsal objects, where their modules exist."""
    params = {}
    try:
        from skcl.regularizers import EWC

        params["regularizer"] = EWC(lam=10.0)
    except ImportError:
        pass
    try:
        from skcl.rehearsal import RehearsalBuffer

        params["rehearsal"] = RehearsalBuffer(capacity=300, replay_ratio=0.5)
    except ImportError:
        pass
    return params


def test_training_on_cuda_keeps_everything_on_the_device(stream):
    X, y, months = stream
    clf = ContinualClassifier(device="cuda", max_epochs=2, random_state=0,
                              module__hidden_units=(16,), **_strategy_params())
    clf.fit(X, y, months=months)
    assert all(p.device.type == "cuda" for p in clf.module_.parameters())
    for state in clf.optimizer_.state.values():
        assert state["exp_avg"].device.type == "cuda"
    cpu = ContinualClassifier(device="cpu", max_epochs=2, random_state=0,
                              module__hidden_units=(16,), **_strategy_params())
    cpu.fit(X, y, months=months)
    # not bit-identical across devices, but the same model up to float noise
    assert np.mean(clf.predict(X) == cpu.predict(X)) > 0.95


def test_cuda_trained_model_loads_on_a_cpu_only_machine(stream, tmp_path):
    X, y, months = stream
    clf = ContinualClassifier(device="cuda", max_epochs=2, random_state=0,
                              module__hidden_units=(16,), **_strategy_params())
    clf.fit(X[months < 3], y[months < 3], months=months[months < 3])
    model_path = tmp_path / "model.joblib"
    data_path = tmp_path / "data.npz"
    joblib.dump(clf, model_path)
    np.savez(data_path, X=X, y=y, months=months, proba=clf.predict_proba(X))
    script = textwrap.dedent(f"""
        import warnings
        import joblib, numpy as np, torch
        assert not torch.cuda.is_available()
        data = np.load({str(data_path)!r})
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            clf = joblib.load({str(model_path)!r})
        # skorch maps the device and says so in a warning
        assert str(clf.device) == "cpu", clf.device
        messages = [str(w.message) for w in caught]
        assert any("cpu" in m.lower() for m in messages), messages
        np.testing.assert_allclose(clf.predict_proba(data["X"]), data["proba"], atol=1e-5)
        rows = data["months"] == 3
        clf.partial_fit(data["X"][rows], data["y"][rows])
        print("ok", clf.n_months_seen_)
    """)
    result = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True,
        env={**__import__("os").environ, "CUDA_VISIBLE_DEVICES": ""},
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "ok 4"


def test_save_weights_from_cuda_loads_on_cpu(stream, tmp_path):
    X, y, months = stream
    clf = ContinualClassifier(device="cuda", max_epochs=1, random_state=0,
                              module__hidden_units=(16,)).fit(X, y, months=months)
    path = tmp_path / "weights.pt"
    clf.save_weights(path)
    loaded = ContinualClassifier(device="cpu", module__hidden_units=(16,)).load_weights(path)
    np.testing.assert_allclose(loaded.predict_proba(X), clf.predict_proba(X), atol=1e-5)


@pytest.mark.parametrize("first, second", [("cpu", "cuda"), ("cuda", "cpu"), ("cuda", "cuda:0")])
def test_device_changed_mid_stream_is_refused_until_fit(stream, first, second):
    # issue 23: the month's data went to the new device, the module stayed behind
    X, y, months = stream
    clf = ContinualClassifier(device=first, max_epochs=1, random_state=0,
                              module__hidden_units=(16,))
    clf.partial_fit(X[months == 0], y[months == 0], classes=[0, 1])
    clf.set_params(device=second)
    if torch.device(second).type == torch.device(first).type:   # cuda == cuda:0
        clf.partial_fit(X[months == 1], y[months == 1])
        return
    with pytest.raises(ValueError, match="was set after 1 months trained on"):
        clf.partial_fit(X[months == 1], y[months == 1])
    clf.fit(X, y, months=months)
    assert next(clf.module_.parameters()).device.type == torch.device(second).type
