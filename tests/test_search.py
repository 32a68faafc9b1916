"""fastdl.search: spaces and seeds, the results file, ASHA, and real Dask clusters end to end.

The cluster tests start one LocalCluster of two single-threaded worker processes (spawned) for the
module and run small searches on it: the same numbers as in this process, a worker killed mid-search,
a trial whose worker always dies, and an interrupted search resumed from its file.
"""

from __future__ import annotations

import json
import os
import signal

import numpy as np
import pytest

from fastdl import search as fs
from fastdl.search import ASHA, Choice, IntUniform, LogUniform, SearchSpace, Uniform, rungs

SMALL = {"lr": LogUniform(1e-3, 1e-1), "weight_decay": LogUniform(1e-8, 1e-4), "hidden": (20, 20)}
RUN = {"train_size": 300, "epochs": 4}


def _curves(result) -> dict:
    """(trial, rung) -> the numbers a job produced (everything that must be bit-identical)."""
    return {(r["trial"], r["rung"]): (r["config"], r["status"], r["val_acc"], r["val_loss"], r["train_acc"],
                                      r["train_loss"]) for r in result.records}


# -- space and seeds -------------------------------------------------------------------------------------
def test_distributions_sample_inside_their_bounds():
    rng = np.random.default_rng(0)
    for dist, lo, hi in ((LogUniform(1e-6, 1e-2), 1e-6, 1e-2), (Uniform(0.0, 0.5), 0.0, 0.5), (IntUniform(3, 5), 3, 5)):
        values = [dist.sample(rng) for _ in range(200)]
        assert min(values) >= lo and max(values) <= hi
    assert {IntUniform(3, 5).sample(rng) for _ in range(100)} == {3, 4, 5}
    logs = np.log10([LogUniform(1e-6, 1e-2).sample(rng) for _ in range(2000)])
    assert abs(np.mean(logs) + 4) < 0.15  # uniform in the exponent
    assert {Choice(["a", "b"]).sample(rng) for _ in range(50)} == {"a", "b"}


def test_space_validates_in_house_wording():
    with pytest.raises(ValueError, match=r"SearchSpace: optimizer must be one of .*'adam'.*; got 'adamm'"):
        SearchSpace({"optimizer": Choice(["sgd", "adamm"])})
    with pytest.raises(ValueError, match="SearchSpace: params must be names among"):
        SearchSpace({"learning_rate": 0.1})
    with pytest.raises(ValueError, match="SearchSpace: activation must be an activation"):
        SearchSpace({"activation": "tanhh"})
    with pytest.raises(ValueError, match="LogUniform: low must be a finite number > 0"):
        LogUniform(0, 1)
    with pytest.raises(ValueError, match="SearchSpace: dropout must be a finite number >= 0 and < 1.0"):
        SearchSpace({"dropout": Uniform(0, 1.5)})
    with pytest.raises(ValueError, match="SearchSpace: batchnorm must be a Choice or a fixed value"):
        SearchSpace({"batchnorm": Uniform(0, 1)})
    state = np.random.get_state()[1].copy()
    SearchSpace({"activation": Choice(["relu", "sigmoid"])})  # the probe network leaves the global stream alone
    np.testing.assert_array_equal(np.random.get_state()[1], state)


def test_every_optimizer_of_the_registry_is_accepted():
    from fastdl.optim import OPTIMIZERS

    space = SearchSpace({"optimizer": Choice(list(OPTIMIZERS))})
    assert set(space.params["optimizer"].values) == set(OPTIMIZERS)


def test_parse_distribution_text_forms():
    assert fs.space.parse_distribution("lr", "loguniform:1e-6:1e-2") == LogUniform(1e-6, 1e-2)
    assert fs.space.parse_distribution("dropout", "uniform:0:0.5") == Uniform(0, 0.5)
    assert fs.space.parse_distribution("batch_size", "int:50:200") == IntUniform(50, 200)
    assert fs.space.parse_distribution("optimizer", "sgd,adam") == Choice(("sgd", "adam"))
    assert fs.space.parse_distribution("hidden", "choice:100x3,50-20") == Choice(((100, 100, 100), (50, 20)))
    assert fs.space.parse_distribution("batchnorm", "yes") is True
    assert fs.space.parse_distribution("lr", "0.01") == 0.01
    with pytest.raises(ValueError, match="parse_distribution: lr must be loguniform:A:B"):
        fs.space.parse_distribution("lr", "loguniform:1e-3")
    space = SearchSpace({"lr": LogUniform(1e-4, 1e-2), "optimizer": Choice(["sgd", "adam"]), "hidden": (30, 30)})
    assert SearchSpace.from_dict(json.loads(json.dumps(space.to_dict()))) == space


def test_trial_configs_depend_on_seed_and_trial_only():
    space = SearchSpace(SMALL)
    forward = [space.config_for(7, k) for k in range(6)]
    backward = [space.config_for(7, k) for k in reversed(range(6))][::-1]
    assert forward == backward
    assert forward[0] != forward[1]
    assert space.config_for(8, 0) != forward[0]
    assert fs.trial_seeds(7, 3) == fs.trial_seeds(7, 3) != fs.trial_seeds(7, 4)


# -- one trial --------------------------------------------------------------------------------------------
def test_trial_curve_is_the_trainers(rng):
    from fastdl.nets import MultiLayerNetExtend
    from fastdl.trainer import Trainer

    data, _ = fs.load_data("digits", train_size=300, seed=3)
    config = SearchSpace(dict(SMALL, batchnorm=True)).config_for(3, 0)
    job = {"trial": 0, "rung": 0, "epochs": 5, "max_epochs": 5, "config": config, "train_seed": 123,
           "dtype": "float64"}
    record = fs.run_trial(job, data)
    assert record["status"] == "ok" and len(record["val_acc"]) == len(record["val_loss"]) == 5
    np.random.seed(123)
    net = MultiLayerNetExtend(64, [20, 20], 10, weight_decay_lambda=config["weight_decay"], use_batchnorm=True)
    trainer = Trainer(net, data["x_train"], data["t_train"], data["x_val"], data["t_val"], epochs=5,
                      optimizer="sgd", optimizer_param={"lr": config["lr"]}, verbose=False)
    trainer.train()
    assert record["val_acc"] == trainer.test_acc_list  # bit-identical, the validation losses changed nothing
    assert record["train_acc"] == trainer.train_acc_list
    # a job stopped at epoch 2 of a 5-epoch trial is the first two points of the full run
    short = fs.run_trial(dict(job, epochs=2), data)
    assert short["val_acc"] == record["val_acc"][:2] and short["val_loss"] == record["val_loss"][:2]


def test_failing_trial_is_recorded_not_raised():
    data, _ = fs.load_data("digits", train_size=300)
    config = SearchSpace(SMALL).config_for(0, 0)
    config["optimizer"] = "nope"
    record = fs.run_trial({"trial": 0, "rung": 0, "epochs": 2, "max_epochs": 2, "config": config,
                           "train_seed": 1}, data)
    assert record["status"] == "failed" and "optimizer" in record["error"]


def test_load_data_never_uses_the_test_set():
    from fastdl.datasets import load_digits

    data, desc = fs.load_data("digits", validation_ratio=0.25)
    (x_tr, _), (x_te, _) = load_digits(normalize=True)
    assert desc["n_train"] + desc["n_val"] == x_tr.shape[0]
    seen = {row.tobytes() for row in np.concatenate([data["x_train"], data["x_val"]])}
    assert seen == {row.tobytes() for row in x_tr}
    with pytest.raises(ValueError, match="search: data must be 'digits', 'mnist'"):
        fs.load_data("cifar")


# -- results file -----------------------------------------------------------------------------------------
def test_store_appends_reads_and_refuses_to_overwrite(tmp_path):
    path = tmp_path / "r.jsonl"
    with fs.ResultsStore(path, {"a": 1}) as store:
        store.append({"trial": 0, "rung": 0, "status": "ok", "final_val_acc": float("nan")})
    with open(path, "a") as fh:
        fh.write('{"kind": "trial", "trial": 1, "ru')  # a write cut short by a crash
    with pytest.warns(UserWarning, match="not complete JSON"):
        header, records = fs.read(path)
    assert header["spec"] == {"a": 1} and [r["trial"] for r in records] == [0]
    assert records[0]["final_val_acc"] is None
    with pytest.raises(FileExistsError, match="ResultsStore: path must be a new file"):
        fs.ResultsStore(path, {"a": 1})
    with pytest.raises(ValueError, match="ResultsStore: spec must be the same search"), pytest.warns(UserWarning):
        fs.ResultsStore(path, {"a": 2}, resume=True)
    with pytest.warns(UserWarning):
        store = fs.ResultsStore(path, {"a": 1}, resume=True)
    store.append({"trial": 1, "rung": 0, "status": "ok"})
    store.close()
    with pytest.warns(UserWarning):
        _, records = fs.read(path)
    assert [r["trial"] for r in records] == [0, 1]  # the torn line got its newline; the new record is whole


def test_resume_may_grow_the_search(tmp_path):
    path = tmp_path / "r.jsonl"
    kwargs = dict(executor="sequential", progress=False, results=path, train_size=300, epochs=2)
    first = fs.search(SearchSpace(SMALL), trials=2, **kwargs)
    grown = fs.search(SearchSpace(SMALL), trials=3, resume=True, **kwargs)
    assert (first.jobs_run, grown.jobs_run) == (2, 1)
    header, records = fs.read(path)
    assert header["spec"]["trials"] == 3 and [r["trial"] for r in records] == [0, 1, 2]
    again = fs.search(SearchSpace(SMALL), trials=3, resume=True, **kwargs)
    assert again.jobs_run == 0 and len(again.trials) == 3


# -- ASHA -------------------------------------------------------------------------------------------------
def test_rungs_and_asha_promotions():
    assert rungs(50, 2, 3) == [2, 6, 18, 50]
    assert rungs(4, 4, 3) == [4]
    policy = ASHA(trials=9, epochs=9, min_epochs=1, eta=3)
    jobs = [policy.next_job() for _ in range(3)]
    assert jobs == [(0, 0, 1), (1, 0, 1), (2, 0, 1)]
    for (k, rung, _), acc in zip(jobs, (0.2, 0.9, 0.5)):
        policy.report({"trial": k, "rung": rung, "status": "ok", "final_val_acc": acc})
    assert policy.next_job() == (1, 1, 3)  # the best third of rung 0 goes on
    assert policy.next_job() == (3, 0, 1)  # nothing else to promote: a new trial
    with pytest.raises(ValueError, match="ASHA: eta must be an integer >= 2"):
        ASHA(trials=3, epochs=9, eta=1)


def test_asha_sequential_is_deterministic_and_saves_epochs():
    space = SearchSpace(SMALL)
    kwargs = dict(trials=12, epochs=9, algorithm="asha", min_epochs=1, eta=3, executor="sequential",
                  progress=False, train_size=300)
    a = fs.search(space, **kwargs)
    b = fs.search(space, **kwargs)
    assert [(r["trial"], r["rung"]) for r in a.records] == [(r["trial"], r["rung"]) for r in b.records]
    assert _curves(a) == _curves(b)
    assert a.epochs_trained < 12 * 9 / 2
    top = max(len(r["val_acc"]) for r in a.trials)
    assert top == 9 and len(a.trials[0]["val_acc"]) == 9


# -- command line (in this process) -----------------------------------------------------------------------
def test_cli_sequential_and_resume_of_a_finished_search(tmp_path, capsys):
    from fastdl.cli import main

    args = ["search", "--trials", "3", "--epochs", "2", "--train-size", "300", "--hidden", "20x2",
            "--optimizer", "sgd,adam", "--executor", "sequential", "--out", str(tmp_path), "--quiet"]
    assert main(args) == 0
    out = capsys.readouterr().out
    assert "rank" in out and "optimizer" in out and "3 trials (3 jobs this run" in out
    for name in ("search-results-curves.png", "search-results-scatter.png"):
        with open(tmp_path / name, "rb") as fh:
            assert fh.read(8) == b"\x89PNG\r\n\x1a\n"
    assert main(args) == 2  # the results file exists: nothing is overwritten
    assert "already holds results" in capsys.readouterr().err
    results = str(tmp_path / "search-results.jsonl")
    assert main(["search", "--resume", results, "--executor", "sequential", "--out", str(tmp_path), "--quiet"]) == 0
    assert "3 trials (0 jobs this run" in capsys.readouterr().out


# -- real Dask clusters -----------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def client():
    pytest.importorskip("distributed")
    with fs.connect(workers=2, retries=1, quiet=True) as c:
        c.wait_for_workers(2)
        yield c


@pytest.fixture(scope="module")
def reference():
    """The small search run in this process, no Dask: the numbers every cluster run must reproduce."""
    return fs.search(SearchSpace(SMALL), trials=8, executor="sequential", progress=False, **RUN)


def test_cluster_results_equal_sequential_with_one_and_two_workers(client, reference, tmp_path):
    two = fs.search(SearchSpace(SMALL), trials=8, client=client, progress=False, results=tmp_path / "two.jsonl",
                    **RUN)
    assert two.n_workers == 2
    assert len({r["worker"] for r in two.records}) == 2  # both workers ran trials
    assert _curves(two) == _curves(reference)
    one = fs.search(SearchSpace(SMALL), trials=8, workers=1, progress=False, warmup=False, **RUN)  # embedded
    assert one.n_workers == 1
    assert _curves(one) == _curves(reference)
    _, stored = fs.read(tmp_path / "two.jsonl")
    assert sorted(r["trial"] for r in stored) == list(range(8))


def test_killed_worker_mid_search_loses_no_trial(client, reference):
    pids = client.run(os.getpid)
    killed = []

    def kill_one(record):
        if not killed:
            pid = next(iter(pids.values()))
            os.kill(pid, signal.SIGKILL)  # a worker process dies with a trial in flight
            killed.append(pid)

    result = fs.search(SearchSpace(SMALL), trials=8, client=client, progress=False, on_result=kill_one, **RUN)
    assert killed
    assert sorted(r["trial"] for r in result.records) == list(range(8))  # each trial once, none dropped
    assert all(r["status"] == "ok" for r in result.records)
    assert _curves(result) == _curves(reference)  # the re-run trial has the same numbers
    client.wait_for_workers(2)


def _dies_on_trial_one(job, data):
    if job["trial"] == 1:
        os._exit(1)
    return fs.run_trial(job, data)


def test_trial_whose_worker_always_dies_is_recorded_failed(client, tmp_path):
    import cloudpickle

    cloudpickle.register_pickle_by_value(__import__(__name__))
    result = fs.search(SearchSpace(SMALL), trials=3, client=client, progress=False, runner=_dies_on_trial_one,
                       results=tmp_path / "r.jsonl", **RUN)
    status = {r["trial"]: r["status"] for r in result.records}
    assert status == {0: "ok", 1: "failed", 2: "ok"}
    failed = next(r for r in result.records if r["trial"] == 1)
    # Dask reports it as KilledWorker, or (a race in the scheduler after the second death) as a future
    # cancelled because the scheduler already forgot the key: recorded as failed either way, never dropped
    assert "KilledWorker" in failed["error"] or "cancelled" in failed["error"]
    _, stored = fs.read(tmp_path / "r.jsonl")
    assert sorted(r["trial"] for r in stored) == [0, 1, 2]
    client.wait_for_workers(2)


class _Stop(Exception):
    pass


def test_interrupted_search_resumes_without_running_a_trial_twice(client, reference, tmp_path):
    path = tmp_path / "r.jsonl"
    seen = []

    def stop_after_three(record):
        seen.append(record["trial"])
        if len(seen) == 3:
            raise _Stop  # as Ctrl-C would, with trials still in flight

    with pytest.raises(_Stop):
        fs.search(SearchSpace(SMALL), trials=8, client=client, progress=False, results=path,
                  on_result=stop_after_three, **RUN)
    _, before = fs.read(path)
    done = {r["trial"] for r in before}
    assert done == set(seen) and len(done) == 3
    with pytest.raises(ValueError, match="the resumed search must be the same"):
        fs.search(SearchSpace(SMALL), trials=8, client=client, progress=False, results=path, resume=True,
                  seed=1, **RUN)
    resumed = fs.search(SearchSpace(SMALL), trials=8, client=client, progress=False, results=path, resume=True, **RUN)
    assert resumed.jobs_run == 5
    _, after = fs.read(path)
    assert sorted(r["trial"] for r in after) == list(range(8))  # no trial twice
    assert _curves(resumed) == _curves(reference)


def test_asha_on_the_cluster_jobs_are_prefixes_of_the_full_runs(client):
    space = SearchSpace(SMALL)
    asha = fs.search(space, trials=9, epochs=9, algorithm="asha", min_epochs=1, eta=3, client=client,
                     progress=False, train_size=300)
    full = fs.search(space, trials=9, epochs=9, executor="sequential", progress=False, train_size=300)
    curves = {r["trial"]: r for r in full.records}
    assert {r["epochs"] for r in asha.records} >= {1, 3}
    for r in asha.records:  # which trials get promoted may depend on arrival order; each job's numbers do not
        assert r["val_acc"] == curves[r["trial"]]["val_acc"][:r["epochs"]]
        assert r["val_loss"] == curves[r["trial"]]["val_loss"][:r["epochs"]]
