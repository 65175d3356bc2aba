"""The MLflow-compatible tracking API, checked against MLflow's documented behaviour."""

from __future__ import annotations

import math
import subprocess
import sys
import time

import pytest

import gitexp
from gitexp.entities import Metric, Param, RunStatus, RunTag, ViewType
from gitexp.exceptions import GitexpError, InvalidParameterValue, ResourceAlreadyExists, ResourceDoesNotExist

from .conftest import git


def test_default_experiment_exists_in_every_store(client):
    default = client.get_experiment("0")
    assert default.name == "Default"
    assert default.lifecycle_stage == "active"
    assert [e.name for e in client.search_experiments()] == ["Default"]
    assert client.get_experiment_by_name("Default").experiment_id == "0"


def test_tutorial_flow_set_experiment_start_run_log(repo):
    experiment = gitexp.set_experiment("nyc-taxi-experiment")
    with gitexp.start_run() as run:
        gitexp.set_tag("developer", "rebeka")
        gitexp.log_param("train-data-path", "./data/green_tripdata_2021-01.csv")
        gitexp.log_param("alpha", 0.1)
        gitexp.log_metric("rmse", 6.3)
    stored = gitexp.get_run(run.info.run_id)
    assert stored.info.experiment_id == experiment.experiment_id
    assert stored.info.status == "FINISHED"
    assert stored.info.end_time >= stored.info.start_time
    assert stored.data.params == {"train-data-path": "./data/green_tripdata_2021-01.csv", "alpha": "0.1"}
    assert stored.data.metrics == {"rmse": 6.3}
    assert stored.data.tags["developer"] == "rebeka"
    assert stored.data.tags["mlflow.runName"] == stored.info.run_name
    assert stored.data.tags["mlflow.source.type"] == "LOCAL"
    assert stored.data.tags["mlflow.user"]
    # The run is on the tracking branch as readable files.
    tree = git("ls-tree", "-r", "--name-only", "gitexp", cwd=repo)
    assert f".tracking/runs/{run.info.run_id[:2]}/{run.info.run_id}/params.yaml" in tree
    params = git("show", f"gitexp:.tracking/runs/{run.info.run_id[:2]}/{run.info.run_id}/params.yaml", cwd=repo)
    assert "alpha: \"0.1\"" in params


def test_set_experiment_returns_existing_and_creates_missing(repo):
    first = gitexp.set_experiment("apples")
    again = gitexp.set_experiment("apples")
    assert first.experiment_id == again.experiment_id
    by_id = gitexp.set_experiment(experiment_id=first.experiment_id)
    assert by_id.name == "apples"
    with pytest.raises(ResourceDoesNotExist):
        gitexp.set_experiment(experiment_id="12345")


def test_create_experiment_with_tags_and_search_by_tag(client):
    tags = {"project_name": "grocery-forecasting", "store_dept": "produce",
            "mlflow.note.content": "apples models"}
    exp_id = client.create_experiment("Apple_Models", tags=tags)
    exp = client.get_experiment(exp_id)
    assert exp.tags == tags
    assert exp.experiment_id.isdigit()
    assert exp.creation_time and exp.last_update_time >= exp.creation_time
    with pytest.raises(ResourceAlreadyExists, match="Apple_Models"):
        client.create_experiment("Apple_Models")


def test_experiment_rename_delete_restore_and_tags(client):
    exp_id = client.create_experiment("a")
    client.rename_experiment(exp_id, "b")
    assert client.get_experiment(exp_id).name == "b"
    assert client.get_experiment_by_name("a") is None
    client.set_experiment_tag(exp_id, "team", "ml")
    assert client.get_experiment(exp_id).tags == {"team": "ml"}
    client.delete_experiment_tag(exp_id, "team")
    assert client.get_experiment(exp_id).tags == {}
    client.delete_experiment(exp_id)
    assert client.get_experiment(exp_id).lifecycle_stage == "deleted"
    assert [e.name for e in client.search_experiments()] == ["Default"]
    assert {e.name for e in client.search_experiments(view_type=ViewType.DELETED_ONLY)} == {"b"}
    with pytest.raises(ResourceAlreadyExists, match="deleted"):
        client.create_experiment("b")
    with pytest.raises(InvalidParameterValue, match="deleted"):
        gitexp.set_experiment("b")
    client.restore_experiment(exp_id)
    assert client.get_experiment(exp_id).lifecycle_stage == "active"
    with pytest.raises(InvalidParameterValue, match="default experiment"):
        client.delete_experiment("0")


def test_runs_of_a_deleted_experiment_count_as_deleted(client):
    exp_id = client.create_experiment("scratch")
    run = client.create_run(exp_id)
    client.set_terminated(run.info.run_id)
    client.delete_experiment(exp_id)
    assert client.get_run(run.info.run_id).info.lifecycle_stage == "deleted"
    client.restore_experiment(exp_id)
    assert client.get_run(run.info.run_id).info.lifecycle_stage == "active"


def test_client_run_lifecycle(client):
    exp_id = client.create_experiment("lifecycle")
    run = client.create_run(exp_id, tags={"k": "v"}, run_name="my-run")
    run_id = run.info.run_id
    assert run.info.status == "RUNNING" and run.info.run_name == "my-run"
    client.log_param(run_id, "depth", 3)
    client.log_metric(run_id, "loss", 0.5, step=1)
    client.log_batch(run_id, metrics=[Metric("loss", 0.25, 1000, 2)], params=[Param("lr", "0.01")],
                     tags=[RunTag("stage", "dev")])
    client.set_tag(run_id, "stage", "prod")
    client.update_run(run_id, name="renamed")
    fetched = client.get_run(run_id)
    assert fetched.data.params == {"depth": "3", "lr": "0.01"}
    assert fetched.data.metrics == {"loss": 0.25}
    assert fetched.data.tags["stage"] == "prod" and fetched.data.tags["k"] == "v"
    assert fetched.info.run_name == "renamed" and fetched.data.tags["mlflow.runName"] == "renamed"
    client.set_terminated(run_id, "FAILED")
    assert client.get_run(run_id).info.status == "FAILED"
    client.delete_tag(run_id, "k")
    assert "k" not in client.get_run(run_id).data.tags
    with pytest.raises(ResourceDoesNotExist, match="nope"):
        client.delete_tag(run_id, "nope")
    client.delete_run(run_id)
    assert client.get_run(run_id).info.lifecycle_stage == "deleted"
    with pytest.raises(InvalidParameterValue, match="deleted"):
        client.log_metric(run_id, "loss", 1.0)
    client.restore_run(run_id)
    assert client.get_run(run_id).info.lifecycle_stage == "active"


def test_metric_history_in_step_order_and_latest_value(client):
    run = client.create_run("0")
    run_id = run.info.run_id
    for step in [5, 1, 3, 2, 4]:
        client.log_metric(run_id, "acc", step / 10, timestamp=1000 + step, step=step)
    client.log_metric(run_id, "acc", 0.1, timestamp=1001, step=1)  # exact duplicate is dropped
    history = client.get_metric_history(run_id, "acc")
    assert [m.step for m in history] == [1, 2, 3, 4, 5]
    assert [m.value for m in history] == [0.1, 0.2, 0.3, 0.4, 0.5]
    assert client.get_run(run_id).data.metrics["acc"] == 0.5  # largest step wins, not last logged
    client.set_terminated(run_id)
    assert [m.value for m in client.get_metric_history(run_id, "acc")] == [0.1, 0.2, 0.3, 0.4, 0.5]


def test_nan_and_infinite_metrics_round_trip(client):
    run_id = client.create_run("0").info.run_id
    client.log_metric(run_id, "nan", float("nan"))
    client.log_metric(run_id, "inf", float("inf"))
    client.log_metric(run_id, "ninf", float("-inf"))
    client.set_terminated(run_id)
    metrics = client.get_run(run_id).data.metrics
    assert math.isnan(metrics["nan"]) and metrics["inf"] == math.inf and metrics["ninf"] == -math.inf


def test_numpy_scalars_are_metric_values(client):
    import numpy as np
    run_id = client.create_run("0").info.run_id
    client.log_metric(run_id, "a", np.float32(0.5))
    client.log_metric(run_id, "b", np.int64(3))
    client.log_metric(run_id, "c", np.array(1.5))
    assert client.get_run(run_id).data.metrics == {"a": 0.5, "b": 3.0, "c": 1.5}


def test_nested_runs_record_their_parent(repo):
    with gitexp.start_run(run_name="parent") as parent:
        with gitexp.start_run(run_name="child", nested=True) as child:
            assert gitexp.active_run().info.run_id == child.info.run_id
        assert gitexp.active_run().info.run_id == parent.info.run_id
    child_run = gitexp.get_run(child.info.run_id)
    assert child_run.data.tags["mlflow.parentRunId"] == parent.info.run_id
    assert gitexp.get_parent_run(child.info.run_id).info.run_id == parent.info.run_id
    assert gitexp.active_run() is None
    assert gitexp.last_active_run().info.run_id == parent.info.run_id


def test_start_run_while_active_needs_nested(repo):
    with gitexp.start_run():
        with pytest.raises(GitexpError, match="already active"):
            gitexp.start_run()


def test_exception_in_with_block_marks_run_failed(repo):
    with pytest.raises(ZeroDivisionError):
        with gitexp.start_run() as run:
            _ = 1 / 0
    assert gitexp.get_run(run.info.run_id).info.status == "FAILED"


def test_resume_run_by_id_sets_running_then_finished(repo):
    with gitexp.start_run() as run:
        gitexp.log_metric("loss", 1.0, step=0)
    with gitexp.start_run(run_id=run.info.run_id) as resumed:
        assert resumed.info.status == "RUNNING"
        gitexp.log_metric("loss", 0.5, step=1)
        gitexp.log_param("resumed", True)
    final = gitexp.get_run(run.info.run_id)
    assert final.info.status == "FINISHED"
    assert [m.value for m in gitexp.Client().get_metric_history(run.info.run_id, "loss")] == [1.0, 0.5]
    assert final.data.params == {"resumed": "True"}


def test_log_metric_without_active_run_starts_one(repo):
    gitexp.log_metric("x", 1.0)
    run = gitexp.active_run()
    assert run is not None
    gitexp.end_run()
    assert gitexp.get_run(run.info.run_id).data.metrics == {"x": 1.0}


def test_start_run_description_and_tags(repo):
    with gitexp.start_run(run_name="r", tags={"team": "ml", "n": 3}, description="first try") as run:
        pass
    tags = gitexp.get_run(run.info.run_id).data.tags
    assert tags["mlflow.note.content"] == "first try"
    assert tags["team"] == "ml" and tags["n"] == "3"


def test_start_run_in_explicit_experiment_and_env_experiment(repo, monkeypatch):
    exp_id = gitexp.create_experiment("explicit")
    with gitexp.start_run(experiment_id=exp_id) as run:
        pass
    assert gitexp.get_run(run.info.run_id).info.experiment_id == exp_id
    monkeypatch.setenv("MLFLOW_EXPERIMENT_NAME", "from-env")
    with gitexp.start_run() as run2:
        pass
    assert gitexp.get_experiment(gitexp.get_run(run2.info.run_id).info.experiment_id).name == "from-env"


def test_log_params_metrics_tags_dicts(repo):
    with gitexp.start_run() as run:
        gitexp.log_params({"a": 1, "b": "x"})
        gitexp.log_metrics({"m1": 0.1, "m2": 0.2}, step=3)
        gitexp.set_tags({"t1": "v1"})
        gitexp.delete_tag("t1")
    data = gitexp.get_run(run.info.run_id).data
    assert data.params == {"a": "1", "b": "x"} and data.metrics == {"m1": 0.1, "m2": 0.2}
    assert "t1" not in data.tags
    assert [m.step for m in gitexp.Client().get_metric_history(run.info.run_id, "m1")] == [3]


def test_reads_see_values_logged_a_moment_ago(repo):
    client = gitexp.Client()
    with gitexp.start_run() as run:
        gitexp.log_metric("live", 1.0)
        gitexp.log_param("p", "v")
        seen = client.get_run(run.info.run_id)  # before any commit
        assert seen.data.metrics == {"live": 1.0} and seen.data.params == {"p": "v"}
        assert run.info.run_id in {r.info.run_id for r in client.search_runs(["0"])}


def test_checkpoints_commit_a_running_run(repo, monkeypatch):
    monkeypatch.setenv("GITEXP_CHECKPOINT_INTERVAL", "0.2")
    monkeypatch.setenv("GITEXP_PUBLISH_EVERY", "2")
    with gitexp.start_run() as run:
        run_dir = f".tracking/runs/{run.info.run_id[:2]}/{run.info.run_id}"
        live = f"refs/gitexp/live/{run.info.run_id}"
        gitexp.log_metric("progress", 0.5)

        def wait_for(rev: str, text: str) -> None:
            deadline = time.time() + 10
            while time.time() < deadline:
                sep = "" if rev.endswith(":") else "/"
                if text in git("show", f"{rev}{sep}latest_metrics.yaml", cwd=repo, check=False):
                    return
                time.sleep(0.05)
            pytest.fail(f"no checkpoint with {text!r} in {rev} within 10 s")

        # The first checkpoint goes to the run's live ref, not to the shared branch...
        wait_for(f"{live}:", "progress: [0, ")
        assert "status: RUNNING" in git("show", f"{live}:run.yaml", cwd=repo)
        chunk = git("show", f"{live}:metrics/progress/0000/000000.jsonl", cwd=repo)
        assert chunk.endswith(", 0.5]\n") and chunk.startswith("[0, ")
        # ...and another process sees it there, in get_run and in searches.
        code = (f"import gitexp; c = gitexp.MlflowClient(); r = c.get_run({run.info.run_id!r}); "
                "print(r.data.metrics['progress'], [x.info.run_id for x in c.search_runs(['0'])])")
        out = subprocess.run([sys.executable, "-c", code], cwd=repo, capture_output=True, text=True, check=True)
        assert out.stdout.strip() == f"0.5 ['{run.info.run_id}']"
        # Every 2nd checkpoint (GITEXP_PUBLISH_EVERY) lands on the branch, with only the new points
        # in a new chunk.
        gitexp.log_metric("progress", 0.75, step=1)
        wait_for(f"gitexp:{run_dir}", "progress: [1, ")
        assert git("show", f"gitexp:{run_dir}/metrics/progress/0000/000001.jsonl", cwd=repo).startswith("[1, ")
        assert git("for-each-ref", live, cwd=repo).strip() == ""
    # The end of the run lands on the branch.
    assert "status: FINISHED" in git("show", f"gitexp:{run_dir}/run.yaml", cwd=repo)
    assert git("for-each-ref", "refs/gitexp/live/", cwd=repo).strip() == ""


def test_search_runs_lists_runs_newest_first(repo):
    ids = []
    for i in range(3):
        with gitexp.start_run() as run:
            gitexp.log_metric("i", i)
        ids.append(run.info.run_id)
    found = gitexp.Client().search_runs(["0"])
    assert [r.info.run_id for r in found] == ids[::-1]
    df = gitexp.search_runs()
    assert list(df["run_id"]) == ids[::-1]
    assert list(df["metrics.i"]) == [2.0, 1.0, 0.0]


def test_run_status_enum_matches_mlflow_numbers():
    assert RunStatus.to_string(RunStatus.FINISHED) == "FINISHED"
    assert RunStatus.from_string("KILLED") == 5
    assert RunStatus.is_terminated(RunStatus.FAILED) and not RunStatus.is_terminated(RunStatus.RUNNING)
    assert ViewType.from_string("all") == ViewType.ALL
