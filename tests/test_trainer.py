"""fastdl.trainer: the book's Trainer on digits, history, early stopping, non-finite stop, the CLI."""

import json
import warnings

import numpy as np
import pytest

from fastdl import datasets
from fastdl.nets import MultiLayerNet, MultiLayerNetExtend
from fastdl.trainer import History, Trainer, make_optimizer


@pytest.fixture(scope="module")
def digits():
    return datasets.load_digits()


def _net(seed=0, **kw):
    np.random.seed(seed)
    return MultiLayerNetExtend(64, [50, 50], 10, **kw)


def test_trains_digits_and_keeps_the_books_lists(digits, tmp_path):
    (x_train, t_train), (x_test, t_test) = digits
    net = _net(use_batchnorm=True)
    trainer = Trainer(net, x_train, t_train, x_test, t_test, epochs=3, optimizer="Adam",
                      optimizer_param={"lr": 0.01}, verbose=False, seed=1)
    history = trainer.train()
    assert history is trainer.history
    assert trainer.max_iter == int(3 * x_train.shape[0] / 100)
    assert len(trainer.train_loss_list) == trainer.max_iter == history.iterations
    assert len(trainer.train_acc_list) == len(trainer.test_acc_list) == 3 == len(history.epochs)
    assert history.final_test_acc > 0.85
    assert history.stop_reason == "completed"
    assert history.samples_per_s > 0 and history.wall_time_s >= history.train_time_s > 0
    assert [e["epoch"] for e in history.epochs] == [1, 2, 3]
    saved = json.loads(history.save_json(tmp_path / "h" / "run.json").read_text())
    assert saved["final_test_acc"] == history.final_test_acc
    assert saved["epochs"][-1]["test_acc"] == trainer.test_acc_list[-1]
    assert len(saved["train_loss"]) == trainer.max_iter


def test_same_seed_same_run(digits):
    (x_train, t_train), (x_test, t_test) = digits
    runs = []
    for _ in range(2):
        trainer = Trainer(_net(use_dropout=True, dropout_ratio=0.2), x_train[:300], t_train[:300], x_test, t_test,
                          epochs=2, optimizer="momentum", verbose=False, seed=5)
        trainer.train()
        runs.append(trainer.train_loss_list)
    np.testing.assert_array_equal(runs[0], runs[1])


def test_matches_a_hand_written_book_loop(digits):
    (x_train, t_train), (x_test, t_test) = digits
    x_train, t_train = x_train[:200], t_train[:200]
    trainer = Trainer(_net(), x_train, t_train, x_test, t_test, epochs=2, optimizer="sgd", verbose=False, seed=3)
    trainer.train()
    net = _net()
    opt = make_optimizer("sgd", {"lr": 0.01})
    np.random.seed(3)
    losses = []
    for _ in range(trainer.max_iter):
        mask = np.random.choice(200, 100)
        opt.update(net.params, net.gradient(x_train[mask], t_train[mask]))
        losses.append(net.loss(x_train[mask], t_train[mask]))
    np.testing.assert_array_equal(trainer.train_loss_list, losses)


def test_epoch_boundaries_when_size_is_not_a_multiple_of_the_batch(digits):
    (x_train, t_train), (x_test, t_test) = digits
    trainer = Trainer(_net(), x_train[:250], t_train[:250], x_test, t_test, epochs=4, verbose=False)
    trainer.train()
    assert trainer.max_iter == 10
    assert [e["iteration"] for e in trainer.history.epochs] == [1, 4, 6, 9]


def test_early_stopping_restores_best_weights_in_place(digits):
    (x_train, t_train), (x_test, t_test) = digits
    net = _net(use_batchnorm=True)
    arrays = {k: v for k, v in net.params.items()}
    trainer = Trainer(net, x_train, t_train, x_test, t_test, epochs=40, optimizer="adam",
                      optimizer_param={"lr": 0.05}, verbose=False, seed=0, patience=2, min_delta=0.5,
                      restore_best_weights=True)
    snapshots = []
    real = trainer._snapshot
    trainer._snapshot = lambda: snapshots.append(real()) or snapshots[-1]
    trainer.train()
    h = trainer.history
    assert h.stop_reason.startswith("early stopping") and "restored" in h.stop_reason
    assert len(h.epochs) < 40 and h.best_epoch is not None
    assert all(net.params[k] is arrays[k] for k in arrays)  # layers keep their references
    best = snapshots[-1]
    for k in arrays:
        np.testing.assert_array_equal(net.params[k], best[("param", k)])
    np.testing.assert_array_equal(net.layers["BatchNorm1"].running_mean, best[("BatchNorm1", "running_mean")])
    assert net.accuracy(x_test, t_test) == pytest.approx(h.final_test_acc)


def test_non_finite_loss_stops_the_run(digits):
    """A run whose parameters blow up ends at once, and the history says why."""
    (x_train, t_train), (x_test, t_test) = digits

    class Exploding:
        def update(self, params, grads):
            params["W1"][...] = np.inf

    trainer = Trainer(_net(), x_train, t_train, x_test, t_test, epochs=5, optimizer=Exploding(), verbose=False)
    with np.errstate(all="ignore"), warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the layers' own NonFiniteWarning
        history = trainer.train()
    assert history.iterations == 1
    assert "non-finite loss" in history.stop_reason and "learning rate" in history.stop_reason
    assert history.to_dict()["stop_reason"] == history.stop_reason


def test_optimizer_names_and_instances():
    assert type(make_optimizer("ADAM", {"lr": 0.1})).__name__ == "Adam"
    assert type(make_optimizer("rmsprpo", {})).__name__ == "RMSprop"  # the book's spelling
    assert type(make_optimizer("Nesterov", {}, backend="reference")).__module__.startswith("fastdl.reference")
    inst = make_optimizer("sgd", {"lr": 0.5})
    assert make_optimizer(inst) is inst and inst.lr == 0.5
    with pytest.raises(ValueError, match="optimizer"):
        make_optimizer("lbfgs", {})
    with pytest.raises(ValueError, match="optimizer_param"):
        make_optimizer(inst, {"lr": 1.0})
    with pytest.raises(TypeError, match="optimizer_param"):
        make_optimizer("sgd", {"learning_rate": 1.0})


@pytest.mark.parametrize(("kw", "exc", "name"), [
    ({"epochs": 0}, ValueError, "epochs"),
    ({"mini_batch_size": 2.5}, TypeError, "mini_batch_size"),
    ({"optimizer_param": 0.1}, TypeError, "optimizer_param"),
    ({"monitor": "loss"}, ValueError, "monitor"),
    ({"patience": 0}, ValueError, "patience"),
    ({"min_delta": -1}, ValueError, "min_delta"),
    ({"t_train": np.zeros(3, dtype=int)}, ValueError, "t_train"),
    ({"network": object()}, TypeError, "network"),
])
def test_arguments_are_validated(digits, kw, exc, name):
    (x_train, t_train), (x_test, t_test) = digits
    args = {"network": MultiLayerNet(64, [10], 10), "x_train": x_train, "t_train": t_train, "x_test": x_test,
            "t_test": t_test, "verbose": False, **kw}
    with pytest.raises(exc, match=name):
        Trainer(**args)


def test_float32_data_is_cast_once_to_the_network_dtype(digits):
    (x_train, t_train), (x_test, t_test) = digits
    net = _net(dtype=np.float32)
    trainer = Trainer(net, x_train, t_train, x_test, t_test, epochs=1, verbose=False)
    assert trainer.x_train.dtype == np.float32
    trainer.train()
    assert all(p.dtype == np.float32 for p in net.params.values())


def test_train_command_writes_history_and_plot(tmp_path, capsys):
    from fastdl.cli import main

    code = main(["train", "--epochs", "2", "--hidden", "30", "--batchnorm", "--dtype", "float32", "--quiet",
                 "--out", str(tmp_path)])
    out = capsys.readouterr().out
    assert code == 0
    assert "test accuracy" in out and "samples/s" in out
    data = json.loads((tmp_path / "train-digits.json").read_text())
    assert data["config"]["dtype"] == "float32" and len(data["epochs"]) == 2
    assert (tmp_path / "train-digits.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


class _Loaded(Exception):
    """Raised by a stand-in for the data loading that starts every training run."""


@pytest.fixture
def no_training(monkeypatch):
    """The train command's data loading replaced: records whether training would have started."""
    import fastdl.train_cli as train_cli

    started = []

    def load(dataset, dtype):
        started.append(dataset)
        raise _Loaded

    monkeypatch.setattr(train_cli, "_load", load)
    return started


def _bad_out_cases(tmp_path):
    a_file = tmp_path / "history.json"
    a_file.write_text("{}")
    # root ignores permission bits: a directory below a regular file can never be created, whoever runs this
    return {"a file": (a_file, "an existing file, not a directory"),
            "below a file": (a_file / "out", "Not a directory")}


@pytest.mark.parametrize("case", ["a file", "below a file"])
def test_train_command_rejects_a_bad_out_before_training(tmp_path, capsys, no_training, case):
    from fastdl.cli import main

    out, reason = _bad_out_cases(tmp_path)[case]
    with pytest.raises(SystemExit) as info:
        main(["train", "--epochs", "1", "--quiet", "--out", str(out)])
    assert info.value.code == 2
    assert no_training == []  # nothing was loaded or trained
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0
    assert err == f"fastdl train: error: --out must be a writable directory; got {str(out)!r} ({reason})"


def test_train_command_creates_out_before_training(tmp_path, no_training):
    from fastdl.cli import main

    out = tmp_path / "new" / "run1"
    with pytest.raises(_Loaded):
        main(["train", "--epochs", "1", "--quiet", "--out", str(out)])
    assert no_training == ["digits"] and out.is_dir() and list(out.iterdir()) == []


def test_history_repr_and_metric():
    h = History({"a": 1})
    h.epochs.append({"epoch": 1, "test_acc": 0.5})
    assert h.metric("test_acc") == [0.5]
    assert "History(" in repr(h)


def test_raise_policy_also_stops_cleanly(digits):
    import fastdl

    (x_train, t_train), (x_test, t_test) = digits

    class Exploding:
        def update(self, params, grads):
            params["W1"][...] = np.nan

    trainer = Trainer(_net(), x_train, t_train, x_test, t_test, epochs=5, optimizer=Exploding(), verbose=False)
    with np.errstate(all="ignore"), fastdl.errstate(nonfinite="raise"):
        history = trainer.train()
    assert history.iterations == 1 and "non-finite" in history.stop_reason
