"""MC dropout, ``net.predict_mc``: stacked passes against a literal loop of single passes with the same masks,
batch norm untouched, reproducibility, the dtype contract and argument checks."""

import numpy as np
import pytest
from conftest import DTYPES, assert_close

from fastdl import _mcdropout
from fastdl.functional import softmax
from fastdl.nets import MultiLayerNet, MultiLayerNetExtend

SIZES = (6, [20, 16], 3)


def _net(dtype=np.float64, backend="fastdl", **kw):
    np.random.seed(0)
    kw = {"use_dropout": True, "dropout_ratio": 0.3, "use_batchnorm": True, **kw}
    net = MultiLayerNetExtend(*SIZES, dtype=dtype, backend=backend, **kw)
    x = np.random.default_rng(1).standard_normal((40, SIZES[0])).astype(dtype)
    for _ in range(3):  # batch norm gets running statistics of its own
        net.predict(x, train_flg=True)
    return net, x[:7]


def _loop(net, x, n_samples, seed):
    """The literal loop: n_samples single passes, dropout layer i drawing from child i of SeedSequence(seed)."""
    drops = [layer for layer, kind in net._forward_steps if kind == 2]
    for layer, g in zip(drops, _mcdropout.generators(seed, len(drops))):
        layer.rng = g
    passes = []
    for _ in range(n_samples):
        y = net._forward(x, bn_train=False, dropout_train=True)
        passes.append(y if net.loss_name == "mse" else softmax(y))
    for layer in drops:
        layer.rng = None
    stack = np.stack(passes)
    return stack.mean(axis=0), stack.std(axis=0)


def _bn_state(net):
    return [(layer.running_mean.copy(), layer.running_var.copy()) for name, layer in net.layers.items()
            if "BatchNorm" in name]


NETS = [{}, {"use_alpha_dropout": True, "activation": "selu", "use_batchnorm": False}, {"loss": "mse"}]


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("backend", ["fastdl", "reference"])
@pytest.mark.parametrize("kw", NETS)
def test_one_sample_per_chunk_is_the_literal_loop_to_the_bit(monkeypatch, dtype, backend, kw):
    net, x = _net(dtype, backend, **kw)
    expected = _loop(net, x, 9, seed=5)
    monkeypatch.setattr(_mcdropout, "CHUNK_BYTES", 1)  # one sample per stacked pass: the loop's GEMM shapes
    mean, std = net.predict_mc(x, n_samples=9, rng=5)
    np.testing.assert_array_equal(mean, expected[0])
    np.testing.assert_array_equal(std, expected[1])


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("kw", NETS)
def test_stacked_passes_are_the_loop_with_the_same_masks(monkeypatch, dtype, kw):
    """All samples in one pass (or in chunks of 4): the same masks; the numbers to rounding, since OpenBLAS'
    GEMM rounds a row differently with another number of rows (a different mask would differ by O(1))."""
    net, x = _net(dtype, **kw)
    expected = _loop(net, x, 10, seed=11)
    for budget in (_mcdropout.CHUNK_BYTES, 4 * 7 * 20 * np.dtype(dtype).itemsize):
        monkeypatch.setattr(_mcdropout, "CHUNK_BYTES", budget)
        mean, std = net.predict_mc(x, n_samples=10, rng=11)
        assert mean.dtype == std.dtype == np.dtype(dtype) and mean.shape == (7, 3)
        assert_close(mean, expected[0], dtype)
        assert_close(std, expected[1], dtype)
    if net.loss_name != "mse":
        assert_close(mean.sum(axis=1), np.ones(7), dtype)
    assert np.all(std > 0)  # the masks differ between samples


@pytest.mark.parametrize("backend", ["fastdl", "reference"])
def test_batch_norm_statistics_and_the_layers_are_untouched(backend):
    net, x = _net(backend=backend)
    stats = _bn_state(net)
    drop = net.layers["Dropout1"]
    drop.rng = rng = np.random.default_rng(3)
    mask_before = drop.mask
    net.predict_mc(x, n_samples=50, rng=0)
    for (m, v), (m2, v2) in zip(stats, _bn_state(net)):
        np.testing.assert_array_equal(m2, m)  # bit for bit
        np.testing.assert_array_equal(v2, v)
    assert drop.rng is rng and drop.mask is mask_before and rng.random() == np.random.default_rng(3).random()


def test_reproducible_with_a_seed_a_generator_or_numpy_global_state():
    net, x = _net()
    a = net.predict_mc(x, 20, rng=7)
    b = net.predict_mc(x, 20, rng=7)
    np.testing.assert_array_equal(a[0], b[0])
    assert not np.array_equal(a[0], net.predict_mc(x, 20, rng=8)[0])
    g1, g2 = np.random.default_rng(4), np.random.default_rng(4)
    np.testing.assert_array_equal(net.predict_mc(x, 20, rng=g1)[1], net.predict_mc(x, 20, rng=g2)[1])
    assert not np.array_equal(net.predict_mc(x, 20, rng=g1)[1], net.predict_mc(x, 20, rng=np.random.default_rng(4))[1])
    np.random.seed(2)
    c = net.predict_mc(x, 20)
    np.random.seed(2)
    np.testing.assert_array_equal(net.predict_mc(x, 20)[0], c[0])


def test_float32_contract():
    """float32 nets give float32 mean/std; the reductions of the float32 stack agree with float64's within 1e-6."""
    net, x = _net(np.float32)
    mean, std = net.predict_mc(x, 30, rng=1)
    assert mean.dtype == std.dtype == np.float32
    m64, s64 = _loop(net, x, 30, seed=1)  # float32 passes, reduced in float32 ...
    drops = [layer for layer, kind in net._forward_steps if kind == 2]
    for layer, g in zip(drops, _mcdropout.generators(1, len(drops))):
        layer.rng = g
    stack = np.stack([softmax(net._forward(x, False, True)) for _ in range(30)]).astype(np.float64)
    assert_close(mean, stack.mean(axis=0), np.float32, rtol=1e-6)  # ... against the float64 reductions
    assert_close(std, stack.std(axis=0), np.float32, rtol=1e-5)
    assert_close(mean, m64, np.float32)


def test_one_sample_and_predict_are_related():
    """n_samples=1: std 0; ratio 0: every pass equals the deterministic pass (the book scales by 1 - 0)."""
    net, x = _net()
    mean, std = net.predict_mc(x, 1, rng=0)
    assert np.all(std == 0)
    net0, x0 = _net(dropout_ratio=0.0)
    mean0, std0 = net0.predict_mc(x0, 5, rng=0)
    assert_close(mean0, softmax(net0.predict(x0)), np.float64)
    assert np.all(std0 <= 1e-15)


@pytest.mark.parametrize("kwargs, exc, message", [
    ({"n_samples": 0}, ValueError, "n_samples must be an integer >= 1; got 0"),
    ({"n_samples": 2.0}, TypeError, "n_samples must be an integer >= 1; got float 2.0"),
    ({"n_samples": True}, TypeError, "n_samples must be an integer >= 1"),
    ({"rng": -1}, ValueError, "rng must be None, an integer seed >= 0 or a numpy.random.Generator; got int -1"),
    ({"rng": "a"}, TypeError, "rng must be None, an integer seed >= 0 or a numpy.random.Generator"),
    ({"x": np.ones((3, 5))}, ValueError, r"x must be a batch of shape \(N, 6\)"),
    ({"x": np.ones((0, 6))}, ValueError, r"x must be a batch of shape \(N, 6\) with N >= 1"),
    ({"x": np.ones((2, 6), dtype=complex)}, TypeError, "x must be a real array"),
])
def test_bad_arguments_are_refused_before_anything_runs(kwargs, exc, message):
    net, x = _net()
    args = {"x": x, "n_samples": 5, "rng": None, **kwargs}
    state = np.random.get_state()[1].copy()
    stats = _bn_state(net)
    with pytest.raises(exc, match=f"MultiLayerNetExtend.predict_mc: {message}"):
        net.predict_mc(**args)
    np.testing.assert_array_equal(np.random.get_state()[1], state)
    for (m, v), (m2, v2) in zip(stats, _bn_state(net)):
        np.testing.assert_array_equal(m2, m)
        np.testing.assert_array_equal(v2, v)


def test_nets_without_dropout_say_so():
    x = np.ones((2, 6))
    with pytest.raises(TypeError, match=r"MultiLayerNet.predict_mc: the network must be a network with dropout "
                                        r"layers \(MultiLayerNetExtend with use_dropout=True"):
        MultiLayerNet(*SIZES).predict_mc(x)
    with pytest.raises(TypeError, match="MultiLayerNetExtend.predict_mc: the network must be a network with dropout"):
        MultiLayerNetExtend(*SIZES, use_batchnorm=True).predict_mc(x)
