"""The activations of Hands-On ML ch. 11 as registry records: layers, functions and nets against the
reference twins and PyTorch (values and autograd), extremes, in-place drivers, PReLU's trained slope.

Tolerances as tests/test_reference_activations.py states them: ``|a - e| <= rtol * (|e| + scale)`` with
``scale`` the largest magnitude of the ordinary (random) inputs' results, NaN and infinities in the same
places; rtol 1e-12 (float64), 1e-5 (float32).
"""

from __future__ import annotations

import warnings

import numpy as np
import pytest
from conftest import DTYPES, assert_close, assert_matches_edges, rtol_for, with_layout

import fastdl.functional as F
from fastdl import activations, layers
from fastdl import optim as fopt
from fastdl import reference as R
from fastdl.nets import MultiLayerNet, MultiLayerNetExtend

NAMES = ("tanh", "leaky_relu", "prelu", "elu", "selu", "gelu", "gelu_tanh", "silu", "mish")
SHAPES = ((1, 13), (7, 13), (256, 1024))
EXTREMES = [-np.inf, -1e4, -700.0, -30.0, -20.5, -1e-10, -0.0, 0.0, 1e-10, 19.9, 20.0, 20.5, 30.0, 700.0, 1e4,
            np.inf, np.nan]
INITS = {"tanh": "xavier", "selu": "lecun"}  # the rest: he


def _torch_fn(name, F_t, alpha=None):
    """The PyTorch twin of ``name`` (a function of the input tensor and, for PReLU, the slope tensor)."""
    if name == "gelu_tanh":
        return lambda x: F_t.gelu(x, approximate="tanh")
    if name == "prelu":
        return lambda x: F_t.prelu(x, alpha)
    return getattr(F_t, name)


def _inputs(shape, dtype, seed=7):
    """``x`` (random * 4 with the extremes in its first entries where they fit), ``dout``, the ordinary positions."""
    rng = np.random.default_rng(seed)
    x = rng.standard_normal(shape) * 4
    k = min(len(EXTREMES), x.size - 1 if x.size > 1 else 0)
    flat = x.reshape(-1)
    flat[:k] = EXTREMES[:k]
    ordinary = np.ones(x.size, dtype=bool)
    ordinary[:k] = False
    return x.astype(dtype), rng.standard_normal(shape).astype(dtype), ordinary.reshape(shape)


def _make(name, d, dtype):
    """(fastdl layer, reference layer, slope or None) for ``name`` with ``d`` features."""
    if name == "prelu":
        alpha = np.linspace(-0.3, 1.2, d).astype(dtype)
        alpha[0] = 0.25
        return layers.PRelu(alpha), R.PRelu(alpha.copy()), alpha
    rec = activations.get(name)
    return layers.activation_layer(name)(), rec.reference(), None


@pytest.mark.parametrize("shape", SHAPES, ids=lambda s: "x".join(map(str, s)))
@pytest.mark.parametrize("layout", ["C", "strided"])
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("name", NAMES)
def test_layer_matches_reference_and_torch(name, dtype, layout, shape):
    x, dout, ordinary = _inputs(shape, dtype)
    layer, ref, alpha = _make(name, shape[1], dtype)
    xl, dl = with_layout(x, layout), with_layout(dout, layout)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no overflow or invalid-value warnings, whatever the input
        y = layer.forward(xl)
        dx = layer.backward(dl)
        y_ref, dx_ref = ref.forward(x), ref.backward(dout)
    assert y.dtype == dtype and dx.dtype == dtype and y.shape == shape and dx.shape == shape
    np.testing.assert_array_equal(xl, x)  # inputs untouched
    np.testing.assert_array_equal(dl, dout)
    rtol = rtol_for(dtype)
    scale_y, scale_d = float(np.max(np.abs(y_ref[ordinary]))), float(np.max(np.abs(dx_ref[ordinary])))
    assert_matches_edges(y, y_ref, rtol, f"{name} forward vs reference", scale_y)
    assert_matches_edges(dx, dx_ref, rtol, f"{name} backward vs reference", scale_d)
    if alpha is not None:
        _assert_dalpha(layer.dalpha, ref.dalpha, dtype, "dalpha vs reference")

    torch = pytest.importorskip("torch")
    tx = torch.tensor(x, requires_grad=True)
    ta = torch.tensor(alpha, requires_grad=True) if alpha is not None else None
    ty = _torch_fn(name, torch.nn.functional, ta)(tx)
    grads = torch.autograd.grad(ty, (tx,) if ta is None else (tx, ta), grad_outputs=torch.tensor(dout))
    ty, tdx = ty.detach().numpy(), grads[0].numpy()
    if name == "gelu" and dtype == np.float32:  # PyTorch's float32 GELU gives NaN at +inf; we (and float64) inf
        at_inf = x == np.inf
        ty = np.where(at_inf & np.isnan(ty), np.float32(np.inf), ty)
    if name in ("elu", "selu"):
        # PyTorch's ELU/SELU gradient at a NaN input depends on where it sits: NaN in its vectorized body,
        # dout*scale in its scalar tail; the reference (and fastdl) give the scalar definition's dout*scale
        at_nan = np.isnan(x)
        tdx = np.where(at_nan, dx_ref, tdx)
    assert_matches_edges(y, ty, rtol, f"{name} forward vs torch", scale_y)
    assert_matches_edges(dx, tdx, rtol, f"{name} backward vs torch", scale_d)
    if ta is not None:
        tda = grads[1].numpy()
        _assert_dalpha(layer.dalpha, tda, dtype, "dalpha vs torch")


def _assert_dalpha(actual, expected, dtype, what):
    """A column sum: the reduction tolerance, scaled by the largest finite sum (extremes make some non-finite)."""
    finite = np.isfinite(expected)
    scale = float(np.max(np.abs(expected[finite]))) if finite.any() else 0.0
    assert_matches_edges(actual, expected, rtol_for(dtype, "reduction"), what, scale)


@pytest.mark.parametrize("name", NAMES)
def test_numerical_gradient_float64(name):
    rng = np.random.default_rng(11)
    x = rng.standard_normal((6, 7)) * 3
    x[np.abs(x) < 1e-3] = 0.5  # away from the kinks at 0
    dout = rng.standard_normal(x.shape)
    layer, _, alpha = _make(name, 7, np.float64)
    layer.forward(x)
    dx = layer.backward(dout)
    h = 1e-6

    def f(xv, a=alpha):
        lay = layers.PRelu(a) if name == "prelu" else layers.activation_layer(name)()
        return float(np.sum(lay.forward(xv) * dout))

    num = np.empty_like(x)
    for i in np.ndindex(x.shape):
        xp, xm = x.copy(), x.copy()
        xp[i] += h
        xm[i] -= h
        num[i] = (f(xp) - f(xm)) / (2 * h)
    np.testing.assert_allclose(dx, num, rtol=1e-6, atol=1e-8)
    if alpha is not None:
        num_a = np.empty_like(alpha)
        for j in range(alpha.size):
            ap, am = alpha.copy(), alpha.copy()
            ap[j] += h
            am[j] -= h
            num_a[j] = (f(x, ap) - f(x, am)) / (2 * h)
        np.testing.assert_allclose(layer.dalpha, num_a, rtol=1e-6, atol=1e-8)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("name", [n for n in NAMES if n != "prelu"])
def test_drivers_work_in_place(name, dtype):
    """The driver contract: ``out`` may be ``x`` and ``dx`` may be ``dout`` (the fused step's buffers)."""
    rec = activations.get(name)
    x, dout, _ = _inputs((5, 40), dtype, seed=3)
    consts = tuple(dtype(v) for _, v in rec.options)
    fx, fd = x.reshape(-1), dout.reshape(-1)
    out = np.empty_like(fx)
    mask = np.empty(fx.shape, dtype=bool)
    extra = (mask,) if rec.saves == "mask" else ()
    rec.forward(fx, out, *extra, *consts)
    saved = {"x": fx, "y": out, "mask": mask}[rec.saves]
    dx = np.empty_like(fd)
    rec.backward(fd, saved, dx, *consts)
    # in place
    buf = fx.copy()
    mask2 = np.empty_like(mask)
    rec.forward(buf, buf, *((mask2,) if rec.saves == "mask" else ()), *consts)
    np.testing.assert_array_equal(buf, out)
    saved2 = {"x": fx.copy(), "y": out.copy(), "mask": mask}[rec.saves]
    g = fd.copy()
    rec.backward(g, saved2, g, *consts)
    np.testing.assert_array_equal(g, dx)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("name", NAMES)
def test_functional(name, dtype):
    x, dout, _ = _inputs((7, 13), dtype, seed=5)
    layer, _, alpha = _make(name, 13, dtype)
    y = layer.forward(x)
    dx = layer.backward(dout)
    if alpha is not None:  # a learnable slope lives in a layer
        with pytest.raises(ValueError, match="prelu: name must be an activation without learnable parameters"):
            F.prelu(x)
        return
    np.testing.assert_array_equal(getattr(F, name)(x), y)
    saved = y if activations.get(name).saves == "y" else x
    np.testing.assert_array_equal(getattr(F, f"{name}_backward")(dout, saved), dx)
    np.testing.assert_array_equal(F.activation(name, x), y)


def test_options_aliases_and_gelu_forms(rng):
    x = rng.standard_normal((4, 6)) * 3
    np.testing.assert_array_equal(layers.LeakyRelu(alpha=0.3).forward(x), R.LeakyRelu(0.3).forward(x))
    np.testing.assert_array_equal(layers.LeakyRelu().forward(x), R.LeakyRelu(0.01).forward(x))
    np.testing.assert_array_equal(F.leaky_relu(x, alpha=0.3), R.LeakyRelu(0.3).forward(x))
    np.testing.assert_array_equal(layers.Elu(alpha=0.5).forward(x), R.Elu(0.5).forward(x))
    np.testing.assert_array_equal(F.swish(x), F.silu(x))
    assert layers.activation_layer("swish") is layers.Silu
    g = layers.Gelu(approximate="tanh")
    np.testing.assert_array_equal(g.forward(x), layers.GeluTanh().forward(x))
    ref = R.GeluTanh()
    ref.forward(x)
    assert_close(g.backward(x), ref.backward(x))
    assert layers.activation_layer("gelu") is layers.Gelu and layers.Gelu().approximate == "none"
    with pytest.raises(ValueError, match="Gelu: approximate must be 'none' or 'tanh'; got 'erf'"):
        layers.Gelu("erf")
    with pytest.raises(TypeError, match="LeakyRelu: slope must be one of the options"):
        layers.LeakyRelu(slope=0.3)
    with pytest.raises(ValueError, match=r"PRelu.forward: alpha must be of length 6"):
        layers.PRelu(np.full(5, 0.25)).forward(x)
    assert "Keras' LeakyReLU layer defaults to 0.3" in (layers.LeakyRelu.__doc__ or "")


def test_records_say_their_init_formula_and_twin():
    for name in NAMES:
        rec = activations.get(name)
        assert rec.init == INITS.get(name, "he"), name
        assert rec.formula and rec.torch is not None and rec.fused_forward is None
    assert activations.get("prelu").params == (activations.Param("alpha", 0.25),)
    assert activations.get("swish") is activations.get("silu")


@pytest.mark.parametrize("name", NAMES)
def test_weight_init_auto_follows_the_record(name):
    import fastdl.init as init

    rule = {"he": init.he, "xavier": init.xavier, "lecun": init.lecun}[INITS.get(name, "he")]
    np.random.seed(7)
    net = MultiLayerNetExtend(50, [40], 3, activation=name, weight_init_std="auto")
    np.random.seed(7)
    np.testing.assert_array_equal(net.params["W1"], rule(50) * np.random.randn(50, 40))


def _nets(name, dtype, **kw):
    """Fused fastdl, layer-path fastdl and reference nets with the same weights."""
    out = []
    for backend in ("fastdl", "fastdl", "reference"):
        np.random.seed(4)
        out.append(MultiLayerNetExtend(9, [8, 7, 6], 4, activation=name, dtype=dtype, backend=backend, **kw))
    out[1]._fused = None
    return out


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("name", NAMES)
def test_nets_train_like_the_reference(name, dtype):
    fused, layered, ref = _nets(name, dtype, use_batchnorm=True)
    assert (fused._fused is None) == (name == "prelu")
    rng = np.random.default_rng(5)
    x, t = rng.standard_normal((12, 9)).astype(dtype), rng.integers(0, 4, 12)
    opts = [fopt.Adam(lr=0.01) for _ in range(2)] + [R.Adam(lr=0.01)]
    for _ in range(3):
        grads = [net.gradient(x, t) for net in (fused, layered, ref)]
        for key, value in grads[1].items():  # same kernels, same order: the layer path's numbers to the bit
            np.testing.assert_array_equal(grads[0][key], value, err_msg=key)
        for opt, net, g in zip(opts, (fused, layered, ref), grads):
            opt.update(net.params, g)
    rtol = rtol_for(dtype, "reduction")
    for key in ("W1", "W2", "W4", *(("alpha1", "alpha3") if name == "prelu" else ())):
        scale = float(np.max(np.abs(ref.params[key])))
        np.testing.assert_allclose(fused.params[key], ref.params[key], rtol=rtol, atol=rtol * scale, err_msg=key)
    y_ref = ref.predict(x, train_flg=True)
    scale = float(np.max(np.abs(y_ref)))
    np.testing.assert_allclose(fused.predict(x, train_flg=True), y_ref, rtol=rtol, atol=rtol * scale)
    # MultiLayerNet (no batch norm) takes the name too
    np.random.seed(1)
    plain = MultiLayerNet(9, [8], 4, activation=name, dtype=dtype)
    np.random.seed(1)
    plain_ref = MultiLayerNet(9, [8], 4, activation=name, dtype=dtype, backend="reference")
    np.testing.assert_allclose(plain.loss(x, t), plain_ref.loss(x, t), rtol=rtol)


@pytest.mark.parametrize("opt_name", sorted(fopt.OPTIMIZERS))
def test_prelu_slope_trained_by_every_optimizer(opt_name):
    np.random.seed(2)
    net = MultiLayerNetExtend(5, [4, 3], 3, activation="prelu", use_batchnorm=True)
    np.random.seed(2)
    ref = MultiLayerNetExtend(5, [4, 3], 3, activation="prelu", use_batchnorm=True, backend="reference")
    assert [k for k in net.params if k.startswith("alpha")] == ["alpha1", "alpha2"]
    assert net.layers["Activation_function1"].alpha is net.params["alpha1"]
    np.testing.assert_array_equal(net.params["alpha1"], np.full(4, 0.25))
    x, t = np.random.default_rng(3).standard_normal((6, 5)) * 2, np.array([0, 2, 1, 2, 0, 1])
    opt = fopt.OPTIMIZERS[opt_name](lr=0.05)
    ref_cls = getattr(R, type(opt).__name__, None)
    ref_opt = ref_cls(lr=0.05) if ref_cls is not None else fopt.OPTIMIZERS[opt_name](lr=0.05)
    before = net.params["alpha1"].copy()
    for _ in range(3):
        opt.update(net.params, net.gradient(x, t))
        ref_opt.update(ref.params, ref.gradient(x, t))
    assert not np.array_equal(net.params["alpha1"], before)
    for key in ("alpha1", "alpha2", "W1"):
        np.testing.assert_allclose(net.params[key], ref.params[key], rtol=1e-10, atol=1e-12, err_msg=key)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("name", NAMES)
def test_parallel_twins_give_the_serial_numbers(name, dtype):
    """Every driver's parallel twin (forced on a small array) against its serial worker."""
    from fastdl import runtime

    x, dout, _ = _inputs((37, 29), dtype, seed=9)
    results = []
    for threshold in (2**62, 0):
        with runtime.parallel_threshold(threshold):
            layer = _make(name, 29, dtype)[0]
            results.append((layer.forward(x), layer.backward(dout), getattr(layer, "dalpha", None)))
    (y0, d0, a0), (y1, d1, a1) = results
    np.testing.assert_array_equal(y1, y0)
    np.testing.assert_array_equal(d1, d0)
    if a0 is not None:  # per-chunk partial sums: the reduction tolerance
        _assert_dalpha(a1, a0, dtype, "dalpha parallel vs serial")


def test_erf_polynomial_error_bound():
    """fastdl.kernels.erf.erf1 within 4.5e-16 of libm's erf (its stated 3.4e-16 plus libm's 1.1e-16)."""
    import math

    from fastdl.kernels.erf import erf1

    z = np.concatenate([np.linspace(-7, 7, 4001), np.linspace(2.49, 2.51, 201), np.geomspace(1e-300, 0.1, 50),
                        [5.999, 6.0, 6.001, 1e300]])
    ours = np.array([erf1(v) for v in z])
    libm = np.array([math.erf(v) for v in z])
    np.testing.assert_allclose(ours, libm, rtol=0, atol=4.5e-16)
    small = np.abs(z) < 1
    np.testing.assert_allclose(ours[small], libm[small], rtol=1e-15, atol=0)
    assert erf1(np.inf) == 1.0 and erf1(-np.inf) == -1.0 and np.isnan(erf1(np.nan))
    assert math.copysign(1.0, erf1(-0.0)) == -1.0
    # the float32 twin, in float32 arithmetic
    from fastdl.kernels.erf import erf1f

    z32 = z[np.abs(z) < 1e30].astype(np.float32)
    ours32 = np.array([erf1f(v) for v in z32])
    assert np.array_equal(ours32, ours32.astype(np.float32))  # float32 values
    exact = np.array([math.erf(float(v)) for v in z32])
    np.testing.assert_allclose(ours32, exact, rtol=0, atol=1.9e-7)
    assert erf1f(np.float32(np.inf)) == 1 and np.isnan(erf1f(np.float32(np.nan)))
