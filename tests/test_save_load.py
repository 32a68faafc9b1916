"""net.save / fastdl.nets.load and optimizer.state_dict / load_state_dict: round trips and rejections."""

from __future__ import annotations

import io
import json
import zipfile

import numpy as np
import pytest

import fastdl
from fastdl import _archive, datasets, nets, optim

DTYPES = (np.float32, np.float64)


@pytest.fixture(scope="module")
def digits():
    return datasets.load_digits()


def _trained(digits, dtype, *, steps=15, backend=None, cls=nets.MultiLayerNetExtend, **kw):
    (x, t), _ = digits
    np.random.seed(4)
    net = cls(64, [30, 20], 10, dtype=dtype, backend=backend, **kw)
    opt = optim.Adam(lr=0.01)
    for _ in range(steps):
        mask = np.random.choice(x.shape[0], 40)
        opt.update(net.params, net.gradient(x[mask], t[mask]))
    return net


NET_CASES = [
    ("plain", nets.MultiLayerNet, {}),
    ("batchnorm+dropout", nets.MultiLayerNetExtend, {"use_batchnorm": True, "use_dropout": True,
                                                     "dropout_ratio": 0.2, "weight_decay_lambda": 0.01}),
    ("sigmoid+batchnorm", nets.MultiLayerNetExtend, {"use_batchnorm": True, "activation": "sigmoid",
                                                     "weight_init_std": 0.1}),
]


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("backend", ["fastdl", "reference"])
@pytest.mark.parametrize(("case", "cls", "kw"), NET_CASES, ids=[c[0] for c in NET_CASES])
def test_round_trip_predicts_bit_for_bit(digits, tmp_path, dtype, backend, case, cls, kw):
    _, (x_test, _) = digits
    net = _trained(digits, dtype, backend=backend, cls=cls, **kw)
    path = net.save(tmp_path / "sub" / "net.npz")
    assert path == tmp_path / "sub" / "net.npz"
    before = np.random.get_state()
    loaded = nets.load(path)
    after = np.random.get_state()
    assert before[2:] == after[2:] and np.array_equal(before[1], after[1])  # loading draws nothing
    assert type(loaded) is cls and repr(loaded) == repr(net)
    assert list(loaded.params) == list(net.params)
    for key, value in net.params.items():
        assert loaded.params[key].dtype == np.dtype(dtype)
        np.testing.assert_array_equal(loaded.params[key], value)
    for name, layer in net.layers.items():
        if hasattr(layer, "running_mean"):
            np.testing.assert_array_equal(loaded.layers[name].running_mean, layer.running_mean)
            np.testing.assert_array_equal(loaded.layers[name].running_var, layer.running_var)
    np.testing.assert_array_equal(loaded.predict(x_test), net.predict(x_test))
    # a plain NumPy reader needs no pickle
    with np.load(path, allow_pickle=False) as z:
        doc = json.loads(str(z["__net__"][()]))
        np.testing.assert_array_equal(z["net.param.W1"], net.params["W1"])
    assert doc["config"]["dtype"] == np.dtype(dtype).name and doc["config"]["backend"] == backend


@pytest.mark.parametrize("dtype", DTYPES)
def test_a_loaded_net_trains_on_exactly_like_the_original(digits, tmp_path, dtype):
    """Same seed, same batch: the loaded net's gradients (fused step, dropout on the layer path) are the original's."""
    (x, t), _ = digits
    for kw in ({"use_batchnorm": True}, {"use_batchnorm": True, "use_dropout": True, "dropout_ratio": 0.3}):
        net = _trained(digits, dtype, **kw)
        loaded = nets.load(net.save(tmp_path / "n.npz"))
        grads = []
        for candidate in (net, loaded):
            np.random.seed(9)
            g = candidate.gradient(x[:50], t[:50])
            grads.append({k: v.copy() for k, v in g.items()})
        for key in grads[0]:
            np.testing.assert_array_equal(grads[1][key], grads[0][key])
        for name, layer in net.layers.items():
            if hasattr(layer, "running_mean"):  # the training forward moved both alike
                np.testing.assert_array_equal(loaded.layers[name].running_mean, layer.running_mean)


def test_dropout_generator_state_is_kept(digits, tmp_path):
    net = _trained(digits, np.float64, use_dropout=True, steps=0)
    for i, key in enumerate(("Dropout1", "Dropout2")):
        net.layers[key].rng = np.random.Generator(np.random.MT19937(i) if i else np.random.PCG64(7))
        net.layers[key].rng.random(5)
    loaded = nets.load(net.save(tmp_path / "n.npz"))
    for key in ("Dropout1", "Dropout2"):
        a, b = net.layers[key].rng, loaded.layers[key].rng
        assert type(b.bit_generator) is type(a.bit_generator)
        np.testing.assert_array_equal(b.random(20), a.random(20))


def test_saving_replaces_the_file_whole_and_a_failed_write_leaves_the_old_one(digits, tmp_path, monkeypatch):
    path = tmp_path / "n.npz"
    first = _trained(digits, np.float64, steps=1)
    first.save(path)
    good = path.read_bytes()

    def broken_savez(fh, **arrays):
        fh.write(b"PK partial data")
        raise OSError("disk full")

    monkeypatch.setattr(np, "savez", broken_savez)
    with pytest.raises(OSError, match="disk full"):
        _trained(digits, np.float64, steps=3).save(path)
    monkeypatch.undo()
    assert path.read_bytes() == good
    assert sorted(p.name for p in tmp_path.iterdir()) == ["n.npz"]  # no temporary file left


def _rewrite(path, out, edit):
    """Copy an archive, letting ``edit(docs, arrays)`` change it (the manifest is rebuilt)."""
    docs, arrays = _archive.read(path, ())
    edit(docs, arrays)
    for doc in docs.values():
        doc.pop("arrays")
    _archive.write(out, docs, arrays)
    return out


@pytest.mark.parametrize(("edit", "message"), [
    (lambda d, a: a.__setitem__("net.param.W2", np.zeros((30, 21))),
     r"net.param.W2 must have shape \(30, 20\) and dtype float64; got shape \(30, 21\) and dtype float64"),
    (lambda d, a: a.__setitem__("net.param.b1", np.zeros(30, np.float32)),
     r"net.param.b1 must have shape \(30,\) and dtype float64; got shape \(30,\) and dtype float32"),
    (lambda d, a: a.__setitem__("net.layer.BatchNorm2.running_var", np.ones(3)),
     r"net.layer.BatchNorm2.running_var must have shape \(20,\) and dtype float64; got shape \(3,\)"),
    (lambda d, a: a.pop("net.param.gamma1"), r"net.param.gamma1 is missing"),
    (lambda d, a: a.__setitem__("net.param.W9", np.zeros(2)), r"holds arrays this network has no place for: "
                                                                r"net.param.W9"),
    (lambda d, a: d["__net__"]["config"].__setitem__("hidden_size_list", [30, 21]),
     r"net.param.W2 must have shape \(30, 21\)"),
    (lambda d, a: d["__net__"]["config"].__setitem__("activation", "softsign"),
     r"config does not build a network .*activation must be one of \('relu', 'sigmoid'"),
    (lambda d, a: d["__net__"]["config"].__setitem__("backend", {"module": "os"}),
     r"saved with the layer module 'os': pass backend="),
    (lambda d, a: d["__net__"].__setitem__("version", 99), r"must be a fastdl.net file of version 1"),
    (lambda d, a: d["__net__"]["layers"]["BatchNorm1"].__setitem__("momentum", 3.0),
     r"BatchNorm1.momentum must be a number in \[0, 1\]"),
])
def test_load_names_the_file_and_the_first_mismatch(digits, tmp_path, edit, message):
    path = _trained(digits, np.float64, use_batchnorm=True, steps=2).save(tmp_path / "good.npz")
    bad = _rewrite(path, tmp_path / "bad.npz", edit)
    with pytest.raises(fastdl.CheckpointError, match=message) as info:
        nets.load(bad)
    assert str(info.value).startswith(str(bad))


def test_damaged_files_are_named(digits, tmp_path):
    path = _trained(digits, np.float64, use_batchnorm=True, steps=2).save(tmp_path / "net.npz")
    data = path.read_bytes()
    cases = {
        "truncated.npz": data[: len(data) // 2],
        "empty.npz": b"",
        "text.npz": b"not a zip file at all",
    }
    with zipfile.ZipFile(io.BytesIO(data)) as zf:  # one byte flipped inside W1's data
        info = zf.getinfo("net.param.W1.npy")
    flipped = bytearray(data)
    flipped[info.header_offset + 30 + len(info.filename) + 200] ^= 0x40
    cases["flipped.npz"] = bytes(flipped)
    for name, content in cases.items():
        (tmp_path / name).write_bytes(content)
        with pytest.raises(fastdl.CheckpointError) as err:
            nets.load(tmp_path / name)
        assert str(tmp_path / name) in str(err.value), name
    assert "member 'net.param.W1.npy' is damaged (its CRC-32" in str(err.value)
    with pytest.raises(fastdl.CheckpointError, match="cannot be read"):
        nets.load(tmp_path / "missing.npz")


def test_save_refuses_what_it_cannot_describe(tmp_path):
    from fastdl import layers

    class Layers:  # a layer "backend" that is neither a module nor a known name
        Affine, Relu, Sigmoid = layers.Affine, layers.Relu, layers.Sigmoid
        BatchNormalization, Dropout, SoftmaxWithLoss = layers.BatchNormalization, layers.Dropout, layers.SoftmaxWithLoss

    net = nets.MultiLayerNet(4, [3], 2, backend=Layers)
    with pytest.raises(TypeError, match="save: backend must be 'fastdl', 'reference' or a module"):
        net.save(tmp_path / "n.npz")
    assert not (tmp_path / "n.npz").exists()
    module_net = nets.MultiLayerNet(4, [3], 2, backend=layers)  # the fastdl module itself: saved by name
    assert nets.load(module_net.save(tmp_path / "m.npz")).backend is layers


# -- optimizers ------------------------------------------------------------------------------------------
OPT_CASES = [
    ("sgd", {"lr": 0.05}),
    ("momentum", {"lr": 0.05, "momentum": 0.8}),
    ("nesterov", {"lr": 0.05, "momentum": 0.85}),
    ("adagrad", {"lr": 0.05, "eps": 1e-6}),
    ("rmsprop", {"lr": 0.01, "decay_rate": 0.95}),
    ("adam", {"lr": 0.01, "beta1": 0.85, "beta2": 0.99}),
]


def _grad_source(kind, dtype, digits):
    """(params, grads(i)) for 100 steps: a fastdl net's flat whole-model buffers, or a plain dict."""
    if kind == "net":
        (x, t), _ = digits
        np.random.seed(1)
        net = nets.MultiLayerNetExtend(64, [20, 20], 10, use_batchnorm=True, dtype=dtype)
        masks = [np.random.choice(x.shape[0], 30) for _ in range(100)]
        return net.params, lambda i: net.gradient(x[masks[i]], t[masks[i]])
    rng = np.random.default_rng(2)
    params = {"W": rng.standard_normal((7, 5)).astype(dtype), "b": rng.standard_normal(5).astype(dtype),
              "F": np.asfortranarray(rng.standard_normal((3, 4))).astype(dtype)}
    grads = [{k: rng.standard_normal(v.shape).astype(dtype) for k, v in params.items()} for _ in range(100)]
    return params, lambda i: grads[i]


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("kind", ["net", "dict"])
@pytest.mark.parametrize(("name", "kw"), OPT_CASES, ids=[c[0] for c in OPT_CASES])
def test_state_dict_continues_bit_for_bit(digits, dtype, kind, name, kw):
    """100 steps == 50 steps, state_dict, a new optimizer (and one that had stepped) loads it, 50 more."""
    params, grads = _grad_source(kind, dtype, digits)
    start = {k: v.copy() for k, v in params.items()}
    straight = optim.get_optimizer(name, **kw)
    for i in range(100):
        straight.update(params, grads(i))
    expected = {k: v.copy() for k, v in params.items()}
    final_state = straight.state_dict()

    for target in ("fresh", "stepped"):
        for k in params:
            params[k][...] = start[k]
        first = optim.get_optimizer(name, **kw)
        for i in range(50):
            first.update(params, grads(i))
        saved = first.state_dict()
        mid = {k: v.copy() for k, v in params.items()}
        if target == "fresh":
            second = optim.get_optimizer(name, lr=0.5)  # other hyper-parameters: replaced by the saved ones
        else:  # an optimizer that has already stepped these very arrays (state in flat buffers)
            second = first
            for i in range(7):
                second.update(params, grads(99 - i))
            for k in params:
                params[k][...] = mid[k]
            before = {n: {k: id(v) for k, v in (getattr(second, n) or {}).items()} for n in second._state_names}
        second.load_state_dict(saved)
        if target == "stepped":  # values were copied into the existing arrays
            assert before == {n: {k: id(v) for k, v in getattr(second, n).items()} for n in second._state_names}
        for i in range(50, 100):
            second.update(params, grads(i))
        for k in params:
            np.testing.assert_array_equal(params[k], expected[k], err_msg=f"{target} {k}")
        again = second.state_dict()
        assert again["hyper"] == final_state["hyper"] and again["counters"] == final_state["counters"]
        for n, store in final_state["state"].items():
            for k, v in (store or {}).items():
                np.testing.assert_array_equal(again["state"][n][k], v)


@pytest.mark.parametrize(("name", "kw"), OPT_CASES, ids=[c[0] for c in OPT_CASES])
def test_state_dict_holds_copies(name, kw):
    params = {"W": np.ones((3, 2)), "b": np.ones(2)}
    opt = optim.get_optimizer(name, **kw)
    empty = opt.state_dict()
    assert empty["class"] == type(opt).__name__ and list(empty["hyper"]) == list(opt._hyper_names)
    assert {k: empty["hyper"][k] for k in kw} == kw
    assert all(s is None for s in empty["state"].values())
    assert empty["counters"] == ({"iter": 0} if name == "adam" else {})
    opt.update(params, {"W": np.full((3, 2), 0.5), "b": np.full(2, 0.5)})
    sd = opt.state_dict()
    for n, store in sd["state"].items():
        for k, v in store.items():
            assert not np.shares_memory(v, getattr(opt, n)[k])
    json.dumps({"hyper": sd["hyper"], "counters": sd["counters"]})  # plain numbers


def _bad_state_dicts():
    good = {"class": "Adam", "hyper": {"lr": 0.01, "beta1": 0.9, "beta2": 0.999, "eps": 1e-7},
            "counters": {"iter": 3}, "state": {"m": {"W": np.ones((2, 2))}, "v": {"W": np.ones((2, 2))}}}

    def edit(path, value):
        d = json.loads(json.dumps({k: v for k, v in good.items() if k != "state"}))
        d["state"] = {n: dict(s) for n, s in good["state"].items()}
        target = d
        for p in path[:-1]:
            target = target[p]
        if value is KeyError:
            del target[path[-1]]
        else:
            target[path[-1]] = value
        return d

    return good, [
        ("not a dict", [1, 2], TypeError, "state_dict must be a dict from state_dict"),
        ("other class", edit(["class"], "SGD"), ValueError, r"state_dict\['class'\] must be 'Adam'; got 'SGD'"),
        ("missing part", edit(["counters"], KeyError), ValueError, "keys 'hyper', 'counters', 'state'"),
        ("missing hyper", edit(["hyper", "beta2"], KeyError), ValueError, r"state_dict\['hyper'\] must be a dict "
                                                                          r"with the keys \['lr', 'beta1'"),
        ("bad lr", edit(["hyper", "lr"], -1.0), ValueError, r"hyper\['lr'\] must be a finite number > 0"),
        ("bad beta", edit(["hyper", "beta1"], 1.0), ValueError, r"hyper\['beta1'\] must be a finite number"),
        ("negative iter", edit(["counters", "iter"], -1), ValueError, r"counters\['iter'\] must be an integer"),
        ("bool iter", edit(["counters", "iter"], True), TypeError, r"counters\['iter'\] must be an integer"),
        ("float iter", edit(["counters", "iter"], 2.0), TypeError, r"counters\['iter'\] must be an integer"),
        ("huge iter", edit(["counters", "iter"], 2**63), ValueError, r"counters\['iter'\] must be an integer"),
        ("int state", edit(["state", "m", "W"], np.ones((2, 2), int)), TypeError,
         r"state\['m'\]\['W'\] must be a float32 or float64 array"),
        ("list state", edit(["state", "m", "W"], [[1.0]]), TypeError, r"state\['m'\]\['W'\] must be a float32"),
        ("m and v differ", edit(["state", "v", "W"], np.ones((2, 3))), ValueError,
         r"state\['v'\]\['W'\] must be of shape \(2, 2\) and dtype float64 like state\['m'\]\['W'\]; got shape"),
        ("m and v dtypes", edit(["state", "v", "W"], np.ones((2, 2), np.float32)), ValueError,
         r"state\['v'\]\['W'\] must be of shape \(2, 2\) and dtype float64 like"),
        ("m and v keys", edit(["state", "v"], {"X": np.ones((2, 2))}), ValueError,
         r"state\['v'\] must be a dict with the keys of state\['m'\], \['W'\]; got keys \['X'\]"),
        ("half None", edit(["state", "v"], None), ValueError, "state must be all None or all dicts"),
        ("extra state", edit(["state", "h"], None), ValueError, r"state_dict\['state'\] must be a dict with the keys"),
    ]


GOOD_STATE, BAD_STATES = _bad_state_dicts()


@pytest.mark.parametrize(("case", "bad", "exc", "message"), BAD_STATES, ids=[c[0] for c in BAD_STATES])
@pytest.mark.parametrize("stepped", [False, True])
def test_load_state_dict_rejects_and_changes_nothing(case, bad, exc, message, stepped):
    opt = optim.Adam(lr=0.02)
    params = {"W": np.ones((2, 2))}
    if stepped:
        for _ in range(3):
            opt.update(params, {"W": np.full((2, 2), 0.25)})
    before = opt.state_dict()
    arrays = {n: getattr(opt, n) and {k: v for k, v in getattr(opt, n).items()} for n in ("m", "v")}
    with pytest.raises(exc, match=message):
        opt.load_state_dict(bad)
    after = opt.state_dict()
    assert after["hyper"] == before["hyper"] and after["counters"] == before["counters"]
    for n in ("m", "v"):
        assert (getattr(opt, n) is None) == (arrays[n] is None)
        for k, v in (arrays[n] or {}).items():
            assert getattr(opt, n)[k] is v
            np.testing.assert_array_equal(v, before["state"][n][k])
    opt.load_state_dict(GOOD_STATE)  # and the good one is accepted
    assert opt.iter == 3 and opt.lr == 0.01


def test_load_state_dict_replaces_a_layout_that_differs():
    opt = optim.Momentum(lr=0.1)
    params = {"W": np.ones((2, 2)), "b": np.ones(2)}
    opt.update(params, {"W": np.ones((2, 2)), "b": np.ones(2)})
    old = opt.v
    opt.load_state_dict({"hyper": {"lr": 0.1, "momentum": 0.9}, "counters": {},
                         "state": {"v": {"W": np.full((2, 2), 3.0)}}})
    assert opt.v is not old and list(opt.v) == ["W"]
    with pytest.raises(ValueError, match=r"grads must be a dict with every key of params|self.v"):
        opt.update({"W": np.ones((2, 3))}, {"W": np.ones((2, 3))})  # the next update checks shapes
    opt.update({"W": params["W"]}, {"W": np.ones((2, 2))})
    np.testing.assert_array_equal(opt.v["W"], 0.9 * 3.0 - 0.1 * np.ones((2, 2)))
