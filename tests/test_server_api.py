"""MLflow's REST API 2.0 over raw HTTP: JSON shapes, error codes and statuses, limits, the artifact proxy.

Against a real `gitexp server` process; requests are written by hand, as any
non-Python MLflow client would send them.
"""

from __future__ import annotations

import fastapi  # noqa: F401  (a dev dependency: missing, the test fails loudly)
import httpx
import pytest

from tests.conftest import make_repo
from tests.server_process import ServerProcess

API = "/api/2.0/mlflow"


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    srv = ServerProcess(make_repo(tmp_path_factory.mktemp("api") / "served"))
    yield srv
    log = srv.stop()
    assert "Traceback" not in log, log[-5000:]


@pytest.fixture(scope="module")
def http(server):
    with httpx.Client(base_url=server.url, timeout=60) as client:
        yield client


def ok(resp) -> dict:
    assert resp.status_code == 200, resp.text
    return resp.json()


def failed(resp, status: int, code: str) -> str:
    assert (resp.status_code, resp.json()["error_code"]) == (status, code), resp.text
    return resp.json()["message"]


@pytest.fixture(scope="module")
def run_id(http) -> str:
    exp = ok(http.post(f"{API}/experiments/create", json={"name": "api", "tags": [{"key": "k", "value": "v"}]}))
    run = ok(http.post(f"{API}/runs/create", json={"experiment_id": exp["experiment_id"], "start_time": 1700000000000,
                                                    "user_id": "ada", "run_name": "shape",
                                                    "tags": [{"key": "team", "value": "ml"}]}))
    return run["run"]["info"]["run_id"]


def test_run_json_has_mlflow_shape(http, run_id):
    for value in (0.5, "NaN", "Infinity", "-Infinity"):
        ok(http.post(f"{API}/runs/log-metric", json={"run_id": run_id, "key": "m", "value": value,
                                                      "timestamp": "1700000000001", "step": 1}))
    ok(http.post(f"{API}/runs/log-parameter", json={"run_uuid": run_id, "key": "lr", "value": "0.1"}))
    run = ok(http.get(f"{API}/runs/get", params={"run_id": run_id}))["run"]
    info = run["info"]
    exp_id = info["experiment_id"]
    assert info == {"run_id": run_id, "run_uuid": run_id, "run_name": "shape", "experiment_id": exp_id,
                    "user_id": "ada", "status": "RUNNING", "start_time": 1700000000000,
                    "artifact_uri": f"mlflow-artifacts:/{exp_id}/{run_id}/artifacts", "lifecycle_stage": "active"}
    assert run["data"]["params"] == [{"key": "lr", "value": "0.1"}]
    assert {"key": "team", "value": "ml"} in run["data"]["tags"]
    # The latest value is MLflow's: largest step, then timestamp, then value.
    assert run["data"]["metrics"] == [{"key": "m", "value": "Infinity", "timestamp": 1700000000001, "step": 1}]
    history = ok(http.get(f"{API}/metrics/get-history", params={"run_id": run_id, "metric_key": "m"}))["metrics"]
    assert [h["value"] for h in history] == [0.5, "NaN", "Infinity", "-Infinity"]
    # MLflow's bulk-interval read (its charts use it): points of several runs, sampled, in
    # MLflow's SQL order (step, timestamp, value; NaN sorts as 0).
    bulk = ok(http.get(f"{API}/metrics/get-history-bulk-interval",
                       params={"run_ids": [run_id], "metric_key": "m", "max_results": 10}))["metrics"]
    assert [(b["run_id"], b["step"], b["value"]) for b in bulk] == [
        (run_id, 1, v) for v in ["-Infinity", "NaN", 0.5, "Infinity"]]
    failed(http.get(f"{API}/metrics/get-history-bulk-interval",
                    params={"run_ids": [run_id], "metric_key": "m", "start_step": 5}), 400, "INVALID_PARAMETER_VALUE")
    page = ok(http.get(f"{API}/metrics/get-history", params={"run_id": run_id, "metric_key": "m", "max_results": 3}))
    rest = ok(http.get(f"{API}/metrics/get-history", params={"run_id": run_id, "metric_key": "m",
                                                             "page_token": page["next_page_token"]}))
    assert len(page["metrics"]) == 3 and len(rest["metrics"]) == 1 and "next_page_token" not in rest
    exp = ok(http.get(f"{API}/experiments/get", params={"experiment_id": exp_id}))["experiment"]
    assert exp["artifact_location"] == f"mlflow-artifacts:/{exp_id}" and exp["tags"] == [{"key": "k", "value": "v"}]
    assert isinstance(exp["creation_time"], int)
    # The UI's prefix serves the same API.
    assert ok(http.get("/ajax-api/2.0/mlflow/runs/get", params={"run_id": run_id}))["run"]["info"] == run["info"]


def test_update_run_returns_run_info(http, run_id):
    exp = ok(http.post(f"{API}/experiments/create", json={"name": "updates"}))
    other = ok(http.post(f"{API}/runs/create", json={"experiment_id": exp["experiment_id"]}))["run"]["info"]["run_id"]
    info = ok(http.post(f"{API}/runs/update", json={"run_id": other, "status": "KILLED", "end_time": 1700000009999,
                                                     "run_name": "renamed"}))["run_info"]
    assert (info["status"], info["end_time"], info["run_name"]) == ("KILLED", 1700000009999, "renamed")


def test_errors_use_mlflow_codes_and_statuses(http, run_id):
    failed(http.get(f"{API}/runs/get", params={"run_id": "0" * 32}), 404, "RESOURCE_DOES_NOT_EXIST")
    failed(http.get(f"{API}/experiments/get", params={"experiment_id": "12345"}), 404, "RESOURCE_DOES_NOT_EXIST")
    message = failed(http.get(f"{API}/experiments/get-by-name", params={"experiment_name": "nope"}),
                     404, "RESOURCE_DOES_NOT_EXIST")
    assert message == "Could not find experiment with name 'nope'"
    failed(http.post(f"{API}/experiments/create", json={"name": "api"}), 400, "RESOURCE_ALREADY_EXISTS")
    message = failed(http.post(f"{API}/experiments/create", json={}), 400, "INVALID_PARAMETER_VALUE")
    assert message.startswith("Missing value for required parameter 'name'.")
    message = failed(http.post(f"{API}/runs/log-metric", json={"run_id": run_id, "key": "m", "value": "abc",
                                                               "timestamp": 1}), 400, "INVALID_PARAMETER_VALUE")
    assert message.startswith("Invalid value 'abc' for parameter 'value' supplied:")
    failed(http.post(f"{API}/runs/log-metric", json={"run_id": run_id, "key": "m", "value": 1,
                                                      "timestamp": 2**64}), 400, "INVALID_PARAMETER_VALUE")
    failed(http.post(f"{API}/runs/log-parameter", content=b"{not json", headers={"Content-Type": "application/json"}),
           400, "INVALID_PARAMETER_VALUE")
    failed(http.post(f"{API}/runs/log-parameter", json={"key": "a", "value": "b"}), 400, "INVALID_PARAMETER_VALUE")
    failed(http.post(f"{API}/runs/set-tag", json={"run_id": run_id, "key": "../x", "value": "b"}),
           400, "INVALID_PARAMETER_VALUE")
    failed(http.post(f"{API}/runs/search", json={"filter": "metrics.m >>> 1"}), 400, "INVALID_PARAMETER_VALUE")
    failed(http.get("/api/2.0/mlflow/no-such-endpoint"), 404, "ENDPOINT_NOT_FOUND")
    failed(http.get(f"{API}/runs/create"), 405, "BAD_REQUEST")


def test_log_batch_limits_are_mlflows(http, run_id):
    def batch(**parts):
        return http.post(f"{API}/runs/log-batch", json={"run_id": run_id, **parts})

    metric = {"key": "b", "value": 1.0, "timestamp": 1, "step": 0}
    kv = [{"key": f"k{i}", "value": "v"} for i in range(101)]
    assert failed(batch(metrics=[metric] * 1001), 400, "INVALID_PARAMETER_VALUE") == (
        "A batch logging request can contain at most 1000 metrics. Got 1001 metrics. Please split up metrics "
        "across multiple requests and try again.")
    assert "at most 100 params. Got 101 params" in failed(batch(params=kv), 400, "INVALID_PARAMETER_VALUE")
    assert "at most 100 tags. Got 101 tags" in failed(batch(tags=kv), 400, "INVALID_PARAMETER_VALUE")
    message = failed(batch(metrics=[metric] * 950, tags=kv[:51]), 400, "INVALID_PARAMETER_VALUE")
    assert "at most 1000 metrics, params, and tags. Got 1001 metrics, params, and tags." in message
    huge = [{"key": f"t{i}", "value": "x" * 5000} for i in range(100)]
    message = failed(batch(tags=huge, params=[{"key": "p", "value": "x" * 6000}] * 100), 400, "INVALID_PARAMETER_VALUE")
    assert "Batched logging API requests must be at most 1000000 bytes" in message
    ok(batch(metrics=[{**metric, "step": i} for i in range(1000)]))
    history = ok(http.get(f"{API}/metrics/get-history", params={"run_id": run_id, "metric_key": "b"}))["metrics"]
    assert len(history) == 1000


def test_artifact_proxy_upload_download_list(http, run_id):
    run = ok(http.get(f"{API}/runs/get", params={"run_id": run_id}))["run"]["info"]
    path = run["artifact_uri"][len("mlflow-artifacts:/"):]
    root = f"/api/2.0/mlflow-artifacts/artifacts/{path}"
    ok(http.put(f"{root}/dir/a.txt", content=b"alpha"))
    ok(http.put(f"{root}/b.bin", content=bytes(range(256))))
    assert http.get(f"{root}/dir/a.txt").content == b"alpha"
    assert http.get(f"{root}/b.bin").content == bytes(range(256))
    listing = ok(http.get("/api/2.0/mlflow-artifacts/artifacts", params={"path": path}))
    assert listing["files"] == [{"path": "b.bin", "is_dir": False, "file_size": 256},
                                {"path": "dir", "is_dir": True}]
    inner = ok(http.get("/api/2.0/mlflow-artifacts/artifacts",
                        params={"path": path + "/dir"}))
    assert inner["files"] == [{"path": "a.txt", "is_dir": False, "file_size": 5}]
    exp_dirs = ok(http.get("/api/2.0/mlflow-artifacts/artifacts", params={"path": run["experiment_id"]}))["files"]
    assert {"path": run_id, "is_dir": True} in exp_dirs
    listed = ok(http.get(f"{API}/artifacts/list", params={"run_id": run_id, "path": "dir"}))
    assert listed["files"] == [{"path": "dir/a.txt", "is_dir": False, "file_size": 5}]
    assert listed["root_uri"] == run["artifact_uri"]
    failed(http.get(f"{root}/missing.txt"), 404, "RESOURCE_DOES_NOT_EXIST")
    failed(http.get(f"{root}/dir"), 400, "INVALID_PARAMETER_VALUE")
    failed(http.put(f"{root}/%2E%2E/escape.txt", content=b"x"), 400, "INVALID_PARAMETER_VALUE")
    failed(http.get("/api/2.0/mlflow-artifacts/artifacts/not/a/run/path.txt"), 404, "RESOURCE_DOES_NOT_EXIST")
    assert "does not delete artifacts" in failed(http.delete(f"{root}/b.bin"), 400, "INVALID_PARAMETER_VALUE")


def test_logged_model_endpoints(http, run_id):
    exp_id = ok(http.get(f"{API}/runs/get", params={"run_id": run_id}))["run"]["info"]["experiment_id"]
    created = ok(http.post(f"{API}/logged-models", json={
        "experiment_id": exp_id, "name": "net", "source_run_id": run_id, "model_type": "agent",
        "params": [{"key": "layers", "value": "3"}], "tags": [{"key": "a", "value": "1"}]}))["model"]
    model_id = created["info"]["model_id"]
    assert model_id.startswith("m-") and created["info"]["status"] == "LOGGED_MODEL_PENDING"
    assert created["info"]["artifact_uri"] == f"mlflow-artifacts:/{exp_id}/{run_id}/artifacts/net"
    assert created["data"]["params"] == [{"key": "layers", "value": "3"}]
    root = created["info"]["artifact_uri"].replace("mlflow-artifacts:/", "/api/2.0/mlflow-artifacts/artifacts/")
    ok(http.put(f"{root}/MLmodel", content=b"flavors: {}\n"))
    ok(http.patch(f"{API}/logged-models/{model_id}", json={"status": "LOGGED_MODEL_READY"}))
    ok(http.patch(f"{API}/logged-models/{model_id}/tags", json={"tags": [{"key": "b", "value": "2"}]}))
    ok(http.delete(f"{API}/logged-models/{model_id}/tags/a"))
    ok(http.post(f"{API}/logged-models/{model_id}/params", json={"params": [{"key": "width", "value": "8"}]}))
    got = ok(http.get(f"{API}/logged-models/{model_id}"))["model"]
    assert got["info"]["status"] == "LOGGED_MODEL_READY" and got["info"]["tags"] == [{"key": "b", "value": "2"}]
    assert {p["key"] for p in got["data"]["params"]} == {"layers", "width"}
    files = ok(http.get(f"{API}/logged-models/{model_id}/artifacts/directories"))["files"]
    assert files == [{"path": "MLmodel", "is_dir": False, "file_size": 12}]
    found = ok(http.post(f"{API}/logged-models/search", json={"experiment_ids": [exp_id],
                                                              "filter": "name = 'net' AND tags.b = '2'"}))
    assert [m["info"]["model_id"] for m in found["models"]] == [model_id]
    run = ok(http.get(f"{API}/runs/get", params={"run_id": run_id}))["run"]
    assert run["outputs"] == {"model_outputs": [{"model_id": model_id, "step": 0}]}
    ok(http.delete(f"{API}/logged-models/{model_id}"))
    failed(http.get(f"{API}/logged-models/{model_id}"), 404, "RESOURCE_DOES_NOT_EXIST")
    assert ok(http.get(f"{API}/logged-models/{model_id}", params={"allow_deleted": "true"}))["model"]
    failed(http.get(f"{API}/logged-models/not-an-id"), 404, "RESOURCE_DOES_NOT_EXIST")  # as MLflow


def test_registry_endpoints_use_mlflow_methods(http, run_id):
    ok(http.post(f"{API}/registered-models/create", json={"name": "reg", "description": "d"}))
    version = ok(http.post(f"{API}/model-versions/create", json={
        "name": "reg", "source": f"mlflow-artifacts:/0/{run_id}/artifacts/model", "run_id": run_id}))
    assert version["model_version"]["version"] == "1"
    assert version["model_version"]["source"] == f"runs:/{run_id}/model"  # gitexp's URI; MLflow reads it
    ok(http.patch(f"{API}/registered-models/update", json={"name": "reg", "description": "new"}))
    ok(http.post(f"{API}/registered-models/alias", json={"name": "reg", "alias": "prod", "version": "1"}))
    model = ok(http.get(f"{API}/registered-models/get", params={"name": "reg"}))["registered_model"]
    assert model["description"] == "new" and model["aliases"] == [{"alias": "prod", "version": "1"}]
    latest = ok(http.get(f"{API}/registered-models/get-latest-versions", params={"name": "reg", "stages": "None"}))
    assert [v["version"] for v in latest["model_versions"]] == ["1"]
    ok(http.request("DELETE", f"{API}/registered-models/alias", json={"name": "reg", "alias": "prod"}))
    failed(http.get(f"{API}/registered-models/alias", params={"name": "reg", "alias": "prod"}),
           400, "INVALID_PARAMETER_VALUE")
    ok(http.request("DELETE", f"{API}/model-versions/delete", json={"name": "reg", "version": "1"}))
    failed(http.get(f"{API}/model-versions/get", params={"name": "reg", "version": "1"}), 404,
           "RESOURCE_DOES_NOT_EXIST")
    ok(http.request("DELETE", f"{API}/registered-models/delete", json={"name": "reg"}))
    failed(http.get(f"{API}/registered-models/get", params={"name": "reg"}), 404, "RESOURCE_DOES_NOT_EXIST")


def test_openapi_health_and_server_info(http):
    spec = ok(http.get("/openapi.json"))
    for path in ("/api/2.0/mlflow/runs/log-batch", "/api/2.0/mlflow/registered-models/alias",
                 "/api/2.0/mlflow/logged-models/{model_id}", "/api/2.0/mlflow-artifacts/artifacts/{artifact_path}"):
        assert path in spec["paths"], path
    body = spec["paths"]["/api/2.0/mlflow/runs/log-batch"]["post"]["requestBody"]["content"]["application/json"]
    assert body["schema"]["$ref"].endswith("/LogBatch")
    assert http.get("/health").json() == "OK"
    info = ok(http.get("/api/3.0/mlflow/server-info"))
    assert info["multipart_uploads_enabled"] is False and info["workspaces_enabled"] is False
    assert "text/html" in http.get("/").headers["content-type"]  # the web UI is mounted at /


def test_browser_attacks_are_refused(http, server):
    # DNS rebinding: a page on evil.example whose name resolves to 127.0.0.1.
    resp = http.get(f"{API}/experiments/search", headers={"Host": f"evil.example:{server.port}"})
    assert failed(resp, 403, "PERMISSION_DENIED").startswith("Host header 'evil.example:")
    for host in (f"localhost:{server.port}", f"127.0.0.1:{server.port}", "192.168.1.20", f"[::1]:{server.port}"):
        ok(http.get(f"{API}/experiments/search", headers={"Host": host}))
    # A cross-site form or text/plain POST (no CORS preflight) is not JSON: refused.
    message = failed(http.post(f"{API}/experiments/create", content=b'{"name": "csrf"}',
                               headers={"Content-Type": "text/plain"}), 400, "INVALID_PARAMETER_VALUE")
    assert "must be JSON, sent with Content-Type: application/json" in message
    assert ok(http.get(f"{API}/experiments/get-by-name", params={"experiment_name": "api"}))
    failed(http.get(f"{API}/experiments/get-by-name", params={"experiment_name": "csrf"}), 404,
           "RESOURCE_DOES_NOT_EXIST")
