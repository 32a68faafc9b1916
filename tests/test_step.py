"""The fused training step of fastdl.nets: same numbers as the layer path and the reference, same state."""

import numpy as np
import pytest
from conftest import DTYPES, rtol_for

import fastdl
from fastdl.nets import MultiLayerNet, MultiLayerNetExtend
from fastdl.optim import Adam
from fastdl.reference import Adam as RefAdam

SIZES = (9, [8, 6], 4)


def _data(n=12, dtype=np.float64, seed=0, classes=4):
    rng = np.random.default_rng(seed)
    return rng.standard_normal((n, SIZES[0])).astype(dtype), rng.integers(0, classes, n)


def _trio(dtype=np.float64, cls=MultiLayerNetExtend, **kw):
    """The same network three times: fused fastdl, layer-by-layer fastdl, reference."""
    nets = []
    for backend in ("fastdl", "fastdl", "reference"):
        np.random.seed(3)
        nets.append(cls(*SIZES, dtype=dtype, backend=backend, **kw))
    assert nets[0]._fused is not None
    nets[1]._fused = None  # the layer path
    return nets


def _close(actual, expected, dtype, scale=1.0):
    rtol = rtol_for(dtype, "reduction")
    np.testing.assert_allclose(actual, expected, rtol=rtol, atol=rtol * scale)


def _check_grads(grads, expected, dtype):
    assert list(grads) == list(expected)
    # b before a batch norm has an exact-zero gradient made of rounding noise: judge against the largest entry
    scale = max(float(np.max(np.abs(g))) for g in expected.values())
    for key in expected:
        assert grads[key].dtype == np.dtype(dtype), key
        _close(grads[key], expected[key], dtype, scale)


def _running(net):
    return [(layer.running_mean, layer.running_var) for name, layer in net.layers.items() if "BatchNorm" in name]


CONFIGS = [
    {"use_batchnorm": True},
    {"use_batchnorm": True, "activation": "sigmoid", "weight_decay_lambda": 0.1},
    {"weight_decay_lambda": 0.05},
]


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("kw", CONFIGS)
def test_fused_matches_layer_path_and_reference(dtype, kw):
    fused, layered, ref = _trio(dtype, **kw)
    x, t = _data(dtype=dtype)
    for _ in range(2):  # the second call reuses every buffer
        g_ref = ref.gradient(x, t)
        g_layer = layered.gradient(x, t)
        grads = fused.gradient(x, t)
        assert all(np.shares_memory(g, fused._fused.G) for g in grads.values())
        _check_grads(grads, g_ref, dtype)
        _check_grads(grads, g_layer, dtype)
        for (m, v), (m_ref, v_ref) in zip(_running(fused), _running(ref)):
            _close(m, m_ref, dtype)
            _close(v, v_ref, dtype)
    # the layers hold this step's gradients and statistics, so loss/predict/profiler code keeps working
    assert fused.layers["Affine1"].dW is grads["W1"]
    _close(fused.loss(x, t), ref.loss(x, t), dtype)
    _close(fused.predict(x), ref.predict(x), dtype, scale=float(np.max(np.abs(ref.predict(x)))))


@pytest.mark.parametrize("dtype", DTYPES)
def test_adam_steps_keep_fused_and_reference_together(dtype):
    fused, layered, ref = _trio(dtype, use_batchnorm=True)
    x, t = _data(n=10, dtype=dtype)
    opts = [Adam(lr=0.01), Adam(lr=0.01), RefAdam(lr=0.01)]
    for _ in range(5):
        for net, opt in zip((fused, layered, ref), opts):
            opt.update(net.params, net.gradient(x, t))
    for key in ref.params:
        assert np.shares_memory(fused.params[key], fused._fused.P)
        # a bias before a batch norm gets rounding noise as its gradient, which Adam turns into +-lr
        # steps of either sign: it has no effect on the training outputs and is not compared
        if key.startswith("b") and key != "b3":
            continue
        scale = float(np.max(np.abs(ref.params[key])))
        _close(fused.params[key], layered.params[key], dtype, scale)
        _close(fused.params[key], ref.params[key], dtype, scale)
    # (the running means include those biases; the variances do not)
    for (_, v), (_, v_ref) in zip(_running(fused), _running(ref)):
        _close(v, v_ref, dtype, scale=float(np.max(np.abs(v_ref))))
    y_ref = ref.predict(x, train_flg=True)
    _close(fused.predict(x, train_flg=True), y_ref, dtype, scale=float(np.max(np.abs(y_ref))))


def test_batch_of_one_and_one_hot_targets():
    fused, _, ref = _trio(use_batchnorm=True)
    x, t = _data(n=1)
    _check_grads(fused.gradient(x, t), ref.gradient(x, t), np.float64)
    x, t = _data(n=7)
    one_hot = np.eye(4)[t]
    _check_grads(fused.gradient(x, one_hot), ref.gradient(x, one_hot), np.float64)


def test_fused_gradient_matches_numerical_gradient():
    np.random.seed(1)
    net = MultiLayerNetExtend(5, [4, 3], 3, use_batchnorm=True, activation="sigmoid", weight_decay_lambda=0.1)
    x, t = np.random.default_rng(2).standard_normal((4, 5)), np.array([0, 2, 1, 2])
    grads = {k: v.copy() for k, v in net.gradient(x, t).items()}
    numeric = net.numerical_gradient(x, t)
    for key in grads:
        np.testing.assert_allclose(grads[key], numeric[key], rtol=1e-4, atol=1e-6, err_msg=key)


def test_returned_arrays_are_reused_and_overwritten():
    net = MultiLayerNet(*SIZES)
    x, t = _data()
    g1 = net.gradient(x, t)
    w1 = g1["W1"].copy()
    g2 = net.gradient(2 * x, t)
    assert all(g1[k] is g2[k] for k in g1) and g1 is not g2
    assert not np.array_equal(g2["W1"], w1)


def _state(net):
    return (net._fused.P.copy(), net._fused.G.copy(),
            [(None if m is None else m.copy(), None if v is None else v.copy()) for m, v in _running(net)])


def _same_state(a, b):
    np.testing.assert_array_equal(a[0], b[0])
    np.testing.assert_array_equal(a[1], b[1])
    for (m1, v1), (m2, v2) in zip(a[2], b[2]):
        np.testing.assert_array_equal(m1, m2)
        np.testing.assert_array_equal(v1, v2)


@pytest.mark.parametrize(("x", "t", "exc", "name"), [
    (np.zeros((12, 9)), np.full(12, 4), ValueError, "t"),          # label out of range
    (np.zeros((12, 9)), np.zeros(11, int), ValueError, "t"),       # one label short
    (np.zeros((12, 9)), np.zeros(12), TypeError, "t"),             # float labels
    (np.zeros((12, 8)), np.zeros(12, int), ValueError, "x"),       # wrong width (layer path's message)
])
def test_rejected_call_changes_nothing(x, t, exc, name):
    net = _trio(use_batchnorm=True)[0]
    xs, ts = _data()
    net.gradient(xs, ts)
    before = _state(net)
    with pytest.raises(exc, match=rf"\b{name} must be"):
        net.gradient(x, t)
    _same_state(_state(net), before)


def test_non_finite_statistics_are_reported_before_the_running_stats_change():
    net, _, ref = _trio(use_batchnorm=True)
    x, t = _data()
    net.gradient(x, t)
    before = _state(net)
    bad = x.copy()
    bad[0, 0] = np.nan
    with fastdl.errstate(nonfinite="raise"), pytest.raises(FloatingPointError, match="BatchNormalization"):
        net.gradient(bad, t)
    for (m1, v1), (m2, v2) in zip(_state(net)[2], before[2]):
        np.testing.assert_array_equal(m1, m2)
        np.testing.assert_array_equal(v1, v2)
    with fastdl.errstate(nonfinite="ignore"):  # ignored: stored as the layer path stores them
        ref.gradient(x, t)
        net.gradient(bad, t)
        ref.gradient(bad, t)
    for (m, _), (m_ref, _) in zip(_running(net), _running(ref)):
        np.testing.assert_array_equal(np.isnan(m), np.isnan(m_ref))


def test_falls_back_to_the_layer_path_when_the_layout_changes():
    fused, _, ref = _trio(use_batchnorm=True)
    x, t = _data()
    fused.params["W2"] = fused.params["W2"].copy()  # breaks the layout; the layers keep the old array
    ref.params["W2"] = ref.params["W2"].copy()
    grads = fused.gradient(x, t)
    assert not np.shares_memory(grads["W1"], fused._fused.G)
    _check_grads(grads, ref.gradient(x, t), np.float64)
    # 4-D input takes the layer path too, with the same numbers
    x4 = x.reshape(12, 1, 3, 3)
    _check_grads(fused.gradient(x4, t), ref.gradient(x4, t), np.float64)


def test_layer_path_calls_in_between_are_picked_up():
    fused, _, ref = _trio(use_batchnorm=True)
    x, t = _data()
    for net in (fused, ref):
        net.gradient(x, t)
        net.loss(2 * x, t, train_flg=True)  # a layer-path forward replaces the running statistics
        net.layers["BatchNorm1"].momentum = 0.5
        net.gradient(x, t)
    for (m, v), (m_ref, v_ref) in zip(_running(fused), _running(ref)):
        _close(m, m_ref, np.float64)
        _close(v, v_ref, np.float64)


def test_other_backends_and_dropout_keep_the_layer_path():
    assert MultiLayerNetExtend(*SIZES, use_dropout=True)._fused is None
    assert MultiLayerNet(*SIZES, backend="reference")._fused is None


def test_phase_times_hook():
    net = MultiLayerNetExtend(*SIZES, use_batchnorm=True)
    x, t = _data()
    net.gradient(x, t)
    net._phase_times = times = {}
    net.gradient(x, t)
    net.gradient(x, t)
    assert set(times) == {"validate", "gemm", "forward", "loss", "backward", "total"}
    assert all(v > 0 for v in times.values())
    assert sum(v for k, v in times.items() if k != "total") <= times["total"]


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("kw", CONFIGS)
def test_fused_gradients_are_the_layer_paths_to_the_bit(dtype, kw):
    """Same kernels, same GEMMs, the sigmoid through the same NumPy exp: identical, not just close."""
    fused, layered, _ = _trio(dtype, **kw)
    x, t = _data(dtype=dtype)
    grads = fused.gradient(x, t)
    expected = layered.gradient(x, t)
    for key, value in expected.items():
        np.testing.assert_array_equal(grads[key], value, err_msg=key)
