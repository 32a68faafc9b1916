"""Weight initialisation: the standard deviations of the book's chapter 6 and their common relatives.

Every rule here returns a *standard deviation*; weights are then drawn the book's way,
``np.random.randn(n_in, n_out) * std`` from NumPy's global generator, so a network built after
``np.random.seed(s)`` has the same weights as the book's ``MultiLayerNet`` built after the same seed.

============================  ================================  =====================================
name(s)                       standard deviation                note
============================  ================================  =====================================
a float ``s``                 ``s``                             fixed (the book's ``0.01``, ``1``)
``'sigmoid'``, ``'xavier'``   ``sqrt(1 / n_in)``                the book's "Xavier" (as its code does)
``'lecun'``                   ``sqrt(1 / n_in)``                LeCun normal; same value as above
``'relu'``, ``'he'``          ``sqrt(2 / n_in)``                He normal
``'glorot'``                  ``sqrt(2 / (n_in + n_out))``      Glorot (Xavier) normal, the paper's form
============================  ================================  =====================================

The book calls ``sqrt(1/n_in)`` "Xavier"; Glorot & Bengio's paper averages fan-in and fan-out,
which is what ``'glorot'`` gives.
"""

from __future__ import annotations

import math

import numpy as np

from . import _checks

__all__ = ["INIT_NAMES", "fixed", "glorot", "he", "init_weight", "lecun", "std_for", "xavier"]


def fixed(std: float) -> float:
    """A fixed standard deviation (validated: finite and > 0).

    Parameters
    ----------
    std : float
        The standard deviation, e.g. the book's ``0.01``.

    Returns
    -------
    float
        ``std`` as a Python float.
    """
    return _checks.positive_number(std, "std", "fastdl.init.fixed")


def _fan(n: int, name: str, where: str) -> int:
    if isinstance(n, bool) or not isinstance(n, int | np.integer):
        _checks.fail(where, name, "a positive integer", _checks.describe(n), TypeError)
    if n < 1:
        _checks.fail(where, name, "a positive integer", repr(n))
    return int(n)


def xavier(n_in: int) -> float:
    """The book's Xavier standard deviation ``sqrt(1 / n_in)`` (for sigmoid and tanh).

    Parameters
    ----------
    n_in : int
        Number of inputs of the layer (units of the previous layer).

    Returns
    -------
    float
    """
    return math.sqrt(1.0 / _fan(n_in, "n_in", "fastdl.init.xavier"))


def lecun(n_in: int) -> float:
    """LeCun normal ``sqrt(1 / n_in)`` (numerically the book's "Xavier").

    Parameters
    ----------
    n_in : int
        Number of inputs of the layer.

    Returns
    -------
    float
    """
    return math.sqrt(1.0 / _fan(n_in, "n_in", "fastdl.init.lecun"))


def he(n_in: int) -> float:
    """He normal ``sqrt(2 / n_in)`` (for ReLU).

    Parameters
    ----------
    n_in : int
        Number of inputs of the layer.

    Returns
    -------
    float
    """
    return math.sqrt(2.0 / _fan(n_in, "n_in", "fastdl.init.he"))


def glorot(n_in: int, n_out: int) -> float:
    """Glorot normal ``sqrt(2 / (n_in + n_out))`` (the paper's Xavier, averaging both fans).

    Parameters
    ----------
    n_in, n_out : int
        Inputs and outputs of the layer.

    Returns
    -------
    float
    """
    where = "fastdl.init.glorot"
    return math.sqrt(2.0 / (_fan(n_in, "n_in", where) + _fan(n_out, "n_out", where)))


#: lower-case name -> rule taking ``(n_in, n_out)``
_RULES = {
    "relu": lambda n_in, n_out: he(n_in),
    "he": lambda n_in, n_out: he(n_in),
    "sigmoid": lambda n_in, n_out: xavier(n_in),
    "xavier": lambda n_in, n_out: xavier(n_in),
    "lecun": lambda n_in, n_out: lecun(n_in),
    "glorot": glorot,
}

#: Names accepted wherever an initialisation is asked for (besides a float).
INIT_NAMES = tuple(_RULES)


def std_for(spec: str | float, n_in: int, n_out: int, where: str = "fastdl.init.std_for") -> float:
    """Resolve an initialisation given by name or number to a standard deviation.

    Parameters
    ----------
    spec : str or float
        One of :data:`INIT_NAMES` (case-insensitive) or a positive number (a fixed std).
    n_in, n_out : int
        Fan-in and fan-out of the layer.
    where : str
        Caller name for error messages.

    Returns
    -------
    float

    Raises
    ------
    ValueError
        Unknown name, or a number that is not finite and positive.
    TypeError
        Neither a string nor a real number.
    """
    if isinstance(spec, str):
        rule = _RULES.get(spec.lower())
        if rule is None:
            _checks.fail(where, "weight_init_std", f"a positive number or one of {INIT_NAMES}", repr(spec))
        return rule(n_in, n_out)
    return _checks.positive_number(spec, "weight_init_std", where)


def init_weight(n_in: int, n_out: int, spec: str | float = "relu", dtype=np.float64) -> np.ndarray:
    """Draw an ``(n_in, n_out)`` weight matrix the book's way, then cast it to ``dtype``.

    ``np.random.randn(n_in, n_out) * std`` from NumPy's global generator (so ``np.random.seed``
    reproduces the book's weights), computed in float64 and cast.

    Parameters
    ----------
    n_in, n_out : int
        Shape of the weight matrix.
    spec : str or float
        Initialisation name or fixed standard deviation (see :func:`std_for`).
    dtype : numpy dtype
        float32 or float64.

    Returns
    -------
    numpy.ndarray
    """
    std = std_for(spec, n_in, n_out, "fastdl.init.init_weight")
    w = std * np.random.randn(n_in, n_out)
    return w.astype(dtype, copy=False)
