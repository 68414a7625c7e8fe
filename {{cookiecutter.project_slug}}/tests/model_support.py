"""A team's own classifier that skl2onnx has no converter for (tests of export's message)."""

from __future__ import annotations

import numpy as np
from sklearn.base import BaseEstimator, ClassifierMixin
from sklearn.linear_model import LogisticRegression


class Unconvertible(ClassifierMixin, BaseEstimator):
    """scikit-learn compatible (fit, predict_proba, classes_), but unknown to skl2onnx."""

    def fit(self, matrix: np.ndarray, y: np.ndarray) -> Unconvertible:
        self.inner_ = LogisticRegression(max_iter=1000).fit(matrix, y)
        self.classes_ = self.inner_.classes_
        return self

    def predict_proba(self, matrix: np.ndarray) -> np.ndarray:
        return self.inner_.predict_proba(matrix)
