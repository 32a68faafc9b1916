"""The chapter-6 studies of *Deep Learning from Scratch* (and Hands-On ML ch. 10's) as runnable experiments.

Each study is a module with ``run(dataset='digits', out=None, seed=0, **options) -> (data, figure)``:
it trains on fastdl, writes ``<out>/<name>.png`` (title, axes, legend), prints a short summary and
returns its numbers as a dict with the matplotlib figure.

=======================  =========================================================================
name                     what it shows (book section)
=======================  =========================================================================
optimizer-paths          every optimizer (the book's six, AdaMax, Nadam, AdamW) on ``x²/20 + y²`` from (-7, 2) (6.1)
optimizer-compare        training loss of every optimizer, 4x100 ReLU net (6.1.8)
weight-init-hist         activation histograms, 5 layers x 100 units, four inits, sigmoid/ReLU (6.2)
weight-init-compare      training loss with std 0.01, Xavier and He (6.2.4)
batchnorm                training accuracy with/without batch norm over 16 weight scales (6.3)
overfit                  train/test accuracy on 300 samples: baseline, weight decay, dropout (6.4)
hparam-search            random search of lr and weight decay on a validation split (6.5)
lr-finder                learning-rate range test per optimizer, suggestion checked (Géron ch. 10)
batch-size               accuracy after a fixed epoch budget and samples/s per batch size (Géron ch. 10)
depth-width              validation accuracy against parameter count, 1-6 layers x 16-512 (Géron ch. 10)
transfer                 lower layers trained on digits 0-4 reused (frozen, fine-tuned) for 5-9 (Géron ch. 11)
activations              a 10-layer net with every activation + self-normalization histograms (Géron ch. 11)
mc-dropout               one pass vs the MC dropout mean, and the predicted spread per digit (Géron ch. 11)
lr-schedules             every learning-rate schedule's curve and the training loss under each (Géron ch. 11)
=======================  =========================================================================

From the command line: ``fastdl experiment NAME [--dataset digits|mnist] [--out DIR] [--seed S]``,
or ``fastdl experiment all``.
"""

from __future__ import annotations

import argparse
import importlib
import time
from pathlib import Path

__all__ = ["DEFAULT_OUT", "EXPERIMENTS", "get", "register_cli", "run"]

#: name -> module (imported on first use)
EXPERIMENTS = {
    "optimizer-paths": "fastdl.experiments.optimizer_paths",
    "optimizer-compare": "fastdl.experiments.optimizer_compare",
    "weight-init-hist": "fastdl.experiments.weight_init_hist",
    "weight-init-compare": "fastdl.experiments.weight_init_compare",
    "batchnorm": "fastdl.experiments.batchnorm",
    "overfit": "fastdl.experiments.overfit",
    "hparam-search": "fastdl.experiments.hparam_search",
    "lr-finder": "fastdl.experiments.lr_finder",
    "batch-size": "fastdl.experiments.batch_size",
    "depth-width": "fastdl.experiments.depth_width",
    "transfer": "fastdl.experiments.transfer",
    "activations": "fastdl.experiments.activations",
    "mc-dropout": "fastdl.experiments.mc_dropout",
    "lr-schedules": "fastdl.experiments.lr_schedules",
}

#: Where figures go when no ``out`` is given.
DEFAULT_OUT = Path("fastdl-out") / "experiments"


def get(name: str):
    """The ``run`` function of experiment ``name``.

    Parameters
    ----------
    name : str
        A key of :data:`EXPERIMENTS` (underscores work too).

    Returns
    -------
    callable
    """
    key = name.lower().replace("_", "-")
    if key not in EXPERIMENTS:
        raise ValueError(f"experiment: name must be one of {tuple(EXPERIMENTS)} or 'all'; got {name!r}")
    return importlib.import_module(EXPERIMENTS[key]).run


def run(name: str, **kwargs):
    """Run experiment ``name`` (see :data:`EXPERIMENTS`) and return ``(data, figure)``.

    Parameters
    ----------
    name : str
        Experiment name.
    **kwargs
        Passed to the experiment's ``run`` (``dataset``, ``out``, ``seed`` and its own options).

    Returns
    -------
    tuple
        ``(data dict, matplotlib Figure)``.
    """
    return get(name)(**kwargs)


def _command(args: argparse.Namespace) -> int:
    names = list(EXPERIMENTS) if args.name == "all" else [args.name]
    for name in names:
        get(name)  # fail before running anything on a bad name
    from .. import _cliargs, datasets, runtime

    problem = runtime.writable_dir_problem(args.out)  # before the work: a bad --out must not cost the run
    if problem:
        raise _cliargs.UsageError(f"--out must be a writable directory; got {args.out!r} ({problem})")
    timings = {}
    for name in names:
        print(f"== {name}")
        t0 = time.perf_counter()
        try:
            get(name)(dataset=args.dataset, out=args.out, seed=args.seed)
        except datasets.DatasetUnavailableError as exc:  # raised by the loader, before the study runs
            first = str(exc).splitlines()[0].rstrip(".")
            raise _cliargs.UsageError(f"--dataset {args.dataset}: {first}; or use --dataset digits, which needs no "
                                      "download") from exc
        timings[name] = time.perf_counter() - t0
        print(f"   ({timings[name]:.1f} s)")
    if len(names) > 1:
        print("wall time: " + ", ".join(f"{k} {v:.1f} s" for k, v in timings.items()))
    return 0


def register_cli(subparsers) -> None:
    """Add the ``experiment`` subcommand to the ``fastdl`` command line.

    Parameters
    ----------
    subparsers : argparse._SubParsersAction
        From ``parser.add_subparsers()``.
    """
    p = subparsers.add_parser(
        "experiment", help="run a study (the book's chapter 6, Hands-On ML ch. 10-11) and write its figure",
        description="Run one of the studies (or all) on fastdl: the book's chapter 6 and Hands-On ML chapters 10-11; "
                    "each writes <out>/<name>.png and prints a short summary.")
    p.add_argument("name", choices=(*EXPERIMENTS, "all"), metavar="NAME",
                   help="one of: " + ", ".join(EXPERIMENTS) + ", all")
    p.add_argument("--dataset", choices=("digits", "mnist"), default="digits", help="default: digits (offline)")
    p.add_argument("--out", default=str(DEFAULT_OUT), help=f"directory for the PNGs (default {DEFAULT_OUT})")
    from .. import _cliargs

    p.add_argument("--seed", type=_cliargs.nonnegative_int, default=0,
                   help="seed of weights, batches and draws (default 0)")
    p.set_defaults(func=_command)
