"""Issue 10's regularizers: AlphaDropout (Keras' formulas), L1 beside the book's L2, in the layer path and the fused
step, and their save/load config. (MC dropout: tests/test_mc_dropout.py.)"""

import numpy as np
import pytest
from conftest import DTYPES, assert_close, rtol_for
from test_step import SIZES, _data, _trio

from fastdl import layers, reference
from fastdl.functional import numerical_gradient
from fastdl.kernels import dropout as _do
from fastdl.nets import MultiLayerNet, MultiLayerNetExtend, load


# -- AlphaDropout, the layer ----------------------------------------------------------------------------
def test_constants_are_keras_formulas_written_out():
    alpha_p, a, b = layers.alpha_dropout_constants(0.2)
    assert alpha_p == -1.6732632423543772848170429916717 * 1.0507009873554804934193349852946
    assert a == ((1 - 0.2) * (1 + 0.2 * alpha_p**2)) ** -0.5
    assert b == -a * alpha_p * 0.2
    assert layers.alpha_dropout_constants(0.0)[1:] == (1.0, 0.0)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("shape", [(1, 13), (7, 13), (256, 1024)])
def test_alpha_dropout_matches_the_reference(dtype, shape):
    x = np.random.default_rng(0).standard_normal(shape).astype(dtype)
    dout = np.random.default_rng(1).standard_normal(shape).astype(dtype)
    for make_rng in (lambda: np.random.default_rng(5), lambda: None):
        np.random.seed(9)
        fast = layers.AlphaDropout(0.3, rng=make_rng())
        y = fast.forward(x)
        np.random.seed(9)
        ref = reference.AlphaDropout(0.3, rng=make_rng())
        y_ref = ref.forward(x)
        assert y.dtype == np.dtype(dtype) and fast.mask.dtype == np.bool_
        np.testing.assert_array_equal(fast.mask, ref.mask)
        assert_close(y, y_ref, dtype)
        dx = fast.backward(dout)
        assert dx.dtype == np.dtype(dtype)
        assert_close(dx, ref.backward(dout), dtype)
        assert np.all(dx[~fast.mask] == 0)


def test_alpha_dropout_keeps_mean_and_variance():
    x = np.random.default_rng(0).standard_normal((1000, 1000))
    y = layers.AlphaDropout(0.2, rng=np.random.default_rng(1)).forward(x)
    assert abs(y.mean()) < 0.005 and abs(y.var() - 1) < 0.005
    _, a, b = layers.alpha_dropout_constants(0.2)
    kept = y[np.isclose(y, a * x + b, rtol=0, atol=0)]
    assert 0.79 < kept.size / x.size < 0.81


@pytest.mark.parametrize("dtype", DTYPES)
def test_alpha_dropout_inference_and_rate_zero_are_the_identity(dtype):
    x = np.array([[-0.0, 1.5, -2.0, np.inf]], dtype=dtype)
    layer = layers.AlphaDropout(0.4)
    state = np.random.get_state()[1].copy()
    for out in (layer.forward(x, train_flg=False), layers.AlphaDropout(0.0).forward(x)):
        np.testing.assert_array_equal(out, x)
        assert out is not x and np.signbit(out[0, 0])
    np.testing.assert_array_equal(np.random.get_state()[1], state)  # no draws for either


def test_alpha_dropout_backward_matches_numerical_gradient_float64():
    x = np.random.default_rng(0).standard_normal((5, 7))
    w = np.random.default_rng(1).standard_normal((5, 7))

    def f(_):  # the same mask every evaluation: a Generator of one seed
        return float(np.sum(layers.AlphaDropout(0.25, rng=np.random.default_rng(3)).forward(x) * w))

    layer = layers.AlphaDropout(0.25, rng=np.random.default_rng(3))
    layer.forward(x)
    assert_close(layer.backward(w), numerical_gradient(f, x), rtol=1e-7)


def test_alpha_dropout_rejects_bad_arguments_before_drawing():
    with pytest.raises(ValueError, match="AlphaDropout: rate must be a finite number >= 0 and < 1.0; got 1.0"):
        layers.AlphaDropout(1.0)
    with pytest.raises(TypeError, match="AlphaDropout: rng must be None or a numpy.random.Generator"):
        layers.AlphaDropout(0.1, rng=3)
    with pytest.raises(RuntimeError, match="call AlphaDropout.forward"):
        layers.AlphaDropout(0.1).backward(np.ones((2, 2)))
    layer = layers.AlphaDropout(0.1)
    layer.forward(np.ones((2, 3)))
    with pytest.raises(ValueError, match="dout must be of shape"):
        layer.backward(np.ones((3, 2)))
    with pytest.raises(TypeError, match="x must be a float32 or float64"):
        layer.forward(np.ones((2, 3), dtype=np.int64))


@pytest.mark.parametrize("dtype", DTYPES)
def test_alpha_dropout_matches_keras(dtype):
    """Keras' AlphaDropout on its torch backend: infer its mask from its output, then ours with that mask."""
    keras = pytest.importorskip("keras")
    rate = 0.3
    x = np.random.default_rng(0).standard_normal((64, 50)).astype(dtype)
    name = np.dtype(dtype).name  # (Keras' layers cast their input to the layer's dtype, float32 by default)
    y_keras = np.asarray(keras.layers.AlphaDropout(rate, seed=1, dtype=name)(x, training=True))
    assert y_keras.dtype == np.dtype(dtype)
    a, b, c = layers.AlphaDropout(rate)._consts(np.dtype(dtype))
    dropped = y_keras == c  # Keras' dropped units: a * alpha_p + b, the same constant as ours
    assert 0.2 < dropped.mean() < 0.4
    keep = ~dropped
    np.testing.assert_allclose(y_keras[keep], (a * x + b)[keep], rtol=rtol_for(dtype), atol=0)
    # ours, given that mask (draws of 1 where kept, 0 where dropped: kept iff draw >= rate)
    r = keep.astype(dtype)
    out, mask = np.empty_like(x), np.empty(x.shape, dtype=np.bool_)
    _do.alpha_forward(x.reshape(-1), r.reshape(-1), np.dtype(dtype).type(rate), a, b, c, out.reshape(-1),
                      mask.reshape(-1))
    np.testing.assert_array_equal(mask, keep)
    assert_close(out, y_keras, dtype)
    # mean and variance preserved by both on standard normal input
    big = np.random.default_rng(2).standard_normal((500, 400)).astype(dtype)
    for y in (np.asarray(keras.layers.AlphaDropout(rate, seed=2, dtype=name)(big, training=True), dtype=np.float64),
              layers.AlphaDropout(rate, rng=np.random.default_rng(2)).forward(big).astype(np.float64)):
        assert abs(y.mean()) < 0.01 and abs(y.var() - 1) < 0.01
    np.testing.assert_array_equal(np.asarray(keras.layers.AlphaDropout(rate, dtype=name)(x, training=False)),
                                  layers.AlphaDropout(rate).forward(x, train_flg=False))


# -- in the nets: layer path, fused step, reference (test_step's trio: fused, layer path, reference) ---------
CONFIGS = [
    {"use_alpha_dropout": True, "dropout_ratio": 0.3, "activation": "selu", "weight_init_std": "auto"},
    {"use_alpha_dropout": True, "dropout_ratio": 0.2, "use_batchnorm": True},
    {"use_alpha_dropout": True, "dropout_ratio": 0.2, "activation": "sigmoid", "l1_lambda": 0.01},
    {"use_alpha_dropout": True, "dropout_ratio": 0.0},
    {"l1_lambda": 0.02},
    {"l1_lambda": 0.01, "weight_decay_lambda": 0.1, "use_batchnorm": True},
]


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("kw", CONFIGS)
def test_fused_step_is_the_layer_path_to_the_bit_and_the_reference(dtype, kw):
    fused, layered, ref = _trio(dtype, **kw)
    x, t = _data(dtype=dtype)
    for step in range(3):  # the same global draws for the three: the same masks
        grads = []
        for net in (fused, layered, ref):
            np.random.seed(10 + step)
            grads.append(net.gradient(x, t))
        assert all(np.shares_memory(g, fused._fused.G) for g in grads[0].values())
        scale = max(float(np.max(np.abs(g))) for g in grads[2].values())
        for key, value in grads[1].items():
            np.testing.assert_array_equal(grads[0][key], value, err_msg=key)
            tol = rtol_for(dtype, "reduction")  # (b before batch norm: rounding noise, judged at the largest entry)
            np.testing.assert_allclose(value, grads[2][key], rtol=tol, atol=tol * scale, err_msg=key)
        for net in (fused, layered, ref):
            for key in net.params:
                net.params[key] -= 0.1 * (grads[0][key] if net is fused else grads[1][key] if net is layered
                                          else grads[2][key])
    # the layer caches after a fused step serve a layer-path backward (the mask and scale of this step)
    if kw.get("use_alpha_dropout"):
        layer = fused.layers["AlphaDropout1"]
        assert layer.mask is not None and layer.mask.shape == (12, 8)


def test_alpha_dropout_nets_build_the_layers_and_keep_the_book_dropout_unfused():
    net = MultiLayerNetExtend(*SIZES, use_alpha_dropout=True, dropout_ratio=0.1)
    assert [k for k in net.layers if "Dropout" in k] == ["AlphaDropout1", "AlphaDropout2"]
    assert isinstance(net.layers["AlphaDropout1"], layers.AlphaDropout) and net.use_dropout
    assert net.layers["AlphaDropout1"].rate == 0.1 and net._fused is not None
    assert "alpha_dropout=0.1" in repr(net)
    assert MultiLayerNetExtend(*SIZES, use_dropout=True)._fused is None  # the book's Dropout: layer path
    ref = MultiLayerNetExtend(*SIZES, use_alpha_dropout=True, backend="reference")
    assert isinstance(ref.layers["AlphaDropout2"], reference.AlphaDropout)

    class Book:  # a layer module without AlphaDropout
        from fastdl.reference import Affine, BatchNormalization, Dropout, Relu, Sigmoid, SoftmaxWithLoss
    with pytest.raises(TypeError, match="MultiLayerNetExtend: backend must be a module with an AlphaDropout layer"):
        MultiLayerNetExtend(*SIZES, use_alpha_dropout=True, backend=Book)


@pytest.mark.parametrize("cls", [MultiLayerNet, MultiLayerNetExtend])
def test_l1_loss_and_gradient_match_numerical_gradient_away_from_zero(cls):
    np.random.seed(1)
    net = cls(*SIZES, l1_lambda=0.05, weight_decay_lambda=0.01)
    for key, p in net.params.items():  # |W| >= 0.01 > h = 1e-4: no kink inside a difference
        if key[0] == "W":
            p[...] = np.where(p >= 0, 1, -1) * np.maximum(np.abs(p), 0.01)
    x, t = _data()
    plain = cls(*SIZES)
    for key in net.params:
        plain.params[key][...] = net.params[key]
    expected_penalty = sum(0.5 * 0.01 * np.sum(net.params[k] ** 2) for k in net.params if k[0] == "W") + \
        sum(0.05 * np.sum(np.abs(net.params[k])) for k in net.params if k[0] == "W")
    assert_close(net.loss(x, t), plain.loss(x, t) + expected_penalty, np.float64)
    numeric = net.numerical_gradient(x, t)
    grads = net.gradient(x, t)
    for key, value in numeric.items():
        assert_close(grads[key], value, rtol=1e-6, err_msg=key)


def test_l1_subgradient_is_zero_at_zero():
    np.random.seed(0)
    net = MultiLayerNetExtend(*SIZES, l1_lambda=0.5)
    plain = MultiLayerNetExtend(*SIZES)
    net.params["W1"][0, :] = 0.0
    net.params["W1"][1, 0] = -0.0
    for key in net.params:
        plain.params[key][...] = net.params[key]
    x, t = _data()
    g, g0 = net.gradient(x, t), plain.gradient(x, t)
    np.testing.assert_array_equal(g["W1"][0], g0["W1"][0])
    np.testing.assert_array_equal(g["W1"][1, 0], g0["W1"][1, 0])
    np.testing.assert_array_equal(g["W1"][2:], g0["W1"][2:] + 0.5 * np.sign(net.params["W1"][2:]))
    with pytest.raises(ValueError, match="MultiLayerNetExtend: l1_lambda must be a finite number >= 0; got -1"):
        MultiLayerNetExtend(*SIZES, l1_lambda=-1)


@pytest.mark.parametrize("cls", [MultiLayerNet, MultiLayerNetExtend])
def test_save_load_keeps_l1_and_alpha_dropout(tmp_path, cls):
    kw = {"l1_lambda": 0.03} if cls is MultiLayerNet else {
        "l1_lambda": 0.03, "use_alpha_dropout": True, "dropout_ratio": 0.15, "activation": "selu"}
    net = cls(*SIZES, **kw)
    rng_net = MultiLayerNetExtend(*SIZES, use_alpha_dropout=True)
    rng_net.layers["AlphaDropout1"].rng = np.random.default_rng(4)
    back = load(net.save(tmp_path / "n.npz"))
    assert type(back) is cls and back.l1_lambda == 0.03 and repr(back) == repr(net)
    if cls is MultiLayerNetExtend:
        assert back.use_alpha_dropout and list(back.layers) == list(net.layers)
        assert back.layers["AlphaDropout2"].rate == 0.15
    x, t = _data()
    np.testing.assert_array_equal(back.predict(x), net.predict(x))
    assert back.loss(x, t) == net.loss(x, t)
    again = load(rng_net.save(tmp_path / "r.npz"))  # a dropout Generator's state travels too
    assert again.layers["AlphaDropout1"].rng.random() == rng_net.layers["AlphaDropout1"].rng.random()


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("bn", [False, True])
def test_frozen_lower_block_with_alpha_dropout_and_l1(dtype, bn):
    """fastdl.transfer's frozen prefix: alpha dropout stays on in the frozen block (its draws come first in both
    paths), L1 only on the trainable W; the fused step is the layer path to the bit."""
    kw = {"use_alpha_dropout": True, "dropout_ratio": 0.2, "l1_lambda": 0.01, "use_batchnorm": bn}
    fused, layered, ref = _trio(dtype, **kw)
    for net in (fused, layered, ref):
        net.freeze(1)
    layered._fused = None
    assert fused._fused is not None
    x, t = _data(dtype=dtype)
    grads = []
    for net in (fused, layered, ref):
        np.random.seed(4)
        grads.append(net.gradient(x, t))
    assert "W1" not in grads[0] and list(grads[0]) == list(grads[1])
    assert all(np.shares_memory(g, fused._fused.G) for g in grads[0].values())  # (the fused step ran)
    scale = max(float(np.max(np.abs(g))) for g in grads[2].values())
    for key, value in grads[1].items():
        np.testing.assert_array_equal(grads[0][key], value, err_msg=key)
        tol = rtol_for(dtype, "reduction")
        np.testing.assert_allclose(value, grads[2][key], rtol=tol, atol=tol * scale, err_msg=key)


def test_predict_mc_from_two_threads_gives_the_seeded_numbers_and_leaves_the_net_as_it_was():
    import threading

    np.random.seed(0)
    net = MultiLayerNetExtend(20, [32, 32], 5, use_dropout=True, dropout_ratio=0.3)
    x = np.random.default_rng(1).standard_normal((6, 20))
    expected = net.predict_mc(x, 30, rng=7)
    before = [dict(layer.__dict__) for layer, kind in net._forward_steps if kind == 2]
    results, errors = [], []

    def work():
        try:
            for _ in range(15):
                results.append(net.predict_mc(x, 30, rng=7))
        except Exception as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=work) for _ in range(2)]
    for th in threads:
        th.start()
    for th in threads:
        th.join()
    assert not errors and len(results) == 30
    for mean, std in results:
        np.testing.assert_array_equal(mean, expected[0])
        np.testing.assert_array_equal(std, expected[1])
    after = [dict(layer.__dict__) for layer, kind in net._forward_steps if kind == 2]
    for b, a in zip(before, after):
        assert set(b) == set(a) and all(a[k] is b[k] for k in b)
