"""Measure fastdl.search: the book's search sequential vs on the embedded Dask cluster, ASHA, Dask overhead.

Run ``python bench/search_scaling.py`` (the book's 100 trials x 50 epochs on digits; ``--trials``/
``--epochs`` for a shorter run). Prints a Markdown table: wall time of each mode (total, with cluster
start and kernel warm-up, and the search loop alone), trials/s, best validation accuracy, whether
every trial's numbers are bit-identical to the sequential run, CPU/wall per trial (about 1.0 when a
trial runs on one thread: no oversubscription), and Dask's per-job overhead.
Not collected by pytest (no ``test_`` prefix): it takes minutes.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import time


def _noop(i):
    return i


def _worker_threads():
    import psutil
    from threadpoolctl import threadpool_info

    from fastdl import runtime
    from fastdl.search.trial import single_threaded

    single_threaded()
    return {"blas": [(i["internal_api"], i["num_threads"]) for i in threadpool_info()],
            "numba": runtime.get_num_threads(), "os_threads": psutil.Process().num_threads()}


def _curves(result):
    return {(r["trial"], r["rung"]): (r["val_acc"], r["val_loss"], r["train_acc"]) for r in result.records}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--trials", type=int, default=100)
    ap.add_argument("--epochs", type=int, default=50)
    ap.add_argument("--skip-sequential", action="store_true")
    ap.add_argument("--json", help="also write the rows here")
    args = ap.parse_args()

    from fastdl import runtime
    from fastdl.search import book_space, connect, search

    common = {"trials": args.trials, "epochs": args.epochs, "train_size": 500, "progress": False}
    rows = []

    def run(name, **kw):
        load = os.getloadavg()[0]
        t0 = time.perf_counter()
        result = search(book_space(), **common, **kw)
        total = time.perf_counter() - t0
        per_trial = [r["wall_time_s"] for r in result.records]
        cpu = [r["cpu_time_s"] / r["wall_time_s"] for r in result.records if r["wall_time_s"]]
        overhead = (result.n_workers * result.wall_time_s - sum(per_trial)) / max(1, result.jobs_run)
        row = {"mode": name, "workers": result.n_workers, "total_s": total, "loop_s": result.wall_time_s,
               "jobs": result.jobs_run, "epochs_trained": result.epochs_trained,
               "trials_per_s": args.trials / result.wall_time_s, "best_val_acc": result.best["final_val_acc"],
               "best_trial": result.best["trial"], "median_job_s": statistics.median(per_trial),
               "cpu_per_wall": statistics.median(cpu),
               "trial_cpu_s": sum(r["cpu_time_s"] for r in result.records), "idle_per_job_ms": 1e3 * overhead,
               "load_before": load}
        rows.append(row)
        print(json.dumps(row), flush=True)
        return result

    reference = None if args.skip_sequential else run("sequential (this process)", executor="sequential")
    for n in (1, 2):
        res = run(f"embedded LocalCluster, {n} worker{'s' if n > 1 else ''}", workers=n)
        if reference is not None:
            rows[-1]["bit_identical"] = _curves(res) == _curves(reference)
    run("ASHA (min 2 epochs, eta 3), 2 workers", workers=2, algorithm="asha", min_epochs=2, eta=3)

    with connect(workers=2, quiet=True) as client:
        client.wait_for_workers(2)
        threads = client.run(_worker_threads)
        client.gather(client.map(_noop, range(50)))
        t0 = time.perf_counter()
        n = 500
        client.gather(client.map(_noop, range(1000, 1000 + n)))
        noop_ms = 1e3 * (time.perf_counter() - t0) / n
    info = runtime.info()
    print(f"\nmachine: {info['processor']}, {info['cpu_count']} cores; numpy {info['numpy']}, numba {info['numba']}")
    print(f"worker threads: {json.dumps(threads)}")
    print(f"Dask no-op task round trip (500 tasks, 2 workers): {noop_ms:.2f} ms per task\n")
    cols = ["mode", "total_s", "loop_s", "trials_per_s", "jobs", "epochs_trained", "best_val_acc", "median_job_s",
            "trial_cpu_s", "cpu_per_wall", "idle_per_job_ms", "bit_identical", "load_before"]
    print("| " + " | ".join(cols) + " |")
    print("|" + "---|" * len(cols))
    for r in rows:
        cells = []
        for c in cols:
            v = r.get(c, "")
            cells.append(f"{v:.3g}" if isinstance(v, float) else str(v))
        print("| " + " | ".join(cells) + " |")
    if args.json:
        with open(args.json, "w") as fh:
            json.dump({"rows": rows, "noop_ms": noop_ms, "threads": threads, "info": info}, fh, indent=1)


if __name__ == "__main__":
    main()
