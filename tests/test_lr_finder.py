"""fastdl.lr_find: the exponential sweep, smoothing, early stop, suggestion, and a network left exactly as it was."""

import copy

import numpy as np
import pytest

import fastdl
from fastdl import MultiLayerNetExtend, lr_find
from fastdl.optim import Adam


@pytest.fixture(scope="module")
def digits():
    (x, t), _ = fastdl.load_digits()
    return x[:600], t[:600]


def _state(net):
    running = {(name, attr): getattr(layer, attr) for name, layer in net.layers.items()
               for attr in ("running_mean", "running_var") if hasattr(layer, attr)}
    return ({k: (v, v.copy()) for k, v in net.params.items()},
            {k: (v, None if v is None else v.copy()) for k, v in running.items()})


def _assert_same(net, saved):
    params, running = saved
    assert list(net.params) == list(params)
    for key, (obj, values) in params.items():
        assert net.params[key] is obj  # the same array objects ...
        assert obj.tobytes() == values.tobytes()  # ... holding the same bits
    for (name, attr), (obj, values) in running.items():
        now = getattr(net.layers[name], attr)
        if obj is None:
            assert now is None
        else:
            assert now is obj and now.tobytes() == values.tobytes()


def _assert_optimizer_equal(a, b):
    assert a.lr == b.lr and a.iter == b.iter
    for name in ("m", "v"):
        da, db = getattr(a, name), getattr(b, name)
        assert list(da) == list(db)
        for k in da:
            assert da[k].tobytes() == db[k].tobytes()


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_restores_weights_running_stats_optimizer_and_rng(digits, dtype):
    x, t = digits
    np.random.seed(1)
    net = MultiLayerNetExtend(64, [30, 20], 10, use_batchnorm=True, dtype=dtype)
    opt = Adam(lr=0.003)
    for i in range(3):  # mid-training: running statistics and Adam's moments exist
        opt.update(net.params, net.gradient(x[i * 50:(i + 1) * 50], t[i * 50:(i + 1) * 50]))
    twin_net, twin_opt = copy.deepcopy(net), copy.deepcopy(opt)
    saved, opt_before = _state(net), copy.deepcopy(opt)
    rng_before = np.random.get_state()
    result = lr_find(net, x, t, optimizer=opt, start_lr=1e-5, end_lr=100, steps=40, batch_size=50, seed=0,
                     verbose=False)
    assert result.optimizer == "Adam" and len(result.lrs) > 5
    _assert_same(net, saved)
    _assert_optimizer_equal(opt, opt_before)
    after = np.random.get_state()
    assert after[0] == rng_before[0] and np.array_equal(after[1], rng_before[1]) and after[2:] == rng_before[2:]
    # and training goes on exactly as it would have without the sweep
    for i in range(3, 6):
        xb, tb = x[i * 50:(i + 1) * 50], t[i * 50:(i + 1) * 50]
        opt.update(net.params, net.gradient(xb, tb))
        twin_opt.update(twin_net.params, twin_net.gradient(xb, tb))
    for key in net.params:
        assert net.params[key].tobytes() == twin_net.params[key].tobytes()
    assert net.layers["BatchNorm1"].running_var.tobytes() == twin_net.layers["BatchNorm1"].running_var.tobytes()


@pytest.mark.parametrize("backend", [None, "reference"])
def test_fresh_net_running_stats_back_to_none(digits, backend):
    x, t = digits
    np.random.seed(0)
    net = MultiLayerNetExtend(64, [16], 10, use_batchnorm=True, use_dropout=backend == "reference",
                              dropout_ratio=0.1, backend=backend)
    saved = _state(net)
    assert net.layers["BatchNorm1"].running_mean is None
    np.random.seed(5)
    lr_find(net, x, t, steps=20, verbose=False)  # (dropout draws its masks from the global generator)
    _assert_same(net, saved)
    got = np.random.random(3)
    np.random.seed(5)
    np.testing.assert_array_equal(got, np.random.random(3))


def test_sweep_smoothing_and_suggestion(digits):
    x, t = digits
    np.random.seed(0)
    net = MultiLayerNetExtend(64, [32], 10)
    r = lr_find(net, x, t, optimizer="sgd", start_lr=1e-3, end_lr=10.0, steps=30, batch_size=64, smoothing=0.9,
                seed=2, verbose=False)
    assert r.stop_reason == "completed" and len(r.lrs) == 30
    np.testing.assert_allclose(r.lrs, 1e-3 * 1e4 ** (np.arange(30) / 29), rtol=1e-12)
    avg, expected = 0.0, []
    for i, loss in enumerate(r.raw_losses):
        avg = 0.9 * avg + 0.1 * loss
        expected.append(avg / (1 - 0.9 ** (i + 1)))
    np.testing.assert_allclose(r.losses, expected, rtol=1e-12)
    assert r.losses[0] == pytest.approx(r.raw_losses[0])  # bias correction: the first value is the first loss
    assert r.lr_min == r.lrs[np.argmin(r.losses)] and r.suggestion == pytest.approx(r.lr_min / 10)
    assert r.lrs[3] <= r.lr_steep <= r.lr_min
    # the range test's U: down from the start, up again once lr is too large
    assert r.losses.min() < r.losses[0] - 0.1 and r.losses[-1] > r.losses.min() + 0.5
    again = lr_find(net, x, t, optimizer="sgd", start_lr=1e-3, end_lr=10.0, steps=30, batch_size=64, smoothing=0.9,
                    seed=2, verbose=False)
    np.testing.assert_array_equal(again.raw_losses, r.raw_losses)  # seeded, and the net was restored


def test_stops_when_the_loss_explodes(digits):
    x, t = digits
    np.random.seed(0)
    net = MultiLayerNetExtend(64, [32], 10)
    saved = _state(net)
    with np.errstate(all="raise"):  # nothing may leak out of the sweep
        r = lr_find(net, x, t, optimizer="sgd", start_lr=1e-3, end_lr=1e6, steps=100, smoothing=0.5,
                    diverge_factor=2.0, verbose=False)
    assert len(r.lrs) < 100
    assert "exploded" in r.stop_reason or "non-finite" in r.stop_reason
    assert r.lrs[-1] < 1e6 and r.suggestion < r.lrs[-1]
    _assert_same(net, saved)


def test_progress_bar_and_plot(digits, capsys):
    x, t = digits
    np.random.seed(0)
    r = lr_find(MultiLayerNetExtend(64, [16], 10), x, t, steps=10, verbose=True)
    assert "lr_find" in capsys.readouterr().err
    ax = r.plot()
    assert ax.get_xscale() == "log" and len(ax.lines) == 3


def test_validation_before_anything_runs(digits):
    x, t = digits
    np.random.seed(0)
    net = MultiLayerNetExtend(64, [16], 10)
    saved = _state(net)
    with pytest.raises(ValueError, match="lr_find: end_lr must be larger than start_lr"):
        lr_find(net, x, t, start_lr=1.0, end_lr=0.1)
    with pytest.raises(ValueError, match="lr_find: steps must be an integer >= 2"):
        lr_find(net, x, t, steps=1)
    with pytest.raises(ValueError, match="lr_find: t must be labels"):
        lr_find(net, x, t[:-1])
    with pytest.raises(ValueError, match="lr_find: diverge_factor must be a number > 1"):
        lr_find(net, x, t, diverge_factor=1.0)
    with pytest.raises(ValueError, match="lr_find: smoothing must be"):
        lr_find(net, x, t, smoothing=1.0)
    with pytest.raises(TypeError, match="lr_find: network must be"):
        lr_find(object(), x, t)
    with pytest.raises(ValueError, match="optimizer_param must be empty"):
        lr_find(net, x, t, optimizer=Adam(), optimizer_param={"beta1": 0.8})
    with pytest.raises(ValueError, match="get_optimizer: name must be one of"):
        lr_find(net, x, t, optimizer="nope")
    _assert_same(net, saved)


def test_train_command_lr_auto(tmp_path, capsys):
    import json

    from fastdl.cli import main

    assert main(["train", "--lr", "auto", "--epochs", "1", "--hidden", "32", "--quiet", "--out", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    line = next(s for s in out.splitlines() if s.startswith("lr auto: "))
    chosen = float(line.split()[2])
    config = json.loads((tmp_path / "train-digits.json").read_text())["config"]
    assert config["optimizer_param"]["lr"] == pytest.approx(chosen, rel=1e-2)
    assert 1e-5 < chosen < 1.0
    with pytest.raises(SystemExit):
        main(["train", "--lr", "fast"])
    assert "--lr must be a number such as 0.01 or 'auto'" in capsys.readouterr().err
