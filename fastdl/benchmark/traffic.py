"""Traffic models: the bytes each benchmarked op must move (or the flops a GEMM-bound op does).

A model lists the arrays one call reads and writes, as the op's contract requires them, not as an
implementation happens to touch them (a kernel that reads ``x`` twice, or materializes a temporary,
still *must* move only what is listed). The lists are derived from the registries where they say
it: an activation record's ``saves`` (``'x'``, ``'y'`` or a one-byte ``'mask'``) and ``params``; an
optimizer rule's ``state`` and ``traffic``. How the roofline column uses them
(:mod:`fastdl.benchmark.roofline`) and why writes to fresh arrays count twice on the memory bus:
``docs/design-notes.md``, *Roofline*.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from typing import NamedTuple

from .. import activations
from ..kernels.ntstore import STREAM_MIN_BYTES

#: bytes of one label of softmax-with-loss (NumPy's default integer)
LABEL_BYTES = 8


class Array(NamedTuple):
    """One array a call touches: ``nbytes`` bytes, read and/or written (``name`` identifies it across calls)."""

    name: str
    nbytes: float
    read: bool = False
    written: bool = False
    #: written with streaming (non-temporal) stores: no read for ownership, so not fresh on the bus
    streamed: bool = False


@dataclass(frozen=True)
class Traffic:
    """What one call must move.

    Attributes
    ----------
    read, written : float
        Bytes read and bytes written (an array read and written counts in both).
    fresh : float
        Bytes written to arrays the call does not read: on a write-allocate cache each such line is
        read for ownership first, so they cross the memory bus twice.
    footprint : float
        Distinct bytes touched (the working set that decides which cache level serves the call).
    flops : float
        Floating-point operations of a GEMM-bound op (0 for a memory-bound one).
    gemms : tuple of (m, k, n)
        The GEMMs of a GEMM-bound op (``(m, k) @ (k, n)``), whose measured rate is its limit.
    """

    read: float = 0.0
    written: float = 0.0
    fresh: float = 0.0
    footprint: float = 0.0
    flops: float = 0.0
    gemms: tuple = ()

    @property
    def bytes(self) -> float:
        """Bytes the op must move: ``read + written``."""
        return self.read + self.written

    @property
    def bus_bytes(self) -> float:
        """Bytes on the memory bus with write-allocate: ``read + written + fresh``."""
        return self.read + self.written + self.fresh

    @property
    def unit(self) -> str:
        return "GFLOP/s" if self.gemms else "GB/s"

    def to_dict(self) -> dict:
        return dict(asdict(self), bytes=self.bytes, bus_bytes=self.bus_bytes, unit=self.unit)


def from_arrays(*calls: Sequence[Array]) -> Traffic:
    """The traffic of consecutive calls (forward, then backward) over the arrays each lists.

    ``footprint`` counts each named array once; ``fresh`` the written arrays a call does not read.
    """
    read = sum(a.nbytes for call in calls for a in call if a.read)
    written = sum(a.nbytes for call in calls for a in call if a.written)
    fresh = sum(a.nbytes for call in calls for a in call if a.written and not a.read and not a.streamed)
    footprint = sum({a.name: a.nbytes for call in calls for a in call}.values())
    return Traffic(float(read), float(written), float(fresh), float(footprint))


class ArrayModel:
    """Work model of a memory-bound layer op, from the arrays its forward and backward touch.

    ``arrays(n, d, h, itemsize) -> {'forward': [Array, ...], 'backward': [Array, ...]}``. Called as
    ``model(direction, n, d, h, itemsize)`` it gives ``(bytes, 'GB/s')`` (the ``work`` of a
    :class:`~fastdl.benchmark.tables.LayerOp`); :meth:`traffic` gives the whole :class:`Traffic`.
    """

    def __init__(self, arrays: Callable[[int, int, int, int], dict]) -> None:
        self.arrays = arrays

    def traffic(self, direction: str, n: int, d: int, h: int, itemsize: int) -> Traffic:
        calls = self.arrays(n, d, h, itemsize)
        return from_arrays(*((calls["forward"], calls["backward"]) if direction == "fwd-bwd" else (calls[direction],)))

    def __call__(self, direction: str, n: int, d: int, h: int, itemsize: int) -> tuple[float, str]:
        return self.traffic(direction, n, d, h, itemsize).bytes, "GB/s"


class GemmModel:
    """Work model of affine: ``out = x @ W + b`` forward (2ndh flops); ``dx = dout @ W.T`` and
    ``dW = x.T @ dout`` backward (4ndh). :meth:`traffic` names the GEMM shapes."""

    def traffic(self, direction: str, n: int, d: int, h: int, itemsize: int) -> Traffic:
        gemms = {"forward": ((n, d, h),), "backward": ((n, h, d), (d, n, h))}
        shapes = gemms["forward"] + gemms["backward"] if direction == "fwd-bwd" else gemms[direction]
        return Traffic(flops=float(sum(2 * m * k * q for m, k, q in shapes)), gemms=shapes)

    def __call__(self, direction: str, n: int, d: int, h: int, itemsize: int) -> tuple[float, str]:
        return self.traffic(direction, n, d, h, itemsize).flops, "GFLOP/s"


def streams(forward: int, backward: int, mask_bytes: int = 0) -> ArrayModel:
    """Model of an elementwise op moving arrays of ``n x d`` values.

    Forward reads ``x`` (and ``forward - 2`` more inputs) and writes ``y``; backward reads ``dout``
    (and ``backward - 2`` saved arrays, the first being ``x``) and writes ``dx``. ``mask_bytes``:
    forward also writes a mask of that many bytes per value, which backward reads.
    """
    def arrays(n: int, d: int, h: int, itemsize: int) -> dict:
        size = float(n * d * itemsize)
        mask = [Array("mask", n * d * mask_bytes, written=True)] if mask_bytes else []
        fwd = [Array("x", size, read=True), *(Array(f"in{i}", size, read=True) for i in range(forward - 2)),
               Array("y", size, written=True), *mask]
        saved = ["x", *(f"saved{i}" for i in range(backward - 3))][:max(0, backward - 2)]
        bwd = [Array("dout", size, read=True), *(Array(s, size, read=True) for s in saved),
               Array("dx", size, written=True), *(m._replace(read=True, written=False) for m in mask)]
        return {"forward": fwd, "backward": bwd}

    return ArrayModel(arrays)


def activation_model(record: activations.Activation) -> ArrayModel:
    """Model of a registered activation, from its record.

    Forward reads ``x`` and each per-feature parameter, writes ``y`` (and a one-byte mask when the
    record saves one); backward reads ``dout``, what the record saves (``x``, ``y`` or the mask) and
    the parameters, writes ``dx`` and the parameters' gradients.
    """
    def arrays(n: int, d: int, h: int, itemsize: int) -> dict:
        size, vec = float(n * d * itemsize), float(d * itemsize)
        mask = record.saves == "mask"
        saved = Array("mask", float(n * d), read=True) if mask else Array(record.saves, size, read=True)
        params = [Array(p.name, vec, read=True) for p in record.params]
        fwd = [Array("x", size, read=True), *params, Array("y", size, written=True)]
        if mask:
            fwd.append(saved._replace(read=False, written=True))
        bwd = [Array("dout", size, read=True), saved, *params, Array("dx", size, written=True),
               *(Array("d" + p.name, vec, written=True) for p in record.params)]
        return {"forward": fwd, "backward": bwd}

    return ArrayModel(arrays)


def _batchnorm_arrays(n: int, d: int, h: int, itemsize: int) -> dict:
    """Training forward: x in, y out, the batch mean and std kept, running averages updated; backward
    recomputes the normalized input from x (nothing but x and the D-vectors needs keeping). y and dx of
    :data:`~fastdl.kernels.ntstore.STREAM_MIN_BYTES` or more are written with streaming stores."""
    size, vec = float(n * d * itemsize), float(d * itemsize)
    streamed = size >= STREAM_MIN_BYTES
    fwd = [Array("x", size, read=True), Array("y", size, written=True, streamed=streamed),
           Array("gamma", vec, read=True), Array("beta", vec, read=True),
           Array("running_mean", vec, read=True, written=True), Array("running_var", vec, read=True, written=True),
           Array("mean", vec, written=True), Array("std", vec, written=True)]
    bwd = [Array("dout", size, read=True), Array("x", size, read=True), Array("gamma", vec, read=True),
           Array("mean", vec, read=True), Array("std", vec, read=True),
           Array("dx", size, written=True, streamed=streamed), Array("dgamma", vec, written=True),
           Array("dbeta", vec, written=True)]
    return {"forward": fwd, "backward": bwd}


def _dropout_arrays(n: int, d: int, h: int, itemsize: int) -> dict:
    """The book's dropout: forward x in, y and a one-byte keep mask out; backward dout and the mask in."""
    size = float(n * d * itemsize)
    return {"forward": [Array("x", size, read=True), Array("y", size, written=True),
                        Array("mask", float(n * d), written=True)],
            "backward": [Array("dout", size, read=True), Array("mask", float(n * d), read=True),
                         Array("dx", size, written=True)]}


def _softmax_loss_arrays(n: int, d: int, h: int, itemsize: int) -> dict:
    """Forward: scores and labels in, the softmax ``y`` out (kept for backward); backward: ``y``, labels in, dx out."""
    size, labels = float(n * d * itemsize), float(n * LABEL_BYTES)
    return {"forward": [Array("x", size, read=True), Array("t", labels, read=True), Array("y", size, written=True)],
            "backward": [Array("y", size, read=True), Array("t", labels, read=True), Array("dx", size, written=True)]}


batchnorm_model = ArrayModel(_batchnorm_arrays)
dropout_model = ArrayModel(_dropout_arrays)
softmax_loss_model = ArrayModel(_softmax_loss_arrays)
gemm_model = GemmModel()


def optimizer_traffic(arrays_moved: int, state_arrays: int, nvalues: int, itemsize: int) -> Traffic:
    """An in-place update over ``nvalues`` parameters: ``arrays_moved`` arrays of their size read plus written
    (a rule's ``traffic``), of which the parameter and each state are written; footprint: parameter,
    gradient and states. Nothing is written fresh."""
    size = float(nvalues * itemsize)
    written = (1 + state_arrays) * size
    return Traffic(read=arrays_moved * size - written, written=written, fresh=0.0,
                   footprint=(2 + state_arrays) * size)
