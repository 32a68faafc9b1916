"""The ``fastdl`` command as a newcomer meets it: one-line user errors, help, the closing speed line, the record."""

from __future__ import annotations

import argparse
import json
import re

import numpy as np
import pytest

from fastdl import _cliargs, _train_report, datasets
from fastdl.cli import build_parser, main

SMALL = ["--hidden", "20", "--epochs", "2", "--batch-size", "50"]


def _run(argv: list[str], capsys) -> tuple[int, str, str]:
    capsys.readouterr()
    try:
        code = main(argv)
    except SystemExit as exc:  # argparse's own errors
        code = exc.code
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def _assert_one_line_error(code: int, err: str, command: str, *words: str) -> None:
    assert code == 2
    assert "Traceback" not in err
    last = err.strip().splitlines()[-1]
    assert last.startswith(f"fastdl {command}: error: "), err
    for word in words:
        assert word in last, (word, last)
    # argparse prints its usage first; our own errors are the one line alone
    assert all(line.startswith(("usage:", " ")) for line in err.strip().splitlines()[:-1]), err


@pytest.fixture
def no_mnist(monkeypatch, tmp_path):
    """load_mnist as on an offline machine with an empty data directory."""
    def offline(*args, **kwargs):
        raise datasets.DatasetUnavailableError(
            "load_mnist: could not download train-images-idx3-ubyte.gz (offline?); download the four MNIST files "
            "by hand into /somewhere.\n  Tried:\n  https://example.invalid/: no network")
    monkeypatch.setattr(datasets, "load_mnist", offline)


@pytest.mark.parametrize(("argv", "words"), [
    (["--optimizer", "adma"], ["--optimizer", "adma"]),
    (["--epochs", "0"], ["--epochs", ">= 1"]),
    (["--lr", "-1"], ["--lr", "> 0"]),
    (["--lr", "nan"], ["--lr"]),
    (["--dropout", "1.5"], ["--dropout", "< 1"]),
    (["--batch-size", "0"], ["--batch-size", ">= 1"]),
    (["--init", "foo"], ["--init", "foo", "xavier"]),
    (["--init", "-0.1"], ["--init"]),
    (["--hidden", "100,,100"], ["--hidden", "100,,100"]),
    (["--hidden", "100,0"], ["--hidden"]),
    (["--activation", "rellu"], ["--activation"]),
    (["--seed", "-1"], ["--seed", ">= 0"]),
    (["--weight-decay", "-1"], ["--weight-decay"]),
    (["--patience", "0"], ["--patience"]),
])
def test_train_user_errors_are_one_line_and_exit_2(argv, words, capsys, tmp_path):
    code, out, err = _run(["train", *argv, "--out", str(tmp_path)], capsys)
    _assert_one_line_error(code, err, "train", *words)
    assert list(tmp_path.iterdir()) == []  # nothing ran


def test_train_mnist_offline_says_what_to_do(no_mnist, capsys, tmp_path):
    code, out, err = _run(["train", "--dataset", "mnist", "--out", str(tmp_path)], capsys)
    _assert_one_line_error(code, err, "train", "--dataset mnist", "download", "--dataset digits")
    assert err.strip().count("\n") == 0


def test_experiment_mnist_offline_says_what_to_do(no_mnist, capsys, tmp_path):
    code, out, err = _run(["experiment", "batchnorm", "--dataset", "mnist", "--out", str(tmp_path)], capsys)
    _assert_one_line_error(code, err, "experiment", "--dataset mnist", "--dataset digits")


@pytest.mark.parametrize(("argv", "command", "words"), [
    (["profile", "--batch", "0"], "profile", ["--batch"]),
    (["profile", "--repeat", "0"], "profile", ["--repeat"]),
    (["profile", "--input", "-3"], "profile", ["--input"]),
    (["profile", "--seed", "-1"], "profile", ["--seed"]),
    (["profile", "--hidden", "10,,10"], "profile", ["--hidden"]),
    (["experiment", "batchnorm", "--seed", "-1"], "experiment", ["--seed"]),
    (["bench", "report", "{tmp}/missing.json"], "bench", ["FILE.json", "missing.json"]),
])
def test_other_commands_user_errors_are_one_line(argv, command, words, capsys, tmp_path):
    code, out, err = _run([a.format(tmp=tmp_path) for a in argv], capsys)
    _assert_one_line_error(code, err, command, *words)


@pytest.mark.parametrize("argv", [["experiment", "batchnorm", "--out", "{file}"],
                                  ["bench", "--quick", "--out", "{file}"],
                                  ["profile", "--plot", "{file}/x.png"]])
def test_unwritable_outputs_fail_before_the_work(argv, capsys, tmp_path):
    blocker = tmp_path / "a-file"
    blocker.write_text("")
    code, out, err = _run([a.format(file=blocker) for a in argv], capsys)
    _assert_one_line_error(code, err, argv[0], "writable directory")
    assert "==" not in out  # no study started


def test_usage_error_channel_keeps_real_bugs_as_tracebacks():
    with pytest.raises(_cliargs.UsageError, match="bad"), _cliargs.user_input():
        raise ValueError("bad")
    with pytest.raises(KeyError), _cliargs.user_input():  # not an argument error: untouched
        raise KeyError("bug")


def test_main_lets_other_exceptions_through(monkeypatch):
    from fastdl import cli

    def broken(args):
        raise ValueError("a bug, not user input")

    monkeypatch.setattr(cli, "_info", broken)
    with pytest.raises(ValueError, match="a bug"):
        cli.main(["info"])


# -- help ---------------------------------------------------------------------------------------------------
def _subparser(name: str) -> argparse.ArgumentParser:
    parser = build_parser()
    sub = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    return sub.choices[name]


def test_train_help_shows_defaults_and_what_the_comparison_measures():
    text = _subparser("train").format_help()
    flat = " ".join(text.split())
    assert "(default: 20)" in flat  # --epochs
    assert "(default: 100)" in flat  # --batch-size
    assert "(default: 0.01)" in flat  # --lr
    assert "--no-compare" in flat and "NumPy reference" in flat and "gradient() + update()" in flat


@pytest.mark.parametrize("name", ["train", "profile", "warmup", "experiment", "bench", "info"])
def test_every_option_has_help_and_every_command_a_description(name):
    p = _subparser(name)
    assert p.description
    for action in p._actions:
        if action.option_strings:
            assert action.help, f"{name} {action.option_strings} has no help"


def test_info_includes_fastdl_version(capsys):
    import fastdl

    code, out, err = _run(["info"], capsys)
    assert code == 0
    assert json.loads(out)["fastdl"] == fastdl.__version__


# -- a run ---------------------------------------------------------------------------------------------------
def test_train_prints_speed_line_records_the_seed_and_agrees_with_the_book_trainer(capsys, tmp_path):
    from fastdl.nets import MultiLayerNetExtend
    from fastdl.trainer import Trainer

    code, out, err = _run(["train", *SMALL, "--seed", "7", "--out", str(tmp_path)], capsys)
    assert code == 0, err
    line = out.strip().splitlines()[-1]
    assert re.fullmatch(r"training step: fastdl \d+\.\d\d ms, NumPy reference \d+\.\d\d ms \(\d+\.\dx\)", line), line
    data = json.loads((tmp_path / "train-digits.json").read_text())
    assert data["config"]["seed"] == 7
    # the warm-up and the comparison change no trained number: the same run by hand, without them
    (x_tr, t_tr), (x_te, t_te) = datasets.load_digits(normalize=True)
    np.random.seed(7)
    net = MultiLayerNetExtend(64, [20], 10)
    h = Trainer(net, x_tr, t_tr, x_te, t_te, epochs=2, mini_batch_size=50, optimizer="adam",
                optimizer_param={"lr": 0.01}, verbose=False).train()
    assert data["train_loss"] == h.train_loss
    assert data["final_test_acc"] == h.final_test_acc
    # the final accuracy is printed once, labelled against the last epoch line
    finals = [ln for ln in out.splitlines() if ln.startswith("test acc:")]
    assert len(finals) == 1 and "test accuracy" not in out
    later = h.iterations - h.epochs[-1]["iteration"]
    assert later > 0 and finals[0] == (f"test acc:{h.final_test_acc} (after all {h.iterations} steps: {later} more "
                                       f"than the epoch-{h.epochs[-1]['epoch']} line above)")


def test_train_quiet_prints_accuracy_once_and_no_compare_skips_the_timing(capsys, tmp_path):
    code, out, err = _run(["train", *SMALL, "--quiet", "--no-compare", "--out", str(tmp_path)], capsys)
    assert code == 0, err
    assert out.count("test accuracy") == 1 and "test acc:" not in out
    assert "training step:" not in out
    assert json.loads((tmp_path / "train-digits.json").read_text())["config"]["seed"] == 0  # the default


def test_train_says_it_compiles_when_no_kernel_is_loaded_or_cached(capsys, tmp_path, monkeypatch):
    from fastdl import train_cli

    monkeypatch.setattr(_train_report, "kernels_loaded", lambda: 0)
    monkeypatch.setattr(train_cli, "_kernel_cache_has_entries", lambda: False)
    code, out, err = _run(["train", *SMALL, "--quiet", "--no-compare", "--out", str(tmp_path)], capsys)
    assert code == 0
    assert out.startswith("compiling kernels (first run only)...\n")
    monkeypatch.setattr(train_cli, "_kernel_cache_has_entries", lambda: True)  # a fresh process, warm cache
    code, out, err = _run(["train", *SMALL, "--quiet", "--no-compare", "--out", str(tmp_path)], capsys)
    assert code == 0 and "compiling kernels" not in out


def test_kernel_cache_has_entries_looks_for_numba_index_files(tmp_path, monkeypatch):
    import numba

    from fastdl import train_cli

    monkeypatch.setattr(numba.config, "CACHE_DIR", str(tmp_path))
    assert not train_cli._kernel_cache_has_entries()
    (tmp_path / "fastdl" / "kernels").mkdir(parents=True)
    (tmp_path / "fastdl" / "kernels" / "affine.affine_forward-12.py311.nbi").write_bytes(b"")
    assert train_cli._kernel_cache_has_entries()


def test_train_warns_at_chance_level(capsys, tmp_path):
    code, out, err = _run(["train", "--hidden", "20", "--epochs", "1", "--lr", "1e-9", "--init", "1e-6",
                           "--quiet", "--no-compare", "--out", str(tmp_path)], capsys)
    assert code == 0
    acc = json.loads((tmp_path / "train-digits.json").read_text())["final_test_acc"]
    assert acc <= 0.15
    assert "chance level" in err and "--lr" in err and "--epochs" in err


def test_train_does_not_warn_above_chance_level(capsys, tmp_path):
    code, out, err = _run(["train", *SMALL, "--quiet", "--no-compare", "--out", str(tmp_path)], capsys)
    assert code == 0 and "chance level" not in err


# -- the warm-up and the comparison leave the run alone --------------------------------------------------------
def test_warm_up_and_compare_change_no_network_optimizer_or_random_state():
    from fastdl.nets import MultiLayerNetExtend
    from fastdl.trainer import make_optimizer

    np.random.seed(3)
    net = MultiLayerNetExtend(12, [8], 4, use_dropout=True, dropout_ratio=0.3, use_batchnorm=True)
    opt = make_optimizer("adam", {"lr": 0.01})
    x = np.random.rand(6, 12)
    t = np.arange(6) % 4
    opt.update(net.params, net.gradient(x, t))  # an optimizer with state
    params = {k: v.copy() for k, v in net.params.items()}
    state = {k: {kk: vv.copy() for kk, vv in v.items()} if isinstance(v, dict) else v
             for k, v in vars(opt).items()}
    ref = MultiLayerNetExtend(12, [8], 4, use_dropout=True, dropout_ratio=0.3, use_batchnorm=True,
                              backend="reference")
    rng = np.random.get_state()
    seconds, compiled, loaded = _train_report.warm_up(net, opt, x, t)
    result = _train_report.compare_step(net, opt, ref, make_optimizer("adam", {"lr": 0.01}, "reference"), x, t,
                                       budget_s=0.05, repeats=2)
    assert seconds >= 0 and compiled >= 0 and loaded >= 0
    assert result.fastdl_s > 0 and result.reference_s > 0
    assert result.speedup == pytest.approx(result.reference_s / result.fastdl_s)
    for k, v in params.items():
        np.testing.assert_array_equal(net.params[k], v)
    after = np.random.get_state()
    assert after[0] == rng[0] and np.array_equal(after[1], rng[1]) and after[2:] == rng[2:]
    for k, v in state.items():
        now = vars(opt)[k]
        if isinstance(v, dict):
            assert v.keys() == now.keys() and all(np.array_equal(v[kk], now[kk]) for kk in v)


def test_history_plot_has_integer_epoch_ticks(tmp_path):
    from fastdl.history import History, plot_history

    h = History({})
    h.train_loss = [1.0] * 40
    h.epochs = [{"epoch": e, "iteration": 4 * e, "train_loss": 1.0, "train_acc": 0.5, "test_acc": 0.5}
                for e in range(1, 11)]
    fig = plot_history(h)
    ax_acc = fig.axes[1]
    ticks = [tick for tick in ax_acc.get_xticks() if ax_acc.get_xlim()[0] <= tick <= ax_acc.get_xlim()[1]]
    assert ticks and all(float(tick).is_integer() for tick in ticks)
