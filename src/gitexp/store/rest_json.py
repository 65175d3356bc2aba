"""gitexp entities to and from the JSON of MLflow's REST API (the server writes it, RestStore reads it).

The shapes are protobuf JSON as MLflow's server writes it: snake_case names,
int64 as numbers, unset fields left out, non-finite doubles as the strings
"NaN", "Infinity", "-Infinity".

Artifact URIs are translated at this boundary.  Inside gitexp a run's files
are ``runs:/<run_id>/<path>``; MLflow clients must see a location they upload
to through the server's artifact proxy, so the API reports
``mlflow-artifacts:/<experiment_id>/<run_id>/artifacts/<path>`` (what
``mlflow server`` reports with proxied artifacts) and maps it back on the way in.
"""

from __future__ import annotations

import math
import re
from typing import TYPE_CHECKING, Any

from ..entities import (
    Dataset,
    DatasetInput,
    Experiment,
    FileInfo,
    InputTag,
    LoggedModelInput,
    LoggedModelOutput,
    Metric,
    Param,
    Run,
    RunData,
    RunInfo,
    RunInputs,
    RunOutputs,
    RunTag,
)
from . import layout

if TYPE_CHECKING:
    from ..entities.logged_model import LoggedModel
    from ..entities.model_registry import ModelVersion, RegisteredModel

PROXY_SCHEME = "mlflow-artifacts:"
_RUN_ID = re.compile(r"[0-9a-f]{32}\Z")


def number(value: float) -> Any:
    if isinstance(value, float) and not math.isfinite(value):
        return "NaN" if math.isnan(value) else ("Infinity" if value > 0 else "-Infinity")
    return value


def parse_number(value: Any) -> float:
    if isinstance(value, str):
        return float({"NaN": "nan", "Infinity": "inf", "-Infinity": "-inf"}.get(value, value))
    return float(value)


def _put(out: dict[str, Any], key: str, value: Any) -> None:
    if value is not None:
        out[key] = value


def key_values(d: dict[str, Any]) -> list[dict[str, str]]:
    return [{"key": k, "value": str(v)} for k, v in d.items()]


# -- artifact locations --------------------------------------------------------------------------
def run_artifact_uri(experiment_id: str, run_id: str, path: str = "", root: str | None = None) -> str:
    """mlflow-artifacts:/<experiment_id>/<run_id>/artifacts[/path], or under `root` (an experiment's own
    mlflow-artifacts: location, as MLflow puts its runs there) -- the files stay the run's either way."""
    prefix = root.rstrip("/") if root and root.startswith(PROXY_SCHEME) else f"{PROXY_SCHEME}/{experiment_id}"
    base = f"{prefix}/{run_id}/artifacts"
    return f"{base}/{path}" if path else base


def experiment_proxy_root(experiment: Experiment) -> str | None:
    """The experiment's own mlflow-artifacts: location when it set one (None: the default)."""
    loc = experiment.artifact_location
    if isinstance(loc, str) and loc.startswith(PROXY_SCHEME) and \
            loc.rstrip("/") != f"{PROXY_SCHEME}/{experiment.experiment_id}":
        return loc
    return None


def experiment_location(experiment: Experiment) -> str:
    default = layout.experiment_artifact_location(experiment.experiment_id)
    loc = experiment.artifact_location
    return f"{PROXY_SCHEME}/{experiment.experiment_id}" if not loc or loc == default else loc


def runs_uri_to_proxy(uri: str | None, experiment_id: str) -> str | None:
    """runs:/<run_id>/<path> -> mlflow-artifacts:/<experiment_id>/<run_id>/artifacts/<path>."""
    if not uri or not uri.startswith("runs:/"):
        return uri
    run_id, _, path = uri[len("runs:/"):].lstrip("/").partition("/")
    return run_artifact_uri(experiment_id, run_id, path.strip("/"))


def proxy_path_parts(path: str) -> tuple[str | None, str | None, str]:
    """(location, run_id, path in the run) of '<location>/<run_id>/artifacts/<path>', where the
    location is an experiment id or an experiment's own artifact location (team-a/x) and run_id a
    run id (32 hex digits; or any name right after an experiment id); Nones elsewhere."""
    parts = [p for p in path.strip("/").split("/") if p]
    for i in range(2, len(parts)):
        if parts[i] == "artifacts" and (i == 2 or _RUN_ID.match(parts[i - 1])):
            return "/".join(parts[: i - 1]), parts[i - 1], "/".join(parts[i + 1:])
    return None, None, ""


def proxy_uri_to_runs(uri: str) -> str:
    """mlflow-artifacts:/<exp>/<run>/artifacts/<path> (also with a host) -> runs:/<run>/<path>."""
    if not uri.startswith(PROXY_SCHEME):
        return uri
    rest = uri[len(PROXY_SCHEME):]
    if rest.startswith("//"):  # mlflow-artifacts://host:port/<path>
        rest = rest[2:].partition("/")[2]
    _exp, run_id, path = proxy_path_parts(rest)
    if run_id is None:
        return uri
    return f"runs:/{run_id}/{path}" if path else f"runs:/{run_id}"


# Served as text/plain, as MLflow's artifact proxy does (mlflow/utils/mime_type_utils.py).
_TEXT_EXTENSIONS = frozenset("txt log err cfg conf cnf cf ini properties prop hocon toml yaml yml xml json js py py3 "
                             "csv tsv md rst ipynb MLmodel MLproject".split())


def artifact_media_type(path: str) -> str:
    """The Content-Type MLflow's proxy sends for an artifact: text/plain for text formats, else the
    type guessed from the name, else application/octet-stream (always with nosniff)."""
    import mimetypes
    import posixpath

    name = posixpath.basename(path)
    extension = posixpath.splitext(name)[1].lstrip(".") or name
    if extension in _TEXT_EXTENSIONS:
        return "text/plain"
    return mimetypes.guess_type(name)[0] or "application/octet-stream"


# -- tracking ---------------------------------------------------------------------------------------
def metric_in(key: str, value: float, timestamp: int, step: int, model_id: str | None = None,
              dataset_name: str | None = None, dataset_digest: str | None = None) -> dict[str, Any]:
    """A metric of a log-batch request (MLflow 3's model and dataset fields only when set)."""
    out: dict[str, Any] = {"key": key, "value": number(value), "timestamp": timestamp, "step": step}
    _put(out, "model_id", model_id)
    _put(out, "dataset_name", dataset_name)
    _put(out, "dataset_digest", dataset_digest)
    return out


def metric(m: Metric, run_id: str | None = None) -> dict[str, Any]:
    out = {"key": m.key, "value": number(m.value), "timestamp": int(m.timestamp), "step": int(m.step or 0)}
    if run_id:
        out["run_id"] = run_id
    for name in ("model_id", "dataset_name", "dataset_digest"):
        value = getattr(m, name)
        if value is not None:
            out[name] = value
    return out


def experiment(e: Experiment) -> dict[str, Any]:
    out: dict[str, Any] = {"experiment_id": e.experiment_id, "name": e.name,
                           "artifact_location": experiment_location(e), "lifecycle_stage": e.lifecycle_stage}
    _put(out, "last_update_time", e.last_update_time)
    _put(out, "creation_time", e.creation_time)
    if e.tags:
        out["tags"] = key_values(e.tags)
    return out


def run_info(info: RunInfo, artifact_root: str | None = None) -> dict[str, Any]:
    out: dict[str, Any] = {"run_id": info.run_id, "run_uuid": info.run_id}
    _put(out, "run_name", info.run_name)
    out["experiment_id"] = info.experiment_id
    _put(out, "user_id", info.user_id)
    out["status"] = info.status
    _put(out, "start_time", info.start_time)
    _put(out, "end_time", info.end_time)
    out["artifact_uri"] = run_artifact_uri(info.experiment_id, info.run_id, root=artifact_root)
    out["lifecycle_stage"] = info.lifecycle_stage
    return out


def run(r: Run, artifact_root: str | None = None) -> dict[str, Any]:
    """A run's JSON; `artifact_root` is its experiment's own mlflow-artifacts: location, if any."""
    data: dict[str, Any] = {}
    metrics = r.data._metric_objs
    if metrics:
        data["metrics"] = [metric(m) for m in metrics]
    if r.data.params:
        data["params"] = key_values(r.data.params)
    if r.data.tags:
        data["tags"] = key_values(r.data.tags)
    out: dict[str, Any] = {"info": run_info(r.info, artifact_root), "data": data}
    inputs = []
    for di in r.inputs.dataset_inputs:
        d = di.dataset
        ds: dict[str, Any] = {"name": d.name, "digest": d.digest, "source_type": d.source_type, "source": d.source}
        _put(ds, "schema", d.schema)
        _put(ds, "profile", d.profile)
        item: dict[str, Any] = {"dataset": ds}
        if di.tags:
            item["tags"] = [{"key": t.key, "value": t.value} for t in di.tags]
        inputs.append(item)
    out["inputs"] = {"dataset_inputs": inputs} if inputs else {}
    model_inputs = getattr(r.inputs, "model_inputs", None)
    if model_inputs:
        out["inputs"]["model_inputs"] = [{"model_id": m.model_id} for m in model_inputs]
    model_outputs = getattr(r.outputs, "model_outputs", None)
    if model_outputs:
        out["outputs"] = {"model_outputs": [{"model_id": m.model_id, "step": int(m.step or 0)}
                                            for m in model_outputs]}
    return out


def file_info(f: FileInfo, path: str | None = None) -> dict[str, Any]:
    out: dict[str, Any] = {"path": f.path if path is None else path, "is_dir": bool(f.is_dir)}
    if not f.is_dir and f.file_size is not None:
        out["file_size"] = int(f.file_size)
    return out


# -- logged models ------------------------------------------------------------------------------
def logged_model(m: Any) -> dict[str, Any]:
    from ..entities.logged_model import LoggedModelStatus

    info: dict[str, Any] = {"model_id": m.model_id, "experiment_id": m.experiment_id, "name": m.name,
                            "creation_timestamp_ms": m.creation_timestamp,
                            "last_updated_timestamp_ms": m.last_updated_timestamp,
                            "artifact_uri": runs_uri_to_proxy(m.artifact_location, m.experiment_id),
                            "status": LoggedModelStatus.to_proto_name(m.status)}
    _put(info, "model_type", m.model_type)
    _put(info, "source_run_id", m.source_run_id)
    _put(info, "status_message", m.status_message)
    if m.tags:
        info["tags"] = key_values(m.tags)
    data: dict[str, Any] = {}
    if m.params:
        data["params"] = key_values(m.params)
    if m.metrics:
        data["metrics"] = [metric(x, x.run_id) for x in m.metrics]
    return {"info": info, "data": data}


# -- model registry -----------------------------------------------------------------------------
def model_version(v: Any) -> dict[str, Any]:
    out: dict[str, Any] = {"name": v.name, "version": str(v.version)}
    _put(out, "creation_timestamp", v.creation_timestamp)
    _put(out, "last_updated_timestamp", v.last_updated_timestamp)
    _put(out, "user_id", v.user_id)
    _put(out, "current_stage", v.current_stage)
    out["description"] = v.description or ""  # as MLflow: a version without one has ''
    _put(out, "source", v.source)
    _put(out, "run_id", v.run_id)
    out["status"] = v.status or "READY"
    _put(out, "status_message", v.status_message)
    if v.tags:
        out["tags"] = key_values(v.tags)
    _put(out, "run_link", v.run_link)
    if v.aliases:
        out["aliases"] = list(v.aliases)
    _put(out, "model_id", v.model_id)
    return out


def registered_model(m: Any) -> dict[str, Any]:
    out: dict[str, Any] = {"name": m.name}
    _put(out, "creation_timestamp", m.creation_timestamp)
    _put(out, "last_updated_timestamp", m.last_updated_timestamp)
    _put(out, "description", m.description)
    if m.latest_versions:
        out["latest_versions"] = [model_version(v) for v in m.latest_versions]
    if m.tags:
        out["tags"] = key_values(m.tags)
    if m.aliases:
        out["aliases"] = [{"alias": a, "version": str(v)} for a, v in m.aliases.items()]
    return out


# -- from JSON (RestStore) ----------------------------------------------------------------------
def _kv(items: list[dict[str, Any]] | None) -> dict[str, str]:
    return {i["key"]: i.get("value", "") for i in items or []}


def _int(value: Any) -> int | None:
    return None if value is None else int(value)


def parse_experiment(d: dict[str, Any]) -> Experiment:
    loc = d.get("artifact_location") or ""
    if loc == f"{PROXY_SCHEME}/{d['experiment_id']}":
        loc = layout.experiment_artifact_location(d["experiment_id"])
    return Experiment(d["experiment_id"], d.get("name", ""), loc, d.get("lifecycle_stage", "active"),
                      _kv(d.get("tags")), _int(d.get("creation_time")), _int(d.get("last_update_time")))


def parse_metric(d: dict[str, Any], run_id: str | None = None) -> Metric:
    return Metric(d["key"], parse_number(d.get("value", 0.0)), int(d.get("timestamp", 0)), int(d.get("step", 0)),
                  model_id=d.get("model_id"), dataset_name=d.get("dataset_name"),
                  dataset_digest=d.get("dataset_digest"), run_id=d.get("run_id") or run_id)


def parse_run_info(d: dict[str, Any]) -> RunInfo:
    return RunInfo(run_id=d.get("run_id") or d["run_uuid"], experiment_id=d["experiment_id"],
                   user_id=d.get("user_id", ""), status=d.get("status", "RUNNING"),
                   start_time=_int(d.get("start_time")) or 0, end_time=_int(d.get("end_time")),
                   lifecycle_stage=d.get("lifecycle_stage", "active"),
                   artifact_uri=proxy_uri_to_runs(d.get("artifact_uri") or ""), run_name=d.get("run_name"))


def parse_run(d: dict[str, Any]) -> Run:
    info = parse_run_info(d["info"])
    data = d.get("data") or {}
    run_data = RunData([parse_metric(m, info.run_id) for m in data.get("metrics") or []],
                       [Param(k, v) for k, v in _kv(data.get("params")).items()],
                       [RunTag(k, v) for k, v in _kv(data.get("tags")).items()])
    inputs = []
    for item in (d.get("inputs") or {}).get("dataset_inputs") or []:
        ds = item.get("dataset") or {}
        inputs.append(DatasetInput(Dataset(ds.get("name", ""), ds.get("digest", ""), ds.get("source_type", ""),
                                           ds.get("source", ""), ds.get("schema"), ds.get("profile")),
                                   [InputTag(k, v) for k, v in _kv(item.get("tags")).items()]))
    model_inputs = [LoggedModelInput(m["model_id"]) for m in (d.get("inputs") or {}).get("model_inputs") or []]
    outputs = [LoggedModelOutput(m["model_id"], int(m.get("step") or 0))
               for m in (d.get("outputs") or {}).get("model_outputs") or []]
    return Run(info, run_data, RunInputs(inputs, model_inputs), RunOutputs(outputs))


def parse_file_info(d: dict[str, Any], prefix: str = "") -> FileInfo:
    path = d["path"] if not prefix else f"{prefix}/{d['path']}"
    return FileInfo(path, bool(d.get("is_dir")), _int(d.get("file_size")))


def parse_logged_model(d: dict[str, Any]) -> LoggedModel:
    from ..entities.logged_model import LoggedModel, LoggedModelStatus

    info, data = d["info"], d.get("data") or {}
    return LoggedModel(
        experiment_id=info["experiment_id"], model_id=info["model_id"], name=info.get("name", ""),
        artifact_location=proxy_uri_to_runs(info.get("artifact_uri") or ""),
        creation_timestamp=_int(info.get("creation_timestamp_ms")) or 0,
        last_updated_timestamp=_int(info.get("last_updated_timestamp_ms")) or 0,
        model_type=info.get("model_type"), source_run_id=info.get("source_run_id") or None,
        status=LoggedModelStatus.canonical(info.get("status", "LOGGED_MODEL_PENDING")),
        status_message=info.get("status_message"), tags=_kv(info.get("tags")), params=_kv(data.get("params")),
        metrics=[parse_metric(m) for m in data.get("metrics") or []])


def parse_model_version(d: dict[str, Any]) -> ModelVersion:
    from ..entities.model_registry import ModelVersion

    return ModelVersion(
        name=d["name"], version=int(d["version"]), creation_timestamp=_int(d.get("creation_timestamp")) or 0,
        last_updated_timestamp=_int(d.get("last_updated_timestamp")), description=d.get("description"),
        user_id=d.get("user_id"), current_stage=d.get("current_stage"), source=d.get("source"),
        run_id=d.get("run_id") or None, status=d.get("status", "READY"), status_message=d.get("status_message"),
        tags=_kv(d.get("tags")), run_link=d.get("run_link"), aliases=list(d.get("aliases") or []),
        model_id=d.get("model_id"))


def parse_registered_model(d: dict[str, Any]) -> RegisteredModel:
    from ..entities.model_registry import RegisteredModel

    return RegisteredModel(
        name=d["name"], creation_timestamp=_int(d.get("creation_timestamp")),
        last_updated_timestamp=_int(d.get("last_updated_timestamp")), description=d.get("description"),
        latest_versions=[parse_model_version(v) for v in d.get("latest_versions") or []],
        tags=_kv(d.get("tags")), aliases={a["alias"]: int(a["version"]) for a in d.get("aliases") or []})


def history_entry(e: Any) -> dict[str, Any]:
    return {k: v for k, v in e if v is not None}


def parse_history_entry(d: dict[str, Any]) -> Any:
    from ..entities.model_registry import ModelHistoryEntry

    return ModelHistoryEntry(**d)
