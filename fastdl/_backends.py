"""The layer backends of :mod:`fastdl.nets`: ``'fastdl'``, ``'reference'`` or any module with the book's layer classes
(:func:`resolve_backend`, re-exported by :mod:`fastdl.nets`), and how a copy or a saved file names one."""

from __future__ import annotations

import importlib
from types import ModuleType
from typing import Any

from . import _checks
from . import layers as _fastdl_layers
from . import reference as _reference

__all__ = ["LAYER_CLASSES", "resolve_backend"]

#: The layer classes a backend must provide.
LAYER_CLASSES = ("Affine", "Relu", "Sigmoid", "BatchNormalization", "Dropout", "SoftmaxWithLoss")

_BACKEND_MODULES = {"fastdl": _fastdl_layers, "reference": _reference}


def _backend_ref(backend):
    """A picklable stand-in for ``backend``: 'fastdl'/'reference', ('module', name), or the object itself."""
    if isinstance(backend, ModuleType):
        for key, module in _BACKEND_MODULES.items():
            if backend is module:
                return key
        return ("module", backend.__name__)
    return backend


def _backend_from_ref(ref):
    if isinstance(ref, str):
        return resolve_backend(ref)
    if isinstance(ref, tuple) and len(ref) == 2 and ref[0] == "module":
        return importlib.import_module(ref[1])
    return ref


def resolve_backend(backend: str | ModuleType | Any | None, where: str = "resolve_backend"):
    """Return the object providing the layer classes for ``backend``.

    Parameters
    ----------
    backend : None, str or module
        ``None``/``'fastdl'`` (compiled layers), ``'reference'`` (plain NumPy), or any object with
        the attributes listed in :data:`LAYER_CLASSES`.
    where : str
        Caller name for error messages.

    Returns
    -------
    module or object
        Something with the six layer classes as attributes.
    """
    if backend is None:
        backend = "fastdl"
    if isinstance(backend, str):
        module = _BACKEND_MODULES.get(backend.lower())
        if module is None:
            _checks.fail(where, "backend", f"one of {tuple(_BACKEND_MODULES)}, None or a module with the "
                         f"layer classes {LAYER_CLASSES}", repr(backend))
        return module
    missing = [c for c in LAYER_CLASSES if not hasattr(backend, c)]
    if missing:
        _checks.fail(where, "backend", f"a module with the layer classes {LAYER_CLASSES}",
                     f"{_checks.describe(backend)} without {', '.join(missing)}", TypeError)
    return backend
