"""What a search shows: the table of the best trials, the book's figure 6-24 and the lr/decay scatter.

The figures take trial records as :func:`fastdl.search.summarize` returns them (best first): the
``draw_*`` functions draw into a given (sub)figure, so ``fastdl experiment hparam-search`` puts both
in one image and ``fastdl search`` writes two PNGs.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

__all__ = ["draw_curves", "draw_scatter", "format_table", "plot_curves", "plot_scatter"]


def _fmt(value) -> str:
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, float):
        return f"{value:.2e}" if value and (abs(value) < 1e-2 or abs(value) >= 1e4) else f"{value:.3g}"
    if isinstance(value, list | tuple):
        if len(set(value)) == 1 and len(value) > 1:
            return f"{value[0]}x{len(value)}"
        return "-".join(map(str, value))
    return str(value)


def format_table(trials: list[dict], params: list[str], n: int = 10) -> str:
    """A plain-text table of the ``n`` best trials: rank, trial, validation accuracy, epochs, settings.

    Parameters
    ----------
    trials : list of dict
        Best first (:func:`fastdl.search.summarize`).
    params : list of str
        Setting columns (usually the searched ones).
    n : int
        Rows.

    Returns
    -------
    str
    """
    head = ["rank", "trial", "val_acc", "best_val", "epochs", *params, "status", "time_s"]
    rows = []
    for i, r in enumerate(trials[:n], 1):
        va = r.get("val_acc") or []
        rows.append([str(i), str(r["trial"]), _fmt(r.get("final_val_acc")) if va else "-",
                     f"{max(va):.3f}" if va else "-", str(len(va)),
                     *[_fmt(r["config"].get(p)) for p in params], r.get("status", "?"),
                     f"{r['wall_time_s']:.2f}" if r.get("wall_time_s") is not None else "-"])
    widths = [max(len(h), *(len(row[j]) for row in rows)) if rows else len(h) for j, h in enumerate(head)]
    lines = ["  ".join(h.rjust(w) for h, w in zip(head, widths))]
    lines += ["  ".join(c.rjust(w) for c, w in zip(row, widths)) for row in rows]
    return "\n".join(lines)


def _title(r: dict, rank: int, params: list[str]) -> str:
    shown = [p for p in params if p in r["config"]][:2]
    acc = r.get("final_val_acc")
    head = f"Best-{rank}: val {acc:.2f}" if acc is not None else f"Best-{rank}: failed"
    if r.get("max_epochs") and len(r.get("val_acc") or []) < r["max_epochs"]:
        head += f" (stopped at {len(r['val_acc'])})"
    return head + "\n" + ", ".join(f"{_short(p)} {_fmt(r['config'][p])}" for p in shown)


def _short(name: str) -> str:
    return {"weight_decay": "wd", "optimizer": "opt", "activation": "act", "batch_size": "batch"}.get(name, name)


def draw_curves(fig, trials: list[dict], params: list[str], best: int = 20, cols: int = 5) -> np.ndarray:
    """Validation (solid) and training (dashed) accuracy per epoch of the ``best`` first trials, in a grid.

    Parameters
    ----------
    fig : matplotlib Figure or SubFigure
    trials : list of dict
        Best first.
    params : list of str
        Settings named in each title (the first two).
    best : int
        Panels.
    cols : int
        Panels per row.

    Returns
    -------
    numpy.ndarray of Axes
    """
    shown = [r for r in trials if r.get("val_acc")][:best]
    cols = max(1, min(cols, len(shown)))
    rows = max(1, int(np.ceil(len(shown) / cols)))
    axes = np.atleast_1d(fig.subplots(rows, cols, sharex=True, sharey=True)).ravel()
    for i, ax in enumerate(axes):
        if i >= len(shown):
            ax.axis("off")
            continue
        r = shown[i]
        x = np.arange(1, len(r["val_acc"]) + 1)
        marker = "o" if len(x) < 4 else None  # a run stopped after an epoch or two is a point, not a line
        ax.plot(x, r["val_acc"], marker=marker, ms=3, label="validation")
        ax.plot(x, r["train_acc"], "--", marker=marker, ms=3, label="train")
        ax.set_ylim(0, 1)
        ax.set_title(_title(r, i + 1, params), fontsize=8)
        ax.tick_params(labelsize=7)
        if i % cols == 0:
            ax.set_ylabel("accuracy", fontsize=8)
        if i // cols == rows - 1:
            ax.set_xlabel("epochs", fontsize=8)
    if shown:
        fig.legend(*axes[0].get_legend_handles_labels(), loc="outside lower center", ncols=2)
    return axes


def _axis_values(trials: list[dict], name: str) -> np.ndarray:
    return np.array([float(r["config"][name]) for r in trials])


def draw_scatter(fig, trials: list[dict], x: str = "lr", y: str = "weight_decay", best: int = 20):
    """Every trial's final validation accuracy (colour) over two numeric settings, log axes when positive.

    Trials stopped early by successive halving are drawn as crosses, failed ones in grey; the
    ``best`` first are circled in red.

    Parameters
    ----------
    fig : matplotlib Figure or SubFigure
    trials : list of dict
        Best first.
    x, y : str
        Setting names.
    best : int
        Trials circled.

    Returns
    -------
    matplotlib Axes
    """
    ax = fig.subplots()
    ok = [r for r in trials if r.get("final_val_acc") is not None]
    failed = [r for r in trials if r.get("final_val_acc") is None]
    full = max((len(r["val_acc"]) for r in ok), default=0)
    complete = [r for r in ok if len(r["val_acc"]) == full]
    stopped = [r for r in ok if len(r["val_acc"]) < full]
    sc = None
    for group, marker, label in ((complete, "o", f"{full} epochs"), (stopped, "x", "stopped early")):
        if group:
            sc = ax.scatter(_axis_values(group, x), _axis_values(group, y), c=[r["final_val_acc"] for r in group],
                            cmap="viridis", vmin=0, vmax=1, s=30, marker=marker, label=label)
    if failed:
        ax.scatter(_axis_values(failed, x), _axis_values(failed, y), c="0.6", s=20, marker="s", label="failed")
    top = ok[:best]
    if top:
        ax.scatter(_axis_values(top, x), _axis_values(top, y), facecolors="none", edgecolors="red", s=80,
                   label=f"best {len(top)}")
    allx, ally = _axis_values(trials, x), _axis_values(trials, y)
    ax.set(xscale="log" if allx.size and np.all(allx > 0) else "linear",
           yscale="log" if ally.size and np.all(ally > 0) else "linear",
           xlabel=_label(x), ylabel=_label(y), title="final validation accuracy")
    legend = ax.legend(loc="upper center", bbox_to_anchor=(0.5, -0.12), ncols=2, fontsize=8)
    for handle, label in zip(legend.legend_handles, [t.get_text() for t in legend.get_texts()]):
        if not label.startswith("best"):  # the colour in the plot is the accuracy, not the group
            handle.set_facecolor("0.35")
            handle.set_edgecolor("0.35")
    if sc is not None:
        fig.colorbar(sc, ax=ax, label="validation accuracy")
    return ax


def _label(name: str) -> str:
    return {"lr": "learning rate", "weight_decay": "weight decay λ", "dropout": "dropout ratio"}.get(name, name)


def _figure(**kwargs):
    from matplotlib.figure import Figure

    return Figure(layout="constrained", **kwargs)


def plot_curves(trials: list[dict], params: list[str], path=None, best: int = 20, title: str = ""):
    """Figure 6-24 as its own figure (see :func:`draw_curves`); saved as PNG when ``path`` is given."""
    n = min(best, sum(1 for r in trials if r.get("val_acc")))
    rows = max(1, int(np.ceil(n / 5)))
    fig = _figure(figsize=(13, max(3.5, 2.1 * rows + 1)))
    draw_curves(fig, trials, params, best)
    fig.suptitle(title or f"Best {n} of {len(trials)} trials")
    if path is not None:
        Path(path).parent.mkdir(parents=True, exist_ok=True)
        fig.savefig(path, dpi=100)
    return fig


def plot_scatter(trials: list[dict], x: str = "lr", y: str = "weight_decay", path=None, best: int = 20,
                 title: str = ""):
    """The settings scatter as its own figure (see :func:`draw_scatter`); saved as PNG when ``path`` is given."""
    fig = _figure(figsize=(7, 5.5))
    draw_scatter(fig, trials, x, y, best)
    if title:
        fig.suptitle(title)
    if path is not None:
        Path(path).parent.mkdir(parents=True, exist_ok=True)
        fig.savefig(path, dpi=100)
    return fig
