"""ReduceLROnPlateau against Keras 3's callback on the same metric sequences."""

from __future__ import annotations

import pickle
from types import SimpleNamespace

import numpy as np
import pytest

from fastdl.callbacks import ReduceLROnPlateau

LOSSES = [1.0, 0.9, 0.9, 0.89995, 0.91, 0.95, 0.7, 0.7, 0.7, 0.7, 0.7, 0.69, 0.71, 0.72, 0.73, 0.74, 0.75]
ACCS = [0.5, 0.6, 0.6, 0.6, 0.61, 0.6, 0.6, 0.6, 0.6, 0.7, 0.7, 0.7, 0.7]


class _Opt:
    def __init__(self, lr):
        self.lr = lr


def _ours(monitor, values, **kwargs):
    cb = ReduceLROnPlateau(monitor=monitor, **kwargs)
    trainer = SimpleNamespace(optimizer=_Opt(0.1))
    cb.on_train_begin(trainer)
    lrs = []
    for epoch, v in enumerate(values):
        cb.on_epoch_end(epoch, {monitor: v}, trainer)
        lrs.append(trainer.optimizer.lr)
    return lrs


def _keras(keras, monitor, values, **kwargs):
    model = keras.Sequential([keras.Input((1,)), keras.layers.Dense(1)])
    model.compile(optimizer=keras.optimizers.SGD(learning_rate=0.1), loss="mse", metrics=["accuracy"])
    cb = keras.callbacks.ReduceLROnPlateau(monitor=monitor, **kwargs)
    cb.set_model(model)
    cb.on_train_begin()
    lrs = []
    for epoch, v in enumerate(values):
        cb.on_epoch_end(epoch, {monitor: v})
        lrs.append(float(keras.ops.convert_to_numpy(model.optimizer.learning_rate)))
    return lrs


@pytest.mark.parametrize(("monitor", "values", "kwargs"), [
    ("val_loss", LOSSES, {"patience": 2}),
    ("val_loss", LOSSES, {"patience": 1, "cooldown": 2, "factor": 0.5}),
    ("val_loss", LOSSES, {"patience": 1, "min_lr": 0.02, "factor": 0.3}),
    ("val_loss", LOSSES, {"patience": 3, "min_delta": 0.0}),
    ("val_accuracy", ACCS, {"patience": 2, "mode": "max"}),
    ("val_accuracy", ACCS, {"patience": 1, "mode": "max", "cooldown": 1}),
])
def test_matches_keras(monitor, values, kwargs):
    keras = pytest.importorskip("keras")
    expected = _keras(keras, monitor, values, **kwargs)
    got = _ours(monitor, values, **kwargs)
    np.testing.assert_allclose(got, expected, rtol=1e-6)  # Keras stores the rate in float32
    assert min(got) < 0.1, "the sequence must trigger at least one reduction"


def test_auto_mode_and_state_roundtrip():
    assert ReduceLROnPlateau("val_acc").maximize and ReduceLROnPlateau("test_acc").maximize
    assert not ReduceLROnPlateau("val_loss").maximize and not ReduceLROnPlateau("train_loss").maximize
    full = _ours("val_loss", LOSSES, patience=1, cooldown=1)
    cb = ReduceLROnPlateau("val_loss", patience=1, cooldown=1)
    trainer = SimpleNamespace(optimizer=_Opt(0.1))
    got = []
    for epoch, v in enumerate(LOSSES):
        if epoch == 7:  # a resumed run: a fresh callback takes the saved counters
            state = cb.state_dict()
            cb = pickle.loads(pickle.dumps(ReduceLROnPlateau("val_loss", patience=1, cooldown=1)))
            cb.load_state_dict(state)
        cb.on_epoch_end(epoch, {"val_loss": v}, trainer)
        got.append(trainer.optimizer.lr)
    assert got == full


def test_missing_metric_warns_and_bad_arguments_raise():
    cb = ReduceLROnPlateau("val_loss")
    trainer = SimpleNamespace(optimizer=_Opt(0.1))
    with pytest.warns(RuntimeWarning, match="'val_loss' is not available"):
        cb.on_epoch_end(0, {"train_loss": 1.0}, trainer)
    with pytest.raises(ValueError, match="factor must be a finite number > 0 and < 1"):
        ReduceLROnPlateau(factor=1.0)
    with pytest.raises(ValueError, match="mode must be 'auto', 'min' or 'max'"):
        ReduceLROnPlateau(mode="down")
    with pytest.raises(TypeError, match="optimizer.lr must be a number"):
        ReduceLROnPlateau().on_epoch_end(0, {"val_loss": 1.0}, SimpleNamespace(optimizer=_Opt(lambda s: 0.1)))
