"""gitexp's own API with an http:// tracking URI: everything goes through a real `gitexp server`.

The client runs in a git repository of its own (its code version is recorded);
the served repository is elsewhere, and is read back directly at the end.
"""

from __future__ import annotations

import math

import fastapi  # noqa: F401  (a dev dependency: missing, the test fails loudly)
import pytest

import gitexp
from gitexp.entities import Metric, Param, RunTag
from gitexp.exceptions import InvalidParameterValue, ResourceAlreadyExists, ResourceDoesNotExist
from tests.conftest import git, make_repo, reset_gitexp
from tests.server_process import ServerProcess


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    srv = ServerProcess(make_repo(tmp_path_factory.mktemp("remote") / "served"))
    yield srv
    log = srv.stop()
    assert "Traceback" not in log, log[-5000:]


@pytest.fixture
def remote(server, repo):
    """The fluent API and a Client pointed at the server, from a working repository with an edit."""
    (repo / "train.py").write_text("print('training v2')\n")
    gitexp.set_tracking_uri(server.url)
    yield gitexp.Client()
    reset_gitexp()


def test_fluent_api_and_models_over_http(server, remote, repo):
    import numpy as np
    from sklearn.linear_model import LinearRegression

    X = np.arange(20.0).reshape(10, 2)
    model = LinearRegression().fit(X, X[:, 0])
    exp = gitexp.set_experiment("remote-fluent")
    with gitexp.start_run(run_name="over-http") as run:
        gitexp.log_param("a", 1)
        gitexp.log_params({"b": 2})
        for step in range(5):
            gitexp.log_metric("loss", 1 / (step + 1), step=step)
        gitexp.log_metrics({"acc": 0.9, "bad": float("nan")})
        gitexp.set_tag("t", "v")
        gitexp.log_dict({"k": 1}, "conf/c.json")
        gitexp.log_text("hi", "notes/t.txt")
        gitexp.sklearn.log_model(model, "model")
    run_id = run.info.run_id
    got = remote.get_run(run_id)
    assert got.info.artifact_uri == f"runs:/{run_id}" and got.info.status == "FINISHED"
    assert got.data.params == {"a": "1", "b": "2"} and math.isnan(got.data.metrics["bad"])
    assert got.data.tags["mlflow.source.git.dirty"] == "true"
    assert "print('training v2')" in remote.get_run_code_diff(run_id)

    frame = gitexp.search_runs([exp.experiment_id])
    assert list(frame["run_id"]) == [run_id] and frame["metrics.acc"][0] == 0.9
    history = remote.metric_history_frame([run_id], "loss")
    assert list(history["value"]) == [1 / (s + 1) for s in range(5)]
    assert {f.path for f in remote.list_artifacts(run_id)} == {"conf", "notes", "model"}
    assert gitexp.artifacts.load_dict(f"runs:/{run_id}/conf/c.json") == {"k": 1}
    out = remote.download_artifacts(run_id, "notes")
    assert open(f"{out}/t.txt").read() == "hi"
    loaded = gitexp.pyfunc.load_model(f"runs:/{run_id}/model")
    assert [round(v, 6) for v in loaded.predict(X[:3])] == [0.0, 2.0, 4.0]

    # The same run, read straight from the served repository's branch.
    reset_gitexp()
    local = gitexp.Client(str(server.repo))
    stored = local.get_run(run_id)
    assert stored.data.params == {"a": "1", "b": "2"} and stored.data.tags["t"] == "v"
    assert [m.value for m in local.get_metric_history(run_id, "loss")] == [1 / (s + 1) for s in range(5)]
    head = git("rev-parse", "HEAD", cwd=repo).strip()
    code = local._store.run_state(run_id).code
    assert code["commit"] == head and code["dirty"] is True
    assert "print('training v2')" in local.get_run_code_diff(run_id)
    assert local._artifacts.read_bytes(run_id, "notes/t.txt") == b"hi"


def test_client_api_and_registry_over_http(server, remote):
    exp_id = remote.create_experiment("remote-client", tags={"team": "ml"})
    with pytest.raises(ResourceAlreadyExists):
        remote.create_experiment("remote-client")
    run = remote.create_run(exp_id, run_name="c1", tags={"k": "v"})
    run_id = run.info.run_id
    remote.log_batch(run_id, metrics=[Metric("m", float(i), 1000 + i, i) for i in range(2500)],
                     params=[Param(f"p{i}", str(i)) for i in range(150)],
                     tags=[RunTag(f"t{i}", "x") for i in range(120)])
    assert len(remote.get_metric_history(run_id, "m")) == 2500
    with pytest.raises(InvalidParameterValue):
        remote.log_param(run_id, "p1", "changed")
    remote.set_terminated(run_id, "FAILED")
    assert remote.get_run(run_id).info.status == "FAILED"
    assert len(remote.get_run(run_id).data.params) == 150
    assert remote._store.resolve_run_id(run_id[:8]) == run_id
    page = remote.search_runs([exp_id], "params.p3 = '3'")
    assert [r.info.run_id for r in page] == [run_id]
    remote.set_experiment_tag(exp_id, "stage", "dev")
    assert remote.search_experiments(filter_string="tags.stage = 'dev'")[0].experiment_id == exp_id
    with pytest.raises(ResourceDoesNotExist):
        remote.get_run("f" * 32)

    remote.create_registered_model("remote-model", description="d")
    mv = remote.create_model_version("remote-model", f"runs:/{run_id}/model", run_id=run_id)
    assert mv.version == 1
    remote.transition_model_version_stage("remote-model", 1, "Staging")
    remote.set_registered_model_alias("remote-model", "best", 1)
    assert remote.get_model_version_by_alias("remote-model", "best").current_stage == "Staging"
    assert remote.resolve_model_version("models:/remote-model/Staging").version == 1
    assert [m.name for m in remote.search_registered_models("name LIKE 'remote-%'")] == ["remote-model"]
    assert [e.action for e in remote.get_registered_model_history("remote-model")] == [
        "create_model", "create_version", "transition_stage", "set_alias"]

    model = remote.create_logged_model(exp_id, "lm", source_run_id=run_id, params={"x": "1"})
    remote.finalize_logged_model(model.model_id, "READY")
    remote.set_logged_model_tags(model.model_id, {"a": "b"})
    got = remote.get_logged_model(model.model_id)
    assert (got.status, got.tags, got.params) == ("READY", {"a": "b"}, {"x": "1"})
    assert got.artifact_location == f"runs:/{run_id}/lm"

    remote.flush()
    reset_gitexp()
    local = gitexp.Client(str(server.repo))
    assert local.get_experiment(exp_id).tags == {"team": "ml", "stage": "dev"}
    assert local.get_run(run_id).info.status == "FAILED"
    assert local.get_logged_model(model.model_id).tags == {"a": "b"}


def test_operations_that_need_the_repository_say_so(server, remote):
    for call in (remote.pull, remote.push, lambda: remote.checkout_code("0" * 32, "out"),
                 remote.get_tracking_history, lambda: remote.get_tracking_commit("HEAD"),
                 lambda: remote.diff_run_code("0" * 32, "1" * 32), lambda: remote.get_run_keys(["0"]),
                 remote.link_runs_to_commit, remote.diagnose, remote.get_repository_info,
                 remote.get_tracking_tip, remote.create_tracking_branch):
        with pytest.raises(InvalidParameterValue, match="needs the git repository itself"):
            call()


def test_an_unreachable_server_is_a_clear_error(repo):
    reset_gitexp()
    client = gitexp.Client("http://127.0.0.1:9")  # the discard port: nothing listens
    with pytest.raises(gitexp.exceptions.StoreError, match="Cannot reach the tracking server"):
        client.get_experiment("0")


def test_an_unreachable_server_is_one_line_without_a_traceback(repo):
    import subprocess
    import sys

    reset_gitexp()
    with pytest.raises(gitexp.exceptions.StoreError) as raised:
        gitexp.Client("http://127.0.0.1:9").search_experiments()
    assert raised.value.__cause__ is None and raised.value.__suppress_context__  # no socket traceback first
    assert "\n" not in raised.value.message
    cli = subprocess.run([sys.executable, "-m", "gitexp", "--repo", "http://127.0.0.1:9", "runs", "list"],
                         capture_output=True, text=True, timeout=60)
    assert cli.returncode == 1 and cli.stdout == ""
    assert cli.stderr.startswith("Error: Cannot reach the tracking server at http://127.0.0.1:9") and \
        cli.stderr.count("\n") == 1 and "Traceback" not in cli.stderr
    script = "import gitexp; gitexp.log_metric('rmse', 0.5)"
    fluent = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=60,
                            env={**__import__("os").environ, "GITEXP_TRACKING_URI": "http://127.0.0.1:9"})
    assert fluent.returncode == 1
    assert fluent.stderr.count("Traceback") == 1 and "direct cause" not in fluent.stderr
    assert fluent.stderr.rstrip().splitlines()[-1].startswith(
        "gitexp.exceptions.StoreError: Cannot reach the tracking server at http://127.0.0.1:9")


def test_the_command_line_works_against_a_server(server, remote):
    from click.testing import CliRunner

    from gitexp.cli import main

    exp_id = remote.create_experiment("remote-cli")
    run = remote.create_run(exp_id, run_name="from-cli")
    remote.log_metric(run.info.run_id, "rmse", 0.25)
    remote.set_terminated(run.info.run_id)
    runner = CliRunner()
    listed = runner.invoke(main, ["--repo", server.url, "runs", "list", "-e", "remote-cli", "-f", "json"])
    assert listed.exit_code == 0, listed.output
    rows = __import__("json").loads(listed.output)
    assert [(r["run_id"], r["metrics.rmse"]) for r in rows] == [(run.info.run_id, 0.25)]
    shown = runner.invoke(main, ["--repo", server.url, "runs", "show", run.info.run_id[:8]])
    assert shown.exit_code == 0 and "from-cli" in shown.output, shown.output
