"""The prediction rule every skcl classifier shares."""

import numpy as np

__all__ = ["ArgmaxPredictMixin"]


class ArgmaxPredictMixin:
    """``predict`` as the label of ``classes_`` with the highest ``predict_proba``."""

    def predict(self, X):
        """Return the most probable label of each row, from ``classes_``.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
            The rows to predict, with the features seen at the first month.

        Returns
        -------
        y_pred : ndarray of shape (n_samples,)
            The label of ``classes_`` with the highest probability.
        """
        proba = self.predict_proba(X)
        return self.classes_[np.argmax(proba, axis=1)]
