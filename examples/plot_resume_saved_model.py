"""
Saving a model and resuming next month
======================================

A model updated every month is saved after each update and loaded for the
next one, often in another process. This example saves a
:class:`~skcl.ContinualClassifier` mid-stream with :mod:`joblib`, resumes
training from the file, and checks that the result is exactly the run that
never stopped. It then shares the model the safe way, as weights only, with
:meth:`~skcl.ContinualClassifier.save_weights` and
:meth:`~skcl.ContinualClassifier.load_weights`.

Read more in the :ref:`User Guide <persistence>`.
"""

# %%
# Months 0 to 3, then save
# ------------------------
import shutil
import tempfile
from pathlib import Path

import joblib
import numpy as np

from skcl import ContinualClassifier
from skcl.datasets import make_drifting_stream

X, y, months = make_drifting_stream(n_months=6, n_samples_per_month=400, random_state=0)
folder = Path(tempfile.mkdtemp())


def month_rows(month):
    return months == month


clf = ContinualClassifier(max_epochs=3, finetune_lr=3e-4, random_state=0)
for month in range(4):
    clf.partial_fit(X[month_rows(month)], y[month_rows(month)], classes=[0, 1], month=month)
joblib.dump(clf, folder / "detector-month-3.joblib")

# %%
# Next month, in a new process: load and continue
# -----------------------------------------------
# The joblib file holds the whole estimator: weights, optimizer state,
# strategy state and the random generator. Training continues as if the
# process had never stopped.
resumed = joblib.load(folder / "detector-month-3.joblib")
for month in (4, 5):
    resumed.partial_fit(X[month_rows(month)], y[month_rows(month)], month=month)

uninterrupted = ContinualClassifier(max_epochs=3, finetune_lr=3e-4, random_state=0)
for month in range(6):
    uninterrupted.partial_fit(X[month_rows(month)], y[month_rows(month)], classes=[0, 1],
                              month=month)

same = np.array_equal(resumed.predict_proba(X), uninterrupted.predict_proba(X))
print("resumed run identical to the uninterrupted one:", same)

# %%
# Sharing: weights only
# ---------------------
# Loading a joblib file can run arbitrary code, so share models with anyone
# you would not let run code on your machine as weights. The file holds
# tensors and plain values only (the network's ``state_dict``, the classes,
# the number and names of the features) and is read back with
# ``torch.load(weights_only=True)``.
resumed.save_weights(folder / "detector-month-5.pt")

receiver = ContinualClassifier()          # same architecture as the sender's
receiver.load_weights(folder / "detector-month-5.pt")
print("same predictions after load_weights:",
      np.allclose(receiver.predict_proba(X), resumed.predict_proba(X)))

# %%
# ``load_weights`` refuses anything else, such as a joblib file:
joblib_file = folder / "detector-month-3.joblib"
try:
    ContinualClassifier().load_weights(joblib_file)
except ValueError as error:
    print("refused:", str(error).replace(repr(joblib_file), repr(joblib_file.name)))

# %%
# The receiver can fine-tune the loaded weights on months of its own; its
# optimizer and strategies start afresh.
receiver.partial_fit(X[month_rows(5)], y[month_rows(5)])
print("months trained on by the receiver:", receiver.n_months_seen_)

shutil.rmtree(folder)
