"""``fastdl train`` with an optimizer of Hands-On ML ch. 11, a schedule and gradient clipping."""

from __future__ import annotations

import json

import numpy as np
import pytest

from fastdl.cli import main
from fastdl.schedules import CosineDecayRestarts


def test_nadam_cosine_restarts_clipnorm(tmp_path, capsys):
    code = main(["train", "--optimizer", "nadam", "--schedule", "cosine-restarts", "--first-decay-steps", "20",
                 "--clipnorm", "1.0", "--lr", "0.01", "--epochs", "2", "--hidden", "20", "--quiet",
                 "--out", str(tmp_path)])
    assert code == 0 and "test accuracy" in capsys.readouterr().out
    data = json.loads((tmp_path / "train-digits.json").read_text())
    param = data["config"]["optimizer_param"]
    assert param["clipnorm"] == 1.0 and data["config"]["optimizer"] == "Nadam"
    assert param["lr"] == {"class_name": "CosineDecayRestarts", "config": CosineDecayRestarts(0.01, 20).get_config()}
    schedule = CosineDecayRestarts(0.01, 20)
    rates = [e["learning_rate"] for e in data["epochs"]]
    assert rates == [schedule(e["iteration"] - 1) for e in data["epochs"]] and rates[0] != rates[1]


@pytest.mark.parametrize(("args", "message"), [
    (["--schedule", "cosine-restarts"], "--schedule cosine-restarts needs --first-decay-steps"),
    (["--clipnorm", "1", "--clipvalue", "2"], "not allowed with argument"),
    (["--global-clipnorm", "-1"], "--global-clipnorm: must be a number > 0"),
    (["--schedule", "piecewise", "--boundaries", "10", "--values", "0.1"], "--schedule piecewise"),
])
def test_bad_arguments_are_usage_errors(args, message, tmp_path, capsys):
    try:  # (argparse exits; a usage error found while setting up returns 2)
        code = main(["train", "--epochs", "1", "--quiet", "--out", str(tmp_path), *args])
    except SystemExit as exc:
        code = exc.code
    assert code == 2 and message in capsys.readouterr().err
    assert not (tmp_path / "train-digits.json").exists()


def test_exponential_decay_steps_default_to_the_run(tmp_path):
    code = main(["train", "--schedule", "exponential", "--decay-rate", "0.5", "--epochs", "2", "--hidden", "10",
                 "--quiet", "--out", str(tmp_path)])
    data = json.loads((tmp_path / "train-digits.json").read_text())
    config = data["config"]["optimizer_param"]["lr"]["config"]
    n_train = data["config"]["train_size"]
    assert code == 0 and config["decay_steps"] == int(2 * max(n_train / 100, 1)) and config["decay_rate"] == 0.5
    assert np.isfinite(data["epochs"][-1]["train_loss"])
