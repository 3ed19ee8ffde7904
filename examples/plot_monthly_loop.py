"""
The production loop: fine-tune every month
==========================================

A model in production is updated once a month on the month's new labelled
data. With skcl this is one :meth:`~skcl.ContinualClassifier.partial_fit` per
month. This example runs that loop on the embedded drifting stream, scores the
model on every month after each update, and shows what plain fine-tuning
forgets compared with retraining from scratch on everything seen so far.

Read more in the :ref:`User Guide <forgetting>`.
"""

# %%
# A drifting stream
# -----------------
# :func:`~skcl.datasets.make_drifting_stream` draws a malware-like stream:
# families of malicious samples appear, fade and come back, and benign samples
# slowly drift towards the features of the oldest families. We hold out 30 % of
# every month to measure the model on it later.
import matplotlib.pyplot as plt
import numpy as np
from sklearn.model_selection import train_test_split

from skcl import ContinualClassifier
from skcl.datasets import make_drifting_stream

X, y, months = make_drifting_stream(n_months=8, n_samples_per_month=600, random_state=0)
rows = np.arange(len(y))
train, test = train_test_split(rows, test_size=0.3, stratify=months * 2 + y, random_state=0)
month_labels = np.unique(months)
print(f"{len(month_labels)} months, {X.shape[1]} features, {len(train)} training rows")

# %%
# One ``partial_fit`` per month
# -----------------------------
# The first call fixes the classes and the input width and initializes the
# network at ``lr``; every later call continues from the current weights (and
# optimizer state). After each month we score the model on the test part of
# *every* month, past and future, which fills the accuracy matrix
# ``R[i, j]``: accuracy on month ``j`` after training up to month ``i``.


def run_stream(clf):
    """Train ``clf`` month by month; return its accuracy matrix."""
    scores = np.zeros((len(month_labels), len(month_labels)))
    for i, month in enumerate(month_labels):
        new = train[months[train] == month]
        clf.partial_fit(X[new], y[new], classes=[0, 1], month=month)
        for j, other in enumerate(month_labels):
            held_out = test[months[test] == other]
            scores[i, j] = clf.score(X[held_out], y[held_out])
    return scores


finetuned = ContinualClassifier(max_epochs=5, lr=1e-3, random_state=0)
R_finetune = run_stream(finetuned)
print("months trained on:", [int(m) for m in finetuned.months_])

# %%
# The full-retraining baseline
# ----------------------------
# ``update="retrain"`` re-initializes the network every month and trains it
# on every month seen so far. It remembers well, but its cost grows with the
# stream, and it needs all past data.
retrained = ContinualClassifier(update="retrain", max_epochs=5, lr=1e-3, random_state=0)
R_retrain = run_stream(retrained)

# %%
# What fine-tuning forgets
# ------------------------
# Left: accuracy on the first month's test part after each update. Right: the
# final model (after the last month) on every month. Fine-tuning tracks the
# newest months but loses the oldest malware families, which benign software
# has come to resemble; retraining keeps them.
fig, (left, right) = plt.subplots(1, 2, figsize=(10, 3.8), layout="constrained")
for name, R, color in [("fine-tune", R_finetune, "tab:red"),
                       ("retrain", R_retrain, "black")]:
    left.plot(month_labels, R[:, 0], marker="o", color=color, label=name)
    right.plot(month_labels, R[-1], marker="o", color=color, label=name)
left.set(xlabel="trained up to month", ylabel="accuracy on month 0",
         title="Remembering the first month")
right.set(xlabel="evaluated month", ylabel="accuracy of the final model",
          title="The final model on every month")
for ax in (left, right):
    ax.grid(alpha=0.3)
    ax.legend()
plt.show()

# %%
# The accuracy matrix
# -------------------
# Rows are training steps, columns evaluated months. Below the diagonal is
# memory of the past, the diagonal is learning the current month, and above it
# is generalization to months not yet seen.
fig, axes = plt.subplots(1, 2, figsize=(10, 4.2), layout="constrained")
for ax, (name, R) in zip(axes, [("fine-tune", R_finetune), ("retrain", R_retrain)]):
    image = ax.imshow(R, vmin=0.3, vmax=1.0, cmap="viridis")
    ax.set(title=name, xlabel="evaluated month j", ylabel="trained up to month i")
fig.colorbar(image, ax=axes, label="accuracy R[i, j]")
plt.show()

print(f"mean accuracy of the final model: fine-tune {R_finetune[-1].mean():.3f}, "
      f"retrain {R_retrain[-1].mean():.3f}")

# %%
# The same stream in one call
# ---------------------------
# ``fit(X, y, months=months)`` starts over and calls ``partial_fit`` once per
# month in sorted order. It is what :class:`~sklearn.model_selection.GridSearchCV`
# and :func:`~sklearn.model_selection.cross_validate` call, with ``months``
# sliced per fold (see :ref:`model_selection`).
clf = ContinualClassifier(max_epochs=5, lr=1e-3, random_state=0)
clf.fit(X[train], y[train], months=months[train])
print("same final weights as the loop:",
      np.allclose(clf.predict_proba(X[test]), finetuned.predict_proba(X[test])))
