"""``mc-dropout``: one deterministic pass against the mean of MC dropout passes, and the spread they predict.

Two networks train on the data set (Adam): ReLU with the book's dropout, and SELU (LeCun init) with
alpha dropout. For each, the test accuracy and log loss of one deterministic pass (``predict``, dropout
off) are set against those of the MC mean (:meth:`~fastdl.nets.MultiLayerNetExtend.predict_mc`:
``n_samples`` passes with dropout on, batch statistics untouched). The figure shows both, the spread
(std of the predicted class's probability) of correct against misclassified test samples, and for a
few test digits the mean probability per class with its std over the passes: three the network is
sure of, three it is not (highest entropy of the MC mean).
"""

from __future__ import annotations

import numpy as np

from ..functional import softmax
from ..nets import MultiLayerNetExtend
from ..optim import Adam
from . import _common

CONFIGS = {
    "ReLU + dropout": {"activation": "relu", "weight_init_std": "he", "use_dropout": True},
    "SELU + alpha dropout": {"activation": "selu", "weight_init_std": "auto", "use_alpha_dropout": True},
}


def _log_loss(p: np.ndarray, t: np.ndarray) -> float:
    """Mean negative log-probability of the true class (the book's 1e-7 inside the log)."""
    return float(-np.mean(np.log(p[np.arange(t.size), t] + 1e-7)))


def run(dataset: str = "digits", out=None, seed: int = 0, epochs: int = 30, n_samples: int = 100,
        hidden: int = 128, dropout_ratio: float = 0.3, alpha_rate: float = 0.1, lr: float = 1e-3,
        batch_size: int = 100, verbose: bool = True):
    """Train the two networks, compare one pass with the MC mean and draw the predicted spread.

    Parameters
    ----------
    dataset : {'digits', 'mnist'}
        Data.
    out : path-like, optional
        Output directory for ``mc-dropout.png``.
    seed : int
        ``np.random.seed`` before each network (weights, batches) and the MC passes' seed.
    epochs : int
        Training epochs.
    n_samples : int
        MC dropout passes.
    hidden : int
        Units of each of the two hidden layers.
    dropout_ratio, alpha_rate : float
        Dropout ratio of the ReLU network, alpha dropout rate of the SELU network.
    lr, batch_size
        Adam's learning rate, samples per step.
    verbose : bool
        tqdm progress bar.

    Returns
    -------
    data : dict
        Per network: ``acc_one_pass``, ``acc_mc``, ``loss_one_pass``, ``loss_mc``; ``examples`` (the
        test indices drawn, confident then uncertain); ``png``.
    fig : matplotlib.figure.Figure
    """
    where = "mc-dropout"
    epochs = _common.check_count(epochs, "epochs", where)
    n_samples = _common.check_count(n_samples, "n_samples", where)
    hidden = _common.check_count(hidden, "hidden", where)
    batch_size = _common.check_count(batch_size, "batch_size", where)
    (x_train, t_train), (x_test, t_test) = _common.load(dataset, where)
    n = x_train.shape[0]
    steps = epochs * max(n // batch_size, 1)
    from tqdm.auto import tqdm

    bar = tqdm(total=len(CONFIGS) * (steps + 1), desc=where, unit="step", disable=not verbose, leave=False)
    results, spreads = {}, {}
    for name, kw in CONFIGS.items():
        np.random.seed(seed)
        ratio = alpha_rate if kw.get("use_alpha_dropout") else dropout_ratio
        net = MultiLayerNetExtend(x_train.shape[1], [hidden, hidden], 10, dropout_ratio=ratio, **kw)
        opt = Adam(lr=lr)
        bar.set_postfix_str(name)
        for _ in range(steps):
            idx = np.random.choice(n, batch_size)
            opt.update(net.params, net.gradient(x_train[idx], t_train[idx]))
            bar.update()
        one = softmax(net.predict(x_test))
        mean, std = net.predict_mc(x_test, n_samples=n_samples, rng=seed)
        bar.update()
        pred = mean.argmax(axis=1)
        results[name] = {"acc_one_pass": float(np.mean(one.argmax(axis=1) == t_test)),
                         "acc_mc": float(np.mean(pred == t_test)),
                         "loss_one_pass": _log_loss(one, t_test), "loss_mc": _log_loss(mean, t_test)}
        spreads[name] = (mean, std, pred)
    bar.close()

    # the first network's test digits: sure (highest mean probability, smallest std) and unsure (highest entropy)
    mean, std, pred = spreads[next(iter(CONFIGS))]
    rows = np.arange(t_test.size)
    top_std = std[rows, pred]
    entropy = -np.sum(mean * np.log(mean + 1e-12), axis=1)
    sure, seen = [], set()  # the surest correct digits, one per class
    for i in np.lexsort((top_std, -mean[rows, pred])):
        if pred[i] == t_test[i] and int(t_test[i]) not in seen and len(sure) < 3:
            sure.append(int(i))
            seen.add(int(t_test[i]))
    unsure = [int(i) for i in np.argsort(-entropy)[:3]]

    fig = _common.figure(figsize=(15, 8))
    outer = fig.add_gridspec(2, 4, width_ratios=[1.25, 1, 1, 1])
    ax = fig.add_subplot(outer[0, 0])
    names = list(results)
    xs = np.arange(len(names))
    for off, key, label in ((-0.2, "acc_one_pass", "one pass (dropout off)"),
                            (0.2, "acc_mc", f"MC mean of {n_samples}")):
        vals = [results[k][key] for k in names]
        bars = ax.bar(xs + off, vals, width=0.38, label=label)
        ax.bar_label(bars, labels=[f"{v:.3f}" for v in vals], fontsize=8)
    lo = min(min(r["acc_one_pass"], r["acc_mc"]) for r in results.values())
    ax.set(xticks=xs, xticklabels=names, ylim=(max(0.0, lo - 0.05), 1.0), ylabel="test accuracy",
           title="test accuracy: one pass vs MC mean")
    ax.legend(loc="lower right", fontsize=8)
    ax = fig.add_subplot(outer[1, 0])
    right = pred == t_test
    bins = np.linspace(0, max(float(top_std.max()), 1e-3), 25)
    ax.hist(top_std[right], bins=bins, density=True, alpha=0.6, label=f"correct ({right.sum()})")
    ax.hist(top_std[~right], bins=bins, density=True, alpha=0.6, label=f"misclassified ({(~right).sum()})")
    ax.set(xlabel=f"std over the {n_samples} passes of the predicted class's probability", ylabel="density",
           title=f"{names[0]}: spread on the test set")
    ax.legend(fontsize=8)
    side = int(round(np.sqrt(x_test.shape[1])))
    for r, (label, picks) in enumerate((("sure", sure), ("unsure", unsure))):
        for c, i in enumerate(picks):
            cell = outer[r, c + 1].subgridspec(1, 2, width_ratios=[1, 3.2], wspace=0.05)
            img = fig.add_subplot(cell[0, 0])
            img.imshow(x_test[i].reshape(side, side), cmap="gray_r")
            img.set(xticks=[], yticks=[], xlabel=f"test #{i}")
            bx = fig.add_subplot(cell[0, 1])
            colors = ["tab:green" if k == t_test[i] else "tab:blue" for k in range(10)]
            bx.bar(np.arange(10), mean[i], yerr=std[i], color=colors, capsize=2, error_kw={"lw": 1})
            bx.set(xticks=np.arange(10), ylim=(0, 1.05), xlabel="class",
                   title=f"{label}: true {t_test[i]}, MC mean says {pred[i]}\n"
                         f"p = {mean[i, pred[i]]:.2f} ± {std[i, pred[i]]:.2f}")
            bx.title.set_fontsize(9)
            if c == 0:
                bx.set_ylabel("mean probability ± std")
    fig.suptitle(f"MC dropout on {dataset}: {n_samples} passes with dropout on, batch statistics untouched "
                 f"(2x{hidden} nets, Adam lr={lr}, {epochs} epochs; green bar: the true class)")
    path = _common.save(fig, out, where)
    print(f"{where}: test accuracy one pass -> MC mean: " + ", ".join(
        f"{k} {r['acc_one_pass']:.4f} -> {r['acc_mc']:.4f} (log loss {r['loss_one_pass']:.3f} -> {r['loss_mc']:.3f})"
        for k, r in results.items()) + f" -> {path}")
    return {**results, "examples": sure + unsure, "n_samples": n_samples, "png": str(path)}, fig
