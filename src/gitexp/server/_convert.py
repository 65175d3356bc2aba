"""gitexp entities to and from the JSON MLflow's REST API sends.

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
from typing import Any

from ..entities import Experiment, FileInfo, Metric, Run, RunInfo
from ..store import layout

PROXY_SCHEME = "mlflow-artifacts:"


def number(value: float) -> Any:
    if isinstance(value, float) and not math.isfinite(value):
        return "NaN" if math.isnan(value) else ("Infinity" if value > 0 else "-Infinity")
    return value


def parse_number(value: Any) -> float:
    if isinstance(value, str):
        return float({"NaN": "nan", "Infinity": "inf", "-Infinity": "-inf"}.get(value, value))
    return float(value)


def _put(out: dict, key: str, value: Any) -> None:
    if value is not None:
        out[key] = value


def key_values(d: dict[str, Any]) -> list[dict[str, str]]:
    return [{"key": k, "value": str(v)} for k, v in d.items()]


# -- artifact locations --------------------------------------------------------------------------
def run_artifact_uri(experiment_id: str, run_id: str, path: str = "") -> str:
    base = f"{PROXY_SCHEME}/{experiment_id}/{run_id}/artifacts"
    return f"{base}/{path}" if path else base


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
    """(experiment_id, run_id, path in the run) of '<exp>/<run>/artifacts/<path>'; Nones elsewhere."""
    parts = [p for p in path.strip("/").split("/") if p]
    if len(parts) >= 3 and parts[2] == "artifacts":
        return parts[0], parts[1], "/".join(parts[3:])
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


# -- tracking ---------------------------------------------------------------------------------------
def metric(m: Metric, run_id: str | None = None) -> dict[str, Any]:
    out = {"key": m.key, "value": number(m.value), "timestamp": int(m.timestamp), "step": int(m.step or 0)}
    if run_id:
        out["run_id"] = run_id
    return out


def experiment(e: Experiment) -> dict[str, Any]:
    out: dict[str, Any] = {"experiment_id": e.experiment_id, "name": e.name,
                           "artifact_location": experiment_location(e), "lifecycle_stage": e.lifecycle_stage}
    _put(out, "last_update_time", e.last_update_time)
    _put(out, "creation_time", e.creation_time)
    if e.tags:
        out["tags"] = key_values(e.tags)
    return out


def run_info(info: RunInfo) -> dict[str, Any]:
    out: dict[str, Any] = {"run_id": info.run_id, "run_uuid": info.run_id}
    _put(out, "run_name", info.run_name)
    out["experiment_id"] = info.experiment_id
    _put(out, "user_id", info.user_id)
    out["status"] = info.status
    _put(out, "start_time", info.start_time)
    _put(out, "end_time", info.end_time)
    out["artifact_uri"] = run_artifact_uri(info.experiment_id, info.run_id)
    out["lifecycle_stage"] = info.lifecycle_stage
    return out


def run(r: Run, model_outputs: list[str] | None = None) -> dict[str, Any]:
    data: dict[str, Any] = {}
    metrics = r.data._metric_objs
    if metrics:
        data["metrics"] = [metric(m) for m in metrics]
    if r.data.params:
        data["params"] = key_values(r.data.params)
    if r.data.tags:
        data["tags"] = key_values(r.data.tags)
    out: dict[str, Any] = {"info": run_info(r.info), "data": data}
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
    if model_outputs:
        out["outputs"] = {"model_outputs": [{"model_id": m, "step": 0} for m in model_outputs]}
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
        data["metrics"] = [metric(x) for x in m.metrics]
    return {"info": info, "data": data}


# -- model registry -----------------------------------------------------------------------------
def model_version(v: Any) -> dict[str, Any]:
    out: dict[str, Any] = {"name": v.name, "version": str(v.version)}
    _put(out, "creation_timestamp", v.creation_timestamp)
    _put(out, "last_updated_timestamp", v.last_updated_timestamp)
    _put(out, "user_id", v.user_id)
    _put(out, "current_stage", v.current_stage)
    _put(out, "description", v.description)
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
