"""The perceptron learning rule (Rosenblatt), one epoch of every one-vs-rest classifier per call.

For classifier ``k`` (row ``W[k]``, bias ``b[k]``, positive class index ``pos[k]``) and each sample
``i`` in ``order``: ``y = +1`` if ``codes[i] == pos[k]`` else ``-1``; ``z = W[k] . x[i] + b[k]``
(summed left to right in float64, as scikit-learn's ``WeightVector.dot``); when ``y * z <= 0``
(a mistake, the boundary included) ``W[k] += (lr * y) * x[i]`` and ``b[k] += lr * y``.
Classifiers are independent, so they run one after the other over the same sample order.
"""

from __future__ import annotations

import numpy as np

from .._jit import jit


@jit
def _epoch(x, codes, order, pos, W, b, lr, active, mistakes):
    n_features = x.shape[1]
    for k in range(W.shape[0]):
        mistakes[k] = 0
        if not active[k]:
            continue
        w = W[k]
        c = pos[k]
        for ii in range(order.shape[0]):
            i = order[ii]
            xi = x[i]
            acc = 0.0
            for j in range(n_features):
                acc += w[j] * xi[j]
            z = acc + b[k]
            positive = codes[i] == c
            if (z if positive else -z) <= 0.0:
                u = lr if positive else -lr
                for j in range(n_features):
                    w[j] += xi[j] * u
                b[k] += u
                mistakes[k] += 1


def epoch(x: np.ndarray, codes: np.ndarray, order: np.ndarray, pos: np.ndarray, W: np.ndarray, b: np.ndarray,
          lr, active: np.ndarray, mistakes: np.ndarray) -> None:
    """One pass over ``x[order]`` for the classifiers with ``active[k]``; ``mistakes[k]`` = updates made.

    ``x`` (N, D), ``W`` (K, D), ``b`` (K,) C-contiguous in one float dtype, ``lr`` a scalar of it;
    ``codes`` (N,) and ``order`` (M,) int64 with values in range, ``pos`` (K,) int64, ``active``
    (K,) bool, ``mistakes`` (K,) int64. The caller validates: nothing is checked here.
    """
    _epoch(x, codes, order, pos, W, b, lr, active, mistakes)
