"""The output layers with a loss (the book's ``SoftmaxWithLoss``; ``IdentityWithLoss`` for regression).

Both are importable from :mod:`fastdl.layers`, as in the book's ``common/layers.py``.
``forward(x, t)`` returns the loss (averaged over the batch) and keeps the outputs and targets of
that one call together; ``backward(dout=1)`` returns a new ``dx``.
"""

from __future__ import annotations

import numpy as np

from . import ops
from ._checks import called_before, contiguous, fail, float_array
from .kernels import mse as _mse
from .kernels import softmax as _sm

__all__ = ["IdentityWithLoss", "SoftmaxWithLoss"]

XENT_EPS = ops.XENT_EPS  #: added inside the log of the cross-entropy (the book's 1e-7)


class _LossLayer:
    """What the output layers share: the last forward's ``y``, ``t``, ``loss``, and the tuple backward reads."""

    def __init__(self) -> None:
        self.loss = None
        self.y: np.ndarray | None = None
        self.t = None
        self._fwd: tuple | None = None  # (y, targets...) of one forward, read once by backward

    def _y(self, stored: np.ndarray, where: str, what: str) -> np.ndarray:
        """The forward's ``y``, or the :attr:`y` set by hand in its place when it has its shape (cast to its dtype)."""
        y = self.y
        if y is stored:
            return stored
        y = float_array(y, "y", where, ndim=2)
        if y.shape != stored.shape:
            fail(where, "y", f"of shape {stored.shape} (the shape of the forward's {what})", f"shape {y.shape}")
        return contiguous(y, stored.dtype)


class SoftmaxWithLoss(_LossLayer):
    """Softmax followed by the cross-entropy loss (the book's output layer).

    ``y = softmax(x)`` row-wise (stabilised by the row maximum);
    ``loss = -sum_i log(y[i, t_i] + 1e-7) / N`` with ``t_i`` the label (the argmax of a one-hot or
    probability row); ``backward``: ``dx = (y - onehot(t)) / N * dout`` for labels,
    ``(y - t) / N * dout`` for 2-D targets.

    Attributes
    ----------
    y : ndarray or None
        The softmax of the last ``x`` (x's dtype).
    t : ndarray or None
        The targets as given to ``forward``.
    loss : numpy scalar or None
        The last loss, of x's dtype.
    """

    def forward(self, x, t):
        """Return the mean cross-entropy loss of ``softmax(x)`` against ``t``.

        Parameters
        ----------
        x : ndarray ``(N, C)``, float32 or float64
        t : ndarray
            Integer labels ``(N,)`` in ``[0, C)`` (any integer dtype, e.g. MNIST's uint8) or
            one-hot/probability rows ``(N, C)``.

        Returns
        -------
        numpy scalar of x's dtype
            A non-finite loss is reported through :func:`fastdl.runtime.report_nonfinite`.
        """
        where = "SoftmaxWithLoss.forward"
        xc = ops.softmax_input(x, where)
        labels, probs = ops.labels(t, xc.shape[0], xc.shape[1], xc.dtype, where)
        y, s = _sm.softmax_xent_forward(xc, labels, XENT_EPS)
        loss = ops.loss_scalar(s, xc.shape[0], xc.dtype, where)
        self.y, self.t, self.loss = y, t, loss
        self._fwd = (y, labels, probs)
        return loss

    def backward(self, dout=1) -> np.ndarray:
        """Return a new ``dx`` (x's shape and dtype); ``dout`` is a real scalar (default 1)."""
        where = "SoftmaxWithLoss.backward"
        fwd = self._fwd  # one read: y and the targets of one forward, whatever other threads do
        called_before(fwd, where, "SoftmaxWithLoss.forward")
        y, labels, probs = fwd
        y = self._y(y, where, "softmax")  # (replaced by hand: used if it fits the stored targets)
        d = ops.scalar(dout, "dout", where, y.dtype)
        return _sm.softmax_xent_backward(y, labels if probs is None else probs, d)


class IdentityWithLoss(_LossLayer):
    """Identity output with the sum-of-squares loss (the regression output layer, in the book's style).

    ``y = x``; ``loss = 0.5 * sum_ij (y[i, j] - t[i, j])**2 / N``: the book's ``sum_squared_error``
    per sample, averaged over the batch; ``backward``: ``dx = (y - t) / N * dout``.

    Keras' ``"mse"`` averages over the ``D`` outputs as well and has no ``0.5``:
    ``mse = mean((y - t)**2) = 2 * loss / D`` (for one output, twice this loss), and its gradient is
    ``2 / D`` times this one; the minimiser is the same. RMSE is ``sqrt(2 * loss / D)``.

    Attributes
    ----------
    y : ndarray or None
        The last ``x`` (C-contiguous, not a copy when it was already).
    t : ndarray or None
        The targets as given to ``forward``.
    loss : numpy scalar or None
        The last loss, of x's dtype.
    """

    def forward(self, x, t):
        """Return ``0.5 * sum((x - t)**2) / N``.

        Parameters
        ----------
        x : ndarray ``(N, D)``, float32 or float64
        t : ndarray ``(N, D)``, float32 or float64 (``(N,)`` when ``D == 1``), cast to x's dtype

        Returns
        -------
        numpy scalar of x's dtype
            A non-finite loss is reported through :func:`fastdl.runtime.report_nonfinite`.
        """
        where = "IdentityWithLoss.forward"
        xc = ops.softmax_input(x, where)
        tc = ops.targets(t, xc.shape, xc.dtype, where)
        s = _mse.sq_err(xc, tc)
        loss = ops.loss_scalar(-0.5 * s, xc.shape[0], xc.dtype, where)  # (loss_scalar negates: 0.5 * s / N)
        self.y, self.t, self.loss = xc, t, loss
        self._fwd = (xc, tc)
        return loss

    def backward(self, dout=1) -> np.ndarray:
        """Return a new ``dx = (y - t) / N * dout`` (x's shape and dtype); ``dout`` is a real scalar (default 1)."""
        where = "IdentityWithLoss.backward"
        fwd = self._fwd
        called_before(fwd, where, "IdentityWithLoss.forward")
        y, tc = fwd  # (tc: the targets as (N, D) in y's dtype)
        y = self._y(y, where, "x")
        d = ops.scalar(dout, "dout", where, y.dtype)
        return _mse.mse_grad(y, tc, d)[0]
