"""Numerical-gradient checks (central differences, float64) of every layer's dx and parameter grads.

Each layer is differentiated through the scalar ``f = sum(forward(x) * R)`` for a fixed random
``R``: ``backward(R)`` must equal the central difference ``(f(x + h e) - f(x - h e)) / 2h``.
"""

from __future__ import annotations

import numpy as np
import pytest

from fastdl import layers as L

H = 1e-6
RTOL = 1e-6


def numerical_grad(f, a: np.ndarray) -> np.ndarray:
    """Central differences of the scalar ``f()`` with respect to every entry of ``a`` (changed in place)."""
    g = np.zeros_like(a)
    it = np.nditer(a, flags=["multi_index"])
    for _ in it:
        i = it.multi_index
        old = a[i]
        a[i] = old + H
        fp = f()
        a[i] = old - H
        fm = f()
        a[i] = old
        g[i] = (fp - fm) / (2 * H)
    return g


def assert_grad(analytic, numeric):
    scale = max(np.max(np.abs(numeric)), 1e-3)
    np.testing.assert_allclose(analytic, numeric, rtol=RTOL * 10, atol=RTOL * scale)


@pytest.fixture
def r():
    return np.random.default_rng(42)


def test_affine_gradients(r):
    W, b = r.standard_normal((6, 4)), r.standard_normal(4)
    layer = L.Affine(W, b)
    x = r.standard_normal((3, 2, 3))
    R = r.standard_normal((3, 4))

    def f():
        return float(np.sum(layer.forward(x) * R))

    f()
    dx = layer.backward(R)
    assert_grad(dx, numerical_grad(f, x))
    assert_grad(layer.dW, numerical_grad(f, W))
    assert_grad(layer.db, numerical_grad(f, b))


@pytest.mark.parametrize("name", ["Relu", "Sigmoid"])
def test_activation_gradients(name, r):
    layer = getattr(L, name)()
    x = r.standard_normal((4, 5))
    x[np.abs(x) < 1e-3] = 0.5  # keep relu away from its kink
    R = r.standard_normal((4, 5))

    def f():
        return float(np.sum(layer.forward(x) * R))

    f()
    assert_grad(layer.backward(R), numerical_grad(f, x))


@pytest.mark.parametrize("shape", [(5, 4), (4, 2, 1, 3)])
def test_batchnorm_gradients(shape, r):
    d = int(np.prod(shape[1:]))
    gamma, beta = r.standard_normal(d) + 1.0, r.standard_normal(d)
    layer = L.BatchNormalization(gamma, beta)
    x = r.standard_normal(shape) * 2 + 1
    R = r.standard_normal(shape)

    def f():
        return float(np.sum(layer.forward(x, train_flg=True) * R))

    f()
    dx = layer.backward(R)
    dgamma, dbeta = layer.dgamma, layer.dbeta
    assert_grad(dx, numerical_grad(f, x))
    assert_grad(dgamma, numerical_grad(f, gamma))
    assert_grad(dbeta, numerical_grad(f, beta))


@pytest.mark.parametrize("targets", ["labels", "onehot"])
def test_softmax_with_loss_gradient(targets, r):
    x = r.standard_normal((4, 3)) * 2
    labels = np.array([0, 2, 1, 2])
    t = labels if targets == "labels" else np.eye(3)[labels]
    layer = L.SoftmaxWithLoss()

    def f():
        return float(layer.forward(x, t))

    f()
    dx = layer.backward(2.5)
    assert_grad(dx, 2.5 * numerical_grad(f, x))


def test_dropout_gradient_with_fixed_mask(r):
    layer = L.Dropout(0.4)
    x = r.standard_normal((5, 4))
    R = r.standard_normal((5, 4))

    def f():
        np.random.seed(11)  # the same mask for every evaluation
        return float(np.sum(layer.forward(x) * R))

    f()
    assert_grad(layer.backward(R), numerical_grad(f, x))
