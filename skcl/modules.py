"""Ready-made torch modules for tabular data."""

from torch import nn

__all__ = ["MLP"]


class MLP(nn.Module):
    """Multi-layer perceptron returning class logits.

    The default module of :class:`~skcl.ContinualClassifier`. The classifier fills
    in ``n_features`` and ``n_classes`` from the first month's data unless they are
    given as ``module__n_features`` / ``module__n_classes``; any custom module whose
    constructor takes parameters with those names gets the same service.

    Read more in the :ref:`User Guide <custom_module>`.

    Parameters
    ----------
    n_features : int, default=20
        Number of input features.
    n_classes : int, default=2
        Number of output logits.
    hidden_units : tuple of int, default=(64, 64)
        Width of each hidden layer; ``()`` gives a linear model (logistic
        regression with a softmax criterion).
    dropout : float, default=0.0
        Dropout probability after each hidden activation.
    activation : type of torch.nn.Module, default=torch.nn.ReLU
        Activation class, instantiated once per hidden layer.

    Examples
    --------
    >>> import torch
    >>> from skcl.modules import MLP
    >>> MLP(n_features=3, n_classes=2, hidden_units=(4,))(torch.zeros(5, 3)).shape
    torch.Size([5, 2])
    """

    def __init__(
        self,
        n_features=20,
        n_classes=2,
        hidden_units=(64, 64),
        dropout=0.0,
        activation=nn.ReLU,
    ):
        super().__init__()
        layers = []
        width = n_features
        for units in hidden_units:
            layers.append(nn.Linear(width, units))
            layers.append(activation())
            if dropout:
                layers.append(nn.Dropout(dropout))
            width = units
        layers.append(nn.Linear(width, n_classes))
        self.layers = nn.Sequential(*layers)

    def forward(self, X):
        """Return the class logits of a batch.

        Parameters
        ----------
        X : torch.Tensor of shape (n_samples, n_features)
            Input batch, float, on the module's device.

        Returns
        -------
        logits : torch.Tensor of shape (n_samples, n_classes)
            Unnormalized class scores (no softmax applied).
        """
        return self.layers(X)
