"""Layouts and kernel launches of the optimizers, and the replay plan of an accepted update.

The kernels (:mod:`fastdl.kernels.optim`) see 1-D C-contiguous arrays and a length-8 constants
array in the parameter dtype. :func:`step_array` steps one validated array in any layout;
:class:`Plan` remembers the 1-D views of an accepted ``update`` and replays them while the same
objects come back (see docs/design-notes.md, "Optimizers", for what that saves).
"""

from __future__ import annotations

import operator

import numpy as np

from .. import _flat, runtime
from ..kernels import optim as _k
from .rules import Rule

#: Length of the kernels' constants array (``c[0..7]``).
N_CONSTANTS = 8
#: Constants a rule may use (``c[0..5]``); ``c[6]`` is the gradient scale and ``c[7]`` the clip bound.
N_RULE_CONSTANTS = 6
#: ``c[6], c[7]`` without clipping: the gradient as it is.
NO_CLIP = (1.0, float("inf"))
_INF = float("inf")


def blank(dtype: np.dtype) -> np.ndarray:
    """A constants array of ``dtype``: zeros, and no clipping in ``c[6], c[7]``."""
    c = np.zeros(N_CONSTANTS, dtype)
    c[N_RULE_CONSTANTS:] = NO_CLIP
    return c


def order(p: np.ndarray) -> str:
    """Memory order in which ``p`` is one contiguous block ('C' also for non-contiguous p)."""
    if p.flags.c_contiguous or not p.flags.f_contiguous:
        return "C"
    return "F"


def flat_inout(a: np.ndarray, order: str) -> tuple[np.ndarray, np.ndarray | None]:
    """A 1-D view of ``a`` in ``order`` when there is one, else a contiguous copy plus ``a`` to write back."""
    if order == "C":
        if a.flags.c_contiguous:
            return a.ravel(), None  # a view (ravel is ~2x cheaper than reshape(-1) per call)
    elif a.flags.f_contiguous:
        return a.ravel(order="F"), None
    return np.ascontiguousarray(np.ravel(a, order=order)), a


def flat_in(g: np.ndarray, order: str, dtype: np.dtype) -> np.ndarray:
    """``g`` as a 1-D contiguous array of ``dtype`` in ``order`` (a view when possible)."""
    if g.dtype != dtype:
        g = g.astype(dtype, order="K")
    flat, _ = flat_inout(g, order)
    return flat


def cast(constants: tuple, dtype: np.dtype) -> np.ndarray:
    """A rule's constants as the kernels' length-8 array of ``dtype`` (each rounded like ``dtype.type(c)``,
    which is NumPy 2's weak-scalar arithmetic; unused rule entries 0, ``c[6], c[7]`` no clipping unless
    ``constants`` has all eight)."""
    c = blank(dtype)
    c[:len(constants)] = constants
    return c


def clipped_copy(g: np.ndarray, bound, scale) -> np.ndarray:
    """A new array ``clip(g, -bound, bound) * scale`` in ``g``'s dtype: what the built-in workers compute per
    element as they read ``g`` (:func:`fastdl.kernels.optim.clip`), for a worker from outside that does not."""
    out = np.clip(g, -bound, bound) if bound != _INF else g.copy()
    if scale != 1.0:
        out *= scale
    return out


def launch(rule: Rule, p: np.ndarray, g: np.ndarray, s1, s2, s3, c: np.ndarray) -> int:
    """One kernel call of ``rule`` over 1-D C-contiguous arrays, serial or parallel by size; the non-finite count.

    A rule from outside :mod:`fastdl.kernels.optim` (``rule.kind is None``) with clipping in ``c[6], c[7]``
    steps with a clipped copy of ``g`` (:func:`clipped_copy`: one more write and read of the gradient);
    the built-in workers clip each ``g[i]`` as they read it.
    """
    n = p.size
    kind = rule.kind
    parallel = runtime.use_parallel(n, "optimizer", n * p.itemsize * rule.traffic, p.itemsize)
    if kind is None:  # a rule from outside fastdl.kernels.optim: its own worker
        if c[6] != 1.0 or c[7] != _INF:  # clipping: its worker need not read c[6], c[7]; give it the clipped g
            g = clipped_copy(g, c[7], c[6])
        if parallel:
            return _k.step_parallel_with(rule.kernel, p, g, s1, s2, s3, c, runtime.chunks(n))
        return rule.kernel(p, g, s1, s2, s3, c)
    if parallel:
        return _k.step_parallel(kind, p, g, s1, s2, s3, c, runtime.chunks(n))
    return _k.step(kind, p, g, s1, s2, s3, c)


def step_array(rule: Rule, p: np.ndarray, g: np.ndarray, states, c: np.ndarray) -> int:
    """Step one validated parameter array (and its state) in place; return the non-finite count.

    The per-array code path of the classes and the step functions. ``c`` holds the constants in
    ``p.dtype`` (:func:`cast`). ``p`` is stepped through a 1-D view in its own memory order (C or
    Fortran), ``g`` is flattened in the same logical order, and any array without such a view
    (a strided slice) is stepped as a contiguous copy and written back.
    """
    o = order(p)
    pf, p_back = flat_inout(p, o)
    gf = flat_in(g, o, p.dtype)
    flats = [flat_inout(s, o) for s in states]
    s1, s2, s3 = ([f for f, _ in flats] + [pf, pf, pf])[:3]
    bad = launch(rule, pf, gf, s1, s2, s3, c)
    if p_back is not None:
        p_back[...] = pf.reshape(p_back.shape, order=o)
    for flat, target in flats:
        if target is not None:
            target[...] = flat.reshape(target.shape, order=o)
    return bad


# --------------------------------------------------------------------------------------------
# Replay: what an accepted update learned about its arrays, reused while nothing has changed


_is = operator.is_
_dtype = operator.attrgetter("dtype")
_pmeta = operator.attrgetter("shape", "dtype", "flags.writeable")
_gmeta = operator.attrgetter("shape", "dtype")  # (a gradient is only read: it may be read-only)
_writeable = operator.attrgetter("flags.writeable")


def has_view(a: np.ndarray, order: str) -> bool:
    """True when ``a`` is one contiguous block in ``order`` (so ``flat_inout`` returns a view)."""
    return bool(a.flags.c_contiguous if order == "C" else a.flags.f_contiguous)


class Plan:
    """The validated layout of one accepted ``update``: 1-D views of every parameter and state array.

    Built when every parameter is a plain ``ndarray`` with a 1-D view in its own memory order and
    every state array has one in the same order (no scalars, no strided slices, no subclasses).
    Later calls replay it when :meth:`match` finds the same parameter and state objects under the
    same keys, with the same shapes, dtypes and writeable flags (of parameters *and* state
    arrays): everything that can change on an existing object (short of the deprecated
    ``strides`` setter), so the full validation could only confirm what the plan knows. On any
    difference the full validation runs again: bad input is rejected with its usual message
    before anything changes, good input gets a new plan.

    When the parameters tile one buffer back to back in key order (:func:`fastdl._flat.span`),
    each state lives in one flat buffer too (the state dicts hold views of it; existing values
    are copied in) and, whenever the gradients also tile one buffer, one kernel call steps the
    whole model. The arithmetic is elementwise, so the results are identical either way.
    """

    __slots__ = ("keys", "n", "params", "state_values", "state_arrays", "pmeta", "gmeta", "grads", "named_stores",
                 "orders", "pflat", "sflat", "whole", "gflat", "gwhole", "calls", "cbufs", "consts")

    def __init__(self, entries: list, names: tuple, stores: list) -> None:
        keys = [e[0] for e in entries]
        params = [e[1] for e in entries]
        self.keys, self.n = keys, len(keys)
        self.named_stores = tuple(zip(names, stores))
        self.orders = [order(p) for p in params]
        self.whole = None
        dtypes = list(map(_dtype, params))
        if params and all(d == dtypes[0] for d in dtypes) and _flat.span(params) is not None:
            self.whole = self._flatten_state(keys, params, stores)
        columns = [[store[k] for k in keys] for store in stores]
        # the objects (compared by identity) and what may change on them
        self.params = params
        self.state_values = [list(store.values()) for store in stores]
        self.state_arrays = [s for column in columns for s in column]  # the ones the kernels write
        self.pmeta = list(map(_pmeta, params))
        self.gmeta = list(map(_gmeta, params))
        self.pflat = [flat_inout(p, o)[0] for p, o in zip(params, self.orders)]
        self.sflat = [tuple(flat_inout(column[i], o)[0] for column in columns)
                      for i, o in enumerate(self.orders)]
        self.grads = self.gflat = self.gwhole = self.calls = None  # the gradient side: see learn_grads
        self.cbufs = {d: blank(d) for d in dtypes}
        self.consts = None

    @classmethod
    def build(cls, entries: list, names: tuple, stores: list) -> Plan | None:
        """A plan for the accepted ``entries`` ``(key, p, g, scalar_type)``, or None if they do not qualify."""
        for key, p, _, scalar_type in entries:
            if scalar_type is not None or type(p) is not np.ndarray:
                return None
            o = order(p)
            if not has_view(p, o):
                return None
            for store in stores:
                s = store[key]
                if type(s) is not np.ndarray or not has_view(s, o):
                    return None
        return cls(entries, names, stores)

    @staticmethod
    def _flatten_state(keys: list, params: list, stores: list) -> tuple:
        """Whole-model 1-D views ``(p, (state, ...))``; moves each state into one flat buffer first
        unless it already tiles one in key order (the dicts then hold views of that buffer)."""
        base, start, stop = _flat.span(params)
        flat_states = []
        for store in stores:
            column = [store[k] for k in keys]
            found = _flat.span(column) if all(s.dtype == base.dtype for s in column) else None
            if found is not None and found[2] - found[1] == stop - start:
                flat_states.append(found[0][found[1]:found[2]])
                continue
            buffer = np.empty(stop - start, base.dtype)
            offset = 0
            for k, p, s in zip(keys, params, column):
                view = buffer[offset:offset + p.size].reshape(p.shape)
                view[...] = s
                store[k] = view
                offset += p.size
            flat_states.append(buffer)
        return base[start:stop], tuple(flat_states)

    def match(self, opt, params: dict, grads: dict) -> bool:
        """True when this plan still describes ``params``, the optimizer state and ``grads``.

        Parameters: same objects under the same keys (no key added or removed), same shape, dtype
        and writeable flag. State: the same dicts holding the same objects in the same order, each
        still writeable (a user who replaces ``opt.m[key]`` or makes it read-only is heard; one who
        reshapes a state array in place is not). Gradients: the same objects with the same shape
        and dtype, or new ones that :meth:`learn_grads` accepts.
        """
        keys = self.keys
        try:
            pl = list(map(params.__getitem__, keys))
            gl = list(map(grads.__getitem__, keys))
        except KeyError:
            return False
        if len(params) != self.n or not all(map(_is, pl, self.params)):
            return False
        for (name, store), values in zip(self.named_stores, self.state_values):
            if getattr(opt, name) is not store or len(store) != len(values) or not all(
                    map(_is, store.values(), values)):  # (every entry in order: cheaper than lookups)
                return False
        if list(map(_pmeta, pl)) != self.pmeta or not all(map(_writeable, self.state_arrays)):
            return False
        if self.grads is None or not all(map(_is, gl, self.grads)):
            return self.learn_grads(gl)  # new gradient objects (a book-style backward pass)
        return list(map(_gmeta, gl)) == self.gmeta

    def learn_grads(self, gl: list) -> bool:
        """Take ``gl`` (the gradients in key order) when each has a 1-D view matching its parameter."""
        flat = []
        for g, (shape, dtype), o in zip(gl, self.gmeta, self.orders):
            if (type(g) is not np.ndarray or (g.dtype is not dtype and g.dtype != dtype) or g.shape != shape
                    or not has_view(g, o)):
                return False
            flat.append(g.ravel(order=o))
        self.gwhole = None
        if self.whole is not None:
            found = _flat.span(gl)
            if found is not None and found[2] - found[1] == self.whole[0].size:
                self.gwhole = found[0][found[1]:found[2]]
        self.grads, self.gflat = gl, flat
        if self.gwhole is not None:  # the kernel calls' arguments, ready for run()
            p, states = self.whole
            self.calls = [(p, self.gwhole, *(states + (p, p, p))[:3], self.cbufs[p.dtype], p.size)]
        else:
            self.calls = [(pf, gf, *(states + (pf, pf, pf))[:3], self.cbufs[pf.dtype], pf.size)
                          for pf, gf, states in zip(self.pflat, flat, self.sflat)]
        return True

    def run(self, rule: Rule, consts: tuple) -> list:
        """Step everything with the rule's constants; ``[(index, non-finite count), ...]`` of the bad keys."""
        last = self.consts
        if consts != last:
            only_first = last is not None and consts[1:] == last[1:]  # (Adam: only lr_t moves)
            for buf in self.cbufs.values():
                if only_first:
                    buf[0] = consts[0]  # rounded to the buffer's dtype, like dtype.type(c)
                else:
                    buf[:len(consts)] = consts
            self.consts = consts
        bad = []
        use_parallel = runtime.use_parallel
        kind, traffic = rule.kind, rule.traffic
        for i, (p, g, s1, s2, s3, c, n) in enumerate(self.calls):
            if kind is None:
                n_bad = launch(rule, p, g, s1, s2, s3, c)
            elif use_parallel(n, "optimizer", n * p.itemsize * traffic, p.itemsize):
                n_bad = _k.step_parallel(kind, p, g, s1, s2, s3, c, runtime.chunks(n))
            else:
                n_bad = _k.step(kind, p, g, s1, s2, s3, c)
            if n_bad:
                bad.append((i, n_bad))
        if bad and self.gwhole is not None:  # one call for the whole model: count per key
            counts = [int(np.count_nonzero(~np.isfinite(pf))) for pf in self.pflat]
            bad = [(i, c) for i, c in enumerate(counts) if c]
        return bad
