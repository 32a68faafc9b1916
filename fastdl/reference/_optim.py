"""Optimizers with ``update(params, grads)``, plain NumPy, as the book writes them.

State is created on the first ``update``; parameters are changed in place (``-=``/``+=``), so the
arrays in ``params`` stay the same objects. eps = 1e-7 sits outside the square root.
"""

import numpy as np


class SGD:
    """``p -= lr * g``."""

    def __init__(self, lr=0.01):
        self.lr = lr

    def update(self, params, grads):
        for key in params.keys():
            params[key] -= self.lr * grads[key]


class Momentum:
    """``v = momentum * v - lr * g``; ``p += v``."""

    def __init__(self, lr=0.01, momentum=0.9):
        self.lr = lr
        self.momentum = momentum
        self.v = None

    def update(self, params, grads):
        if self.v is None:
            self.v = {key: np.zeros_like(val) for key, val in params.items()}
        for key in params.keys():
            self.v[key] = self.momentum * self.v[key] - self.lr * grads[key]
            params[key] += self.v[key]


class Nesterov:
    """Nesterov momentum as the book's repository has it since its January 2021 fix (Sutskever et al.)::

        p += momentum * momentum * v; p -= (1 + momentum) * lr * g   # with the old v
        v *= momentum; v -= lr * g
    """

    def __init__(self, lr=0.01, momentum=0.9):
        self.lr = lr
        self.momentum = momentum
        self.v = None

    def update(self, params, grads):
        if self.v is None:
            self.v = {key: np.zeros_like(val) for key, val in params.items()}
        for key in params.keys():
            params[key] += self.momentum * self.momentum * self.v[key]
            params[key] -= (1 + self.momentum) * self.lr * grads[key]
            self.v[key] *= self.momentum
            self.v[key] -= self.lr * grads[key]


class AdaGrad:
    """``h += g*g``; ``p -= lr * g / (sqrt(h) + eps)``."""

    def __init__(self, lr=0.01, eps=1e-7):
        self.lr = lr
        self.eps = eps
        self.h = None

    def update(self, params, grads):
        if self.h is None:
            self.h = {key: np.zeros_like(val) for key, val in params.items()}
        for key in params.keys():
            self.h[key] += grads[key] * grads[key]
            params[key] -= self.lr * grads[key] / (np.sqrt(self.h[key]) + self.eps)


class RMSprop:
    """``h *= decay_rate``; ``h += (1 - decay_rate) * g*g``; ``p -= lr * g / (sqrt(h) + eps)``."""

    def __init__(self, lr=0.01, decay_rate=0.99, eps=1e-7):
        self.lr = lr
        self.decay_rate = decay_rate
        self.eps = eps
        self.h = None

    def update(self, params, grads):
        if self.h is None:
            self.h = {key: np.zeros_like(val) for key, val in params.items()}
        for key in params.keys():
            self.h[key] *= self.decay_rate
            self.h[key] += (1 - self.decay_rate) * grads[key] * grads[key]
            params[key] -= self.lr * grads[key] / (np.sqrt(self.h[key]) + self.eps)


class Adam:
    """Adam with both bias corrections folded into the step size (the book's form)::

        t += 1
        lr_t = lr * sqrt(1 - beta2**t) / (1 - beta1**t)
        m += (1 - beta1) * (g - m)
        v += (1 - beta2) * (g**2 - v)
        p -= lr_t * m / (sqrt(v) + eps)
    """

    def __init__(self, lr=0.001, beta1=0.9, beta2=0.999, eps=1e-7):
        self.lr = lr
        self.beta1 = beta1
        self.beta2 = beta2
        self.eps = eps
        self.iter = 0
        self.m = None
        self.v = None

    def update(self, params, grads):
        if self.m is None:
            self.m = {key: np.zeros_like(val) for key, val in params.items()}
            self.v = {key: np.zeros_like(val) for key, val in params.items()}
        self.iter += 1
        # A Python float, as lr_t was a "weak" scalar under the NumPy 1.x the book was written for:
        # float32 parameters are then stepped in float32 (under NumPy 2 an np.float64 lr_t would
        # promote the step to float64). For float64 the numbers are the same either way.
        lr_t = float(self.lr * np.sqrt(1.0 - self.beta2**self.iter) / (1.0 - self.beta1**self.iter))
        for key in params.keys():
            self.m[key] += (1 - self.beta1) * (grads[key] - self.m[key])
            self.v[key] += (1 - self.beta2) * (grads[key] ** 2 - self.v[key])
            params[key] -= lr_t * self.m[key] / (np.sqrt(self.v[key]) + self.eps)


class AdaMax:
    """AdaMax as Keras 3's ``Adamax`` (eps added to ``u``)::

        iter += 1
        lr_t = lr / (1 - beta1**iter)
        m += (1 - beta1) * (g - m)
        u = maximum(beta2 * u, |g|)
        p -= lr_t * m / (u + eps)
    """

    def __init__(self, lr=0.001, beta1=0.9, beta2=0.999, eps=1e-7):
        self.lr = lr
        self.beta1 = beta1
        self.beta2 = beta2
        self.eps = eps
        self.iter = 0
        self.m = None
        self.u = None

    def update(self, params, grads):
        if self.m is None:
            self.m = {key: np.zeros_like(val) for key, val in params.items()}
            self.u = {key: np.zeros_like(val) for key, val in params.items()}
        self.iter += 1
        lr_t = float(self.lr / (1.0 - self.beta1**self.iter))  # a Python float: float32 stays float32
        for key in params.keys():
            self.m[key] += (1 - self.beta1) * (grads[key] - self.m[key])
            self.u[key] = np.maximum(self.beta2 * self.u[key], np.abs(grads[key]))
            params[key] -= lr_t * self.m[key] / (self.u[key] + self.eps)


class Nadam(Adam):
    """Nadam as Keras 3's ``Nadam`` (momentum cache ``u_t = beta1 * (1 - 0.5 * 0.96**t)``)::

        iter += 1
        u_t, u_next = beta1 * (1 - 0.5 * 0.96**iter), beta1 * (1 - 0.5 * 0.96**(iter + 1))
        u_product *= beta1 * (1 - 0.5 * 0.96**iter)
        m += (1 - beta1) * (g - m)
        v += (1 - beta2) * (g**2 - v)
        m_hat = lr * u_next / (1 - u_product * u_next) * m + lr * (1 - u_t) / (1 - u_product) * g
        p -= m_hat / (sqrt(v / (1 - beta2**iter)) + eps)
    """

    def __init__(self, lr=0.001, beta1=0.9, beta2=0.999, eps=1e-7):
        super().__init__(lr, beta1, beta2, eps)  # (Adam's hyper-parameters, iter, m and v)
        self.u_product = 1.0

    def update(self, params, grads):
        if self.m is None:
            self.m = {key: np.zeros_like(val) for key, val in params.items()}
            self.v = {key: np.zeros_like(val) for key, val in params.items()}
        self.iter += 1
        u_t = self.beta1 * (1.0 - 0.5 * 0.96**self.iter)
        u_next = self.beta1 * (1.0 - 0.5 * 0.96 ** (self.iter + 1))
        self.u_product = self.u_product * self.beta1 * (1.0 - 0.5 * 0.96**self.iter)
        cm = float(self.lr * u_next / (1.0 - self.u_product * u_next))
        cg = float(self.lr * (1.0 - u_t) / (1.0 - self.u_product))
        bc2 = float(1.0 - self.beta2**self.iter)
        for key in params.keys():
            self.m[key] += (1 - self.beta1) * (grads[key] - self.m[key])
            self.v[key] += (1 - self.beta2) * (grads[key] ** 2 - self.v[key])
            params[key] -= (cm * self.m[key] + cg * grads[key]) / (np.sqrt(self.v[key] / bc2) + self.eps)


class AdamW(Adam):
    """AdamW as Keras 3's ``AdamW``: decoupled decay, then :class:`Adam`'s step::

        p -= (lr * weight_decay) * p
        iter += 1
        lr_t = lr * sqrt(1 - beta2**iter) / (1 - beta1**iter)
        m += (1 - beta1) * (g - m)
        v += (1 - beta2) * (g**2 - v)
        p -= lr_t * m / (sqrt(v) + eps)
    """

    def __init__(self, lr=0.001, beta1=0.9, beta2=0.999, eps=1e-7, weight_decay=0.004):
        super().__init__(lr, beta1, beta2, eps)
        self.weight_decay = weight_decay

    def update(self, params, grads):
        wd_lr = float(self.lr * self.weight_decay)  # (m and v do not read p: decaying first is the same)
        for key in params.keys():
            params[key] -= wd_lr * params[key]
        super().update(params, grads)


def clip_gradients(grads, option, value):
    """Keras' gradient clipping in plain NumPy: a new dict, the caller's gradients untouched.

    ``option`` is ``'clipvalue'`` (each element clipped to ``[-value, value]``), ``'clipnorm'``
    (each array times ``value / max(norm, value)``, its own L2 norm) or ``'global_clipnorm'`` (all
    arrays times ``value * min(1 / norm, 1 / value)``, the L2 norm of all of them together); the
    norms are summed in float64, the scaled arrays keep their dtype.
    """
    if option == "clipvalue":
        return {k: np.clip(g, -value, value) for k, g in grads.items()}
    if option == "clipnorm":
        out = {}
        for k, g in grads.items():
            norm = np.sqrt(np.sum(np.square(g, dtype=np.float64)))
            out[k] = (g * (value / max(norm, value))).astype(g.dtype)
        return out
    if option != "global_clipnorm":
        raise ValueError(f"clip_gradients: option must be 'clipvalue', 'clipnorm' or 'global_clipnorm'; got {option!r}")
    norm = np.sqrt(sum(np.sum(np.square(g, dtype=np.float64)) for g in grads.values()))
    scale = value * min(1.0 / norm, 1.0 / value)
    return {k: (g * scale).astype(g.dtype) for k, g in grads.items()}
