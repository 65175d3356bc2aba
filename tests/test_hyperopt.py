"""hyperopt: trials as nested runs under one parent, in this process and in parallel worker processes."""

from __future__ import annotations

import sys
import textwrap

import numpy as np
import pytest
from hyperopt import STATUS_OK, Trials, fmin, hp, tpe
from hyperopt.pyll import scope

import gitexp

from .autolog_helpers import no_autolog_left_behind, runs_of  # noqa: F401
from .conftest import run_python

SPACE = {"x": hp.uniform("x", -2, 2), "depth": scope.int(hp.quniform("depth", 1, 6, 1))}


def children_of(client, parent_id: str, experiment_id: str) -> list:
    return list(client.search_runs([experiment_id], f"tags.mlflow.parentRunId = '{parent_id}'"))


def test_trials_of_fmin_are_nested_runs_of_the_parent(client):
    experiment = gitexp.set_experiment("tuning")

    def objective(params):
        with gitexp.start_run(nested=True):
            gitexp.set_tag("model", "quadratic")
            gitexp.log_params(params)
            loss = (params["x"] - 0.5) ** 2 + params["depth"] / 100
            gitexp.log_metric("loss", loss)
        return {"loss": loss, "status": STATUS_OK}

    trials = Trials()
    with gitexp.start_run(run_name="search") as parent:
        best = fmin(objective, SPACE, algo=tpe.suggest, max_evals=8, trials=trials,
                    rstate=np.random.default_rng(0), show_progressbar=False)
        gitexp.log_params({f"best_{k}": v for k, v in best.items()})
    children = children_of(client, parent.info.run_id, experiment.experiment_id)
    assert len(children) == 8
    assert sorted(c.data.metrics["loss"] for c in children) == sorted(trials.losses())
    assert all(c.data.tags["model"] == "quadratic" and c.info.status == "FINISHED" for c in children)
    assert {c.data.params["depth"] for c in children} <= {str(d) for d in range(1, 7)}
    best_run = client.search_runs([experiment.experiment_id], f"tags.mlflow.parentRunId = '{parent.info.run_id}'",
                                  order_by=["metrics.loss ASC"], max_results=1)[0]
    assert float(best_run.data.params["x"]) == pytest.approx(best["x"])
    assert client.get_run(parent.info.run_id).data.params["best_x"] == str(best["x"])


def test_the_tutorials_objective_with_xgboost_autolog_in_each_trial(client):
    """mlops-zoomcamp: hyperopt over xgboost, each trial a nested run, autolog filling it in."""
    import xgboost as xgb
    from sklearn.metrics import root_mean_squared_error

    rng = np.random.default_rng(1)
    X = rng.random((120, 3))
    y = X @ np.array([3.0, 1.0, 0.0]) + rng.normal(0, 0.1, 120)
    gitexp.xgboost.autolog(log_models=False)
    train = xgb.DMatrix(X[:80], label=y[:80])
    valid = xgb.DMatrix(X[80:], label=y[80:])

    def objective(params):
        with gitexp.start_run(nested=True):
            gitexp.set_tag("model", "xgboost")
            gitexp.log_params(params)
            booster = xgb.train(params=params, dtrain=train, num_boost_round=50, evals=[(valid, "validation")],
                                early_stopping_rounds=5, verbose_eval=False)
            rmse = root_mean_squared_error(y[80:], booster.predict(valid))
            gitexp.log_metric("rmse", rmse)
        return {"loss": rmse, "status": STATUS_OK}

    space = {"max_depth": scope.int(hp.quniform("max_depth", 2, 5, 1)),
             "learning_rate": hp.loguniform("learning_rate", -3, 0), "objective": "reg:squarederror", "seed": 42}
    with gitexp.start_run() as parent:
        fmin(objective, space, algo=tpe.suggest, max_evals=3, trials=Trials(), rstate=np.random.default_rng(0),
             show_progressbar=False)
    children = children_of(client, parent.info.run_id, "0")
    assert len(children) == 3
    for child in children:
        assert "validation-rmse" in child.data.metrics and "best_iteration" in child.data.metrics
        assert child.data.params["num_boost_round"] == "50" and "rmse" in child.data.metrics
        assert "mlflow.autologging" not in child.data.tags  # the user's run, filled in by autolog
    assert client.get_run(parent.info.run_id).data.metrics == {}


_FORKED = """
import multiprocessing, sys
import numpy as np
import gitexp
from hyperopt import STATUS_OK, Trials, fmin, hp, tpe

def objective(params):
    # Forked workers inherit the active run: nested=True puts each trial under it.
    with gitexp.start_run(nested=True):
        gitexp.log_params(params)
        loss = (params["x"] - 0.5) ** 2
        gitexp.log_metric("loss", loss)
    return {"loss": loss, "status": STATUS_OK}

def search(seed):
    fmin(objective, {"x": hp.uniform("x", -2, 2)}, algo=tpe.suggest, max_evals=3, trials=Trials(),
         rstate=np.random.default_rng(seed), show_progressbar=False)
    return seed

if __name__ == "__main__":
    gitexp.set_experiment("forked")
    with gitexp.start_run(run_name="parent") as parent:
        with multiprocessing.get_context("fork").Pool(3) as pool:
            assert pool.map(search, [1, 2, 3]) == [1, 2, 3]
    print(parent.info.run_id)
"""

_SPAWNED = """
import os, sys
import gitexp
from hyperopt import hp
from hyperopt.pyll import stochastic
from joblib import Parallel, delayed

def trial(parent_run_id, params):
    # A spawned worker knows nothing of the parent process: name the parent explicitly.
    with gitexp.start_run(parent_run_id=parent_run_id):
        gitexp.log_params(params)
        gitexp.log_metric("loss", (params["x"] - 0.5) ** 2)
        return os.getpid()

if __name__ == "__main__":
    gitexp.set_experiment("spawned")
    space = {"x": hp.uniform("x", -2, 2)}
    samples = [stochastic.sample(space, rng=__import__("numpy").random.default_rng(i)) for i in range(8)]
    with gitexp.start_run(run_name="parent") as parent:
        gitexp.flush()  # workers must find the parent run on the branch
        pids = Parallel(n_jobs=2, backend="loky")(delayed(trial)(parent.info.run_id, p) for p in samples)
    print(parent.info.run_id, len(set(pids)))
"""

_ENV_WORKER = """
import os, sys, gitexp
# MLFLOW_RUN_ID (set by the launcher) makes the first start_run() resume that run; trials nest inside it.
with gitexp.start_run() as resumed:
    for i in range(2):
        with gitexp.start_run(nested=True):
            gitexp.log_param("worker", sys.argv[1])
            gitexp.log_metric("loss", float(sys.argv[1]) + i)
print(resumed.info.run_id)
"""

_ENV_LAUNCHER = """
import os, subprocess, sys
import gitexp
with gitexp.start_run(run_name="launcher") as parent:
    gitexp.flush()
    env = {**os.environ, "MLFLOW_RUN_ID": parent.info.run_id}
    workers = [subprocess.Popen([sys.executable, "worker.py", str(n)], env=env, stdout=subprocess.PIPE, text=True)
               for n in range(3)]
    resumed = {w.communicate()[0].strip() for w in workers}
    assert all(w.returncode == 0 for w in workers)
    assert resumed == {parent.info.run_id}, resumed
print(parent.info.run_id)
"""


def _run_script(repo, name: str, code: str, *args: str):
    (repo / name).write_text(textwrap.dedent(code))
    import subprocess

    return subprocess.run([sys.executable, name, *args], cwd=repo, capture_output=True, text=True, timeout=240)


def test_trials_in_forked_worker_processes_all_land(client, repo):
    result = _run_script(repo, "tune_forked.py", _FORKED)
    assert result.returncode == 0, result.stderr
    parent_id = result.stdout.split()[-1]
    experiment = client.get_experiment_by_name("forked")
    children = children_of(client, parent_id, experiment.experiment_id)
    assert len(children) == 9
    assert all(c.info.status == "FINISHED" and "loss" in c.data.metrics for c in children)
    assert client.get_run(parent_id).info.status == "FINISHED"


def test_trials_in_spawned_joblib_workers_all_land_in_the_parents_experiment(client, repo):
    import joblib  # noqa: F401  (a dev dependency: missing, the test fails loudly)
    result = _run_script(repo, "tune_spawned.py", _SPAWNED)
    assert result.returncode == 0, result.stderr
    parent_id, n_workers = result.stdout.split()[-2:]
    experiment = client.get_experiment_by_name("spawned")
    children = children_of(client, parent_id, experiment.experiment_id)
    assert len(children) == 8 and int(n_workers) >= 1
    assert len({c.data.params["x"] for c in children}) == 8
    assert runs_of(client) == []  # nothing strayed into the Default experiment


def test_workers_launched_with_mlflow_run_id_nest_under_it(client, repo):
    (repo / "worker.py").write_text(_ENV_WORKER)
    result = _run_script(repo, "launch.py", _ENV_LAUNCHER)
    assert result.returncode == 0, result.stderr
    parent_id = result.stdout.split()[-1]
    children = children_of(client, parent_id, "0")
    assert sorted(c.data.params["worker"] for c in children) == ["0", "0", "1", "1", "2", "2"]
    assert client.get_run(parent_id).info.status == "FINISHED"


def test_a_worker_naming_an_uncommitted_parent_is_told_what_to_do(client, repo):
    with gitexp.start_run() as parent:
        result = run_python(f"import gitexp\ngitexp.start_run(parent_run_id={parent.info.run_id!r})", cwd=repo)
    assert result.returncode != 0
    assert "gitexp.flush()" in result.stderr


def test_a_forked_child_exiting_normally_does_not_end_its_parents_run(client, repo):
    code = textwrap.dedent("""
        import os, gitexp
        run = gitexp.start_run()
        gitexp.flush()
        pid = os.fork()
        if pid == 0:
            with gitexp.start_run(nested=True):
                gitexp.log_metric("child", 1)
            raise SystemExit(0)  # runs atexit handlers in the child
        os.waitpid(pid, 0)
        print(gitexp.get_run(run.info.run_id).info.status)
        gitexp.end_run("FAILED")
        print(run.info.run_id)
    """)
    result = run_python(code, cwd=repo)
    assert result.returncode == 0, result.stderr
    status, run_id = result.stdout.split()[-2:]
    assert status == "RUNNING"
    assert client.get_run(run_id).info.status == "FAILED"
