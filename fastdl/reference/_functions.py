"""Activation and loss functions, plain NumPy, as the book writes them."""

import numpy as np


def sigmoid(x):
    """``1 / (1 + exp(-x))``."""
    return 1 / (1 + np.exp(-x))


def relu(x):
    """``max(0, x)``."""
    return np.maximum(0, x)


def softmax(x):
    """Row-wise softmax of a 2-D (or 1-D) array, shifted by the row maximum for stability."""
    x = x - np.max(x, axis=-1, keepdims=True)
    return np.exp(x) / np.sum(np.exp(x), axis=-1, keepdims=True)


def cross_entropy_error(y, t):
    """Mean cross-entropy of probabilities ``y`` against labels or one-hot ``t``, with 1e-7 in the log.

    One-hot targets are turned into labels with ``argmax`` (as the book does), so soft targets count
    only their largest entry.
    """
    if y.ndim == 1:
        t = t.reshape(1, t.size)
        y = y.reshape(1, y.size)
    if t.size == y.size:
        t = t.argmax(axis=1)
    batch_size = y.shape[0]
    return -np.sum(np.log(y[np.arange(batch_size), t] + 1e-7)) / batch_size
