"""``activations``: a deep net with every registered activation, and the self-normalization picture (Géron ch. 11).

Training (``activations.png``): a 64-[64 x 10]-10 network (no batch norm) per activation of
:mod:`fastdl.activations`, each with its recommended initialisation (``weight_init_std='auto'``:
He for the ReLU family, ELU, GELU, SiLU, Mish; Xavier for tanh and sigmoid; LeCun for SELU), trained
with the same mini-batches by the same optimizer (Nesterov momentum); smoothed training loss per
iteration and test accuracy at the end. What it shows on the digits: sigmoid barely learns through
ten layers (vanishing gradients); the ReLU family, ELU, SELU, GELU, SiLU and Mish all train.

Self-normalization (``activations-hist.png``): 1,000 standard-normal inputs through 20 dense layers
of 100 units, SELU with LeCun normal weights against ReLU with He and tanh with Xavier; histograms
of the activations at a few depths and the mean and standard deviation at every depth. What it
shows: SELU keeps mean ~0 and std ~1 through the whole stack (Klambauer et al.), ReLU+He keeps its
spread but not a zero mean, tanh+Xavier shrinks layer after layer.
"""

from __future__ import annotations

import numpy as np

from .. import activations, functional, optim
from ..init import std_for
from ..nets import MultiLayerNetExtend
from . import _common

#: the self-normalization comparison: (activation, init name, label)
STACKS = (("selu", "lecun", "SELU + LeCun"), ("relu", "he", "ReLU + He"), ("tanh", "xavier", "tanh + Xavier"))


def _histograms(n_samples: int, width: int, depth: int, shown: list[int], rng) -> dict:
    """Activations of ``depth`` dense layers per stack: histograms at ``shown`` depths, mean/std at all."""
    edges = np.linspace(-3.0, 4.0, 57)
    out = {}
    x0 = rng.standard_normal((n_samples, width))
    for act, init, label in STACKS:
        x = x0
        hist, mean, std = {}, [], []
        for i in range(1, depth + 1):
            w = rng.standard_normal((width, width)) * std_for(init, width, width)
            x = functional.activation(act, x @ w)
            mean.append(float(x.mean()))
            std.append(float(x.std()))
            if i in shown:
                hist[i] = np.histogram(np.clip(x, edges[0], edges[-1]), bins=edges)[0]
        out[label] = {"hist": hist, "mean": mean, "std": std}
    return {"edges": edges, "stacks": out}


def run(dataset: str = "digits", out=None, seed: int = 0, depth: int = 10, width: int = 64, epochs: int = 15,
        batch_size: int = 64, lr: float = 0.01, hist_depth: int = 20, n_samples: int = 1000, names=None):
    """Train one deep net per activation; draw the self-normalization histograms.

    Parameters
    ----------
    dataset : {'digits', 'mnist'}
        Training data.
    out : path-like, optional
        Output directory for ``activations.png`` and ``activations-hist.png``.
    seed : int
        ``np.random.seed`` before the weights, the batches and the random inputs.
    depth, width : int
        Hidden layers and units per hidden layer of the trained nets.
    epochs, batch_size, lr : int, int, float
        Training length, mini-batch size and Nesterov's learning rate (momentum 0.9).
    hist_depth, n_samples : int
        Layers (100 units each) and inputs of the self-normalization stacks.
    names : list of str, optional
        Activations to train (default: every registered one).

    Returns
    -------
    data : dict
        ``loss[name]``: training loss per iteration; ``test_acc[name]``; ``hist``: the stacks'
        ``edges`` and, per label, ``hist`` (depth -> counts), ``mean`` and ``std`` per depth.
    fig : matplotlib.figure.Figure
        The training figure (the histogram figure is ``data['hist_fig']``).
    """
    from tqdm.auto import tqdm

    where = "activations"
    depth = _common.check_count(depth, "depth", where)
    width = _common.check_count(width, "width", where)
    epochs = _common.check_count(epochs, "epochs", where)
    batch_size = _common.check_count(batch_size, "batch_size", where)
    hist_depth = _common.check_count(hist_depth, "hist_depth", where)
    n_samples = _common.check_count(n_samples, "n_samples", where)
    names = list(activations.names() if names is None else [activations.get(n, where).name for n in names])
    (x, t), (xt, tt) = _common.load(dataset, where)
    np.random.seed(seed)
    nets = {n: MultiLayerNetExtend(x.shape[1], [width] * depth, 10, activation=n, weight_init_std="auto")
            for n in names}
    opts = {n: optim.Nesterov(lr=lr) for n in names}
    iters = epochs * max(1, len(x) // batch_size)
    losses = {n: [] for n in names}
    with tqdm(total=iters, desc=where, unit="step", dynamic_ncols=True, leave=False) as bar:
        for _ in range(iters):
            idx = np.random.choice(len(x), batch_size)
            xb, tb = x[idx], t[idx]
            for n, net in nets.items():
                opts[n].update(net.trainable_params, net.gradient(xb, tb))
                losses[n].append(float(net.last_layer.loss))  # (the loss of this step's forward)
            bar.update(1)
    test_acc = {n: net.accuracy(xt, tt) for n, net in nets.items()}
    shown = sorted({1, *(d for d in (5, 10, 15, 20) if d <= hist_depth), hist_depth})
    hist = _histograms(n_samples, 100, hist_depth, shown, np.random.default_rng(seed))

    fig = _common.figure(figsize=(14, 5.2))
    ax1, ax2 = fig.subplots(1, 2, width_ratios=(2.2, 1))
    colors = [plt_color(i) for i in range(len(names))]
    styles = ("-", "--", "-.", ":")
    for i, n in enumerate(names):
        values = losses[n]
        ax1.plot(np.arange(1, len(values) + 1), _common.smooth_curve(values), color=colors[i], ls=styles[i % 4],
                 lw=1.6, label=f"{n} ({activations.get(n).init})")
    ax1.set(xlabel="iteration", ylabel="training loss (smoothed)", yscale="log",
            title=f"{x.shape[1]}-[{width} x {depth}]-10, no batch norm, Nesterov lr={lr}, init 'auto'")
    ax1.grid(alpha=0.3, which="both")
    ax1.legend(ncols=2, fontsize=8, title="activation (init)")
    order = sorted(names, key=test_acc.get)
    ax2.barh(range(len(order)), [test_acc[n] for n in order], color=[colors[names.index(n)] for n in order])
    for i, n in enumerate(order):
        ax2.text(test_acc[n] + 0.01, i, f"{test_acc[n]:.3f}", va="center", fontsize=8)
    ax2.set_yticks(range(len(order)), order)
    ax2.set(xlim=(0, 1.12), xlabel=f"test accuracy after {epochs} epochs", title="test accuracy")
    ax2.grid(alpha=0.3, axis="x")
    fig.suptitle(f"Every activation in a {depth}-hidden-layer net on {dataset}, each with its recommended init")
    path = _common.save(fig, out, where)

    hfig = _hist_figure(hist, shown, hist_depth, n_samples)
    hpath = _common.save(hfig, out, f"{where}-hist")
    best = max(test_acc, key=test_acc.get)
    last = {label: (s["mean"][-1], s["std"][-1]) for label, s in hist["stacks"].items()}
    print(f"{where}: best test accuracy {best} {test_acc[best]:.3f}, worst {order[0]} {test_acc[order[0]]:.3f}; "
          f"layer {hist_depth} mean/std: " + ", ".join(f"{k} {m:.2f}/{s:.2f}" for k, (m, s) in last.items())
          + f" -> {path}, {hpath}")
    data = {"loss": losses, "test_acc": test_acc, "hist": hist, "hist_fig": hfig, "png": [str(path), str(hpath)]}
    return data, fig


def plt_color(i: int):
    """The i-th color of matplotlib's ``tab20`` (even entries first: the darker shades)."""
    from matplotlib import colormaps

    cmap = colormaps["tab20"]
    return cmap((2 * i) % 20 + (2 * i) // 20)


def _hist_figure(hist: dict, shown: list[int], depth: int, n_samples: int):
    stacks = hist["stacks"]
    edges = hist["edges"]
    fig = _common.figure(figsize=(2.4 * len(shown) + 3.6, 2.0 * len(stacks) + 1.2))
    grid = fig.add_gridspec(len(stacks), len(shown) + 2)
    colors = ("tab:green", "tab:orange", "tab:blue")
    for r, (label, s) in enumerate(stacks.items()):
        for c, d in enumerate(shown):
            ax = fig.add_subplot(grid[r, c])
            ax.bar(edges[:-1], s["hist"][d], width=edges[1] - edges[0], align="edge", color=colors[r])
            ax.text(0.97, 0.93, f"mean {s['mean'][d - 1]:.2f}\nstd {s['std'][d - 1]:.2f}", transform=ax.transAxes,
                    ha="right", va="top", fontsize=7)
            ax.set_yticks([])
            ax.tick_params(labelsize=7)
            if r == 0:
                ax.set_title(f"layer {d}", fontsize=9)
            if c == 0:
                ax.set_ylabel(label, fontsize=9)
            if r == len(stacks) - 1:
                ax.set_xlabel("activation", fontsize=8)
    ax = fig.add_subplot(grid[:, len(shown):])
    layers = np.arange(1, depth + 1)
    for r, (label, s) in enumerate(stacks.items()):
        ax.plot(layers, s["std"], color=colors[r], marker="o", ms=3, label=f"{label}: std")
        ax.plot(layers, s["mean"], color=colors[r], ls="--", label=f"{label}: mean")
    ax.axhline(1, color="gray", lw=0.8)
    ax.axhline(0, color="gray", lw=0.8)
    ax.set(xlabel="layer", ylabel="activation mean / std", title="mean and std per layer", xlim=(1, depth))
    ax.xaxis.get_major_locator().set_params(integer=True)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7, loc="center right")
    fig.suptitle(f"Self-normalization: {n_samples} standard-normal inputs through {depth} layers x 100 units "
                 "(clipped to [-3, 4] for the histograms)")
    return fig
