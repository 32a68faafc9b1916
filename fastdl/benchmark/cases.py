"""The op matrix: :class:`Case` and :func:`make_case`, one definition of every benchmarked call.

Layer and optimizer ops come from the tables of :mod:`fastdl.benchmark.tables` and from
:data:`fastdl.optim.OPTIMIZERS`; :data:`LAYER_OPS` and :data:`OPTIMIZER_OPS` are live views of them.
The training steps (:data:`STEP_OPS`) and the threading-policy loops (:func:`make_interleave_case`)
are defined here.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field

import numpy as np

from .. import _checks, layers, nets, optim, reference, runtime
from .tables import LayerData, Unavailable, layer_table, torch_module, torch_optimizer, torch_twins
from .traffic import Traffic, optimizer_traffic

IMPLS = ("reference", "fastdl", "torch")
DTYPES = tuple(dt.name for dt in _checks.FLOAT_DTYPES)

#: layer-op size label -> (N, D, H); H is affine's output width (weights of 10K, 1M, 8M values)
LAYER_SIZES = {"100x100": (100, 100, 100), "256x1024": (256, 1024, 1024), "1024x4096": (1024, 4096, 2048)}
#: optimizer size label -> shape of W
PARAM_SIZES = {"10K": (100, 100), "1M": (1024, 1024), "8M": (2048, 4096)}
STEP_SIZES = {"784-100x5-10-b100": (100, 784, (100,) * 5, 10)}
STEP_OPS = ("train-step", "train-step-bn")
#: sizes used only by the interleave loops: 1024x1024 activations (1M values, 4-8 MiB per array)
_INTERLEAVE_ONLY_SIZES = {"1024x1024": (1024, 1024, 1024)}


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


def _layer_ops() -> tuple[str, ...]:
    table = layer_table()
    ops = [f"{name}-{direction}" for name in table for direction in ("forward", "backward")]
    return (*ops, *(f"{name}-fwd-bwd" for name, row in table.items() if row.fwd_bwd))


def _split_layer_op(op: str) -> tuple[str, str]:
    """``'batchnorm-fwd-bwd'`` -> ``('batchnorm', 'fwd-bwd')``; ``'relu-forward'`` -> ``('relu', 'forward')``."""
    if op.endswith("-fwd-bwd"):
        return op[:-len("-fwd-bwd")], "fwd-bwd"
    name, direction = op.rsplit("-", 1)
    return name, direction


def _layer_data(size: str, dtype: str, seed: int) -> LayerData:
    n, d, h = LAYER_SIZES[size] if size in LAYER_SIZES else _INTERLEAVE_ONLY_SIZES[size]
    rng = np.random.default_rng(seed)
    return LayerData(rng, n, d, h, rng.standard_normal((n, d)).astype(dtype), dtype, seed)


def _layer_case(op: str, size: str, dtype: str, impl: str, seed: int) -> Callable[[], object]:
    name, direction = _split_layer_op(op)
    setup = layer_table()[name].setups.get(impl)
    if setup is None:
        raise Unavailable(f"{op} has no {impl} implementation")
    calls = setup(_layer_data(size, dtype, seed))
    if direction == "backward":
        calls.forward()
    return {"forward": calls.forward, "backward": calls.backward, "fwd-bwd": calls.fwd_bwd}[direction]


def _optimizer_name(op: str) -> str:
    return op[:-len("-update")]


def _optimizer_data(size: str, dtype: str, seed: int):
    rng = np.random.default_rng(seed)
    rows, cols = PARAM_SIZES[size]
    params = {"W": (0.01 * rng.standard_normal((rows, cols))).astype(dtype), "b": np.zeros(cols, dtype=dtype)}
    grads = {k: (0.01 * rng.standard_normal(v.shape)).astype(dtype) for k, v in params.items()}
    return params, grads


def _numpy_optimizer(name: str, impl: str, lr: float):
    opt = optim.get_optimizer(name, lr=lr)
    if impl == "fastdl":
        return opt
    rule = optim.RULES.get(name)
    cls = rule.reference_class() if rule is not None else getattr(reference, type(opt).__name__, None)
    if cls is None:
        raise Unavailable(f"fastdl.reference has no {type(opt).__name__}")
    return cls(lr=lr)


@functools.cache
def state_arrays(name: str) -> int:
    """Per-parameter state arrays of optimizer ``name`` (Momentum's ``v``: 1, Adam's ``m`` and ``v``: 2).

    Counted after one update of a tiny ``{'W': ...}`` (by the reference class where there is one: no
    kernel to compile): the attributes holding a dict with a ``'W'`` array, as the book keeps its
    state. The traffic model of an update is then ``3 + 2 * state_arrays`` arrays: the parameter
    read and written, the gradient read, each state read and written.
    """
    rule = optim.RULES.get(name)
    if rule is not None:  # the record says it (its traffic is 3 + 2 * its states)
        return len(rule.state)
    try:  # a class added to OPTIMIZERS alone
        opt = _numpy_optimizer(name, "reference", 0.01)
    except Unavailable:
        opt = optim.get_optimizer(name)
    opt.update({"W": np.zeros(4)}, {"W": np.ones(4)})
    return sum(1 for v in vars(opt).values() if isinstance(v, dict) and isinstance(v.get("W"), np.ndarray))


def _numpy_optimizer_case(op: str, size: str, dtype: str, impl: str, seed: int) -> Callable[[], object]:
    opt = _numpy_optimizer(_optimizer_name(op), impl, 1e-3)
    params, grads = _optimizer_data(size, dtype, seed)
    update = lambda: opt.update(params, grads)  # noqa: E731
    update.state = {"params": params, "grads": grads}
    return update


def _torch_optimizer_case(op: str, size: str, dtype: str, seed: int) -> Callable[[], object]:
    torch = torch_module()
    name = _optimizer_name(op)
    if name not in torch_twins():
        raise Unavailable(f"{op} has no torch twin")
    params, grads = _optimizer_data(size, dtype, seed)
    return torch_optimizer(torch, name, _torch_params(torch, params, grads), 1e-3).step


def _torch_params(torch, params: dict, grads: dict) -> list:
    """Tensors sharing the memory of ``params``, each with its gradient set from ``grads``."""
    tparams = []
    for key, value in params.items():
        p = torch.from_numpy(value).requires_grad_(True)
        p.grad = torch.from_numpy(grads[key])
        tparams.append(p)
    return tparams


# ----------------------------------------------------------------------------------------------
# gradient clipping: ``<rule>-<option>-update``
# ----------------------------------------------------------------------------------------------

#: option -> value of the clipping rows (gradients are ``0.01 * N(0, 1)``: clipvalue 0.005 clips about
#: 60 % of the elements, a norm of 1 scales the 1M and 8M gradients down by about 10x and 29x)
CLIP_VALUES = {"clipvalue": 0.005, "clipnorm": 1.0, "global_clipnorm": 1.0}
#: clipping op -> (optimizer name, option): SGD and Adam with each option
CLIP_OPS = {f"{name}-{option}-update": (name, option) for name in ("sgd", "adam") for option in CLIP_VALUES}
#: sizes of the clipping rows (where a norm pass is worth measuring)
CLIP_SIZES = ("1M", "8M")


def _numpy_clip_case(op: str, size: str, dtype: str, impl: str, seed: int) -> Callable[[], object]:
    name, option = CLIP_OPS[op]
    value = CLIP_VALUES[option]
    params, grads = _optimizer_data(size, dtype, seed)
    if impl == "fastdl":
        opt = optim.get_optimizer(name, lr=1e-3, **{option: value})
        update = lambda: opt.update(params, grads)  # noqa: E731
    else:  # the book's optimizer on gradients clipped as Keras does, in NumPy
        opt = _numpy_optimizer(name, impl, 1e-3)
        update = lambda: opt.update(params, reference.clip_gradients(grads, option, value))  # noqa: E731
    update.state = {"params": params, "grads": grads}
    return update


def _torch_clip_case(op: str, size: str, dtype: str, seed: int) -> Callable[[], object]:
    """``torch.nn.utils.clip_grad_value_`` / ``clip_grad_norm_`` (per parameter for clipnorm), then ``step()``."""
    torch = torch_module()
    name, option = CLIP_OPS[op]
    value = CLIP_VALUES[option]
    params, grads = _optimizer_data(size, dtype, seed)
    tparams = _torch_params(torch, params, grads)
    opt = torch_optimizer(torch, name, tparams, 1e-3)
    utils = torch.nn.utils
    if option == "clipvalue":
        clip = lambda: utils.clip_grad_value_(tparams, value)  # noqa: E731
    elif option == "clipnorm":
        clip = lambda: [utils.clip_grad_norm_(t, value) for t in tparams]  # noqa: E731
    else:
        clip = lambda: utils.clip_grad_norm_(tparams, value)  # noqa: E731

    def step():
        clip()
        opt.step()
    step.state = {"params": params, "grads": grads}  # (the tensors share these arrays' memory)
    return step


# ----------------------------------------------------------------------------------------------
# training steps
# ----------------------------------------------------------------------------------------------

def step_data(dtype: str, seed: int):
    """``(x, t, (n, d, hidden, classes))`` of the training-step cases (the book's 784-100x5-10, batch 100)."""
    n, d, hidden, classes = STEP_SIZES["784-100x5-10-b100"]
    rng = np.random.default_rng(seed)
    return rng.standard_normal((n, d)).astype(dtype), rng.integers(0, classes, n), (n, d, hidden, classes)


def numpy_step_case(op: str, dtype: str, impl: str, seed: int) -> Callable[[], object]:
    """``gradient()`` + Adam ``update()`` of the book's network on the ``impl`` backend."""
    x, t, (_, d, hidden, classes) = step_data(dtype, seed)
    np.random.seed(seed)
    net = nets.MultiLayerNetExtend(d, list(hidden), classes, use_batchnorm=op == "train-step-bn",
                                   dtype=np.dtype(dtype), backend=impl)
    opt = _numpy_optimizer("adam", impl, 1e-3)

    def step():
        opt.update(net.params, net.gradient(x, t))

    return step


def _torch_step_case(op: str, dtype: str, seed: int) -> Callable[[], object]:
    torch = torch_module()
    x_np, t_np, (_, d, hidden, classes) = step_data(dtype, seed)
    torch.manual_seed(seed)
    modules, width = [], d
    for h in hidden:
        modules.append(torch.nn.Linear(width, h))
        if op == "train-step-bn":
            modules.append(torch.nn.BatchNorm1d(h, eps=1e-6, momentum=0.1))
        modules.append(torch.nn.ReLU())
        width = h
    modules.append(torch.nn.Linear(width, classes))
    model = torch.nn.Sequential(*modules).to({"float32": torch.float32, "float64": torch.float64}[dtype])
    loss_fn = torch.nn.CrossEntropyLoss()
    x, t = torch.from_numpy(x_np), torch.from_numpy(t_np)
    opt = torch_optimizer(torch, "adam", list(model.parameters()), 1e-3)

    def step():
        opt.zero_grad()
        loss_fn(model(x), t).backward()
        opt.step()

    return step


# ----------------------------------------------------------------------------------------------
# the matrix's names, work and entry point
# ----------------------------------------------------------------------------------------------

class _Names(Sequence):
    """A live, read-only sequence of op names computed from a table (so rows added later show up)."""

    def __init__(self, names: Callable[[], tuple[str, ...]]) -> None:
        self._names = names

    def __getitem__(self, i):
        return self._names()[i]

    def __len__(self) -> int:
        return len(self._names())

    def __iter__(self) -> Iterator[str]:
        return iter(self._names())

    def __contains__(self, op) -> bool:
        return op in self._names()

    def __repr__(self) -> str:
        return repr(self._names())


#: ``<name>-forward`` / ``-backward`` of every :func:`layer_table` row (``-fwd-bwd`` where the row asks)
LAYER_OPS = _Names(_layer_ops)
#: ``<name>-update`` for every optimizer of :data:`fastdl.optim.OPTIMIZERS`
OPTIMIZER_OPS = _Names(lambda: tuple(f"{name}-update" for name in optim.OPTIMIZERS))


def _optimizer_values(size: str) -> int:
    rows, cols = PARAM_SIZES[size]
    return rows * cols + cols  # W and b


def work(op: str, size: str, dtype: str) -> tuple[float, str]:
    """``(amount, unit)`` of one call: bytes of compulsory traffic (``'GB/s'``) or flops (``'GFLOP/s'``)."""
    item = np.dtype(dtype).itemsize
    if op in OPTIMIZER_OPS:
        return traffic(op, size, dtype).bytes, "GB/s"
    if op in CLIP_OPS:  # the update's arrays, and one more read of the gradient for a norm
        name, option = CLIP_OPS[op]
        rows, cols = PARAM_SIZES[size]
        arrays = 3 + 2 * state_arrays(name) + (option != "clipvalue")
        return float(arrays * item * (rows * cols + cols)), "GB/s"
    if op in STEP_OPS:
        n, d, hidden, classes = STEP_SIZES[size]
        widths = (d, *hidden, classes)
        macs = sum(a * b for a, b in zip(widths[:-1], widths[1:]))
        return float(3 * 2 * n * macs), "GFLOP/s"
    name, direction = _split_layer_op(op)
    n, d, h = LAYER_SIZES[size] if size in LAYER_SIZES else _INTERLEAVE_ONLY_SIZES[size]
    return layer_table()[name].work(direction, n, d, h, item)


def traffic(op: str, size: str, dtype: str) -> Traffic | None:
    """The :class:`~fastdl.benchmark.traffic.Traffic` of one call of a layer or optimizer op (None for the
    training steps, which mix GEMMs and streams, and for layer rows whose work model is a plain function).

    Optimizers: the ``traffic`` of the rule's record (arrays read plus written per value) and its
    state arrays; a class in :data:`fastdl.optim.OPTIMIZERS` alone: ``3 + 2 * state_arrays``. Clipping
    rows (:data:`CLIP_OPS`): their update's, plus one more read of the gradient for a norm.
    """
    item = np.dtype(dtype).itemsize
    if op in OPTIMIZER_OPS or op in CLIP_OPS:
        name, option = CLIP_OPS[op] if op in CLIP_OPS else (_optimizer_name(op), "clipvalue")
        rule = optim.RULES.get(name)
        states = state_arrays(name)
        moved = rule.traffic if rule is not None else 3 + 2 * states
        moved += option != "clipvalue"  # a norm reads the gradient once more
        return optimizer_traffic(moved, states, _optimizer_values(size), item)
    if op in STEP_OPS:
        return None
    name, direction = _split_layer_op(op)
    n, d, h = LAYER_SIZES[size] if size in LAYER_SIZES else _INTERLEAVE_ONLY_SIZES[size]
    model = getattr(layer_table()[name].work, "traffic", None)
    return model(direction, n, d, h, item) if model is not None else None


def sizes_for(op: str) -> tuple[str, ...]:
    """Size labels an op is defined for."""
    if op in OPTIMIZER_OPS:
        return tuple(PARAM_SIZES)
    if op in STEP_OPS:
        return tuple(STEP_SIZES)
    if op in CLIP_OPS:
        return CLIP_SIZES
    if op in LAYER_OPS:
        return tuple(LAYER_SIZES)
    raise ValueError(f"make_case: op must be one of {(*LAYER_OPS, *OPTIMIZER_OPS, *CLIP_OPS, *STEP_OPS)}; got {op!r}")


def make_case(op: str, size: str, dtype: str, impl: str, *, seed: int = 0) -> Case:
    """Build one benchmark case (data allocated, layer state prepared, nothing timed).

    Parameters
    ----------
    op : str
        One of :data:`LAYER_OPS`, :data:`OPTIMIZER_OPS`, :data:`CLIP_OPS`, :data:`STEP_OPS`.
    size : str
        A label of :data:`LAYER_SIZES`, :data:`PARAM_SIZES` (:data:`CLIP_SIZES` for clipping) or
        ``'784-100x5-10-b100'`` (steps).
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
    ValueError
        An unknown op, size, dtype or impl.
    Unavailable
        When the implementation cannot run here (torch not installed, no twin for this op).
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
    elif op in CLIP_OPS:
        fn = (_torch_clip_case(op, size, dtype, seed) if impl == "torch"
              else _numpy_clip_case(op, size, dtype, impl, seed))
    elif op in STEP_OPS:
        fn = _torch_step_case(op, dtype, seed) if impl == "torch" else numpy_step_case(op, dtype, impl, seed)
    else:
        fn = _layer_case(op, size, dtype, impl, seed)
    amount, unit = work(op, size, dtype)
    return Case(op, size, dtype, impl, fn, amount, unit, getattr(fn, "state", {}))


#: interleave op -> size; policies force every fastdl kernel serial or parallel (or keep the default)
INTERLEAVE_OPS = {"interleave-step-bn": "784-100x5-10-b100", "interleave-affine-bn-relu": "256x1024",
                  "interleave-affine-bn-relu-1M": "1024x1024"}
INTERLEAVE_POLICIES = {"serial": 2**62, "parallel": 0, "default": None}


def make_interleave_case(op: str, dtype: str, policy: str, *, seed: int = 0) -> Case:
    """A loop alternating BLAS GEMMs with fastdl kernels, under a forced threading policy.

    ``policy='parallel'`` runs every fastdl kernel's parallel variant between the GEMMs
    (``runtime.parallel_threshold(0)``), ``'serial'`` forces the serial variants, ``'default'``
    keeps the process's choice (the per-family crossover table unless the user set a threshold).
    ``interleave-step-bn`` is the 784-100x5-10 training step with batch norm (batch 100, Adam);
    ``interleave-affine-bn-relu`` is Affine(1024 -> 1024) + BatchNormalization + Relu forward and
    backward on a 256x1024 batch (1024x1024 for the ``-1M`` form).

    Returns
    -------
    Case
        ``impl`` is ``'fastdl-<policy>'``.
    """
    if op not in INTERLEAVE_OPS:
        raise ValueError(f"make_interleave_case: op must be one of {tuple(INTERLEAVE_OPS)}; got {op!r}")
    if policy not in INTERLEAVE_POLICIES:
        raise ValueError(f"make_interleave_case: policy must be one of {tuple(INTERLEAVE_POLICIES)}; got {policy!r}")
    size = INTERLEAVE_OPS[op]
    if op == "interleave-step-bn":
        body = numpy_step_case("train-step-bn", dtype, "fastdl", seed)
        amount, unit = work("train-step-bn", size, dtype)
    else:
        data = _layer_data(size, dtype, seed)
        n, d, h, x, rng = data.n, data.d, data.h, data.x, data.rng
        chain = [layers.Affine((0.03 * rng.standard_normal((d, h))).astype(dtype), np.zeros(h, dtype=dtype)),
                 layers.BatchNormalization(np.ones(h, dtype=dtype), np.zeros(h, dtype=dtype)), layers.Relu()]
        dout = rng.standard_normal((n, h)).astype(dtype)

        def body():
            y = chain[0].forward(x)
            y = chain[1].forward(y, train_flg=True)
            chain[2].forward(y)
            g = chain[2].backward(dout)
            chain[0].backward(chain[1].backward(g))

        amount, unit = float(6 * n * d * h), "GFLOP/s"
    threshold = INTERLEAVE_POLICIES[policy]
    if threshold is None:
        fn = body
    else:
        def fn():
            with runtime.parallel_threshold(threshold):
                body()
    return Case(op, size, dtype, f"fastdl-{policy}", fn, amount, unit)
