"""fastdl.experiments: every study with tiny settings returns its data and writes a valid PNG."""

import matplotlib.image
import numpy as np
import pytest

from fastdl import experiments


def _assert_png(path, fig):
    with open(path, "rb") as fh:
        assert fh.read(8) == b"\x89PNG\r\n\x1a\n"
    image = matplotlib.image.imread(path)
    assert image.ndim == 3 and image.shape[0] > 100 and image.shape[1] > 100
    assert fig.axes and any(ax.get_title() for ax in fig.axes)
    assert any(ax.get_legend() is not None for ax in fig.axes) or fig.legends


def test_optimizer_paths(tmp_path):
    data, fig = experiments.run("optimizer-paths", out=tmp_path, steps=30)
    _assert_png(tmp_path / "optimizer-paths.png", fig)
    from fastdl import optim

    assert list(data["paths"]) == [rule.class_name for rule in optim.RULES.values()]  # the table, in order
    assert len(data["paths"]) >= 9
    for name, path in data["paths"].items():
        assert path.shape == (30, 2)
        np.testing.assert_array_equal(path[0], [-7.0, 2.0])
        assert data["final_f"][name] < 0.5 < 7.0 ** 2 / 20 + 4  # every optimizer got close to the minimum
    # SGD's first step is exactly x - lr * df
    np.testing.assert_allclose(data["paths"]["SGD"][1], [-7.0 - 0.95 * -0.7, 2.0 - 0.95 * 4.0])


@pytest.mark.parametrize("name", ["optimizer-compare", "weight-init-compare"])
def test_loss_comparisons(tmp_path, name):
    data, fig = experiments.run(name, out=tmp_path, iterations=15, batch_size=32)
    _assert_png(tmp_path / f"{name}.png", fig)
    for losses in data["loss"].values():
        assert len(losses) == 15 and np.all(np.isfinite(losses))
    if name == "optimizer-compare":
        from fastdl import optim

        assert list(data["loss"]) == [rule.class_name for rule in optim.RULES.values()]
    else:
        assert len(data["loss"]) == 3


def test_weight_init_hist(tmp_path):
    data, fig = experiments.run("weight-init-hist", out=tmp_path, n_samples=100, node_num=100, hidden_layer_size=3)
    _assert_png(tmp_path / "weight-init-hist.png", fig)
    assert len(data["hist"]) == 8
    assert data["hist"][("sigmoid", "std=1")].shape == (3, 30)
    # the book's observations: std 1 saturates the sigmoid, std 0.01 crowds it at 0.5, ReLU+std 0.01 vanishes
    assert data["saturated_fraction"][("sigmoid", "std=1")][-1] > 0.3
    assert data["std"][("sigmoid", "std=0.01")][-1] < 0.05
    assert data["std"][("relu", "std=0.01")][-1] < 1e-3 < data["std"][("relu", "He")][-1]


def test_batchnorm(tmp_path):
    data, fig = experiments.run("batchnorm", out=tmp_path, n_scales=2, epochs=2, train_size=200)
    _assert_png(tmp_path / "batchnorm.png", fig)
    assert data["bn_train_acc"].shape == data["train_acc"].shape == (2, 2)
    np.testing.assert_allclose(data["scales"], [1.0, 1e-4])
    assert np.all((data["bn_train_acc"] >= 0) & (data["bn_train_acc"] <= 1))


def test_overfit(tmp_path):
    data, fig = experiments.run("overfit", out=tmp_path, epochs=3, train_size=200)
    _assert_png(tmp_path / "overfit.png", fig)
    for key in ("baseline", "weight decay λ=0.1", "dropout 0.2"):
        assert len(data[key]["train_acc"]) == len(data[key]["test_acc"]) == 3
        assert data[key]["gap"] == pytest.approx(data[key]["train_acc"][-1] - data[key]["test_acc"][-1])


def test_hparam_search(tmp_path):
    data, fig = experiments.run("hparam-search", out=tmp_path, trials=3, epochs=2, best=2)
    _assert_png(tmp_path / "hparam-search.png", fig)
    trials = data["trials"]
    assert len(trials) == 3
    assert [t["final_val_acc"] for t in trials] == sorted((t["final_val_acc"] for t in trials), reverse=True)
    for t in trials:
        assert 1e-6 <= t["lr"] <= 1e-2 and 1e-8 <= t["weight_decay"] <= 1e-4
        assert len(t["val_acc"]) == 2
    assert data["best_lr"] == trials[0]["lr"]


def test_lr_finder(tmp_path):
    data, fig = experiments.run("lr-finder", out=tmp_path, steps=20, check_lrs=2, check_epochs=1, hidden=(16,))
    _assert_png(tmp_path / "lr-finder.png", fig)
    assert set(data["results"]) == {"SGD", "Momentum", "Adam"}
    for name, r in data["results"].items():
        assert 2 <= len(r.lrs) <= 20 and r.lrs[0] == pytest.approx(1e-6)
        assert data["suggestion"][name] == pytest.approx(r.lr_min / 10)
        assert data["check"][name].shape == (2,) and np.all((data["check"][name] >= 0) & (data["check"][name] <= 1))
    np.testing.assert_allclose(data["check_lr"], [1e-3, 10.0])
    assert fig.axes[0].get_xscale() == "log"


def test_batch_size(tmp_path):
    data, fig = experiments.run("batch-size", out=tmp_path, batch_sizes=(16, 512), epochs=1, seeds=2, hidden=(16,),
                                timing_seconds=0.01)
    _assert_png(tmp_path / "batch-size.png", fig)
    assert data["batch_sizes"] == [16, 512]
    fixed, scaled = data["accuracy"]
    assert data["lr"][fixed] == [0.1, 0.1] and data["lr"][scaled] == [0.1 * 16 / 64, 0.8]
    for acc in data["accuracy"].values():
        assert acc.shape == (2, 2) and np.all((acc >= 0) & (acc <= 1))
    assert set(data["samples_per_s"]) == {"fastdl float32", "fastdl float64", "NumPy reference float64"}
    for speed in data["samples_per_s"].values():
        assert speed.shape == (2,) and np.all(np.isfinite(speed) & (speed > 0))
    assert fig.axes[1].get_yscale() == "log"


def test_depth_width(tmp_path):
    data, fig = experiments.run("depth-width", out=tmp_path, depths=(1, 3), widths=(8, 32), max_epochs=3, patience=1)
    _assert_png(tmp_path / "depth-width.png", fig)
    assert data["val_acc"].shape == data["params"].shape == (2, 2)
    assert np.all((data["val_acc"] >= 0) & (data["val_acc"] <= 1))
    # 64-8-10, 64-32-10, 64-8-8-8-10, 64-32-32-32-10 weights and biases
    np.testing.assert_array_equal(data["params"], [[64 * 8 + 8 + 8 * 10 + 10, 64 * 32 + 32 + 32 * 10 + 10],
                                                   [64 * 8 + 8 + 2 * (8 * 8 + 8) + 8 * 10 + 10,
                                                    64 * 32 + 32 + 2 * (32 * 32 + 32) + 32 * 10 + 10]])
    assert np.all((data["epochs"] >= 2) & (data["epochs"] <= 3))  # early stopping needs 1 + patience epochs
    assert data["best"] in {(d, w) for d in (1, 3) for w in (8, 32)}
    assert fig.axes[0].get_xscale() == "log"


def test_registry_and_cli(tmp_path, capsys):
    from fastdl.cli import main

    assert set(experiments.EXPERIMENTS) == {"optimizer-paths", "optimizer-compare", "weight-init-hist",
                                            "weight-init-compare", "batchnorm", "overfit", "hparam-search",
                                            "lr-finder", "batch-size", "depth-width", "transfer", "activations",
                                            "mc-dropout", "lr-schedules"}
    with pytest.raises(ValueError, match="experiment"):
        experiments.get("nope")
    assert main(["experiment", "optimizer-paths", "--out", str(tmp_path)]) == 0
    assert "optimizer-paths" in capsys.readouterr().out
    assert (tmp_path / "optimizer-paths.png").exists()


def test_transfer(tmp_path):
    data, fig = experiments.run("transfer", out=tmp_path, hidden=(16, 16), base_epochs=2, epochs=2, sizes=(10, 20),
                                curve_size=10, repeats=1)
    assert (tmp_path / "transfer.png").stat().st_size > 0
    assert set(data["curves"]) == {"scratch", "reused, frozen", "reused, fine-tuned"}
    assert data["sizes"] == [10, 20] and all(len(v) == 2 for v in data["final"].values())
    assert all(len(v) == 2 and all(0 <= a <= 1 for a in v) for v in data["curves"].values())
    assert 0.2 < data["base_acc"] <= 1  # (5 classes: above chance after two epochs)
    with pytest.raises(ValueError, match="n_reused must be at most"):
        experiments.run("transfer", out=tmp_path, hidden=(8,), n_reused=2)


def test_activations(tmp_path):
    data, fig = experiments.run("activations", out=tmp_path, depth=3, width=8, epochs=1, batch_size=200,
                                hist_depth=6, n_samples=200, names=["relu", "selu"])
    assert (tmp_path / "activations.png").stat().st_size > 0 and (tmp_path / "activations-hist.png").exists()
    n_train = len(__import__("fastdl").datasets.load_digits()[0][0])
    assert set(data["loss"]) == {"relu", "selu"} and all(len(v) == n_train // 200 for v in data["loss"].values())
    stacks = data["hist"]["stacks"]
    assert set(stacks) == {"SELU + LeCun", "ReLU + He", "tanh + Xavier"}
    assert sorted(stacks["SELU + LeCun"]["hist"]) == [1, 5, 6]
    assert all(len(s["std"]) == 6 for s in stacks.values())
    assert abs(stacks["SELU + LeCun"]["std"][-1] - 1) < 0.25 and stacks["tanh + Xavier"]["std"][-1] < 0.5
    assert min(stacks["ReLU + He"]["mean"]) > 0.2  # (ReLU outputs are never negative)


def test_lr_schedules(tmp_path):
    from fastdl import optim, schedules

    data, fig = experiments.run("lr-schedules", out=tmp_path, epochs=1, batch_size=256, hidden=(16,), progress=False)
    _assert_png(tmp_path / "lr-schedules.png", fig)
    assert set(data["lr"]) == {"constant", *schedules.SCHEDULES}  # every schedule of the table
    steps = data["steps"]
    assert steps == -(-1438 // 256)  # one epoch of the digits training split (1438 samples)
    for name, rates in data["lr"].items():
        assert rates.shape == (steps,) and len(data["loss"][name]) == steps
        assert np.all(np.isfinite(data["loss"][name])) and 0.0 <= data["test_acc"][name] <= 1.0
    sched = experiments.lr_schedules.schedules_for(0.1, steps)
    np.testing.assert_array_equal(data["lr"]["cosine"], [sched["cosine"](i) for i in range(steps)])
    # the same seed and batches: a constant schedule equals a plain Momentum run step for step
    from fastdl.nets import MultiLayerNet

    (x, t), _ = experiments._common.load("digits", "test")
    np.random.seed(0)
    net = MultiLayerNet(64, [16], 10)
    np.random.seed(0)
    plain = experiments._common.train_loss_curves("digits", "test", {"a": net}, {"a": optim.Momentum(lr=0.1)},
                                                  steps, 256, x, t, progress=False)
    assert data["loss"]["constant"] == plain["a"]
