"""``transfer``: reusing the lower layers of a net trained on digits 0-4 for digits 5-9 (Hands-On ML ch. 11).

A base network (64-[64, 64, 64]-5, batch norm, ReLU) learns the digits 0-4 on all their training
samples. For the new task, the digits 5-9 with only a few labelled samples per class, three
networks of the same shape start from:

* **scratch**: new random weights, everything trained;
* **reused, frozen**: blocks 1-2 copied from the base (weights, batch norm with its running
  statistics) and frozen (:meth:`~fastdl.nets.MultiLayerNetExtend.load_layers_from`); block 3 and
  the output layer trained;
* **reused, fine-tuned**: as the frozen one for the first half of the epochs, then
  :meth:`~fastdl.nets.MultiLayerNetExtend.unfreeze` and train everything at a tenth of the learning
  rate (Géron's recipe).

Left panel: test accuracy on all digits 5-9 of the test split per epoch at one training-set size;
right panel: final test accuracy against the training-set size. What it shows on the digits: with a
the reused layer gives a faster start (the first epochs) but not a better end than training from
scratch: the 8x8 digits are small and easy enough that random features plus a few hundred samples
do as well, and reusing more layers (``n_reused=3``) ends worse (upper layers are task-specific,
Géron's reason to reuse the lower ones). MNIST (``dataset='mnist'``) is the harder case.
"""

from __future__ import annotations

import numpy as np

from .. import optim
from ..nets import MultiLayerNetExtend
from . import _common

KINDS = ("scratch", "reused, frozen", "reused, fine-tuned")


def _train(net, x, t, xt, tt, epochs: int, lr: float, batch: int, rng, unfreeze_at: int | None, bar) -> list[float]:
    """Adam on mini-batches of ``batch``; test accuracy after each epoch."""
    opt = optim.Adam(lr=lr)
    acc = []
    for epoch in range(epochs):
        if unfreeze_at is not None and epoch == unfreeze_at:
            net.unfreeze()
            opt = optim.Adam(lr=lr / 10)  # a fresh optimizer at a lower rate
        order = rng.permutation(len(x))
        for i in range(0, len(x), batch):
            idx = order[i:i + batch]
            opt.update(net.trainable_params, net.gradient(x[idx], t[idx]))
        acc.append(net.accuracy(xt, tt))
        bar.update(1)
    return acc


def run(dataset: str = "digits", out=None, seed: int = 0, hidden=(64, 64, 64), n_reused: int = 1,
        base_epochs: int = 30, epochs: int = 40, sizes=(10, 25, 50, 100, 250), curve_size: int = 50,
        lr: float = 0.01, batch_size: int = 32, repeats: int = 3):
    """Train the base on 0-4, then scratch vs reused (frozen, fine-tuned) on few samples of 5-9.

    Parameters
    ----------
    dataset : {'digits', 'mnist'}
        The data (the digits finish in seconds).
    out : path-like, optional
        Output directory for ``transfer.png``.
    seed : int
        Seeds the weights (``np.random.seed``) and the sample and batch draws.
    hidden : tuple of int
        Hidden layer widths of every network.
    n_reused : int
        Lower blocks copied and frozen (at most ``len(hidden)``).
    base_epochs, epochs : int
        Epochs of the base network and of each new-task network.
    sizes : tuple of int
        Training samples of digits 5-9 (drawn at random, the same set for the three networks).
    curve_size : int
        The size whose per-epoch curves the left panel shows (added to ``sizes`` if missing).
    lr, batch_size : float, int
        Adam's learning rate and the mini-batch size.
    repeats : int
        Draws of the training set and the new weights per size; the accuracies are their means.

    Returns
    -------
    data : dict
        ``curves[kind]``: mean test accuracy per epoch at ``curve_size``; ``final[kind]``: mean final
        test accuracy per size of ``sizes``; ``base_acc``: the base network's test accuracy on 0-4.
    fig : matplotlib.figure.Figure
    """
    from tqdm.auto import tqdm

    where = "transfer"
    hidden = [_common.check_count(h, "hidden entries", where) for h in hidden]
    n_reused = _common.check_count(n_reused, "n_reused", where)
    if n_reused > len(hidden):
        raise ValueError(f"{where}: n_reused must be at most len(hidden) = {len(hidden)}; got {n_reused}")
    base_epochs = _common.check_count(base_epochs, "base_epochs", where)
    epochs = _common.check_count(epochs, "epochs", where, minimum=2)
    repeats = _common.check_count(repeats, "repeats", where)
    sizes = sorted({_common.check_count(s, "sizes entries", where, minimum=5) for s in (*sizes, curve_size)})
    (x, t), (xt, tt) = _common.load(dataset, where)
    low, low_t = x[t < 5], t[t < 5]
    high, high_t = x[t >= 5], t[t >= 5] - 5
    xt_low, tt_low = xt[tt < 5], tt[tt < 5]
    xt_high, tt_high = xt[tt >= 5], tt[tt >= 5] - 5
    sizes = [s for s in sizes if s <= len(high)]
    rng = np.random.default_rng(seed)
    d = x.shape[1]
    total = base_epochs + len(sizes) * len(KINDS) * epochs * repeats
    with tqdm(total=total, desc=where, unit="epoch", dynamic_ncols=True, leave=False) as bar:
        np.random.seed(seed)
        base = MultiLayerNetExtend(d, hidden, 5, use_batchnorm=True, weight_init_std="he")
        _train(base, low, low_t, xt_low, tt_low, base_epochs, lr, 100, rng, None, bar)
        base_acc = base.accuracy(xt_low, tt_low)
        final = {k: [] for k in KINDS}
        curves = {}
        for size in sizes:
            runs = {k: [] for k in KINDS}
            for r in range(repeats):
                pick = rng.choice(len(high), size, replace=False)
                xs, ts = high[pick], high_t[pick]
                for kind in KINDS:
                    np.random.seed(seed + 1 + r)  # the same new weights for the three
                    net = MultiLayerNetExtend(d, hidden, 5, use_batchnorm=True, weight_init_std="he")
                    if kind != "scratch":
                        net.load_layers_from(base, n_layers=n_reused)
                    unfreeze_at = epochs // 2 if kind == "reused, fine-tuned" else None
                    runs[kind].append(_train(net, xs, ts, xt_high, tt_high, epochs, lr, batch_size, rng,
                                             unfreeze_at, bar))
            for kind in KINDS:
                mean = np.mean(runs[kind], axis=0)
                final[kind].append(float(mean[-1]))
                if size == curve_size:
                    curves[kind] = mean.tolist()

    fig = _common.figure(figsize=(12, 4.6))
    ax1, ax2 = fig.subplots(1, 2)
    styles = {"scratch": ("tab:gray", "o"), "reused, frozen": ("tab:blue", "s"),
              "reused, fine-tuned": ("tab:orange", "^")}
    ep = np.arange(1, epochs + 1)
    for kind, acc in curves.items():
        ax1.plot(ep, acc, color=styles[kind][0], label=kind, lw=2)
    ax1.axvline(epochs // 2 + 0.5, color="tab:orange", ls=":", lw=1)
    ax1.text(epochs // 2 + 0.8, 0.45, "fine-tuned: unfreeze,\nlr / 10", color="tab:orange", fontsize=8,
             transform=ax1.get_xaxis_transform())
    ax1.set(xlabel="epoch", ylabel="test accuracy on digits 5-9", ylim=(0, 1), xlim=(1, epochs),
            title=f"{curve_size} training samples of 5-9 (mean of {repeats} draws)")
    ax1.grid(alpha=0.3)
    ax1.legend(loc="lower right")
    for kind in KINDS:
        ax2.plot(sizes, final[kind], color=styles[kind][0], marker=styles[kind][1], label=kind, lw=2)
    ax2.set_xscale("log")
    ax2.set_xticks(sizes, [str(s) for s in sizes])
    ax2.minorticks_off()
    ax2.set(xlabel="training samples of digits 5-9 (log scale)", ylabel=f"test accuracy after {epochs} epochs",
            ylim=(0, 1), title="final accuracy against training-set size")
    ax2.grid(alpha=0.3)
    ax2.legend(loc="lower right")
    sizes_txt = "-".join(map(str, [d, *hidden, 5]))
    reused = "layer 1" if n_reused == 1 else f"layers 1-{n_reused}"
    fig.suptitle(f"Reusing {reused} (frozen) of a {sizes_txt} net trained on digits 0-4 "
                 f"(test accuracy {base_acc:.3f}) for digits 5-9")
    path = _common.save(fig, out, where)
    summary = ", ".join(f"{k} {final[k][sizes.index(curve_size)]:.3f}" for k in KINDS)
    print(f"{where}: base on 0-4 {base_acc:.3f}; on 5-9 with {curve_size} samples: {summary} -> {path}")
    data = {"curves": curves, "final": final, "sizes": sizes, "base_acc": base_acc, "png": str(path)}
    return data, fig
