"""``weight-init-hist``: activation histograms of 5 layers x 100 units (the book's figures 6-10 to 6-14).

1,000 random inputs pass through 5 layers of 100 units with weights of std 1, std 0.01, Xavier
(``1/sqrt(100)``) and He (``sqrt(2/100)``), once with sigmoid and once with ReLU. One row per
(activation, init), one panel per layer, 30 bins over ``[0, 1]``.

What the book shows: sigmoid with std 1 piles up at 0 and 1 (vanishing gradients); std 0.01
crowds around 0.5 (no diversity); Xavier spreads them. ReLU with std 0.01 collapses towards 0,
Xavier shrinks layer after layer, He keeps the same spread in every layer. ReLU outputs that are
exactly 0 (about half) are left out of the ReLU histograms so the rest stays visible; each
panel notes the standard deviation of all its activations.
"""

from __future__ import annotations

import math

import numpy as np

from ..nets import resolve_backend
from . import _common

#: label -> std given the layer width n
INITS = {
    "std=1": lambda n: 1.0,
    "std=0.01": lambda n: 0.01,
    "Xavier": lambda n: math.sqrt(1.0 / n),
    "He": lambda n: math.sqrt(2.0 / n),
}
ACTIVATIONS = ("sigmoid", "relu")
BINS = 30


def run(dataset: str = "digits", out=None, seed: int = 0, n_samples: int = 1000, node_num: int = 100,
        hidden_layer_size: int = 5, backend=None):
    """Push random data through deep stacks and histogram each layer's activations.

    Parameters
    ----------
    dataset : str
        Unused (the inputs are ``np.random.randn``); accepted so every experiment has the same call.
    out : path-like, optional
        Output directory for ``weight-init-hist.png``.
    seed : int
        ``np.random.seed`` before the inputs and weights are drawn.
    n_samples, node_num, hidden_layer_size : int
        Inputs, units per layer and layers (the book: 1000, 100, 5).
    backend : None, str or module
        Where the Sigmoid/Relu layers come from (``None``: :mod:`fastdl.layers`).

    Returns
    -------
    data : dict
        ``hist[(activation, init)]``: ``(layers, 30)`` counts over ``edges``; ``std`` and ``mean``:
        per-layer statistics of all activations; ``zero_fraction``, ``saturated_fraction``
        (sigmoid outputs within 0.01 of 0 or 1).
    fig : matplotlib.figure.Figure
    """
    where = "weight-init-hist"
    n_samples = _common.check_count(n_samples, "n_samples", where)
    node_num = _common.check_count(node_num, "node_num", where)
    layers_n = _common.check_count(hidden_layer_size, "hidden_layer_size", where)
    L = resolve_backend(backend, where)
    np.random.seed(seed)
    x0 = np.random.randn(n_samples, node_num)
    edges = np.linspace(0.0, 1.0, BINS + 1)
    hist, stds, means, zero_frac, sat_frac = {}, {}, {}, {}, {}
    for act in ACTIVATIONS:
        for label, rule in INITS.items():
            key = (act, label)
            counts = np.zeros((layers_n, BINS), dtype=np.int64)
            s, m, z, sat = [], [], [], []
            x = x0
            for i in range(layers_n):
                w = np.random.randn(node_num, node_num) * rule(node_num)
                a = np.dot(x, w)
                z_out = (L.Sigmoid() if act == "sigmoid" else L.Relu()).forward(a)
                values = z_out.ravel()
                shown = values[values > 0] if act == "relu" else values
                counts[i] = np.histogram(shown, bins=edges)[0]
                s.append(float(values.std()))
                m.append(float(values.mean()))
                z.append(float(np.mean(values == 0)))
                sat.append(float(np.mean((values < 0.01) | (values > 0.99))))
                x = z_out
            hist[key], stds[key], means[key], zero_frac[key], sat_frac[key] = counts, s, m, z, sat

    rows = len(ACTIVATIONS) * len(INITS)
    fig = _common.figure(figsize=(2.6 * layers_n, 1.7 * rows + 0.8))
    axes = fig.subplots(rows, layers_n, squeeze=False)
    colors = {"sigmoid": "tab:blue", "relu": "tab:orange"}
    for r, key in enumerate(hist):
        act, label = key
        for i in range(layers_n):
            ax = axes[r, i]
            ax.bar(edges[:-1], hist[key][i], width=edges[1] - edges[0], align="edge", color=colors[act],
                   label=f"{act} activations" if (r, i) in ((0, 0), (len(INITS), 0)) else None)
            ax.text(0.97, 0.93, f"std {stds[key][i]:.3g}", transform=ax.transAxes, ha="right", va="top", fontsize=7)
            ax.set_xlim(0, 1)
            ax.tick_params(labelsize=7)
            if r == 0:
                ax.set_title(f"layer {i + 1}", fontsize=9)
            if i == 0:
                ax.set_ylabel(f"{act}\n{label}\ncount", fontsize=8)
            if r == rows - 1:
                ax.set_xlabel("activation", fontsize=8)
    fig.legend(loc="outside lower center", ncols=2, fontsize=9)
    fig.suptitle(f"Activation histograms: {layers_n} layers x {node_num} units, {n_samples} random inputs "
                 "(ReLU: zeros omitted)")
    path = _common.save(fig, out, where)
    summary = ", ".join(f"{a}/{lab} {stds[(a, lab)][-1]:.2g}" for a, lab in hist)
    print(f"{where}: std of layer-{layers_n} activations: {summary} -> {path}")
    data = {"hist": hist, "edges": edges, "std": stds, "mean": means, "zero_fraction": zero_frac,
            "saturated_fraction": sat_frac, "png": str(path)}
    return data, fig
