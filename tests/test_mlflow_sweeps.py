"""Sweeps log into git through the plugin: Optuna's MLflowCallback in one process and in a
sweep of several worker processes sharing one study, and Ray Tune's MLflow integration on a
local Ray cluster. The multi-process scripts are docs/sweeps.md's own, read out of it.
Every trial must be a run in git, read back with gitexp: no lost writes."""

from __future__ import annotations

import json
import re
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import optuna
import pytest

from .conftest import make_repo, require_mlflow
from .mlflow_integration_helpers import artifact_paths, plugin_uri, reader, runs_of, tracked_fixture  # noqa: F401 (fixture "tracked")

mlflow = require_mlflow()
from optuna.integration.mlflow import MLflowCallback  # noqa: E402 (optuna-integration[mlflow], a dev dependency)

DOC = Path(__file__).resolve().parents[1] / "docs" / "sweeps.md"


def doc_scripts() -> dict[str, str]:
    """The scripts docs/sweeps.md shows, by file name (each block follows '<!-- file: NAME -->')."""
    found = dict(re.findall(r"<!-- file: (\S+) -->\n```python\n(.*?)```", DOC.read_text(), re.S))
    assert set(found) == {"optuna_worker.py", "optuna_sweep.py", "ray_sweep.py"}, sorted(found)
    return found


def write_scripts(where: Path) -> Path:
    where.mkdir(parents=True, exist_ok=True)
    for name, code in doc_scripts().items():
        (where / name).write_text(code)
    return where


def run_script(where: Path, *args: str, timeout: float = 150) -> subprocess.CompletedProcess:
    result = subprocess.run([sys.executable, "-W", "ignore", *args], cwd=where, capture_output=True, text=True,
                            timeout=timeout)
    assert result.returncode == 0, f"{args} failed:\n{result.stdout[-3000:]}\n{result.stderr[-6000:]}"
    return result


@pytest.fixture
def quiet_optuna():
    level = optuna.logging.get_verbosity()
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    yield
    optuna.logging.set_verbosity(level)


def test_optuna_callback_in_one_process_nests_trials_under_a_parent(tracked, quiet_optuna):
    mlflow.set_experiment("optuna")
    callback = MLflowCallback(tracking_uri=mlflow.get_tracking_uri(), metric_name="loss", create_experiment=False,
                              mlflow_kwargs={"nested": True})

    @callback.track_in_mlflow()
    def objective(trial):
        x = trial.suggest_float("x", -2, 2)
        mlflow.log_metric("distance", abs(x - 1))
        return (x - 1) ** 2

    study = optuna.create_study(study_name="in-process", sampler=optuna.samplers.RandomSampler(seed=3))
    with mlflow.start_run(run_name="study") as parent:
        study.optimize(objective, n_trials=5, callbacks=[callback])

    client = reader(tracked)
    runs = runs_of(client, "optuna")
    trials = {r.info.run_name: r for r in runs if r.info.run_id != parent.info.run_id}
    assert sorted(trials) == ["0", "1", "2", "3", "4"]
    for trial in study.trials:
        run = trials[str(trial.number)]
        assert run.data.tags["mlflow.parentRunId"] == parent.info.run_id
        assert run.data.params["x"] == str(trial.params["x"])
        assert run.data.metrics["loss"] == pytest.approx(trial.value)
        assert run.data.metrics["distance"] == pytest.approx(abs(trial.params["x"] - 1))
        assert run.info.status == "FINISHED"


def test_optuna_sweep_of_worker_processes_sharing_one_study(tmp_path):
    repo = make_repo(tmp_path / "repo")
    work = write_scripts(tmp_path / "work")  # outside the repository: the journal file lives here
    workers, trials = 3, 4
    run_script(work, "optuna_sweep.py", plugin_uri(repo), str(workers), str(trials))

    study = optuna.load_study(study_name="tune-x", storage=optuna.storages.JournalStorage(
        optuna.storages.journal.JournalFileBackend(str(work / "optuna-journal.log"))))
    assert len(study.trials) == workers * trials
    client = reader(repo)
    assert sorted(e.name for e in client.search_experiments()) == ["Default", "tune-x"]
    assert runs_of(client, "Default") == []
    runs = runs_of(client, "tune-x")
    assert len(runs) == workers * trials  # every trial is a run: no lost write
    by_number = {int(r.data.tags["number"]): r for r in runs}
    assert sorted(by_number) == list(range(workers * trials))
    for trial in study.trials:
        run = by_number[trial.number]
        assert run.data.params["x"] == str(trial.params["x"])
        assert run.data.metrics["loss"] == pytest.approx(trial.value)
        assert run.data.metrics["distance"] == pytest.approx(abs(trial.params["x"] - 2))
        assert run.info.status == "FINISHED"
    assert len(client.get_metric_history(runs[0].info.run_id, "loss")) == 1
    by_worker = Counter(r.data.tags["worker_pid"] for r in runs)
    assert sorted(by_worker.values()) == [trials] * workers  # each process ran its own trials


def test_ray_tune_on_a_local_cluster(tmp_path):
    repo = make_repo(tmp_path / "repo")
    work = write_scripts(tmp_path / "work")
    out = run_script(work, "ray_sweep.py", plugin_uri(repo), timeout=240).stdout
    assert "best x: 1.0" in out

    client = reader(repo)
    xs = ["0.0", "0.5", "1.0", "2.0"]
    # MLflowLoggerCallback, in Ray's driver: one run per trial, params, every reported result.
    driver = runs_of(client, "ray-trials")
    assert sorted(r.data.params["x"] for r in driver) == xs
    for run in driver:
        x = float(run.data.params["x"])
        assert run.info.status == "FINISHED"
        history = client.get_metric_history(run.info.run_id, "loss")
        assert [m.value for m in history] == pytest.approx([(x - 1) ** 2 / (s + 1) for s in range(3)])
        assert run.data.metrics["training_iteration"] == 3
        # save_artifact=True: the trial's directory, as Ray wrote it.
        assert {"params.json", "progress.csv", "result.json"} <= set(artifact_paths(client, run.info.run_id))
        assert json.loads(client.read_artifact(run.info.run_id, "params.json")) == {"x": x}
    # setup_mlflow, in the trials' worker processes: a run of each trial's own.
    workers = runs_of(client, "ray-workers")
    assert sorted(r.data.params["x"] for r in workers) == xs
    for run in workers:
        x = float(run.data.params["x"])
        assert run.info.status == "FINISHED"
        history = client.get_metric_history(run.info.run_id, "worker_loss")
        assert [m.step for m in history] == [0, 1, 2]
        assert [m.value for m in history] == pytest.approx([(x - 1) ** 2 / (s + 1) for s in range(3)])


RACE = """
import os, sys, time
import mlflow
from mlflow.exceptions import MlflowException

client = mlflow.MlflowClient(sys.argv[1])
client.search_experiments()  # the plugin loaded before the start
open(sys.argv[2] + "." + str(os.getpid()), "w").close()
while not os.path.exists(sys.argv[2]):
    time.sleep(0.005)
try:
    print("created", client.create_experiment("race"))
except MlflowException as exc:
    print(exc.error_code, client.get_experiment_by_name("race").experiment_id)
"""


def test_workers_creating_one_experiment_at_once_get_one_experiment(tmp_path):
    """What a sweep's workers do when each creates the study's experiment: through the plugin,
    one creation wins and every other one is answered RESOURCE_ALREADY_EXISTS (as MLflow's
    stores answer), so all of them log into the same, single experiment."""
    repo = make_repo(tmp_path / "repo")
    (tmp_path / "race.py").write_text(RACE)
    go = tmp_path / "go"
    procs = [subprocess.Popen([sys.executable, "-W", "ignore", str(tmp_path / "race.py"), plugin_uri(repo), str(go)],
                              cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
             for _ in range(3)]
    deadline = time.monotonic() + 60
    while len(list(tmp_path.glob("go.*"))) < len(procs) and time.monotonic() < deadline:
        assert all(p.poll() is None for p in procs), [p.communicate() for p in procs]
        time.sleep(0.02)
    go.touch()
    answers = []
    for proc in procs:
        out, err = proc.communicate(timeout=60)
        assert proc.returncode == 0, err[-3000:]
        answers.append(out.split())
    client = reader(repo)
    [experiment] = [e for e in client.search_experiments() if e.name == "race"]
    assert sorted(a[0] for a in answers) == ["RESOURCE_ALREADY_EXISTS", "RESOURCE_ALREADY_EXISTS", "created"]
    assert {a[1] for a in answers} == {experiment.experiment_id}
