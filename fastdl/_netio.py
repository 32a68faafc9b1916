"""Saving and loading :mod:`fastdl.nets` networks without pickle (``net.save`` / ``fastdl.nets.load``).

File layout (an ``.npz``; see :mod:`fastdl._archive`)::

    __net__                              JSON: format, version, class, config (the constructor's
                                         arguments), per-layer state (batch-norm momentum, dropout
                                         Generator state), and the manifest of the arrays below
    net.param.<key>                      every entry of ``params`` (W1, b1, gamma1, beta1, ...)
    net.layer.<BatchNormK>.running_mean  batch-norm running statistics (when the layer has them)
    net.layer.<BatchNormK>.running_var
    net.rng.<n>                          array parts of a dropout Generator's state (MT19937's key)

A trainer checkpoint holds the same entries beside its own, so :func:`load` reads both kinds.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from . import _archive

FORMAT = "fastdl.net"
VERSION = 1
DOC = "__net__"
_PARAM = "net.param."
_LAYER = "net.layer."
_STATS = ("running_mean", "running_var")
#: bit generators a saved dropout ``rng`` may name (built by name; nothing else is looked up)
_BIT_GENERATORS = {name: getattr(np.random, name) for name in ("PCG64", "PCG64DXSM", "MT19937", "Philox", "SFC64")}
_EXTEND_ONLY = ("use_dropout", "dropout_ratio", "use_batchnorm", "use_alpha_dropout")


def config(net) -> dict:
    """The constructor arguments of ``net`` as JSON-ready values."""
    ref = net._backend_ref()
    if isinstance(ref, tuple):
        backend = {"module": ref[1]}
    elif isinstance(ref, str):
        backend = ref
    else:
        raise TypeError(f"{type(net).__name__}.save: backend must be 'fastdl', 'reference' or a module "
                        f"to be saved; got {type(ref).__name__}")
    init = net.weight_init_std
    cfg = {
        "class": net._saved_class,
        "input_size": int(net.input_size),
        "hidden_size_list": [int(h) for h in net.hidden_size_list],
        "output_size": int(net.output_size),
        "activation": net.activation,
        "weight_init_std": init if isinstance(init, str) else float(init),
        "weight_decay_lambda": float(net.weight_decay_lambda),
        "use_dropout": bool(net.use_dropout),
        "dropout_ratio": float(net.dropout_ration),
        "use_batchnorm": bool(net.use_batchnorm),
        "dtype": net.dtype.name,
        "backend": backend,
        "loss": getattr(net, "loss_name", "cross_entropy"),
        "l1_lambda": float(getattr(net, "l1_lambda", 0.0)),
    }
    if getattr(net, "_frozen", ()):
        cfg["frozen"] = list(net._frozen)  # (fastdl.transfer; absent when nothing is frozen)
    if getattr(net, "use_alpha_dropout", False):  # (absent otherwise: files of plain nets stay as they were)
        cfg["use_alpha_dropout"] = True
    return cfg


def state(net) -> tuple[dict, dict]:
    """``(description, arrays)`` of ``net``: its config, parameters and layer state (copies)."""
    arrays = {f"{_PARAM}{k}": np.array(v, copy=True) for k, v in net.params.items()}
    layers = {}
    for name, layer in net.layers.items():
        entry = {}
        if hasattr(layer, "running_mean"):
            entry["momentum"] = float(layer.momentum)
            for attr in _STATS:
                value = getattr(layer, attr, None)
                if value is not None:
                    arrays[f"{_LAYER}{name}.{attr}"] = np.array(value, copy=True)
        rng = getattr(layer, "rng", None)
        if isinstance(rng, np.random.Generator):
            entry["rng"] = _archive.pack_tree(rng.bit_generator.state, "net.rng", arrays)
        if entry:
            layers[name] = entry
    doc = {"format": FORMAT, "version": VERSION, "config": config(net), "layers": layers,
           "params": list(net.params)}
    return doc, arrays


def save(net, path: str | os.PathLike) -> Path:
    """Write ``net`` to ``path`` atomically (see :meth:`fastdl.nets.MultiLayerNetExtend.save`)."""
    doc, arrays = state(net)
    return _archive.write(path, {DOC: doc}, arrays)


def build(doc: dict, arrays: dict, path, classes: dict, backend=None):
    """A new network from a verified archive's ``__net__`` description and arrays.

    Everything is checked before the network is returned: the config (by the constructor), the
    names, shapes and dtypes of the parameters and running statistics against the network the config
    builds, and any dropout Generator state. NumPy's global random state is left as it was (the
    constructor's weight draws are undone). Raises :class:`fastdl._archive.CheckpointError` naming
    ``path`` and the first mismatch. ``classes`` maps the saved class names to the classes
    (:data:`fastdl.nets.NET_CLASSES`: this module does not import :mod:`fastdl.nets`).
    """
    def bad(reason: str):
        raise _archive.CheckpointError(f"{path}: {reason}")

    if doc.get("format") != FORMAT or doc.get("version") != VERSION:
        bad(f"must be a {FORMAT} file of version {VERSION}; got format {doc.get('format')!r} "
            f"version {doc.get('version')!r}")
    cfg = doc.get("config")
    if not isinstance(cfg, dict) or cfg.get("class") not in ("MultiLayerNet", "MultiLayerNetExtend"):
        bad("config must name the class MultiLayerNet or MultiLayerNetExtend")
    kwargs = {k: v for k, v in cfg.items() if k not in ("class", "frozen")}
    saved_backend = kwargs.pop("backend", None)
    if backend is None:
        if isinstance(saved_backend, dict):
            bad(f"was saved with the layer module {saved_backend.get('module')!r}: pass backend= to load it "
                "(modules named in a file are not imported)")
        backend = saved_backend
    kwargs["backend"] = backend
    cls = classes[cfg["class"]]
    if cfg["class"] == "MultiLayerNet":
        for key in _EXTEND_ONLY:
            kwargs.pop(key, None)
    random_state = np.random.get_state()
    try:
        net = cls(**kwargs)
    except (TypeError, ValueError) as exc:
        bad(f"config does not build a network ({exc})")
    finally:
        np.random.set_state(random_state)
    frozen = cfg.get("frozen", [])
    if not isinstance(frozen, list) or not all(isinstance(k, str) and k in net.params for k in frozen):
        bad(f"config 'frozen' must be a list of params keys {list(net.params)}; got {frozen!r}")
    try:
        net.freeze(frozen)
    except (TypeError, ValueError) as exc:
        bad(f"config 'frozen' does not freeze this network ({exc})")
    saved = doc.get("params")
    if saved != list(net.params):
        bad(f"params must be {list(net.params)} for this config; got {saved}")
    todo = []
    for key, p in net.params.items():
        todo.append((net.params, key, _expect(arrays, f"{_PARAM}{key}", p.shape, p.dtype, bad)))
    layers = doc.get("layers", {})
    if not isinstance(layers, dict):
        bad("layers must be a dict")
    for name, entry in layers.items():
        layer = net.layers.get(name)
        if layer is None or not isinstance(entry, dict):
            bad(f"layers: {name!r} is not a layer of this network")
        if "momentum" in entry:
            m = entry["momentum"]
            if not hasattr(layer, "running_mean") or isinstance(m, bool) or not isinstance(m, int | float) \
                    or not 0 <= m <= 1:
                bad(f"layers: {name}.momentum must be a number in [0, 1] of a batch-norm layer; got {m!r}")
            todo.append((layer, "momentum", m))
            width = layer.gamma.shape
            for attr in _STATS:
                key = f"{_LAYER}{name}.{attr}"
                if key in arrays:
                    todo.append((layer, attr, _expect(arrays, key, width, net.dtype, bad).copy()))
        if "rng" in entry:
            todo.append((layer, "rng", _generator(entry["rng"], arrays, f"layers: {name}.rng", bad)))
    known = {f"{_PARAM}{k}" for k in net.params} | {f"{_LAYER}{n}.{a}" for n in layers for a in _STATS}
    stray = [k for k in arrays if k.startswith("net.") and not k.startswith("net.rng.") and k not in known]
    if stray:
        bad(f"holds arrays this network has no place for: {', '.join(sorted(stray)[:5])}")
    for owner, key, value in todo:  # everything checked: assign
        if owner is net.params:
            np.copyto(owner[key], value)
        else:
            setattr(owner, key, value)
    return net


def _expect(arrays: dict, key: str, shape, dtype, bad) -> np.ndarray:
    a = arrays.get(key)
    if a is None:
        bad(f"{key} is missing")
    if a.shape != tuple(shape) or a.dtype != dtype:
        bad(f"{key} must have shape {tuple(shape)} and dtype {np.dtype(dtype)}; got shape {a.shape} "
            f"and dtype {a.dtype}")
    return a


def _generator(packed, arrays: dict, what: str, bad) -> np.random.Generator:
    """A Generator in the saved state (only the bit generators of ``_BIT_GENERATORS``)."""
    try:
        st = _archive.unpack_tree(packed, arrays)
        bit = _BIT_GENERATORS[st["bit_generator"]]()
        bit.state = st
    except (KeyError, TypeError, ValueError) as exc:
        bad(f"{what} must be the state of one of {tuple(_BIT_GENERATORS)} ({type(exc).__name__}: {exc})")
    return np.random.Generator(bit)


def load(path: str | os.PathLike, classes: dict, backend=None):
    """Read a network saved by ``net.save`` (or the network of a trainer checkpoint)."""
    docs, arrays = _archive.read(path, (DOC,))
    return build(docs[DOC], arrays, Path(path), classes, backend)
