"""The real, unmodified mlflow client against `gitexp server`; then gitexp reads the branch directly.

One server process (a real uvicorn on a free loopback port) serves the whole
module; each test uses its own experiment.  Reads "straight from the branch"
use a fresh gitexp.Client in this process, which shares nothing with the server
process but the repository.
"""

from __future__ import annotations

import json
import math
import time

import pytest

from tests.conftest import require_mlflow

mlflow = require_mlflow()
import fastapi  # noqa: E402, F401  (a dev dependency: missing, the test fails loudly)
from mlflow import MlflowClient  # noqa: E402
from mlflow.entities import Metric as MlflowMetric  # noqa: E402
from mlflow.entities import Param as MlflowParam  # noqa: E402
from mlflow.entities import RunTag as MlflowRunTag  # noqa: E402
from mlflow.exceptions import MlflowException  # noqa: E402

import gitexp  # noqa: E402
from tests.conftest import make_repo, reset_gitexp  # noqa: E402
from tests.server_process import ServerProcess  # noqa: E402


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    repo = make_repo(tmp_path_factory.mktemp("served") / "repo")
    # A small large-file threshold sends bigger uploads through the external artifact store too.
    srv = ServerProcess(repo, env={"GITEXP_ARTIFACT_THRESHOLD": "64k"})
    yield srv
    log = srv.stop()
    assert "Traceback" not in log, log[-5000:]


@pytest.fixture
def url(server, monkeypatch):
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "0")  # a 5xx must fail the test, not be retried
    monkeypatch.setenv("MLFLOW_DISABLE_TELEMETRY", "true")
    # mlflow.set_tracking_uri / set_experiment export these; undo them for the tests that follow.
    monkeypatch.setenv("MLFLOW_TRACKING_URI", server.url)
    monkeypatch.setenv("MLFLOW_EXPERIMENT_ID", "0")
    mlflow.set_tracking_uri(server.url)
    yield server.url
    while mlflow.active_run():
        mlflow.end_run()
    mlflow.tracking.fluent._active_experiment_id = None
    mlflow.set_tracking_uri(None)


def branch(server) -> gitexp.Client:
    """A gitexp client reading the served repository directly (not through the server)."""
    reset_gitexp()
    return gitexp.Client(str(server.repo))


def eventually(check, timeout: float = 20.0):
    """check() once the server's checkpoint has committed what it needs (changes to a finished run
    reach the branch at the next checkpoint, every 0.5 s in these tests); returns its result."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            return check()
        except (AssertionError, KeyError, gitexp.MlflowException):
            if time.monotonic() > deadline:
                raise
            time.sleep(0.2)


def test_fluent_tracking_lands_on_the_branch(server, url, tmp_path):
    exp = mlflow.set_experiment("fluent")
    assert exp.artifact_location == f"mlflow-artifacts:/{exp.experiment_id}"
    (tmp_path / "notes.txt").write_text("hello from mlflow")
    with mlflow.start_run(run_name="first") as run:
        mlflow.log_param("alpha", 0.5)
        mlflow.log_params({"beta": 1, "gamma": "x"})
        mlflow.log_metric("loss", 0.3, step=1)
        mlflow.log_metrics({"loss": 0.2, "acc": 0.9}, step=2)
        mlflow.log_metric("odd", float("nan"))
        mlflow.set_tag("team", "ml")
        mlflow.set_tags({"stage": "dev"})
        mlflow.log_artifact(str(tmp_path / "notes.txt"))
        mlflow.log_artifact(str(tmp_path / "notes.txt"), artifact_path="docs")
        mlflow.log_dict({"layers": [1, 2]}, "config/model.json")
        mlflow.log_text("plain", "t.txt")
    run_id = run.info.run_id
    assert run.info.artifact_uri == f"mlflow-artifacts:/{exp.experiment_id}/{run_id}/artifacts"

    got = MlflowClient().get_run(run_id)
    assert got.info.status == "FINISHED" and got.info.run_name == "first"
    assert got.data.params == {"alpha": "0.5", "beta": "1", "gamma": "x"}
    assert got.data.metrics["loss"] == 0.2 and math.isnan(got.data.metrics["odd"])
    assert got.data.tags["team"] == "ml" and got.data.tags["stage"] == "dev"
    listed = {f.path: f for f in MlflowClient().list_artifacts(run_id)}
    assert set(listed) == {"notes.txt", "docs", "config", "t.txt"} and listed["notes.txt"].file_size == 17
    assert mlflow.artifacts.load_dict(f"runs:/{run_id}/config/model.json") == {"layers": [1, 2]}

    local = branch(server)
    r = local.get_run(run_id)
    assert r.info.experiment_id == exp.experiment_id and r.info.status == "FINISHED"
    assert r.data.params == {"alpha": "0.5", "beta": "1", "gamma": "x"}
    assert [(m.step, m.value) for m in local.get_metric_history(run_id, "loss")] == [(1, 0.3), (2, 0.2)]
    assert math.isnan(r.data.metrics["odd"])
    assert r.data.tags["team"] == "ml" and r.data.tags["mlflow.runName"] == "first"
    assert r.data.tags["mlflow.user"] == r.info.user_id  # the client's user, not the server's
    assert local._artifacts.read_bytes(run_id, "docs/notes.txt") == b"hello from mlflow"
    assert json.loads(local._artifacts.read_bytes(run_id, "config/model.json")) == {"layers": [1, 2]}
    assert local.get_experiment(exp.experiment_id).name == "fluent"


def test_client_batches_history_and_search(server, url):
    client = MlflowClient()
    exp_id = client.create_experiment("batches", tags={"project": "p1"})
    ids = []
    for i in range(3):
        run = client.create_run(exp_id, run_name=f"r{i}", tags={"i": str(i)})
        ts = int(time.time() * 1000)
        client.log_batch(run.info.run_id,
                         metrics=[MlflowMetric("rmse", 1.0 / (i + 1) + s, ts + s, s) for s in range(5)],
                         params=[MlflowParam("lr", str(0.1 * (i + 1))), MlflowParam("depth", str(i))],
                         tags=[MlflowRunTag("kind", "even" if i % 2 == 0 else "odd")])
        client.set_terminated(run.info.run_id)
        ids.append(run.info.run_id)

    history = client.get_metric_history(ids[1], "rmse")
    assert [(m.step, m.value) for m in history] == [(s, 0.5 + s) for s in range(5)]
    found = client.search_runs([exp_id], "tags.kind = 'even' and params.depth != '0'",
                               order_by=["metrics.rmse DESC"])
    assert [r.info.run_id for r in found] == [ids[2]]
    ordered = client.search_runs([exp_id], order_by=["params.lr DESC"], max_results=2)
    assert [r.info.run_id for r in ordered] == [ids[2], ids[1]] and ordered.token
    rest = client.search_runs([exp_id], order_by=["params.lr DESC"], max_results=2, page_token=ordered.token)
    assert [r.info.run_id for r in rest] == [ids[0]]
    df = mlflow.search_runs([exp_id], order_by=["metrics.rmse ASC"])
    assert list(df["run_id"]) == [ids[2], ids[1], ids[0]]
    assert list(df["metrics.rmse"]) == [1 / 3 + 4, 0.5 + 4, 1.0 + 4] and set(df["params.depth"]) == {"0", "1", "2"}
    exps = client.search_experiments(filter_string="tags.project = 'p1'")
    assert [e.name for e in exps] == ["batches"]

    client.delete_run(ids[0])
    assert [r.info.run_id for r in client.search_runs([exp_id], order_by=["params.lr DESC"])] == ids[:0:-1]
    deleted = client.search_runs([exp_id], run_view_type=2)
    assert [r.info.run_id for r in deleted] == [ids[0]]
    client.restore_run(ids[0])
    client.set_tag(ids[0], "later", "yes")
    client.delete_tag(ids[0], "i")
    client.rename_experiment(exp_id, "batches-renamed")

    local = branch(server)
    assert local.get_experiment(exp_id).name == "batches-renamed"
    assert [m.value for m in local.get_metric_history(ids[2], "rmse")] == [1 / 3 + s for s in range(5)]

    def first_run_edited():
        first = branch(server).get_run(ids[0])
        assert first.info.lifecycle_stage == "active" and first.data.tags["later"] == "yes"
        assert "i" not in first.data.tags
    eventually(first_run_edited)
    assert len(branch(server).search_runs([exp_id])) == 3


def test_errors_have_mlflow_codes_and_messages(server, url):
    client = MlflowClient()
    exp_id = client.create_experiment("errors")
    with pytest.raises(MlflowException) as exc:
        client.create_experiment("errors")
    assert exc.value.error_code == "RESOURCE_ALREADY_EXISTS" and "errors" in exc.value.message
    with pytest.raises(MlflowException) as exc:
        client.get_run("0" * 32)
    assert exc.value.error_code == "RESOURCE_DOES_NOT_EXIST" and "0" * 32 in exc.value.message
    run = client.create_run(exp_id)
    # (The mlflow client splits big batches itself; the server's batch limits are tested over raw HTTP.)
    client.log_param(run.info.run_id, "lr", "0.1")
    with pytest.raises(MlflowException) as exc:
        client.log_param(run.info.run_id, "lr", "0.2")
    assert exc.value.error_code == "INVALID_PARAMETER_VALUE" and "0.1" in exc.value.message
    with pytest.raises(MlflowException) as exc:
        client.search_runs([exp_id], "metrics.x >>> 1")
    assert exc.value.error_code == "INVALID_PARAMETER_VALUE"
    with pytest.raises(MlflowException) as exc:
        client.get_registered_model("no-such-model")
    assert exc.value.error_code == "RESOURCE_DOES_NOT_EXIST"


def test_registry_with_stages_and_aliases(server, url):
    client = MlflowClient()
    exp_id = client.create_experiment("registry")
    run = client.create_run(exp_id)
    client.set_terminated(run.info.run_id)
    client.create_registered_model("churn", tags={"team": "ml"}, description="churn model")
    v1 = client.create_model_version("churn", f"runs:/{run.info.run_id}/model", run.info.run_id)
    v2 = client.create_model_version("churn", f"runs:/{run.info.run_id}/model", run.info.run_id,
                                     tags={"quality": "good"}, description="second")
    assert (v1.version, v2.version) == ("1", "2")
    client.transition_model_version_stage("churn", "1", "Production")
    client.transition_model_version_stage("churn", "2", "Production", archive_existing_versions=True)
    client.set_registered_model_alias("churn", "champion", "2")
    client.set_registered_model_alias("churn", "old", "1")
    client.delete_registered_model_alias("churn", "old")
    client.set_model_version_tag("churn", "1", "note", "first")
    client.set_registered_model_tag("churn", "owner", "alice")
    client.update_model_version("churn", "1", description="first one")

    assert client.get_model_version_by_alias("churn", "champion").version == "2"
    latest = client.get_latest_versions("churn", stages=["Production"])
    assert [v.version for v in latest] == ["2"]
    assert client.get_model_version("churn", "1").current_stage == "Archived"
    model = client.get_registered_model("churn")
    assert model.aliases == {"champion": "2"} and model.tags == {"team": "ml", "owner": "alice"}
    assert [m.name for m in client.search_registered_models("name LIKE 'chu%'")] == ["churn"]
    assert {v.version for v in client.search_model_versions("name = 'churn'")} == {"1", "2"}
    assert client.get_model_version_download_uri("churn", "2") == f"runs:/{run.info.run_id}/model"
    client.rename_registered_model("churn", "churn-v2")
    client.delete_model_version_tag("churn-v2", "1", "note")
    with pytest.raises(MlflowException) as exc:
        client.get_model_version_by_alias("churn-v2", "nope")
    assert exc.value.error_code == "INVALID_PARAMETER_VALUE"

    local = branch(server)
    mv = local.get_model_version_by_alias("churn-v2", "champion")
    assert (mv.version, mv.current_stage, mv.tags) == (2, "Production", {"quality": "good"})
    assert local.get_model_version("churn-v2", 1).description == "first one"
    assert local.get_model_version("churn-v2", 1).tags == {}
    assert [e.action for e in local.get_registered_model_history("churn-v2")][:2] == ["create_model", "create_version"]


def test_sklearn_log_model_then_pyfunc_load_model(server, url):
    import numpy as np
    from sklearn.linear_model import LogisticRegression

    X = np.random.RandomState(0).rand(40, 3)
    y = (X[:, 0] > 0.5).astype(int)
    model = LogisticRegression().fit(X, y)
    mlflow.set_experiment("models")
    with mlflow.start_run() as run:
        info = mlflow.sklearn.log_model(model, name="model", input_example=X[:2],
                                        registered_model_name="classifier")
    expected = model.predict(X[:5])
    assert info.model_uri == f"models:/{info.model_id}"
    assert list(mlflow.pyfunc.load_model(info.model_uri).predict(X[:5])) == list(expected)
    assert list(mlflow.pyfunc.load_model(f"runs:/{run.info.run_id}/model").predict(X[:5])) == list(expected)
    MlflowClient().set_registered_model_alias("classifier", "champion", info.registered_model_version)
    assert list(mlflow.pyfunc.load_model("models:/classifier@champion").predict(X[:5])) == list(expected)
    logged = MlflowClient().get_logged_model(info.model_id)
    assert logged.status.name == "READY" and logged.source_run_id == run.info.run_id
    # The MLflow 2 way: register the run's model directory.
    second = mlflow.register_model(f"runs:/{run.info.run_id}/model", "classifier")
    assert second.version == "2" and second.source == f"runs:/{run.info.run_id}/model"
    assert list(mlflow.pyfunc.load_model("models:/classifier/2").predict(X[:5])) == list(expected)

    # gitexp loads the same model straight from the branch, by every URI.
    local = branch(server)
    gitexp.set_tracking_uri(str(server.repo))
    for uri in (f"runs:/{run.info.run_id}/model", info.model_uri, "models:/classifier@champion"):
        loaded = gitexp.pyfunc.load_model(uri)
        assert list(loaded.predict(X[:5])) == list(expected), uri
    assert local.get_logged_model(info.model_id).artifact_location == f"runs:/{run.info.run_id}/model"
    assert local.get_model_version("classifier", 1).model_id == info.model_id


def test_log_model_outside_a_run_keeps_its_files_in_a_holder_run(server, url):
    import numpy as np
    from sklearn.linear_model import LinearRegression

    X = np.arange(20, dtype=float).reshape(10, 2)
    model = LinearRegression().fit(X, X[:, 0])
    exp = mlflow.set_experiment("runless")
    info = mlflow.sklearn.log_model(model, name="tree")
    assert mlflow.active_run() is None
    assert [round(v, 6) for v in mlflow.pyfunc.load_model(info.model_uri).predict(X[:3])] == [0.0, 2.0, 4.0]
    found = MlflowClient().search_logged_models([exp.experiment_id], filter_string="name = 'tree'")
    assert [m.model_id for m in found] == [info.model_id] and not found[0].source_run_id

    local = branch(server)
    holder = [r for r in local.search_runs([exp.experiment_id])
              if r.data.tags.get("gitexp.loggedModelId") == info.model_id]
    assert len(holder) == 1 and holder[0].info.status == "FINISHED"
    assert {f.path for f in local.list_artifacts(holder[0].info.run_id, "tree")} >= {"tree/MLmodel"}


def test_large_artifacts_go_through_the_proxy_to_the_large_file_store(server, url, tmp_path):
    data = bytes(range(256)) * 1024  # 256 KiB, above the server's 64k threshold
    (tmp_path / "weights.bin").write_bytes(data)
    mlflow.set_experiment("large")
    with mlflow.start_run() as run:
        mlflow.log_artifact(str(tmp_path / "weights.bin"), "blobs")
    out = mlflow.artifacts.download_artifacts(f"runs:/{run.info.run_id}/blobs/weights.bin",
                                              dst_path=str(tmp_path / "out"))
    assert open(out, "rb").read() == data
    local = branch(server)
    assert local._artifacts.read_bytes(run.info.run_id, "blobs/weights.bin") == data
    tree = local._store.branch.run_tree(run.info.run_id)
    pointer = local._store.branch.odb.lookup(tree, "artifacts/blobs/weights.bin")
    assert local._store.branch.odb.read_blob(pointer.sha).startswith(b"gitexp-artifact-pointer v1")


def test_a_run_that_is_never_ended_is_committed_by_the_checkpoint(server, url):
    client = MlflowClient()
    exp_id = client.create_experiment("unfinished")
    run = client.create_run(exp_id)
    client.log_metric(run.info.run_id, "progress", 0.25, step=1)
    client.log_param(run.info.run_id, "p", "v")

    def committed():
        state = branch(server).get_run(run.info.run_id)
        assert state.data.metrics["progress"] == 0.25 and state.data.params == {"p": "v"}
        return state
    assert eventually(committed).info.status == "RUNNING"


def test_datasets_logged_as_inputs(server, url):
    import pandas as pd

    df = pd.DataFrame({"a": [1, 2, 3], "b": [0.1, 0.2, 0.3]})
    dataset = mlflow.data.from_pandas(df, name="toy")
    mlflow.set_experiment("inputs")
    with mlflow.start_run() as run:
        mlflow.log_input(dataset, context="training")
    got = MlflowClient().get_run(run.info.run_id).inputs.dataset_inputs
    assert [(d.dataset.name, d.dataset.digest) for d in got] == [("toy", dataset.digest)]
    local = branch(server).get_run(run.info.run_id).inputs.dataset_inputs
    assert local[0].dataset.name == "toy" and local[0].dataset.digest == dataset.digest
    assert {t.key: t.value for t in local[0].tags} == {"mlflow.data.context": "training"}
    assert json.loads(local[0].dataset.schema)["mlflow_colspec"][0]["name"] == "a"
