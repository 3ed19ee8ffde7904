"""Early stopping told from Ctrl-C without reading any source file."""

import linecache
import os
import signal
import textwrap

import pytest
from skorch.callbacks import Callback, EarlyStopping
from skorch.dataset import ValidSplit

# A callback whose source exists nowhere: compiled from a string, as in a
# deployment that ships byte code only.
_NAMESPACE = {"Callback": Callback}
exec(compile(textwrap.dedent("""
    class StopAfter(Callback):
        def __init__(self, n_epochs=2):
            self.n_epochs = n_epochs

        def initialize(self):
            self.seen_ = 0
            return self

        def on_epoch_end(self, net, **kwargs):
            self.seen_ += 1
            if self.seen_ >= self.n_epochs:
                raise KeyboardInterrupt
"""), "<no source file>", "exec"), _NAMESPACE)
StopAfter = _NAMESPACE["StopAfter"]


def _interrupt():
    raise KeyboardInterrupt


class CtrlCInOnEpochEnd(Callback):
    """The signal arrives while the callback's on_epoch_end runs (a real Ctrl-C)."""

    def on_epoch_end(self, net, **kwargs):
        os.kill(os.getpid(), signal.SIGINT)
        sum(range(1000))  # the interpreter checks for signals here


class HelperInterrupts(Callback):
    def on_epoch_end(self, net, **kwargs):
        _interrupt()  # raised in a deeper frame: not the callback's own stop


@pytest.fixture
def no_source(monkeypatch):
    """Source lines unreadable, as without installed .py files (what the old check read)."""
    linecache.clearcache()
    monkeypatch.setattr(linecache, "getline", lambda *args, **kwargs: "")


def test_early_stopping_ends_the_month_without_source_files(no_source, stream, make_clf):
    X, y, months = stream
    clf = make_clf(max_epochs=50, train_split=ValidSplit(5),
                   callbacks=[EarlyStopping(patience=1, threshold=10.0)])
    clf.partial_fit(X[months == 0], y[months == 0], classes=[0, 1])
    assert clf.n_months_seen_ == 1 and len(clf.history) < 50


def test_a_callback_without_any_source_stops_the_month_normally(no_source, stream, make_clf):
    X, y, months = stream
    clf = make_clf(max_epochs=10, callbacks=[("stop", StopAfter(n_epochs=2))])
    clf.partial_fit(X[months == 0], y[months == 0], classes=[0, 1])
    assert clf.n_months_seen_ == 1 and len(clf.history) == 2


@pytest.mark.parametrize("callback", [CtrlCInOnEpochEnd, HelperInterrupts])
def test_ctrl_c_during_on_epoch_end_rolls_the_month_back(no_source, stream, make_clf,
                                                         callback):
    X, y, months = stream
    clf = make_clf(max_epochs=3, callbacks=[("cb", callback())])
    with pytest.raises(KeyboardInterrupt):
        clf.partial_fit(X[months == 0], y[months == 0], classes=[0, 1])
    assert not hasattr(clf, "n_months_seen_")
