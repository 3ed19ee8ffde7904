"""
Tuning the penalty and the replay ratio with GridSearchCV
=========================================================

``regularizer__lam`` and ``rehearsal__replay_ratio`` trade learning the new
month against keeping the old ones. This example chooses them with plain
:class:`~sklearn.model_selection.GridSearchCV`: :class:`~skcl.MonthlyKFold`
makes folds that hold every month, the classifier trains on each training fold
month by month, and :class:`~skcl.ForgettingScorer` scores each test fold
month by month. Metadata routing hands each of them the ``months`` of exactly
its rows.

Read more in the :ref:`User Guide <model_selection>`.
"""

# %%
# The search
# ----------
# The classifier combines an EWC penalty with a replay buffer; the grid spans
# "off" (``lam=0``, ``replay_ratio=0``) to strong settings of both.
# ``set_fit_request(months=True)`` and ``set_score_request(months=True)`` are
# the defaults of skcl's classifier and scorer; they are spelled out here to
# show where ``months`` goes. ``config_context`` turns routing on for this
# block only (``sklearn.set_config(enable_metadata_routing=True)`` would turn
# it on for the whole program).
import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import sklearn
from sklearn.model_selection import GridSearchCV

from skcl import EWC, ContinualClassifier, ForgettingScorer, MonthlyKFold, RehearsalBuffer
from skcl.datasets import make_drifting_stream

X, y, months = make_drifting_stream(n_months=6, n_samples_per_month=300, random_state=0)

param_grid = {
    "regularizer__lam": [0.0, 10.0, 100.0],
    "rehearsal__replay_ratio": [0.0, 0.25, 0.5],
}
with sklearn.config_context(enable_metadata_routing=True):
    clf = ContinualClassifier(
        module__hidden_units=(32,), max_epochs=3, lr=3e-3, random_state=0,
        regularizer=EWC(lam=1.0),
        rehearsal=RehearsalBuffer(capacity=400, replay_ratio=0.0, epoch_size="grow"),
    ).set_fit_request(months=True)
    search = GridSearchCV(
        clf,
        param_grid,
        scoring=ForgettingScorer(metric="accuracy", aggregate="mean")
        .set_score_request(months=True),
        cv=MonthlyKFold(n_splits=3),
    )
    search.fit(X, y, months=months)

print("best parameters:", search.best_params_)
print(f"best mean accuracy over months: {search.best_score_:.3f}")

# %%
# The whole grid
# --------------
# ``cv_results_`` is the usual dictionary of scikit-learn; each score is the
# mean over test months, averaged over folds.
results = pd.DataFrame(search.cv_results_)
table = results.pivot_table(index="param_regularizer__lam",
                            columns="param_rehearsal__replay_ratio",
                            values="mean_test_score")
print(table.round(3))

# %%
# On this stream replay helps and a strong penalty hurts: benign software
# drifts towards old malware, so holding the weights where old months left
# them fights the new months, while replayed rows let the network learn both.

fig, ax = plt.subplots(figsize=(5.5, 4.2), layout="constrained")
image = ax.imshow(table.to_numpy(), cmap="viridis", origin="lower")
ax.set(xticks=np.arange(table.shape[1]), xticklabels=table.columns,
       yticks=np.arange(table.shape[0]), yticklabels=table.index,
       xlabel="rehearsal__replay_ratio", ylabel="regularizer__lam",
       title="Mean accuracy over months (3-fold)")
for (i, j), value in np.ndenumerate(table.to_numpy()):
    ax.text(j, i, f"{value:.3f}", ha="center", va="center", color="white")
fig.colorbar(image)
plt.show()

# %%
# The chosen model
# ----------------
# With ``refit=True`` (the default) the best parameters are refitted on the
# whole stream, month by month; ``best_estimator_`` is an ordinary fitted
# :class:`~skcl.ContinualClassifier`, ready for next month's ``partial_fit``.
best = search.best_estimator_
print(best.regularizer_, best.rehearsal_)
print("months trained on:", best.n_months_seen_)
