"""The fused training step of a :class:`fastdl.nets.MultiLayerNetExtend` on the fastdl backend.

Parameters and gradients live as views into two flat buffers (``P``, ``G``, same offsets), so a
fastdl optimizer steps the whole model in one kernel call. Each GEMM runs with ``np.dot(..., out=)``
into buffers kept per batch size, and everything between two GEMMs as one compiled kernel of
:mod:`fastdl.kernels.fused` (bias + batch norm + activation forward; activation + batch norm + bias
backward; bias + softmax + cross-entropy + its gradient, or for ``loss='mse'`` bias + squared error + its
gradient in one pass, :func:`fastdl.kernels.mse.identity_mse_grad`). The arithmetic is the layers', so the
numbers are those of the layer-by-layer path, to the bit.

Alpha dropout (``use_alpha_dropout``) runs after a block's activation: the layer's own draws and
constants, one kernel writing the next GEMM's input and the mask (:func:`fastdl.kernels.dropout.alpha_forward`),
and ``dx = (dout * a) * mask`` in place before the activation's backward. The penalties are added to each
``dW`` after the backward: ``+ λ * W`` (L2), then ``+ λ₁ * sign(W)`` (L1), as the layer path adds them.

Activations come from their :mod:`fastdl.activations` record: a record with fused kernel codes runs
inside the epilogues; otherwise the epilogue runs without activation (``LINEAR``) and the record's
driver runs on the block's buffers (sigmoid's forward does so, with NumPy's vectorized exp).

The evaluation forward (:meth:`FusedStep.predict`, behind ``predict``/``loss``/``accuracy`` of a ReLU
network without batch norm) runs the same GEMM + epilogue per block on new arrays, without the training
buffers.

Phase timing (``net._phase_times``, read by :func:`fastdl.profile_step`) swaps the step's callables
for timed wrappers (:class:`_Calls`): the untimed step runs no clock and no branch for it.
"""

from __future__ import annotations

import operator
import time

import numpy as np

from . import _checks, _flat, activations, ops, runtime, transfer
from .kernels import dropout as _do
from .kernels import fused as _fused
from .kernels import mse as _mse

__all__ = ["PHASES", "FusedStep"]

#: phases of :attr:`MultiLayerNetExtend._phase_times` (besides ``'total'``)
PHASES = ("validate", "gemm", "forward", "loss", "backward")


class _Block:
    """One block of the fused step: its parameter and gradient views, layers and scratch."""

    __slots__ = ("W", "b", "gamma", "beta", "gW", "gb", "ggamma", "gbeta", "affine", "bn", "act_layer", "stats",
                 "std", "rm", "rv", "width", "drop")


class _Calls:
    """The callables one step runs, by phase: the kernels themselves, or timed wrappers of them."""

    __slots__ = ("prepare", "dot", "block_forward", "act_forward", "loss", "block_backward", "act_backward",
                 "drop_forward", "drop_backward")

    def timed(self, times: dict) -> _Calls:
        """A copy whose callables add their seconds to ``times[phase]`` (``time.perf_counter`` deltas)."""
        phase_of = {"prepare": "validate", "dot": "gemm", "block_forward": "forward", "act_forward": "forward",
                    "loss": "loss", "block_backward": "backward", "act_backward": "backward",
                    "drop_forward": "forward", "drop_backward": "backward"}
        out = _Calls()
        for name, phase in phase_of.items():
            fn = getattr(self, name)
            setattr(out, name, None if fn is None else _clocked(fn, phase, times))
        return out


def _clocked(fn, phase: str, times: dict):
    clock = time.perf_counter

    def run(*args):
        t0 = clock()
        try:
            return fn(*args)
        finally:
            times[phase] += clock() - t0

    return run


class FusedStep:
    """Fused forward and backward of one network (built once; see the module notes).

    :meth:`gradient` returns ``None`` when the network no longer has the layout it was built for,
    and the caller then runs the layer-by-layer path.
    """

    _MAX_BATCH_SIZES = 4  # buffers kept for this many batch sizes (the last batch of an epoch may differ)

    def __init__(self, net) -> None:
        params = net.params
        frozen = set(net._frozen)
        # frozen keys first, so the trainable ones (net.trainable_params) tile the end of P in params' order
        packed = {k: params[k] for k in sorted(params, key=lambda k: k not in frozen)}
        self.lo = transfer.frozen_prefix(net) if frozen else 0  # blocks 0..lo-1: frozen, forward only
        self.P, views = _flat.pack(packed)
        self.G, gviews = _flat.pack(packed)  # same layout as P, so one optimizer call can step P with G
        self.G[...] = 0
        params.update(views)  # same keys, same order: the values become views of P
        n_hidden = net.hidden_layer_num
        self.use_bn = net.use_batchnorm
        self.dtype = net.dtype
        self.mse = net.loss_name == "mse"
        self._init_activation(activations.get(net.activation))
        self.bindings = []  # (layer, attribute, view) the layer must still hold
        self.blocks: list[_Block] = []
        g = gviews
        for idx in range(1, n_hidden + 2):
            blk = _Block()
            blk.W, blk.b = params[f"W{idx}"], params[f"b{idx}"]
            blk.gW, blk.gb = g[f"W{idx}"], g[f"b{idx}"]
            blk.width = blk.W.shape[1]
            blk.affine = net.layers[f"Affine{idx}"]
            blk.affine.W, blk.affine.b = blk.W, blk.b
            self.bindings += [(blk.affine, "W", blk.W), (blk.affine, "b", blk.b)]
            blk.bn = blk.act_layer = blk.drop = None
            if idx <= n_hidden:
                blk.act_layer = net.layers[f"Activation_function{idx}"]
                blk.drop = net.layers.get(f"AlphaDropout{idx}")
                blk.stats = np.zeros((4, blk.width), dtype=self.dtype)
                blk.std = blk.stats[2]
                if self.use_bn:
                    blk.gamma, blk.beta = params[f"gamma{idx}"], params[f"beta{idx}"]
                    blk.ggamma, blk.gbeta = g[f"gamma{idx}"], g[f"beta{idx}"]
                    blk.bn = net.layers[f"BatchNorm{idx}"]
                    blk.bn.gamma, blk.bn.beta = blk.gamma, blk.beta
                    self.bindings += [(blk.bn, "gamma", blk.gamma), (blk.bn, "beta", blk.beta)]
                    blk.rm = np.zeros(blk.width, dtype=self.dtype)
                    blk.rv = np.zeros(blk.width, dtype=self.dtype)
                else:  # placeholders of the kernel's types (never touched without batch norm)
                    blk.gamma = blk.beta = blk.ggamma = blk.gbeta = blk.rm = blk.rv = blk.b
            self.blocks.append(blk)
        self.bindings = tuple(map(list, zip(*self.bindings)))  # (layers, attribute names, views)
        bns = [blk.bn for blk in self.blocks if blk.bn is not None]
        self.running = ([b for b in bns for _ in (0, 1)], ["running_mean", "running_var"] * len(bns),
                        [a for blk in self.blocks if blk.bn is not None for a in (blk.rm, blk.rv)])
        self.moms_seen: tuple | None = None
        self.moms_cast: list = []
        self.no_moms = [(self.dtype.type(0), self.dtype.type(1))] * n_hidden
        self.views = tuple(params.values())
        # the layer path's key order (W1, b1, gamma1, beta1, W2, ...), not params' order
        order = [k for idx in range(1, n_hidden + 2)
                 for k in (f"W{idx}", f"b{idx}", f"gamma{idx}", f"beta{idx}") if k in gviews and k not in frozen]
        self.grad_views = {k: gviews[k] for k in order}
        self.layer_objs = tuple(net.layers.values())
        self.drops = [blk.drop for blk in self.blocks[:-1]] if net.use_alpha_dropout else []
        self.last = net.last_layer
        self.buffers: dict[int, tuple] = {}
        calls = self.calls = _Calls()
        calls.prepare, calls.dot = self._prepare, np.dot
        calls.loss = self._loss_mse if self.mse else self._loss
        calls.block_forward, calls.block_backward = _fused.block_forward, _fused.block_backward
        calls.act_forward = self._act_forward if self.fwd_code == _fused.LINEAR else None
        calls.act_backward = self._act_backward if self.bwd_code == _fused.LINEAR else None
        calls.drop_forward, calls.drop_backward = self._drop_forward, _do.alpha_backward
        self.times: dict[str, float] = {}
        self.timed_calls = calls.timed(self.times)

    def _init_activation(self, rec: activations.Activation) -> None:
        """The activation's codes in the fused kernels, or ``LINEAR`` and its drivers on the block's buffers."""
        self.activation = rec
        by_driver = rec.fused_forward is None or (rec.fused_backward is None and rec.saves != "y")
        self.fwd_code = _fused.LINEAR if by_driver else rec.fused_forward
        self.bwd_code = _fused.LINEAR if rec.fused_backward is None else rec.fused_backward
        # the pre-activation needs a buffer of its own when the driver's backward reads it
        self.keep_pre = by_driver and rec.fused_backward is None and rec.saves == "x"
        self.keep_mask = by_driver and rec.saves == "mask"

    def _buffers(self, n: int) -> tuple:
        buf = self.buffers.get(n)
        if buf is None:
            if len(self.buffers) >= self._MAX_BATCH_SIZES:
                self.buffers.clear()
            dt = self.dtype
            hidden = self.blocks[:-1]

            def per_block(dtype=dt):
                return [np.empty((n, b.width), dtype=dtype) for b in hidden]

            hs = per_block()
            xns = per_block() if self.use_bn else hs
            outs = per_block()
            dys = per_block()
            # what a driver's backward reads: the pre-activations, a mask, or the outputs
            saved = per_block() if self.keep_pre else per_block(np.bool_) if self.keep_mask else outs
            # alpha dropout: its outputs (the next GEMM's inputs) and masks
            drops = (per_block(), per_block(np.bool_)) if self.drops else None
            c = self.blocks[-1].width
            buf = self.buffers[n] = (hs, xns, outs, dys, saved, np.empty((n, c), dtype=dt),
                                     np.empty((n, c), dtype=dt), np.empty((n, c), dtype=dt), drops)
        return buf

    def still_valid(self, net) -> bool:
        """True while the network holds exactly the arrays and layers this step was built with."""
        params = net.params
        return (len(params) == len(self.views) and all(map(operator.is_, params.values(), self.views))
                and net.last_layer is self.last and len(net.layers) == len(self.layer_objs)
                and all(map(operator.is_, net.layers.values(), self.layer_objs))
                and all(map(operator.is_, map(getattr, *self.bindings[:2]), self.bindings[2])))

    def _momenta(self) -> list | None:
        """Per batch-norm block ``(m, 1 - m)`` in the dtype, after adopting the layers' running statistics.

        Returns None (nothing changed) when a layer holds something the fused step does not cover.
        """
        rs_objs, rs_attrs, rs_own = self.running
        moms = tuple(map(operator.attrgetter("momentum"), rs_objs[::2]))
        if moms != self.moms_seen or not all(map(operator.is_, map(getattr, rs_objs, rs_attrs), rs_own)):
            todo = self._running_stats()
            if todo is None:
                return None
            for layer, attr, own, cur in todo:  # accepted: adopt the layers' statistics
                if cur is None:
                    own[...] = 0
                else:
                    np.copyto(own, cur, casting="unsafe")
                setattr(layer, attr, own)
            tp = self.dtype.type
            self.moms_cast = [(tp(float(m)), tp(1.0 - float(m))) for m in moms]  # (as the layer casts)
            self.moms_seen = moms
        return self.moms_cast

    def _running_stats(self) -> list | None:
        """The batch-norm layers' running statistics as arrays to copy into ours (None: not usable here)."""
        todo = []
        for blk in self.blocks[:-1]:
            layer = blk.bn
            for attr, own in (("running_mean", blk.rm), ("running_var", blk.rv)):
                cur = getattr(layer, attr)
                if cur is own:
                    continue
                if cur is None:
                    todo.append((layer, attr, own, None))
                elif (isinstance(cur, np.ndarray) and cur.shape == own.shape
                      and cur.dtype in _checks.FLOAT_DTYPES):
                    todo.append((layer, attr, own, cur))
                else:
                    return None
            m = layer.momentum
            if isinstance(m, bool) or not isinstance(m, int | float | np.floating) or not 0 <= m <= 1:
                return None
        return todo

    def gradient(self, net, x, t) -> dict[str, np.ndarray] | None:
        """Fused forward and backward; ``None`` when the layer path must run instead (nothing changed).

        With ``net._phase_times`` a dict, the seconds of each phase of :data:`PHASES` and ``'total'``
        are added to it (only when the fused step ran).
        """
        pt = net._phase_times
        if pt is None:
            return self._run(net, x, t, self.calls)
        times = self.times
        for key in PHASES:
            times[key] = 0.0
        t0 = time.perf_counter()
        grads = self._run(net, x, t, self.timed_calls)
        total = time.perf_counter() - t0
        if grads is not None:
            for key in PHASES:
                pt[key] = pt.get(key, 0.0) + times[key]
            pt["total"] = pt.get("total", 0.0) + total
        return grads

    def _prepare(self, net, x, t):
        """Validated inputs and this batch size's buffers, or None (the layer path must run)."""
        if not self.still_valid(net):
            return None
        x = net._input(x, "gradient")
        if x.ndim != 2 or x.shape[0] < 1 or x.shape[1] != net.input_size:
            return None
        where = f"{type(net).__name__}.gradient"
        if self.mse:  # (the targets travel as probs: (N, D) in the dtype)
            labels, probs = None, ops.targets(t, (x.shape[0], self.blocks[-1].width), self.dtype, where)
        else:
            labels, probs = ops.labels(t, x.shape[0], self.blocks[-1].width, self.dtype, where)
        for layer in self.drops:  # a rate the layer would refuse: its path raises the error
            rate = layer.rate
            if isinstance(rate, bool) or not isinstance(rate, int | float | np.floating) or not 0 <= rate < 1:
                return None
        if self.use_bn:
            moms = self._momenta()
            if moms is None:
                return None
        else:
            moms = self.no_moms
        return x, labels, probs, moms, self._buffers(x.shape[0])

    def _run(self, net, x, t, calls: _Calls) -> dict[str, np.ndarray] | None:
        ready = calls.prepare(net, x, t)
        if ready is None:
            return None
        x, labels, probs, moms, (hs, xns, outs, dys, saved, z, y, dz, drops) = ready
        dot, block_forward, block_backward = calls.dot, calls.block_forward, calls.block_backward
        act_forward, act_backward = calls.act_forward, calls.act_backward
        blocks = self.blocks
        out_blk = blocks[-1]
        n = x.shape[0]
        tp = self.dtype.type
        nf = tp(n)
        eps = tp(ops.BN_EPS)
        use_bn = self.use_bn
        fwd_code, bwd_code = self.fwd_code, self.bwd_code
        pre = saved if self.keep_pre else outs  # where the epilogue writes when a driver applies the activation
        ins = list(outs)  # each hidden block's output as the next GEMM reads it (alpha dropout's, if any)
        scales = [None] * len(ins)  # alpha dropout's a per block (None: no dropout, or rate 0)
        # forward
        lo = self.lo
        a = x
        for blk in blocks[:lo]:  # frozen blocks: the layers themselves, batch norm in inference mode
            a = blk.act_layer.forward(blk.bn.forward(blk.affine.forward(a), False) if use_bn
                                      else blk.affine.forward(a))
            if blk.drop is not None:  # alpha dropout stays on in frozen blocks, as in the layer path
                a = blk.drop.forward(a, True)
        x_lo = a
        for i in range(lo, len(blocks) - 1):
            blk = blocks[i]
            h = hs[i]
            dot(a, blk.W, h)
            m, om = moms[i]
            bad = block_forward(h, blk.b, blk.gamma, blk.beta, eps, nf, m, om, blk.rm, blk.rv, blk.stats, xns[i],
                                pre[i], fwd_code, use_bn)
            if act_forward is not None:
                act_forward(blk, pre[i], outs[i], saved[i])
            if bad:
                self._nonfinite_stats(blk, bad, m, om)
            if drops is not None:
                scales[i] = calls.drop_forward(blk.drop, outs[i], drops[0][i], drops[1][i])
                if scales[i] is not None:
                    ins[i] = drops[0][i]
            a = ins[i]
        dot(a, out_blk.W, z)
        loss = calls.loss(z, y, dz, labels, probs, nf, n)
        # backward: dW of every trainable layer, dx of every one but the lowest
        d = dz
        for i in range(len(blocks) - 1, lo - 1, -1):
            blk = blocks[i]
            dot((ins[i - 1] if i > lo else x_lo).T, d, blk.gW)
            if i > lo:
                dot(d, blk.W.T, dys[i - 1])
                prev = blocks[i - 1]
                d = dys[i - 1]
                if scales[i - 1] is not None:
                    flat = d.reshape(-1)
                    calls.drop_backward(flat, drops[1][i - 1].reshape(-1), scales[i - 1], flat)
                if act_backward is not None:
                    act_backward(prev, d, saved[i - 1])
                block_backward(d, outs[i - 1], xns[i - 1], prev.gamma, prev.stats, nf, prev.ggamma, prev.gbeta,
                               prev.gb, bwd_code, use_bn)
        lam, l1 = net.weight_decay_lambda, net.l1_lambda
        if lam:
            lam_t = tp(lam)
            for blk in blocks[lo:]:
                _fused.add_scaled(blk.gW, blk.W, lam_t)
        if l1:  # after L2, as the layer path adds them
            l1_t = tp(l1)
            for blk in blocks[lo:]:
                _fused.add_sign_scaled(blk.gW, blk.W, l1_t)
        self._sync_layers(net, x_lo, t, labels, probs, loss, n, hs, xns, outs, saved, z if self.mse else y, ins,
                          drops, scales)
        return dict(self.grad_views)

    @staticmethod
    def _drop_forward(layer, out: np.ndarray, dropped: np.ndarray, mask: np.ndarray):
        """Alpha dropout of a block's output into ``dropped`` (the layer's own draws and constants);
        returns its ``a``, or None at rate 0 (the identity: the next GEMM reads ``out``)."""
        if float(layer.rate) == 0:
            return None
        dt = out.dtype
        a, b, c = layer._consts(dt)
        r, thr = ops.uniform_draws(layer.rng, float(layer.rate), out.shape, dt)
        _do.alpha_forward(out.reshape(-1), r.reshape(-1), thr, a, b, c, dropped.reshape(-1), mask.reshape(-1))
        return a

    def predict(self, net, x: np.ndarray) -> np.ndarray | None:
        """Evaluation-mode forward (``net.predict(x)``) in one kernel per hidden block; ``None``: the layer path runs.

        Covers a network without batch norm and alpha dropout whose activation runs inside the fused kernel (ReLU),
        for a C-contiguous ``(N, input_size)`` ``x`` in the network's dtype (others: ``None``, nothing
        done). The arithmetic is the layers': ``np.dot`` then bias + activation (``block_forward``),
        the output layer by :func:`fastdl.ops.affine`, so the scores are those of the layer path to
        the bit; every array is new (nothing shared between calls or threads). The layers' forward
        caches point at this pass's arrays as the layer path leaves them (ReLU's ``out``, from
        which its ``mask`` is computed when read).
        """
        if (self.use_bn or self.drops or self.fwd_code == _fused.LINEAR or x.ndim != 2 or x.shape[0] < 1
                or x.shape[1] != net.input_size or not x.flags.c_contiguous or not self.still_valid(net)):
            return None
        n = x.shape[0]
        tp = self.dtype.type
        eps, nf, m, om = tp(ops.BN_EPS), tp(n), tp(0), tp(1)  # (unused without batch norm)
        block_forward, code, saves = _fused.block_forward, self.fwd_code, self.activation.saves
        a = x
        for blk in self.blocks[:-1]:
            h = np.empty((n, blk.width), dtype=self.dtype)
            np.dot(a, blk.W, h)
            out = np.empty_like(h)
            block_forward(h, blk.b, blk.gamma, blk.beta, eps, nf, m, om, blk.rm, blk.rv, blk.stats, h, out, code,
                          False)
            aff, layer = blk.affine, blk.act_layer
            aff.x, aff.original_x_shape = a, a.shape
            layer._dtype = self.dtype
            if saves == "y":
                layer.out = out
            elif saves == "x":
                layer.x = h
            else:
                layer.mask = None
            a = out
        out_blk = self.blocks[-1]
        out_blk.affine.x, out_blk.affine.original_x_shape = a, a.shape
        return ops.affine(a, out_blk.W, out_blk.b)

    def _act_forward(self, blk: _Block, pre: np.ndarray, out: np.ndarray, saved: np.ndarray) -> None:
        """The record's forward driver on the block's buffers (``out`` may be ``pre``)."""
        rec = self.activation
        consts = _consts(blk.act_layer, pre.dtype)
        if self.keep_mask:
            rec.forward(pre.reshape(-1), out.reshape(-1), saved.reshape(-1), *consts)
        else:
            rec.forward(pre.reshape(-1), out.reshape(-1), *consts)

    def _act_backward(self, blk: _Block, d: np.ndarray, saved: np.ndarray) -> None:
        """The record's backward driver in place on ``d`` (the gradient of the block's output)."""
        flat = d.reshape(-1)
        self.activation.backward(flat, saved.reshape(-1), flat, *_consts(blk.act_layer, d.dtype))

    def _loss(self, z, y, dz, labels, probs, nf, n: int):
        """Output bias, softmax, cross-entropy and its gradient; the loss as a scalar of the dtype."""
        out_blk = self.blocks[-1]
        tp = self.dtype.type
        _fused.bias_shift(z, out_blk.b, y)
        np.exp(y, out=y)  # NumPy's vectorized exp, as the loss layer uses
        s = _fused.softmax_xent_grad(y, labels, dz if probs is None else probs, probs is not None,
                                     tp(ops.XENT_EPS), nf, tp(1), dz, out_blk.gb)
        return ops.loss_scalar(s, n, self.dtype, "SoftmaxWithLoss.forward")

    def _loss_mse(self, z, y, dz, labels, targets, nf, n: int):
        """Output bias, squared error and its gradient in one pass (``y`` unused: the output is ``z``)."""
        s = _mse.identity_mse_grad(z, self.blocks[-1].b, targets, nf, dz, self.blocks[-1].gb)
        return ops.loss_scalar(-0.5 * s, n, self.dtype, "IdentityWithLoss.forward")  # (0.5 * s / N)

    def _nonfinite_stats(self, blk: _Block, bad: int, m, om) -> None:
        # the layer path's report and order: report first, then (if not raised) store the statistics
        runtime.report_nonfinite("BatchNormalization.forward",
                                 f"{bad} feature(s) have a non-finite batch mean or variance")
        blk.rm[...] = m * blk.rm + om * blk.stats[0]
        blk.rv[...] = m * blk.rv + om * blk.stats[1]

    def _sync_layers(self, net, x, t, labels, probs, loss, n, hs, xns, outs, saved, y, ins, drops, scales) -> None:
        """Point the layers' gradients and forward caches at this step's arrays (as the layer path leaves them)."""
        a = x  # (the input of the lowest trainable block)
        rec = self.activation
        for i in range(self.lo, len(self.blocks)):
            blk = self.blocks[i]
            aff = blk.affine
            aff.x, aff.original_x_shape, aff.dW, aff.db = a, a.shape, blk.gW, blk.gb
            layer = blk.act_layer
            if layer is None:
                break
            bn = blk.bn
            if bn is not None:
                bn.xn, bn.std, bn.batch_size = xns[i], blk.std, n
                bn.input_shape = bn._train_shape = hs[i].shape
                bn.dgamma, bn.dbeta = blk.ggamma, blk.gbeta
            layer._dtype = self.dtype
            if rec.saves == "y":
                layer.out = outs[i]
            elif rec.saves == "x":
                layer.x = saved[i] if self.keep_pre else None  # (None: not kept, the kernel read the output)
            else:
                layer.mask = saved[i] if self.keep_mask else None  # (relu's kernel reads the output instead)
            if blk.drop is not None:
                if scales[i] is None:  # rate 0: the identity, as the layer's forward leaves it
                    blk.drop.mask, blk.drop._a = np.ones(outs[i].shape, dtype=np.bool_), self.dtype.type(1)
                else:
                    blk.drop.mask, blk.drop._a = drops[1][i], scales[i]
            a = ins[i]
        last = self.last
        last.y, last.t, last.loss, last._fwd = y, t, loss, (y, probs) if self.mse else (y, labels, probs)


def _consts(layer, dt: np.dtype) -> tuple:
    """The activation layer's options in the dtype (the drivers' trailing constants)."""
    return layer._consts(dt) if layer._act.options else ()
