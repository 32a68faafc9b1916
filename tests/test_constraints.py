"""MaxNorm against Keras 3 and its written formula; layouts, dtypes, errors; in the Trainer."""

from __future__ import annotations

import numpy as np
import pytest

from fastdl.constraints import MaxNorm


def _formula(w, max_value, axis):
    norms = np.sqrt(np.sum(w * w, axis=axis, keepdims=True))
    return w * (np.clip(norms, 0, max_value) / (1e-7 + norms))


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("axis", [0, 1])
@pytest.mark.parametrize("layout", ["C", "F", "strided"])
@pytest.mark.parametrize("shape", [(1, 1), (7, 13), (100, 30)])
def test_matches_the_formula(dtype, axis, layout, shape):
    rng = np.random.default_rng(0)
    w0 = (rng.standard_normal(shape) * 1.5).astype(dtype)
    if layout == "F":
        w = np.array(w0, order="F", copy=True)
    elif layout == "strided":
        big = np.zeros((shape[0], shape[1] * 2), dtype=dtype)
        big[:, ::2] = w0
        w = big[:, ::2]
    else:
        w = w0.copy()
    out = MaxNorm(1.0, axis=axis)(w)
    assert out is w and w.dtype == dtype
    rtol = 1e-12 if dtype == np.float64 else 1e-5
    np.testing.assert_allclose(w, _formula(w0.astype(np.float64), 1.0, axis), rtol=rtol, atol=rtol)
    norms = np.sqrt(np.sum(w.astype(np.float64) ** 2, axis=axis))
    assert norms.max() <= 1.0 + 1e-6  # the bound holds
    big_cols = np.sqrt(np.sum(w0.astype(np.float64) ** 2, axis=axis)) > 1.0
    if big_cols.any():
        np.testing.assert_allclose(norms[big_cols], 1.0, rtol=1e-5)


@pytest.mark.parametrize("axis", [0, 1])
def test_matches_keras(axis):
    keras = pytest.importorskip("keras")
    rng = np.random.default_rng(1)
    w = rng.standard_normal((20, 8)) * np.array([0.1, 0.5, 1, 2, 3, 5, 8, 13])
    expected = keras.ops.convert_to_numpy(keras.constraints.MaxNorm(max_value=2.0, axis=axis)(w.copy()))
    ours = MaxNorm(2.0, axis=axis)(w.copy())
    np.testing.assert_allclose(ours, expected, rtol=1e-12)


def test_bad_input_is_named_and_changes_nothing():
    with pytest.raises(ValueError, match="max_value must be a finite number > 0"):
        MaxNorm(0)
    with pytest.raises(ValueError, match="axis must be 0 or 1"):
        MaxNorm(1.0, axis=2)
    w = np.ones((3, 3))
    w.flags.writeable = False
    with pytest.raises(ValueError, match="w must be a writeable array"):
        MaxNorm()(w)
    with pytest.raises(ValueError, match="w must be 2-D"):
        MaxNorm()(np.ones(3))
    with pytest.raises(TypeError, match="w must be a float32 or float64 array"):
        MaxNorm()(np.ones((3, 3), dtype=np.int64))


def test_trainer_applies_the_constraint_to_every_weight_matrix_after_each_update():
    from fastdl import datasets, nets
    from fastdl.trainer import Trainer

    (x, t), (xt, tt) = datasets.load_digits()
    seen = []

    class Recording(MaxNorm):
        def __call__(self, w):
            seen.append(id(w))
            return super().__call__(w)

    np.random.seed(0)
    net = nets.MultiLayerNetExtend(64, [50, 50], 10, use_batchnorm=True)
    trainer = Trainer(net, x, t, xt, tt, epochs=2, mini_batch_size=100, optimizer="sgd",
                      optimizer_param={"lr": 0.5}, verbose=False, seed=0, weight_constraint=Recording(0.5))
    trainer.train()
    ids = {id(net.params[k]) for k in ("W1", "W2", "W3")}
    assert set(seen) == ids and len(seen) == 3 * trainer.current_iter  # every W, every step, nothing else
    for k in ("W1", "W2", "W3"):
        assert np.sqrt((net.params[k] ** 2).sum(axis=0)).max() <= 0.5 + 1e-9
    assert trainer.history.config["weight_constraint"] == {"class_name": "Recording",
                                                           "config": {"max_value": 0.5, "axis": 0}}
    with pytest.raises(TypeError, match="weight_constraint must be a callable"):
        Trainer(net, x, t, xt, tt, weight_constraint=2.0, verbose=False)
