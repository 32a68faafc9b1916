"""The fixed ``fastdl bench`` matrix and its run: every (op, size, dtype) group timed side by side."""

from __future__ import annotations

import importlib.util
import sys
from collections.abc import Sequence
from dataclasses import dataclass, field

from tqdm.auto import tqdm

from . import cases, roofline
from .peer import RemotePeer
from .timing import measure_group


@dataclass
class Matrix:
    """A list of ``(op, size)`` pairs, the dtypes and the implementations to run, and the timing options."""

    entries: list[tuple[str, str]]
    dtypes: tuple[str, ...] = cases.DTYPES
    impls: tuple[str, ...] = cases.IMPLS
    timing: dict = field(default_factory=dict)


def default_matrix(quick: bool = False, dtypes: Sequence[str] = cases.DTYPES, torch: bool = True) -> Matrix:
    """The fixed ``fastdl bench`` matrix.

    The default (about 2-3 minutes on 2 cores with a warm kernel cache) covers both training steps
    (first: see ``docs/design-notes.md``), every layer op at every size except affine at the large
    one (a 17 GFLOP GEMM that only measures BLAS) and the activations' forward+backward at the small
    one, every optimizer at every size, SGD and Adam with each gradient clipping option at 1M and 8M
    (:data:`~fastdl.benchmark.cases.CLIP_OPS`), and the interleave loops of
    :func:`~fastdl.benchmark.make_interleave_case` under each threading policy. ``quick`` is a
    seconds-long subset.
    """
    if quick:
        entries = [("affine-forward", "100x100"), ("relu-backward", "100x100"),
                   ("batchnorm-forward", "100x100"), ("adam-update", "10K")]
        timing = {"min_time": 0.02, "min_samples": 3, "max_samples": 5, "warmup": 1}
    else:
        entries = [(op, "784-100x5-10-b100") for op in cases.STEP_OPS]
        entries += [(op, size) for op in cases.LAYER_OPS for size in cases.LAYER_SIZES
                    if not (op.startswith("affine") and size == "1024x4096")
                    and not (op.endswith("-fwd-bwd") and op != "batchnorm-fwd-bwd" and size == "100x100")]
        entries += [(op, size) for op in cases.OPTIMIZER_OPS for size in cases.PARAM_SIZES]
        entries += [(op, size) for op in cases.CLIP_OPS for size in cases.CLIP_SIZES]
        entries += [(op, size) for op, size in cases.INTERLEAVE_OPS.items()]
        timing = {"min_time": 0.12, "min_samples": 7, "max_samples": 40, "warmup": 2}
    impls = cases.IMPLS if torch else ("reference", "fastdl")
    return Matrix(entries, tuple(dtypes), impls, timing)


def roofline_matrix(quick: bool = False, dtypes: Sequence[str] = cases.DTYPES, torch: bool = True) -> Matrix:
    """The ``fastdl bench --roofline`` matrix: fastdl (and torch) on every op at the sizes the roofline
    is judged at.

    Every layer op (forward, backward, forward+backward) at 256x1024 and 1024x4096 (affine at
    256x1024 only) and every optimizer at 1M and 8M values; no reference column, no training steps.
    ``quick`` takes fewer, shorter samples (the same ops).
    """
    entries = [(op, size) for op in cases.LAYER_OPS for size in roofline.ROOFLINE_LAYER_SIZES
               if not (op.startswith("affine") and size == "1024x4096")]
    entries += [(op, size) for op in cases.OPTIMIZER_OPS for size in roofline.ROOFLINE_PARAM_SIZES]
    timing = ({"min_time": 0.03, "min_samples": 3, "max_samples": 9, "warmup": 1, "sample_time": 5e-3} if quick
              else {"min_time": 0.12, "min_samples": 7, "max_samples": 40, "warmup": 2})
    return Matrix(entries, tuple(dtypes), ("fastdl", "torch") if torch else ("fastdl",), timing)


def peak_needs(matrix: Matrix) -> tuple[float, list[tuple[int, int, int]]]:
    """What the roofline of ``matrix`` needs measured: the largest working set of its memory-bound ops
    (bytes; the bandwidth curve goes that far) and the GEMM shapes of its GEMM-bound ones."""
    largest, shapes = 0.0, []
    for op, size in matrix.entries:
        for dtype in matrix.dtypes:
            t = cases.traffic(op, size, dtype) if op not in cases.INTERLEAVE_OPS else None
            if t is None:
                continue
            largest = max(largest, t.footprint)
            shapes += [s for s in t.gemms if s not in shapes]
    return largest, shapes


def run_matrix(matrix: Matrix, *, progress: bool = True, seed: int = 0) -> list[dict]:
    """Time every (op, size, dtype, impl) of ``matrix``; return one result dict per timing.

    The implementations of one (op, size, dtype) group are timed together, in rotating blocks
    (:func:`~fastdl.benchmark.measure_group`): ``reference`` and ``fastdl`` in this process,
    PyTorch in a separate one (a :class:`~fastdl.benchmark.RemotePeer`) whose block follows theirs
    in every pass. Implementations unavailable here (torch not installed, an op without a twin) are
    left out; a peer that fails costs its columns from then on, not the run.
    """
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
            built = {}
            if op in cases.INTERLEAVE_OPS:
                built = {f"fastdl-{p}": cases.make_interleave_case(op, dtype, p, seed=seed)
                         for p in cases.INTERLEAVE_POLICIES}
            for impl in () if op in cases.INTERLEAVE_OPS else local_impls:
                try:
                    built[impl] = cases.make_case(op, size, dtype, impl, seed=seed)
                except cases.Unavailable:
                    continue
            remote, remote_meta = {}, None
            if peer is not None and op not in cases.INTERLEAVE_OPS:
                try:
                    remote_meta = peer.setup(op, size, dtype)
                except RuntimeError as exc:
                    print(f"fastdl bench: {exc}; torch columns left out from here on", file=sys.stderr)
                    peer.close()
                    peer = None
                if remote_meta is not None:
                    remote["torch"] = peer
            local = {impl: c.fn for impl, c in built.items()}
            try:
                medians = measure_group(local, remote=remote, **matrix.timing)
            except RuntimeError as exc:  # the peer died while timing: this group again without it
                if not remote:
                    raise
                print(f"fastdl bench: {exc}; torch columns left out from here on", file=sys.stderr)
                peer.close()
                peer, remote_meta = None, None
                medians = measure_group(local, **matrix.timing)
            results += [dict(c.meta(), median_s=medians[impl]) for impl, c in built.items()]
            if remote_meta is not None:
                results.append(dict(remote_meta, median_s=medians["torch"]))
                peer.drop()
            del built
    finally:
        if peer is not None:
            peer.close()
    return results
