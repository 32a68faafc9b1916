"""Layers with ``forward``/``backward``, plain NumPy, as the book writes them."""

import numpy as np

from ._functions import cross_entropy_error, sigmoid, softmax


class Relu:
    def __init__(self):
        self.mask = None

    def forward(self, x):
        self.mask = x <= 0
        out = x.copy()
        out[self.mask] = 0
        return out

    def backward(self, dout):
        # The book writes into dout in place; the reference copies so callers keep their array.
        dx = dout.copy()
        dx[self.mask] = 0
        return dx


class Sigmoid:
    def __init__(self):
        self.out = None

    def forward(self, x):
        self.out = sigmoid(x)
        return self.out

    def backward(self, dout):
        return dout * (1.0 - self.out) * self.out


class Affine:
    def __init__(self, W, b):
        self.W = W
        self.b = b
        self.x = None
        self.original_x_shape = None
        self.dW = None
        self.db = None

    def forward(self, x):
        self.original_x_shape = x.shape
        x = x.reshape(x.shape[0], -1)
        self.x = x
        return np.dot(self.x, self.W) + self.b

    def backward(self, dout):
        dx = np.dot(dout, self.W.T)
        self.dW = np.dot(self.x.T, dout)
        self.db = np.sum(dout, axis=0)
        return dx.reshape(*self.original_x_shape)


class SoftmaxWithLoss:
    def __init__(self):
        self.loss = None
        self.y = None
        self.t = None

    def forward(self, x, t):
        self.t = t
        self.y = softmax(x)
        self.loss = cross_entropy_error(self.y, self.t)
        return self.loss

    def backward(self, dout=1):
        batch_size = self.t.shape[0]
        if self.t.size == self.y.size:
            dx = (self.y - self.t) / batch_size
        else:
            dx = self.y.copy()
            dx[np.arange(batch_size), self.t] -= 1
            dx = dx / batch_size
        return dx * dout


class IdentityWithLoss:
    """Identity output with the book's sum of squares per sample, averaged over the batch."""

    def __init__(self):
        self.loss = None
        self.y = None
        self.t = None

    def forward(self, x, t):
        self.t = t.reshape(x.shape)
        self.y = x
        self.loss = 0.5 * np.sum((self.y - self.t) ** 2) / x.shape[0]
        return self.loss

    def backward(self, dout=1):
        return (self.y - self.t) / self.y.shape[0] * dout


class Dropout:
    """Book form (not inverted): keep where a uniform draw > ratio; scale by (1 - ratio) at test time.

    ``rng``: None draws from NumPy's global generator (the book); a ``Generator`` draws
    ``rng.random(x.shape, dtype=x.dtype)`` (as ``fastdl.layers.Dropout`` with a Generator).
    """

    def __init__(self, dropout_ratio=0.5, rng=None):
        self.dropout_ratio = dropout_ratio
        self.rng = rng
        self.mask = None

    def forward(self, x, train_flg=True):
        if train_flg:
            if self.rng is None:
                self.mask = np.random.rand(*x.shape) > self.dropout_ratio
            else:
                self.mask = self.rng.random(x.shape, dtype=x.dtype) > x.dtype.type(self.dropout_ratio)
            return x * self.mask
        return x * (1.0 - self.dropout_ratio)

    def backward(self, dout):
        return dout * self.mask


# SELU's constants (alpha dropout sets dropped units to SELU's saturation -scale * alpha)
_SELU_ALPHA = 1.6732632423543772848170429916717
_SELU_SCALE = 1.0507009873554804934193349852946


class AlphaDropout:
    """Alpha dropout, Keras' ``AlphaDropout`` formulas: keep where a uniform draw >= rate; kept
    ``a * x + b``, dropped ``a * alpha_p + b``; the identity at test time (and for rate 0)."""

    def __init__(self, rate=0.5, rng=None):
        self.rate = rate
        self.rng = rng
        self.mask = None
        self.a = None

    def forward(self, x, train_flg=True):
        if not train_flg or self.rate == 0:
            if train_flg:
                self.mask, self.a = np.ones(x.shape, dtype=bool), x.dtype.type(1)
            return x.copy()
        tp = x.dtype.type
        alpha_p = -_SELU_ALPHA * _SELU_SCALE
        a = ((1 - self.rate) * (1 + self.rate * alpha_p**2)) ** -0.5
        b = -a * alpha_p * self.rate
        a, b = tp(a), tp(b)
        if self.rng is None:
            self.mask = np.random.rand(*x.shape) >= self.rate
        else:
            self.mask = self.rng.random(x.shape, dtype=x.dtype) >= tp(self.rate)
        self.a = a
        return np.where(self.mask, a * x + b, a * tp(alpha_p) + b)

    def backward(self, dout):
        return dout * self.a * self.mask


class BatchNormalization:
    """Batch norm over the batch axis; 4-D input ``(N, C, H, W)`` is flattened to ``(N, C*H*W)``."""

    def __init__(self, gamma, beta, momentum=0.9, running_mean=None, running_var=None):
        self.gamma = gamma
        self.beta = beta
        self.momentum = momentum
        self.input_shape = None
        self.running_mean = running_mean
        self.running_var = running_var
        self.batch_size = None
        self.xc = None
        self.xn = None
        self.std = None
        self.dgamma = None
        self.dbeta = None

    def forward(self, x, train_flg=True):
        self.input_shape = x.shape
        if x.ndim != 2:
            x = x.reshape(x.shape[0], -1)
        out = self._forward(x, train_flg)
        return out.reshape(*self.input_shape)

    def _forward(self, x, train_flg):
        if self.running_mean is None:
            D = x.shape[1]
            dtype = np.result_type(self.gamma, x)
            self.running_mean = np.zeros(D, dtype=dtype)
            self.running_var = np.zeros(D, dtype=dtype)
        if train_flg:
            mu = x.mean(axis=0)
            xc = x - mu
            var = np.mean(xc**2, axis=0)
            std = np.sqrt(var + 10e-7)
            xn = xc / std
            self.batch_size = x.shape[0]
            self.xc = xc
            self.xn = xn
            self.std = std
            self.running_mean = self.momentum * self.running_mean + (1 - self.momentum) * mu
            self.running_var = self.momentum * self.running_var + (1 - self.momentum) * var
        else:
            xc = x - self.running_mean
            xn = xc / np.sqrt(self.running_var + 10e-7)
        return self.gamma * xn + self.beta

    def backward(self, dout):
        if dout.ndim != 2:
            dout = dout.reshape(dout.shape[0], -1)
        dx = self._backward(dout)
        return dx.reshape(*self.input_shape)

    def _backward(self, dout):
        dbeta = dout.sum(axis=0)
        dgamma = np.sum(self.xn * dout, axis=0)
        dxn = self.gamma * dout
        dxc = dxn / self.std
        dstd = -np.sum((dxn * self.xc) / (self.std * self.std), axis=0)
        dvar = 0.5 * dstd / self.std
        dxc += (2.0 / self.batch_size) * self.xc * dvar
        dmu = np.sum(dxc, axis=0)
        dx = dxc - dmu / self.batch_size
        self.dgamma = dgamma
        self.dbeta = dbeta
        return dx
