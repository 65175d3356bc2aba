"""Real MLflow stores for the import/export tests, made by the real mlflow in a child process
(mlflow's fluent API keeps global state), and one view of a store through a client, the
same for MlflowClient and gitexp's Client, to compare object by object."""

from __future__ import annotations

import hashlib
import json
import math
import os
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

from tests.server_process import ServedProcess, free_port

SQL_STORE = r'''
import math, os, sys
import mlflow
from mlflow import MlflowClient
uri, art = sys.argv[1], sys.argv[2]
tag = sys.argv[3] if len(sys.argv) > 3 else "a"
_art = art
def place(sub=""):  # a server: its default root (mlflow-artifacts:/, through its proxy)
    return None if _art == "-" else _art + sub
mlflow.set_tracking_uri(uri); mlflow.set_registry_uri(uri)
c = MlflowClient()
e = c.create_experiment(f"exp-{tag}", artifact_location=place(), tags={"team": "ml"})
c.set_experiment_tag(e, "mlflow.note.content", "an experiment")
gone = c.create_experiment(f"gone-{tag}", artifact_location=place("/gone"))
mlflow.set_experiment(experiment_id=e)
with mlflow.start_run(run_name=f"parent-{tag}") as parent:
    mlflow.log_params({"lr": 0.1, "layers": 3})
    mlflow.set_tag("stage", "dev")
    for i, v in enumerate([1.0, float("nan"), float("inf"), -float("inf"), 0.25]):
        mlflow.log_metric("loss", v, step=i, timestamp=1_700_000_000_000 + i)
    mlflow.log_metric("loss", 0.5, step=4, timestamp=1_700_000_000_100)  # two points at one step
    for i in range(3):
        with mlflow.start_run(run_name=f"child-{i}", nested=True):
            mlflow.log_metric("acc", 0.5 + i / 10, step=0)
    import pandas as pd
    mlflow.log_input(mlflow.data.from_pandas(pd.DataFrame({"a": [1, 2]}), name="train", targets="a"),
                     context="training", tags={"split": "train"})
    os.makedirs("/tmp/_art_" + tag, exist_ok=True)
    open(f"/tmp/_art_{tag}/notes.txt", "w").write("hello")
    mlflow.log_artifact(f"/tmp/_art_{tag}/notes.txt", "sub/dir")
    mlflow.log_text("top level", "top.txt")
with mlflow.start_run(run_name=f"modeller-{tag}") as modeller:
    class Echo(mlflow.pyfunc.PythonModel):
        def predict(self, context, model_input):
            return model_input
    info = mlflow.pyfunc.log_model(name="model", python_model=Echo(), registered_model_name=f"reg-{tag}")
    mlflow.log_text("x", "model_copy/MLmodel")
    # MLflow 3's links: a metric of the logged model (no dataset), logged in its source run
    c.log_metric(modeller.info.run_id, "train_loss", 0.125, step=0, timestamp=1_700_000_000_200,
                 model_id=info.model_id)
from mlflow.entities import LoggedModelInput, LoggedModelOutput
with mlflow.start_run(run_name=f"failed-{tag}") as failed:
    mlflow.log_param("p", "1")
    # a run evaluating the model on a dataset: the model is its input and its output (at step 3)
    c.log_metric(failed.info.run_id, "eval_acc", 0.75, step=1, timestamp=1_700_000_000_300,
                 model_id=info.model_id, dataset_name="holdout", dataset_digest="abc123")
    c.log_inputs(failed.info.run_id, models=[LoggedModelInput(info.model_id)])
    c.log_outputs(failed.info.run_id, [LoggedModelOutput(info.model_id, 3)])
mlflow.end_run()
c.set_terminated(failed.info.run_id, "FAILED")
with mlflow.start_run(run_name=f"deleted-{tag}") as deleted:
    mlflow.log_metric("m", 1.0)
    c.log_metric(deleted.info.run_id, "eval_acc", 0.5, step=2, timestamp=1_700_000_000_400,
                 model_id=info.model_id, dataset_name="holdout", dataset_digest="abc123")
    c.log_inputs(deleted.info.run_id, models=[LoggedModelInput(info.model_id)])
c.delete_run(deleted.info.run_id)
c.create_model_version(f"reg-{tag}", f"runs:/{modeller.info.run_id}/model_copy", modeller.info.run_id,
                       tags={"kind": "copy"}, description="second")
v3 = c.create_model_version(f"reg-{tag}", f"runs:/{modeller.info.run_id}/model_copy", modeller.info.run_id)
c.delete_model_version(f"reg-{tag}", v3.version)
c.create_model_version(f"reg-{tag}", f"runs:/{modeller.info.run_id}/model_copy", modeller.info.run_id)
c.set_registered_model_alias(f"reg-{tag}", "champion", "1")
c.set_registered_model_alias(f"reg-{tag}", "challenger", "2")
import warnings; warnings.simplefilter("ignore")
c.transition_model_version_stage(f"reg-{tag}", "1", "Production")
c.transition_model_version_stage(f"reg-{tag}", "2", "Staging")
c.set_model_version_tag(f"reg-{tag}", "1", "validated", "yes")
c.update_registered_model(f"reg-{tag}", "a registered model")
c.set_registered_model_tag(f"reg-{tag}", "owner", "team-" + tag)
shared = c.create_experiment("shared", artifact_location=place("/shared"), tags={"kind": "shared"})
mlflow.set_experiment(experiment_id=shared)
with mlflow.start_run(run_name=f"shared-{tag}"):
    mlflow.log_metric("s", 1.0, step=1)
mlflow.set_experiment(experiment_id=gone)
with mlflow.start_run(run_name=f"in-gone-{tag}"):
    mlflow.log_metric("g", 2.0)
c.delete_experiment(gone)
'''

FILE_STORE = r'''
import math, os, sys
os.environ["MLFLOW_ALLOW_FILE_STORE"] = "true"
from mlflow.store.tracking.file_store import FileStore
from mlflow.store.model_registry.file_store import FileStore as RegistryFileStore
from mlflow.entities import Metric, Param, RunTag, DatasetInput, Dataset, InputTag, RunStatus, ExperimentTag
root = sys.argv[1]
fs = FileStore(root, root)
e = fs.create_experiment("files-exp", tags=[ExperimentTag("team", "hpc")])
parent = fs.create_run(e, "alice", 1_000, [RunTag("mlflow.runName", "p")], "p")
pid = parent.info.run_id
fs.log_batch(pid, [Metric("loss", v, 2_000 + i, i) for i, v in enumerate([1.0, math.nan, math.inf, -math.inf])],
             [Param("p", "1"), Param("nested/key", "2")], [RunTag("t", "x"), RunTag("a/b", "c")])
fs.log_inputs(pid, [DatasetInput(Dataset("d", "dg", "code", "src", "sch", "prof"),
                                 [InputTag("mlflow.data.context", "training")])])
fs.update_run_info(pid, RunStatus.FINISHED, 3_000, "p")
art = parent.info.artifact_uri
os.makedirs(os.path.join(art, "plots"), exist_ok=True)
open(os.path.join(art, "plots", "a.txt"), "w").write("plot")
child = fs.create_run(e, "alice", 1_500, [RunTag("mlflow.parentRunId", pid), RunTag("mlflow.runName", "c")], "c")
fs.log_metric(child.info.run_id, Metric("acc", 0.9, 2_500, 0))
fs.update_run_info(child.info.run_id, RunStatus.KILLED, 2_600, "c")
gone = fs.create_experiment("files-gone")
fs.create_run(gone, "bob", 1_000, [], "r2")
fs.delete_experiment(gone)
from mlflow.entities import LoggedModelInput, LoggedModelOutput
fmodel = fs.create_logged_model(e, "files-model-logged", source_run_id=pid).model_id
# step 0: MLflow's file store reads a run's metric line that names a dataset back at step 0 (its
# _get_metric_from_line), whatever step it wrote; gitexp's reader keeps the step written
fs.log_batch(child.info.run_id, [Metric("eval", 0.5, 2_700, 0, model_id=fmodel, dataset_name="d",
                                        dataset_digest="dg")], [], [])
fs.log_batch(pid, [Metric("fit", 0.25, 2_800, 0, model_id=fmodel)], [], [])
fs.log_inputs(child.info.run_id, models=[LoggedModelInput(fmodel)])
fs.log_outputs(child.info.run_id, [LoggedModelOutput(fmodel, 2)])
reg = RegistryFileStore(root)
reg.create_registered_model("files-model", description="from files")
reg.create_model_version("files-model", os.path.join(art, "plots"), pid, description="v1")
reg.set_registered_model_alias("files-model", "best", "1")
'''


def run_mlflow(script: str, *args: str) -> None:
    env = {**os.environ, "MLFLOW_ALLOW_FILE_STORE": "true", "GIT_PYTHON_REFRESH": "quiet"}
    env.pop("MLFLOW_TRACKING_URI", None)
    with tempfile.TemporaryDirectory() as cwd:
        result = subprocess.run([sys.executable, "-c", script, *args], capture_output=True, text=True,
                                env=env, cwd=cwd, timeout=300)
    if result.returncode != 0:
        raise AssertionError(f"making the MLflow store failed:\n{result.stderr[-3000:]}")


class MlflowServer(ServedProcess):
    """`python -m mlflow server` on a sqlite store, proxying artifacts (mlflow-artifacts:/)."""

    name = "mlflow server"

    def __init__(self, path: Path) -> None:
        path.mkdir(parents=True, exist_ok=True)
        port = free_port()
        env = {"MLFLOW_DISABLE_TELEMETRY": "true", "MLFLOW_TRACKING_URI": None}
        super().__init__([sys.executable, "-m", "mlflow", "server", "--backend-store-uri",
                          f"sqlite:///{path / 'server.db'}", "--artifacts-destination", str(path / "artifacts"),
                          "--host", "127.0.0.1", "--port", str(port), "--workers", "1"],
                         path, port=port, cwd=path, env=env, timeout=120)


def server_store(url: str, tag: str = "s") -> str:
    """The same content as sqlite_store, logged through a running MLflow server."""
    run_mlflow(SQL_STORE, url, "-", tag)
    return url


def sqlite_store(path: Path, tag: str = "a") -> str:
    """A sqlite MLflow store made by the real mlflow; its URI."""
    path.mkdir(parents=True, exist_ok=True)
    uri = f"sqlite:///{path / 'mlflow.db'}"
    run_mlflow(SQL_STORE, uri, str(path / "artifacts"), tag)
    return uri


def file_store(path: Path) -> str:
    """An mlruns/ directory written by MLflow's own FileStore classes; its path."""
    run_mlflow(FILE_STORE, str(path))
    return str(path)


def _num(value: float) -> str:
    return "nan" if math.isnan(value) else repr(float(value))


def _pages(call: Any, **kwargs: Any) -> list[Any]:
    out: list[Any] = []
    token = None
    while True:
        page = call(page_token=token, **kwargs)
        out += list(page)
        token = page.token
        if not token:
            return out


def _artifacts(client: Any, run_id: str, skip: set[str]) -> dict[str, str]:
    out: dict[str, str] = {}
    todo: list[str | None] = [None]
    with tempfile.TemporaryDirectory() as tmp:
        while todo:
            for info in client.list_artifacts(run_id, todo.pop()):
                if info.path.split("/")[0] in skip:
                    continue
                if info.is_dir:
                    todo.append(info.path)
                else:
                    local = client.download_artifacts(run_id, info.path, tmp)
                    out[info.path] = hashlib.sha256(Path(local).read_bytes()).hexdigest()[:12]
    return out


def _model_files(client: Any, model: Any) -> list[str]:
    """The paths of a logged model's files (relative to it): gitexp's in its run, MLflow's at its
    artifact location."""
    location = str(model.artifact_location)
    if location.startswith("runs:/"):
        run_id, _, path = location[len("runs:/"):].partition("/")
        return [f.path[len(path) + 1:] for f in _walk(lambda p: client.list_artifacts(run_id, p), path)]
    from mlflow.store.artifact.artifact_repository_registry import get_artifact_repository

    repo = get_artifact_repository(location, tracking_uri=client._tracking_client.tracking_uri)
    return [f.path for f in _walk(repo.list_artifacts, None)]


def _walk(listing: Any, top: str | None) -> list[Any]:
    out, todo = [], [top]
    while todo:
        here = todo.pop()
        for info in listing(here):
            if info.is_dir:
                todo.append(info.path)
            else:
                out.append(info)
    return out


def _links(client: Any, run_id: str, outputs: bool) -> dict[str, Any]:
    """A run's model inputs and outputs (get_run: a search leaves model inputs out)."""
    run = client.get_run(run_id)
    out: dict[str, Any] = {"model_inputs": sorted(m.model_id for m in run.inputs.model_inputs or [])}
    if outputs:
        out["model_outputs"] = sorted([m.model_id, m.step] for m in (run.outputs.model_outputs if run.outputs else []))
    return out


def view(client: Any, registry: bool = True, skip_artifacts: dict[str, set[str]] | None = None,
         outputs: bool = True) -> dict[str, Any]:
    """Everything `gitexp import` carries, as plain data keyed by names and run ids (`outputs=False`:
    without runs' model outputs, which MLflow's file store reads back wrong)."""
    experiments = {e.experiment_id: e for e in _pages(client.search_experiments, view_type=3, max_results=1000)}
    doc: dict[str, Any] = {"experiments": {}, "runs": {}, "models": {}}
    for e in experiments.values():
        if e.name == "Default" and not _pages(client.search_runs, experiment_ids=[e.experiment_id],
                                              run_view_type=3, max_results=1000):
            continue
        doc["experiments"][e.name] = {"lifecycle": e.lifecycle_stage, "tags": dict(e.tags),
                                      "created": e.creation_time}
    runs = _pages(client.search_runs, experiment_ids=list(experiments), run_view_type=3, max_results=1000)
    for run in runs:
        i = run.info
        inputs = sorted(json.dumps([{k: getattr(d.dataset, k) for k in ("name", "digest", "source_type", "source",
                                                                        "schema", "profile")},
                                    {t.key: t.value for t in d.tags}], sort_keys=True)
                        for d in run.inputs.dataset_inputs)
        doc["runs"][i.run_id] = {
            "experiment": experiments[i.experiment_id].name, "name": i.run_name, "user": i.user_id,
            "start": i.start_time, "end": i.end_time, "status": i.status, "lifecycle": i.lifecycle_stage,
            "params": dict(run.data.params), "tags": dict(run.data.tags),
            "metrics": {k: sorted([m.step, m.timestamp, _num(m.value)]
                                  for m in client.get_metric_history(i.run_id, k)) for k in run.data.metrics},
            "inputs": inputs,
            **_links(client, i.run_id, outputs),
            "artifacts": _artifacts(client, i.run_id, (skip_artifacts or {}).get(i.run_id, set())),
        }
    doc["logged_models"] = {}
    for m in _pages(client.search_logged_models, experiment_ids=list(experiments), max_results=100):
        status = getattr(m.status, "name", str(m.status))
        doc["logged_models"][m.model_id] = {
            "name": m.name, "experiment": experiments[m.experiment_id].name, "source_run": m.source_run_id,
            "tags": {k: v for k, v in m.tags.items()}, "params": dict(m.params),
            "status": status.replace("LOGGED_MODEL_", "").replace("UPLOAD_", ""), "created": m.creation_timestamp,
            "files": sorted(_model_files(client, m)),
            "metrics": sorted([p.key, p.step, p.timestamp, _num(p.value), p.run_id, p.dataset_name, p.dataset_digest]
                              for p in m.metrics or []),
        }
    if registry:
        for m in _pages(client.search_registered_models, max_results=1000):
            versions = _pages(client.search_model_versions, filter_string=f"name='{m.name}'", max_results=1000)
            doc["models"][m.name] = {
                "description": m.description or "", "tags": dict(m.tags), "created": m.creation_timestamp,
                "updated": m.last_updated_timestamp,
                "aliases": {k: str(v) for k, v in (m.aliases or {}).items()},
                "versions": {str(v.version): {"run_id": v.run_id, "stage": v.current_stage, "tags": dict(v.tags),
                                              "created": v.creation_timestamp, "updated": v.last_updated_timestamp,
                                              "description": v.description or "", "status": v.status}
                             for v in versions},
            }
    return doc
