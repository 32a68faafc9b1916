"""Reusing trained layers (fastdl.transfer): copies, freezing under every optimizer, gradients, unfreezing,
save/load and checkpoints."""

from __future__ import annotations

import numpy as np
import pytest

from fastdl import CheckpointError, datasets, nets, optim
from fastdl.optim import OPTIMIZERS
from fastdl.trainer import Trainer

RNG = np.random.default_rng(0)
X = RNG.standard_normal((24, 12))
T = RNG.integers(0, 4, 24)


def _net(backend="fastdl", bn=True, activation="relu", seed=1, dtype=np.float64, **kw):
    np.random.seed(seed)
    return nets.MultiLayerNetExtend(12, [10, 9, 8], 4, use_batchnorm=bn, activation=activation, backend=backend,
                                    dtype=dtype, **kw)


def _trained(backend="fastdl", bn=True, activation="relu", **kw):
    net = _net(backend, bn, activation, seed=7, **kw)
    opt = optim.Adam(lr=0.01)
    for _ in range(5):
        opt.update(net.params, net.gradient(X, T))
    return net


def _reused(backend="fastdl", bn=True, activation="relu", k=2, **kw):
    net = _net(backend, bn, activation, **kw)
    net.load_layers_from(_trained(backend, bn, activation, **kw), n_layers=k)
    return net


def _stats(net):
    return {(n, a): np.array(getattr(layer, a), copy=True) for n, layer in net.layers.items()
            for a in ("running_mean", "running_var") if getattr(layer, a, None) is not None}


def test_load_layers_from_copies_weights_batchnorm_and_running_statistics():
    trained = _trained()
    new = _net()
    assert new.load_layers_from(trained, n_layers=2) is new
    for key in ("W1", "b1", "gamma1", "beta1", "W2", "b2", "gamma2", "beta2"):
        np.testing.assert_array_equal(new.params[key], trained.params[key])
    assert not np.array_equal(new.params["W3"], trained.params["W3"])
    for name in ("BatchNorm1", "BatchNorm2"):
        for attr in ("running_mean", "running_var"):
            np.testing.assert_array_equal(getattr(new.layers[name], attr), getattr(trained.layers[name], attr))
    assert new.frozen == ("W1", "b1", "W2", "b2", "gamma1", "beta1", "gamma2", "beta2")
    assert list(new.trainable_params) == ["W3", "b3", "W4", "b4", "gamma3", "beta3"]
    np.testing.assert_array_equal(new.predict(X[:3])[:, :0], np.empty((3, 0)))  # (it runs)


def test_shapes_are_checked_and_the_first_mismatch_named_before_anything_is_copied():
    trained = _trained()
    np.random.seed(2)
    other = nets.MultiLayerNetExtend(12, [10, 7, 8], 4, use_batchnorm=True)
    before = {k: v.copy() for k, v in other.params.items()}
    with pytest.raises(ValueError, match=r"trained.params\['W2'\] must be of shape \(10, 7\) like params\['W2'\]; "
                                         r"got shape \(10, 9\)"):
        other.load_layers_from(trained, n_layers=3)
    for k, v in before.items():
        np.testing.assert_array_equal(other.params[k], v)  # W1, gamma1 ... not copied either
    assert other.frozen == ()
    no_bn = _net(bn=False)
    with pytest.raises(ValueError, match="batch norm on one side only"):
        no_bn.load_layers_from(trained, 1)
    with pytest.raises(ValueError, match=r"n_layers must be an int in \[1, 4\]"):
        _net().load_layers_from(trained, 5)
    with pytest.raises(ValueError, match="activation 'tanh'"):
        _net(activation="tanh").load_layers_from(trained, 1)


def test_freeze_arguments_are_checked():
    net = _net()
    with pytest.raises(ValueError, match=r"layers must be keys of params"):
        net.freeze(["W9"])
    with pytest.raises(ValueError, match=r"'gamma1' together with 'beta1'"):
        net.freeze(["W1", "gamma1"])
    with pytest.raises(ValueError, match=r"layers must be an int in \[0, 4\]"):
        net.freeze(5)
    with pytest.raises(TypeError, match="layers must be an int"):
        net.freeze(1.5)
    assert net.frozen == ()
    net.freeze(["W1", "b1"])
    net.freeze(1)
    assert net.frozen == ("W1", "b1", "gamma1", "beta1")
    net.unfreeze(["gamma1", "beta1"])
    assert net.frozen == ("W1", "b1")
    net.unfreeze()
    assert net.frozen == () and net.trainable_params is net.params


CLIPS = [{}, {"clipnorm": 0.05}, {"global_clipnorm": 0.05}, {"clipvalue": 0.01}]


@pytest.mark.parametrize("name", list(OPTIMIZERS))
@pytest.mark.parametrize("backend", ["fastdl", "reference"])  # whole-model flat buffer / per-key arrays
@pytest.mark.parametrize("clip", range(len(CLIPS)))
def test_frozen_parameters_are_bit_identical_after_training(name, backend, clip):
    net = _reused(backend, weight_decay_lambda=0.01 if clip % 2 else 0)
    frozen = {k: net.params[k].copy() for k in net.frozen}
    stats = {key: v for key, v in _stats(net).items() if key[0] in ("BatchNorm1", "BatchNorm2")}
    trainable = {k: v.copy() for k, v in net.trainable_params.items()}
    opt = OPTIMIZERS[name](lr=0.01, **CLIPS[clip])
    for _ in range(4):
        opt.update(net.trainable_params, net.gradient(X, T))
    for k, v in frozen.items():
        np.testing.assert_array_equal(net.params[k], v, err_msg=k)
    for key, v in stats.items():
        np.testing.assert_array_equal(getattr(net.layers[key[0]], key[1]), v, err_msg=str(key))
    assert all(not np.array_equal(net.params[k], v) for k, v in trainable.items() if k[0] != "b" or k == "b4")
    if backend == "fastdl" and clip != 1:  # (clipnorm keeps no plan)
        assert opt._plan.gwhole is not None  # one kernel call over the trainable tail of the flat buffer
    with pytest.raises(ValueError, match=r"grads must be a dict with every key of params; got no 'W1'"):
        opt.update(net.params, net.gradient(X, T))  # the book's call: a frozen key has no gradient
    for k, v in frozen.items():
        np.testing.assert_array_equal(net.params[k], v, err_msg=k)


@pytest.mark.parametrize("backend", ["fastdl", "reference"])
@pytest.mark.parametrize("k", [1, 2, 3])
def test_without_batch_norm_the_gradients_equal_those_of_a_net_that_computes_everything(backend, k):
    frozen_net = _reused(backend, bn=False, k=k)
    full = _net(backend, bn=False, seed=3)
    for key, value in frozen_net.params.items():
        full.params[key][...] = value
    g_full = full.gradient(X, T)
    g = frozen_net.gradient(X, T)
    assert list(g) == [key for key in g_full if key not in frozen_net.frozen]
    for key in g:
        np.testing.assert_array_equal(g[key], g_full[key], err_msg=key)


@pytest.mark.parametrize("activation", ["relu", "tanh"])
def test_with_frozen_batch_norm_fused_layer_path_and_reference_agree_and_match_numerical(activation):
    fused = _reused("fastdl", activation=activation)
    layer = _reused("fastdl", activation=activation)
    layer._fused = None  # the layer-by-layer path
    ref = _net("reference", activation=activation).load_layers_from(_trained(activation=activation), 2)
    assert fused._fused is not None and fused._fused.lo == 2
    g_fused, g_layer, g_ref = (dict((k, v.copy()) for k, v in n.gradient(X, T).items()) for n in (fused, layer, ref))
    for key in g_fused:
        np.testing.assert_array_equal(g_fused[key], g_layer[key], err_msg=key)
        np.testing.assert_allclose(g_ref[key], g_fused[key], rtol=1e-10, atol=1e-15, err_msg=key)  # (reductions)
    if activation == "tanh":  # (smooth: central differences are the truth of a forward with frozen BN in inference)
        num = ref.numerical_gradient(X, T)
        for key in g_ref:
            np.testing.assert_allclose(g_ref[key], num[key], rtol=1e-5, atol=1e-7, err_msg=key)
    # the frozen blocks' gradient buffer is never written (no dW computed below the trainable layers)
    f = fused._fused
    n_frozen = sum(fused.params[k].size for k in fused.frozen)
    assert not f.G[:n_frozen].any() and f.G[n_frozen:].any()


def test_a_frozen_layer_above_a_trainable_one_passes_its_gradient_down():
    net = _trained(backend="reference", activation="tanh")
    net.freeze(["W2", "b2", "gamma2", "beta2"])
    g = net.gradient(X, T)
    assert "W1" in g and "W2" not in g
    num = net.numerical_gradient(X, T)
    for key in g:
        np.testing.assert_allclose(g[key], num[key], rtol=1e-5, atol=1e-7, err_msg=key)
    fast = _net(activation="tanh").load_layers_from(net, 4, freeze=False)  # the same weights and statistics
    fast.freeze(["W2", "b2", "gamma2", "beta2"])
    assert fast._fused is None  # (not a prefix: the layer path)
    g_fast = fast.gradient(X, T)
    for key in g:
        np.testing.assert_allclose(g_fast[key], g[key], rtol=1e-10, atol=1e-15, err_msg=key)  # (reductions)


def test_frozen_batch_norm_runs_in_inference_mode():
    net = _reused()
    stats = _stats(net)
    np.testing.assert_array_equal(net.predict(X, train_flg=True)[:, :0], np.empty((len(X), 0)))
    net.loss(X, T, train_flg=True)
    net.gradient(X, T)
    after = _stats(net)
    for key in stats:
        if key[0] in ("BatchNorm1", "BatchNorm2"):
            np.testing.assert_array_equal(after[key], stats[key])
        else:
            assert not np.array_equal(after[key], stats[key])  # BatchNorm3 trains
    bn = net.layers["BatchNorm1"]
    h = X @ net.params["W1"] + net.params["b1"]
    expected = net.params["gamma1"] * (h - bn.running_mean) / np.sqrt(bn.running_var + 1e-6) + net.params["beta1"]
    np.testing.assert_allclose(bn.forward(h, False), expected, rtol=1e-12)


@pytest.mark.parametrize("backend", ["fastdl", "reference"])
def test_unfreeze_trains_again(backend):
    net = _reused(backend)
    opt = optim.Adam(lr=0.01)
    for _ in range(2):
        opt.update(net.trainable_params, net.gradient(X, T))
    assert set(opt.m) == set(net.trainable_params)
    kept = {k: opt.m[k].copy() for k in opt.m}
    net.unfreeze()
    assert net.frozen == () and list(net.gradient(X, T)) == ["W1", "b1", "gamma1", "beta1", "W2", "b2", "gamma2",
                                                              "beta2", "W3", "b3", "gamma3", "beta3", "W4", "b4"]
    before = {k: v.copy() for k, v in net.params.items()}
    stats = _stats(net)
    g = {k: v.copy() for k, v in net.gradient(X, T).items()}
    opt.update(net.trainable_params, g)
    for k, v in before.items():
        assert not np.array_equal(net.params[k], v), k
    assert not np.array_equal(_stats(net)[("BatchNorm1", "running_mean")], stats[("BatchNorm1", "running_mean")])
    # the keys it never stepped start fresh (m = 0 before, so (1 - beta1) * g after); the others continue
    np.testing.assert_allclose(opt.m["W1"], 0.1 * g["W1"], rtol=1e-12, atol=1e-300)
    np.testing.assert_allclose(opt.m["W3"], 0.9 * kept["W3"] + 0.1 * g["W3"], rtol=1e-10, atol=1e-300)
    assert opt.iter == 3  # the step counter continues


def test_copies_and_save_load_keep_the_frozen_set(tmp_path):
    import copy

    net = _reused()
    loaded = nets.load(net.save(tmp_path / "net.npz"))
    twin = copy.deepcopy(net)
    for other in (loaded, twin):
        assert other.frozen == net.frozen and other._fused is not None and other._fused.lo == 2
        g, go = net.gradient(X, T), other.gradient(X, T)
        assert list(g) == list(go)
        for key in g:
            np.testing.assert_array_equal(go[key], g[key])
    plain = _net()
    assert "frozen" not in __import__("fastdl._netio", fromlist=["config"]).config(plain)


@pytest.mark.parametrize(("frozen", "message"), [
    (["W9"], r"config 'frozen' must be a list of params keys"),
    ("W1", r"config 'frozen' must be a list of params keys"),
    (["gamma1"], r"config 'frozen' does not freeze this network .*'gamma1' together with 'beta1'"),
])
def test_a_bad_frozen_config_names_the_file(tmp_path, frozen, message):
    from fastdl import CheckpointError, _archive

    path = _reused().save(tmp_path / "good.npz")
    docs, arrays = _archive.read(path, ())
    docs["__net__"]["config"]["frozen"] = frozen
    for doc in docs.values():
        doc.pop("arrays")
    bad = _archive.write(tmp_path / "bad.npz", docs, arrays)
    with pytest.raises(CheckpointError, match=message):
        nets.load(bad)


def test_multilayernet_freezes_too():
    np.random.seed(0)
    net = nets.MultiLayerNet(12, [10, 9], 4)
    net.freeze(1)
    before = net.params["W1"].copy()
    opt = optim.SGD(lr=0.5)
    opt.update(net.trainable_params, net.gradient(X, T))
    np.testing.assert_array_equal(net.params["W1"], before)
    assert list(net.gradient(X, T)) == ["W2", "b2", "W3", "b3"] and net._fused.lo == 1


def _transfer_trainer(digits, checkpoint_dir=None):
    (x, t), (xt, tt) = digits
    np.random.seed(0)
    base = nets.MultiLayerNetExtend(64, [30, 20, 20], 10, use_batchnorm=True)
    np.random.seed(1)
    net = nets.MultiLayerNetExtend(64, [30, 20, 20], 10, use_batchnorm=True)
    net.load_layers_from(base, 2)
    return Trainer(net, x, t, xt, tt, epochs=3, mini_batch_size=50, optimizer="adam", optimizer_param={"lr": 0.01},
                   verbose=False, seed=3, checkpoint_dir=checkpoint_dir, weight_constraint=lambda w: None)


def test_trainer_checkpoint_and_resume_with_frozen_layers(tmp_path, monkeypatch):
    digits = datasets.load_digits()
    straight = _transfer_trainer(digits)
    frozen = {k: straight.network.params[k].copy() for k in straight.network.frozen}
    straight.train()
    for k, v in frozen.items():
        np.testing.assert_array_equal(straight.network.params[k], v, err_msg=k)
    assert straight.test_acc_list[-1] > 0.5
    first = _transfer_trainer(digits, tmp_path / "ck")
    original = Trainer.train_step

    def stop_at_40(self):
        if self.current_iter == 40:
            raise KeyboardInterrupt
        return original(self)

    monkeypatch.setattr(Trainer, "train_step", stop_at_40)
    with pytest.raises(KeyboardInterrupt):
        first.train()
    monkeypatch.undo()
    with pytest.raises(CheckpointError, match="weight_constraint must be given: the run used a function"):
        Trainer.resume(tmp_path / "ck", *digits[0], *digits[1], verbose=False)
    resumed = Trainer.resume(tmp_path / "ck", *digits[0], *digits[1], verbose=False, weight_constraint=lambda w: None)
    assert resumed.network.frozen == straight.network.frozen
    resumed.train()
    for key, value in straight.network.params.items():
        np.testing.assert_array_equal(resumed.network.params[key], value, err_msg=key)
