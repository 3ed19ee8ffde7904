"""
Preprocessing: a scaler in front of the network
===============================================

Neural networks train badly on features of very different scales. This
example puts a :class:`~sklearn.preprocessing.StandardScaler` in front of a
:class:`~skcl.ContinualClassifier` in two ways: inside a
:class:`~sklearn.pipeline.Pipeline` trained on a whole stream (what model
selection uses), and in the production loop, where the scaler is fitted once
and then frozen.

Read more in the :ref:`User Guide <model_selection>`.
"""

# %%
# Features on wildly different scales
# -----------------------------------
# We rescale the embedded stream's features by factors from 0.01 to 1000, as
# raw counts, sizes and ratios would be.
import numpy as np
import sklearn
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from skcl import ContinualClassifier
from skcl.datasets import make_drifting_stream

X, y, months = make_drifting_stream(n_months=6, n_samples_per_month=500, random_state=0)
scales = 10.0 ** np.random.default_rng(0).uniform(-2, 3, size=X.shape[1])
X = (X * scales).astype(np.float32)
train = np.random.default_rng(1).random(len(y)) < 0.7
test = ~train
print("feature standard deviations from", X.std(axis=0).min().round(3),
      "to", X.std(axis=0).max().round(1))

# %%
# A Pipeline trained on the whole stream
# --------------------------------------
# ``Pipeline.fit`` has to hand ``months`` to the classifier. With metadata
# routing on, the classifier requests it by default, so ``fit(X, y,
# months=months)`` just works (``config_context`` keeps the setting local;
# ``sklearn.set_config`` sets it for the whole program). The scaler is fitted
# on all training rows, then the network is trained month by month.
raw = ContinualClassifier(max_epochs=5, random_state=0)
scaled = make_pipeline(StandardScaler(), ContinualClassifier(max_epochs=5, random_state=0))
with sklearn.config_context(enable_metadata_routing=True):
    raw.fit(X[train], y[train], months=months[train])
    scaled.fit(X[train], y[train], months=months[train])
print(f"accuracy without scaling: {raw.score(X[test], y[test]):.3f}")
print(f"accuracy with scaling:    {scaled.score(X[test], y[test]):.3f}")

# %%
# Without routing, address the step by name instead:
scaled.fit(X[train], y[train], continualclassifier__months=months[train])
print("months trained on:", scaled[-1].n_months_seen_)

# %%
# The production loop: fit the scaler once
# ----------------------------------------
# A Pipeline has no ``partial_fit``, and a scaler refitted every month would
# change the meaning of the network's inputs from one month to the next. Fit
# it on the first month (or on a reference period) and apply the frozen
# transformation to every later month.
scaler = None
clf = ContinualClassifier(max_epochs=5, random_state=0)
for month in np.unique(months):
    rows = train & (months == month)
    if scaler is None:
        scaler = StandardScaler().fit(X[rows])
    clf.partial_fit(scaler.transform(X[rows]), y[rows], classes=[0, 1], month=month)

per_month = [clf.score(scaler.transform(X[test & (months == m)]), y[test & (months == m)])
             for m in np.unique(months)]
print("accuracy per month:", np.round(per_month, 3))

# %%
# To save or ship the loop's model, keep the scaler with it, e.g. as a
# Pipeline of the two fitted objects, which predicts like any other:
production = make_pipeline(scaler, clf)
print(f"accuracy of the production pipeline: {production.score(X[test], y[test]):.3f}")
