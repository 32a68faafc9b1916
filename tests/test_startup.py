"""Issue 15, the quickstart's start-up: the fused evaluation forward, the start-up bench section, lazy imports."""

import subprocess
import sys

import numpy as np
import pytest

from fastdl import datasets, optim
from fastdl.nets import MultiLayerNetExtend
from fastdl.trainer import Trainer


@pytest.fixture(scope="module")
def digits():
    return datasets.load_digits(normalize=True)


def _layer_path(net, x):
    """The evaluation forward layer by layer (what predict ran before the fused evaluation)."""
    a = x
    for layer, kind in net._forward_steps:
        a = layer.forward(a) if kind == 0 else layer.forward(a, False)
    return a


def _trained(dtype, seed=0, **kw):
    (x, t), _ = datasets.load_digits(normalize=True, dtype=dtype)
    np.random.seed(seed)
    net = MultiLayerNetExtend(64, [100, 100], 10, dtype=dtype, **kw)
    opt = optim.Adam(lr=0.01)
    for i in range(3):
        opt.update(net.params, net.gradient(x[i * 100:(i + 1) * 100], t[i * 100:(i + 1) * 100]))
    return net, x, t


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("n", [1, 100, 1437])
def test_fused_predict_is_the_layer_path_to_the_bit(dtype, n):
    net, x, t = _trained(dtype)
    xs = np.ascontiguousarray(x[:n])
    assert net._fused.predict(net, xs) is not None  # the fused evaluation covers this network
    y = net.predict(xs)
    assert net.layers["Affine1"].x is xs  # the layers' caches as the layer path leaves them
    assert net.layers["Affine3"].x.shape == (n, 100)
    ref = _layer_path(net, xs)
    assert y.dtype == dtype and y.shape == (n, 10)
    np.testing.assert_array_equal(y, ref)
    assert net.predict(xs) is not y  # a new array every call


@pytest.mark.parametrize("kw", [{"use_batchnorm": True}, {"activation": "sigmoid"}, {"activation": "elu"},
                                {"use_alpha_dropout": True, "dropout_ratio": 0.1}])
def test_networks_outside_the_fused_evaluation_take_the_layer_path(kw):
    net, x, _ = _trained(np.float64, **kw)
    assert net._fused.predict(net, x[:50]) is None
    np.testing.assert_array_equal(net.predict(x[:50]), _layer_path(net, x[:50]))


def test_inputs_the_fused_evaluation_does_not_take_go_the_layer_path():
    net, x, _ = _trained(np.float64)
    strided = x[:40:2]  # not C-contiguous
    assert net._fused.predict(net, strided) is None
    np.testing.assert_array_equal(net.predict(strided), _layer_path(net, np.ascontiguousarray(strided)))
    with pytest.raises(ValueError, match="Affine.forward"):  # a wrong width still fails as before
        net.predict(x[:5, :60])
    replaced = net.params["W2"] = net.params["W2"].copy()  # a replaced array: the fused step steps aside
    replaced[0, 0] += 1.0
    assert net._fused.predict(net, x[:5]) is None
    np.testing.assert_array_equal(net.predict(x[:5]), _layer_path(net, x[:5]))


def test_quickstart_trainer_numbers_equal_a_layer_path_book_loop(digits):
    """The Trainer's lists (loss after each update, per-epoch accuracies) equal the book's loop with
    every evaluation forward run layer by layer."""
    (x_train, t_train), (x_test, t_test) = digits
    np.random.seed(0)
    net = MultiLayerNetExtend(64, [100, 100], 10, weight_init_std="relu")
    trainer = Trainer(net, x_train, t_train, x_test, t_test, epochs=2, optimizer="adam",
                      optimizer_param={"lr": 0.01}, verbose=False, seed=4)
    trainer.train()
    np.random.seed(0)
    book = MultiLayerNetExtend(64, [100, 100], 10, weight_init_std="relu")
    opt = optim.Adam(lr=0.01)

    def accuracy(x, t):
        return float(np.sum(np.argmax(_layer_path(book, x), axis=1) == t) / float(x.shape[0]))

    np.random.seed(4)
    losses, train_acc, test_acc = [], [], []
    for i in range(trainer.max_iter):
        mask = np.random.choice(x_train.shape[0], 100)
        xb, tb = x_train[mask], t_train[mask]
        opt.update(book.params, book.gradient(xb, tb))
        losses.append(book.last_layer.forward(_layer_path(book, xb), tb))
        if trainer._epoch_ends(i):
            train_acc.append(accuracy(x_train, t_train))
            test_acc.append(accuracy(x_test, t_test))
    np.testing.assert_array_equal(trainer.train_loss_list, losses)
    assert trainer.train_acc_list == train_acc and trainer.test_acc_list == test_acc


def test_startup_section_formats_every_figure():
    from fastdl.benchmark.startup import format_startup

    trainer = {"trainer": 4e-4, "trainer_verbose": 4.2e-4, "gradient_update": 3e-4, "loss_after_update": 5e-5,
               "evaluation": 4e-5, "sampling": 1e-5, "overhead": 1e-4, "overhead_share": 0.25, "steps": 287,
               "epochs": 20}
    first = {"import_s": 0.3, "first_step_s": 0.2, "kernels": 10, "first_load_s": 0.17, "other_loads_s": 0.03,
             "median_load_s": 0.003}
    cli = {"interpreter_s": 0.02, "import_cli_s": 0.4, "train_s": 1.5, "train_compare_s": 2.75}
    text = format_startup({"trainer": trainer, "first_run": first, "cli": cli, "load_before": 0.5,
                           "load_after": 0.7})
    for figure in ("0.400 ms", "0.300 ms", "0.100 ms (25 %)", "0.050 ms", "0.040 ms", "10: the first 0.170 s",
                   "1.50 s", "2.75 s", "load average 0.50 -> 0.70", "287 steps"):
        assert figure in text


def test_first_run_probe_counts_the_kernels_it_loads():
    from fastdl.benchmark.startup import measure_first_run

    out = measure_first_run(repeats=1)
    assert out["kernels"] + out["compiled"] >= 5  # the step, loss and accuracy need several (loaded, or compiled)
    assert out["first_step_s"] > 0 and out["import_s"] > 0


def test_bench_startup_flag_runs_only_the_startup_section(monkeypatch, capsys):
    from fastdl.benchmark import startup
    from fastdl.cli import main

    monkeypatch.setattr(startup, "measure_quickstart", lambda: {"marker": True})
    monkeypatch.setattr(startup, "format_startup", lambda result: f"startup table {result['marker']}")
    assert main(["bench", "--startup"]) == 0
    assert capsys.readouterr().out.strip() == "startup table True"


def test_the_cli_does_not_import_scipy_special_or_matplotlib():
    # (Numba imports the top-level scipy package itself; scipy.special cost ~0.2 s through fastdl.reference)
    code = "import sys, fastdl.cli; print(sorted(m for m in ('scipy.special', 'matplotlib') if m in sys.modules))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"


def test_fused_predict_of_a_network_with_frozen_blocks_is_the_layer_path():
    net, x, _ = _trained(np.float64)
    net.freeze(1)
    assert net._fused is not None and net._fused.predict(net, x[:30]) is not None
    np.testing.assert_array_equal(net.predict(x[:30]), _layer_path(net, x[:30]))
