"""Weight constraints applied after each update (Keras' ``MaxNorm``; Hands-On ML ch. 11, max-norm regularization).

A constraint is a callable that changes a weight matrix in place. :class:`fastdl.Trainer` applies
``weight_constraint`` to every weight matrix (the ``W`` parameters) after each optimizer update;
``fastdl train --max-norm C`` does it with ``MaxNorm(C)``.
"""

from __future__ import annotations

import numpy as np

from . import _checks
from .kernels import constraints as _k

__all__ = ["MaxNorm"]

#: Keras' ``backend.epsilon()``, added to the norm in the denominator
EPSILON = 1e-7


class MaxNorm:
    """Rescale ``w`` in place so that the L2 norm along ``axis`` is at most ``max_value`` (Keras' formula).

    For each slice along ``axis`` (each column of a ``(n_in, n_out)`` weight matrix with ``axis=0``,
    the weights into one unit)::

        norm = sqrt(sum(w**2, axis))
        w *= min(norm, max_value) / (1e-7 + norm)

    As in Keras, every slice is multiplied by that factor, including those already within the bound
    (their factor ``norm / (1e-7 + norm)`` is just below 1). One compiled call per matrix: a pass for
    the norms, a pass for the scaling; float32 stays float32.

    Parameters
    ----------
    max_value : float, default 2.0
        The largest allowed norm (> 0).
    axis : {0, 1}, default 0
        Axis of a 2-D weight matrix along which norms are taken.
    """

    def __init__(self, max_value: float = 2.0, axis: int = 0) -> None:
        where = "MaxNorm"
        self.max_value = _checks.positive_number(max_value, "max_value", where)
        if isinstance(axis, bool) or axis not in (0, 1, -1, -2):
            _checks.fail(where, "axis", "0 or 1 (an axis of a 2-D weight matrix)", repr(axis))
        self.axis = int(axis) % 2

    def __call__(self, w: np.ndarray) -> np.ndarray:
        """Constrain ``w`` (a writeable 2-D float32/float64 array, any layout) in place; return it."""
        where = "MaxNorm"
        w = _checks.float_array(w, "w", where, ndim=2)
        if not w.flags.writeable:
            _checks.fail(where, "w", "a writeable array (it is changed in place)", "a read-only array")
        t = w.dtype.type
        # a C-contiguous view of w or of w.T (then the other axis), else a copy written back
        if w.flags.c_contiguous:
            target, axis, back = w, self.axis, None
        elif w.flags.f_contiguous:
            target, axis, back = w.T, 1 - self.axis, None
        else:
            target, axis, back = np.ascontiguousarray(w), self.axis, w
        kernel = _k.max_norm_columns if axis == 0 else _k.max_norm_rows
        kernel(target, t(self.max_value), t(EPSILON))
        if back is not None:
            back[...] = target
        return w

    def get_config(self) -> dict:
        return {"max_value": self.max_value, "axis": self.axis}

    def __repr__(self) -> str:
        return f"MaxNorm(max_value={self.max_value!r}, axis={self.axis})"
