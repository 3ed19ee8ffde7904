"""skcl: scikit-learn-compatible continual learning on skorch and PyTorch."""

from .classifier import ContinualClassifier
from .modules import MLP

__version__ = "0.1.0.dev0"

__all__ = ["ContinualClassifier", "MLP", "__version__"]
