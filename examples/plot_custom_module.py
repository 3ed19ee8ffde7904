"""
Your own network
================

:class:`~skcl.ContinualClassifier` trains any :class:`torch.nn.Module` whose
forward returns one logit per class. This example writes a small residual
network with layer normalization, lets skcl fill in its input and output
sizes, sets its width through ``module__width``, and compares it with the
bundled :class:`~skcl.MLP` month by month.

Read more in the :ref:`User Guide <custom_module>`.
"""

# %%
# The module
# ----------
# Constructor parameters named ``n_features`` and ``n_classes`` are filled in
# from the first month; every other one is set as ``module__<name>`` and can be
# tuned like any estimator parameter.
import matplotlib.pyplot as plt
import numpy as np
import torch
from torch import nn

from skcl import MLP, ContinualClassifier
from skcl.datasets import make_drifting_stream


class ResidualMLP(nn.Module):
    """Input projection, ``depth`` residual blocks, linear read-out."""

    def __init__(self, n_features, n_classes, width=64, depth=2, dropout=0.1):
        super().__init__()
        self.project = nn.Linear(n_features, width)
        self.blocks = nn.ModuleList(
            nn.Sequential(nn.LayerNorm(width), nn.Linear(width, width), nn.ReLU(),
                          nn.Dropout(dropout))
            for _ in range(depth)
        )
        self.read_out = nn.Linear(width, n_classes)

    def forward(self, X):
        hidden = self.project(X)
        for block in self.blocks:
            hidden = hidden + block(hidden)
        return self.read_out(hidden)


# %%
# Train it month by month
# -----------------------
X, y, months = make_drifting_stream(n_months=6, n_samples_per_month=500, random_state=0)
test = np.random.default_rng(0).random(len(y)) < 0.3
month_labels = np.unique(months)

models = {
    "MLP (64, 64)": ContinualClassifier(module=MLP, module__hidden_units=(64, 64)),
    "ResidualMLP, width 32": ContinualClassifier(module=ResidualMLP, module__width=32),
}
scores = {}
for name, clf in models.items():
    clf.set_params(max_epochs=4, finetune_lr=3e-4, random_state=0)
    clf.fit(X[~test], y[~test], months=months[~test])
    scores[name] = [clf.score(X[test & (months == m)], y[test & (months == m)])
                    for m in month_labels]
    n_weights = sum(p.numel() for p in clf.module_.parameters())
    print(f"{name}: {n_weights} weights, mean accuracy {np.mean(scores[name]):.3f}")

print(models["ResidualMLP, width 32"].module_)

# %%
# Per-month accuracy of the final models
# --------------------------------------
# Dropout is active during training only; skcl puts the module in evaluation
# mode to predict, and to estimate the importances of EWC-style regularizers.
fig, ax = plt.subplots(figsize=(7, 4), layout="constrained")
for name, values in scores.items():
    ax.plot(month_labels, values, marker="o", label=name)
ax.set(xlabel="evaluated month", ylabel="accuracy of the final model",
       title="Two networks fine-tuned on the same stream")
ax.grid(alpha=0.3)
ax.legend()
plt.show()

# %%
# A module instance works too
# ---------------------------
# Pass an already built module when its sizes are known; it is used as is.
clf = ContinualClassifier(module=ResidualMLP(n_features=20, n_classes=2, width=16),
                          max_epochs=2, random_state=0)
clf.partial_fit(X[months == 0], y[months == 0], classes=[0, 1])
print(clf.predict_proba(X[:3]).round(3))
print("output shape of the raw module:", tuple(clf.module_(torch.zeros(4, 20)).shape))
