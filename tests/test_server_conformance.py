"""The conformance gaps of issue 15, each through the real mlflow client against a real `gitexp server`
process and, where the gap is not HTTP's, in-process through the MLflow plugin (a gitexp: URI);
where the data must be on the branch, a fresh gitexp Client reads the repository directly."""

from __future__ import annotations

import json
import urllib.error
import urllib.request

import pytest

from tests.conftest import require_mlflow

mlflow = require_mlflow()
import fastapi  # noqa: E402, F401  (a dev dependency: missing, the test fails loudly)
from mlflow import MlflowClient  # noqa: E402
from mlflow.entities import LoggedModelInput, LoggedModelOutput  # noqa: E402
from mlflow.exceptions import MlflowException  # noqa: E402

import gitexp  # noqa: E402
from tests.conftest import make_repo, reset_gitexp  # noqa: E402
from tests.server_process import ServerProcess  # noqa: E402


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    srv = ServerProcess(make_repo(tmp_path_factory.mktemp("conform") / "repo"))
    yield srv
    log = srv.stop()
    assert "Traceback" not in log, log[-5000:]


class Plugin:
    """The MLflow plugin over its own repository: what `server` is, without HTTP."""

    def __init__(self, repo):
        self.repo = repo
        self.url = f"gitexp://{repo.as_posix()}"


@pytest.fixture(scope="module")
def plugin(tmp_path_factory):
    return Plugin(make_repo(tmp_path_factory.mktemp("conform-plugin") / "repo"))


@pytest.fixture(params=["server", "plugin"])
def target(request):
    """The server, or the plugin: one MLflow semantics, two transports."""
    return request.getfixturevalue(request.param)


def _mlflow_client(url, monkeypatch):
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "0")
    monkeypatch.setenv("MLFLOW_DISABLE_TELEMETRY", "true")
    monkeypatch.setenv("MLFLOW_TRACKING_URI", url)
    mlflow.set_tracking_uri(url)
    yield MlflowClient(url)
    while mlflow.active_run():
        mlflow.end_run()
    mlflow.clear_active_model()  # the active model is process-wide: other modules use other servers
    mlflow.tracking.fluent._active_experiment_id = None
    mlflow.set_tracking_uri(None)


@pytest.fixture
def client(target, monkeypatch):
    yield from _mlflow_client(target.url, monkeypatch)


@pytest.fixture
def http_client(server, monkeypatch):
    yield from _mlflow_client(server.url, monkeypatch)


def branch(server) -> gitexp.Client:
    reset_gitexp()
    return gitexp.Client(str(server.repo))


def test_metrics_logged_with_a_model_id_are_the_models(target, client):
    exp = client.create_experiment("model-metrics")
    run = client.create_run(exp)
    model = client.create_logged_model(exp, source_run_id=run.info.run_id)
    client.log_metric(run.info.run_id, "acc", 0.9, step=1, model_id=model.model_id,
                      dataset_name="val", dataset_digest="abc")
    with mlflow.start_run(run_id=run.info.run_id), mlflow.set_active_model(model_id=model.model_id):
        mlflow.log_metrics({"loss": 0.25})
    found = client.get_logged_model(model.model_id).metrics
    by_key = {m.key: m for m in found}
    assert set(by_key) == {"acc", "loss"}
    assert (by_key["acc"].value, by_key["acc"].step, by_key["acc"].dataset_name, by_key["acc"].dataset_digest,
            by_key["acc"].run_id) == (0.9, 1, "val", "abc", run.info.run_id)
    assert by_key["loss"].model_id == model.model_id
    # ... and they are the run's metrics too, and on the branch for gitexp.
    assert client.get_run(run.info.run_id).data.metrics["acc"] == 0.9
    client.set_terminated(run.info.run_id)
    assert {m.key for m in branch(target).get_logged_model(model.model_id).metrics} == {"acc", "loss"}
    with pytest.raises(MlflowException, match="m-0000"):
        client.log_metric(run.info.run_id, "acc", 1.0, model_id="m-" + "0" * 32)


def test_model_inputs_and_outputs_of_runs(target, client):
    exp = client.create_experiment("model-io")
    maker, user = client.create_run(exp), client.create_run(exp)
    model = client.create_logged_model(exp, source_run_id=maker.info.run_id)
    client.log_inputs(user.info.run_id, models=[LoggedModelInput(model.model_id)])
    assert [m.model_id for m in client.get_run(user.info.run_id).inputs.model_inputs] == [model.model_id]
    # A run may record a model it did not create as its output (MLflow does).
    client.log_outputs(user.info.run_id, [LoggedModelOutput(model.model_id, step=3)])
    outputs = client.get_run(user.info.run_id).outputs.model_outputs
    assert [(m.model_id, m.step) for m in outputs] == [(model.model_id, 3)]
    assert [m.model_id for m in client.get_run(maker.info.run_id).outputs.model_outputs] == [model.model_id]
    client.set_terminated(user.info.run_id)
    local = branch(target).get_run(user.info.run_id)
    assert [m.model_id for m in local.inputs.model_inputs] == [model.model_id]


def test_search_logged_models_by_datasets(target, client):
    exp = client.create_experiment("model-search")
    run = client.create_run(exp)
    a = client.create_logged_model(exp, name="a", source_run_id=run.info.run_id)
    b = client.create_logged_model(exp, name="b", source_run_id=run.info.run_id)
    client.create_logged_model(exp, name="c")
    client.log_metric(run.info.run_id, "acc", 0.9, model_id=a.model_id, dataset_name="val", dataset_digest="1")
    client.log_metric(run.info.run_id, "acc", 0.5, model_id=b.model_id, dataset_name="test", dataset_digest="2")

    def names(**kw):
        return sorted(m.name for m in client.search_logged_models(experiment_ids=[exp], **kw))

    assert names(datasets=[{"dataset_name": "val"}]) == ["a"]
    assert names(datasets=[{"dataset_name": "val", "dataset_digest": "other"}]) == []
    assert names(filter_string="metrics.acc > 0.4") == ["a", "b"]
    assert names(filter_string="metrics.acc > 0.4", datasets=[{"dataset_name": "test"}]) == ["b"]
    ordered = client.search_logged_models(experiment_ids=[exp], filter_string="metrics.acc > 0",
                                          order_by=[{"field_name": "metrics.acc", "ascending": True}])
    assert [m.name for m in ordered] == ["b", "a"]


def test_registering_a_logged_model_tags_it_and_versions_have_empty_descriptions(target, client):
    exp = client.create_experiment("model-registry")
    run = client.create_run(exp)
    model = client.create_logged_model(exp, source_run_id=run.info.run_id)
    client.create_registered_model("conform-model")
    version = client.create_model_version("conform-model", model.model_uri, run_id=run.info.run_id,
                                          model_id=model.model_id)
    assert version.description == ""
    tag = client.get_logged_model(model.model_id).tags["mlflow.modelVersions"]
    assert json.loads(tag) == [{"name": "conform-model", "version": str(version.version)}]


def test_unknown_model_ids_do_not_exist_and_unknown_source_runs_are_recorded(target, client):
    with pytest.raises(MlflowException) as err:
        mlflow.set_active_model(model_id="1234")
    assert err.value.error_code == "RESOURCE_DOES_NOT_EXIST"
    assert "1234" in err.value.message
    exp = client.create_experiment("unknown-source")
    model = client.create_logged_model(exp, source_run_id="123")
    assert client.get_logged_model(model.model_id).source_run_id == "123"


def test_the_proxy_stores_shared_paths_and_honours_experiment_locations(server, http_client, tmp_path):
    client = http_client
    base = f"{server.url}/api/2.0/mlflow-artifacts/artifacts"
    put = urllib.request.Request(f"{base}/shared/a.txt", data=b"shared text", method="PUT",
                                 headers={"Content-Type": "application/octet-stream"})
    with urllib.request.urlopen(put) as resp:
        assert resp.status == 200
    with urllib.request.urlopen(f"{base}/shared/a.txt") as resp:
        assert resp.read() == b"shared text"
        assert resp.headers["Content-Type"].startswith("text/plain")
        assert resp.headers["X-Content-Type-Options"] == "nosniff"
    with urllib.request.urlopen(f"{base}?path=shared") as resp:
        assert json.loads(resp.read())["files"] == [{"path": "a.txt", "is_dir": False, "file_size": 11}]
    assert [f.path for f in branch(server).list_shared_artifacts("shared")] == ["shared/a.txt"]

    exp = client.create_experiment("team-located", artifact_location="mlflow-artifacts:/team-a/x")
    assert client.get_experiment(exp).artifact_location == "mlflow-artifacts:/team-a/x"
    run = client.create_run(exp)
    assert run.info.artifact_uri == f"mlflow-artifacts:/team-a/x/{run.info.run_id}/artifacts"
    (tmp_path / "model.json").write_text('{"k": 1}')
    client.log_artifact(run.info.run_id, str(tmp_path / "model.json"))
    assert [f.path for f in client.list_artifacts(run.info.run_id)] == ["model.json"]
    dst = client.download_artifacts(run.info.run_id, "model.json", str(tmp_path / "dl"))
    assert open(dst).read() == '{"k": 1}'
    client.set_terminated(run.info.run_id)
    # The file is the run's, on the branch.
    assert branch(server).read_artifact(run.info.run_id, "model.json") == b'{"k": 1}'
    with urllib.request.urlopen(f"{base}/team-a/x/{run.info.run_id}/artifacts/model.json") as resp:
        assert resp.headers["Content-Type"].startswith("text/plain")


def test_bulk_interval_history_is_served(server, http_client):
    client = http_client
    exp = client.create_experiment("bulk-interval")
    run = client.create_run(exp)
    for step in range(5):
        client.log_metric(run.info.run_id, "loss", 1.0 / (step + 1), step=step)
    url = (f"{server.url}/api/2.0/mlflow/metrics/get-history-bulk-interval?run_ids={run.info.run_id}"
           "&metric_key=loss&max_results=10")
    with urllib.request.urlopen(url) as resp:
        metrics = json.loads(resp.read())["metrics"]
    assert [m["step"] for m in metrics] == [0, 1, 2, 3, 4]
    assert all(m["run_id"] == run.info.run_id for m in metrics)


@pytest.mark.parametrize("path", ["/api/3.0/mlflow/traces", "/api/2.0/mlflow/gateway/routes",
                                  "/api/3.0/mlflow/datasets/create", "/api/3.0/mlflow/scorers/list",
                                  "/api/2.0/mlflow/webhooks"])
def test_genai_areas_answer_a_clear_404(server, path):
    with pytest.raises(urllib.error.HTTPError) as err:
        urllib.request.urlopen(server.url + path)
    assert err.value.code == 404
    assert json.loads(err.value.read())["error_code"] == "ENDPOINT_NOT_FOUND"
