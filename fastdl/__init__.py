"""fastdl: Numba-compiled kernels behind the layers and optimizers of *Deep Learning from Scratch*.

Change an import and a book-style training loop runs faster and prints the same numbers::

    from fastdl.layers import Affine, Relu, BatchNormalization, Dropout, SoftmaxWithLoss
    from fastdl.optim import SGD, Momentum, Nesterov, AdaGrad, RMSprop, Adam

Submodules load on first use (``fastdl.nets``, ``fastdl.Trainer``, ``fastdl.profile`` ...), so
``import fastdl`` stays quick. :mod:`fastdl.reference` is the plain NumPy oracle.
"""

from __future__ import annotations

import importlib

from . import runtime  # first: sets NUMBA_CACHE_DIR / GOMP_SPINCOUNT before Numba loads
from .runtime import NonFiniteWarning, errstate, threads
from .warmup import warmup  # eagerly: a lazy name would be replaced by the submodule once it is imported

__version__ = "0.1.0"

_SUBMODULES = (
    "activations",
    "benchmark",
    "checkpoint",
    "constraints",
    "datasets",
    "experiments",
    "functional",
    "init",
    "layers",
    "nets",
    "lr_finder",
    "metrics",
    "optim",
    "perceptron",
    "profiler",
    "reference",
    "trainer",
    "transfer",
)

_LAZY_ATTRS = {
    "Trainer": ("fastdl.trainer", "Trainer"),
    "CheckpointError": ("fastdl._archive", "CheckpointError"),
    "profile": ("fastdl.profiler", "profile"),
    "profile_step": ("fastdl.profiler", "profile_step"),
    "MultiLayerNet": ("fastdl.nets", "MultiLayerNet"),
    "MultiLayerNetExtend": ("fastdl.nets", "MultiLayerNetExtend"),
    "load_diabetes": ("fastdl.datasets", "load_diabetes"),
    "load_digits": ("fastdl.datasets", "load_digits"),
    "load_mnist": ("fastdl.datasets", "load_mnist"),
    "Perceptron": ("fastdl.perceptron", "Perceptron"),
    "lr_find": ("fastdl.lr_finder", "lr_find"),
}

__all__ = [
    "CheckpointError",
    "MultiLayerNet",
    "MultiLayerNetExtend",
    "NonFiniteWarning",
    "Perceptron",
    "Trainer",
    "__version__",
    "errstate",
    "load_diabetes",
    "load_digits",
    "load_mnist",
    "lr_find",
    "profile",
    "profile_step",
    "runtime",
    "threads",
    "warmup",
    *_SUBMODULES,
]


def __getattr__(name: str):
    if name in _SUBMODULES:
        module = importlib.import_module(f"fastdl.{name}")
        globals()[name] = module
        return module
    if name in _LAZY_ATTRS:
        module_name, attr = _LAZY_ATTRS[name]
        value = getattr(importlib.import_module(module_name), attr)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'fastdl' has no attribute {name!r}")


def __dir__():
    return sorted(set(globals()) | set(__all__))
