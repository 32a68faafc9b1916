"""``batch-size``: what a larger mini-batch buys (throughput) and costs (accuracy per epoch), Géron ch. 10.

Left: the same 2x100 ReLU network trained with SGD for a fixed budget of epochs at batch sizes 16 to
2048, test accuracy at the end (mean over seeds, bars from the lowest to the highest). Two learning
rate policies: fixed (``lr = 0.1`` at every size) and the linear scaling rule of Goyal et al. with a
cap (``lr = min(0.1 * B / 64, 1.0)``). An epoch is ``max(N / B, 1)`` steps drawn with replacement (the
book's ``Trainer``), so large batches take few steps: with a fixed rate they fall behind; scaled
up they keep pace until the rate is too large to be stable.

Right: training throughput, samples per second of steady-state steps (``gradient`` plus
``update``; warm-up and compilation excluded; the median step of the fastest of three rounds
taken in turn) of fastdl in float32 and float64 beside the book-style NumPy reference, per batch
size. What the curves showed on the development machine is in ``docs/studies-ch10.md``.
"""

from __future__ import annotations

import time

import numpy as np

from ..nets import MultiLayerNetExtend
from ..trainer import Trainer, make_optimizer
from . import _common

BATCH_SIZES = (16, 32, 64, 128, 256, 512, 1024, 2048)
#: (label, backend, dtype) of the throughput lines
IMPLS = (("fastdl float32", None, np.float32), ("fastdl float64", None, np.float64),
         ("NumPy reference float64", "reference", np.float64))


def _policies(base_lr: float, base_batch: int, cap: float) -> dict:
    return {f"fixed lr = {base_lr:g}": lambda b: base_lr,
            f"linear scaling lr = min({base_lr:g}·B/{base_batch}, {cap:g})": lambda b: min(base_lr * b / base_batch,
                                                                                            cap)}


def _stepper(x, t, hidden, batch: int, backend, dtype, seed: int):
    """A warmed-up training step at ``batch`` (kernels compiled or loaded, step buffers allocated)."""
    rng = np.random.default_rng(seed)
    np.random.seed(seed)
    net = MultiLayerNetExtend(x.shape[1], list(hidden), 10, dtype=dtype, backend=backend)
    opt = make_optimizer("sgd", {"lr": 0.01}, backend, "batch-size")
    batches = [(x[idx].astype(dtype), t[idx]) for idx in (rng.integers(0, x.shape[0], batch) for _ in range(4))]
    state = {"i": 0}

    def step():
        xb, tb = batches[state["i"] % 4]
        state["i"] += 1
        opt.update(net.params, net.gradient(xb, tb))

    for _ in range(3):
        step()
    return step


def _median_step(step, seconds: float) -> float:
    """Median wall time of one step over about ``seconds`` (at least 5 steps)."""
    times = []
    clock = time.perf_counter
    start = clock()
    while len(times) < 5 or (clock() - start < seconds and len(times) < 2000):
        t0 = clock()
        step()
        times.append(clock() - t0)
    return float(np.median(times))


def _throughput(x, t, hidden, sizes, seconds: float, seed: int, rounds: int = 3) -> dict:
    """Implementation -> samples/s per batch size: per size, the implementations take turns for ``rounds``
    rounds of ``seconds / rounds`` each; the fastest round's median step counts (the least disturbed by
    other processes on a shared machine)."""
    speed = {label: [] for label, _, _ in IMPLS}
    for batch in sizes:
        steppers = {label: _stepper(x, t, hidden, batch, backend, dtype, seed) for label, backend, dtype in IMPLS}
        best = dict.fromkeys(steppers, np.inf)
        for _ in range(rounds):
            for label, step in steppers.items():
                best[label] = min(best[label], _median_step(step, seconds / rounds))
        for label in steppers:
            speed[label].append(batch / best[label])
    return {label: np.array(v) for label, v in speed.items()}


def run(dataset: str = "digits", out=None, seed: int = 0, batch_sizes=BATCH_SIZES, epochs: int = 20,
        seeds: int = 2, base_lr: float = 0.1, base_batch: int = 64, lr_cap: float = 1.0, hidden=(100, 100),
        timing_seconds: float = 0.3):
    """Train at each batch size under both lr policies and time the steps; plot accuracy beside samples/s.

    Parameters
    ----------
    dataset : {'digits', 'mnist'}
        Data (test accuracy on its test set; nothing is selected with it).
    out : path-like, optional
        Output directory for ``batch-size.png``.
    seed : int
        First seed; runs use ``seed, seed + 1, ...`` for weights and batches.
    batch_sizes : sequence of int
        Mini-batch sizes.
    epochs : int
        Epoch budget of every run.
    seeds : int
        Runs per (policy, batch size).
    base_lr, base_batch, lr_cap : float, int, float
        The policies: fixed ``base_lr``; scaled ``min(base_lr * B / base_batch, lr_cap)``.
    hidden : sequence of int
        Hidden layer sizes.
    timing_seconds : float
        Time spent measuring each (implementation, batch size) after warm-up, in three rounds taken
        in turn with the other implementations; the fastest round's median step time counts.

    Returns
    -------
    data : dict
        ``batch_sizes``; ``accuracy`` (policy -> array (seeds, sizes)); ``lr`` (policy -> rate per size);
        ``samples_per_s`` (implementation -> samples/s per size).
    fig : matplotlib.figure.Figure
    """
    where = "batch-size"
    epochs = _common.check_count(epochs, "epochs", where)
    seeds = _common.check_count(seeds, "seeds", where)
    sizes = [_common.check_count(b, "batch_sizes entries", where) for b in batch_sizes]
    if not sizes:
        raise ValueError(f"{where}: batch_sizes must list at least one size; got {batch_sizes!r}")
    (x_train, t_train), (x_test, t_test) = _common.load(dataset, where)
    policies = _policies(base_lr, base_batch, lr_cap)
    accuracy = {name: np.zeros((seeds, len(sizes))) for name in policies}
    lrs = {name: [float(rule(b)) for b in sizes] for name, rule in policies.items()}
    for name in policies:
        for j, batch in enumerate(sizes):
            for s in range(seeds):
                np.random.seed(seed + s)
                net = MultiLayerNetExtend(x_train.shape[1], list(hidden), 10)
                trainer = Trainer(net, x_train, t_train, x_test, t_test, epochs=epochs, mini_batch_size=batch,
                                  optimizer="sgd", optimizer_param={"lr": lrs[name][j]}, verbose=False,
                                  evaluate_sample_num_per_epoch=1, seed=seed + s)
                trainer.train()
                accuracy[name][s, j] = trainer.history.final_test_acc
    speed = _throughput(x_train, t_train, hidden, sizes, timing_seconds, seed)

    fig = _common.figure(figsize=(13, 5))
    ax_acc, ax_speed = fig.subplots(1, 2)
    for name, acc in accuracy.items():
        mean = acc.mean(axis=0)
        err = np.vstack([mean - acc.min(axis=0), acc.max(axis=0) - mean])
        ax_acc.errorbar(sizes, mean, yerr=err, marker="o", capsize=3, label=name)
    ax_acc.set_xscale("log", base=2)
    ax_acc.set_xticks(sizes, [str(b) for b in sizes])
    ax_acc.set(xlabel="batch size B (log scale)", ylabel=f"test accuracy after {epochs} epochs", ylim=(0, 1.02),
               title=f"accuracy after a fixed budget of {epochs} epochs, SGD\n"
                     f"(mean of {seeds} seed{'s' if seeds > 1 else ''}, bars: min-max)")
    ax_acc.legend(loc="lower left", fontsize=9)
    ax_acc.grid(True, alpha=0.3)
    styles = {"fastdl float32": "o-", "fastdl float64": "s-", "NumPy reference float64": "^--"}
    for label, values in speed.items():
        ax_speed.plot(sizes, values, styles.get(label, "o-"), label=label)
    ax_speed.set_xscale("log", base=2)
    ax_speed.set_yscale("log")
    ax_speed.set_xticks(sizes, [str(b) for b in sizes])
    ax_speed.set(xlabel="batch size B (log scale)", ylabel="training samples / s (log scale)",
                 title="throughput of steady-state steps (gradient + update)\n"
                       "median step of the best of 3 rounds, warm-up excluded")
    ax_speed.legend(loc="upper center", bbox_to_anchor=(0.5, -0.13), ncols=3, fontsize=9)
    ax_speed.grid(True, which="both", alpha=0.3)
    arch = "-".join(map(str, [x_train.shape[1], *hidden, 10]))
    fig.suptitle(f"Batch size on {dataset} ({x_train.shape[0]} training samples): {arch} ReLU net")
    path = _common.save(fig, out, where)
    best = {name: sizes[int(np.argmax(acc.mean(axis=0)))] for name, acc in accuracy.items()}
    ratio = speed["fastdl float32"] / speed["NumPy reference float64"]
    print(f"{where}: best batch size " + ", ".join(f"{k}: {v}" for k, v in best.items())
          + f"; fastdl float32 / reference samples/s {ratio.min():.1f}-{ratio.max():.1f}x -> {path}")
    data = {"batch_sizes": sizes, "accuracy": accuracy, "lr": lrs, "samples_per_s": speed, "png": str(path)}
    return data, fig
