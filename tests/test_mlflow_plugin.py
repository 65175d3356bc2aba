"""The real, unmodified mlflow package with a gitexp: tracking URI (the plugin, in-process).

Everything logged through mlflow is then read with gitexp itself (a fresh Client on the
repository), and what gitexp writes is read back through mlflow.
"""

from __future__ import annotations

import math
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import require_mlflow

mlflow = require_mlflow("mlflow.sklearn")
import numpy as np  # noqa: E402
from mlflow import MlflowClient  # noqa: E402
from mlflow.entities import Metric, Param, RunTag  # noqa: E402
from mlflow.exceptions import MlflowException  # noqa: E402
from sklearn.linear_model import LogisticRegression  # noqa: E402

import gitexp  # noqa: E402
from gitexp.exceptions import InvalidParameterValue  # noqa: E402
from gitexp.store.repo import parse_gitexp_uri  # noqa: E402
from tests.conftest import git, make_repo, reset_gitexp  # noqa: E402


def uri_of(path: Path, branch: str | None = None) -> str:
    return f"gitexp://{path.as_posix()}" + (f"?branch={branch}" if branch else "")


@pytest.fixture
def repo(tmp_path, monkeypatch):
    path = make_repo(tmp_path / "repo")
    monkeypatch.chdir(path)
    monkeypatch.setenv("MLFLOW_DISABLE_TELEMETRY", "true")
    reset_gitexp()
    mlflow.set_tracking_uri(uri_of(path))
    yield path
    while mlflow.active_run():
        mlflow.end_run()
    mlflow.tracking.fluent._active_experiment_id = None
    mlflow.set_tracking_uri(None)
    mlflow.set_registry_uri(None)
    for name in ("MLFLOW_TRACKING_URI", "MLFLOW_EXPERIMENT_ID", "MLFLOW_EXPERIMENT_NAME"):
        os.environ.pop(name, None)
    reset_gitexp()


def branch_client(path: Path) -> gitexp.Client:
    """gitexp reading the repository directly, sharing nothing with the plugin's store."""
    mlflow.flush_async_logging()
    from gitexp.store.tracking import SESSIONS

    SESSIONS.flush_all()
    reset_gitexp()
    return gitexp.Client(str(path))


# -- URIs ---------------------------------------------------------------------------------------
@pytest.mark.parametrize(("uri", "path", "branch"), [
    ("gitexp:", os.curdir, None),
    ("gitexp:relative/repo", "relative/repo", None),
    ("gitexp:/abs/repo", "/abs/repo", None),
    ("gitexp:///abs/repo", "/abs/repo", None),
    ("gitexp:///abs/my%20repo?branch=exp/a", "/abs/my repo", "exp/a"),
    ("gitexp:///C:/Users/me/repo", "C:/Users/me/repo", None),
    ("gitexp:C:/Users/me/repo?branch=b", "C:/Users/me/repo", "b"),
    ("GITEXP:///abs/repo", "/abs/repo", None),
])
def test_uri_forms(uri, path, branch):
    assert parse_gitexp_uri(uri) == (path, branch)


@pytest.mark.parametrize(("uri", "message"), [
    ("gitexp://host/repo", "names a host ('host')"),
    ("gitexp:///repo?brnch=x", "unknown option 'brnch'"),
    ("gitexp:///repo?branch=", "empty ?branch="),
])
def test_bad_uris_are_refused_by_name(uri, message):
    with pytest.raises(InvalidParameterValue, match=message.replace("?", r"\?").replace("(", r"\(")
                       .replace(")", r"\)")):
        parse_gitexp_uri(uri)


def test_a_bad_repository_path_is_one_clear_error(tmp_path):
    mlflow.set_tracking_uri(uri_of(tmp_path / "nowhere"))
    try:
        with pytest.raises(Exception, match="nowhere"):
            MlflowClient().search_experiments()
    finally:
        mlflow.set_tracking_uri(None)


# -- tracking ------------------------------------------------------------------------------------
def test_fluent_api_end_to_end_lands_on_the_branch(repo):
    mlflow.set_experiment("plugin-e2e")
    with mlflow.start_run(run_name="parent", tags={"team": "a"}, description="the parent") as parent:
        mlflow.log_params({"alpha": 0.5, "layers": 3})
        for step in range(5):
            mlflow.log_metric("loss", 1.0 / (step + 1), step=step)
        mlflow.log_metrics({"nan": float("nan"), "inf": float("inf"), "ninf": float("-inf")})
        mlflow.log_text("hello", "notes/hello.txt")
        mlflow.log_dict({"a": 1}, "config.json")
        with mlflow.start_run(run_name="child", nested=True) as child:
            mlflow.log_metric("acc", 0.9)
        dataset = mlflow.data.from_numpy(np.arange(6.0).reshape(3, 2), source="data.npy", name="toy")
        mlflow.log_input(dataset, context="training")
    exp = mlflow.get_experiment_by_name("plugin-e2e")

    g = branch_client(repo)
    run = g.get_run(parent.info.run_id)
    assert run.info.status == "FINISHED" and run.info.run_name == "parent"
    assert run.data.params == {"alpha": "0.5", "layers": "3"}
    assert run.data.tags["team"] == "a" and run.data.tags["mlflow.note.content"] == "the parent"
    assert [m.value for m in g.get_metric_history(run.info.run_id, "loss")] == [1.0, 0.5, 1 / 3, 0.25, 0.2]
    assert math.isnan(run.data.metrics["nan"]) and run.data.metrics["inf"] == math.inf
    assert run.data.metrics["ninf"] == -math.inf
    assert g.read_artifact(run.info.run_id, "notes/hello.txt") == b"hello"
    assert sorted(f.path for f in g.list_artifacts(run.info.run_id)) == ["config.json", "notes"]
    assert [d.dataset.name for d in run.inputs.dataset_inputs] == ["toy"]
    kid = g.get_run(child.info.run_id)
    assert kid.data.tags["mlflow.parentRunId"] == parent.info.run_id and kid.info.experiment_id == exp.experiment_id
    # gitexp's own search and the CLI see them like any run.
    found = g.search_runs([exp.experiment_id], "params.alpha = '0.5' and metrics.loss < 0.3")
    assert [r.info.run_id for r in found] == [parent.info.run_id]
    out = subprocess.run([sys.executable, "-m", "gitexp", "runs", "list", "-C", str(repo), "-e", "plugin-e2e"],
                         capture_output=True, text=True, check=True).stdout
    assert "parent" in out and "child" in out


def test_mlflow_reads_what_gitexp_wrote(repo):
    exp_id = gitexp.create_experiment("from-gitexp")
    with gitexp.start_run(experiment_id=exp_id, run_name="native") as run:
        gitexp.log_param("p", "1")
        gitexp.log_metric("m", 2.5, step=3)
        gitexp.log_text("body", "a/b.txt")
    gitexp.flush()
    client = MlflowClient()
    got = client.get_run(run.info.run_id)
    assert got.data.params == {"p": "1"} and got.data.metrics == {"m": 2.5}
    assert [(m.step, m.value) for m in client.get_metric_history(run.info.run_id, "m")] == [(3, 2.5)]
    assert mlflow.artifacts.load_text(f"runs:/{run.info.run_id}/a/b.txt") == "body"
    assert [f.path for f in client.list_artifacts(run.info.run_id, "a")] == ["a/b.txt"]
    df = mlflow.search_runs([exp_id])
    assert list(df["run_id"]) == [run.info.run_id] and df["metrics.m"][0] == 2.5


def test_client_calls_search_grammar_and_paging(repo):
    client = MlflowClient()
    exp_id = client.create_experiment("paging", tags={"k": "v"})
    ids = []
    for i in range(7):
        run = client.create_run(exp_id, run_name=f"r{i}", tags={"i": str(i)})
        client.log_batch(run.info.run_id, metrics=[Metric("score", i / 10, 0, 0)],
                         params=[Param("depth", str(i % 3))], tags=[RunTag("even", str(i % 2 == 0).lower())])
        client.set_terminated(run.info.run_id)
        ids.append(run.info.run_id)
    page1 = client.search_runs([exp_id], "params.depth != '0' and tags.even = 'true'",
                               order_by=["metrics.score DESC"], max_results=1)
    page2 = client.search_runs([exp_id], "params.depth != '0' and tags.even = 'true'",
                               order_by=["metrics.score DESC"], max_results=1, page_token=page1.token)
    assert [r.info.run_name for r in page1] == ["r4"] and [r.info.run_name for r in page2] == ["r2"]
    assert page2.token is None
    assert [r.info.run_name for r in client.search_runs([exp_id], "attributes.run_name LIKE 'r%' and "
                                                        "metrics.score >= 0.5", order_by=["run_name"])] \
        == ["r5", "r6"]
    with pytest.raises(MlflowException, match="nope") as err:
        client.search_runs([exp_id], "params.depth nope 1")
    assert err.value.error_code == "INVALID_PARAMETER_VALUE"
    client.delete_run(ids[0])
    assert len(client.search_runs([exp_id])) == 6
    client.restore_run(ids[0])
    assert client.get_experiment(exp_id).tags["k"] == "v"
    exps = client.search_experiments(filter_string="name = 'paging'")
    assert [e.experiment_id for e in exps] == [exp_id]
    with pytest.raises(MlflowException) as missing:
        client.get_run("0" * 32)
    assert missing.value.error_code == "RESOURCE_DOES_NOT_EXIST"


def test_environment_variable_and_branch_option(repo, monkeypatch):
    mlflow.set_tracking_uri(None)
    monkeypatch.setenv("MLFLOW_TRACKING_URI", uri_of(repo, "sweeps"))
    with mlflow.start_run(run_name="on-sweeps") as run:
        mlflow.log_metric("x", 1.0)
    assert "gitexp" not in git("branch", "--list", cwd=repo)  # the default branch was never written
    assert "sweeps" in git("branch", "--list", cwd=repo)
    monkeypatch.setenv("GITEXP_BRANCH", "sweeps")
    assert branch_client(repo).get_run(run.info.run_id).data.metrics == {"x": 1.0}


def test_unsupported_mlflow_features_fail_clearly(repo):
    with pytest.raises(MlflowException, match="GenAI") as err:
        MlflowClient()._tracking_client.store.rest._call_endpoint(
            __import__("mlflow.protos.service_pb2", fromlist=["x"]).SearchTraces, "{}")
    assert err.value.error_code == "ENDPOINT_NOT_FOUND"
    with mlflow.start_run() as run:
        pass
    with pytest.raises(MlflowException, match="does not delete artifacts"):
        mlflow.artifacts.get_artifact_repository(run.info.artifact_uri).delete_artifacts()


# -- models and the registry --------------------------------------------------------------------
def test_sklearn_model_registry_and_logged_models(repo):
    X = np.array([[0.0], [1.0], [2.0], [3.0]])
    y = np.array([0, 0, 1, 1])
    model = LogisticRegression().fit(X, y)
    mlflow.set_experiment("models")
    with mlflow.start_run():
        info = mlflow.sklearn.log_model(model, name="clf", registered_model_name="churn", input_example=X[:2])
    client = MlflowClient()
    client.set_registered_model_alias("churn", "champion", "1")
    client.set_model_version_tag("churn", "1", "validated", "yes")
    client.transition_model_version_stage("churn", "1", "Staging")
    client.update_registered_model("churn", description="the churn model")
    for uri in (info.model_uri, "models:/churn/1",
                "models:/churn@champion", "models:/churn/Staging"):
        loaded = mlflow.pyfunc.load_model(uri)
        assert list(loaded.predict(X)) == list(model.predict(X)), uri
    assert list(mlflow.sklearn.load_model("models:/churn@champion").predict(X)) == list(model.predict(X))
    versions = client.search_model_versions("name = 'churn' and tags.validated = 'yes'")
    assert [v.version for v in versions] == ["1"]
    assert mlflow.last_logged_model().model_id == info.model_id

    g = branch_client(repo)
    mv = g.get_model_version("churn", "1")
    assert mv.current_stage == "Staging" and mv.tags == {"validated": "yes"} and "champion" in mv.aliases
    assert g.get_registered_model("churn").description == "the churn model"
    logged = g.get_logged_model(info.model_id)
    assert logged.source_run_id == info.run_id and logged.name == "clf"
    # gitexp's own loader reads the model MLflow wrote.
    assert list(gitexp.pyfunc.load_model("models:/churn@champion").predict(X)) == list(model.predict(X))


# -- code versions (the run context provider) ----------------------------------------------------
def test_runs_record_the_code_with_its_uncommitted_diff(repo):
    (repo / "train.py").write_text("print('tuned')\n")
    with mlflow.start_run() as run:
        pass
    g = branch_client(repo)
    tags = g.get_run(run.info.run_id).data.tags
    assert tags["mlflow.source.git.commit"] == git("rev-parse", "HEAD", cwd=repo).strip()
    assert tags["mlflow.source.git.dirty"] == "true" and tags["mlflow.source.git.branch"] == "main"
    assert "+print('tuned')" in g.get_run_code_diff(run.info.run_id)


def test_runs_into_another_store_keep_their_diff_in_the_repository(repo, tmp_path):
    (repo / "train.py").write_text("print('elsewhere')\n")
    mlflow.set_tracking_uri(f"sqlite:///{tmp_path / 'mlflow.db'}")
    with mlflow.start_run() as run:
        pass
    tags = MlflowClient().get_run(run.info.run_id).data.tags
    assert tags["mlflow.source.git.dirty"] == "true"
    blob = tags["gitexp.code.patch"]
    assert "+print('elsewhere')" in git("show", blob, cwd=repo)
    assert git("for-each-ref", "--format=%(refname)", "refs/gitexp/patches/", cwd=repo).split() == \
        [f"refs/gitexp/patches/{blob}"]


# -- sharing -------------------------------------------------------------------------------------
def test_runs_logged_through_mlflow_in_two_clones_merge(repo, tmp_path):
    remote = tmp_path / "remote.git"
    git("init", "-q", "--bare", str(remote), cwd=tmp_path)
    git("remote", "add", "origin", str(remote), cwd=repo)
    git("push", "-q", "origin", "main", cwd=repo)
    other = tmp_path / "other"
    git("clone", "-q", str(remote), str(other), cwd=tmp_path)
    ids = []
    for path in (repo, other):
        mlflow.set_tracking_uri(uri_of(path))
        with mlflow.start_run(run_name=path.name) as run:
            mlflow.log_metric("m", 1.0)
        ids.append(run.info.run_id)
        mlflow.flush_async_logging()
        reset_gitexp()
        gitexp.Client(str(path)).sync("origin")
    reset_gitexp()
    gitexp.Client(str(repo)).sync("origin")
    mlflow.set_tracking_uri(uri_of(repo))
    names = {r.info.run_name for r in MlflowClient().search_runs(["0"])}
    assert names == {"repo", "other"}


def test_artifact_repository_at_the_repository_root_has_runs_and_the_shared_area(repo, tmp_path):
    """What `mlflow server --artifacts-destination gitexp:///repo` does with the proxy's paths: a run's
    path is the run's artifact, any other path a file of the shared area -- as in gitexp server."""
    from mlflow.store.artifact.artifact_repository_registry import get_artifact_repository

    with mlflow.start_run() as run:
        pass
    (tmp_path / "notes.txt").write_text("for everyone")
    root = get_artifact_repository(uri_of(repo))
    root.log_artifact(str(tmp_path / "notes.txt"), "team/docs")
    root.log_artifact(str(tmp_path / "notes.txt"), f"0/{run.info.run_id}/artifacts/mine")
    assert [(f.path, f.is_dir) for f in root.list_artifacts("team")] == [("team/docs", True)]
    assert [f.path for f in root.list_artifacts("team/docs")] == ["team/docs/notes.txt"]
    assert root.list_artifacts("team/docs/notes.txt") == []  # a file lists as nothing (MLflow's repositories)
    (tmp_path / "dl").mkdir()
    got = root.download_artifacts("team/docs/notes.txt", str(tmp_path / "dl"))
    assert open(got).read() == "for everyone"
    g = branch_client(repo)
    assert [f.path for f in g.list_shared_artifacts("team/docs")] == ["team/docs/notes.txt"]
    assert g.read_artifact(run.info.run_id, "mine/notes.txt") == b"for everyone"


def test_mlflow_finds_the_plugin_through_its_entry_points():
    from importlib.metadata import entry_points

    from mlflow.store.artifact.artifact_repository_registry import _artifact_repository_registry
    from mlflow.tracking._model_registry.utils import _get_store_registry
    from mlflow.tracking._tracking_service.utils import _tracking_store_registry
    from mlflow.tracking.context.registry import _run_context_provider_registry

    groups = ("mlflow.tracking_store", "mlflow.model_registry_store", "mlflow.artifact_repository",
              "mlflow.run_context_provider")
    loaded = {g: [ep.load() for ep in entry_points(group=g) if ep.name == "gitexp"] for g in groups}
    assert all(len(found) == 1 for found in loaded.values()), loaded
    assert _tracking_store_registry.get_store_builder("gitexp:") is loaded["mlflow.tracking_store"][0]
    assert _get_store_registry().get_store_builder("gitexp:") is loaded["mlflow.model_registry_store"][0]
    assert _artifact_repository_registry.get_registered_artifact_repositories()["gitexp"] \
        is loaded["mlflow.artifact_repository"][0]
    assert any(type(p) is loaded["mlflow.run_context_provider"][0] for p in _run_context_provider_registry)
