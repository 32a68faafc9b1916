"""The reference activations of Hands-On ML ch. 11 against PyTorch (values and autograd) and numerical gradients."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
from conftest import assert_matches_edges

from fastdl.reference import _activations as A

# name -> (reference layer factory, torch function factory)
CASES = {
    "tanh": (A.Tanh, lambda F, torch: torch.tanh),
    "leaky_relu": (A.LeakyRelu, lambda F, torch: F.leaky_relu),
    "leaky_relu-0.3": (lambda: A.LeakyRelu(0.3), lambda F, torch: lambda x: F.leaky_relu(x, 0.3)),
    "elu": (A.Elu, lambda F, torch: F.elu),
    "elu-0.5": (lambda: A.Elu(0.5), lambda F, torch: lambda x: F.elu(x, 0.5)),
    "selu": (A.Selu, lambda F, torch: F.selu),
    "gelu": (A.Gelu, lambda F, torch: F.gelu),
    "gelu-tanh": (lambda: A.Gelu("tanh"), lambda F, torch: lambda x: F.gelu(x, approximate="tanh")),
    "silu": (A.Silu, lambda F, torch: F.silu),
    "mish": (A.Mish, lambda F, torch: F.mish),
}
EXTREMES = [-np.inf, -1e4, -700.0, -30.0, -20.5, -1e-10, -0.0, 0.0, 1e-10, 19.9, 20.0, 20.5, 30.0, 700.0, 1e4,
            np.inf, np.nan]


def _torch_pair(torch, F, name, x, dout):
    tx = torch.tensor(x, requires_grad=True)
    y = CASES[name][1](F, torch)(tx)
    (g,) = torch.autograd.grad(y, tx, grad_outputs=torch.tensor(dout))
    return y.detach().numpy(), g.numpy()


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("name", sorted(CASES))
def test_matches_pytorch(name, dtype):
    torch = pytest.importorskip("torch")
    F = torch.nn.functional
    rng = np.random.default_rng(7)
    x = np.concatenate([rng.standard_normal(500) * 4, np.array(EXTREMES)]).astype(dtype)
    dout = rng.standard_normal(x.shape).astype(dtype)
    layer = CASES[name][0]()
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no overflow or invalid-value warnings, whatever the input
        y = layer.forward(x.reshape(-1, 1)).ravel()
        dx = layer.backward(dout.reshape(-1, 1)).ravel()
    assert y.dtype == dtype and dx.dtype == dtype
    ty, tdx = _torch_pair(torch, F, name, x, dout)
    if name == "gelu" and dtype == np.float32:
        # PyTorch 2.x's float32 GELU gives NaN at +inf (its float64 one gives inf): we give inf in both
        at_inf = x == np.inf
        assert np.isnan(ty[at_inf]).all() or (ty[at_inf] == np.inf).all()
        ty = np.where(at_inf, np.float32(np.inf), ty)
    rtol = 1e-12 if dtype == np.float64 else 1e-5
    n = 500  # the random inputs come first, the extremes after them
    assert_matches_edges(y, ty, rtol, f"{name} forward", float(np.max(np.abs(ty[:n]))))
    assert_matches_edges(dx, tdx, rtol, f"{name} backward", float(np.max(np.abs(tdx[:n]))))


def test_prelu_matches_pytorch():
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(3)
    x = rng.standard_normal((64, 5))
    alpha = np.array([0.25, 0.1, -0.2, 0.0, 1.5])
    dout = rng.standard_normal(x.shape)
    layer = A.PRelu(alpha)
    y = layer.forward(x)
    dx = layer.backward(dout)
    tx = torch.tensor(x, requires_grad=True)
    ta = torch.tensor(alpha, requires_grad=True)
    ty = torch.nn.functional.prelu(tx, ta)
    tdx, tda = torch.autograd.grad(ty, (tx, ta), grad_outputs=torch.tensor(dout))
    np.testing.assert_allclose(y, ty.detach().numpy(), rtol=1e-12)
    np.testing.assert_allclose(dx, tdx.numpy(), rtol=1e-12)
    np.testing.assert_allclose(layer.dalpha, tda.numpy(), rtol=1e-12)


@pytest.mark.parametrize("name", sorted(CASES))
def test_numerical_gradient_float64(name):
    rng = np.random.default_rng(11)
    x = rng.standard_normal((6, 7)) * 3
    x[np.abs(x) < 1e-3] = 0.5  # keep away from the kinks of LeakyReLU/ELU at 0
    dout = rng.standard_normal(x.shape)
    layer = CASES[name][0]()
    layer.forward(x)
    dx = layer.backward(dout)
    h = 1e-6
    num = np.empty_like(x)
    for i in np.ndindex(x.shape):
        xp, xm = x.copy(), x.copy()
        xp[i] += h
        xm[i] -= h
        num[i] = (np.sum(CASES[name][0]().forward(xp) * dout) - np.sum(CASES[name][0]().forward(xm) * dout)) / (2 * h)
    np.testing.assert_allclose(dx, num, rtol=1e-6, atol=1e-8)


def test_selu_constants_and_gelu_argument():
    assert A.SELU_ALPHA == pytest.approx(1.6732632423543772) and A.SELU_SCALE == pytest.approx(1.0507009873554805)
    with pytest.raises(ValueError, match="approximate must be 'none' or 'tanh'"):
        A.Gelu("erf")
