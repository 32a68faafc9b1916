"""A toy activation added from outside the package, through the registry alone, is usable by name
everywhere: its layer, fastdl.functional, MultiLayerNetExtend's layer path and fused step."""

import numba
import numpy as np
import pytest
from conftest import DTYPES, rtol_for

import fastdl.functional as F
from fastdl import activations, layers
from fastdl import reference as R
from fastdl.kernels import activations as K
from fastdl.nets import MultiLayerNetExtend
from fastdl.optim import Adam

# -- the toy: softsign x / (1 + |x|), its kernels and its reference twin ------------------------------


@numba.njit
def _softsign_fwd(x, out):
    for i in range(x.size):
        v = x[i]
        out[i] = v / (1 + abs(v))


@numba.njit
def _softsign_bwd(dout, x, dx):
    for i in range(x.size):
        d = 1 + abs(x[i])
        dx[i] = dout[i] / (d * d)


class RefSoftsign:
    def __init__(self):
        self.x = None

    def forward(self, x):
        self.x = x
        return x / (1 + np.abs(x))

    def backward(self, dout):
        return dout / (1 + np.abs(self.x)) ** 2


SOFTSIGN = activations.Activation(
    name="softsign", aliases=("soft_sign",), layer="Softsign", forward=_softsign_fwd, backward=_softsign_bwd,
    saves="x", reference=RefSoftsign, torch="softsign", init="xavier", formula="x / (1 + |x|)")

def _mask_relu_fwd(x, out, mask):  # a record that keeps a boolean mask (as leaky_relu's does)
    np.less_equal(x, 0, out=mask)
    np.copyto(out, x)
    out[mask] = 0


def _mask_relu_bwd(dout, mask, dx):
    np.copyto(dx, dout)
    dx[mask] = 0


# relu with a mask and sigmoid, without fused kernel codes: the fused step runs their drivers on its buffers
BY_DRIVER = [
    activations.Activation(name="toy_relu", layer="ToyRelu", forward=_mask_relu_fwd, backward=_mask_relu_bwd,
                           saves="mask", reference=R.Relu),
    activations.Activation(name="toy_sigmoid", layer="ToySigmoid", forward=K.sigmoid_forward,
                           backward=K.sigmoid_backward, saves="y", reference=R.Sigmoid, init="xavier"),
]


# -- a toy with a learnable per-feature parameter (the hook PReLU will use): y = a * x ------------------


def _scale_fwd(x, out, a):
    np.multiply(x, a, out=out)


def _scale_bwd(dout, x, dx, a, da):
    np.sum(dout * x, axis=0, out=da)
    np.multiply(dout, a, out=dx)


class RefScale:
    def __init__(self, a):
        self.a = a
        self.x = None

    def forward(self, x):
        self.x = x
        return x * self.a

    def backward(self, dout):
        self.da = np.sum(dout * self.x, axis=0)
        return dout * self.a


SCALE = activations.Activation(name="toy_scale", layer="ToyScale", forward=_scale_fwd, backward=_scale_bwd,
                               saves="x", reference=RefScale, params=(activations.Param("a", 0.5),))


@pytest.fixture
def registered():
    """Register the toys for one test, then remove them (the registry is left as it was)."""
    before = activations.names()
    for rec in (SOFTSIGN, *BY_DRIVER, SCALE):
        activations.register(rec)
    yield
    for rec in (SOFTSIGN, *BY_DRIVER, SCALE):
        activations.unregister(rec.name)
    assert activations.names() == before


@pytest.mark.parametrize("dtype", DTYPES)
def test_layer_and_functional_by_name(registered, dtype, rng):
    x = rng.standard_normal((7, 5)).astype(dtype) * 3
    dout = rng.standard_normal((7, 5)).astype(dtype)
    ref = RefSoftsign()
    y_ref, dx_ref = ref.forward(x), ref.backward(dout)
    layer = layers.Softsign()  # generated from the record
    assert isinstance(layer, layers.ActivationLayer) and layers.activation_layer("soft_sign") is type(layer)
    rtol = rtol_for(dtype)
    np.testing.assert_allclose(layer.forward(x), y_ref, rtol=rtol)
    dx = layer.backward(dout)
    assert dx.dtype == dtype
    np.testing.assert_allclose(dx, dx_ref, rtol=rtol)
    np.testing.assert_allclose(F.softsign(x), y_ref, rtol=rtol)
    np.testing.assert_allclose(F.softsign_backward(dout, x), dx_ref, rtol=rtol)
    np.testing.assert_allclose(F.activation("soft_sign", x), y_ref, rtol=rtol)
    with pytest.raises(ValueError, match=r"softsign_backward: dout must be of shape \(7, 5\)"):
        F.softsign_backward(dout[:3], x)
    with pytest.raises(RuntimeError, match="Softsign.backward: call Softsign.forward first"):
        layers.Softsign().backward(dout)


def _nets(activation, dtype, **kw):
    """Fused fastdl, layer-path fastdl and reference nets with the same weights."""
    out = []
    for backend in ("fastdl", "fastdl", "reference"):
        np.random.seed(4)
        out.append(MultiLayerNetExtend(9, [8, 7, 6], 4, activation=activation, dtype=dtype, backend=backend, **kw))
    assert out[0]._fused is not None
    out[1]._fused = None
    return out


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("kw", [{"use_batchnorm": True}, {"weight_decay_lambda": 0.05}])
def test_toy_trains_in_the_fused_step_like_the_layer_path_and_the_reference(registered, dtype, kw):
    fused, layered, ref = _nets("softsign", dtype, **kw)
    assert fused.activation == "softsign" and isinstance(fused.layers["Activation_function1"], layers.Softsign)
    assert isinstance(ref.layers["Activation_function1"], RefSoftsign)
    rng = np.random.default_rng(5)
    x, t = rng.standard_normal((12, 9)).astype(dtype), rng.integers(0, 4, 12)
    opts = [Adam(lr=0.01) for _ in range(2)] + [R.Adam(lr=0.01)]
    for _ in range(4):
        grads = [net.gradient(x, t) for net in (fused, layered, ref)]
        assert all(np.shares_memory(g, fused._fused.G) for g in grads[0].values())
        for key, value in grads[1].items():  # same kernels, same order: the layer path's numbers to the bit
            np.testing.assert_array_equal(grads[0][key], value, err_msg=key)
        # the layer caches after a fused step are those of the layer path: backward works on them
        np.testing.assert_array_equal(fused.layers["Activation_function2"].x, layered.layers["Activation_function2"].x)
        for opt, net, g in zip(opts, (fused, layered, ref), grads):
            opt.update(net.params, g)
    rtol = rtol_for(dtype, "reduction")
    for key in ("W1", "W2", "W4"):
        scale = float(np.max(np.abs(ref.params[key])))
        np.testing.assert_allclose(fused.params[key], ref.params[key], rtol=rtol, atol=rtol * scale, err_msg=key)
    # (training mode: Adam turns a pre-batch-norm bias's rounding-noise gradient into +-lr steps that
    # reach the running means, not the outputs; see tests/test_step.py)
    y_ref = ref.predict(x, train_flg=True)
    scale = float(np.max(np.abs(y_ref)))
    np.testing.assert_allclose(fused.predict(x, train_flg=True), y_ref, rtol=rtol, atol=rtol * scale)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize(("toy", "builtin"), [("toy_relu", "relu"), ("toy_sigmoid", "sigmoid")])
@pytest.mark.parametrize("use_batchnorm", [True, False])
def test_drivers_on_the_fused_buffers_give_the_fused_kernels_numbers(registered, dtype, toy, builtin,
                                                                     use_batchnorm):
    """Every kind of saved state (mask, y) by driver in the fused step: the built-in's numbers to the bit."""
    a = _nets(toy, dtype, use_batchnorm=use_batchnorm)[0]
    b = _nets(builtin, dtype, use_batchnorm=use_batchnorm)[0]
    assert a._fused.fwd_code != b._fused.fwd_code or a._fused.bwd_code != b._fused.bwd_code
    rng = np.random.default_rng(6)
    x, t = rng.standard_normal((10, 9)).astype(dtype), rng.integers(0, 4, 10)
    for _ in range(2):
        ga, gb = a.gradient(x, t), b.gradient(x, t)
        for key in gb:
            np.testing.assert_array_equal(ga[key], gb[key], err_msg=key)
    # the layer kept what its backward needs, as the layer path leaves it
    dout = np.ones((10, 8), dtype=dtype)
    np.testing.assert_array_equal(a.layers["Activation_function1"].backward(dout), _layer_backward(builtin, a, x, dout))


def _layer_backward(builtin, net, x, dout):
    """The built-in layer's backward after a forward on the first block's pre-activation."""
    h = net.layers["Affine1"].forward(x)
    if "BatchNorm1" in net.layers:
        h = layers.BatchNormalization(net.params["gamma1"].copy(), net.params["beta1"].copy()).forward(h)
    layer = layers.activation_layer(builtin)()
    layer.forward(h)
    return layer.backward(dout)


def test_learnable_activation_parameters_join_params_and_train(registered):
    np.random.seed(2)
    net = MultiLayerNetExtend(5, [4, 3], 3, activation="toy_scale", use_batchnorm=True)
    np.random.seed(2)
    ref = MultiLayerNetExtend(5, [4, 3], 3, activation="toy_scale", use_batchnorm=True, backend="reference")
    assert net._fused is None  # learnable activation parameters: the layer path
    assert list(net.params) == list(ref.params) and "a1" in net.params and "a2" in net.params
    assert net.layers["Activation_function1"].a is net.params["a1"]
    x, t = np.random.default_rng(3).standard_normal((6, 5)), np.array([0, 2, 1, 2, 0, 1])
    grads = {k: v.copy() for k, v in net.gradient(x, t).items()}
    numeric = net.numerical_gradient(x, t)
    assert set(grads) == set(numeric) == set(net.params)
    for key in grads:
        np.testing.assert_allclose(grads[key], numeric[key], rtol=1e-4, atol=1e-6, err_msg=key)
    g_ref = ref.gradient(x, t)
    assert list(g_ref) == list(grads)
    for key in grads:
        np.testing.assert_allclose(grads[key], g_ref[key], rtol=1e-10, atol=1e-12, err_msg=key)
    before = net.params["a1"].copy()
    Adam(lr=0.1).update(net.params, net.gradient(x, t))
    assert not np.array_equal(net.params["a1"], before)


def test_unregistered_names_are_rejected_everywhere():
    assert "softsign" not in activations.names()
    with pytest.raises(ValueError, match=r"MultiLayerNetExtend: activation must be one of \('relu', 'sigmoid'"):
        MultiLayerNetExtend(4, [3], 2, activation="softsign")
    with pytest.raises(AttributeError):
        F.softsign  # noqa: B018
    with pytest.raises(AttributeError):
        layers.Softsign  # noqa: B018


def test_register_validates_before_changing_anything():
    before = activations.names()
    bad = [
        ({"name": "Bad Name"}, ValueError, "name"),
        ({"saves": "z"}, ValueError, "saves"),
        ({"init": "nope"}, ValueError, "init"),
        ({"name": "relu"}, ValueError, "not registered yet"),
        ({"aliases": ("sigmoid",)}, ValueError, "no other activation"),
        ({"layer": "Relu"}, ValueError, "layer"),
        ({"fused_forward": 7}, ValueError, "fused_forward"),
    ]
    for change, exc, match in bad:
        fields = {**SOFTSIGN.__dict__, **change}
        with pytest.raises(exc, match=match):
            activations.register(activations.Activation(**fields))
        assert activations.names() == before


def test_cli_choices_copies_and_pickles_follow_the_registry(registered, rng):
    import copy
    import pickle

    from fastdl.cli import build_parser

    parser = build_parser()
    assert parser.parse_args(["train", "--activation", "softsign"]).activation == "softsign"
    assert parser.parse_args(["profile", "--activation", "toy_relu"]).activation == "toy_relu"
    np.random.seed(0)
    net = MultiLayerNetExtend(6, [5], 3, activation="softsign", use_batchnorm=True)
    x, t = rng.standard_normal((4, 6)), np.array([0, 1, 2, 0])
    expected = {k: v.copy() for k, v in net.gradient(x, t).items()}
    for twin in (copy.deepcopy(net), pickle.loads(pickle.dumps(net))):
        assert type(twin.layers["Activation_function1"]) is layers.Softsign and twin._fused is not None
        for key, value in twin.gradient(x, t).items():
            np.testing.assert_array_equal(value, expected[key], err_msg=key)


def test_weight_init_auto_takes_the_records_initialisation(registered):
    import fastdl.init as init

    for name, rule in (("relu", init.he), ("sigmoid", init.xavier), ("softsign", init.xavier)):
        np.random.seed(7)
        net = MultiLayerNetExtend(50, [40], 3, activation=name, weight_init_std="auto")
        np.random.seed(7)
        expected = rule(50) * np.random.randn(50, 40)
        np.testing.assert_array_equal(net.params["W1"], expected, err_msg=name)


def test_toy_joins_the_benchmark_matrix(registered):
    from fastdl import benchmark

    assert {"softsign-forward", "softsign-backward"} <= set(benchmark.LAYER_OPS)
    results = {}
    for impl in ("fastdl", "reference", "torch"):
        if impl == "torch":
            pytest.importorskip("torch")
        case = benchmark.make_case("softsign-forward", "100x100", "float64", impl)
        results[impl] = np.asarray(case.fn().detach() if impl == "torch" else case.fn())
        benchmark.make_case("softsign-backward", "100x100", "float64", impl).fn()
    # the same input in every column: the three implementations agree on the values they compute
    for impl, value in results.items():
        np.testing.assert_allclose(value, results["reference"], rtol=1e-12, err_msg=impl)
    assert case.unit == "GB/s" and case.work == 2 * 8 * 100 * 100  # forward: x in, y out
    matrix = benchmark.default_matrix(torch=False)  # (built, not run)
    assert any(op.startswith("softsign-") for op, _ in matrix.entries)
    activations.unregister("softsign")
    try:
        assert "softsign-forward" not in benchmark.LAYER_OPS  # the matrix follows the registry both ways
    finally:
        activations.register(SOFTSIGN)
