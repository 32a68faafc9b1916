"""Profiler: rows cover every layer, shares add up, exports round-trip, the optimizer step is real."""

from __future__ import annotations

import argparse
import json
from collections import OrderedDict

import numpy as np
import pytest

from fastdl import profiler, reference
from fastdl.profiler import ProfileReport, compare, profile, profile_step


class BookNet:
    """A two-layer network written the book's way from any layer module (here: the reference)."""

    def __init__(self, L, sizes=(12, 9, 5), seed=0, dtype=np.float64):
        rng = np.random.default_rng(seed)
        self.params = {}
        self.layers = OrderedDict()
        for i in range(1, len(sizes)):
            self.params[f"W{i}"] = (0.3 * rng.standard_normal((sizes[i - 1], sizes[i]))).astype(dtype)
            self.params[f"b{i}"] = np.zeros(sizes[i], dtype=dtype)
            self.layers[f"Affine{i}"] = L.Affine(self.params[f"W{i}"], self.params[f"b{i}"])
            if i < len(sizes) - 1:
                self.layers[f"Relu{i}"] = L.Relu()
        self.last_layer = L.SoftmaxWithLoss()


@pytest.fixture
def batch(rng):
    return rng.standard_normal((8, 12)), rng.integers(0, 5, 8)


def test_rows_cover_every_layer_loss_and_optimizer(batch):
    net = BookNet(reference)
    report = profile(net, *batch, optimizer=reference.Adam(), repeat=3, warmup=1)
    assert [r.name for r in report.rows] == [*net.layers, "loss", "optimizer"]
    assert [r.kind for r in report.rows] == ["Affine", "Relu", "Affine", "SoftmaxWithLoss", "Adam"]
    assert sum(r.share for r in report.rows) == pytest.approx(1.0, abs=1e-9)
    assert all(r.forward_s > 0 for r in report.rows)
    assert all(r.backward_s > 0 for r in report.rows[:-1]) and report.rows[-1].backward_s == 0
    assert {r.unit for r in report.rows if r.kind == "Affine"} == {"GFLOP/s"}
    assert {r.unit for r in report.rows if r.kind != "Affine"} == {"GB/s"}
    assert report.samples_per_s == pytest.approx(8 / report.total_s)
    assert report.batch_size == 8 and report.dtype == "float64" and report.repeat == 3
    text = str(report)
    for name in [*net.layers, "loss", "optimizer", "step"]:
        assert name in text


def test_optimizer_step_uses_each_layers_gradient(batch):
    """One profiled SGD step equals a hand-written backprop step on an identical network."""
    x, t = batch
    net, twin = BookNet(reference), BookNet(reference)
    originals = {k: v for k, v in net.params.items()}
    profile(net, x, t, optimizer=reference.SGD(lr=0.1), repeat=1, warmup=0)
    h = x
    for layer in twin.layers.values():
        h = layer.forward(h)
    twin.last_layer.forward(h, t)
    dout = twin.last_layer.backward(1)
    for layer in reversed(twin.layers.values()):
        dout = layer.backward(dout)
    for i in (1, 2):
        twin.params[f"W{i}"] -= 0.1 * twin.layers[f"Affine{i}"].dW
        twin.params[f"b{i}"] -= 0.1 * twin.layers[f"Affine{i}"].db
    for key, value in net.params.items():
        assert value is originals[key]
        np.testing.assert_allclose(value, twin.params[key], rtol=1e-12, atol=1e-15)


def test_fastdl_network_with_batchnorm_and_dropout(rng):
    nets = pytest.importorskip("fastdl.nets")
    optim = pytest.importorskip("fastdl.optim")
    np.random.seed(0)
    net = nets.MultiLayerNetExtend(16, [10, 10], 4, use_batchnorm=True, use_dropout=True, dtype=np.float32)
    x = rng.standard_normal((6, 16)).astype(np.float32)
    report = profile(net, x, rng.integers(0, 4, 6), optimizer=optim.Adam(), repeat=2, warmup=1, label="fastdl")
    assert [r.name for r in report.rows] == [*net.layers, "loss", "optimizer"]
    assert report.dtype == "float32"
    assert sum(r.share for r in report.rows) == pytest.approx(1.0, abs=1e-9)


def test_json_round_trip_and_plot(tmp_path, batch):
    report = profile(BookNet(reference), *batch, repeat=2, warmup=0, label="ref")
    path = tmp_path / "p.json"
    text = report.to_json(path)
    assert json.loads(path.read_text()) == json.loads(text)
    again = ProfileReport.from_json(path)
    assert again.to_dict() == report.to_dict()
    assert ProfileReport.from_json(text).to_dict() == report.to_dict()
    png = report.plot(tmp_path / "p.png")
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_compare_side_by_side(tmp_path, batch):
    a = profile(BookNet(reference), *batch, repeat=2, warmup=0, label="one")
    b = profile(BookNet(reference), *batch, repeat=2, warmup=0, label="two")
    cmp = compare(a, b)
    speed = cmp.speedups()
    assert set(speed) == {*(r.name for r in a.rows), "step"}
    assert speed["step"] == pytest.approx(a.total_s / b.total_s)
    text = str(cmp)
    assert "speed-up" in text and "one fwd" in text and "two bwd" in text
    assert cmp.plot(tmp_path / "c.png").stat().st_size > 0
    assert set(cmp.to_dict()) == {"baseline", "candidate", "speedups"}


def test_rejects_what_is_not_a_book_network(batch):
    with pytest.raises(TypeError, match="profile: network must have"):
        profile(object(), *batch)
    with pytest.raises(ValueError, match="repeat must be a positive integer"):
        profile(BookNet(reference), *batch, repeat=0)
    net = BookNet(reference)
    net.params["W1"] = net.params["W1"].copy()  # no longer the array Affine1 holds
    with pytest.raises(ValueError, match=r"params\['W1'\]"):
        profile(net, *batch, optimizer=reference.SGD())


def _cli(argv):
    parser = argparse.ArgumentParser()
    profiler.register_cli(parser.add_subparsers())
    args = parser.parse_args(argv)
    return args.func(args)


def test_cli_compare_writes_json_and_plot(tmp_path, capsys):
    pytest.importorskip("fastdl.nets")
    code = _cli(["profile", "--hidden", "12,12", "--input", "20", "--output", "3", "--batch", "6", "--batchnorm",
                 "--dtype", "float32", "--compare", "--repeat", "2", "--warmup", "1",
                 "--json", str(tmp_path / "c.json"), "--plot", str(tmp_path / "c.png")])
    assert code == 0
    out = capsys.readouterr().out
    assert "reference fwd" in out and "fastdl fwd" in out and "BatchNorm1" in out
    data = json.loads((tmp_path / "c.json").read_text())
    assert data["baseline"]["label"] == "reference" and data["candidate"]["label"] == "fastdl"
    assert (tmp_path / "c.png").read_bytes()[:4] == b"\x89PNG"


def test_cli_rejects_bad_hidden_list():
    with pytest.raises(SystemExit):
        _cli(["profile", "--hidden", "10,x"])


def test_profile_step_phases_of_the_fused_step(rng):
    nets = pytest.importorskip("fastdl.nets")
    from fastdl import optim

    np.random.seed(0)
    net = nets.MultiLayerNetExtend(20, [12, 12], 3, use_batchnorm=True, weight_decay_lambda=0.01)
    x, t = rng.standard_normal((6, 20)), rng.integers(0, 3, 6)
    before = net.params["W1"].copy()
    prof = profile_step(net, x, t, optimizer=optim.Adam(), repeat=4, warmup=1, label="fastdl")
    assert prof.fused and net._phase_times is None  # hook switched off again
    assert list(prof.phases) == [name for name, _ in profiler.STEP_PHASES]
    assert not np.array_equal(net.params["W1"], before)  # real steps
    assert prof.non_gemm_share == pytest.approx(1 - prof.phases["gemm"] / prof.phase_sum_s)
    assert 0 < prof.non_gemm_share < 1 and prof.step_s > 0
    text = str(prof)
    assert "fused step" in text and "outside the GEMMs" in text and "gemm" in text
    assert json.loads(json.dumps(prof.to_dict()))["phases"]["gemm"] == prof.phases["gemm"]


def test_profile_step_layer_path_and_bad_arguments(rng):
    nets = pytest.importorskip("fastdl.nets")
    np.random.seed(0)
    net = nets.MultiLayerNetExtend(20, [12], 3, use_dropout=True, dropout_ration=0.2)  # dropout: layer path
    x, t = rng.standard_normal((6, 20)), rng.integers(0, 3, 6)
    prof = profile_step(net, x, t, optimizer=reference.SGD(), repeat=2, warmup=0)
    assert not prof.fused and set(prof.phases) == {"gradient", "optimizer"} and prof.non_gemm_share is None
    with pytest.raises(TypeError, match="profile_step: network must have a gradient"):
        profile_step(object(), x, t)
    with pytest.raises(ValueError, match="profile_step: repeat"):
        profile_step(net, x, t, repeat=0)


def test_cli_step_breakdown(tmp_path, capsys):
    pytest.importorskip("fastdl.nets")
    code = _cli(["profile", "--step", "--hidden", "12,12", "--input", "20", "--output", "3", "--batch", "6",
                 "--batchnorm", "--compare", "--repeat", "2", "--warmup", "1", "--json", str(tmp_path / "s.json")])
    assert code == 0
    out = capsys.readouterr().out
    assert "reference: training step" in out and "fastdl: training step" in out and "outside the GEMMs" in out
    data = json.loads((tmp_path / "s.json").read_text())
    assert [d["label"] for d in data] == ["reference", "fastdl"] and data[1]["fused"] and not data[0]["fused"]


class _BookTwoLayerNet:
    """The book's ch05/two_layer_net.py (layers OrderedDict, loss layer named ``lastLayer``) on fastdl.layers."""

    def __init__(self, input_size, hidden_size, output_size, weight_init_std=0.01):
        from collections import OrderedDict

        from fastdl.layers import Affine, Relu, SoftmaxWithLoss

        self.params = {"W1": weight_init_std * np.random.randn(input_size, hidden_size),
                       "b1": np.zeros(hidden_size),
                       "W2": weight_init_std * np.random.randn(hidden_size, output_size),
                       "b2": np.zeros(output_size)}
        self.layers = OrderedDict()
        self.layers["Affine1"] = Affine(self.params["W1"], self.params["b1"])
        self.layers["Relu1"] = Relu()
        self.layers["Affine2"] = Affine(self.params["W2"], self.params["b2"])
        self.lastLayer = SoftmaxWithLoss()

    def predict(self, x):
        for layer in self.layers.values():
            x = layer.forward(x)
        return x

    def loss(self, x, t):
        return self.lastLayer.forward(self.predict(x), t)

    def gradient(self, x, t):
        self.loss(x, t)
        dout = self.lastLayer.backward(1)
        for layer in reversed(list(self.layers.values())):
            dout = layer.backward(dout)
        return {"W1": self.layers["Affine1"].dW, "b1": self.layers["Affine1"].db,
                "W2": self.layers["Affine2"].dW, "b2": self.layers["Affine2"].db}


def test_profile_accepts_the_books_ch05_two_layer_net():
    from fastdl.optim import SGD

    np.random.seed(0)
    net = _BookTwoLayerNet(784, 50, 10)
    x = np.random.rand(20, 784)
    t = np.random.randint(0, 10, 20)
    before = net.params["W1"].copy()
    report = profile(net, x, t, optimizer=SGD(lr=0.1), repeat=2, warmup=1)
    names = [r.name for r in report.rows]
    assert names[:3] == ["Affine1", "Relu1", "Affine2"]
    assert names[3] == "loss", names  # the book's lastLayer, timed as the loss row
    assert not np.array_equal(net.params["W1"], before)  # the optimizer ran real steps on the book's params
