"""Bad input is refused at the door (issue "Lose nothing").

Four kinds of values used to be accepted and then break the repository for good:
lone surrogates (strings that cannot be encoded as UTF-8), steps and timestamps
beyond 64 bits, artifact names git's fsck refuses, and numbers Python cannot
convert.  Each test sends them through every door that takes them -- the
Python API (fluent and MlflowClient), the CLI, the REST server (raw HTTP and the
real mlflow client) and the web UI's forms -- expects InvalidParameterValue /
400 INVALID_PARAMETER_VALUE naming the field and the value, and then checks that
nothing was lost: later commits land, reads and searches answer, and
`git fsck --strict` stays clean.
"""

from __future__ import annotations

import json
import os
import random
import subprocess
import sys
import urllib.parse
from fractions import Fraction
from pathlib import Path

import pytest

import gitexp
from gitexp.entities import Dataset, DatasetInput, InputTag, Metric, Param, RunTag
from gitexp.exceptions import InvalidParameterValue

from .conftest import git, make_repo, require_mlflow, reset_gitexp
from .server_process import ServerProcess

# What os.fsdecode makes of a Latin-1 file name: a lone surrogate for the byte 0xE9.
BAD = os.fsdecode(b"/data/caf\xe9.csv")
BAD_NAME = os.fsdecode(b"caf\xe9")
ESCAPED = "\\udce9"  # how every message shows it
API = "/api/2.0/mlflow"


def refused(call, *words: str):
    """call() raises InvalidParameterValue whose message holds every word; returns the message."""
    with pytest.raises(InvalidParameterValue) as info:
        call()
    message = info.value.message
    assert info.value.error_code == "INVALID_PARAMETER_VALUE"
    for word in words:
        assert word in message, (word, message)
    message.encode("utf-8")  # the message itself can always be printed, logged and sent
    return message


def assert_fsck_clean(path: Path) -> None:
    result = subprocess.run(["git", "fsck", "--strict", "--no-dangling"], cwd=path, capture_output=True, text=True)
    output = result.stdout + result.stderr
    problems = [line for line in output.splitlines() if line.startswith(("error", "warning", "broken", "missing"))]
    assert result.returncode == 0 and not problems, output


def object_count(path: Path) -> dict[str, str]:
    """Loose objects and packs of a repository (to show that a refused call wrote nothing)."""
    out = git("count-objects", "-v", cwd=path)
    fields = dict(line.split(": ", 1) for line in out.splitlines())
    return {k: fields[k] for k in ("count", "in-pack", "packs")}


# -- a served repository: the REST API and the web UI in one process --------------------------------
@pytest.fixture(scope="module")
def served(tmp_path_factory):
    srv = ServerProcess(make_repo(tmp_path_factory.mktemp("doors") / "served"))
    yield srv
    log = srv.stop()
    assert "Traceback" not in log, log[-5000:]


@pytest.fixture(scope="module")
def http(served):
    import httpx
    with httpx.Client(base_url=served.url, timeout=60) as client:
        yield client


@pytest.fixture
def mlflow_client(served, monkeypatch):
    require_mlflow()
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "0")
    monkeypatch.setenv("MLFLOW_DISABLE_TELEMETRY", "true")
    from mlflow import MlflowClient

    return MlflowClient(served.url)


def send(http, method: str, path: str, body: dict):
    """A request with a JSON body as any client may send it: json.dumps escapes a lone surrogate
    as \\udce9, which is valid JSON and decodes back to the surrogate."""
    return http.request(method, API + path, content=json.dumps(body).encode("ascii"),
                        headers={"Content-Type": "application/json"})


def ok(resp) -> dict:
    assert resp.status_code == 200, resp.text
    return resp.json()


def bad_request(resp, *words: str) -> str:
    assert resp.status_code == 400, resp.text
    body = resp.json()
    assert body["error_code"] == "INVALID_PARAMETER_VALUE", body
    for word in words:
        assert word in body["message"], (word, body["message"])
    return body["message"]


def utf7_form(fields: dict[str, str]) -> tuple[bytes, dict[str, str]]:
    """A multipart form declared as UTF-7: the one way a browser form can carry a lone surrogate
    to the UI (starlette decodes each part with the declared charset)."""
    boundary = "gitexp-doors"
    body = b"".join(f'--{boundary}\r\nContent-Disposition: form-data; name="{k}"\r\n\r\n'.encode()
                    + v.encode("utf-7") + b"\r\n" for k, v in fields.items())
    body += f"--{boundary}--\r\n".encode()
    return body, {"Content-Type": f"multipart/form-data; charset=utf-7; boundary={boundary}"}


def served_tip(served) -> str:
    return git("rev-parse", "gitexp", cwd=served.repo).strip()


def flush_server(http) -> None:
    ok(http.post("/api/2.0/gitexp/flush", json={}))


# == 1. lone surrogates ==========================================================================
def test_lone_surrogates_are_refused_by_the_python_api_and_the_run_keeps_committing(repo):
    client = gitexp.MlflowClient()
    exp_id = client.create_experiment("doors")
    client.create_registered_model("reg")
    with gitexp.start_run(experiment_id=exp_id) as run:
        run_id = run.info.run_id
        gitexp.log_param("lr", 0.1)
        client.create_model_version("reg", f"runs:/{run_id}/model", run_id=run_id)
        model_id = client.create_logged_model(exp_id, name="lm", source_run_id=run_id).model_id
        local = repo / "data.txt"
        local.write_text("x")
        calls = [
            # fluent
            (lambda: gitexp.log_param("path", BAD), ["Param value for 'path'"]),
            (lambda: gitexp.log_params({"path": BAD}), ["Param value for 'path'"]),
            (lambda: gitexp.log_param(BAD_NAME, 1), ["Param name"]),
            (lambda: gitexp.set_tag("source", BAD), ["Tag value for 'source'"]),
            (lambda: gitexp.set_tags({BAD_NAME: "v"}), ["Tag name"]),
            (lambda: gitexp.set_tag("mlflow.runName", BAD), ["Run name"]),
            (lambda: gitexp.log_metric(BAD_NAME, 1.0), ["Metric name"]),
            (lambda: gitexp.log_metrics({BAD_NAME: 1.0}), ["Metric name"]),
            (lambda: gitexp.set_experiment_tag("note", BAD), ["Experiment tag value for 'note'"]),
            (lambda: gitexp.set_experiment(BAD_NAME), ["Experiment name"]),
            (lambda: gitexp.create_experiment("x", artifact_location=BAD), ["artifact_location"]),
            (lambda: gitexp.start_run(run_name=BAD, nested=True), ["Run name"]),
            (lambda: gitexp.log_text("x", BAD_NAME + ".txt"), ["Artifact_file"]),
            (lambda: gitexp.log_text(BAD, "ok.txt"), ["Text for 'ok.txt'"]),
            (lambda: gitexp.log_dict({"path": BAD}, "ok.json"), ["Dictionary for 'ok.json'"]),
            (lambda: gitexp.log_artifact(str(local), BAD_NAME), ["Artifact_path"]),
            # MlflowClient
            (lambda: client.create_run(exp_id, run_name=BAD), ["Run name"]),
            (lambda: client.create_run(exp_id, tags={"k": BAD}), ["Tag value for 'k'"]),
            (lambda: client.update_run(run_id, name=BAD), ["Run name"]),
            (lambda: client.log_batch(run_id, params=[Param("path", BAD)]), ["Param value for 'path'"]),
            (lambda: client.log_batch(run_id, tags=[RunTag(BAD_NAME, "v")]), ["Tag name"]),
            (lambda: client.log_batch(run_id, metrics=[Metric(BAD_NAME, 1.0, 1, 0)]), ["Metric name"]),
            (lambda: client.create_experiment(BAD_NAME), ["Experiment name"]),
            (lambda: client.create_experiment("y", tags={"k": BAD}), ["Experiment tag value for 'k'"]),
            (lambda: client.rename_experiment(exp_id, BAD_NAME), ["Experiment name"]),
            (lambda: client.set_experiment_tag(exp_id, BAD_NAME, "v"), ["Tag name"]),
            (lambda: client.create_registered_model(BAD_NAME), ["Registered model name"]),
            (lambda: client.create_registered_model("m", tags={"k": BAD}), ["Tag value for 'k'"]),
            (lambda: client.create_registered_model("m", description=BAD), ["Description"]),
            (lambda: client.rename_registered_model("reg", BAD_NAME), ["Registered model new_name"]),
            (lambda: client.update_registered_model("reg", description=BAD), ["Description"]),
            (lambda: client.set_registered_model_tag("reg", "k", BAD), ["Tag value for 'k'"]),
            (lambda: client.create_model_version("reg", BAD), ["Model version source"]),
            (lambda: client.create_model_version("reg", f"runs:/{run_id}/model", run_link=BAD),
             ["Model version run_link"]),
            (lambda: client.create_model_version("reg", f"runs:/{run_id}/model", description=BAD), ["Description"]),
            (lambda: client.update_model_version("reg", 1, description=BAD), ["Description"]),
            (lambda: client.set_model_version_tag("reg", 1, "k", BAD), ["Tag value for 'k'"]),
            (lambda: client.set_registered_model_alias("reg", BAD_NAME, 1), ["Alias"]),
            (lambda: client.log_inputs(run_id, [DatasetInput(Dataset("d", "abc", "local", BAD))]),
             ["Dataset source"]),
            (lambda: client.log_inputs(run_id, [DatasetInput(Dataset(BAD_NAME, "abc", "local", "/x"))]),
             ["Dataset name"]),
            (lambda: client.log_inputs(run_id, [DatasetInput(Dataset("d", "abc", "local", "/x"),
                                                             [InputTag("mlflow.data.context", BAD)])]),
             ["Dataset input tag value"]),
            (lambda: client.create_logged_model(exp_id, name=BAD_NAME), ["Logged model name"]),
            (lambda: client.create_logged_model(exp_id, model_type=BAD), ["Logged model type"]),
            (lambda: client.create_logged_model(exp_id, tags={"k": BAD}), ["Tag value for 'k'"]),
            (lambda: client.create_logged_model(exp_id, params={"k": BAD}), ["Param value for 'k'"]),
            (lambda: client.set_logged_model_tags(model_id, {"k": BAD}), ["Tag value for 'k'"]),
            (lambda: client.log_model_params(model_id, {"k": BAD}), ["Param value for 'k'"]),
            (lambda: client.log_text(run_id, "x", f"dir/{BAD_NAME}.txt"), ["Artifact_file"]),
            (lambda: client.search_runs([exp_id], f"params.path = '{BAD}'"), ["Filter_string"]),
        ]
        for call, words in calls:
            refused(call, ESCAPED, *words)
        # The run goes on: its later logging commits, which a stored surrogate used to break.
        gitexp.log_metric("loss", 0.5, step=1)
        gitexp.set_tag("team", "ml")
    reset_gitexp()
    client = gitexp.MlflowClient()
    run = client.get_run(run_id)
    assert run.info.status == "FINISHED"
    assert run.data.params == {"lr": "0.1"}
    assert run.data.metrics == {"loss": 0.5} and run.data.tags["team"] == "ml"
    assert [r.info.run_id for r in client.search_runs([exp_id])] == [run_id]
    assert client.get_experiment(exp_id).name == "doors"
    assert [m.name for m in client.search_registered_models()] == ["reg"]
    assert_fsck_clean(repo)


def test_a_working_tree_file_name_that_is_not_utf8_does_not_break_runs(repo):
    # Code capture lists untracked files: a Latin-1 file name used to reach the branch as a lone
    # surrogate, and then every commit of every run failed.
    (repo / os.fsdecode(b"caf\xe9.csv")).write_text("x")
    (repo / "train.py").write_text("print('changed')\n")
    with gitexp.start_run() as run:
        gitexp.log_metric("loss", 0.5)
    reset_gitexp()
    assert gitexp.get_run(run.info.run_id).data.metrics == {"loss": 0.5}
    code = git("show", f"gitexp:.tracking/runs/{run.info.run_id[:2]}/{run.info.run_id}/code.yaml", cwd=repo)
    assert "caf\\xe9.csv" in code
    assert_fsck_clean(repo)


def test_lone_surrogates_from_the_command_line_are_refused(repo):
    # A non-UTF-8 argument reaches Python as a lone surrogate (sys.argv uses surrogateescape).
    client = gitexp.MlflowClient()
    client.create_registered_model("reg")
    reset_gitexp()
    tip = git("rev-parse", "gitexp", cwd=repo)

    def cli(*args):
        return subprocess.run([sys.executable, "-m", "gitexp", *args], cwd=repo, capture_output=True)

    for args, field in [
        ((b"experiments", b"create", b"caf\xe9"), "Experiment name"),
        ((b"experiments", b"create", b"ok", b"--tag", b"k=caf\xe9"), "Experiment tag value for 'k'"),
        ((b"experiments", b"create", b"ok", b"--description", b"caf\xe9"), "Experiment tag value"),
        ((b"experiments", b"rename", b"Default", b"caf\xe9"), "Experiment name"),
        ((b"models", b"rename", b"reg", b"caf\xe9"), "Registered model new_name"),
    ]:
        result = cli(*args)
        err = result.stderr.decode("utf-8", "replace")
        assert result.returncode != 0, (args, result.stdout)
        assert field in err and ESCAPED in err and "Traceback" not in err, (args, err)
    assert git("rev-parse", "gitexp", cwd=repo) == tip
    listed = cli("experiments", "list")
    assert listed.returncode == 0 and b"Default" in listed.stdout


def test_lone_surrogates_are_refused_by_the_rest_server_and_the_ui(served, http, mlflow_client):
    exp_id = ok(send(http, "POST", "/experiments/create", {"name": "surrogates"}))["experiment_id"]
    run_id = ok(send(http, "POST", "/runs/create", {"experiment_id": exp_id}))["run"]["info"]["run_id"]
    ok(send(http, "POST", "/registered-models/create", {"name": "reg"}))
    ok(send(http, "POST", "/model-versions/create", {"name": "reg", "source": f"runs:/{run_id}/model"}))
    S = "\ud800"
    esc = "\\ud800"
    dataset = {"name": "d", "digest": "abc", "source_type": "local", "source": "/x"}
    attempts = [
        ("POST", "/runs/log-parameter", {"run_id": run_id, "key": "path", "value": S}, "Param value for 'path'"),
        ("POST", "/runs/log-parameter", {"run_id": run_id, "key": S, "value": "v"}, "Param name"),
        ("POST", "/runs/set-tag", {"run_id": run_id, "key": "t", "value": S}, "Tag value for 't'"),
        ("POST", "/runs/set-tag", {"run_id": run_id, "key": "mlflow.runName", "value": S}, "Run name"),
        ("POST", "/runs/log-metric", {"run_id": run_id, "key": S, "value": 1, "timestamp": 1}, "Metric name"),
        ("POST", "/runs/log-batch", {"run_id": run_id, "params": [{"key": "p", "value": S}]}, "Param value for 'p'"),
        ("POST", "/runs/log-batch", {"run_id": run_id, "tags": [{"key": S, "value": "v"}]}, "Tag name"),
        ("POST", "/runs/log-batch", {"run_id": run_id, "metrics": [{"key": S, "value": 1, "timestamp": 1}]},
         "Metric name"),
        ("POST", "/runs/create", {"experiment_id": exp_id, "run_name": S}, "Run name"),
        ("POST", "/runs/create", {"experiment_id": exp_id, "user_id": S}, "Run user_id"),
        ("POST", "/runs/create", {"experiment_id": exp_id, "tags": [{"key": "k", "value": S}]}, "Tag value for 'k'"),
        ("POST", "/runs/update", {"run_id": run_id, "run_name": S}, "Run name"),
        ("POST", "/runs/log-inputs", {"run_id": run_id, "datasets": [{"dataset": {**dataset, "source": S}}]},
         "Dataset source"),
        ("POST", "/runs/log-inputs", {"run_id": run_id, "datasets": [{"dataset": dataset,
                                                                       "tags": [{"key": "c", "value": S}]}]},
         "Dataset input tag value"),
        ("POST", "/runs/search", {"experiment_ids": [exp_id], "filter": f"params.p = '{S}'"}, "Filter_string"),
        ("POST", "/experiments/create", {"name": S}, "Experiment name"),
        ("POST", "/experiments/create", {"name": "a", "artifact_location": S}, "artifact_location"),
        ("POST", "/experiments/create", {"name": "b", "tags": [{"key": "k", "value": S}]}, "Experiment tag value"),
        ("POST", "/experiments/update", {"experiment_id": exp_id, "new_name": S}, "Experiment name"),
        ("POST", "/experiments/set-experiment-tag", {"experiment_id": exp_id, "key": "k", "value": S},
         "Experiment tag value"),
        ("POST", "/registered-models/create", {"name": S}, "Registered model name"),
        ("POST", "/registered-models/create", {"name": "c", "description": S}, "Description"),
        ("POST", "/registered-models/rename", {"name": "reg", "new_name": S}, "Registered model new_name"),
        ("PATCH", "/registered-models/update", {"name": "reg", "description": S}, "Description"),
        ("POST", "/registered-models/set-tag", {"name": "reg", "key": "k", "value": S}, "Tag value for 'k'"),
        ("POST", "/registered-models/alias", {"name": "reg", "alias": S, "version": "1"}, "Alias"),
        ("POST", "/model-versions/create", {"name": "reg", "source": S}, "Model version source"),
        ("PATCH", "/model-versions/update", {"name": "reg", "version": "1", "description": S}, "Description"),
        ("POST", "/model-versions/set-tag", {"name": "reg", "version": "1", "key": "k", "value": S},
         "Tag value for 'k'"),
        ("POST", "/logged-models", {"experiment_id": exp_id, "name": S}, "Logged model name"),
        ("POST", "/logged-models", {"experiment_id": exp_id, "model_type": S}, "Logged model type"),
        ("POST", "/logged-models", {"experiment_id": exp_id, "params": [{"key": "k", "value": S}]},
         "Param value for 'k'"),
    ]
    for method, path, body, field in attempts:
        bad_request(send(http, method, path, body), field, esc)

    # The real mlflow client cannot even send one (protobuf refuses to encode it): nothing reaches the server.
    with pytest.raises(UnicodeEncodeError):
        mlflow_client.log_param(run_id, "path", BAD)

    # The web UI's forms: an error page naming the field, and no commit.
    flush_server(http)
    tip = served_tip(served)
    origin = {"Origin": served.url}
    for path, fields, field in [
        ("/actions/experiments", {"name": BAD_NAME}, "Experiment name"),
        (f"/actions/experiments/{exp_id}/rename", {"name": BAD_NAME}, "Experiment name"),
        (f"/actions/experiments/{exp_id}/tags", {"key": "k", "value": BAD}, "Experiment tag value"),
        (f"/actions/experiments/{exp_id}/note", {"note": BAD}, "Experiment tag value"),
        (f"/actions/runs/{run_id}/rename", {"name": BAD}, "Run name"),
        (f"/actions/runs/{run_id}/tags", {"key": BAD_NAME, "value": "v"}, "Tag name"),
        (f"/actions/runs/{run_id}/note", {"note": BAD}, "Tag value"),
        ("/actions/models/reg/description", {"description": BAD}, "Description"),
        ("/actions/models/reg/tags", {"key": "k", "value": BAD}, "Tag value for"),
        ("/actions/models/reg/aliases", {"alias": BAD_NAME, "version": "1"}, "Alias"),
        ("/actions/models/reg/versions/1/description", {"description": BAD}, "Description"),
    ]:
        body, headers = utf7_form(fields)
        page = http.post(path, content=body, headers={**headers, **origin})
        assert page.status_code == 400 and field in page.text and ESCAPED in page.text, (path, page.text[-2000:])
    flush_server(http)
    assert served_tip(served) == tip

    # Nothing was stored, so every read, write and search of the experiment still works (these were 500s).
    ok(send(http, "POST", "/runs/log-metric", {"run_id": run_id, "key": "m", "value": 1, "timestamp": 1}))
    info = ok(send(http, "POST", "/runs/update", {"run_id": run_id, "status": "FINISHED"}))["run_info"]
    assert info["status"] == "FINISHED"
    run = ok(http.get(f"{API}/runs/get", params={"run_id": run_id}))["run"]
    assert run["data"].get("params", []) == [] and run["data"]["metrics"][0]["key"] == "m"
    runs = ok(send(http, "POST", "/runs/search", {"experiment_ids": [exp_id]}))["runs"]
    assert [r["info"]["run_id"] for r in runs] == [run_id]
    assert mlflow_client.get_run(run_id).info.status == "FINISHED"
    assert [r.info.run_id for r in mlflow_client.search_runs([exp_id])] == [run_id]
    flush_server(http)
    assert_fsck_clean(served.repo)


# == 2. steps and timestamps beyond 64 bits ==========================================================
def test_steps_and_timestamps_beyond_64_bits_are_refused_by_the_python_api(repo):
    import numpy as np
    import PIL  # noqa: F401  (a dev dependency: missing, the test fails loudly)

    client = gitexp.MlflowClient()
    image = np.zeros((4, 4, 3), dtype=np.uint8)
    with gitexp.start_run() as run:
        run_id = run.info.run_id
        for call, words in [
            (lambda: gitexp.log_metric("m", 1, step=2**63), ["Step", "'m'", "9223372036854775808", "64-bit"]),
            (lambda: gitexp.log_metric("m", 1, step=-(2**63) - 1), ["Step", "-9223372036854775809"]),
            (lambda: gitexp.log_metric("m", 1, step=1e19), ["Step", "1e+19"]),
            (lambda: gitexp.log_metric("m", 1, step=np.uint64(2**63)), ["Step", "9223372036854775808"]),
            (lambda: gitexp.log_metric("m", 1, timestamp=2**63), ["Timestamp", "'m'", "9223372036854775808"]),
            (lambda: gitexp.log_metric("m", 1, timestamp=-1), ["Timestamp", "non-negative", "-1"]),
            (lambda: gitexp.log_metrics({"m": 1}, step=2**63), ["Step", "'m'"]),
            (lambda: client.log_metric(run_id, "m", 1, step=2**64), ["Step", str(2**64)]),
            (lambda: client.log_batch(run_id, metrics=[Metric("m", 1, 0, 2**63)]), ["Step", "'m'"]),
            (lambda: client.log_batch(run_id, metrics=[Metric("m", 1, 2**63, 0)]), ["Timestamp", "'m'"]),
            (lambda: client.create_run("0", start_time=2**63), ["start_time", "9223372036854775808"]),
            (lambda: client.create_run("0", start_time=-(2**63) - 1), ["start_time"]),
            (lambda: client.set_terminated(run_id, end_time=2**63), ["end_time", "9223372036854775808"]),
            (lambda: gitexp.log_image(image, key="img", step=2**63), ["Step", "9223372036854775808"]),
            (lambda: gitexp.log_image(image, key="img", timestamp=2**63), ["Timestamp", "9223372036854775808"]),
        ]:
            refused(call, *words)
        # The largest and smallest 64-bit steps and timestamps are fine (MLflow stores exactly these).
        gitexp.log_metric("m", 1.0, step=2**63 - 1, timestamp=2**63 - 1)
        gitexp.log_metric("m", 2.0, step=-(2**63), timestamp=0)
        client.log_batch(run_id, metrics=[Metric("b", 3.0, 2**63 - 1, 2**63 - 1)])
        other = client.create_run("0", start_time=2**63 - 1)
        client.set_terminated(other.info.run_id, end_time=2**63 - 1)
        gitexp.log_image(image, key="img", step=2**63 - 1)
    reset_gitexp()
    client = gitexp.MlflowClient()
    # These searches used to fail for the whole repository (OverflowError in the SQLite index).
    found = gitexp.search_runs(["0"], filter_string="metrics.m > 0")
    assert list(found["run_id"]) == [run_id]
    runs = client.search_runs(["0"], order_by=["start_time DESC"])
    assert [r.info.run_id for r in runs] == [other.info.run_id, run_id]
    assert runs[0].info.end_time == 2**63 - 1
    history = client.get_metric_history(run_id, "m")
    assert sorted((h.step, h.timestamp) for h in history) == [(-(2**63), 0), (2**63 - 1, 2**63 - 1)]
    assert client.get_run(run_id).data.metrics == {"m": 1.0, "b": 3.0}
    assert_fsck_clean(repo)


def test_steps_and_timestamps_beyond_64_bits_are_refused_by_the_rest_server(served, http, mlflow_client):
    exp_id = ok(send(http, "POST", "/experiments/create", {"name": "int64"}))["experiment_id"]
    run_id = ok(send(http, "POST", "/runs/create", {"experiment_id": exp_id}))["run"]["info"]["run_id"]
    metric = {"run_id": run_id, "key": "m", "value": 1.0, "timestamp": 1, "step": 0}
    for method, path, body, field in [
        ("POST", "/runs/log-metric", {**metric, "step": 2**63}, "step"),
        ("POST", "/runs/log-metric", {**metric, "step": str(-(2**63) - 1)}, "step"),
        ("POST", "/runs/log-metric", {**metric, "timestamp": 2**63}, "timestamp"),
        ("POST", "/runs/log-metric", {**metric, "timestamp": -1}, "Timestamp for metric 'm'"),
        ("POST", "/runs/log-batch", {"run_id": run_id, "metrics": [{**metric, "step": 2**64}]}, "step"),
        ("POST", "/runs/log-batch", {"run_id": run_id, "metrics": [{**metric, "timestamp": 2**63}]}, "timestamp"),
        ("POST", "/runs/create", {"experiment_id": exp_id, "start_time": 2**63}, "start_time"),
        ("POST", "/runs/update", {"run_id": run_id, "status": "FINISHED", "end_time": 2**63}, "end_time"),
    ]:
        bad_request(send(http, method, path, body), field)
    # The real mlflow client refuses to encode them (its protobuf int64 fields): nothing reaches the server.
    with pytest.raises(ValueError):
        mlflow_client.log_metric(run_id, "m", 1.0, step=2**63)
    with pytest.raises(ValueError):
        mlflow_client.create_run(exp_id, start_time=2**63)
    # The limits themselves are accepted, and searching still works.
    ok(send(http, "POST", "/runs/log-metric", {**metric, "step": 2**63 - 1, "timestamp": 2**63 - 1}))
    mlflow_client.log_metric(run_id, "m", 2.0, step=-(2**63), timestamp=5)
    ok(send(http, "POST", "/runs/update", {"run_id": run_id, "status": "FINISHED", "end_time": 2**63 - 1}))
    runs = ok(send(http, "POST", "/runs/search", {"experiment_ids": [exp_id], "filter": "metrics.m > 0"}))["runs"]
    assert [r["info"]["run_id"] for r in runs] == [run_id]
    assert runs[0]["info"]["end_time"] == 2**63 - 1
    history = mlflow_client.get_metric_history(run_id, "m")
    assert sorted(h.step for h in history) == [-(2**63), 2**63 - 1]


# == 3. artifact names git's fsck refuses =============================================================
# Directory names that mean .git or .gitmodules to macOS or Windows (and so to git's fsck).
BAD_DIRS = ["a/.git\u200c", "b/GIT~1", "c/.git.", "d/.gitmodules", ".git ", "g/git~1", "h/.git:stream",
            "i/gi7eba~1", "j/.gitattributes", "k/gitmod~1", "l/\u200c.gitmodules", "m/.g\u200dit", "n/.GIT",
            "o/.gitmodules .", "p/\ufeff.GitModules"]
# File names git refuses whatever the content (gitexp refuses every .gitmodules: it is never an artifact).
BAD_FILES = ["e/.gitmodules", "f/.GIT", "g/git~1", "q/.gitmodules.", "r/GITMOD~4", "s/" + "x" * 4097]
# Names git accepts: near misses of the above.
GOOD_FILES = ["models/.gitkeep_not", "a/git/b", ".github/x", "a/.gitx/y", "b/git~2/x", "c/gitmodules",
              "d/.gitignore", "e/.mailmap", "f/.gitattributes", "g/.git-blame-ignore-revs", "h/gi7eba~1x",
              "i/.gitmodulesx", "j/git~1x", "k/.g it"]


def _component(path: str) -> str:
    """The offending name in a bad path, as messages show it."""
    return next(repr(part)[:60] for part in path.split("/") if len(part) > 1)


def test_artifact_names_git_refuses_are_refused_by_the_python_api_before_anything_is_written(repo, tmp_path):
    import matplotlib
    import PIL  # noqa: F401  (a dev dependency: missing, the test fails loudly)

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np
    from sklearn.linear_model import LinearRegression

    import gitexp.sklearn

    client = gitexp.MlflowClient()
    local = tmp_path / "local.txt"
    local.write_text("data")
    tree = tmp_path / "tree"
    (tree / "sub").mkdir(parents=True)
    (tree / "sub" / "f.txt").write_text("f")
    figure = plt.figure()
    image = np.zeros((4, 4, 3), dtype=np.uint8)
    model = LinearRegression().fit([[0.0], [1.0]], [0.0, 1.0])
    with gitexp.start_run() as run:
        run_id = run.info.run_id
        gitexp.log_text("before", "before.txt")
        gitexp.flush()
        tip = git("rev-parse", "gitexp", cwd=repo)
        objects = object_count(repo)
        # Each check is a function of its bad name: the lambdas are called at once, but bind no loop variable.
        def refuses_dir(bad: str) -> None:
            name = _component(bad)
            for call in [
                lambda: gitexp.log_text("x", f"{bad}/x.txt"),
                lambda: client.log_text(run_id, "x", f"{bad}/x.txt"),
                lambda: gitexp.log_dict({"a": 1}, f"{bad}/d.json"),
                lambda: client.log_dict(run_id, {"a": 1}, f"{bad}/d.yaml"),
                lambda: gitexp.log_figure(figure, f"{bad}/fig.png"),
                lambda: gitexp.log_image(image, f"{bad}/img.png"),
                lambda: gitexp.log_artifact(str(local), bad),
                lambda: client.log_artifact(run_id, str(local), bad),
                lambda: gitexp.log_artifacts(str(tree), bad),
                lambda: client.log_artifacts(run_id, str(tree), f"{bad}/deeper"),
                lambda: gitexp.sklearn.log_model(model, name=f"{bad}/model"),
            ]:
                refused(call, name, "git")
            # (log_table refuses ':' in a table's name before anything else)
            refused(lambda: gitexp.log_table({"a": [1]}, f"{bad}/t.json"), *(["':'"] if ":" in bad else [name, "git"]))

        def refuses_file(bad: str) -> None:
            name = _component(bad)
            refused(lambda: gitexp.log_text("x", bad), name, "git")
            refused(lambda: client.log_text(run_id, "x", bad), name, "git")

        def refuses_model(bad_model: str) -> None:
            refused(lambda: gitexp.sklearn.log_model(model, name=bad_model), repr(bad_model), "git")

        def refuses_mixed_dir(bad_local: str) -> None:
            mixed = tmp_path / f"mixed-{bad_local}"
            (mixed / "a").mkdir(parents=True)
            (mixed / "a" / "good.txt").write_text("good")
            (mixed / "z.txt").write_text("z")
            if bad_local.startswith(".gitmodules"):
                (mixed / "a" / bad_local).write_text("[submodule 'x']\n")
            else:
                (mixed / "a" / bad_local).mkdir()
                (mixed / "a" / bad_local / "config").write_text("x")
            refused(lambda: gitexp.log_artifacts(str(mixed), "mixed"), repr(bad_local), "git")
            refused(lambda: gitexp.log_artifact(str(mixed / "a")), repr(bad_local), "git")

        for bad in BAD_DIRS:
            refuses_dir(bad)
        for bad in BAD_FILES:
            refuses_file(bad)
        for bad_model in ("GIT~1", "gitmod~1", ".git\u200c"):
            refuses_model(bad_model)
        refused(lambda: client.create_logged_model("0", name="GIT~1"), "'GIT~1'", "git")
        refused(lambda: client.create_logged_model("0", name="gi7eba~1"), "'gi7eba~1'", "git")
        # A directory with one bad name among good files: every file is checked first, nothing is written.
        for bad_local in ("GIT~1", ".git.", ".gitmodules", "gitmod~2"):
            refuses_mixed_dir(bad_local)
        # A .gitattributes file git cannot parse (a line of 2048 bytes or more) is refused too.
        long_line = "*" + "a" * 3000 + " text\n"
        refused(lambda: gitexp.log_text(long_line, "attrs/.gitattributes"), "2048", ".gitattributes")
        (tmp_path / "attrs").mkdir()
        (tmp_path / "attrs" / ".gitattributes").write_text(long_line)
        (tmp_path / "attrs" / "ok.txt").write_text("ok")
        refused(lambda: gitexp.log_artifacts(str(tmp_path / "attrs"), "attrs"), "2048")
        refused(lambda: gitexp.log_artifact(str(tmp_path / "attrs" / ".gitattributes"), "attrs"), "2048")
        # Nothing was written: no object, no commit, no artifact.
        gitexp.flush()
        assert object_count(repo) == objects
        assert git("rev-parse", "gitexp", cwd=repo) == tip
        assert [f.path for f in client.list_artifacts(run_id)] == ["before.txt"]

        # Names git accepts still work, .gitattributes files git can parse included.
        for good in GOOD_FILES:
            gitexp.log_text("ok\n", good)
        gitexp.log_text("*.bin binary\n", "attrs/.gitattributes")
        linked = tmp_path / "linked"
        linked.mkdir()
        (linked / "target.txt").write_text("*.log\n")
        os.symlink("target.txt", linked / ".gitignore")  # a link is logged as the file it points to
        os.symlink("target.txt", linked / ".gitattributes")
        gitexp.log_artifacts(str(linked), "linked")
        info = gitexp.sklearn.log_model(model, name="git_model")
    reset_gitexp()
    client = gitexp.MlflowClient()
    for good in GOOD_FILES:
        assert client.read_artifact(run_id, good) == b"ok\n", good
    assert client.read_artifact(run_id, "linked/.gitignore") == b"*.log\n"
    assert info.artifact_path == "git_model"
    tree_entries = git("ls-tree", "-r", "gitexp", cwd=repo)
    assert "120000" not in tree_entries  # no symbolic link is ever committed
    assert_fsck_clean(repo)


def test_artifact_names_git_refuses_are_refused_by_the_rest_server(served, http, mlflow_client, tmp_path):
    exp_id = ok(send(http, "POST", "/experiments/create", {"name": "artifact-names"}))["experiment_id"]
    run_id = ok(send(http, "POST", "/runs/create", {"experiment_id": exp_id}))["run"]["info"]["run_id"]
    root = f"/api/2.0/mlflow-artifacts/artifacts/{exp_id}/{run_id}/artifacts"
    for bad in [f"{d}/file.txt" for d in BAD_DIRS] + BAD_FILES[:5] + ["x/.git\u200c/config"]:
        quoted = "/".join(urllib.parse.quote(p, safe="") for p in bad.split("/"))
        bad_request(http.put(f"{root}/{quoted}", content=b"x"), _component(bad), "git does not allow the name")
    # The real mlflow client uploads through the same proxy.
    from mlflow.exceptions import MlflowException

    local = tmp_path / "f.txt"
    local.write_text("x")
    for call in [
        lambda: mlflow_client.log_text(run_id, "x", "a/.git\u200c/x.txt"),
        lambda: mlflow_client.log_dict(run_id, {"a": 1}, "d/.gitmodules/x.json"),
        lambda: mlflow_client.log_artifact(run_id, str(local), "b/GIT~1"),
        lambda: mlflow_client.log_artifacts(run_id, str(tmp_path), "c/.git."),
        lambda: mlflow_client.log_text(run_id, "x", "e/.gitmodules"),
    ]:
        with pytest.raises((MlflowException, OSError)) as info:  # requests' HTTPError is an OSError
            call()
        assert "git does not allow the name" in str(info.value), str(info.value)
    # The UI's register form takes an artifact path: refused with the same explanation.
    page = http.post("/actions/register", data={"run_id": run_id, "path": "b/GIT~1", "name": "m"},
                     headers={"Origin": served.url})
    assert page.status_code == 400 and "GIT~1" in page.text and "git does not allow" in page.text
    # Good names go through, and the repository stays clean.
    mlflow_client.log_text(run_id, "ok", ".github/x")
    mlflow_client.log_text(run_id, "ok", "models/.gitkeep_not")
    ok(http.put(f"{root}/a/git/b", content=b"ok"))
    assert {f.path for f in mlflow_client.list_artifacts(run_id)} == {".github", "models", "a"}
    flush_server(http)
    assert_fsck_clean(served.repo)


def test_git_name_rules_agree_with_the_installed_gits_fsck(tmp_path):
    """The ported rules refuse exactly the names this git's fsck refuses (plus every .gitmodules
    file, which gitexp never needs), over hand-picked and random names."""
    from gitexp.store.artifacts import git_refuses_name, is_dotgitattributes, is_dotgitmodules

    names = {"git~1", "GIT~1", "git~2", "git~1.", "git~1:x", "gitmod~1", "GITMOD~4", "gitmod~5", "gi7eba~1",
             "gi7eba~9", "gi7eb~12", "g~123456", "gi~12345", "gi~1234", "gitatt~1", "gi7d29~1", "a~123456",
             "gitmod~1.txt", ".g\u200bit", ".gitmodules\u200c\u200c", ".github", ".gitx", ".gitignore", ".mailmap"}
    for needle in ("git", "GIT", "gitmodules", "GitModules", "gitattributes", "gitignore", "mailmap"):
        for suffix in ("", ".", " ", " .", ":", ":x", "x", "~1", "\u200c", "\ufeff"):
            names.update({f".{needle}{suffix}", f"\u200c.{needle}{suffix}", f".{needle[0]}\u202a{needle[1:]}{suffix}"})
    rnd = random.Random(1)
    alphabet = ".gitGITmodulesattrb ~123456789:\u200c\ufeff7eba"
    names.update("".join(rnd.choice(alphabet) for _ in range(rnd.randint(1, 10))) for _ in range(1500))
    names = sorted(n for n in names if n not in (".", ".."))

    repo = make_repo(tmp_path / "names", commit=False)
    contents = []
    for i in range(len(names)):
        contents += [f"x{i}\n", f'[submodule "../x{i}"]\n\tpath = x\n', "*" + "a" * 3000 + f" text{i}\n"]
    paths = []
    for i, text in enumerate(contents):
        path = tmp_path / f"in{i}"
        path.write_text(text)
        paths.append(str(path))
    blobs = subprocess.run(["git", "hash-object", "-w", "--stdin-paths"], cwd=repo, input="\n".join(paths),
                           capture_output=True, text=True, check=True).stdout.split()
    entries = []  # (name, kind, tree line)
    for i, name in enumerate(names):
        plain, gitmodules, attributes = blobs[3 * i:3 * i + 3]
        entries += [(name, "file", f"100644 blob {plain}\t{name}"),
                    (name, "gitmodules-file", f"100644 blob {gitmodules}\t{name}"),
                    (name, "gitattributes-file", f"100644 blob {attributes}\t{name}"),
                    (name, "dir", f"100644 blob {plain}\tf{i}")]

    def mktree(lines: list[str]) -> list[str]:
        return subprocess.run(["git", "mktree", "--batch"], cwd=repo, input="".join(line + "\n\n" for line in lines),
                              capture_output=True, text=True, check=True).stdout.split()

    owner = {}
    trees = mktree([line for _, _, line in entries])
    dirs = []
    for (name, kind, line), tree in zip(entries, trees, strict=True):
        owner[tree] = (name, kind)
        if kind == "dir":
            dirs.append((name, tree))
        else:
            owner[line.split()[2]] = (name, kind)
    for (name, _), parent in zip(dirs, mktree([f"040000 tree {tree}\t{name}" for name, tree in dirs]), strict=True):
        owner[parent] = (name, "dir")
    fsck = subprocess.run(["git", "fsck", "--strict", "--no-dangling"], cwd=repo, capture_output=True, text=True)
    flagged = set()
    for line in fsck.stderr.splitlines():
        for word in line.split()[:4]:
            if word.rstrip(":") in owner:
                flagged.add(owner[word.rstrip(":")])
    assert flagged, fsck.stderr[:2000]
    for name in names:
        refused_as_file = git_refuses_name(name, is_dir=False) is not None
        expected = {
            "file": refused_as_file and not is_dotgitmodules(name),
            "gitmodules-file": refused_as_file,
            "gitattributes-file": refused_as_file or is_dotgitattributes(name),
            "dir": git_refuses_name(name, is_dir=True) is not None,
        }
        for kind, ours in expected.items():
            assert ((name, kind) in flagged) == ours, (name, kind, ours)


# == 4. numbers Python cannot convert =================================================================
def test_bad_numbers_raise_invalid_parameter_value_naming_the_metric(repo):
    from decimal import Decimal

    import numpy as np

    client = gitexp.MlflowClient()
    with gitexp.start_run() as run:
        run_id = run.info.run_id
        for call, words in [
            (lambda: gitexp.log_metric("m", 1, timestamp=float("inf")), ["Timestamp for metric 'm'", "inf"]),
            (lambda: gitexp.log_metric("m", 1, timestamp=float("nan")), ["Timestamp for metric 'm'", "nan"]),
            (lambda: gitexp.log_metric("m", 1, timestamp=float("-inf")), ["Timestamp for metric 'm'", "-inf"]),
            (lambda: gitexp.log_metric("m", 1, timestamp=Decimal("NaN")), ["Timestamp for metric 'm'", "NaN"]),
            (lambda: gitexp.log_metric("m", 1, timestamp=1j), ["Timestamp for metric 'm'", "1j"]),
            (lambda: gitexp.log_metric("m", 10**400), ["Metric value for 'm'", "too large", "1000000000", "double"]),
            (lambda: gitexp.log_metric("m", -(10**400)), ["Metric value for 'm'", "-1000000000"]),
            (lambda: gitexp.log_metric("m", 10**50000), ["Metric value for 'm'", "-bit integer"]),
            (lambda: gitexp.log_metric("m", Fraction(10**400, 3)), ["Metric value for 'm'", "too large"]),
            (lambda: gitexp.log_metric("m", 1j), ["Metric value for 'm'", "1j"]),
            (lambda: gitexp.log_metric("m", 1, step=float("inf")), ["Step for metric 'm'", "inf"]),
            (lambda: gitexp.log_metric("m", 1, step=float("nan")), ["Step for metric 'm'", "nan"]),
            (lambda: gitexp.log_metric("m", 1, step=1.5), ["Step for metric 'm'", "1.5"]),
            (lambda: gitexp.log_metrics({"m": 10**400}), ["Metric value for 'm'", "too large"]),
            (lambda: client.log_metric(run_id, "m", 10**400), ["Metric value for 'm'", "too large"]),
            (lambda: client.log_metric(run_id, "m", 1, timestamp=float("inf")), ["Timestamp for metric 'm'"]),
            (lambda: client.log_batch(run_id, metrics=[Metric("m", 10**400, 1, 0)]), ["Metric value for 'm'"]),
            (lambda: client.log_batch(run_id, metrics=[Metric("m", 1, float("nan"), 0)]), ["Timestamp", "nan"]),
            (lambda: client.create_run("0", start_time=float("inf")), ["start_time", "inf"]),
            (lambda: client.set_terminated(run_id, end_time=float("nan")), ["end_time", "nan"]),
        ]:
            refused(call, *words)
        # What MLflow accepts stays accepted: non-finite values, numpy scalars, whole floats, fractions.
        gitexp.log_metric("inf", float("inf"))
        gitexp.log_metric("nan", float("nan"))
        gitexp.log_metric("np", np.float32(0.5), step=np.int64(3), timestamp=np.float64(1700000000000.0))
        gitexp.log_metric("fraction", Fraction(1, 4), step=2.0, timestamp=1700000000000.7)
    reset_gitexp()
    run = gitexp.MlflowClient().get_run(run_id)
    assert run.data.metrics["np"] == 0.5 and run.data.metrics["fraction"] == 0.25
    assert run.data.metrics["inf"] == float("inf")
    history = gitexp.MlflowClient().get_metric_history(run_id, "fraction")
    assert [(h.step, h.timestamp) for h in history] == [(2, 1700000000000)]


def test_bad_numbers_get_400_from_the_rest_server(http):
    run_id = ok(send(http, "POST", "/runs/create", {"experiment_id": "0"}))["run"]["info"]["run_id"]

    def raw(body: str):
        return http.post(API + "/runs/log-metric", content=body.encode(), headers={"Content-Type": "application/json"})

    bad_request(raw(f'{{"run_id": "{run_id}", "key": "m", "value": 1{"0" * 400}, "timestamp": 1}}'), "value")
    bad_request(raw(f'{{"run_id": "{run_id}", "key": "m", "value": 1, "timestamp": "Infinity"}}'), "timestamp")
    bad_request(raw(f'{{"run_id": "{run_id}", "key": "m", "value": 1, "timestamp": 1e400}}'), "timestamp")
    bad_request(raw(f'{{"run_id": "{run_id}", "key": "m", "value": 1, "timestamp": 1, "step": NaN}}'), "step")
    # MLflow's REST API reads a JSON number too large for a double as Infinity, and so does gitexp.
    ok(raw(f'{{"run_id": "{run_id}", "key": "m", "value": 1e400, "timestamp": 1}}'))
    ok(send(http, "POST", "/runs/log-metric", {"run_id": run_id, "key": "m", "value": "NaN", "timestamp": 2}))
    run = ok(http.get(f"{API}/runs/get", params={"run_id": run_id}))["run"]
    assert run["data"]["metrics"] == [{"key": "m", "value": "NaN", "timestamp": 2, "step": 0}]
