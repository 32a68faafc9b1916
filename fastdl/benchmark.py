"""Benchmarks: the op matrix shared by ``bench/`` and ``fastdl bench``, machine peaks, tables, plots, warm-up.

One definition of every benchmarked piece of work lives here (:func:`make_case`), so the
pytest-benchmark suites in ``bench/`` and the ``fastdl bench`` command time exactly the same calls.

Ops and sizes
    Layer ops (``affine-forward`` ... ``softmax-loss-backward``) take an input of shape ``N x D``:
    ``100x100`` (small), ``256x1024`` (medium), ``1024x4096`` (large). Affine maps ``D`` to
    ``H = 100, 1024, 2048`` features, so its weight holds 10K, 1M and 8M parameters. Optimizer ops
    (``sgd-update`` ... ``adam-update``) update a ``{'W', 'b'}`` dict whose ``W`` holds 10K, 1M or 8M
    values. ``train-step`` and ``train-step-bn`` are ``gradient()`` + ``update()`` of the book's
    784-100x5-10 network (batch 100, Adam) without and with batch norm.

Implementations
    ``reference`` (:mod:`fastdl.reference`, the book's NumPy), ``fastdl`` (:mod:`fastdl.layers`,
    :mod:`fastdl.optim`, :mod:`fastdl.nets`) and ``torch`` (PyTorch CPU doing the same work: layer
    forwards with autograd on, backwards through ``torch.autograd.grad``, ``torch.optim`` with
    ``fused=True`` where the CPU supports it, else ``foreach=True``; the whole step as an
    ``nn.Sequential`` with ``CrossEntropyLoss``). torch's Adam/AdaGrad/RMSprop place eps
    differently from the book: compare with torch for speed, with the reference for numbers.

Work and peaks
    Every case carries its work: floating-point operations for GEMM-bound ops (GFLOP/s) and the
    compulsory memory traffic for the rest (GB/s; each array read or written once). The peaks are
    measured on the machine: a parallel triad ``a = b + s*c`` over arrays 4x the size of a 32 MiB
    last-level cache (best of several runs; 32 bytes per element, i.e. STREAM's 24 plus the
    write-allocate read of ``a``, because the traffic models here count writes to arrays that are
    also read) and a
    2048x2048 GEMM per dtype. Small cases fit in cache, so their fraction of the streaming peak can
    exceed 1.

Timing
    Each case is called ``warmup`` times first (compilation never lands in the numbers), then timed
    in samples of enough calls to last ~2 ms; the median per-call time is reported, and all ratios
    come from the same run.
"""

from __future__ import annotations

import argparse
import importlib
import json
import math
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

__all__ = [
    "IMPLS",
    "LAYER_OPS",
    "LAYER_SIZES",
    "OPTIMIZER_OPS",
    "PARAM_SIZES",
    "STEP_OPS",
    "Case",
    "Unavailable",
    "default_matrix",
    "blas_probe",
    "TARGETS",
    "format_markdown",
    "format_table",
    "format_targets",
    "load_benchmark_json",
    "make_case",
    "make_interleave_case",
    "measure",
    "measure_compile_cost",
    "measure_group",
    "measure_peaks",
    "measure_startup",
    "measure_step_profile",
    "plot_results",
    "register_cli",
    "RemotePeer",
    "run_matrix",
    "target_rows",
    "warmup",
]

IMPLS = ("reference", "fastdl", "torch")
DTYPES = ("float32", "float64")

#: layer-op size label -> (N, D, H); H is affine's output width (weights of 10K, 1M, 8M values)
LAYER_SIZES = {"100x100": (100, 100, 100), "256x1024": (256, 1024, 1024), "1024x4096": (1024, 4096, 2048)}
#: optimizer size label -> shape of W
PARAM_SIZES = {"10K": (100, 100), "1M": (1024, 1024), "8M": (2048, 4096)}
STEP_SIZES = {"784-100x5-10-b100": (100, 784, (100,) * 5, 10)}
#: sizes used only by the interleave loops: 1024x1024 activations (1M values) reach the parallel threshold
_INTERLEAVE_ONLY_SIZES = {"1024x1024": (1024, 1024, 1024)}

LAYER_OPS = (
    "affine-forward", "affine-backward", "batchnorm-forward", "batchnorm-backward",
    "relu-forward", "relu-backward", "sigmoid-forward", "sigmoid-backward",
    "dropout-forward", "dropout-backward", "softmax-loss-forward", "softmax-loss-backward",
    "batchnorm-fwd-bwd",
)
#: optimizer op -> (class name in fastdl.reference / fastdl.optim, bytes moved per element / itemsize)
OPTIMIZER_OPS = {
    "sgd-update": ("SGD", 3), "momentum-update": ("Momentum", 5), "nesterov-update": ("Nesterov", 5),
    "adagrad-update": ("AdaGrad", 5), "rmsprop-update": ("RMSprop", 5), "adam-update": ("Adam", 7),
}
STEP_OPS = ("train-step", "train-step-bn")

#: arrays of itemsize moved per element (compulsory traffic) for the memory-bound layer ops;
#: dropout's mask adds one byte per element on top.
_LAYER_TRAFFIC = {
    "batchnorm-forward": 2, "batchnorm-backward": 3, "batchnorm-fwd-bwd": 5, "relu-forward": 2, "relu-backward": 3,
    "sigmoid-forward": 2, "sigmoid-backward": 3, "dropout-forward": 2, "dropout-backward": 2,
    "softmax-loss-forward": 2, "softmax-loss-backward": 2,
}
LLC_BYTES = 32 * 2**20


class Unavailable(RuntimeError):
    """An implementation cannot run here (torch not installed, a fastdl module missing)."""


@dataclass
class Case:
    """One benchmarked call: ``fn()`` does the work once.

    Attributes
    ----------
    op, size, dtype, impl : str
        What is timed; ``group`` (``"<op>-<size>-<dtype>"``) puts implementations side by side.
    fn : callable
        Zero-argument callable doing the work once (state prepared by :func:`make_case`).
    work : float
        Bytes moved (``unit == 'GB/s'``) or floating-point operations (``unit == 'GFLOP/s'``) per call.
    unit : str
        ``'GB/s'`` or ``'GFLOP/s'``.
    state : dict
        Arrays ``fn`` works on, for inspection (optimizer cases: ``params`` and ``grads``).
    """

    op: str
    size: str
    dtype: str
    impl: str
    fn: Callable[[], object]
    work: float
    unit: str
    state: dict = field(default_factory=dict)

    @property
    def group(self) -> str:
        return f"{self.op}-{self.size}-{self.dtype}"

    def meta(self) -> dict:
        """Everything but ``fn`` (stored beside each timing)."""
        return {"op": self.op, "size": self.size, "dtype": self.dtype, "impl": self.impl,
                "group": self.group, "work": self.work, "unit": self.unit}


# ----------------------------------------------------------------------------------------------
# case construction
# ----------------------------------------------------------------------------------------------

def _numpy_modules(impl: str):
    """(layers module, optim module) for ``'reference'`` or ``'fastdl'``."""
    if impl == "reference":
        ref = importlib.import_module("fastdl.reference")
        return ref, ref
    if impl == "fastdl":
        try:
            return importlib.import_module("fastdl.layers"), importlib.import_module("fastdl.optim")
        except ImportError as exc:  # pragma: no cover - only while the package is incomplete
            raise Unavailable(f"fastdl layers/optim not importable: {exc}") from exc
    raise ValueError(f"make_case: impl must be one of {IMPLS}; got {impl!r}")


def _torch():
    try:
        import torch
    except ImportError as exc:
        raise Unavailable("torch is not installed") from exc
    return torch


def _torch_dtype(torch, dtype: str):
    return {"float32": torch.float32, "float64": torch.float64}[dtype]


def _layer_data(size: str, dtype: str, seed: int):
    n, d, h = LAYER_SIZES[size] if size in LAYER_SIZES else _INTERLEAVE_ONLY_SIZES[size]
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((n, d)).astype(dtype)
    return rng, n, d, h, x


def _numpy_layer_case(op: str, size: str, dtype: str, impl: str, seed: int) -> Callable[[], object]:
    layers, _ = _numpy_modules(impl)
    rng, n, d, h, x = _layer_data(size, dtype, seed)
    if op == "batchnorm-fwd-bwd":  # a training step's two layer calls, as issue 5 states the target
        layer = layers.BatchNormalization(np.ones(d, dtype=dtype), np.zeros(d, dtype=dtype))
        dout = rng.standard_normal((n, d)).astype(dtype)
        return lambda: (layer.forward(x, train_flg=True), layer.backward(dout))
    kind, direction = op.rsplit("-", 1)
    if kind == "affine":
        W = (0.01 * rng.standard_normal((d, h))).astype(dtype)
        layer = layers.Affine(W, np.zeros(h, dtype=dtype))
        forward = lambda: layer.forward(x)  # noqa: E731
        dout = rng.standard_normal((n, h)).astype(dtype)
    elif kind == "batchnorm":
        layer = layers.BatchNormalization(np.ones(d, dtype=dtype), np.zeros(d, dtype=dtype))
        forward = lambda: layer.forward(x, train_flg=True)  # noqa: E731
    elif kind == "dropout":
        layer = layers.Dropout(0.5)
        forward = lambda: layer.forward(x, train_flg=True)  # noqa: E731
    elif kind == "softmax-loss":
        layer = layers.SoftmaxWithLoss()
        t = rng.integers(0, d, n)
        forward = lambda: layer.forward(x, t)  # noqa: E731
    else:
        layer = {"relu": layers.Relu, "sigmoid": layers.Sigmoid}[kind]()
        forward = lambda: layer.forward(x)  # noqa: E731
    if direction == "forward":
        return forward
    forward()
    if kind == "softmax-loss":
        return lambda: layer.backward(1)
    if kind != "affine":
        dout = rng.standard_normal((n, d)).astype(dtype)
    return lambda: layer.backward(dout)


def _torch_layer_case(op: str, size: str, dtype: str, seed: int) -> Callable[[], object]:
    torch = _torch()
    import torch.nn.functional as F

    _, n, d, h, x_np = _layer_data(size, dtype, seed)
    rng = np.random.default_rng(seed + 1)
    tdt = _torch_dtype(torch, dtype)
    x = torch.from_numpy(x_np).requires_grad_(True)
    if op == "batchnorm-fwd-bwd":
        gamma = torch.ones(d, dtype=tdt, requires_grad=True)
        beta = torch.zeros(d, dtype=tdt, requires_grad=True)
        rm, rv = torch.zeros(d, dtype=tdt), torch.ones(d, dtype=tdt)
        dout = torch.from_numpy(rng.standard_normal((n, d)).astype(dtype))

        def fwd_bwd():
            out = F.batch_norm(x, rm, rv, gamma, beta, training=True, momentum=0.1, eps=1e-6)
            return torch.autograd.grad(out, (x, gamma, beta), dout)

        return fwd_bwd
    kind, direction = op.rsplit("-", 1)
    inputs = [x]
    if kind == "affine":
        W = torch.from_numpy((0.01 * rng.standard_normal((d, h))).astype(dtype)).requires_grad_(True)
        b = torch.zeros(h, dtype=tdt, requires_grad=True)
        inputs += [W, b]
        forward = lambda: torch.addmm(b, x, W)  # noqa: E731
    elif kind == "batchnorm":
        gamma = torch.ones(d, dtype=tdt, requires_grad=True)
        beta = torch.zeros(d, dtype=tdt, requires_grad=True)
        rm, rv = torch.zeros(d, dtype=tdt), torch.ones(d, dtype=tdt)
        inputs += [gamma, beta]
        forward = lambda: F.batch_norm(x, rm, rv, gamma, beta, training=True, momentum=0.1, eps=1e-6)  # noqa: E731
    elif kind == "dropout":
        forward = lambda: F.dropout(x, 0.5, training=True)  # noqa: E731
    elif kind == "softmax-loss":
        t = torch.from_numpy(rng.integers(0, d, n))
        forward = lambda: F.cross_entropy(x, t)  # noqa: E731
    else:
        forward = {"relu": lambda: torch.relu(x), "sigmoid": lambda: torch.sigmoid(x)}[kind]
    if direction == "forward":
        return forward
    out = forward()
    if out.ndim == 0:
        dout = torch.ones_like(out)
    else:
        dout = torch.from_numpy(rng.standard_normal(tuple(out.shape)).astype(dtype))
    return lambda: torch.autograd.grad(out, inputs, dout, retain_graph=True)


def _optimizer_data(size: str, dtype: str, seed: int):
    rng = np.random.default_rng(seed)
    rows, cols = PARAM_SIZES[size]
    params = {"W": (0.01 * rng.standard_normal((rows, cols))).astype(dtype), "b": np.zeros(cols, dtype=dtype)}
    grads = {k: (0.01 * rng.standard_normal(v.shape)).astype(dtype) for k, v in params.items()}
    return params, grads


def _numpy_optimizer_case(op: str, size: str, dtype: str, impl: str, seed: int) -> Callable[[], object]:
    _, optim = _numpy_modules(impl)
    params, grads = _optimizer_data(size, dtype, seed)
    opt = getattr(optim, OPTIMIZER_OPS[op][0])(lr=1e-3)
    update = lambda: opt.update(params, grads)  # noqa: E731
    update.state = {"params": params, "grads": grads}
    return update


def _torch_optimizer(torch, name: str, params: list, lr: float):
    """The torch optimizer doing the same update, fused on CPU where supported, else foreach."""
    cls, kwargs = {
        "SGD": (torch.optim.SGD, {}),
        "Momentum": (torch.optim.SGD, {"momentum": 0.9}),
        "Nesterov": (torch.optim.SGD, {"momentum": 0.9, "nesterov": True}),
        "AdaGrad": (torch.optim.Adagrad, {"eps": 1e-7}),
        "RMSprop": (torch.optim.RMSprop, {"alpha": 0.99, "eps": 1e-7}),
        "Adam": (torch.optim.Adam, {"eps": 1e-7}),
    }[name]
    for variant in ({"fused": True}, {"foreach": True}, {}):
        try:
            opt = cls(params, lr=lr, **kwargs, **variant)
            opt.step()  # fused CPU support is only checked on the first step
            return opt
        except (RuntimeError, TypeError, ValueError):
            continue
    raise Unavailable(f"torch optimizer for {name} could not be built")  # pragma: no cover


def _torch_optimizer_case(op: str, size: str, dtype: str, seed: int) -> Callable[[], object]:
    torch = _torch()
    params, grads = _optimizer_data(size, dtype, seed)
    tparams = []
    for key, value in params.items():
        p = torch.from_numpy(value).requires_grad_(True)
        p.grad = torch.from_numpy(grads[key])
        tparams.append(p)
    opt = _torch_optimizer(torch, OPTIMIZER_OPS[op][0], tparams, 1e-3)
    return opt.step


def _step_data(dtype: str, seed: int):
    n, d, hidden, classes = STEP_SIZES["784-100x5-10-b100"]
    rng = np.random.default_rng(seed)
    return rng.standard_normal((n, d)).astype(dtype), rng.integers(0, classes, n), (n, d, hidden, classes)


def _numpy_step_case(op: str, dtype: str, impl: str, seed: int) -> Callable[[], object]:
    try:
        nets = importlib.import_module("fastdl.nets")
    except ImportError as exc:  # pragma: no cover - only while the package is incomplete
        raise Unavailable(f"fastdl.nets not importable: {exc}") from exc
    _, optim = _numpy_modules(impl)
    x, t, (_, d, hidden, classes) = _step_data(dtype, seed)
    np.random.seed(seed)
    net = nets.MultiLayerNetExtend(d, list(hidden), classes, use_batchnorm=op == "train-step-bn",
                                   dtype=np.dtype(dtype), backend=impl)
    opt = optim.Adam(lr=1e-3)

    def step():
        opt.update(net.params, net.gradient(x, t))

    return step


def _torch_step_case(op: str, dtype: str, seed: int) -> Callable[[], object]:
    torch = _torch()
    x_np, t_np, (_, d, hidden, classes) = _step_data(dtype, seed)
    torch.manual_seed(seed)
    modules, width = [], d
    for h in hidden:
        modules.append(torch.nn.Linear(width, h))
        if op == "train-step-bn":
            modules.append(torch.nn.BatchNorm1d(h, eps=1e-6, momentum=0.1))
        modules.append(torch.nn.ReLU())
        width = h
    modules.append(torch.nn.Linear(width, classes))
    model = torch.nn.Sequential(*modules).to(_torch_dtype(torch, dtype))
    loss_fn = torch.nn.CrossEntropyLoss()
    x, t = torch.from_numpy(x_np), torch.from_numpy(t_np)
    opt = _torch_optimizer(torch, "Adam", list(model.parameters()), 1e-3)

    def step():
        opt.zero_grad()
        loss_fn(model(x), t).backward()
        opt.step()

    return step


def _work(op: str, size: str, dtype: str) -> tuple[float, str]:
    item = np.dtype(dtype).itemsize
    if op in OPTIMIZER_OPS:
        rows, cols = PARAM_SIZES[size]
        return float(OPTIMIZER_OPS[op][1] * item * (rows * cols + cols)), "GB/s"
    if op in STEP_OPS:
        n, d, hidden, classes = STEP_SIZES[size]
        widths = (d, *hidden, classes)
        macs = sum(a * b for a, b in zip(widths[:-1], widths[1:]))
        return float(3 * 2 * n * macs), "GFLOP/s"
    n, d, h = LAYER_SIZES[size]
    if op == "affine-forward":
        return float(2 * n * d * h), "GFLOP/s"
    if op == "affine-backward":
        return float(4 * n * d * h), "GFLOP/s"
    extra = n * d if op.startswith("dropout") else 0
    return float(_LAYER_TRAFFIC[op] * item * n * d + extra), "GB/s"


def sizes_for(op: str) -> tuple[str, ...]:
    """Size labels an op is defined for."""
    if op in OPTIMIZER_OPS:
        return tuple(PARAM_SIZES)
    if op in STEP_OPS:
        return tuple(STEP_SIZES)
    if op in LAYER_OPS:
        return tuple(LAYER_SIZES)
    raise ValueError(f"make_case: op must be one of {LAYER_OPS + tuple(OPTIMIZER_OPS) + STEP_OPS}; got {op!r}")


def make_case(op: str, size: str, dtype: str, impl: str, *, seed: int = 0) -> Case:
    """Build one benchmark case (data allocated, layer state prepared, nothing timed).

    Parameters
    ----------
    op : str
        One of :data:`LAYER_OPS`, :data:`OPTIMIZER_OPS`, :data:`STEP_OPS`.
    size : str
        A label of :data:`LAYER_SIZES`, :data:`PARAM_SIZES` or ``'784-100x5-10-b100'`` (steps).
    dtype : str
        ``'float32'`` or ``'float64'``.
    impl : str
        ``'reference'``, ``'fastdl'`` or ``'torch'``.
    seed : int
        Seed of the generated data.

    Returns
    -------
    Case

    Raises
    ------
    Unavailable
        When the implementation cannot run here (torch not installed).
    """
    if size not in sizes_for(op):
        raise ValueError(f"make_case: size must be one of {sizes_for(op)}; got {size!r}")
    if dtype not in DTYPES:
        raise ValueError(f"make_case: dtype must be one of {DTYPES}; got {dtype!r}")
    if impl not in IMPLS:
        raise ValueError(f"make_case: impl must be one of {IMPLS}; got {impl!r}")
    if op in OPTIMIZER_OPS:
        fn = (_torch_optimizer_case(op, size, dtype, seed) if impl == "torch"
              else _numpy_optimizer_case(op, size, dtype, impl, seed))
    elif op in STEP_OPS:
        fn = _torch_step_case(op, dtype, seed) if impl == "torch" else _numpy_step_case(op, dtype, impl, seed)
    else:
        fn = (_torch_layer_case(op, size, dtype, seed) if impl == "torch"
              else _numpy_layer_case(op, size, dtype, impl, seed))
    work, unit = _work(op, size, dtype)
    return Case(op, size, dtype, impl, fn, work, unit, getattr(fn, "state", {}))


#: interleave op -> size; policies force every fastdl kernel serial or parallel (or keep the default)
INTERLEAVE_OPS = {"interleave-step-bn": "784-100x5-10-b100", "interleave-affine-bn-relu": "256x1024",
                  "interleave-affine-bn-relu-1M": "1024x1024"}
INTERLEAVE_POLICIES = {"serial": 2**62, "parallel": 0, "default": None}


def make_interleave_case(op: str, dtype: str, policy: str, *, seed: int = 0) -> Case:
    """A loop alternating BLAS GEMMs with fastdl kernels, under a forced threading policy.

    The threading-policy evidence: ``policy='parallel'`` runs every fastdl kernel's parallel
    variant between the GEMMs (``runtime.parallel_threshold(0)``), ``'serial'`` forces the serial
    variants, ``'default'`` keeps the size threshold. ``interleave-step-bn`` is the 784-100x5-10
    training step with batch norm (batch 100, Adam); ``interleave-affine-bn-relu`` is Affine(1024 ->
    1024) + BatchNormalization + Relu forward and backward on a 256x1024 batch (1024x1024 for the
    ``-1M`` form, where the default threshold turns the parallel kernels on).

    Returns
    -------
    Case
        ``impl`` is ``'fastdl-<policy>'``.
    """
    from . import runtime

    if op not in INTERLEAVE_OPS:
        raise ValueError(f"make_interleave_case: op must be one of {tuple(INTERLEAVE_OPS)}; got {op!r}")
    if policy not in INTERLEAVE_POLICIES:
        raise ValueError(f"make_interleave_case: policy must be one of {tuple(INTERLEAVE_POLICIES)}; got {policy!r}")
    size = INTERLEAVE_OPS[op]
    if op == "interleave-step-bn":
        body = _numpy_step_case("train-step-bn", dtype, "fastdl", seed)
        work, unit = _work("train-step-bn", size, dtype)
    else:
        layers, _ = _numpy_modules("fastdl")
        rng, n, d, h, x = _layer_data(size, dtype, seed)
        chain = [layers.Affine((0.03 * rng.standard_normal((d, h))).astype(dtype), np.zeros(h, dtype=dtype)),
                 layers.BatchNormalization(np.ones(h, dtype=dtype), np.zeros(h, dtype=dtype)), layers.Relu()]
        dout = rng.standard_normal((n, h)).astype(dtype)

        def body():
            y = chain[0].forward(x)
            y = chain[1].forward(y, train_flg=True)
            chain[2].forward(y)
            g = chain[2].backward(dout)
            chain[0].backward(chain[1].backward(g))

        work, unit = float(6 * n * d * h), "GFLOP/s"
    threshold = INTERLEAVE_POLICIES[policy]
    if threshold is None:
        fn = body
    else:
        def fn():
            with runtime.parallel_threshold(threshold):
                body()
    return Case(op, size, dtype, f"fastdl-{policy}", fn, work, unit)


def configure_torch_threads(n: int | None = None) -> None:
    """Give torch the same thread count as fastdl (default: Numba's thread count), if torch is installed."""
    try:
        import torch
    except ImportError:
        return
    from . import runtime

    torch.set_num_threads(n or runtime.get_num_threads())


# ----------------------------------------------------------------------------------------------
# timing and peaks
# ----------------------------------------------------------------------------------------------

def measure(fn: Callable[[], object], *, warmup: int = 2, min_time: float = 0.2, min_samples: int = 5,
            max_samples: int = 50, sample_time: float = 1e-2) -> float:
    """Median seconds per call of ``fn`` after ``warmup`` untimed calls.

    Each sample runs enough calls to last about ``sample_time``; sampling stops after ``min_time``
    seconds once ``min_samples`` are taken (or at ``max_samples``).
    """
    return measure_group({"fn": fn}, warmup=warmup, min_time=min_time, min_samples=min_samples,
                         max_samples=max_samples, sample_time=sample_time)["fn"]


def _calibrate(fn: Callable[[], object], warmup: int, sample_time: float) -> int:
    """Calls per sample so that one sample takes about ``sample_time``."""
    for _ in range(max(1, warmup)):
        fn()
    t0 = time.perf_counter()
    fn()
    return max(1, int(sample_time / max(time.perf_counter() - t0, 1e-9)))


def _run_block(fn: Callable[[], object], number: int, warmup: int, min_samples: int, max_samples: int,
               block_time: float) -> list[float]:
    """One timed block: ``warmup`` untimed calls, then samples of ``number`` calls (seconds per call)."""
    clock = time.perf_counter
    for _ in range(max(1, warmup)):
        fn()
    out: list[float] = []
    start = clock()
    while len(out) < min_samples or (clock() - start < block_time and len(out) < max_samples):
        t0 = clock()
        for _ in range(number):
            fn()
        out.append((clock() - t0) / number)
    return out


def measure_group(fns: dict[str, Callable[[], object]], *, warmup: int = 2, min_time: float = 0.2,
                  min_samples: int = 5, max_samples: int = 50, sample_time: float = 1e-2,
                  passes: int = 3, remote: dict | None = None) -> dict[str, float]:
    """Median seconds per call of each callable, in interleaved blocks.

    Each implementation takes its samples in a contiguous block (``warmup`` untimed calls, then
    samples of about ``sample_time`` each), and the blocks rotate over ``passes`` passes (A B C A B
    C ...), so a burst of load from elsewhere still hits every implementation while each one is
    timed in its own steady state. Alternating every single call instead would time the switch
    between thread pools (Numba's OpenMP and OpenBLAS each spin-waiting while the other wants the
    cores) rather than the work.

    ``remote`` maps more names to :class:`RemotePeer` objects holding a case in another process;
    each takes its block in every pass after the local ones (this process waits, idle, meanwhile).
    """
    remote = remote or {}
    numbers = {name: _calibrate(fn, warmup, sample_time) for name, fn in fns.items()}
    for name, peer in remote.items():
        numbers[name] = peer.calibrate(warmup, sample_time)
    per_pass_min = -(-min_samples // passes)
    per_pass_max = max(per_pass_min, max_samples // passes)
    samples: dict[str, list[float]] = {name: [] for name in numbers}
    for _ in range(passes):
        for name, fn in fns.items():
            samples[name] += _run_block(fn, numbers[name], warmup, per_pass_min, per_pass_max, min_time / passes)
        for name, peer in remote.items():
            samples[name] += peer.block(numbers[name], warmup, per_pass_min, per_pass_max, min_time / passes)
    return {name: statistics.median(v) for name, v in samples.items()}


def _triad_kernels():
    """The streaming triad, serial worker and parallel driver (compiled on first use)."""
    import numba

    from ._jit import jit

    @jit
    def triad_chunk(a, b, c, s, start, stop):
        # slice first: a loop over range(size) of the views vectorizes; range(start, stop) keeps
        # wraparound checks and measured well below the machine's bandwidth
        av, bv, cv = a[start:stop], b[start:stop], c[start:stop]
        for i in range(av.size):
            av[i] = bv[i] + s * cv[i]

    @jit(parallel=True)
    def triad_parallel(a, b, c, s, nchunks):
        n = a.shape[0]
        step = (n + nchunks - 1) // nchunks
        for k in numba.prange(nchunks):
            triad_chunk(a, b, c, s, k * step, min(n, (k + 1) * step))

    return triad_chunk, triad_parallel


_TRIAD = None


def measure_peaks(*, triad_bytes: int = 4 * LLC_BYTES, gemm_n: int = 2048, repeats: int = 5) -> dict:
    """Measure this machine's streaming bandwidth and large-GEMM throughput.

    Parameters
    ----------
    triad_bytes : int
        Bytes per triad array (default 4x a 32 MiB last-level cache).
    gemm_n : int
        Side of the square GEMM (``np.dot``, BLAS) timed per dtype.
    repeats : int
        Runs of each; the best is kept (a peak).

    Returns
    -------
    dict
        ``{'triad_GBps', 'triad_bytes', 'gemm_n', 'gemm_GFLOPs': {'float32': .., 'float64': ..}, 'threads'}``.
    """
    global _TRIAD
    from . import runtime

    if _TRIAD is None:
        _TRIAD = _triad_kernels()
    _, triad_parallel = _TRIAD
    n = max(1024, triad_bytes // 8)
    a, b, c = np.empty(n), np.full(n, 1.0), np.full(n, 2.0)
    chunks = runtime.chunks(n) if runtime.parallel_available() else 1
    triad_parallel(a, b, c, 3.0, chunks)
    best = math.inf
    for _ in range(repeats):
        t0 = time.perf_counter()
        triad_parallel(a, b, c, 3.0, chunks)
        best = min(best, time.perf_counter() - t0)
    gemm = {}
    for dtype in DTYPES:
        rng = np.random.default_rng(0)
        x = rng.standard_normal((gemm_n, gemm_n)).astype(dtype)
        out = np.empty_like(x)
        np.dot(x, x, out=out)
        g = math.inf
        for _ in range(max(2, repeats // 2)):
            t0 = time.perf_counter()
            np.dot(x, x, out=out)
            g = min(g, time.perf_counter() - t0)
        gemm[dtype] = 2.0 * gemm_n**3 / g / 1e9
    blas_env = {k: os.environ[k] for k in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS")
                if k in os.environ}
    # 32 bytes per element: b and c read, a read for ownership (write-allocate) and written. The
    # optimizer and layer traffic models write only arrays they also read, so this is the comparable peak.
    return {"triad_GBps": 4 * 8 * n / best / 1e9, "triad_bytes": int(8 * n), "gemm_n": gemm_n,
            "gemm_GFLOPs": gemm, "threads": runtime.get_num_threads(), "blas_env": blas_env}


def peak_for(unit: str, dtype: str, peaks: dict | None) -> float | None:
    """The peak a rate in ``unit`` is compared against (None when unknown)."""
    if not peaks:
        return None
    if unit == "GB/s":
        return peaks.get("triad_GBps")
    return (peaks.get("gemm_GFLOPs") or {}).get(dtype)


# ----------------------------------------------------------------------------------------------
# the matrix
# ----------------------------------------------------------------------------------------------

@dataclass
class Matrix:
    """A list of ``(op, size)`` pairs, the dtypes and the implementations to run."""

    entries: list[tuple[str, str]]
    dtypes: tuple[str, ...] = DTYPES
    impls: tuple[str, ...] = IMPLS
    timing: dict = field(default_factory=dict)


def default_matrix(quick: bool = False, dtypes: Sequence[str] = DTYPES, torch: bool = True) -> Matrix:
    """The fixed ``fastdl bench`` matrix.

    The default (about 2-3 minutes on 2 cores with a warm kernel cache) covers every layer op at
    every size except affine at the large one (a 17 GFLOP GEMM that only measures BLAS), every
    optimizer at every size, both training steps, and the interleave loops of
    :func:`make_interleave_case` under each threading policy. ``quick`` is a seconds-long subset.
    """
    if quick:
        entries = [("affine-forward", "100x100"), ("relu-backward", "100x100"),
                   ("batchnorm-forward", "100x100"), ("adam-update", "10K")]
        timing = {"min_time": 0.02, "min_samples": 3, "max_samples": 5, "warmup": 1}
    else:
        # Training steps first: in one process, PyTorch's small-tensor step slowed after its own
        # large ops had run (measured 3.9 ms fresh, 5.1 ms after a 1024x4096 batch-norm backward,
        # 6.4 ms after a 1024x4096 sigmoid), which would understate PyTorch, not fastdl.
        entries = [(op, "784-100x5-10-b100") for op in STEP_OPS]
        entries += [(op, size) for op in LAYER_OPS for size in LAYER_SIZES
                    if not (op.startswith("affine") and size == "1024x4096")]
        entries += [(op, size) for op in OPTIMIZER_OPS for size in PARAM_SIZES]
        entries += [(op, size) for op, size in INTERLEAVE_OPS.items()]
        timing = {"min_time": 0.12, "min_samples": 7, "max_samples": 40, "warmup": 2}
    impls = IMPLS if torch else ("reference", "fastdl")
    return Matrix(entries, tuple(dtypes), impls, timing)


def run_matrix(matrix: Matrix, *, progress: bool = True, seed: int = 0) -> list[dict]:
    """Time every (op, size, dtype, impl) of ``matrix``; return one result dict per timing.

    The implementations of one (op, size, dtype) group are timed together, in rotating blocks
    (:func:`measure_group`): ``reference`` and ``fastdl`` in this process, PyTorch in a separate
    one (a :class:`RemotePeer`) whose block follows theirs in every pass, so that a machine whose
    speed drifts (a shared host: the same step was measured 1.4-3.2 ms minutes apart here) shifts
    all columns of a row alike. Why a separate process: beside NumPy's OpenBLAS threads PyTorch's
    OpenMP threads lose the cores; its 784-100x5-10 batch-norm step read 1.8-5.6 ms in rotating
    blocks in this process against 1.7-3.0 ms timed alone (torch imported before fastdl, see
    :class:`RemotePeer`), which would flatter fastdl.
    Unavailable implementations (torch not installed) are left out.
    """
    import importlib.util

    from tqdm.auto import tqdm

    groups = [(op, size, dtype) for op, size in matrix.entries for dtype in matrix.dtypes]
    results = []
    local_impls = tuple(i for i in matrix.impls if i != "torch")
    peer = None
    if "torch" in matrix.impls and importlib.util.find_spec("torch") is not None:
        try:
            peer = RemotePeer("torch", seed=seed)
        except RuntimeError as exc:
            print(f"fastdl bench: {exc}; torch columns left out", file=sys.stderr)
    try:
        bar = tqdm(groups, desc="fastdl bench", unit="group", disable=not progress, file=sys.stderr)
        for op, size, dtype in bar:
            bar.set_postfix_str(f"{op} {size} {dtype}", refresh=False)
            cases = {}
            if op in INTERLEAVE_OPS:
                cases = {f"fastdl-{p}": make_interleave_case(op, dtype, p, seed=seed) for p in INTERLEAVE_POLICIES}
            for impl in () if op in INTERLEAVE_OPS else local_impls:
                try:
                    cases[impl] = make_case(op, size, dtype, impl, seed=seed)
                except Unavailable:
                    continue
            remote, remote_meta = {}, None
            if peer is not None and op not in INTERLEAVE_OPS:
                try:
                    remote_meta = peer.setup(op, size, dtype)
                except RuntimeError as exc:
                    print(f"fastdl bench: {exc}; torch columns left out from here on", file=sys.stderr)
                    peer.close()
                    peer = None
                if remote_meta is not None:
                    remote["torch"] = peer
            local = {impl: c.fn for impl, c in cases.items()}
            try:
                medians = measure_group(local, remote=remote, **matrix.timing)
            except RuntimeError as exc:  # the peer died while timing: this group again without it
                if not remote:
                    raise
                print(f"fastdl bench: {exc}; torch columns left out from here on", file=sys.stderr)
                peer.close()
                peer, remote_meta = None, None
                medians = measure_group(local, **matrix.timing)
            results += [dict(c.meta(), median_s=medians[impl]) for impl, c in cases.items()]
            if remote_meta is not None:
                results.append(dict(remote_meta, median_s=medians["torch"]))
                peer.drop()
            del cases
    finally:
        if peer is not None:
            peer.close()
    return results


class RemotePeer:
    """One implementation's cases, built and timed in a separate Python process on request.

    The process (``python -c 'fastdl.benchmark._remote_server()'``) reads one JSON command per
    line on stdin and answers one JSON line on stdout: ``setup`` builds a case with
    :func:`make_case` (``null`` when unavailable), ``calibrate`` and ``block`` time it as
    :func:`measure_group` does locally, ``drop`` frees it. This process blocks on the answer, so
    the two never time at once. Before each remote call this process first waits until its own
    threads are idle (:meth:`settle`): OpenBLAS's threads spin-wait ~0.11 s after a GEMM (measured:
    0.11 s of CPU in a 1 s sleep); without the wait PyTorch's batch-norm training step read
    4.2-7.5 ms in blocks following fastdl's, with it 1.9-3.2 ms, the same as in one block after
    all local passes.

    The peer process starts without fastdl's ``GOMP_SPINCOUNT`` default (unless the user set the
    variable) and, for PyTorch, imports torch before fastdl, so torch's OpenMP runs with its own
    defaults: with fastdl's spin count PyTorch's 2-thread ops were up to ~10x slower (the step
    17 ms instead of 2.3 ms), which flattered fastdl in earlier versions of this benchmark.
    """

    def __init__(self, impl: str, *, seed: int = 0, threads: int | None = None, max_settle: float = 1.0) -> None:
        from . import runtime

        self.impl, self.seed, self.max_settle = impl, seed, max_settle
        threads = runtime.get_num_threads() if threads is None else threads
        self.proc = subprocess.Popen(self.command(impl, threads), stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                     text=True, bufsize=1, env=self.environment())
        self._ask({"cmd": "ping"})

    @staticmethod
    def command(impl: str, threads: int) -> list[str]:
        """The peer's command line; PyTorch is imported before fastdl (see the class notes)."""
        first = "import torch; " if impl == "torch" else ""
        return [sys.executable, "-c", f"{first}from fastdl.benchmark import _remote_server; "
                f"_remote_server({impl!r}, {int(threads)})"]

    @staticmethod
    def environment() -> dict[str, str]:
        """This process's environment without fastdl's ``GOMP_SPINCOUNT`` default (a user's value stays)."""
        from . import runtime

        env = dict(os.environ)
        if runtime.USER_GOMP_SPINCOUNT is None:
            env.pop("GOMP_SPINCOUNT", None)
        return env

    def _ask(self, msg: dict):
        try:
            self.proc.stdin.write(json.dumps(msg) + "\n")
            self.proc.stdin.flush()
            line = self.proc.stdout.readline()
        except (OSError, ValueError) as exc:  # (a broken pipe, or a pipe closed by close())
            raise RuntimeError(f"the {self.impl} timing process failed ({exc})") from None
        if not line:
            raise RuntimeError(f"the {self.impl} timing process exited (code {self.proc.poll()})")
        answer = json.loads(line)
        if "error" in answer:
            raise RuntimeError(f"the {self.impl} timing process: {answer['error']}")
        return answer["result"]

    def setup(self, op: str, size: str, dtype: str) -> dict | None:
        """Build the case; its ``meta()`` dict, or None when this implementation lacks it."""
        return self._ask({"cmd": "setup", "op": op, "size": size, "dtype": dtype, "seed": self.seed})

    def settle(self, step: float = 0.01) -> float:
        """Sleep until this process's threads used < 10 % of a core over ``step`` s; seconds waited."""
        t0 = time.perf_counter()
        while time.perf_counter() - t0 < self.max_settle:
            c0 = time.process_time()
            time.sleep(step)
            if time.process_time() - c0 < 0.1 * step:
                break
        return time.perf_counter() - t0

    def calibrate(self, warmup: int, sample_time: float) -> int:
        self.settle()
        return self._ask({"cmd": "calibrate", "warmup": warmup, "sample_time": sample_time})

    def block(self, number: int, warmup: int, min_samples: int, max_samples: int, block_time: float) -> list[float]:
        self.settle()
        return self._ask({"cmd": "block", "number": number, "warmup": warmup, "min_samples": min_samples,
                          "max_samples": max_samples, "block_time": block_time})

    def drop(self) -> None:
        self._ask({"cmd": "drop"})

    def close(self) -> None:
        if self.proc.poll() is None:
            try:
                self.proc.stdin.close()
            except OSError:
                pass
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


def _remote_server(impl: str, threads: int) -> None:
    """Entry point of a :class:`RemotePeer` process (JSON lines on stdin/stdout)."""
    out = sys.stdout
    sys.stdout = sys.stderr  # whatever the cases print must not corrupt the protocol
    if impl == "torch":
        configure_torch_threads(threads)
    case = None
    for line in sys.stdin:
        msg = json.loads(line)
        try:
            cmd = msg["cmd"]
            if cmd == "ping":
                result = None
            elif cmd == "setup":
                case = None
                try:
                    case = make_case(msg["op"], msg["size"], msg["dtype"], impl, seed=msg["seed"])
                    result = case.meta()
                except Unavailable:
                    result = None
            elif cmd == "calibrate":
                result = _calibrate(case.fn, msg["warmup"], msg["sample_time"])
            elif cmd == "block":
                result = _run_block(case.fn, msg["number"], msg["warmup"], msg["min_samples"],
                                    msg["max_samples"], msg["block_time"])
            elif cmd == "drop":
                case, result = None, None
            else:
                raise ValueError(f"unknown command {cmd!r}")
            answer = {"result": result}
        except Exception as exc:  # reported to the caller, which stops using this process
            answer = {"error": f"{type(exc).__name__}: {exc}"}
        out.write(json.dumps(answer) + "\n")
        out.flush()


# ----------------------------------------------------------------------------------------------
# tables and plots
# ----------------------------------------------------------------------------------------------

def _fmt_time(seconds: float | None) -> str:
    if seconds is None:
        return "-"
    for scale, unit in ((1.0, "s"), (1e-3, "ms"), (1e-6, "us")):
        if seconds >= scale:
            return f"{seconds / scale:.3g} {unit}"
    return f"{seconds / 1e-9:.3g} ns"


def table_rows(results: Iterable[dict], peaks: dict | None = None) -> list[dict]:
    """One row per (op, size, dtype): median per impl, speed-ups of fastdl, fastdl's rate and share of peak."""
    groups: dict[tuple, dict] = {}
    for r in results:
        key = (r["op"], r["size"], r["dtype"])
        g = groups.setdefault(key, {"op": r["op"], "size": r["size"], "dtype": r["dtype"],
                                    "unit": r.get("unit"), "work": r.get("work"), "median_s": {}})
        g["median_s"][r["impl"]] = r["median_s"]
    rows = []
    for g in groups.values():
        m = g["median_s"]
        fast = m.get("fastdl")
        g["speedup_vs_reference"] = m["reference"] / fast if fast and m.get("reference") else None
        g["speedup_vs_torch"] = m["torch"] / fast if fast and m.get("torch") else None
        rate = g["work"] / fast / 1e9 if fast and g.get("work") else None
        g["rate"] = rate
        peak = peak_for(g["unit"], g["dtype"], peaks)
        g["fraction_of_peak"] = rate / peak if rate and peak else None
        rows.append(g)
    return rows


def _columns(rows: list[dict]) -> tuple[list[str], list[list[str]]]:
    seen = {i for r in rows for i in r["median_s"]}
    impls = [i for i in IMPLS if i in seen] + sorted(seen - set(IMPLS))
    head = ["op", "size", "dtype", *impls, "x ref", *(["x torch"] if "torch" in impls else []),
            "fastdl rate", "of peak"]
    body = []
    for r in rows:
        line = [r["op"], r["size"], r["dtype"], *(_fmt_time(r["median_s"].get(i)) for i in impls)]
        line.append(f"{r['speedup_vs_reference']:.2f}" if r["speedup_vs_reference"] else "-")
        if "torch" in impls:
            line.append(f"{r['speedup_vs_torch']:.2f}" if r["speedup_vs_torch"] else "-")
        line.append(f"{r['rate']:.3g} {r['unit']}" if r["rate"] else "-")
        line.append(f"{100 * r['fraction_of_peak']:.0f}%" if r["fraction_of_peak"] else "-")
        body.append(line)
    return head, body


def _peaks_line(peaks: dict | None) -> str:
    if not peaks:
        return "peaks: not measured"
    g = peaks.get("gemm_GFLOPs", {})
    return (f"peaks ({peaks.get('threads')} threads): triad {peaks['triad_GBps']:.1f} GB/s over "
            f"{peaks['triad_bytes'] / 2**20:.0f} MiB arrays; GEMM {peaks.get('gemm_n')}^2 "
            + ", ".join(f"{k} {v:.1f} GFLOP/s" for k, v in g.items())
            + "".join(f"; {k}={v}" for k, v in (peaks.get("blas_env") or {}).items()))


def format_table(results: Iterable[dict], peaks: dict | None = None) -> str:
    """Plain-text table (fixed-width columns) of :func:`table_rows`."""
    head, body = _columns(table_rows(results, peaks))
    widths = [max(len(str(c)) for c in col) for col in zip(head, *body)]
    lines = [_peaks_line(peaks)] if peaks else []
    lines.append("  ".join(h.ljust(w) for h, w in zip(head, widths)))
    lines.append("  ".join("-" * w for w in widths))
    lines += ["  ".join(c.rjust(w) if i >= 3 else c.ljust(w) for i, (c, w) in enumerate(zip(line, widths)))
              for line in body]
    return "\n".join(lines)


def format_markdown(results: Iterable[dict], peaks: dict | None = None, info: dict | None = None) -> str:
    """Markdown table (machine line, peaks line, then the table) for the README."""
    head, body = _columns(table_rows(results, peaks))
    out = []
    if info:
        out.append(f"Machine: {info.get('processor')}, {info.get('numba_threads')} threads "
                   f"({info.get('fastdl_threading_layer')}); Python {info.get('python')}, "
                   f"NumPy {info.get('numpy')}, Numba {info.get('numba')}"
                   + (f", torch {info['torch']}" if info.get("torch") else "")
                   + (f"; load average {info['loadavg_at_start']} at start" if "loadavg_at_start" in info else "")
                   + ".")
        out.append("")
    if peaks:
        out += [_peaks_line(peaks) + ".", ""]
    out.append("| " + " | ".join(head) + " |")
    out.append("|" + "|".join("---" if i < 3 else "---:" for i in range(len(head))) + "|")
    out += ["| " + " | ".join(line) + " |" for line in body]
    return "\n".join(out)


def plot_results(results: Iterable[dict], path: str | os.PathLike, peaks: dict | None = None) -> Path:
    """Save a PNG: fastdl's speed-up over the reference against size per op, and achieved rate vs peak."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = table_rows(results, peaks)
    fig, axes = plt.subplots(2, 2, figsize=(16, 13))
    tiers = ("small", "medium", "large")
    panels = ((axes[0, 0], LAYER_SIZES, "layer ops (N x D)"), (axes[0, 1], PARAM_SIZES, "optimizer updates (W size)"))
    for ax, sizes, title in panels:
        index = {label: i for i, label in enumerate(sizes)}
        lines: dict[tuple, list] = {}
        for r in rows:
            if r["speedup_vs_reference"] and r["size"] in index:
                lines.setdefault((r["op"], r["dtype"]), []).append(r)
        for (op, dtype), rs in sorted(lines.items()):
            rs.sort(key=lambda r: index[r["size"]])
            ax.plot([index[r["size"]] for r in rs], [r["speedup_vs_reference"] for r in rs],
                    marker="o" if dtype == "float64" else "s", ls="-" if dtype == "float64" else "--",
                    label=f"{op} {dtype}")
        ax.set_xticks(range(len(sizes)), [f"{t}\n{label}" for t, label in zip(tiers, sizes)])
        ax.set_xlim(-0.3, len(sizes) - 0.7)
        ax.axhline(1.0, color="grey", lw=0.8)
        ax.set_yscale("log")
        ax.set_ylabel("fastdl speed-up over the NumPy reference")
        ax.set_title(f"Speed-up vs size: {title}")
        if lines:
            ax.legend(fontsize=6, ncol=2, loc="center left", bbox_to_anchor=(1.0, 0.5))
    for ax, unit in ((axes[1, 0], "GB/s"), (axes[1, 1], "GFLOP/s")):
        sel = [r for r in rows if r["unit"] == unit and r["rate"]
               and (unit == "GFLOP/s" or r["size"] not in ("100x100", "10K"))]  # small ones run from cache
        labels = [f"{r['op']} {r['size']} {r['dtype'][-2:]}" for r in sel]
        ax.barh(range(len(sel)), [r["rate"] for r in sel],
                color=["tab:blue" if r["dtype"] == "float64" else "tab:orange" for r in sel])
        ax.set_yticks(range(len(sel)), labels, fontsize=6 if len(sel) > 20 else 8)
        ax.invert_yaxis()
        ax.set_xlabel(f"fastdl achieved {unit} (blue float64, orange float32)")
        if unit == "GB/s" and peak_for(unit, "float64", peaks):
            ax.axvline(peaks["triad_GBps"], color="red", ls="--", label="triad peak (DRAM)")
            ax.legend(fontsize=7)
            ax.set_title("Achieved bandwidth vs streaming peak (medium and large sizes)")
        elif unit == "GFLOP/s" and peaks:
            for dt, color in (("float32", "tab:orange"), ("float64", "tab:blue")):
                if peak_for(unit, dt, peaks):
                    ax.axvline(peaks["gemm_GFLOPs"][dt], color=color, ls="--", label=f"GEMM peak {dt}")
            ax.legend(fontsize=7)
            ax.set_title("Achieved GFLOP/s vs large-GEMM peak")
        else:
            ax.set_title(f"Achieved {unit}")
    fig.tight_layout()
    path = Path(path)
    fig.savefig(path, dpi=110, bbox_inches="tight")
    plt.close(fig)
    return path


# ----------------------------------------------------------------------------------------------
# pytest-benchmark JSON
# ----------------------------------------------------------------------------------------------

def load_benchmark_json(path: str | os.PathLike) -> tuple[list[dict], dict | None, dict]:
    """Read a ``pytest --benchmark-json`` file written by the ``bench/`` suites.

    Returns ``(results, peaks, info)`` in the form :func:`format_table` takes. Benchmarks without
    the suite's ``extra_info`` (op, size, dtype, impl) are skipped; the median comes from the
    file's stats. Peaks are read from ``machine_info['fastdl_peaks']`` when the suite recorded them.
    """
    data = json.loads(Path(path).read_text())
    results = []
    for bench in data.get("benchmarks", []):
        extra = bench.get("extra_info") or {}
        if not {"op", "size", "dtype", "impl"} <= set(extra):
            continue
        results.append({k: extra.get(k) for k in ("op", "size", "dtype", "impl", "work", "unit")}
                       | {"group": bench.get("group"), "median_s": bench["stats"]["median"]})
    machine = data.get("machine_info") or {}
    return results, machine.get("fastdl_peaks"), machine.get("fastdl_info") or machine


# ----------------------------------------------------------------------------------------------
# warm-up and compile cost
# ----------------------------------------------------------------------------------------------

@dataclass
class WarmupStep:
    """One warm-up step: what ran, how long, which kernel signatures it compiled or loaded."""

    dtype: str
    variant: str
    what: str
    seconds: float
    compiled: int
    loaded: int


def _kernel_counts() -> dict[str, tuple[int, int]]:
    """kernel -> (cache misses = compiled, cache hits = loaded) counted by Numba's dispatchers."""
    from ._jit import KERNELS

    out = {}
    for name, d in KERNELS.items():
        stats = d.stats
        out[name] = (sum(stats.cache_misses.values()), sum(stats.cache_hits.values()))
    return out


def _warmup_work(dtype: str):
    """(label, callable) pairs exercising every layer and optimizer once on tiny data."""
    layers = importlib.import_module("fastdl.layers")
    optim = importlib.import_module("fastdl.optim")
    rng = np.random.default_rng(0)
    x = rng.standard_normal((4, 6)).astype(dtype)
    dout = rng.standard_normal((4, 6)).astype(dtype)
    t = np.array([0, 1, 2, 5])
    onehot = np.eye(6, dtype=dtype)[t]

    def run_layer(layer, *args, **kwargs):
        layer.forward(*args, **kwargs)
        return layer.backward(1 if isinstance(layer, layers.SoftmaxWithLoss) else dout)

    work = [
        ("Affine", lambda: run_layer(layers.Affine(rng.standard_normal((6, 6)).astype(dtype),
                                                   np.zeros(6, dtype=dtype)), x)),
        ("Relu", lambda: run_layer(layers.Relu(), x)),
        ("Sigmoid", lambda: run_layer(layers.Sigmoid(), x)),
        ("BatchNormalization", lambda: (
            run_layer(bn := layers.BatchNormalization(np.ones(6, dtype=dtype), np.zeros(6, dtype=dtype)), x),
            bn.forward(x, train_flg=False))),
        ("Dropout", lambda: (run_layer(dr := layers.Dropout(0.5), x, train_flg=True),
                             dr.forward(x, train_flg=False))),
        ("SoftmaxWithLoss", lambda: (run_layer(layers.SoftmaxWithLoss(), x, t),
                                     run_layer(layers.SoftmaxWithLoss(), x, onehot))),
    ]
    names = getattr(optim, "OPTIMIZERS", None) or {n.lower(): n for n in
                                                  ("SGD", "Momentum", "Nesterov", "AdaGrad", "RMSprop", "Adam")}
    for name in names:
        def update(name=name):
            opt = optim.get_optimizer(name) if hasattr(optim, "get_optimizer") else getattr(optim, names[name])()
            params = {"W": x.copy(), "b": x[0].copy()}
            grads = {"W": dout, "b": dout[0].copy()}
            opt.update(params, grads)
            opt.update(params, grads)
        work.append((f"optimizer {name}", update))
    nets = importlib.import_module("fastdl.nets")
    for label, bn, decay in (("train step", False, 0.0), ("train step + batch norm", True, 0.0),
                             ("train step + weight decay", False, 0.1)):
        def train_step(bn=bn, decay=decay):
            net = nets.MultiLayerNetExtend(6, [5, 5], 3, use_batchnorm=bn, weight_decay_lambda=decay,
                                           dtype=np.dtype(dtype))
            opt = optim.Adam()
            opt.update(net.params, net.gradient(x, t % 3))
            net.loss(x, t % 3)
            net.accuracy(x, t % 3)
        work.append((label, train_step))
    return work


def warmup(dtypes: Sequence[str] | str = DTYPES, *, verbose: bool = False,
           file=None, parallel: bool = False) -> list[WarmupStep]:
    """Compile (or load from the on-disk cache) every kernel a training run uses.

    Runs a tiny forward and backward of every layer, one update of every optimizer and a training
    step of the book's networks (plain, with batch norm, with weight decay), per dtype, with the serial kernels
    (``runtime.parallel_threshold`` forced to "never"); with ``parallel=True`` once more with the
    parallel twins (threshold 0), which only arrays of ~1M values or more use. It records for each
    step how long it took and how many kernel signatures Numba compiled versus loaded from its cache.

    Parameters
    ----------
    dtypes : str or sequence of str
        ``'float32'``, ``'float64'``, ``'all'`` or a sequence of them.
    verbose : bool
        Print one line per step and a summary.
    file : file-like, optional
        Where verbose output goes (default ``sys.stdout``).
    parallel : bool
        Also compile the parallel kernels (about doubles the cold compile time).

    Returns
    -------
    list of WarmupStep
    """
    from . import runtime

    if isinstance(dtypes, str):
        dtypes = DTYPES if dtypes == "all" else (dtypes,)
    for dt in dtypes:
        if dt not in DTYPES:
            raise ValueError(f"warmup: dtype must be one of {DTYPES} or 'all'; got {dt!r}")
    out = file or sys.stdout
    steps: list[WarmupStep] = []
    variants = (("serial", 2**62), ("parallel", 0)) if parallel and runtime.parallel_available() else (
        ("serial", 2**62),)
    for dt in dtypes:
        for variant, threshold in variants:
            with runtime.parallel_threshold(threshold):
                for what, fn in _warmup_work(dt):
                    before = _kernel_counts()
                    t0 = time.perf_counter()
                    fn()
                    seconds = time.perf_counter() - t0
                    after = _kernel_counts()
                    compiled = sum(after[k][0] - before.get(k, (0, 0))[0] for k in after)
                    loaded = sum(after[k][1] - before.get(k, (0, 0))[1] for k in after)
                    step = WarmupStep(dt, variant, what, seconds, compiled, loaded)
                    steps.append(step)
                    if verbose:
                        print(f"{dt:8s} {variant:8s} {what:25s} {seconds * 1e3:8.1f} ms  "
                              f"compiled {compiled:2d}  loaded from cache {loaded:2d}", file=out)
    if verbose:
        total = sum(s.seconds for s in steps)
        print(f"total {total:.2f} s: {sum(s.compiled for s in steps)} kernel signatures compiled, "
              f"{sum(s.loaded for s in steps)} loaded from the cache ({runtime.cache_dir()})", file=out)
    return steps


_COST_SNIPPET = """
import json, sys, time
t0 = time.perf_counter()
import fastdl
from fastdl import benchmark
t_import = time.perf_counter() - t0
steps = benchmark.warmup({dtypes!r})
first = sum(s.seconds for s in steps)
again = benchmark.warmup({dtypes!r})
print(json.dumps({{"import_s": t_import, "first_s": first, "steady_s": sum(s.seconds for s in again),
                  "compiled": sum(s.compiled for s in steps), "loaded": sum(s.loaded for s in steps),
                  "steps": len(steps)}}))
"""


def measure_compile_cost(dtypes: Sequence[str] | str = DTYPES) -> dict:
    """Cold compile, warm-cache load and steady-state call time of the warm-up work, in subprocesses.

    A fresh interpreter runs :func:`warmup` with ``NUMBA_CACHE_DIR`` pointing at an empty temporary
    directory (cold: everything compiles), then a second fresh interpreter runs it against the now
    filled directory (warm: everything loads). In each, the warm-up is run a second time to give
    the steady-state cost of the same calls with nothing to compile or load.

    Returns
    -------
    dict
        ``{'cold': {...}, 'warm': {...}}``, each with ``first_s`` (warm-up time), ``steady_s``,
        ``compiled``, ``loaded``, ``import_s``.
    """
    if isinstance(dtypes, str):
        dtypes = DTYPES if dtypes == "all" else (dtypes,)
    snippet = _COST_SNIPPET.format(dtypes=tuple(dtypes))
    result = {}
    with tempfile.TemporaryDirectory(prefix="fastdl-cold-cache-") as cache:
        env = dict(os.environ, NUMBA_CACHE_DIR=cache)
        for label in ("cold", "warm"):
            proc = subprocess.run([sys.executable, "-c", snippet], env=env, capture_output=True, text=True,
                                  check=False)
            if proc.returncode != 0:
                raise RuntimeError(f"measure_compile_cost: {label} run failed:\n{proc.stderr[-2000:]}")
            result[label] = json.loads(proc.stdout.strip().splitlines()[-1])
    return result


# ----------------------------------------------------------------------------------------------
# start-up cost and the issue-5 targets
# ----------------------------------------------------------------------------------------------

_STARTUP_SNIPPET = """
import json, time
t0 = time.perf_counter()
import fastdl
t_import = time.perf_counter() - t0
import numpy as np
from fastdl.nets import MultiLayerNetExtend
from fastdl.optim import Adam
rng = np.random.default_rng(0)
x, t = rng.standard_normal((100, 784)), rng.integers(0, 10, 100)
np.random.seed(0)
net = MultiLayerNetExtend(784, [100] * 5, 10, use_batchnorm=True)
opt = Adam()
opt.update(net.params, net.gradient(x, t))
net.loss(x, t)
net.accuracy(x, t)
print(json.dumps({"import_s": t_import, "first_step_s": time.perf_counter() - t0}))
"""


def _run_snippet(code: str, env: dict, what: str) -> dict:
    proc = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=False)
    if proc.returncode != 0:
        raise RuntimeError(f"measure_startup: {what} failed:\n{proc.stderr[-2000:]}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def measure_startup(repeats: int = 3) -> dict:
    """Start-up cost of a float64 training run, each figure from fresh interpreters.

    The run is what a training loop does first: ``import fastdl``, build the book's
    784-100x5-10 batch-norm network in float64, one ``gradient()`` + Adam ``update()``, then
    ``loss()`` and ``accuracy()`` (the evaluation path). Measured from just before ``import fastdl``
    (interpreter start-up excluded):

    * ``cold_first_step_s``: with an empty kernel cache, i.e. including compiling every kernel
      the run needs;
    * ``warmup_s``: ``fastdl warmup --dtype float64`` on another empty cache, and
      ``after_warmup_first_step_s``: the same run after it (what the warm-up pays ahead);
    * ``import_s`` and ``warm_first_step_s``: medians of ``repeats`` runs with a filled cache.

    Returns
    -------
    dict
    """
    out: dict = {}
    with tempfile.TemporaryDirectory(prefix="fastdl-startup-") as tmp:
        cold = dict(os.environ, NUMBA_CACHE_DIR=os.path.join(tmp, "cold"))
        out["cold_first_step_s"] = _run_snippet(_STARTUP_SNIPPET, cold, "cold run")["first_step_s"]
        warm = [_run_snippet(_STARTUP_SNIPPET, cold, "warm run") for _ in range(repeats)]
        out["import_s"] = statistics.median(r["import_s"] for r in warm)
        out["warm_first_step_s"] = statistics.median(r["first_step_s"] for r in warm)
        ahead = dict(os.environ, NUMBA_CACHE_DIR=os.path.join(tmp, "warmup"))
        t0 = time.perf_counter()
        proc = subprocess.run([sys.executable, "-m", "fastdl", "warmup", "--dtype", "float64"], env=ahead,
                              capture_output=True, text=True, check=False)
        if proc.returncode != 0:
            raise RuntimeError(f"measure_startup: fastdl warmup failed:\n{proc.stderr[-2000:]}")
        out["warmup_s"] = time.perf_counter() - t0
        out["after_warmup_first_step_s"] = _run_snippet(_STARTUP_SNIPPET, ahead, "run after warmup")["first_step_s"]
    return out



def measure_step_profile(dtypes: Sequence[str] = DTYPES, *, repeat: int = 200, seed: int = 0) -> dict:
    """Phase breakdown of fastdl's ``train-step-bn`` (784-100x5-10 + batch norm, batch 100, Adam).

    :func:`fastdl.profiler.profile_step` on the same network, data and optimizer as the
    ``train-step-bn`` case; returns ``{dtype: StepProfile.to_dict()}`` (``non_gemm_share`` is the
    fraction of the step outside the GEMMs).
    """
    nets = importlib.import_module("fastdl.nets")
    optim = importlib.import_module("fastdl.optim")
    from .profiler import profile_step

    out = {}
    for dtype in dtypes:
        x, t, (_, d, hidden, classes) = _step_data(dtype, seed)
        np.random.seed(seed)
        net = nets.MultiLayerNetExtend(d, list(hidden), classes, use_batchnorm=True, dtype=np.dtype(dtype))
        out[dtype] = profile_step(net, x, t, optimizer=optim.Adam(lr=1e-3), repeat=repeat, warmup=20,
                                  label="fastdl").to_dict()
    return out

#: issue 5's table: (work, op, size, dtypes, criterion, bound). Criteria: 'time' (median <= bound s),
#: 'x torch' / 'x ref' (speed-up >= bound), 'of peak' (achieved / triad bandwidth >= bound),
#: 'non-GEMM share' (<= bound, from the profiler), 'startup' (the measure_startup key in ``op`` <= bound s).
TARGETS = (
    ("Adam update, 10K params", "adam-update", "10K", ("float32",), "time", 3e-6),
    ("Adam update, 10K params", "adam-update", "10K", ("float64",), "time", 6e-6),
    ("Adam update, 1M params", "adam-update", "1M", ("float32",), "x torch", 2.0),
    ("Adam update, 1M params", "adam-update", "1M", ("float64",), "x torch", 1.5),
    ("Adam update, 1M params", "adam-update", "1M", DTYPES, "x ref", 20.0),
    ("Adam update, 8M params", "adam-update", "8M", DTYPES, "of peak", 0.85),
    *((f"{op.split('-')[0]} update, 1M params", op, "1M", DTYPES, "x ref", 10.0)
      for op in ("sgd-update", "momentum-update", "nesterov-update", "adagrad-update", "rmsprop-update")),
    ("batch norm fwd+bwd (layer calls), 100x100", "batchnorm-fwd-bwd", "100x100", ("float64",), "time", 10e-6),
    ("batch norm fwd+bwd (layer calls), 100x100", "batchnorm-fwd-bwd", "100x100", DTYPES, "x ref", 10.0),
    ("batch norm fwd+bwd, 1024x4096", "batchnorm-fwd-bwd", "1024x4096", ("float32",), "time", 2.5e-3),
    ("batch norm fwd+bwd, 1024x4096", "batchnorm-fwd-bwd", "1024x4096", ("float64",), "time", 5e-3),
    ("batch norm fwd+bwd, 1024x4096", "batchnorm-fwd-bwd", "1024x4096", DTYPES, "x torch", 2.0),
    ("training step 784-100x5-10 + BN, b100, Adam", "train-step-bn", "784-100x5-10-b100", ("float64",), "time",
     1.05e-3),
    ("training step 784-100x5-10 + BN, b100, Adam", "train-step-bn", "784-100x5-10-b100", ("float32",), "time",
     0.6e-3),
    ("training step 784-100x5-10 + BN, b100, Adam", "train-step-bn", "784-100x5-10-b100", ("float64",),
     "x torch", 1.8),
    ("training step 784-100x5-10 + BN, b100, Adam", "train-step-bn", "784-100x5-10-b100", ("float32",),
     "x torch", 2.2),
    ("training step 784-100x5-10 + BN, b100, Adam", "train-step-bn", "784-100x5-10-b100", DTYPES, "x ref", 3.0),
    ("training step 784-100x5-10 + BN: work outside the GEMMs (profiler)", "non_gemm_share", "784-100x5-10-b100",
     DTYPES, "non-GEMM share", 0.15),
    ("start-up: import fastdl", "import_s", "-", ("-",), "startup", 0.5),
    ("start-up: warm cache, import + first training step (f64)", "warm_first_step_s", "-", ("-",), "startup", 1.5),
    ("start-up: cold cache, import + compile + first step (f64)", "cold_first_step_s", "-", ("-",), "startup", 20.0),
)


def _fmt_bound(criterion: str, bound: float) -> str:
    if criterion in ("time", "startup"):
        return f"<= {_fmt_time(bound)}"
    if criterion == "of peak":
        return f">= {100 * bound:.0f}% of triad"
    if criterion == "non-GEMM share":
        return f"<= {100 * bound:.0f}% of the step"
    return f">= {bound:g}{criterion}"


def target_rows(results: Iterable[dict], peaks: dict | None = None, startup: dict | None = None,
                step_profile: dict | None = None) -> list[dict]:
    """Issue 5's targets against a run: one row per (target, dtype) with the measured value and met/missed.

    ``startup`` is :func:`measure_startup`'s dict, ``step_profile`` :func:`measure_step_profile`'s.
    Targets whose measurement is absent (torch not installed, start-up not measured) get ``met=None``.
    """
    rows = {(r["op"], r["size"], r["dtype"]): r for r in table_rows(results, peaks)}
    out = []
    for work, op, size, dtypes, criterion, bound in TARGETS:
        for dt in dtypes:
            value = None
            if criterion == "startup":
                value = (startup or {}).get(op)
            elif criterion == "non-GEMM share":
                value = ((step_profile or {}).get(dt) or {}).get(op)
            elif (row := rows.get((op, size, dt))) is not None:
                value = {"time": row["median_s"].get("fastdl"), "x torch": row["speedup_vs_torch"],
                         "x ref": row["speedup_vs_reference"], "of peak": row["fraction_of_peak"]}.get(criterion)
            if value is None:
                met = None
            elif criterion in ("time", "startup", "non-GEMM share"):
                met = value <= bound
            else:
                met = value >= bound
            if criterion in ("time", "startup"):
                shown = _fmt_time(value)
            elif criterion in ("of peak", "non-GEMM share") and value is not None:
                shown = f"{100 * value:.0f}%"
            else:
                shown = f"{value:.2f}x" if value is not None else "-"
            out.append({"work": work, "dtype": dt, "criterion": criterion, "bound": bound, "value": value,
                        "target": _fmt_bound(criterion, bound), "measured": shown if value is not None else "-",
                        "met": met})
    return out


def format_targets(rows: list[dict], markdown: bool = False) -> str:
    """The :func:`target_rows` as a plain-text or markdown table."""
    head = ["target (issue 5)", "dtype", "bound", "measured", "met"]
    body = [[r["work"], r["dtype"], r["target"], r["measured"],
             {True: "yes", False: "NO", None: "not measured"}[r["met"]]] for r in rows]
    if markdown:
        lines = ["| " + " | ".join(head) + " |", "|---|---|---|---:|---|"]
        return "\n".join(lines + ["| " + " | ".join(b) + " |" for b in body])
    widths = [max(len(c) for c in col) for col in zip(head, *body)]
    lines = ["  ".join(h.ljust(w) for h, w in zip(head, widths)), "  ".join("-" * w for w in widths)]
    return "\n".join(lines + ["  ".join(c.ljust(w) for c, w in zip(b, widths)) for b in body])


# ----------------------------------------------------------------------------------------------
# command line
# ----------------------------------------------------------------------------------------------

def _info() -> dict:
    from . import __version__, runtime

    info = dict(runtime.info(), fastdl=__version__)
    try:
        import torch

        info["torch"] = torch.__version__
        info["torch_threads"] = torch.get_num_threads()
    except ImportError:
        info["torch"] = None
    info["timestamp"] = time.strftime("%Y-%m-%dT%H:%M:%S%z")
    if hasattr(os, "getloadavg"):
        info["loadavg_at_start"] = round(os.getloadavg()[0], 2)
    return info


def blas_probe(n: int = 100, calls: int = 50) -> float:
    """Median seconds of an ``n x n`` float64 GEMM (``np.dot``): a stall detector.

    A 100x100 GEMM takes ~0.05-0.1 ms on the development machine. When another process occupies
    a core, multi-threaded OpenBLAS was measured to stall ~16 ms per call (plain NumPy, no fastdl
    involved); :func:`run_matrix` figures containing GEMMs are then meaningless.
    """
    rng = np.random.default_rng(0)
    a, b = rng.standard_normal((n, n)), rng.standard_normal((n, n))
    out = np.empty((n, n))
    times = []
    for _ in range(calls):
        t0 = time.perf_counter()
        np.dot(a, b, out=out)
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def _emit(results: list[dict], peaks: dict | None, info: dict, args: argparse.Namespace, stem: str,
          startup: dict | None = None, step_profile: dict | None = None) -> None:
    main = [r for r in results if not r["op"].startswith("interleave")]
    inter = [r for r in results if r["op"].startswith("interleave")]
    if main:
        print(format_markdown(main, peaks, info) if args.markdown else format_table(main, peaks))
        targets = target_rows(main, peaks, startup, step_profile)
        if any(r["met"] is not None for r in targets):
            print("\nIssue 5 targets (from this run)" + ("\n" if args.markdown else ""))
            print(format_targets(targets, markdown=args.markdown))
    if startup:
        print("\nStart-up (fresh interpreters, float64 batch-norm net, one step + loss + accuracy): "
              + ", ".join(f"{k} {v:.2f} s" for k, v in startup.items()))
    for dt, prof in (step_profile or {}).items():
        phases = ", ".join(f"{k} {v * 1e6:.0f} us" for k, v in prof["phases"].items())
        print(f"\nTraining step 784-100x5-10 + BN, {dt} (fastdl profile --step, median of {prof['repeat']}): "
              f"{phases}; whole step {prof['step_s'] * 1e3:.3f} ms, outside the GEMMs "
              f"{100 * prof['non_gemm_share']:.1f}%")
    if inter:
        print("\nThreading policy: fastdl kernels between BLAS GEMMs, forced serial / parallel / default threshold"
              + (" (median per loop)\n" if args.markdown else ""))
        print(format_markdown(inter, None) if args.markdown else format_table(inter, None))
    if args.out:
        out = Path(args.out)
        out.mkdir(parents=True, exist_ok=True)
        png = plot_results(results, out / f"{stem}.png", peaks)
        print(f"\nwrote {png}", file=sys.stderr)


def _cmd_bench(args: argparse.Namespace) -> int:
    if getattr(args, "bench_command", None) == "report":
        results, peaks, info = load_benchmark_json(args.file)
        if not results:
            print(f"{args.file}: no fastdl bench/ results (extra_info op/size/dtype/impl) found", file=sys.stderr)
            return 1
        _emit(results, peaks, info, args, Path(args.file).stem)
        return 0
    dtypes = DTYPES if args.dtype == "all" else (args.dtype,)
    configure_torch_threads()
    matrix = default_matrix(quick=args.quick, dtypes=dtypes, torch=not args.no_torch)
    print("measuring peaks ...", file=sys.stderr)
    peaks = measure_peaks(triad_bytes=LLC_BYTES // 4 if args.quick else 4 * LLC_BYTES,
                          gemm_n=512 if args.quick else 2048, repeats=2 if args.quick else 5)
    info = _info()
    load, cores = info.get("loadavg_at_start"), os.cpu_count() or 1
    if load is not None and load > 0.5 * cores:
        print(f"warning: load average {load} on {cores} cores: other processes compete for the cores, and "
              "multi-threaded BLAS GEMMs then wait for descheduled threads (milliseconds per call); "
              "the figures will be unreliable", file=sys.stderr)
    t0 = time.perf_counter()
    probes = [blas_probe()]
    results = run_matrix(matrix, progress=not args.no_progress)
    probes.append(blas_probe())
    info["matrix_seconds"] = time.perf_counter() - t0
    startup = None
    if not (args.quick or args.no_startup):
        print("measuring start-up (cold and warm kernel cache, fresh interpreters) ...", file=sys.stderr)
        startup = measure_startup()
    step_profile = None
    if not args.quick and ("train-step-bn", "784-100x5-10-b100") in matrix.entries:
        print("profiling the fused training step ...", file=sys.stderr)
        step_profile = measure_step_profile(dtypes)
    info["blas_probe_100x100_s"] = {"before": probes[0], "after": probes[1]}
    if max(probes) > 1e-3:
        print(f"warning: a 100x100 GEMM took {max(probes) * 1e3:.1f} ms (normally < 0.1 ms): BLAS threads "
              "stalled during this run (another process on the cores?); GEMM-bound figures are unreliable. "
              "Re-run on a quiet machine, or with OPENBLAS_NUM_THREADS=1.", file=sys.stderr)
    info["command"] = "fastdl " + " ".join(sys.argv[1:]) if sys.argv else None
    if args.out:
        out = Path(args.out)
        out.mkdir(parents=True, exist_ok=True)
        (out / "bench.json").write_text(json.dumps({"info": info, "peaks": peaks, "results": results,
                                                    "startup": startup, "step_profile": step_profile}, indent=2))
        print(f"wrote {out / 'bench.json'}", file=sys.stderr)
    _emit(results, peaks, info, args, "bench", startup, step_profile)
    return 0


def _cmd_warmup(args: argparse.Namespace) -> int:
    if args.measure:
        cost = measure_compile_cost(args.dtype)
        for label in ("cold", "warm"):
            c = cost[label]
            print(f"{label:5s} cache: warm-up {c['first_s']:.2f} s ({c['compiled']} signatures compiled, "
                  f"{c['loaded']} loaded), steady-state {c['steady_s'] * 1e3:.1f} ms, import {c['import_s']:.2f} s")
        return 0
    warmup(args.dtype, verbose=True, parallel=args.parallel)
    return 0


def _add_output_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("--out", metavar="DIR", help="write bench.json and a PNG into DIR")
    p.add_argument("--markdown", action="store_true", help="print a markdown table (for the README)")


def register_cli(subparsers) -> None:
    """Add ``bench`` (with ``bench report FILE.json``) and ``warmup`` to the ``fastdl`` command."""
    bench = subparsers.add_parser(
        "bench", help="time reference / fastdl / torch on a fixed matrix, with machine peaks",
        description="Measure this machine's peaks, then time a fixed matrix of ops (about 3 minutes "
                    "on 2 cores). 'fastdl bench report FILE.json' formats a pytest --benchmark-json file.")
    _add_output_options(bench)
    bench.add_argument("--quick", action="store_true", help="a seconds-long subset")
    bench.add_argument("--dtype", choices=("float32", "float64", "all"), default="all")
    bench.add_argument("--no-torch", action="store_true", help="leave torch out even if installed")
    bench.add_argument("--no-progress", action="store_true", help="no progress bar")
    bench.add_argument("--no-startup", action="store_true",
                       help="skip the start-up measurement (fresh interpreters, cold and warm cache; ~30 s)")
    bench.set_defaults(func=_cmd_bench)
    sub = bench.add_subparsers(dest="bench_command", metavar="report")
    report = sub.add_parser("report", help="table and plot from a pytest --benchmark-json file of bench/")
    report.add_argument("file", metavar="FILE.json")
    _add_output_options(report)
    report.set_defaults(func=_cmd_bench)

    wp = subparsers.add_parser("warmup", help="compile (or load from cache) every kernel a training run uses")
    wp.add_argument("--dtype", choices=("float32", "float64", "all"), default="all")
    wp.add_argument("--measure", action="store_true",
                    help="measure cold compile and warm-cache load in fresh subprocesses (empty cache dir)")
    wp.add_argument("--parallel", action="store_true",
                    help="also compile the parallel kernels (used by arrays of ~1M values and more)")
    wp.set_defaults(func=_cmd_warmup)

