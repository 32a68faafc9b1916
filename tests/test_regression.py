"""Regression: IdentityWithLoss against its reference, MultiLayerNet(Extend)(loss='mse') (fused step, layer path,
reference, numerical gradient, R², save/load), the Trainer's R² and ``fastdl train --dataset diabetes``."""

from __future__ import annotations

import copy
import pickle
import warnings

import numpy as np
import pytest
from conftest import DTYPES, LAYOUTS, SHAPES, assert_close, rtol_for, with_layout

import fastdl
from fastdl import layers as L
from fastdl import reference as R
from fastdl.nets import MultiLayerNet, MultiLayerNetExtend, load, numerical_gradient
from fastdl.trainer import Trainer

SHAPE_IDS = ["x".join(map(str, s)) for s in SHAPES]


def _xt(shape, dtype, seed=0):
    rng = np.random.default_rng(seed)
    return rng.standard_normal(shape).astype(dtype), rng.standard_normal(shape).astype(dtype)


# --------------------------------------------------------------------------------------------
# the layer
# --------------------------------------------------------------------------------------------

@pytest.mark.parametrize("layout", LAYOUTS)
@pytest.mark.parametrize("shape", SHAPES, ids=SHAPE_IDS)
@pytest.mark.parametrize("dtype", DTYPES)
def test_identity_with_loss_matches_the_reference(dtype, shape, layout):
    x, t = _xt(shape, dtype)
    layer, ref = L.IdentityWithLoss(), R.IdentityWithLoss()
    loss = layer.forward(with_layout(x, layout), with_layout(t, layout))
    expected = ref.forward(x, t)
    assert loss.dtype == dtype and np.ndim(loss) == 0
    assert_close(loss, expected, dtype, "reduction")
    for dout in (1, 0.5):
        dx = layer.backward(dout)
        assert dx.dtype == dtype and dx.shape == shape and dx.flags.c_contiguous
        assert_close(dx, ref.backward(dout), dtype)
    np.testing.assert_array_equal(layer.y, x)  # y = x


def test_loss_is_half_the_mean_squared_error_per_sample_and_relates_to_keras_mse():
    x = np.array([[1.0, 2.0, 3.0], [0.0, -1.0, 5.0]])
    t = np.array([[1.0, 0.0, 0.0], [0.0, 1.0, 1.0]])
    loss = L.IdentityWithLoss().forward(x, t)
    assert loss == 0.5 * (4 + 9 + 4 + 16) / 2
    assert np.mean((x - t) ** 2) == pytest.approx(2 * loss / 3)  # Keras' "mse" = 2 * loss / D


@pytest.mark.parametrize("dtype", DTYPES)
def test_one_output_takes_targets_of_shape_n(dtype):
    x, t = _xt((6, 1), dtype)
    a, b = L.IdentityWithLoss(), L.IdentityWithLoss()
    assert a.forward(x, t.ravel()) == b.forward(x, t)
    np.testing.assert_array_equal(a.backward(), b.backward())
    ref = R.IdentityWithLoss()
    assert_close(a.forward(x, t.ravel()), ref.forward(x, t.ravel()), dtype, "reduction")
    assert_close(a.backward(), ref.backward(), dtype)


def test_targets_of_the_other_float_dtype_are_cast_to_xs():
    x, t = _xt((5, 2), np.float32)
    layer = L.IdentityWithLoss()
    assert layer.forward(x, t.astype(np.float64)).dtype == np.float32
    assert layer.backward().dtype == np.float32


def test_gradient_equals_the_numerical_gradient_float64():
    x, t = _xt((4, 3), np.float64, seed=1)
    layer = L.IdentityWithLoss()
    layer.forward(x, t)
    dx = layer.backward()
    num = numerical_gradient(lambda _: L.IdentityWithLoss().forward(x, t), x)
    np.testing.assert_allclose(dx, num, rtol=1e-7, atol=1e-10)


def test_batch_of_one():
    x, t = _xt((1, 4), np.float64)
    layer, ref = L.IdentityWithLoss(), R.IdentityWithLoss()
    assert_close(layer.forward(x, t), ref.forward(x, t), np.float64, "reduction")
    assert_close(layer.backward(), ref.backward(), np.float64)


@pytest.mark.parametrize("x, t, exc, match", [
    (np.zeros((3, 2)), np.zeros((3, 3)), ValueError, r"t must be of shape \(3, 2\)"),
    (np.zeros((3, 2)), np.zeros(3), ValueError, r"t must be of shape \(3, 2\) \(the shape of x\); got shape \(3,\)"),
    (np.zeros((3, 1)), np.zeros(4), ValueError, r"or \(3,\); got shape \(4,\)"),
    (np.zeros((3, 2)), np.zeros((3, 2), dtype=int), TypeError, "t must be a float32 or float64 array"),
    (np.zeros((3, 2), dtype=np.float16), np.zeros((3, 2)), TypeError, "x must be a float32 or float64"),
    (np.zeros(3), np.zeros(3), ValueError, "x must be 2-D"),
    (np.zeros((0, 2)), np.zeros((0, 2)), ValueError, "N >= 1"),
    (np.zeros((3, 2)), None, TypeError, "t must be a float32 or float64 numpy array"),
])
def test_bad_input_is_refused_and_changes_nothing(x, t, exc, match):
    layer = L.IdentityWithLoss()
    good_x, good_t = _xt((2, 2), np.float64)
    layer.forward(good_x, good_t)
    before = (layer.y, layer.t, layer.loss, layer._fwd)
    with pytest.raises(exc, match=f"IdentityWithLoss.forward: {match}" if "x must" in match or "t must" in match
                       else match):
        layer.forward(x, t)
    assert (layer.y, layer.t, layer.loss, layer._fwd) == before


def test_backward_errors():
    with pytest.raises(RuntimeError, match=r"IdentityWithLoss.backward: call IdentityWithLoss.forward first"):
        L.IdentityWithLoss().backward()
    layer = L.IdentityWithLoss()
    layer.forward(*_xt((2, 2), np.float64))
    with pytest.raises(TypeError, match="IdentityWithLoss.backward: dout must be a real scalar"):
        layer.backward(np.ones((2, 2)))
    layer.y = np.zeros((3, 2))
    with pytest.raises(ValueError, match=r"y must be of shape \(2, 2\)"):
        layer.backward()


def test_nonfinite_loss_warns_by_default_and_raises_under_errstate():
    x = np.array([[np.inf, 0.0], [1.0, 2.0]])
    t = np.zeros((2, 2))
    with pytest.warns(fastdl.NonFiniteWarning, match="IdentityWithLoss.forward"):
        L.IdentityWithLoss().forward(x, t)
    layer = L.IdentityWithLoss()
    with fastdl.errstate(nonfinite="raise"), pytest.raises(FloatingPointError, match="loss"):
        layer.forward(x, t)
    assert layer.y is None and layer.loss is None
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        L.IdentityWithLoss().forward(*_xt((3, 2), np.float64))


# --------------------------------------------------------------------------------------------
# the networks
# --------------------------------------------------------------------------------------------

SIZES = (9, [8, 6], 2)
CONFIGS = [{}, {"use_batchnorm": True}, {"activation": "sigmoid", "weight_decay_lambda": 0.1},
           {"activation": "sigmoid", "use_batchnorm": True}, {"cls": MultiLayerNet}]
CONFIG_IDS = ["relu", "batchnorm", "sigmoid-decay", "sigmoid-batchnorm", "MultiLayerNet"]


def _nets(dtype=np.float64, cls=MultiLayerNetExtend, sizes=SIZES, **kw):
    """The same regression network three times: fused fastdl, layer-by-layer fastdl, reference."""
    nets = []
    for backend in ("fastdl", "fastdl", "reference"):
        np.random.seed(3)
        nets.append(cls(*sizes, dtype=dtype, backend=backend, loss="mse", **kw))
    assert nets[0]._fused is not None
    nets[1]._fused = None
    return nets


def _batch(n=12, dtype=np.float64, d=SIZES[2], seed=0):
    rng = np.random.default_rng(seed)
    return rng.standard_normal((n, SIZES[0])).astype(dtype), (rng.standard_normal((n, d)) * 3 + 1).astype(dtype)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("kw", CONFIGS, ids=CONFIG_IDS)
def test_fused_gradients_are_the_layer_paths_to_the_bit_and_close_to_the_reference(dtype, kw):
    fused, layered, ref = _nets(dtype, **kw)
    x, t = _batch(dtype=dtype)
    grads = fused._fused.gradient(fused, x, t)  # the fused step itself ran (not the layer path)
    assert grads is not None
    expected = layered.gradient(x, t)
    reference = ref.gradient(x, t)
    # against the reference with a floor scaled to the largest gradient: a bias before batch norm has a
    # gradient that is zero up to rounding
    tol = rtol_for(dtype, "reduction")
    scale = max(float(np.abs(g).max()) for g in reference.values())
    for key, value in expected.items():
        np.testing.assert_array_equal(grads[key], value, err_msg=key)
        assert grads[key].dtype == dtype
        np.testing.assert_allclose(grads[key], reference[key], rtol=tol, atol=tol * scale, err_msg=key)
    assert fused.last_layer.loss == layered.last_layer.loss
    assert_close(fused.last_layer.loss, ref.last_layer.loss, dtype, "reduction")
    # the loss layer is left as the layer path leaves it: its backward gives the same dx
    np.testing.assert_array_equal(fused.last_layer.backward(), layered.last_layer.backward())


def test_fused_step_takes_targets_of_shape_n_for_one_output():
    a, b, _ = _nets(sizes=(9, [8], 1))
    x, t = _batch(d=1)
    ga = a._fused.gradient(a, x, t.ravel())
    gb = b.gradient(x, t)
    for key in gb:
        np.testing.assert_array_equal(ga[key], gb[key], err_msg=key)


@pytest.mark.parametrize("kw", [{}, {"use_batchnorm": True}, {"weight_decay_lambda": 0.05}],
                         ids=["plain", "batchnorm", "decay"])
def test_gradient_equals_the_numerical_gradient(kw):
    net, _, _ = _nets(**kw)
    x, t = _batch(n=6)
    grads = {k: v.copy() for k, v in net.gradient(x, t).items()}
    num = net.numerical_gradient(x, t)
    for key in num:
        np.testing.assert_allclose(grads[key], num[key], rtol=1e-5, atol=1e-7, err_msg=key)


def test_predict_returns_real_values_and_score_is_r2():
    net, _, _ = _nets()
    x, t = _batch(n=20)
    y = net.predict(x)
    assert y.shape == t.shape and y.dtype == np.float64
    per_output = 1 - ((t - y) ** 2).sum(0) / ((t - t.mean(0)) ** 2).sum(0)
    assert net.score(x, t) == pytest.approx(per_output.mean(), rel=1e-12)
    sk_metrics = pytest.importorskip("sklearn.metrics")
    assert net.score(x, t) == pytest.approx(sk_metrics.r2_score(t, y), rel=1e-12)


def test_score_of_constant_targets_follows_scikit_learn():
    net, _, _ = _nets(sizes=(9, [4], 1))
    x, _ = _batch(n=5, d=1)
    assert net.score(x, np.full((5, 1), 7.0)) == 0.0
    assert net.score(x, net.predict(x)) == 1.0


def test_a_classifier_scores_its_accuracy():
    np.random.seed(0)
    net = MultiLayerNetExtend(9, [8], 3)
    x, _ = _batch()
    labels = np.arange(12) % 3
    assert net.score(x, labels) == net.accuracy(x, labels)


def test_accuracy_of_a_regression_net_raises_naming_score():
    net, _, _ = _nets()
    with pytest.raises(TypeError, match=r"MultiLayerNetExtend.accuracy: .*not meaningful for regression; use "
                                        r"score\(x, t\)"):
        net.accuracy(*_batch())


def test_bad_loss_and_targets_are_refused():
    with pytest.raises(ValueError, match=r"MultiLayerNetExtend: loss must be one of \('cross_entropy', 'mse'\); "
                                         r"got 'mae'"):
        MultiLayerNetExtend(4, [3], 1, loss="mae")
    net, _, _ = _nets(use_batchnorm=True)
    x, t = _batch()
    before = {k: v.copy() for k, v in net.params.items()}
    for method in ("loss", "gradient", "score"):
        with pytest.raises(ValueError, match=rf"MultiLayerNetExtend.{method}: t must be of shape \(12, 2\)"):
            getattr(net, method)(x, t[:, :1])
        with pytest.raises(TypeError, match=rf"MultiLayerNetExtend.{method}: t must be a float32 or float64"):
            getattr(net, method)(x, np.zeros((12, 2), dtype=int))
    assert net.layers["BatchNorm1"].running_mean is None  # nothing ran
    for k, v in before.items():
        np.testing.assert_array_equal(net.params[k], v)


def test_a_backend_without_identity_with_loss_is_named():
    class Book:  # the book's common.layers has no IdentityWithLoss
        Affine, Relu, Sigmoid = R.Affine, R.Relu, R.Sigmoid
        BatchNormalization, Dropout, SoftmaxWithLoss = R.BatchNormalization, R.Dropout, R.SoftmaxWithLoss

    MultiLayerNetExtend(4, [3], 2, backend=Book)  # classification still works
    with pytest.raises(TypeError, match="backend must be a module with a IdentityWithLoss layer"):
        MultiLayerNetExtend(4, [3], 2, backend=Book, loss="mse")


@pytest.mark.parametrize("cls", [MultiLayerNetExtend, MultiLayerNet])
def test_save_load_round_trip_keeps_the_loss(tmp_path, cls):
    kw = {"use_batchnorm": True} if cls is MultiLayerNetExtend else {}
    net, _, _ = _nets(cls=cls, **kw)
    x, t = _batch()
    net.gradient(x, t)
    path = net.save(tmp_path / "net.npz")
    back = load(path)
    assert type(back) is cls and back.loss_name == "mse"
    assert type(back.last_layer) is L.IdentityWithLoss
    np.testing.assert_array_equal(back.predict(x), net.predict(x))
    assert back.loss(x, t) == net.loss(x, t)
    for other in (copy.deepcopy(net), pickle.loads(pickle.dumps(net))):
        assert other.loss_name == "mse" and other._fused is not None
        np.testing.assert_array_equal(other.predict(x), net.predict(x))


def test_a_classifier_saves_the_default_loss(tmp_path):
    np.random.seed(0)
    back = load(MultiLayerNetExtend(4, [3], 2).save(tmp_path / "c.npz"))
    assert back.loss_name == "cross_entropy" and type(back.last_layer) is L.SoftmaxWithLoss


# --------------------------------------------------------------------------------------------
# training on diabetes
# --------------------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def diabetes():
    pytest.importorskip("sklearn")
    return fastdl.load_diabetes()


def test_trainer_fits_diabetes_with_r2_above_a_bound(diabetes):
    (x, t), (xt, tt) = diabetes
    np.random.seed(0)
    net = MultiLayerNetExtend(10, [100, 100], 1, weight_init_std="glorot", loss="mse")
    trainer = Trainer(net, x, t, xt, tt, epochs=20, mini_batch_size=100, optimizer="adam",
                      optimizer_param={"lr": 0.01}, verbose=False, seed=0)
    h = trainer.train()
    assert h.final_test_r2 > 0.3  # (0.49 measured; a constant prediction scores about 0)
    assert h.final_test_acc is None and h.to_dict()["final_test_r2"] == h.final_test_r2
    assert set(h.epochs[0]) >= {"train_r2", "test_r2", "train_loss"} and "test_acc" not in h.epochs[0]
    assert trainer.test_acc_list[-1] == h.epochs[-1]["test_r2"]


def test_trainer_monitor_and_output_for_regression(diabetes, capsys):
    (x, t), (xt, tt) = diabetes
    np.random.seed(0)
    net = MultiLayerNetExtend(10, [20], 1, loss="mse")
    trainer = Trainer(net, x, t, xt, tt, epochs=3, optimizer="adam", optimizer_param={"lr": 0.01},
                      patience=5, validation_data=(x[:50], t[:50]), verbose=True)
    assert trainer.monitor == "test_r2"
    h = trainer.train()
    assert "val_r2" in h.epochs[0] and "val_acc" not in h.epochs[0]
    out = capsys.readouterr()
    assert "=============== Final Test R2 ===============" in out.out
    assert "=== epoch:1, train loss:" in out.out and "train R2:" in out.out and "test acc" not in out.out
    np.random.seed(0)
    classifier = MultiLayerNetExtend(10, [5], 3)
    with pytest.raises(ValueError, match="Trainer: monitor must be an accuracy or loss metric for a classifier"):
        Trainer(classifier, x, t.ravel().astype(int) % 3, xt, tt.ravel().astype(int) % 3, monitor="test_r2")


def test_train_command_on_diabetes(diabetes, tmp_path, capsys):
    from fastdl.cli import main

    code = main(["train", "--dataset", "diabetes", "--epochs", "3", "--hidden", "20", "--quiet", "--out",
                 str(tmp_path)])
    assert code == 0
    out = capsys.readouterr().out
    assert "test RMSE " in out and ", R2 " in out and "test accuracy" not in out
    for name in ("train-diabetes.json", "train-diabetes.png", "train-diabetes-pred.png"):
        assert (tmp_path / name).stat().st_size > 0


def test_checkpoint_resume_of_a_regression_run_continues_bit_for_bit(diabetes, tmp_path):
    (x, t), (xt, tt) = diabetes

    def run(**kw):
        np.random.seed(1)
        net = MultiLayerNetExtend(10, [16], 1, weight_init_std="glorot", loss="mse")
        return Trainer(net, x, t, xt, tt, epochs=4, optimizer="adam", optimizer_param={"lr": 0.01},
                       verbose=False, seed=1, **kw)

    straight = run()
    straight.train()
    first = run(checkpoint_dir=tmp_path / "ck", checkpoint_keep=10)
    first.train()
    files = sorted((tmp_path / "ck").glob("ckpt-*.npz"))
    resumed = Trainer.resume(files[1], x, t, xt, tt, verbose=False)
    assert resumed.network.loss_name == "mse" and resumed.current_epoch == 2
    resumed.train()
    for key, value in straight.network.params.items():
        np.testing.assert_array_equal(resumed.network.params[key], value, err_msg=key)
    assert resumed.history.final_test_r2 == straight.history.final_test_r2
    assert resumed.history.metric("test_r2") == straight.history.metric("test_r2")
