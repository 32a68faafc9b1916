"""The activations the book lacks (Hands-On ML ch. 11), plain NumPy, with PyTorch's definitions.

Each layer has the book's shape: ``forward(x)`` keeps what ``backward(dout)`` needs and both return
new arrays in the input's dtype. The formulas are ``torch.nn.functional``'s, including its choices
at the edges (``expm1`` for ELU/SELU, ELU's and SELU's negative branch at ``x == 0`` in the
gradient, Mish's softplus linear above 20, ``-inf * 0 = nan`` for GELU/SiLU/Mish at ``-inf``), and
they are written so that no input (``|x|`` up to the float's range, ``+-inf``, NaN) raises an
overflow warning: ``exp`` only ever sees ``min(x, 0)`` or ``min(x, 20)``.

Exact GELU needs ``erf``, which NumPy lacks: SciPy's ``scipy.special.erf`` is used when SciPy is
installed (it comes with scikit-learn; imported on first use), else Python's ``math.erf`` element by
element (slow).
"""

import math

import numpy as np

SELU_ALPHA = 1.6732632423543772848170429916717
SELU_SCALE = 1.0507009873554804934193349852946
GELU_TANH_BETA = math.sqrt(2.0 / math.pi)
GELU_TANH_KAPPA = 0.044715
SOFTPLUS_THRESHOLD = 20.0

def _erf(x):
    """``erf`` elementwise: SciPy's when installed, else ``math.erf`` per element (slow).

    SciPy is imported on the first call, not with the module: ``scipy.special`` costs ~0.2 s, and
    every ``fastdl`` command imports this module (the CLI's start-up), while only GELU needs it.
    """
    global _erf
    try:  # pragma: no cover - depends on the environment
        from scipy.special import erf
    except ImportError:  # pragma: no cover
        scalar = np.frompyfunc(math.erf, 1, 1)

        def erf(x):
            return scalar(x).astype(x.dtype)
    _erf = erf
    return erf(x)


_QUIET = {"invalid": "ignore"}  # -inf * 0 -> nan, as PyTorch gives, without a RuntimeWarning


def _sigmoid(x):
    """``1 / (1 + exp(-x))`` without overflow: ``exp`` of ``-|x|`` only."""
    e = np.exp(-np.abs(x))
    return np.where(x >= 0, 1.0 / (1.0 + e), e / (1.0 + e)).astype(x.dtype, copy=False)


def tanh(x):
    return np.tanh(x)


def leaky_relu(x, alpha=0.01):
    return np.where(x > 0, x, x * x.dtype.type(alpha))


def elu(x, alpha=1.0):
    return np.where(x > 0, x, x.dtype.type(alpha) * np.expm1(np.minimum(x, 0)))


def selu(x):
    t = x.dtype.type
    return np.where(x > 0, t(SELU_SCALE) * x, t(SELU_ALPHA * SELU_SCALE) * np.expm1(np.minimum(x, 0)))


def gelu(x, approximate="none"):
    t = x.dtype.type
    with np.errstate(**_QUIET, over="ignore"):  # x**3 may overflow to inf: tanh(inf) = 1 as in PyTorch
        if approximate == "tanh":
            inner = t(GELU_TANH_BETA) * (x + t(GELU_TANH_KAPPA) * x * x * x)
            return t(0.5) * x * (t(1) + np.tanh(inner))
        return x * t(0.5) * (t(1) + _erf(x * t(1.0 / math.sqrt(2.0))))


def silu(x):
    with np.errstate(**_QUIET):
        return x * _sigmoid(x)


def softplus(x):
    """``log1p(exp(x))``, linear above 20 (PyTorch's threshold)."""
    return np.where(x > SOFTPLUS_THRESHOLD, x, np.log1p(np.exp(np.minimum(x, SOFTPLUS_THRESHOLD))))


def mish(x):
    with np.errstate(**_QUIET):
        return x * np.tanh(softplus(x))


class Tanh:
    def __init__(self):
        self.out = None

    def forward(self, x):
        self.out = np.tanh(x)
        return self.out

    def backward(self, dout):
        return dout * (1 - self.out * self.out)


class LeakyRelu:
    def __init__(self, alpha=0.01):
        self.alpha = alpha
        self.mask = None

    def forward(self, x):
        self.mask = x > 0
        return leaky_relu(x, self.alpha)

    def backward(self, dout):
        return np.where(self.mask, dout, dout * dout.dtype.type(self.alpha))


class PRelu:
    """LeakyReLU with a learned slope per feature (the last axis of a 2-D input); ``dalpha`` after backward."""

    def __init__(self, alpha):
        self.alpha = alpha
        self.x = None
        self.dalpha = None

    def forward(self, x):
        self.x = x
        return np.where(x > 0, x, x * self.alpha)

    def backward(self, dout):
        x = self.x
        self.dalpha = np.where(x > 0, 0, x * dout).sum(axis=0).astype(self.alpha.dtype, copy=False)
        return np.where(x > 0, dout, dout * self.alpha)


class Elu:
    def __init__(self, alpha=1.0):
        self.alpha = alpha
        self.x = None

    def forward(self, x):
        self.x = x
        return elu(x, self.alpha)

    def backward(self, dout):
        x = self.x
        t = x.dtype.type
        return np.where(x <= 0, dout * (t(self.alpha) * np.exp(np.minimum(x, 0))), dout)  # NaN: the x > 0 branch


class Selu:
    def __init__(self):
        self.x = None

    def forward(self, x):
        self.x = x
        return selu(x)

    def backward(self, dout):
        x = self.x
        t = x.dtype.type
        return np.where(x <= 0, dout * (t(SELU_ALPHA * SELU_SCALE) * np.exp(np.minimum(x, 0))), dout * t(SELU_SCALE))


class Gelu:
    def __init__(self, approximate="none"):
        if approximate not in ("none", "tanh"):
            raise ValueError(f"Gelu: approximate must be 'none' or 'tanh'; got {approximate!r}")
        self.approximate = approximate
        self.x = None

    def forward(self, x):
        self.x = x
        return gelu(x, self.approximate)

    def backward(self, dout):
        x = self.x
        t = x.dtype.type
        with np.errstate(**_QUIET, over="ignore"):
            return self._backward(x, dout, t)

    def _backward(self, x, dout, t):
        if self.approximate == "tanh":
            x2 = x * x
            inner = t(GELU_TANH_BETA) * (x + t(GELU_TANH_KAPPA) * x2 * x)
            th = np.tanh(inner)
            d_inner = t(GELU_TANH_BETA) * (t(1) + t(3 * GELU_TANH_KAPPA) * x2)
            return dout * (t(0.5) * (t(1) + th) + t(0.5) * x * (t(1) - th * th) * d_inner)
        cdf = t(0.5) * (t(1) + _erf(x * t(1.0 / math.sqrt(2.0))))
        pdf = np.exp(t(-0.5) * x * x) * t(1.0 / math.sqrt(2.0 * math.pi))
        return dout * (cdf + x * pdf)


class GeluTanh(Gelu):
    """``Gelu(approximate="tanh")`` as a class of its own (the registry's ``gelu_tanh``)."""

    def __init__(self):
        super().__init__("tanh")


class Silu:
    def __init__(self):
        self.x = None

    def forward(self, x):
        self.x = x
        return silu(x)

    def backward(self, dout):
        x = self.x
        s = _sigmoid(x)
        with np.errstate(**_QUIET):
            return dout * (s * (1 + x * (1 - s)))


class Mish:
    def __init__(self):
        self.x = None

    def forward(self, x):
        self.x = x
        return mish(x)

    def backward(self, dout):
        x = self.x
        tsp = np.tanh(softplus(x))
        with np.errstate(**_QUIET):
            return dout * (tsp + x * _sigmoid(x) * (1 - tsp * tsp))
