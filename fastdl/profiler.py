"""Per-layer timing of any book-style network: where a training step spends its time.

A *book-style network* is anything with an ordered dict ``layers`` (each with ``forward`` and
``backward``) and a ``last_layer`` (the loss, ``forward(x, t)`` and ``backward(dout=1)``; the book's
chapter-5 ``TwoLayerNet`` calls it ``lastLayer``, also accepted), like the book's
``MultiLayerNetExtend``, :class:`fastdl.nets.MultiLayerNetExtend` on any backend, or your own
network built from :mod:`fastdl.reference` or the book's ``common.layers``. So you can profile your
NumPy network, swap in fastdl's layers, and compare::

    report = fastdl.profile(net, x_batch, t_batch, optimizer=Adam())
    print(report)
    report.plot("profile.png")

How it measures
    :func:`profile` runs whole training steps: forward through every layer in order (layers whose
    ``forward`` takes ``train_flg`` get ``train_flg=True``), the loss, the backward pass in reverse,
    and, if an optimizer is given, ``optimizer.update(network.params, grads)`` with the gradients
    read from the layers (``dW``/``db``/``dgamma``/``dbeta`` of the layer holding each parameter
    array). Every call is timed on its own inside the real sequence, so caches are as warm or cold
    as in training. After ``warmup`` untimed steps, each figure is the median over ``repeat`` steps.

Rates
    Affine layers report GFLOP/s (``2*N*D*H`` forward, ``4*N*D*H`` backward). The others report an
    estimate of the compulsory memory traffic in GB/s: forward reads its input and writes its
    output; backward reads the upstream gradient and the saved input and writes its gradient
    (activation layers: what their :mod:`fastdl.activations` record saves, a mask at a byte per value). The
    optimizer row counts the arrays its update rule reads and writes per parameter (the ``traffic``
    of its record in :mod:`fastdl.optim.rules`: SGD 3, Momentum/Nesterov/AdaGrad/RMSprop 5, Adam 7).
    Weight decay is not added to the gradients.
"""

from __future__ import annotations

import argparse
import inspect
import json
import os
import statistics
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from . import _cliargs, activations, optim, runtime

__all__ = ["LayerTiming", "ProfileComparison", "ProfileReport", "StepProfile", "compare", "profile", "profile_step",
           "register_cli"]

_PARAM_GRADS = (("W", "dW"), ("b", "db"), ("gamma", "dgamma"), ("beta", "dbeta"))


@dataclass
class LayerTiming:
    """Timing of one row of a profile: a layer, the loss layer or the optimizer update.

    Attributes
    ----------
    name : str
        Key in ``network.layers``, ``'loss'`` or ``'optimizer'``.
    kind : str
        Class name of the layer or optimizer.
    forward_s, backward_s : float
        Median seconds of ``forward`` and ``backward`` (the optimizer's update counts as forward).
    share : float
        Fraction of the step's total time.
    samples_per_s : float
        Batch size divided by this row's time.
    rate : float or None
        GFLOP/s (affine) or estimated GB/s (others).
    unit : str
        ``'GFLOP/s'`` or ``'GB/s'``.
    """

    name: str
    kind: str
    forward_s: float
    backward_s: float
    share: float = 0.0
    samples_per_s: float = 0.0
    rate: float | None = None
    unit: str = "GB/s"

    @property
    def total_s(self) -> float:
        return self.forward_s + self.backward_s


@dataclass
class ProfileReport:
    """Result of :func:`profile`: one :class:`LayerTiming` per layer, the loss and the optimizer.

    ``print(report)`` shows a table; :meth:`to_dict` / :meth:`to_json` export it (and
    :meth:`from_dict` / :meth:`from_json` read it back); :meth:`plot` saves a stacked bar chart.
    """

    rows: list[LayerTiming]
    batch_size: int
    dtype: str
    repeat: int
    label: str = ""
    info: dict = field(default_factory=dict)

    @property
    def total_s(self) -> float:
        """Median-based seconds of one whole step (sum of the rows)."""
        return sum(r.total_s for r in self.rows)

    @property
    def samples_per_s(self) -> float:
        return self.batch_size / self.total_s if self.total_s > 0 else float("inf")

    def row(self, name: str) -> LayerTiming:
        """The row called ``name``."""
        for r in self.rows:
            if r.name == name:
                return r
        raise KeyError(name)

    def to_dict(self) -> dict:
        """Plain dict (JSON-serialisable)."""
        return {"label": self.label, "batch_size": self.batch_size, "dtype": self.dtype, "repeat": self.repeat,
                "total_s": self.total_s, "samples_per_s": self.samples_per_s, "info": self.info,
                "rows": [{"name": r.name, "kind": r.kind, "forward_s": r.forward_s, "backward_s": r.backward_s,
                          "total_s": r.total_s, "share": r.share, "samples_per_s": r.samples_per_s,
                          "rate": r.rate, "unit": r.unit} for r in self.rows]}

    def to_json(self, path: str | os.PathLike | None = None, indent: int = 2) -> str:
        """JSON text of :meth:`to_dict`; also written to ``path`` when given."""
        text = json.dumps(self.to_dict(), indent=indent)
        if path is not None:
            Path(path).write_text(text)
        return text

    @classmethod
    def from_dict(cls, data: dict) -> ProfileReport:
        """Inverse of :meth:`to_dict`."""
        keys = ("name", "kind", "forward_s", "backward_s", "share", "samples_per_s", "rate", "unit")
        rows = [LayerTiming(**{k: r[k] for k in keys}) for r in data["rows"]]
        return cls(rows, data["batch_size"], data["dtype"], data["repeat"], data.get("label", ""),
                   data.get("info", {}))

    @classmethod
    def from_json(cls, text_or_path: str | os.PathLike) -> ProfileReport:
        """Read a report from JSON text or a file written by :meth:`to_json`."""
        text = str(text_or_path)
        if not text.lstrip().startswith("{"):
            text = Path(text_or_path).read_text()
        return cls.from_dict(json.loads(text))

    def __str__(self) -> str:
        head = ["layer", "kind", "forward", "backward", "share", "samples/s", "rate"]
        body = [[r.name, r.kind, _fmt_time(r.forward_s), _fmt_time(r.backward_s) if r.backward_s else "-",
                 f"{100 * r.share:.1f}%", f"{r.samples_per_s:,.0f}", _fmt_rate(r.rate, r.unit)] for r in self.rows]
        body.append(["step", "", "", "", "100.0%", f"{self.samples_per_s:,.0f}", _fmt_time(self.total_s)])
        title = (f"{self.label + ': ' if self.label else ''}batch {self.batch_size}, {self.dtype}, "
                 f"median of {self.repeat} steps")
        return title + "\n" + _render(head, body)

    def plot(self, path: str | os.PathLike) -> Path:
        """Save a stacked bar chart (forward + backward per layer) as an image at ``path``."""
        return _plot([self], path)


@dataclass
class ProfileComparison:
    """Two profiles of the same network layout side by side, with the speed-up of each row."""

    baseline: ProfileReport
    candidate: ProfileReport

    def speedups(self) -> dict[str, float]:
        """Row name -> baseline time / candidate time (rows present in both), plus ``'step'``."""
        out = {}
        for r in self.baseline.rows:
            try:
                c = self.candidate.row(r.name)
            except KeyError:
                continue
            out[r.name] = r.total_s / c.total_s if c.total_s > 0 else float("inf")
        out["step"] = self.baseline.total_s / self.candidate.total_s
        return out

    def to_dict(self) -> dict:
        return {"baseline": self.baseline.to_dict(), "candidate": self.candidate.to_dict(),
                "speedups": self.speedups()}

    def __str__(self) -> str:
        b, c = self.baseline, self.candidate
        bl, cl = b.label or "baseline", c.label or "candidate"
        head = ["layer", f"{bl} fwd", f"{bl} bwd", f"{cl} fwd", f"{cl} bwd", "speed-up"]
        speed = self.speedups()
        body = []
        for r in b.rows:
            try:
                o = c.row(r.name)
            except KeyError:
                continue
            body.append([r.name, _fmt_time(r.forward_s), _fmt_time(r.backward_s) if r.backward_s else "-",
                         _fmt_time(o.forward_s), _fmt_time(o.backward_s) if o.backward_s else "-",
                         f"{speed[r.name]:.2f}x"])
        body.append(["step", _fmt_time(b.total_s), "", _fmt_time(c.total_s), "", f"{speed['step']:.2f}x"])
        return (f"batch {b.batch_size}, {b.dtype}, median of {b.repeat} steps "
                f"({bl}: {b.samples_per_s:,.0f} samples/s, {cl}: {c.samples_per_s:,.0f} samples/s)\n"
                + _render(head, body))

    def plot(self, path: str | os.PathLike) -> Path:
        """Stacked bars of both profiles, row by row, side by side."""
        return _plot([self.baseline, self.candidate], path)


def compare(baseline: ProfileReport, candidate: ProfileReport) -> ProfileComparison:
    """Put two profiles side by side (e.g. the reference network and the fastdl one)."""
    return ProfileComparison(baseline, candidate)


# ----------------------------------------------------------------------------------------------

def _fmt_time(seconds: float) -> str:
    if seconds >= 1:
        return f"{seconds:.3g} s"
    if seconds >= 1e-3:
        return f"{seconds * 1e3:.3g} ms"
    return f"{seconds * 1e6:.3g} us"


def _fmt_rate(rate: float | None, unit: str) -> str:
    return f"{rate:.3g} {unit}" if rate else "-"


def _render(head: list[str], body: list[list[str]]) -> str:
    widths = [max(len(c) for c in col) for col in zip(head, *body)]
    lines = ["  ".join(h.ljust(w) if i < 2 else h.rjust(w) for i, (h, w) in enumerate(zip(head, widths)))]
    lines.append("  ".join("-" * w for w in widths))
    lines += ["  ".join(c.ljust(w) if i < 2 else c.rjust(w) for i, (c, w) in enumerate(zip(row, widths)))
              for row in body]
    return "\n".join(lines)


def _takes_train_flg(name: str, layer) -> bool:
    try:
        return "train_flg" in inspect.signature(layer.forward).parameters
    except (TypeError, ValueError):
        return "Dropout" in name or "BatchNorm" in name


def _grad_sources(network, layers: dict) -> list[tuple[str, object, str]]:
    """(param key, layer, gradient attribute) for every entry of ``network.params``, matched by identity."""
    params = getattr(network, "params", None)
    if not params:
        raise ValueError("profile: network must have a 'params' dict when an optimizer is given; got none")
    sources = []
    for key, value in params.items():
        for layer in layers.values():
            act = getattr(layer, "_act", None)
            pairs = _PARAM_GRADS + tuple((q.name, "d" + q.name) for q in act.params) if isinstance(
                act, activations.Activation) else _PARAM_GRADS
            hit = next((g for p, g in pairs if getattr(layer, p, None) is value), None)
            if hit:
                sources.append((key, layer, hit))
                break
        else:
            raise ValueError(f"profile: params[{key!r}] must be the array a layer holds (layer.W, .b, .gamma "
                             f"or .beta, as the book's networks pass them); no layer holds it")
    return sources


def _median(values: list[float]) -> float:
    return statistics.median(values) if values else 0.0


def _layer_rate(layer, x: np.ndarray, out: np.ndarray, fwd: float, bwd: float) -> tuple[float | None, str]:
    W = getattr(layer, "W", None)
    if isinstance(W, np.ndarray) and W.ndim == 2 and hasattr(layer, "b"):
        n = x.shape[0]
        flops = 2.0 * n * W.shape[0] * W.shape[1] * (1 + (2 if bwd else 0))
        return (flops / (fwd + bwd) / 1e9 if fwd + bwd > 0 else None), "GFLOP/s"
    act = getattr(layer, "_act", None)
    if isinstance(act, activations.Activation):  # what the record's kernels read and write
        saved = x.size if act.saves == "mask" else x.nbytes  # (a bool mask: one byte per value)
        nbytes = x.nbytes + out.nbytes + (saved if act.saves == "mask" else 0)
        nbytes += (out.nbytes + saved + x.nbytes) if bwd else 0
    else:
        nbytes = x.nbytes + out.nbytes + ((out.nbytes + 2 * x.nbytes) if bwd else 0)
    return (nbytes / (fwd + bwd) / 1e9 if fwd + bwd > 0 else None), "GB/s"


def profile(network, x: np.ndarray, t: np.ndarray, optimizer=None, repeat: int = 20, warmup: int = 3,
            label: str = "") -> ProfileReport:
    """Time each layer's forward and backward, the loss and (optionally) the optimizer update.

    Parameters
    ----------
    network : object
        A book-style network: ``layers`` (an ordered dict of layers with ``forward``/``backward``)
        and ``last_layer`` (the loss layer; ``lastLayer`` as in the book's chapter-5 ``TwoLayerNet``
        also works); ``params`` too when ``optimizer`` is given.
    x, t : numpy.ndarray
        One batch and its targets (labels or one-hot), passed to the layers as they are.
    optimizer : object, optional
        Anything with ``update(params, grads)``; it changes ``network.params`` (a real step).
    repeat : int
        Timed steps; each figure is the median over them.
    warmup : int
        Untimed steps first (compilation and first-call allocation stay out of the numbers).
    label : str
        Name shown in tables and plots (e.g. ``'reference'``).

    Returns
    -------
    ProfileReport
    """
    layers = getattr(network, "layers", None)
    last = getattr(network, "last_layer", None)
    if last is None:
        last = getattr(network, "lastLayer", None)  # the book's ch05 TwoLayerNet
    if not hasattr(layers, "items") or last is None:
        raise TypeError("profile: network must have an ordered dict 'layers' and a 'last_layer' (or 'lastLayer') "
                        f"(a book-style network); got {type(network).__name__}")
    if not isinstance(repeat, int | np.integer) or repeat < 1:
        raise ValueError(f"profile: repeat must be a positive integer; got {repeat!r}")
    if not isinstance(warmup, int | np.integer) or warmup < 0:
        raise ValueError(f"profile: warmup must be a non-negative integer; got {warmup!r}")
    names = list(layers)
    flags = [_takes_train_flg(n, layers[n]) for n in names]
    sources = _grad_sources(network, layers) if optimizer is not None else []
    clock = time.perf_counter
    n_rows = len(names)
    fwd: list[list[float]] = [[] for _ in range(n_rows + 2)]  # layers, loss, optimizer
    bwd: list[list[float]] = [[] for _ in range(n_rows + 1)]
    shapes: list[tuple[np.ndarray, np.ndarray]] = []
    for step in range(warmup + repeat):
        timed = step >= warmup
        h = x
        inputs = []
        for i, name in enumerate(names):
            layer = layers[name]
            inputs.append(h)
            t0 = clock()
            h = layer.forward(h, train_flg=True) if flags[i] else layer.forward(h)
            dt = clock() - t0
            if timed:
                fwd[i].append(dt)
        t0 = clock()
        last.forward(h, t)
        dt = clock() - t0
        if timed:
            fwd[n_rows].append(dt)
        t0 = clock()
        dout = last.backward(1)
        dt = clock() - t0
        if timed:
            bwd[n_rows].append(dt)
        for i in range(n_rows - 1, -1, -1):
            t0 = clock()
            dout = layers[names[i]].backward(dout)
            dt = clock() - t0
            if timed:
                bwd[i].append(dt)
        if optimizer is not None:
            grads = {key: getattr(layer, attr) for key, layer, attr in sources}
            t0 = clock()
            optimizer.update(network.params, grads)
            dt = clock() - t0
            if timed:
                fwd[n_rows + 1].append(dt)
        if step == 0:
            shapes = [(inputs[i], inputs[i + 1] if i + 1 < n_rows else h) for i in range(n_rows)]
            shapes.append((h, h))
    batch = int(np.shape(x)[0])
    rows = []
    for i, name in enumerate([*names, "loss"]):
        layer = layers[name] if i < n_rows else last
        f, b = _median(fwd[i]), _median(bwd[i])
        rate, unit = _layer_rate(layer, *shapes[i], f, b)
        rows.append(LayerTiming(name, type(layer).__name__, f, b, rate=rate, unit=unit))
    if optimizer is not None:
        f = _median(fwd[n_rows + 1])
        kind = type(optimizer).__name__
        rule = optim.rule_of(optimizer)  # arrays of the parameters' size read + written per update (default 3)
        nbytes = (rule.traffic if rule else 3) * sum(np.asarray(v).nbytes for v in network.params.values())
        rows.append(LayerTiming("optimizer", kind, f, 0.0, rate=nbytes / f / 1e9 if f > 0 else None))
    total = sum(r.total_s for r in rows)
    for r in rows:
        r.share = r.total_s / total if total > 0 else 0.0
        r.samples_per_s = batch / r.total_s if r.total_s > 0 else float("inf")
    dtype = str(getattr(h, "dtype", np.asarray(x).dtype))
    return ProfileReport(rows, batch, dtype, int(repeat), label)


#: phases of a fused training step (nets.MultiLayerNetExtend's profiler hook), in order, with a description
STEP_PHASES = (
    ("validate", "argument checks, buffer lookup"),
    ("gemm", "every np.dot (forward, dW, dx)"),
    ("forward", "bias + batch norm + activation kernels"),
    ("loss", "bias + softmax + cross-entropy + its gradient"),
    ("backward", "activation + batch-norm backward kernels"),
    ("other", "Python between the calls, weight decay, layer sync"),
    ("optimizer", "optimizer.update(params, grads)"),
)


@dataclass
class StepProfile:
    """Result of :func:`profile_step`: where one whole training step (``gradient()`` + ``update()``) goes.

    Attributes
    ----------
    phases : dict
        Phase name -> median seconds per step (see ``STEP_PHASES``). A network without the fused
        step's phase hook gets only ``'gradient'`` and ``'optimizer'``.
    step_s : float
        Median seconds of the whole step, timed around ``gradient()`` + ``update()``.
    fused : bool
        Whether the network ran fastdl's fused step.
    """

    phases: dict[str, float]
    step_s: float
    batch_size: int
    dtype: str
    repeat: int
    fused: bool
    label: str = ""

    @property
    def phase_sum_s(self) -> float:
        return sum(self.phases.values())

    def share(self, phase: str) -> float:
        """Fraction of the sum of the phase medians spent in ``phase``."""
        total = self.phase_sum_s
        return self.phases.get(phase, 0.0) / total if total > 0 else 0.0

    @property
    def non_gemm_share(self) -> float | None:
        """Fraction of the step outside the GEMMs (``None`` without the phase hook)."""
        return 1.0 - self.share("gemm") if "gemm" in self.phases else None

    def to_dict(self) -> dict:
        return {"label": self.label, "batch_size": self.batch_size, "dtype": self.dtype, "repeat": self.repeat,
                "fused": self.fused, "step_s": self.step_s, "phases": dict(self.phases),
                "non_gemm_share": self.non_gemm_share}

    def __str__(self) -> str:
        notes = dict(STEP_PHASES, gradient="network.gradient(x, t) (no phase hook: layer path)")
        head = ["phase", "median", "share", "what"]
        body = [[k, _fmt_time(v), f"{100 * self.share(k):.1f}%", notes.get(k, "")] for k, v in self.phases.items()]
        body.append(["sum", _fmt_time(self.phase_sum_s), "100.0%", f"whole step timed alone: {_fmt_time(self.step_s)}"])
        title = (f"{self.label + ': ' if self.label else ''}training step (gradient + update), batch "
                 f"{self.batch_size}, {self.dtype}, median of {self.repeat} steps, "
                 f"{'fused step' if self.fused else 'layer path'}")
        if self.non_gemm_share is not None:
            title += f"; outside the GEMMs: {100 * self.non_gemm_share:.1f}%"
        return title + "\n" + _render(head, body)


def profile_step(network, x: np.ndarray, t: np.ndarray, optimizer=None, repeat: int = 50, warmup: int = 5,
                 label: str = "") -> StepProfile:
    """Break one real training step down into phases: GEMMs, fused kernels, Python, optimizer.

    Where :func:`profile` calls every layer one by one (the layer path), this times what a training
    loop runs: ``grads = network.gradient(x, t)`` then ``optimizer.update(network.params, grads)``.
    On fastdl's fused step (:class:`fastdl.nets.MultiLayerNetExtend`, fastdl backend, no dropout)
    the network's phase hook splits ``gradient()`` into the phases of ``STEP_PHASES``; ``'other'``
    is the rest of ``gradient()`` (Python glue, weight decay). Any other network with a
    ``gradient`` method gets the two phases ``'gradient'`` and ``'optimizer'``. Each phase is the
    median over ``repeat`` steps after ``warmup`` untimed ones; ``step_s`` is the median of the
    whole step timed on its own (the hook's clock reads add ~1 us).

    Parameters
    ----------
    network : object
        Has ``gradient(x, t)`` returning a dict of gradients and ``params``.
    x, t : numpy.ndarray
        One batch and its targets.
    optimizer : object, optional
        Anything with ``update(params, grads)``; it changes the parameters (real steps).
    repeat, warmup : int
        Timed and untimed steps.
    label : str
        Name shown in the table.

    Returns
    -------
    StepProfile
    """
    if not callable(getattr(network, "gradient", None)) or not hasattr(network, "params"):
        raise TypeError("profile_step: network must have a gradient(x, t) method and params; "
                        f"got {type(network).__name__}")
    if not isinstance(repeat, int | np.integer) or repeat < 1:
        raise ValueError(f"profile_step: repeat must be a positive integer; got {repeat!r}")
    if not isinstance(warmup, int | np.integer) or warmup < 0:
        raise ValueError(f"profile_step: warmup must be a non-negative integer; got {warmup!r}")
    hooked = hasattr(network, "_phase_times")
    clock = time.perf_counter
    samples: dict[str, list[float]] = {}
    steps: list[float] = []
    fused = False
    saved = getattr(network, "_phase_times", None)
    try:
        for step in range(warmup + repeat):
            pt: dict[str, float] = {}
            if hooked:
                network._phase_times = pt
            t0 = clock()
            grads = network.gradient(x, t)
            t1 = clock()
            if optimizer is not None:
                optimizer.update(network.params, grads)
            t2 = clock()
            if step < warmup:
                continue
            if pt:
                fused = True
                inner = {k: pt.get(k, 0.0) for k, _ in STEP_PHASES[:-2]}
                inner["other"] = max(0.0, (t1 - t0) - sum(inner.values()))
            else:
                inner = {"gradient": t1 - t0}
            if optimizer is not None:
                inner["optimizer"] = t2 - t1
            for k, v in inner.items():
                samples.setdefault(k, []).append(v)
            steps.append(t2 - t0)
    finally:
        if hooked:
            network._phase_times = saved
    phases = {k: _median(v) for k, v in samples.items()}
    dtype = next((str(v.dtype) for v in network.params.values() if hasattr(v, "dtype")), str(np.asarray(x).dtype))
    return StepProfile(phases, _median(steps), int(np.shape(x)[0]), dtype, int(repeat), fused, label)


def _plot(reports: list[ProfileReport], path: str | os.PathLike) -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    names = [r.name for r in reports[0].rows]
    width = 0.8 / len(reports)
    fig, ax = plt.subplots(figsize=(min(15, max(7, 0.4 * len(names) * len(reports) + 3)), 5.5))
    colors = (("tab:blue", "lightsteelblue"), ("tab:orange", "navajowhite"))
    for k, report in enumerate(reports):
        pos = np.arange(len(names)) + (k - (len(reports) - 1) / 2) * width
        by_name = {r.name: r for r in report.rows}
        f = np.array([by_name[n].forward_s * 1e3 if n in by_name else 0.0 for n in names])
        b = np.array([by_name[n].backward_s * 1e3 if n in by_name else 0.0 for n in names])
        label = report.label or f"profile {k + 1}"
        ax.bar(pos, f, width, color=colors[k % 2][0], label=f"{label} forward / update")
        ax.bar(pos, b, width, bottom=f, color=colors[k % 2][1], label=f"{label} backward")
    ax.set_xticks(np.arange(len(names)), names, rotation=45, ha="right")
    ax.set_ylabel("median time per step (ms)")
    r0 = reports[0]
    ax.set_title(f"Per-layer time, batch {r0.batch_size}, {r0.dtype}: "
                 + ", ".join(f"{r.label or 'step'} {r.total_s * 1e3:.2f} ms" for r in reports))
    ax.legend(fontsize=8)
    fig.tight_layout()
    path = Path(path)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


# ----------------------------------------------------------------------------------------------
# command line
# ----------------------------------------------------------------------------------------------

def _build(backend: str, args: argparse.Namespace, dtype: np.dtype):
    """A MultiLayerNetExtend on ``backend`` and the matching optimizer (same seed, same weights)."""
    from . import nets

    np.random.seed(args.seed)
    net = nets.MultiLayerNetExtend(args.input, args.hidden, args.output, activation=args.activation,
                                   use_batchnorm=args.batchnorm, use_dropout=args.dropout, dtype=dtype,
                                   backend=backend)
    if args.optimizer == "none":
        return net, None
    rule = optim.RULES[args.optimizer]
    return net, (rule.reference_class() if backend == "reference" else optim.OPTIMIZERS[rule.name])()


def _cmd_profile(args: argparse.Namespace) -> int:
    for option, path in (("--json", args.json), ("--plot", args.plot)):
        problem = path and runtime.writable_dir_problem(Path(path).resolve().parent)
        if problem:  # before the work: a bad path must not cost the measurement
            raise _cliargs.UsageError(f"{option} must be a file in a writable directory; got {path!r} ({problem})")
    dtype = np.dtype(args.dtype)
    rng = np.random.default_rng(args.seed)
    x = rng.standard_normal((args.batch, args.input)).astype(dtype)
    t = rng.integers(0, args.output, args.batch)
    stall = runtime.blas_probe()
    if stall > 1e-3:
        print(f"warning: a 100x100 GEMM takes {stall * 1e3:.1f} ms here (normally < 0.1 ms): BLAS threads are "
              "stalling (another process on the cores?); affine timings will be inflated", file=sys.stderr)
    backends = ("reference", "fastdl") if args.compare else (args.backend,)
    if args.step:
        steps = []
        for backend in backends:
            net, opt = _build(backend, args, dtype)
            steps.append(profile_step(net, x, t, optimizer=opt, repeat=args.repeat, warmup=args.warmup,
                                      label=backend))
            print(steps[-1])
            print()
        if args.json:
            Path(args.json).write_text(json.dumps([s.to_dict() for s in steps], indent=2))
        if args.plot:
            print("--plot is not drawn for --step (the table is the report)", file=sys.stderr)
        return 0
    reports = []
    for backend in backends:
        net, opt = _build(backend, args, dtype)
        reports.append(profile(net, x, t, optimizer=opt, repeat=args.repeat, warmup=args.warmup, label=backend))
    result: ProfileReport | ProfileComparison = compare(*reports) if args.compare else reports[0]
    if args.compare:
        for r in reports:
            print(r)
            print()
    print(result)
    if args.json:
        Path(args.json).write_text(json.dumps(result.to_dict(), indent=2))
    if args.plot:
        print(f"wrote {result.plot(args.plot)}", file=sys.stderr)
    return 0


def register_cli(subparsers) -> None:
    """Add ``profile`` to the ``fastdl`` command."""
    p = subparsers.add_parser("profile", help="per-layer time of a MultiLayerNetExtend training step",
                              formatter_class=argparse.ArgumentDefaultsHelpFormatter,
                              description="Profile one training step layer by layer (median over steps) on a "
                                          "random batch.")
    p.add_argument("--hidden", type=_cliargs.int_list, default=[100] * 5, metavar="SIZES",
                   help="hidden sizes, comma-separated, e.g. 100,100,100")
    p.add_argument("--input", type=_cliargs.positive_int, default=784, help="input features per sample")
    p.add_argument("--output", type=_cliargs.positive_int, default=10, help="output classes")
    p.add_argument("--batch", type=_cliargs.positive_int, default=100, help="samples per step")
    p.add_argument("--activation", choices=activations.names(), default="relu",
                   help="hidden activation, any registered in fastdl.activations")
    p.add_argument("--batchnorm", action="store_true", help="batch normalization after each hidden Affine")
    p.add_argument("--dropout", action="store_true", help="a Dropout layer after each activation")
    p.add_argument("--dtype", choices=("float32", "float64"), default="float64", help="floating-point type")
    p.add_argument("--optimizer", choices=(*optim.OPTIMIZERS, "none"), default="adam",
                   help="optimizer whose update is timed ('none': no update)")
    p.add_argument("--backend", choices=("fastdl", "reference"), default="fastdl",
                   help="fastdl (compiled) or reference (plain NumPy) layers")
    p.add_argument("--compare", action="store_true", help="reference and fastdl side by side")
    p.add_argument("--step", action="store_true",
                   help="time whole steps (gradient() + update()) split into phases: GEMMs, fused kernels, "
                        "Python, optimizer (instead of calling the layers one by one)")
    p.add_argument("--repeat", type=_cliargs.positive_int, default=50, help="timed steps (figures are medians)")
    p.add_argument("--warmup", type=_cliargs.nonnegative_int, default=5, help="untimed steps first")
    p.add_argument("--seed", type=_cliargs.nonnegative_int, default=0, help="seed of weights and the batch")
    p.add_argument("--json", metavar="PATH", help="write the report as JSON")
    p.add_argument("--plot", metavar="PATH", help="save a stacked bar chart (PNG)")
    p.set_defaults(func=_cmd_profile)

