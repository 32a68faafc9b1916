"""Benchmarks: the op matrix shared by ``bench/`` and ``fastdl bench``, timing, machine peaks, reports.

One definition of every benchmarked call (:func:`make_case`), so the pytest-benchmark suites in
``bench/`` and the ``fastdl bench`` command time exactly the same work.

Modules
    ``tables`` the rows: layer/activation setups per implementation with their work models, the
    optimizers' torch twins; ``cases`` :func:`make_case`, the training steps and interleave loops;
    ``timing`` medians in rotating blocks; ``peaks`` the machine's cache sizes, triad bandwidth
    (per working-set size) and GEMM throughput; ``traffic`` what each op must move; ``roofline``
    each op's limit and the summary of shortfalls; ``peer`` PyTorch timed in a process of its own;
    ``matrix`` the fixed ``fastdl bench`` matrix, the roofline matrix and their run; ``report``
    tables, markdown, the plot, pytest-benchmark JSON;
    ``probes`` start-up, compile cost and the training-step profile; ``cli`` the ``fastdl bench``
    and ``fastdl warmup`` commands. Warm-up itself is :mod:`fastdl.warmup`.

Ops and sizes
    Layer ops (``<name>-forward``, ``<name>-backward``, and ``batchnorm-fwd-bwd``) take an input of
    shape ``N x D``: ``100x100``, ``256x1024``, ``1024x4096``; affine maps ``D`` to ``H = 100, 1024,
    2048`` features. Optimizer ops (``<name>-update``) update a ``{'W', 'b'}`` dict whose ``W``
    holds 10K, 1M or 8M values. ``train-step`` and ``train-step-bn`` are ``gradient()`` +
    ``update()`` of the book's 784-100x5-10 network (batch 100, Adam) without and with batch norm.

Contract
    Every case carries its work (flops for GEMM-bound ops, compulsory bytes for the rest) and is
    timed after warm-up calls; medians, ratios from the same run. Every layer and optimizer op has a
    traffic model (:func:`~fastdl.benchmark.cases.traffic`) and from it a roofline limit. The methodology (peaks, why
    PyTorch runs in its own process, timing blocks) and the command behind each figure:
    ``docs/design-notes.md``, *Benchmark methodology*.

Adding a row
    * An optimizer: nothing here. Every name of :data:`fastdl.optim.OPTIMIZERS` is an op
      ``<name>-update``; a rule of :data:`fastdl.optim.RULES` brings its traffic (``3 + 2 * states``),
      its reference twin and its torch twin (``Rule.torch``). For a class added to ``OPTIMIZERS``
      alone, the reference column uses the class of the same name in :mod:`fastdl.reference`, and a
      torch column needs one line in :data:`TORCH_OPTIMIZERS`: ``"mine": ("SGD", {"momentum": 0.5})``.
    * An activation: nothing here. Every activation registered in :mod:`fastdl.activations` is a row
      (its fastdl layer, its ``reference`` twin and its ``torch`` twin from the record; see
      :func:`~fastdl.benchmark.tables.layer_table`). An activation layer outside the registry: one
      line in :data:`LAYER_TABLE`, ``"mine": activation("Mine", "mine")`` (layer class name in
      :mod:`fastdl.layers` and :mod:`fastdl.reference`, ``torch`` function name or None).
    * Gradient clipping: :data:`CLIP_OPS` (``sgd-global_clipnorm-update`` ...: SGD and Adam with each
      option at :data:`CLIP_SIZES`; torch: ``clip_grad_value_``/``clip_grad_norm_`` then ``step()``;
      reference: :func:`fastdl.reference.clip_gradients` then the book's optimizer). Another rule
      with clipping: one more entry in :data:`CLIP_OPS`.
    * Any other layer: a :class:`~fastdl.benchmark.tables.LayerOp` with a setup per implementation
      (``setup(data) -> Calls(forward, backward, fwd_bwd)``, see ``numpy_calls``/``torch_calls``)
      and a work model from :mod:`~fastdl.benchmark.traffic`: ``streams(forward_arrays,
      backward_arrays)``, an ``ArrayModel`` listing the arrays each direction reads and writes, or
      ``gemm_model`` (these also give the roofline column its limit).
    The bench suites, ``fastdl bench`` and the tests pick the new ops up from :data:`LAYER_OPS` /
    :data:`OPTIMIZER_OPS`, live views of these tables.
"""

from __future__ import annotations

from ..runtime import blas_probe
from ..warmup import WarmupStep, warmup
from .cases import (
    CLIP_OPS,
    CLIP_SIZES,
    CLIP_VALUES,
    DTYPES,
    IMPLS,
    INTERLEAVE_OPS,
    INTERLEAVE_POLICIES,
    LAYER_OPS,
    LAYER_SIZES,
    OPTIMIZER_OPS,
    PARAM_SIZES,
    STEP_OPS,
    STEP_SIZES,
    Case,
    make_case,
    make_interleave_case,
    sizes_for,
)
from .cli import register_cli
from .matrix import Matrix, default_matrix, peak_needs, roofline_matrix, run_matrix
from .peaks import LLC_BYTES, cache_sizes, measure_peaks, peak_for
from .peer import RemotePeer
from .probes import measure_compile_cost, measure_startup, measure_step_profile
from .report import (
    format_markdown,
    format_table,
    format_time,
    load_benchmark_json,
    plot_results,
    run_info,
    table_rows,
)
from .tables import LAYER_TABLE, TORCH_OPTIMIZERS, LayerOp, Unavailable, activation, layer_table, torch_twins
from .timing import configure_torch_threads, measure, measure_group

__all__ = [
    "CLIP_OPS",
    "CLIP_SIZES",
    "CLIP_VALUES",
    "DTYPES",
    "IMPLS",
    "INTERLEAVE_OPS",
    "INTERLEAVE_POLICIES",
    "LAYER_OPS",
    "LAYER_SIZES",
    "LAYER_TABLE",
    "layer_table",
    "LLC_BYTES",
    "OPTIMIZER_OPS",
    "PARAM_SIZES",
    "STEP_OPS",
    "STEP_SIZES",
    "TORCH_OPTIMIZERS",
    "torch_twins",
    "Case",
    "LayerOp",
    "Matrix",
    "RemotePeer",
    "Unavailable",
    "WarmupStep",
    "activation",
    "blas_probe",
    "configure_torch_threads",
    "default_matrix",
    "format_markdown",
    "format_table",
    "format_time",
    "load_benchmark_json",
    "make_case",
    "make_interleave_case",
    "measure",
    "measure_compile_cost",
    "measure_group",
    "measure_peaks",
    "measure_startup",
    "measure_step_profile",
    "peak_for",
    "peak_needs",
    "roofline_matrix",
    "cache_sizes",
    "plot_results",
    "register_cli",
    "run_info",
    "run_matrix",
    "sizes_for",
    "table_rows",
    "warmup",
]
