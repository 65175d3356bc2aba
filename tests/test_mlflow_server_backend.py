"""MLflow's own server over a git repository: `mlflow server --backend-store-uri gitexp:///repo`.

A real `python -m mlflow server` (uvicorn, one worker, a free loopback port) whose tracking and
registry stores and artifact destination are the gitexp plugin; the real mlflow client talks
to it over HTTP; then gitexp reads the repository directly (a fresh Client in this process,
the CLI in another), sharing nothing with the server but the repository.
"""

from __future__ import annotations

import json
import subprocess
import sys
import urllib.error
import urllib.request
from pathlib import Path

import pytest

from tests.conftest import require_mlflow

mlflow = require_mlflow("mlflow.sklearn", "mlflow.pyfunc")
import numpy as np  # noqa: E402
from mlflow import MlflowClient  # noqa: E402
from sklearn.linear_model import LogisticRegression  # noqa: E402

import gitexp  # noqa: E402
from tests.conftest import git, make_repo, reset_gitexp  # noqa: E402
from tests.server_process import ServedProcess, free_port  # noqa: E402


class MlflowServer(ServedProcess):
    """`python -m mlflow server` over a repository (the plugin's stores and artifact repository)."""

    name = "mlflow server"

    def __init__(self, repo: Path, *extra: str, wait: bool = True, destination: bool = True) -> None:
        self.repo = repo
        self.cwd = repo.parent  # where MLflow would put ./mlartifacts or ./mlruns
        port = free_port()
        uri = f"gitexp://{repo.as_posix()}" if repo.as_posix().startswith("/") else f"gitexp:///{repo.as_posix()}"
        super().__init__([sys.executable, "-m", "mlflow", "server", "--backend-store-uri", uri,
                          *(["--artifacts-destination", uri] if destination else []),
                          "--host", "127.0.0.1", "--port", str(port), *extra],
                         self.cwd, port=port, cwd=self.cwd, wait=wait, timeout=120, group=True,
                         env={"GITEXP_CHECKPOINT_INTERVAL": "0.5", "MLFLOW_DISABLE_TELEMETRY": "true"})


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    repo = make_repo(tmp_path_factory.mktemp("mlflow-served") / "repo")
    srv = MlflowServer(repo, "--workers", "1")
    yield srv
    log = srv.stop()
    # While serving, no error; on Ctrl-C uvicorn itself may print a KeyboardInterrupt traceback.
    served = log.split("Shutting down")[0]
    assert "Traceback" not in served and " ERROR " not in served, served[-5000:]
    assert "Shutting down" in log, log[-3000:]
    assert "not to the repository" not in log


@pytest.fixture
def url(server, monkeypatch):
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "0")  # a 5xx must fail the test, not be retried
    monkeypatch.setenv("MLFLOW_DISABLE_TELEMETRY", "true")
    monkeypatch.setenv("MLFLOW_TRACKING_URI", server.url)
    monkeypatch.delenv("MLFLOW_EXPERIMENT_ID", raising=False)
    monkeypatch.delenv("MLFLOW_EXPERIMENT_NAME", raising=False)
    mlflow.set_tracking_uri(server.url)
    yield server.url
    while mlflow.active_run():
        mlflow.end_run()
    mlflow.tracking.fluent._active_experiment_id = None
    mlflow.set_tracking_uri(None)


def branch(server: MlflowServer) -> gitexp.Client:
    """A gitexp client reading the served repository directly (not through the server)."""
    reset_gitexp()
    return gitexp.Client(str(server.repo))


def on_branch(server: MlflowServer, path: str) -> bytes:
    """A file of the tracking branch, as git has it."""
    return subprocess.run(["git", "show", f"gitexp:.tracking/{path}"], cwd=server.repo, capture_output=True,
                          check=True).stdout


def get_json(url: str, path: str) -> dict:
    with urllib.request.urlopen(url + path, timeout=30) as resp:
        assert resp.status == 200, path
        return json.loads(resp.read())


def post_json(url: str, path: str, body: dict) -> dict:
    request = urllib.request.Request(url + path, data=json.dumps(body).encode(), method="POST",
                                     headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=30) as resp:
        assert resp.status == 200, path
        return json.loads(resp.read())


def test_tracking_lands_on_the_branch(server, url, tmp_path):
    exp_id = mlflow.create_experiment("sweep")
    mlflow.set_experiment("sweep")
    ids = []
    for i in range(5):
        with mlflow.start_run(run_name=f"trial-{i}") as run:
            mlflow.log_params({"lr": 0.1 * (i + 1), "depth": i, "kind": "odd" if i % 2 else "even"})
            for step in range(4):
                mlflow.log_metric("loss", 1.0 / (i + 1) + step, step=step)
            mlflow.log_metrics({"acc": i / 10, "f1": i / 20}, step=3)
            mlflow.set_tag("team", "a")
            note = tmp_path / "note.txt"
            note.write_text(f"trial {i}\n")
            mlflow.log_artifact(str(note), "notes")
            ids.append(run.info.run_id)
    client = MlflowClient()
    run = client.get_run(ids[2])
    assert run.data.params == {"lr": "0.30000000000000004", "depth": "2", "kind": "even"}
    assert run.data.metrics == {"loss": 1 / 3 + 3, "acc": 0.2, "f1": 0.1}
    assert run.info.artifact_uri == f"mlflow-artifacts:/{exp_id}/{ids[2]}/artifacts"  # the server's proxy
    assert [(f.path, f.is_dir) for f in client.list_artifacts(ids[2])] == [("notes", True)]
    assert [(f.path, f.file_size) for f in client.list_artifacts(ids[2], "notes")] == [("notes/note.txt", 8)]
    assert mlflow.artifacts.load_text(f"runs:/{ids[2]}/notes/note.txt") == "trial 2\n"
    assert [m.value for m in client.get_metric_history(ids[1], "loss")] == [0.5, 1.5, 2.5, 3.5]

    # search with a filter and paging
    query = "params.kind = 'even' and metrics.loss > 3.1"  # runs 0, 2 and 4
    first = client.search_runs([exp_id], query, max_results=2, order_by=["params.depth ASC"])
    assert [r.info.run_id for r in first] == [ids[0], ids[2]]
    rest = client.search_runs([exp_id], query, max_results=2, order_by=["params.depth ASC"], page_token=first.token)
    assert first.token and not rest.token
    assert [r.info.run_id for r in rest] == [ids[4]]
    assert len(mlflow.search_runs([exp_id], "tags.team = 'a'")) == 5

    # gitexp reads it all straight from the branch
    local = branch(server)
    assert local.get_experiment_by_name("sweep").experiment_id == exp_id
    found = {r.info.run_id: r for r in local.search_runs([exp_id])}
    assert sorted(found) == sorted(ids)
    assert found[ids[2]].data.params["kind"] == "even" and found[ids[2]].data.tags["team"] == "a"
    assert found[ids[2]].info.run_name == "trial-2" and found[ids[2]].info.status == "FINISHED"
    assert [(m.step, m.value) for m in local.get_metric_history(ids[3], "loss")] == [
        (s, 0.25 + s) for s in range(4)]
    assert local.read_artifact(ids[4], "notes/note.txt") == b"trial 4\n"
    # the artifact is a file of the tracking branch, not of MLflow's default ./mlartifacts
    assert on_branch(server, f"runs/{ids[4][:2]}/{ids[4]}/artifacts/notes/note.txt") == b"trial 4\n"
    assert not (server.cwd / "mlartifacts").exists() and not (server.cwd / "mlruns").exists()

    # and the CLI, in its own process
    listed = subprocess.run([sys.executable, "-m", "gitexp", "-C", str(server.repo), "runs", "list", "-e", "sweep",
                             "--format", "json"], capture_output=True, text=True, check=True).stdout
    rows = json.loads(listed)
    assert sorted(r["run_id"] for r in rows) == sorted(ids)


def test_models_and_registry(server, url):
    x = np.array([[0.0, 1.0], [1.0, 0.0], [1.0, 1.0], [0.0, 0.0]])
    y = np.array([0, 1, 1, 0])
    mlflow.set_experiment("models")
    with mlflow.start_run() as run:
        info = mlflow.sklearn.log_model(LogisticRegression().fit(x, y), name="model", registered_model_name="clf")
    expected = [0, 1, 1, 0]
    assert list(mlflow.sklearn.load_model(f"runs:/{run.info.run_id}/model").predict(x)) == expected
    assert list(mlflow.pyfunc.load_model(info.model_uri).predict(x)) == expected  # models:/<logged model id>

    client = MlflowClient()
    assert str(info.registered_model_version) == "1"
    client.set_registered_model_alias("clf", "champion", "1")
    with pytest.warns(FutureWarning, match="stages"):  # MLflow deprecates stages; gitexp keeps them
        client.transition_model_version_stage("clf", "1", "Production")
    for uri in ("models:/clf/1", "models:/clf@champion", "models:/clf/Production", "models:/clf/latest"):
        assert list(mlflow.sklearn.load_model(uri).predict(x)) == expected, uri
    version = client.get_model_version_by_alias("clf", "champion")
    assert (version.version, version.current_stage, version.run_id) == ("1", "Production", run.info.run_id)

    # straight from the branch: the registry, and the model's files
    local = branch(server)
    mv = local.get_model_version("clf", "1")
    assert mv.current_stage == "Production" and mv.aliases == ["champion"] and mv.run_id == run.info.run_id
    files = {f.path for f in local.list_artifacts(run.info.run_id, "model")}
    assert {"model/MLmodel", "model/requirements.txt"} <= files, files
    assert any(f.startswith("model/model.") for f in files), files  # model.skops in 3.17
    assert b"sklearn" in local.read_artifact(run.info.run_id, "model/MLmodel")
    logged = local.get_logged_model(info.model_id)
    assert logged.source_run_id == run.info.run_id


def test_mlflow_ui_over_the_repository(server, url, tmp_path):
    mlflow.set_experiment("ui")
    with mlflow.start_run() as run:
        mlflow.log_param("p", "1")
        for step in range(3):
            mlflow.log_metric("m", step * 2.0, step=step)
        mlflow.log_text("hello", "out/hello.txt")
    run_id, exp_id = run.info.run_id, run.info.experiment_id

    with urllib.request.urlopen(url + "/", timeout=30) as resp:
        page = resp.read().decode()
    assert resp.status == 200 and "<html" in page.lower() and "static-files" in page

    # The calls MLflow's UI makes for an experiment and a run page.
    ajax = "/ajax-api/2.0/mlflow"
    exps = post_json(url, f"{ajax}/experiments/search", {"max_results": 25})["experiments"]
    assert "ui" in {e["name"] for e in exps}
    assert get_json(url, f"{ajax}/experiments/get?experiment_id={exp_id}")["experiment"]["name"] == "ui"
    runs = post_json(url, f"{ajax}/runs/search", {"experiment_ids": [exp_id], "max_results": 50,
                                                 "run_view_type": "ACTIVE_ONLY"})["runs"]
    assert [r["info"]["run_id"] for r in runs] == [run_id]
    got = get_json(url, f"{ajax}/runs/get?run_id={run_id}")["run"]
    assert {p["key"]: p["value"] for p in got["data"]["params"]} == {"p": "1"}
    history = get_json(url, f"{ajax}/metrics/get-history?run_uuid={run_id}&metric_key=m")["metrics"]
    assert [m["value"] for m in history] == [0.0, 2.0, 4.0]
    bulk = get_json(url, f"{ajax}/metrics/get-history-bulk-interval?run_ids={run_id}&metric_key=m&max_results=320")
    assert [(m["step"], m["value"]) for m in bulk["metrics"]] == [(0, 0.0), (1, 2.0), (2, 4.0)]
    listed = get_json(url, f"{ajax}/artifacts/list?run_uuid={run_id}&path=out")["files"]
    assert listed == [{"path": "out/hello.txt", "is_dir": False, "file_size": 5}]
    with urllib.request.urlopen(f"{url}/get-artifact?path=out/hello.txt&run_uuid={run_id}", timeout=30) as resp:
        assert resp.read() == b"hello"
    MlflowClient().create_registered_model("ui-model", description="shown in the UI")
    models = get_json(url, f"{ajax}/registered-models/search?max_results=10&filter=name%3D%27ui-model%27")
    assert [(m["name"], m["description"]) for m in models["registered_models"]] == [("ui-model", "shown in the UI")]
    assert post_json(url, f"{ajax}/logged-models/search", {"experiment_ids": [exp_id]}) == {}  # none logged here


def test_several_workers_are_refused_before_starting(tmp_path):
    repo = make_repo(tmp_path / "repo")
    srv = MlflowServer(repo, wait=False, destination=False)  # MLflow's default: 4 uvicorn workers, ./mlartifacts
    try:
        assert srv.proc.wait(timeout=120) != 0
    finally:
        log = srv.stop()
    assert "needs a single worker process: add `--workers 1`" in log, log[-3000:]
    assert "Uvicorn running" not in log
    assert "run artifacts go to ./mlartifacts, not to the repository; to keep them on its tracking branch, " \
        "add --artifacts-destination gitexp://" in log, log[-3000:]
    assert git("branch", "--list", "gitexp", cwd=repo) == ""
