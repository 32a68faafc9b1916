"""Reusing trained layers (transfer learning): copy the lower layers of a trained net, freeze them.

Hands-On ML ch. 11 reuses the lower layers of a network trained on a similar task: build the new
network, copy the trained layers' weights into it, freeze them (Keras: ``layer.trainable = False``),
train the new upper layers, then optionally unfreeze and fine-tune with a small learning rate.
On the book's networks (:mod:`fastdl.nets`) that reads::

    new = MultiLayerNetExtend(64, [100, 100, 100], 10, use_batchnorm=True)
    new.load_layers_from(trained, n_layers=2)   # copy blocks 1-2 and freeze them
    trainer = Trainer(new, ...)                  # trains W3, b3, gamma3, beta3, W4, b4 only
    new.unfreeze()                               # fine-tune everything

or, as a function, :func:`reuse_layers` ``(trained, new, n_layers)``.

What "layer" means
    Layer ``i`` is the book's block ``i``: ``Affine{i}`` with, for a hidden block, its
    ``BatchNorm{i}`` (``gamma{i}``, ``beta{i}`` and the running statistics) and its activation's
    learnable parameters (PReLU's ``alpha{i}``). ``n_layers = L`` with ``L`` the number of
    ``Affine`` layers includes the output layer.

Freezing (``net.freeze(layers)``, ``net.unfreeze(layers=None)``, ``net.frozen``)
    ``layers`` is an int ``k`` (blocks ``1..k``) or a list of ``params`` keys (a batch-norm layer's
    ``gamma{i}`` and ``beta{i}`` go together: Keras freezes the layer). The frozen keys:

    * are absent from ``net.gradient(x, t)`` and from ``net.trainable_params``, the dict to give
      an optimizer (Keras' ``model.trainable_variables``; PyTorch's parameters with
      ``requires_grad=True``): ``optimizer.update(net.trainable_params, grads)``. No optimizer
      ever sees them, so none (any rule, clipping, decoupled decay) can change them; the norm of
      ``global_clipnorm`` is that of the trainable gradients, as in Keras. :class:`fastdl.Trainer`
      does this by itself. The book's ``optimizer.update(net.params, grads)`` raises (nothing
      changes): a frozen key has no gradient.
    * get no gradient computed where that saves work: no ``dW`` of a frozen ``Affine``, and no
      backward pass at all below the lowest trainable layer (the fused step runs the frozen
      blocks' forward only; the layer path stops its backward loop there). Frozen layers above a
      trainable one still pass ``dx`` down.
    * frozen batch-norm layers run in inference mode, in training too: their running statistics
      normalise and are not updated (Keras' behaviour for ``BatchNormalization`` with
      ``trainable=False`` since TF 2.0). Their backward is ``dx = dout * gamma / sqrt(running_var
      + 1e-6)``.
    * weight decay (the net's L2 ``weight_decay_lambda``) still adds the frozen ``W``'s term to
      the loss value (a constant) but no gradient.

    On the fastdl backend, freezing and unfreezing re-pack the parameters (frozen keys first,
    then the trainable ones, so ``trainable_params`` tiles one flat buffer and an optimizer steps it
    in one kernel call): ``params``' values become new arrays with the same values and keys.
    Optimizer state is kept by key: after ``unfreeze`` the optimizer creates fresh (zero) state for
    keys it has never stepped, keeps the state of keys it stepped before, and its step counters
    (Adam's ``iter``) continue; for a clean start make a new optimizer (Géron's recipe: recompile
    with a lower learning rate).

Saving
    ``net.save`` records the frozen keys in the config (``"frozen"``); :func:`fastdl.nets.load`
    and trainer checkpoints restore them.
"""

from __future__ import annotations

import operator

import numpy as np

from . import _checks
from .ops import BN_EPS

__all__ = ["Freezable", "block_keys", "frozen_bn_layers", "resolve_layers", "reuse_layers"]


def block_keys(net, idx: int) -> list[str]:
    """The ``params`` keys of block ``idx`` (``W{idx}``, ``b{idx}``, ``gamma{idx}``, ``beta{idx}``, ...)."""
    s = str(idx)
    return [k for k in net.params if k.endswith(s) and k[:-len(s)].isalpha()]


def _n_blocks(net) -> int:
    return net.hidden_layer_num + 1


def resolve_layers(net, layers, where: str) -> list[str]:
    """The keys ``layers`` names (an int ``k``: blocks ``1..k``; a key or list of keys), checked.

    Raises before anything changes: an int outside ``[0, L]``, an unknown key, a batch-norm layer's
    ``gamma``/``beta`` without the other.
    """
    if isinstance(layers, int | np.integer) and not isinstance(layers, bool):
        k = operator.index(layers)
        if not 0 <= k <= _n_blocks(net):
            _checks.fail(where, "layers", f"an int in [0, {_n_blocks(net)}] (the number of lower blocks) or a "
                         "list of params keys", repr(layers))
        return [key for idx in range(1, k + 1) for key in block_keys(net, idx)]
    if isinstance(layers, str):
        layers = [layers]
    if isinstance(layers, bool) or not hasattr(layers, "__iter__"):
        _checks.fail(where, "layers", "an int (the number of lower blocks) or a list of params keys",
                     _checks.describe(layers), TypeError)
    keys = list(layers)
    for key in keys:
        if not isinstance(key, str) or key not in net.params:
            _checks.fail(where, "layers", f"keys of params ({', '.join(net.params)})", repr(key))
    for key in keys:
        for a, b in (("gamma", "beta"), ("beta", "gamma")):
            if key.startswith(a) and key[len(a):].isdigit() and b + key[len(a):] not in keys:
                _checks.fail(where, "layers", f"{key!r} together with {b + key[len(a):]!r} (a batch-norm layer "
                             "is frozen whole, as Keras freezes a layer)", repr(keys))
    return [k for k in net.params if k in set(keys)]


def frozen_prefix(net) -> int:
    """The number ``k`` of whole lower blocks the frozen set covers (blocks ``1..k``)."""
    frozen = set(net._frozen)
    k = 0
    while k < _n_blocks(net) and all(key in frozen for key in block_keys(net, k + 1)):
        k += 1
    return k


def fused_covers(net) -> bool:
    """True when the fused step covers the frozen set: exactly blocks ``1..k`` with ``k`` below the output layer."""
    k = frozen_prefix(net)
    whole = {key for i in range(1, k + 1) for key in block_keys(net, i)}
    return k <= net.hidden_layer_num and set(net._frozen) == whole


def _layer_keys(net, name: str) -> list[str]:
    """The ``params`` keys a layer holds (by the book's layer names)."""
    idx = name[len(name.rstrip("0123456789")):]
    if name.startswith("Affine"):
        return [f"W{idx}", f"b{idx}"]
    if name.startswith("BatchNorm"):
        return [f"gamma{idx}", f"beta{idx}"]
    if name.startswith("Activation_function"):
        return [k for k in block_keys(net, int(idx)) if k not in (f"W{idx}", f"b{idx}", f"gamma{idx}", f"beta{idx}")]
    return []


def backward_frozen(net, dout) -> None:
    """The layer path's backward with frozen keys: down to the lowest layer holding a trainable key only,
    frozen batch-norm layers by :func:`frozen_bn_backward` (they ran in inference mode)."""
    frozen = set(net._frozen)
    items = list(net.layers.items())
    lowest = next((i for i, (name, _) in enumerate(items)
                   if any(k not in frozen for k in _layer_keys(net, name))), None)
    if lowest is None:
        return  # nothing trainable: no backward at all
    frozen_bn = frozen_bn_layers(net, frozen)
    for name, layer in reversed(items[lowest:]):
        dout = frozen_bn_backward(layer, dout) if name in frozen_bn else layer.backward(dout)


def frozen_bn_layers(net, frozen) -> set[str]:
    """Names of the batch-norm layers whose ``gamma`` is frozen (they run in inference mode)."""
    return {f"BatchNorm{k[5:]}" for k in frozen if k.startswith("gamma") and f"BatchNorm{k[5:]}" in net.layers}


def frozen_bn_backward(layer, dout: np.ndarray) -> np.ndarray:
    """``dout * gamma / sqrt(running_var + 1e-6)``: the backward of a batch-norm layer in inference mode."""
    rv = layer.running_var
    std = np.sqrt((np.zeros_like(layer.gamma) if rv is None else rv) + layer.gamma.dtype.type(BN_EPS))
    return dout * (layer.gamma / std)


def _copies(trained, new, n_layers: int, where: str) -> tuple[list, list]:
    """The parameter and running-statistics copies of blocks ``1..n_layers``, every shape checked first."""
    for name in ("params", "layers", "hidden_layer_num"):
        if not hasattr(trained, name):
            _checks.fail(where, "trained", "a fastdl.nets network (params, layers)", _checks.describe(trained),
                         TypeError)
    if isinstance(n_layers, bool) or not isinstance(n_layers, int | np.integer):
        _checks.fail(where, "n_layers", "an int", _checks.describe(n_layers), TypeError)
    top = min(_n_blocks(trained), _n_blocks(new))
    if not 1 <= n_layers <= top:
        _checks.fail(where, "n_layers", f"an int in [1, {top}] (blocks both networks have)", repr(n_layers))
    if trained.activation != new.activation:
        _checks.fail(where, "trained", f"a network with the activation {new.activation!r} like the new one (the "
                     "copied layers would compute something else)", repr(trained.activation))
    params, stats = [], []
    for idx in range(1, n_layers + 1):
        src, dst = block_keys(trained, idx), block_keys(new, idx)
        if src != dst:
            _checks.fail(where, f"trained block {idx}", f"the parameters {dst} like the new network's",
                         f"{src} (batch norm on one side only?)")
        for key in dst:
            a, b = trained.params[key], new.params[key]
            if np.shape(a) != b.shape:
                _checks.fail(where, f"trained.params[{key!r}]", f"of shape {b.shape} like params[{key!r}]",
                             f"shape {np.shape(a)}")
            params.append((key, np.asarray(a)))
        bn = f"BatchNorm{idx}"
        if bn in new.layers:
            for attr in ("running_mean", "running_var"):
                value = getattr(trained.layers[bn], attr, None)
                if value is not None and np.shape(value) != new.params[f"gamma{idx}"].shape:
                    _checks.fail(where, f"trained.layers[{bn!r}].{attr}",
                                 f"of shape {new.params[f'gamma{idx}'].shape}", f"shape {np.shape(value)}")
                stats.append((new.layers[bn], attr, None if value is None else
                              np.array(value, dtype=new.dtype, copy=True)))
    return params, stats


def reuse_layers(trained, new, n_layers: int, freeze: bool = True):
    """Copy the lower ``n_layers`` blocks of ``trained`` into ``new`` and (by default) freeze them.

    Copies weights, biases, batch-norm ``gamma``/``beta`` and running statistics, and learnable
    activation parameters, cast to ``new``'s dtype. Every key and shape is checked before anything
    is copied; the first mismatch is named.

    Parameters
    ----------
    trained : MultiLayerNetExtend or MultiLayerNet
        The source (unchanged).
    new : MultiLayerNetExtend or MultiLayerNet
        The target: same activation, same layout of blocks ``1..n_layers``.
    n_layers : int
        Blocks to copy, from the input up (``1..L``; ``L`` includes the output layer).
    freeze : bool
        Freeze the copied blocks (:meth:`~fastdl.nets.MultiLayerNetExtend.freeze`).

    Returns
    -------
    the ``new`` network
    """
    where = f"{type(new).__name__}.load_layers_from"
    params, stats = _copies(trained, new, n_layers, where)
    for key, value in params:
        np.copyto(new.params[key], value, casting="unsafe")
    for layer, attr, value in stats:
        setattr(layer, attr, value)
    if freeze:
        new.freeze(n_layers)
    return new


class Freezable:
    """The freezing methods of :class:`fastdl.nets.MultiLayerNetExtend` and ``MultiLayerNet`` (a mixin).

    The network provides ``params``, ``_frozen`` (a tuple of keys, ``()`` by default) and
    ``_set_frozen(keys)`` (store them, re-index the layers, rebuild the fused step).
    """

    _frozen: tuple[str, ...] = ()

    def freeze(self, layers) -> None:
        """Freeze ``layers``: the lowest ``k`` blocks (an int) or a list of ``params`` keys.

        The book's counterpart of Keras' ``layer.trainable = False`` (see the module notes for what is
        skipped and guaranteed). Frozen keys leave ``gradient()`` and :attr:`trainable_params`;
        frozen batch-norm layers run in inference mode. Adds to the frozen set; checked before
        anything changes.

        Parameters
        ----------
        layers : int, str or list of str
            ``k`` in ``[0, L]`` (blocks ``1..k``, ``L`` counting the output layer), or ``params`` keys
            (``gamma{i}`` with ``beta{i}``).
        """
        keys = set(resolve_layers(self, layers, f"{type(self).__name__}.freeze"))
        self._set_frozen([k for k in self.params if k in keys or k in self._frozen])

    def unfreeze(self, layers=None) -> None:
        """Make ``layers`` trainable again: every frozen key (``None``), blocks ``1..k`` (an int) or keys.

        Optimizer state is kept by key: a key the optimizer never stepped starts from zero state, one it
        stepped before continues, and step counters continue (a new optimizer starts clean).
        """
        keys = set(self.params if layers is None else
                   resolve_layers(self, layers, f"{type(self).__name__}.unfreeze"))
        self._set_frozen([k for k in self._frozen if k not in keys])

    def load_layers_from(self, trained, n_layers: int, freeze: bool = True):
        """Copy blocks ``1..n_layers`` of ``trained`` into this network and freeze them (:func:`reuse_layers`).

        Returns
        -------
        self
        """
        return reuse_layers(trained, self, n_layers, freeze)

    @property
    def frozen(self) -> tuple[str, ...]:
        """The frozen ``params`` keys, in ``params``' order."""
        return self._frozen

    @property
    def trainable_params(self) -> dict:
        """``params`` without the frozen keys (``params`` itself when none is): the dict an optimizer steps.

        ``optimizer.update(net.trainable_params, net.gradient(x, t))``: Keras'
        ``model.trainable_variables``. A new dict of the same arrays at each access when keys are frozen.
        """
        skip = self._frozen
        if not skip:
            return self.params
        return {k: v for k, v in self.params.items() if k not in skip}
