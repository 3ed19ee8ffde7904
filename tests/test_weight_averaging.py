"""weight_averaging / averaging_decay: the deployed weights averaged across months."""

import joblib
import numpy as np
import pytest
import torch
from _helpers import month_slices, state_equal
from skorch.callbacks import Callback


class RecordStart(Callback):
    def initialize(self):
        self.starts_ = []
        return self

    def on_train_begin(self, net, **kwargs):
        self.starts_.append({k: v.clone() for k, v in net.module_.state_dict().items()})


class RecordEnd(Callback):
    """The trained (unaveraged) weights at the end of each month's epochs."""

    def initialize(self):
        self.ends_ = []
        return self

    def on_train_end(self, net, **kwargs):
        self.ends_.append({k: v.clone() for k, v in net.module_.state_dict().items()})


@pytest.mark.parametrize("mode", ["ema", "interpolate"])
def test_averaged_weights_match_the_closed_form(stream, make_clf, mode):
    X, y, months = stream
    decay = 0.7
    clf = make_clf(weight_averaging=mode, averaging_decay=decay,
                   callbacks=[("start", RecordStart()), ("end", RecordEnd())])
    deployed = []
    for _month, rows in month_slices(months[:800]):
        clf.partial_fit(X[:800][rows], y[:800][rows], classes=[0, 1])
        deployed.append({k: v.clone() for k, v in clf.module_.state_dict().items()})
    trained = dict(clf.callbacks_)["end"].ends_
    starts = dict(clf.callbacks_)["start"].starts_
    expected = trained[0]
    for t in range(1, 4):
        expected = {k: decay * expected[k] + (1 - decay) * trained[t][k] for k in expected}
        for key in expected:
            torch.testing.assert_close(deployed[t][key], expected[key])
        # where month t trained from: the average (interpolate) or the raw path (ema)
        origin = deployed[t - 1] if mode == "interpolate" else trained[t - 1]
        assert all(torch.equal(starts[t][k], origin[k]) for k in origin)
    if mode == "ema":
        assert all(torch.equal(clf.training_weights_[k], trained[-1][k]) for k in trained[-1])
    else:
        assert "training_weights_" not in vars(clf)


def test_decay_zero_is_plain_fine_tuning(stream, make_clf):
    X, y, months = stream
    plain = make_clf().fit(X, y, months=months)
    averaged = make_clf(weight_averaging="interpolate", averaging_decay=0.0).fit(
        X, y, months=months)
    assert state_equal(plain.module_, averaged.module_)


@pytest.mark.parametrize("new_mode", [None, "interpolate"])
def test_switching_from_ema_continues_from_the_deployed_weights(stream, make_clf, new_mode):
    X, y, months = stream
    clf = make_clf(weight_averaging="ema", callbacks=[("start", RecordStart())])
    for month in (0, 1):
        clf.partial_fit(X[months == month], y[months == month], classes=[0, 1])
    deployed = {k: v.clone() for k, v in clf.module_.state_dict().items()}
    assert not all(torch.equal(clf.training_weights_[k], deployed[k]) for k in deployed)
    clf.set_params(weight_averaging=new_mode)
    clf.partial_fit(X[months == 2], y[months == 2])
    start = dict(clf.callbacks_)["start"].starts_[-1]
    assert all(torch.equal(start[k], deployed[k]) for k in deployed)
    assert "training_weights_" not in vars(clf)


def test_averaging_refuses_retrain_and_checks_decay(stream, make_clf):
    X, y, _ = stream
    with pytest.raises(ValueError, match="update='retrain' starts each month"):
        make_clf(update="retrain", weight_averaging="ema").partial_fit(X, y)
    with pytest.raises(ValueError, match="averaging_decay"):
        make_clf(weight_averaging="ema", averaging_decay=1.5).partial_fit(X, y)
    with pytest.raises(ValueError, match="weight_averaging"):
        make_clf(weight_averaging="swa").partial_fit(X, y)


def test_averaged_model_round_trips_and_resumes(stream, make_clf, tmp_path):
    X, y, months = stream
    clf = make_clf(weight_averaging="ema", averaging_decay=0.5)
    for month in (0, 1, 2):
        clf.partial_fit(X[months == month], y[months == month], classes=[0, 1])
    joblib.dump(clf, tmp_path / "m.joblib")
    loaded = joblib.load(tmp_path / "m.joblib")
    np.testing.assert_array_equal(loaded.predict_proba(X), clf.predict_proba(X))
    clf.partial_fit(X[months == 3], y[months == 3])
    loaded.partial_fit(X[months == 3], y[months == 3])
    assert state_equal(loaded.module_, clf.module_)


@pytest.mark.parametrize("mode", ["ema", "interpolate"])
def test_averaging_follows_a_growing_head(stream, make_clf, mode):
    X, y, months = stream
    y3 = np.where((months >= 2) & (np.arange(len(y)) % 5 == 0), 2, y)
    clf = make_clf(new_classes="grow", weight_averaging=mode, averaging_decay=0.5)
    for month in (0, 1, 2, 3):
        clf.partial_fit(X[months == month], y3[months == month],
                        classes=[0, 1] if month == 0 else None)
    assert list(clf.classes_) == [0, 1, 2]
    assert clf.predict_proba(X[:5]).shape == (5, 3)
    if mode == "ema":
        assert clf.training_weights_["layers.2.weight"].shape[0] == 3
