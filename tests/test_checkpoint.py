"""Trainer checkpoints: files and pruning, Ctrl-C, resume == never interrupted (in-process and a killed
`fastdl train` subprocess), schedules' state, damaged checkpoints."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

import fastdl
from fastdl import _archive, checkpoint, datasets, nets
from fastdl.cli import main
from fastdl.trainer import Trainer

TIMING = ("elapsed_s", "samples_per_s")


@pytest.fixture(scope="module")
def digits():
    return datasets.load_digits()


def _trainer(digits, dtype=np.float64, checkpoint_dir=None, optimizer="adam", epochs=5, **kw):
    (x, t), (xt, tt) = digits
    np.random.seed(0)
    net = nets.MultiLayerNetExtend(64, [30, 20], 10, use_batchnorm=True, use_dropout=True, dropout_ratio=0.15,
                                   dtype=dtype)
    return Trainer(net, x, t, xt, tt, epochs=epochs, mini_batch_size=50, optimizer=optimizer,
                   optimizer_param={"lr": 0.01}, verbose=False, seed=3, checkpoint_dir=checkpoint_dir, **kw)


def _interrupt_at(monkeypatch, step: int):
    """Send this process a SIGINT from inside train_step number ``step`` (0-based)."""
    original = Trainer.train_step

    def train_step(self):
        if self.current_iter == step:
            os.kill(os.getpid(), signal.SIGINT)
        return original(self)

    monkeypatch.setattr(Trainer, "train_step", train_step)


def _history(h) -> dict:
    d = h.to_dict()
    for key in ("wall_time_s", "train_time_s", "samples_per_s"):
        d.pop(key)
    d["epochs"] = [{k: v for k, v in e.items() if k not in TIMING} for e in d["epochs"]]
    d["config"] = {k: v for k, v in d["config"].items() if k != "total_time_s"}
    return d


def assert_same_run(a: Trainer, b: Trainer) -> None:
    """Bit for bit: the book's lists, the history, the weights, batch-norm statistics, optimizer state."""
    assert len(a.train_loss_list) == len(b.train_loss_list)
    for x, y in zip(a.train_loss_list, b.train_loss_list):
        assert type(x) is type(y) and x.tobytes() == y.tobytes()
    assert a.train_acc_list == b.train_acc_list and a.test_acc_list == b.test_acc_list
    assert _history(a.history) == _history(b.history)
    for key, value in a.network.params.items():
        assert b.network.params[key].dtype == value.dtype
        np.testing.assert_array_equal(b.network.params[key], value, err_msg=key)
    for name, layer in a.network.layers.items():
        if hasattr(layer, "running_mean"):
            np.testing.assert_array_equal(b.network.layers[name].running_mean, layer.running_mean)
            np.testing.assert_array_equal(b.network.layers[name].running_var, layer.running_var)
    sa, sb = a.optimizer.state_dict(), b.optimizer.state_dict()
    assert sa["hyper"] == sb["hyper"] and sa["counters"] == sb["counters"]
    for n, store in sa["state"].items():
        for k, v in store.items():
            np.testing.assert_array_equal(sb["state"][n][k], v)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize(("optimizer", "extra"), [("adam", {}), ("nesterov", {}),
                                                  ("rmsprop", {"patience": 1, "restore_best_weights": True})])
def test_ctrl_c_then_resume_equals_a_run_never_interrupted(digits, tmp_path, monkeypatch, dtype, optimizer, extra):
    straight = _trainer(digits, dtype, optimizer=optimizer, **extra)  # no checkpoints at all
    straight.train()
    before = signal.getsignal(signal.SIGINT)
    first = _trainer(digits, dtype, tmp_path / "ck", optimizer=optimizer, **extra)
    _interrupt_at(monkeypatch, 40)  # mid-epoch (29 steps per epoch)
    with pytest.raises(KeyboardInterrupt, match=r"after step 41 \(epoch 2\); checkpoint .*ckpt-000003.npz: "
                                                r"continue with Trainer.resume"):
        first.train()
    assert signal.getsignal(signal.SIGINT) is before  # the handler is only there while train() runs
    assert first.current_iter == 41 and first.last_checkpoint.name == "ckpt-000003.npz"
    monkeypatch.undo()
    np.random.seed(12345)  # whatever happens to the global generator in between
    resumed = Trainer.resume(tmp_path / "ck", *digits[0], *digits[1], verbose=False)
    assert resumed.current_iter == 41 and resumed.network is not first.network
    resumed.train()
    assert_same_run(straight, resumed)
    assert resumed.history.stop_reason == straight.history.stop_reason


def test_epoch_checkpoints_files_and_pruning(digits, tmp_path):
    trainer = _trainer(digits, checkpoint_dir=tmp_path, epochs=4, checkpoint_every=2, checkpoint_keep=3)
    written = []
    original = checkpoint.write

    def spy(*args, **kw):
        path = original(*args, **kw)
        written.append((path.name, trainer.current_epoch, trainer.current_iter))
        return path

    checkpoint.write, saved = spy, checkpoint.write
    try:
        trainer.train()
    finally:
        checkpoint.write = saved
    # epochs 2 and 4 (after steps 30 and 88), then the end of the run
    assert trainer.max_iter > 88 and trainer.history.stop_reason == "completed"
    assert written == [("ckpt-000001.npz", 2, 30), ("ckpt-000002.npz", 4, 88),
                       ("ckpt-000003.npz", 4, trainer.max_iter)]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ckpt-000001.npz", "ckpt-000002.npz", "ckpt-000003.npz",
                                                          "latest"]
    assert (tmp_path / "latest").read_text() == "ckpt-000003.npz\n"
    trainer.checkpoint_keep = 2
    assert trainer.save_checkpoint().name == "ckpt-000004.npz"
    assert [p.name for p in checkpoint.files(tmp_path)] == ["ckpt-000003.npz", "ckpt-000004.npz"]
    # a checkpoint holds a loadable network: the trained one
    net = nets.load(tmp_path / "ckpt-000004.npz")
    np.testing.assert_array_equal(net.predict(digits[1][0]), trainer.network.predict(digits[1][0]))
    # resuming a finished run trains nothing and reports the same
    done = Trainer.resume(tmp_path, *digits[0], *digits[1], verbose=False)
    history = done.train()
    assert done.current_iter == trainer.current_iter and history.final_test_acc == trainer.history.final_test_acc


def test_checkpoint_arguments_are_checked(digits, tmp_path):
    trainer = _trainer(digits, checkpoint_dir=tmp_path / "a", epochs=1)
    trainer.train()
    with pytest.raises(ValueError, match=r"checkpoint_dir must be a new or empty directory .*Trainer.resume"):
        _trainer(digits, checkpoint_dir=tmp_path / "a")
    (tmp_path / "file").write_text("x")
    with pytest.raises(ValueError, match="checkpoint_dir must be a writable directory; got .*file' "
                                         r"\(an existing file, not a directory\)"):
        _trainer(digits, checkpoint_dir=tmp_path / "file")
    assert (tmp_path / "file").read_text() == "x"
    with pytest.raises(TypeError, match=r"optimizer must be an optimizer with state_dict\(\)"):
        _trainer(digits, checkpoint_dir=tmp_path / "b", backend="reference")
    assert not (tmp_path / "b").exists()  # a rejected call creates nothing
    with pytest.raises(ValueError, match="checkpoint_every must be an integer >= 1"):
        _trainer(digits, checkpoint_dir=tmp_path / "b", checkpoint_every=0)
    with pytest.raises(ValueError, match="Trainer.save_checkpoint: checkpoint_dir must be set"):
        _trainer(digits).save_checkpoint()
    with pytest.raises(fastdl.CheckpointError, match="b must be a checkpoint directory or file; it does not exist"):
        Trainer.resume(tmp_path / "b", *digits[0], *digits[1])
    (tmp_path / "b").mkdir()
    with pytest.raises(fastdl.CheckpointError, match=r"b must hold a checkpoint \(ckpt-NNNNNN.npz and latest\)"):
        Trainer.resume(tmp_path / "b", *digits[0], *digits[1])
    (x, t), (xt, tt) = digits
    with pytest.raises(fastdl.CheckpointError, match=r"x_train must be the data the run was trained on"):
        Trainer.resume(tmp_path / "a", x[:-1], t[:-1], xt, tt)
    other = x.copy()
    other[5, 5] += 1
    with pytest.raises(fastdl.CheckpointError, match=r"x_train must be the data"):
        Trainer.resume(tmp_path / "a", other, t, xt, tt)


class StepSchedule:
    """A toy learning-rate schedule following the checkpoint protocol (state_dict / load_state_dict)."""

    def __init__(self, optimizer):
        self.optimizer, self.calls, self.seen = optimizer, 0, np.zeros(3)

    def __call__(self):
        self.calls += 1
        self.seen[self.calls % 3] += 1
        self.optimizer.lr = 0.01 * 0.97 ** (self.calls // 10)

    def state_dict(self):
        return {"calls": self.calls, "seen": self.seen.copy()}

    def load_state_dict(self, d):
        self.calls, self.seen = d["calls"], d["seen"].copy()


def test_schedules_and_callbacks_ride_along(digits, tmp_path, monkeypatch):
    original = Trainer.train_step

    def scheduled(self):
        self.checkpoint_objects["schedule"]()
        return original(self)

    monkeypatch.setattr(Trainer, "train_step", scheduled)
    straight = _trainer(digits, epochs=3)
    straight.checkpoint_objects["schedule"] = StepSchedule(straight.optimizer)
    straight.train()
    first = _trainer(digits, checkpoint_dir=tmp_path, epochs=3)
    first.checkpoint_objects["schedule"] = StepSchedule(first.optimizer)
    first.checkpoint_extra = {"note": "run 1", "sizes": [1, 2]}
    _interrupt_at(monkeypatch, 50)
    with pytest.raises(KeyboardInterrupt):
        first.train()
    monkeypatch.setattr(Trainer, "train_step", scheduled)
    with pytest.raises(fastdl.CheckpointError, match=r"checkpoint_objects must have the names \['schedule'\]"):
        Trainer.resume(tmp_path, *digits[0], *digits[1], verbose=False)
    schedule = StepSchedule(None)
    resumed = Trainer.resume(tmp_path, *digits[0], *digits[1], verbose=False,
                             checkpoint_objects={"schedule": schedule})
    assert schedule.calls == 51 and resumed.checkpoint_extra == {"note": "run 1", "sizes": [1, 2]}
    schedule.optimizer = resumed.optimizer
    resumed.train()
    assert_same_run(straight, resumed)
    assert schedule.calls == straight.checkpoint_objects["schedule"].calls
    np.testing.assert_array_equal(schedule.seen, straight.checkpoint_objects["schedule"].seen)


def _two_checkpoints(digits, tmp_path):
    trainer = _trainer(digits, checkpoint_dir=tmp_path, epochs=2)
    trainer.train()
    files = checkpoint.files(tmp_path)
    assert [p.name for p in files] == ["ckpt-000002.npz", "ckpt-000003.npz"]
    return files


def _flip(path: Path, member: str) -> None:
    import io
    import zipfile

    data = bytearray(path.read_bytes())
    with zipfile.ZipFile(io.BytesIO(bytes(data))) as zf:
        info = zf.getinfo(member)
    data[info.header_offset + 30 + len(info.filename) + info.compress_size - 3] ^= 0x01
    path.write_bytes(bytes(data))


def _wrong_shape(path: Path) -> None:
    docs, arrays = _archive.read(path, ())
    for name in ("m", "v"):
        arrays[docs["__checkpoint__"]["optimizer"]["state"][name]["W2"]["__array__"]] = np.zeros((20, 11))
    for doc in docs.values():
        doc.pop("arrays")
    _archive.write(path, docs, arrays)


def _bad_rng(path: Path) -> None:
    docs, arrays = _archive.read(path, ())
    docs["__checkpoint__"]["random_state"][0] = "PCG64"
    for doc in docs.values():
        doc.pop("arrays")
    _archive.write(path, docs, arrays)


DAMAGE = [
    ("truncated", lambda p: p.write_bytes(p.read_bytes()[: p.stat().st_size * 2 // 3]), "not a complete .npz"),
    ("flipped data byte", lambda p: _flip(p, "net.param.W1.npy"), r"member 'net.param.W1.npy' is damaged"),
    ("flipped description", lambda p: _flip(p, "__checkpoint__.npy"), r"'__checkpoint__.npy' is damaged"),
    ("wrong optimizer shape", _wrong_shape, r"optimizer state\['m'\]\['W2'\] must have shape \(30, 20\) and "
                                            r"dtype float64 like params\['W2'\]; got shape \(20, 11\)"),
    ("bad random state", _bad_rng, "random_state is not a NumPy MT19937 state"),
    ("deleted", lambda p: p.unlink(), "cannot be read"),
]


@pytest.mark.parametrize(("case", "damage", "message"), DAMAGE, ids=[d[0] for d in DAMAGE])
def test_a_damaged_checkpoint_names_itself_and_the_previous_good_one(digits, tmp_path, case, damage, message):
    previous, newest = _two_checkpoints(digits, tmp_path)
    damage(newest)
    schedule = StepSchedule(None)
    schedule.calls = 7
    state = np.random.get_state()
    with pytest.raises(fastdl.CheckpointError) as err:
        Trainer.resume(tmp_path, *digits[0], *digits[1], verbose=False, checkpoint_objects={"schedule": schedule})
    text = str(err.value)
    assert text.startswith("Trainer.resume: ") and str(newest) in text
    assert f"the previous good checkpoint is {previous}" in text
    assert re.search(message, text), text
    assert schedule.calls == 7 and np.array_equal(np.random.get_state()[1], state[1])  # nothing touched
    resumed = Trainer.resume(previous, *digits[0], *digits[1], verbose=False)  # the named one works
    assert resumed.current_iter == 30
    damage(previous)
    with pytest.raises(fastdl.CheckpointError, match="there is no earlier good checkpoint"):
        Trainer.resume(tmp_path, *digits[0], *digits[1], verbose=False)


def test_a_write_killed_midway_leaves_the_previous_checkpoint(digits, tmp_path, monkeypatch):
    previous, newest = _two_checkpoints(digits, tmp_path)
    trainer = Trainer.resume(tmp_path, *digits[0], *digits[1], verbose=False)

    def dies(fh, **arrays):
        fh.write(b"PK\x03\x04 half a checkpoint")
        raise KeyboardInterrupt

    monkeypatch.setattr(np, "savez", dies)
    with pytest.raises(KeyboardInterrupt):
        trainer.save_checkpoint()
    monkeypatch.undo()
    assert sorted(p.name for p in tmp_path.iterdir()) == [previous.name, newest.name, "latest"]
    assert checkpoint.latest(tmp_path) == newest
    assert Trainer.resume(tmp_path, *digits[0], *digits[1], verbose=False).current_iter == trainer.current_iter
    # what a SIGKILL during a write leaves (a temporary file) is cleared by the next checkpoint
    (tmp_path / "ckpt-000004.npz.x1y2.part").write_bytes(b"PK\x03\x04")
    assert trainer.save_checkpoint().name == "ckpt-000004.npz"
    assert sorted(p.name for p in tmp_path.iterdir()) == [newest.name, "ckpt-000004.npz", "latest"]


# -- a real process, a real signal ------------------------------------------------------------------------
#: runs `fastdl train ARGS` but, once the checkpoint of epoch PAUSE exists, waits at the start of the
#: next step: for SIGINT (the trainer's handler sets its flag) or to be killed
PAUSING_CLI = r"""
import os, signal, sys, time
from fastdl import trainer as T
from fastdl.cli import main

pause_epoch, ready = int(sys.argv[1]), sys.argv[2]
step = T.Trainer.train_step

def train_step(self):
    if (self.current_epoch == pause_epoch and self._last_checkpoint_iter == self.current_iter
            and not os.path.exists(ready)):
        open(ready, "w").close()
        guard = signal.getsignal(signal.SIGINT).__self__  # the trainer's InterruptGuard
        while not guard.requested:
            time.sleep(0.005)
    return step(self)

T.Trainer.train_step = train_step
sys.exit(main(sys.argv[3:]))
"""


def _epoch_lines(text: str) -> list[str]:
    return [line for line in text.splitlines() if line.startswith(("=== epoch:", "test acc:"))]


RUN = ["--dataset", "digits", "--hidden", "30,20", "--batchnorm", "--dropout", "0.2", "--epochs", "5",
       "--optimizer", "adam", "--lr", "0.01", "--batch-size", "60", "--seed", "11"]
_STRAIGHT: dict = {}


def _straight_run(dtype: str, tmp_path_factory, capsys) -> tuple[str, Path, Path]:
    """The run never interrupted (once per dtype, in this process; its checkpoints do not change its numbers):
    ``(stdout, checkpoint dir, out dir)``."""
    if dtype not in _STRAIGHT:
        root = tmp_path_factory.mktemp(f"straight-{dtype}")
        capsys.readouterr()
        assert main(["train", *RUN, "--dtype", dtype, "--checkpoint-dir", str(root / "a"),
                     "--out", str(root / "oa")]) == 0
        _STRAIGHT[dtype] = (capsys.readouterr().out, root / "a", root / "oa")
    return _STRAIGHT[dtype]


@pytest.mark.slow
@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGKILL], ids=["SIGINT", "SIGKILL"])
def test_fastdl_train_killed_and_resumed_prints_the_same_numbers(tmp_path, tmp_path_factory, capsys, dtype, sig):
    run = [*RUN, "--dtype", dtype]
    straight, dir_a, out_a = _straight_run(dtype, tmp_path_factory, capsys)
    assert len(_epoch_lines(straight)) == 6
    # the same run in a subprocess, stopped after the checkpoint of epoch 2
    ready = tmp_path / "ready"
    env = {**os.environ, "PYTHONUNBUFFERED": "1", "PYTHONPATH": os.pathsep.join([str(Path(fastdl.__file__).parents[1]),
                                                       os.environ.get("PYTHONPATH", "")])}
    proc = subprocess.Popen([sys.executable, "-c", PAUSING_CLI, "2", str(ready), "train", *run,
                             "--checkpoint-dir", str(tmp_path / "b"), "--out", str(tmp_path / "ob")],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
    try:
        deadline = time.monotonic() + 600  # (a cold kernel cache on a busy machine; normally ~2 s)
        while not ready.exists():
            assert proc.poll() is None, proc.communicate()
            assert time.monotonic() < deadline, "the subprocess never reached epoch 2"
            time.sleep(0.02)
        proc.send_signal(sig)
        out, err = proc.communicate(timeout=600)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
    if sig == signal.SIGINT:
        assert proc.returncode == 130, err
        assert "interrupted: training interrupted after step 26 (epoch 2); checkpoint" in err
        assert checkpoint.latest(tmp_path / "b").name == "ckpt-000003.npz"  # epochs 1, 2, then the Ctrl-C one
    else:
        assert proc.returncode == -signal.SIGKILL
        assert checkpoint.latest(tmp_path / "b").name == "ckpt-000002.npz"  # epoch 2's
    assert not (tmp_path / "ob" / "train-digits.json").exists()  # nothing written at the end
    # resume with `fastdl train --resume` (in this process: the numbers do not depend on it)
    assert main(["train", "--resume", str(tmp_path / "b")]) == 0
    resumed = capsys.readouterr().out
    assert "resumed from" in resumed
    assert _epoch_lines(out) + _epoch_lines(resumed) == _epoch_lines(straight)
    ha = json.loads((out_a / "train-digits.json").read_text())
    hb = json.loads((tmp_path / "ob" / "train-digits.json").read_text())  # --out came from the checkpoint
    for h in (ha, hb):
        for key in ("wall_time_s", "train_time_s", "samples_per_s"):
            h.pop(key)
        h["config"].pop("total_time_s")
        for e in h["epochs"]:
            for key in TIMING:
                e.pop(key)
    assert ha == hb
    # the final checkpoints: every array bit for bit (weights, running statistics, optimizer, random state)
    _, final_a = _archive.read(checkpoint.latest(dir_a), ())
    _, final_b = _archive.read(checkpoint.latest(tmp_path / "b"), ())
    assert sorted(final_a) == sorted(final_b)
    for name, value in final_a.items():
        assert final_b[name].dtype == value.dtype and final_b[name].tobytes() == value.tobytes(), name
    assert final_a["net.param.W1"].dtype == np.dtype(dtype)


def _usage_error(capsys, argv) -> str:
    """Run the command line; it must refuse with exit code 2 and one line on stderr (issue 14: no traceback)."""
    capsys.readouterr()
    assert main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("fastdl train: error: ") and "\n" not in err
    return err


def test_resume_takes_the_runs_own_arguments(tmp_path, tmp_path_factory, capsys):
    _, dir_a, _ = _straight_run("float64", tmp_path_factory, capsys)
    assert re.search(r"fastdl train --resume: --epochs must be left out or the run's 5; got 9",
                     _usage_error(capsys, ["train", "--resume", str(dir_a), "--epochs", "9"]))
    assert re.search(r"--dtype must be left out or the run's 'float64'; got 'float32'",
                     _usage_error(capsys, ["train", "--resume", str(dir_a), "--dtype", "float32"]))
    assert re.search("must be a checkpoint directory or file; it does not exist",
                     _usage_error(capsys, ["train", "--resume", str(tmp_path / "nothing")]))
    trainer = _trainer(datasets.load_digits(), checkpoint_dir=tmp_path / "api", epochs=1)
    trainer.train()
    assert re.search(r"--resume must be a checkpoint directory of `fastdl train` \(resume other runs with "
                     r"Trainer.resume\)", _usage_error(capsys, ["train", "--resume", str(tmp_path / "api")]))
    assert sorted(p.name for p in dir_a.iterdir()) == ["ckpt-000005.npz", "ckpt-000006.npz", "latest"]  # untouched
