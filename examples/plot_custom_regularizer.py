"""
A regularizer of your own
=========================

A regularizer is one small class with two methods: ``consolidate(net, X, y)``
runs after each month and records what the penalty needs, and
``penalty(module)`` returns a scalar added to every training loss. Deriving
from :class:`~skcl.Regularizer` gives it ``get_params`` and
``set_params``, so it clones, tunes as ``regularizer__<name>`` and pickles like
the built-in ones.

This example writes a *functional* penalty: instead of holding the weights
(as :class:`~skcl.L2` and :class:`~skcl.EWC` do), it holds the network's
outputs on a few hundred remembered inputs of each past month, and lets the
weights move freely otherwise. It needs old inputs but no old labels.

Read more in the :ref:`User Guide <custom_regularizer>`.
"""

# %%
# The class
# ---------
# Hyper-parameters are stored verbatim in ``__init__`` (the scikit-learn
# rule); everything learned during training ends with ``_``. Inputs and
# targets stay on the network's device. ``consolidate`` draws its rows from
# torch's global generator, which the classifier seeds during each month, so
# runs are reproducible.
import matplotlib.pyplot as plt
import torch

from skcl import L2, ContinualClassifier
from skcl.datasets import make_drifting_stream
from skcl.evaluation import evaluate_stream
from skcl.regularizers import Regularizer


class OutputAnchor(Regularizer):
    """Keep the logits on remembered inputs of past months where they were.

    penalty = lam * mean over remembered inputs x of |f(x) - z(x)|^2, where
    z(x) are the logits of the model that finished the month x came from.
    Memory and cost per step grow by ``n_inputs`` rows per month.
    """

    def __init__(self, lam=1.0, n_inputs=200):
        self.lam = lam
        self.n_inputs = n_inputs

    def consolidate(self, net, X, y):
        rows = torch.randperm(X.shape[0], device=X.device)[: self.n_inputs]
        module = net.module_
        was_training = module.training
        module.eval()
        with torch.no_grad():
            targets = module(X[rows])
        module.train(was_training)
        if hasattr(self, "inputs_"):
            self.inputs_ = torch.cat([self.inputs_, X[rows]])
            self.targets_ = torch.cat([self.targets_, targets])
        else:
            self.inputs_, self.targets_ = X[rows], targets
        return self

    def penalty(self, module):
        if not hasattr(self, "inputs_"):       # the first month: nothing to keep
            return torch.zeros((), device=next(module.parameters()).device)
        return self.lam * (module(self.inputs_) - self.targets_).square().mean()


# %%
# Compare it with the built-in L2 penalty
# ---------------------------------------
X, y, months = make_drifting_stream(n_months=8, n_samples_per_month=500, random_state=0)


def classifier(**params):
    return ContinualClassifier(module__hidden_units=(64, 64), max_epochs=4, lr=1e-3,
                               random_state=0, **params)


result = evaluate_stream(
    {
        "retrain": classifier(update="retrain"),
        "naive": classifier(),
        "L2 (lam=1)": classifier(regularizer=L2(lam=1.0)),
        "OutputAnchor (lam=1)": classifier(regularizer=OutputAnchor(lam=1.0)),
    },
    X, y, months, test_size=0.3, random_state=0,
)
print(result.format_summary())

fig, ax = plt.subplots(figsize=(7, 4), layout="constrained")
styles = {"retrain": dict(color="black", linewidth=2.2),
          "naive": dict(color="tab:red", linewidth=1.8)}
others = iter(["tab:blue", "tab:orange", "tab:green", "tab:purple"])
styles.update({name: dict(color=next(others)) for name in result.strategies
               if name not in styles})
for name in result.strategies:
    ax.plot(result.months, result.matrix(name)[-1], marker="o", label=name,
            **styles[name])
ax.set(xlabel="evaluated month", ylabel="accuracy of the final model",
       title="A custom regularizer against the built-in L2")
ax.grid(alpha=0.3)
ax.legend(fontsize="small")
plt.show()

# %%
# It is an ordinary parameter
# ---------------------------
# ``clone``, ``get_params`` and ``set_params`` come from the base class, so
# ``regularizer__lam`` and ``regularizer__n_inputs`` can be tuned in a
# :class:`~sklearn.model_selection.GridSearchCV` like any other parameter.
clf = classifier(regularizer=OutputAnchor())
print(clf.get_params()["regularizer__n_inputs"])
clf.set_params(regularizer__lam=3.0)
print(clf.regularizer)
