"""Scores of predictions against targets (pure NumPy; used by :mod:`fastdl.nets` and the plots)."""

from __future__ import annotations

import numpy as np

__all__ = ["r2_score"]


def r2_score(t, y) -> float:
    """The coefficient of determination, scikit-learn's ``r2_score`` with ``multioutput='uniform_average'``.

    ``R² = 1 - SS_res / SS_tot`` per output (column), with ``SS_res = sum_i (t[i] - y[i])**2`` and
    ``SS_tot = sum_i (t[i] - mean(t))**2``, in float64, then averaged over the outputs. An output whose
    targets are constant scores 1.0 when predicted exactly, else 0.0 (as scikit-learn).

    Parameters
    ----------
    t, y : array-like ``(N,)`` or ``(N, D)``
        Targets and predictions of one shape.

    Returns
    -------
    float
        At most 1; 0 for predicting the mean of ``t``; negative for worse.
    """
    t64 = np.asarray(t, dtype=np.float64).reshape(len(t), -1)
    y64 = np.asarray(y, dtype=np.float64).reshape(t64.shape)
    ss_res = np.sum((t64 - y64) ** 2, axis=0)
    ss_tot = np.sum((t64 - t64.mean(axis=0)) ** 2, axis=0)
    with np.errstate(divide="ignore", invalid="ignore"):
        r2 = np.where(ss_tot > 0, 1.0 - ss_res / ss_tot, np.where(ss_res == 0, 1.0, 0.0))
    return float(np.mean(r2))
