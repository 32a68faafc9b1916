"""fastdl.nets: the book's networks on every backend, their gradients, dtypes and validation."""

import numpy as np
import pytest
from conftest import assert_close

import fastdl.reference
from fastdl.nets import MultiLayerNet, MultiLayerNetExtend


def _data(n=12, d=9, classes=4, seed=0, dtype=np.float64):
    rng = np.random.default_rng(seed)
    return rng.standard_normal((n, d)).astype(dtype), rng.integers(0, classes, n)


def _build(cls, backend, seed=7, **kw):
    np.random.seed(seed)
    return cls(9, [8, 6], 4, backend=backend, **kw)


CONFIGS = [
    (MultiLayerNet, {}),
    (MultiLayerNet, {"activation": "sigmoid", "weight_init_std": "xavier", "weight_decay_lambda": 0.1}),
    (MultiLayerNetExtend, {"use_batchnorm": True, "weight_decay_lambda": 0.05}),
    (MultiLayerNetExtend, {"use_batchnorm": True, "use_dropout": True, "dropout_ratio": 0.3}),
]


@pytest.mark.parametrize(("cls", "kw"), CONFIGS)
def test_fastdl_matches_reference_from_the_same_seed(cls, kw):
    x, t = _data()
    nets = {b: _build(cls, b, **kw) for b in ("reference", "fastdl")}
    for key in nets["reference"].params:
        np.testing.assert_array_equal(nets["fastdl"].params[key], nets["reference"].params[key])
    out = {}
    for b, net in nets.items():
        np.random.seed(11)  # dropout masks come from the global generator in both backends
        grads = net.gradient(x, t)
        out[b] = (grads, net.loss(x, t), net.loss(x, t, train_flg=True) if not kw.get("use_dropout") else None,
                  net.accuracy(x, t))
    ref, fast = out["reference"], out["fastdl"]
    assert list(fast[0]) == list(ref[0])
    # b before a batch norm has an exact-zero gradient: its entries are rounding noise, so judge every
    # gradient against the largest gradient entry of the network, not its own size
    scale = max(float(np.max(np.abs(g))) for g in ref[0].values())
    for key in ref[0]:
        np.testing.assert_allclose(fast[0][key], ref[0][key], rtol=1e-10, atol=1e-10 * scale, err_msg=key)
    assert_close(fast[1], ref[1], kind="reduction")
    if ref[2] is not None:
        assert_close(fast[2], ref[2], kind="reduction")
    assert fast[3] == ref[3]


@pytest.mark.parametrize(("cls", "kw"), [
    (MultiLayerNet, {"weight_decay_lambda": 0.1}),
    (MultiLayerNet, {"activation": "sigmoid", "weight_init_std": 0.5}),
    (MultiLayerNetExtend, {"use_batchnorm": True, "weight_decay_lambda": 0.1}),
])
def test_backprop_matches_numerical_gradient(cls, kw):
    x, t = _data(n=6)
    net = _build(cls, None, **kw)
    grads = net.gradient(x, t)
    grads = {k: v.copy() for k, v in grads.items()}
    numeric = net.numerical_gradient(x, t)
    assert set(numeric) == set(grads)
    for key in grads:
        np.testing.assert_allclose(grads[key], numeric[key], rtol=1e-4, atol=1e-5, err_msg=key)


def test_books_layout_and_shared_arrays():
    net = _build(MultiLayerNetExtend, None, use_batchnorm=True, use_dropout=True)
    assert list(net.params) == ["W1", "b1", "W2", "b2", "W3", "b3", "gamma1", "beta1", "gamma2", "beta2"]
    assert list(net.layers) == ["Affine1", "BatchNorm1", "Activation_function1", "Dropout1",
                                "Affine2", "BatchNorm2", "Activation_function2", "Dropout2", "Affine3"]
    assert type(net.last_layer).__name__ == "SoftmaxWithLoss"
    for i in (1, 2, 3):
        assert net.layers[f"Affine{i}"].W is net.params[f"W{i}"]
        assert net.layers[f"Affine{i}"].b is net.params[f"b{i}"]
    # an in-place change of a parameter is seen by the layer
    x, _ = _data()
    before = net.predict(x)
    net.params["b3"] += 1.0
    np.testing.assert_allclose(net.predict(x), before + 1.0, rtol=1e-12)


def test_weights_follow_the_books_draw_order():
    np.random.seed(5)
    net = MultiLayerNet(9, [8, 6], 4, weight_init_std="relu")
    np.random.seed(5)
    for i, (n_in, n_out) in enumerate([(9, 8), (8, 6), (6, 4)], start=1):
        expected = np.sqrt(2.0 / n_in) * np.random.randn(n_in, n_out)
        np.testing.assert_array_equal(net.params[f"W{i}"], expected)
        assert not net.params[f"b{i}"].any()


def test_loss_adds_the_l2_term():
    x, t = _data()
    plain = _build(MultiLayerNet, "reference")
    decayed = _build(MultiLayerNet, "reference", weight_decay_lambda=0.3)
    l2 = sum(0.5 * 0.3 * np.sum(decayed.params[f"W{i}"] ** 2) for i in (1, 2, 3))
    assert decayed.loss(x, t) == pytest.approx(plain.loss(x, t) + l2, rel=1e-12)
    g_plain, g_decayed = plain.gradient(x, t), decayed.gradient(x, t)
    np.testing.assert_allclose(g_decayed["W2"], g_plain["W2"] + 0.3 * decayed.params["W2"], rtol=1e-12)


def test_accuracy_with_labels_and_one_hot():
    x, t = _data()
    net = _build(MultiLayerNet, None)
    one_hot = np.eye(4)[t]
    expected = np.mean(np.argmax(net.predict(x), axis=1) == t)
    assert net.accuracy(x, t) == expected == net.accuracy(x, one_hot)


def test_float32_end_to_end():
    from fastdl.optim import Adam

    x, t = _data(dtype=np.float32)
    net = _build(MultiLayerNetExtend, None, use_batchnorm=True, weight_decay_lambda=0.01, dtype=np.float32)
    assert all(p.dtype == np.float32 for p in net.params.values())
    opt = Adam(lr=0.01)
    losses = []
    for _ in range(5):
        grads = net.gradient(x, t)
        assert all(g.dtype == np.float32 for g in grads.values()), {k: g.dtype for k, g in grads.items()}
        opt.update(net.params, grads)
        losses.append(net.loss(x, t))
    assert np.asarray(losses[-1]).dtype == np.float32
    assert net.predict(x).dtype == np.float32
    assert all(p.dtype == np.float32 for p in net.params.values())
    assert losses[-1] < losses[0]
    # float64 input is cast to the network's dtype
    assert net.predict(x.astype(np.float64)).dtype == np.float32


def test_any_module_with_the_six_classes_is_a_backend():
    net = _build(MultiLayerNet, fastdl.reference)
    assert net.backend is fastdl.reference
    assert type(net.layers["Affine1"]) is fastdl.reference.Affine


@pytest.mark.parametrize(("kw", "exc", "name"), [
    ({"input_size": 0}, ValueError, "input_size"),
    ({"input_size": 2.5}, TypeError, "input_size"),
    ({"hidden_size_list": 100}, TypeError, "hidden_size_list"),
    ({"hidden_size_list": [10, 0]}, ValueError, "hidden_size_list"),
    ({"activation": "softsign"}, ValueError, "activation"),
    ({"weight_init_std": "uniform"}, ValueError, "weight_init_std"),
    ({"weight_decay_lambda": -1}, ValueError, "weight_decay_lambda"),
    ({"dropout_ratio": 1.0}, ValueError, "dropout_ratio"),
    ({"dtype": np.int32}, TypeError, "dtype"),
    ({"backend": "torch"}, ValueError, "backend"),
    ({"backend": object()}, TypeError, "backend"),
])
def test_arguments_are_validated(kw, exc, name):
    args = {"input_size": 9, "hidden_size_list": [8], "output_size": 4, **kw}
    with pytest.raises(exc, match=name):
        MultiLayerNetExtend(**args)


@pytest.mark.parametrize("how", ["deepcopy", "pickle"])
@pytest.mark.parametrize("backend", ["fastdl", "reference"])
def test_a_copied_network_is_independent_and_computes_the_same(how, backend):
    """deepcopy/pickle of a trained net (its backend is a module, its params views of a flat buffer)."""
    import copy
    import pickle

    from fastdl.optim import Adam

    x, t = _data()
    net = _build(MultiLayerNetExtend, backend, use_batchnorm=True)
    opt = Adam(lr=0.01)
    for _ in range(3):
        opt.update(net.params, net.gradient(x, t))
    twin = copy.deepcopy(net) if how == "deepcopy" else pickle.loads(pickle.dumps(net))
    assert twin.backend is net.backend
    for key, value in net.params.items():
        assert np.array_equal(twin.params[key], value) and not np.shares_memory(twin.params[key], value)
    if backend == "fastdl":  # the copy has a fused step of its own
        assert twin._fused is not None and all(np.shares_memory(v, twin._fused.P) for v in twin.params.values())
    np.testing.assert_array_equal(twin.predict(x, train_flg=False), net.predict(x, train_flg=False))
    g_net = {k: v.copy() for k, v in net.gradient(x, t).items()}
    g_twin = twin.gradient(x, t)
    for key, value in g_net.items():
        np.testing.assert_array_equal(g_twin[key], value)
    before = {k: v.copy() for k, v in net.params.items()}
    rm_before = net.layers["BatchNorm1"].running_mean.copy()
    Adam(lr=0.01).update(twin.params, twin.gradient(x, t))
    for key, value in before.items():
        np.testing.assert_array_equal(net.params[key], value)
    np.testing.assert_array_equal(net.layers["BatchNorm1"].running_mean, rm_before)
    assert not np.array_equal(twin.params["W1"], net.params["W1"])


def test_a_network_on_another_module_backend_pickles_by_module_name():
    import importlib
    import pickle

    from fastdl.nets import _backend_ref

    module = importlib.import_module("fastdl.reference._layers")  # has the six classes, under another name
    net = _build(MultiLayerNetExtend, module, use_batchnorm=True)
    assert _backend_ref(module) == ("module", "fastdl.reference._layers")
    assert _backend_ref(fastdl.reference) == "reference"
    twin = pickle.loads(pickle.dumps(net))
    assert twin.backend is module
    x, _ = _data()
    np.testing.assert_array_equal(twin.predict(x, train_flg=False), net.predict(x, train_flg=False))
