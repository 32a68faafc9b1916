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


# ---------------------------------------------------------------------------------------------
# In the Trainer: validation metrics, ReduceLROnPlateau, checkpoints


@pytest.fixture(scope="module")
def digits_split():
    from fastdl import datasets

    (x, t), (xt, tt) = datasets.load_digits()
    (x_tr, t_tr), (x_val, t_val) = datasets.train_val_split(x, t, validation_ratio=0.2, seed=0)
    return (x_tr, t_tr), (x_val, t_val), (xt, tt)


def _plateau_trainer(data, **kw):
    from fastdl import nets
    from fastdl.trainer import Trainer

    (x, t), val, (xt, tt) = data
    np.random.seed(0)
    net = nets.MultiLayerNetExtend(64, [20], 10, use_batchnorm=True)
    # lr too large on purpose: the validation loss stalls and the callback must step in
    cb = ReduceLROnPlateau(monitor="val_loss", factor=0.5, patience=1, min_delta=0.0)
    trainer = Trainer(net, x, t, xt, tt, epochs=8, mini_batch_size=100, optimizer="sgd",
                      optimizer_param={"lr": 2.0}, verbose=False, seed=1, validation_data=val, callbacks=[cb], **kw)
    return trainer, cb


class _Probe:
    """Checks, at every epoch end, the logs against the network's own metrics on the validation data."""

    def __init__(self, x_val, t_val):
        self.x_val, self.t_val, self.seen = x_val, t_val, []

    def on_epoch_end(self, epoch, logs, trainer):
        assert logs["val_acc"] == trainer.network.accuracy(self.x_val, self.t_val)
        assert logs["val_loss"] == float(trainer.network.loss(self.x_val, self.t_val))
        self.seen.append(epoch)


def test_trainer_records_validation_metrics_and_reduces_the_rate(digits_split):
    (_, _), (x_val, t_val), _ = digits_split
    probe = _Probe(x_val, t_val)
    trainer, cb = _plateau_trainer(digits_split)
    trainer.callbacks.append(probe)
    history = trainer.train()
    epochs = history.epochs
    assert probe.seen == list(range(len(epochs)))
    rates = [e["learning_rate"] for e in epochs]
    assert rates[0] == 2.0 and rates[-1] < 2.0, rates  # reduced at least once ...
    assert all(b in (a, a * 0.5) for a, b in zip(rates, rates[1:]))  # ... by the factor, between epochs
    assert trainer.optimizer.lr == epochs[-1].get("next_learning_rate", rates[-1])
    # a reduction happens exactly when the callback's own rule says so: replay its decisions
    replay = ReduceLROnPlateau(monitor="val_loss", factor=0.5, patience=1, min_delta=0.0)
    holder = SimpleNamespace(optimizer=_Opt(2.0))
    for i, e in enumerate(epochs):
        assert holder.optimizer.lr == e["learning_rate"]
        replay.on_epoch_end(i, {"val_loss": e["val_loss"]}, holder)
    assert history.config["callbacks"][0]["class_name"] == "ReduceLROnPlateau"
    assert history.config["validation_size"] == len(x_val)


def test_trainer_rejects_val_monitor_without_validation_data_and_bad_callbacks(digits_split):
    from fastdl import nets
    from fastdl.trainer import Trainer

    (x, t), _, (xt, tt) = digits_split
    net = nets.MultiLayerNetExtend(64, [10], 10)
    with pytest.raises(ValueError, match="monitor must be a metric the trainer computes"):
        Trainer(net, x, t, xt, tt, monitor="val_loss", patience=2, verbose=False)
    with pytest.raises(TypeError, match=r"callbacks\[0\] must be an object with on_train_begin"):
        Trainer(net, x, t, xt, tt, callbacks=[object()], verbose=False)


def test_resumed_run_continues_the_callbacks_counters(digits_split, tmp_path, monkeypatch):
    import os
    import signal

    from fastdl.trainer import Trainer

    straight, _ = _plateau_trainer(digits_split)
    straight.train()
    first, _ = _plateau_trainer(digits_split, checkpoint_dir=tmp_path / "ck")
    original = Trainer.train_step

    def train_step(self):
        if self.current_iter == 40:
            os.kill(os.getpid(), signal.SIGINT)
        return original(self)

    monkeypatch.setattr(Trainer, "train_step", train_step)
    with pytest.raises(KeyboardInterrupt):
        first.train()
    monkeypatch.undo()
    (x, t), val, (xt, tt) = digits_split
    fresh = ReduceLROnPlateau(monitor="val_loss", factor=0.5, patience=1, min_delta=0.0)
    resumed = Trainer.resume(tmp_path / "ck", x, t, xt, tt, verbose=False, validation_data=val, callbacks=[fresh])
    assert fresh.state_dict() == first.callbacks[0].state_dict()  # the counters at the checkpoint
    resumed.train()
    strip = ("elapsed_s", "samples_per_s")
    assert ([{k: v for k, v in e.items() if k not in strip} for e in resumed.history.epochs]
            == [{k: v for k, v in e.items() if k not in strip} for e in straight.history.epochs])
    for key, value in straight.network.params.items():
        np.testing.assert_array_equal(resumed.network.params[key], value)
    with pytest.raises(fastdl_checkpoint_error(), match=r"checkpoint_objects must have the names \['callbacks\[0\]'\]"):
        Trainer.resume(tmp_path / "ck", x, t, xt, tt, verbose=False, validation_data=val)


def fastdl_checkpoint_error():
    import fastdl

    return fastdl.CheckpointError
