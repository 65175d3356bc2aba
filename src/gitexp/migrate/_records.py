"""Neutral records: what a reader of an MLflow store yields and the importer writes.

Runs are `store.interface.RunRecord` (what GitStore.put_runs writes); the rest is here.
Experiment ids are the source's own: gitexp derives its ids from names, so the importer
maps them (two stores' experiment "x" become one experiment).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any, Protocol

from ..store.interface import RunRecord

__all__ = ["ArtifactFile", "ExperimentRecord", "LoggedModelRecord", "ModelRecord", "ReadError", "RunRecord", "Source",
           "VersionRecord", "fingerprint", "metric_identity", "model_metric"]


@dataclass
class ExperimentRecord:
    experiment_id: str
    name: str
    artifact_location: str = ""
    lifecycle_stage: str = "active"
    tags: dict[str, str] = field(default_factory=dict)
    creation_time: int | None = None
    last_update_time: int | None = None


@dataclass
class VersionRecord:
    version: int
    source: str
    run_id: str | None = None
    description: str | None = None
    user_id: str | None = None
    current_stage: str = "None"
    status: str = "READY"
    tags: dict[str, str] = field(default_factory=dict)
    creation_time: int | None = None
    last_updated_time: int | None = None
    model_id: str | None = None


@dataclass
class ModelRecord:
    name: str
    description: str | None = None
    tags: dict[str, str] = field(default_factory=dict)
    aliases: dict[str, int] = field(default_factory=dict)
    versions: list[VersionRecord] = field(default_factory=list)
    creation_time: int | None = None
    last_updated_time: int | None = None


@dataclass
class LoggedModelRecord:
    model_id: str
    experiment_id: str
    name: str
    source_run_id: str | None
    status: str = "READY"
    model_type: str | None = None
    tags: dict[str, str] = field(default_factory=dict)
    params: dict[str, str] = field(default_factory=dict)
    lifecycle_stage: str = "active"
    creation_time: int | None = None
    files: dict[str, Callable[[], bytes]] = field(default_factory=dict)
    # MLflow 3's links to runs: metric points logged with model_id (dicts of key, value,
    # timestamp, step, run_id, dataset_name, dataset_digest), the runs that took the model as
    # input, and the runs that recorded it as an output (run id -> step).
    metrics: list[dict[str, Any]] = field(default_factory=list)
    inputs: list[str] = field(default_factory=list)
    outputs: dict[str, int] = field(default_factory=dict)


def model_metric(key: str, value: Any, timestamp: Any, step: Any, run_id: Any, dataset_name: Any = None,
                 dataset_digest: Any = None) -> dict[str, Any]:
    """A logged model's metric point as the readers yield it."""
    return {"key": key, "value": float(value), "timestamp": int(timestamp), "step": int(step or 0),
            "run_id": str(run_id) if run_id else None, "dataset_name": dataset_name or None,
            "dataset_digest": dataset_digest or None}


def metric_identity(point: dict[str, Any]) -> tuple[Any, ...]:
    """What makes two model metric points the same (NaN equal to NaN)."""
    return (point["key"], int(point["timestamp"]), int(point["step"] or 0), point.get("run_id"),
            point.get("dataset_name"), point.get("dataset_digest"), repr(float(point["value"])))


@dataclass
class ReadError:
    """A run a reader could not read: the importer reports it by name and goes on."""

    run_id: str
    name: str
    error: Exception


class ArtifactFile:
    """A file of the source store, read when it is written; `stamp` says whether it changed."""

    def __init__(self, read: Callable[[], bytes], stamp: str) -> None:
        self.read = read
        self.stamp = stamp

    def __call__(self) -> bytes:
        return self.read()


class Source(Protocol):
    """A readable MLflow store (database, mlruns/ directory or tracking server)."""

    uri: str

    def experiments(self) -> list[ExperimentRecord]: ...
    def run_ids(self, experiment_ids: list[str], since: int | None, until: int | None) -> list[str]: ...
    def runs(self, run_ids: list[str]) -> Iterator[RunRecord | ReadError]: ...
    def registered_models(self) -> list[ModelRecord]: ...
    def logged_models(self, experiment_ids: list[str]) -> list[LoggedModelRecord]: ...
    def close(self) -> None: ...


def fingerprint(record: RunRecord) -> str:
    """A digest of everything a run record holds (artifacts by their stamps), so an unchanged
    run is skipped on the next import without reading it back from the branch."""
    doc: dict[str, Any] = {
        k: getattr(record, k) for k in ("run_id", "experiment_id", "user_id", "run_name", "status",
                                        "start_time", "end_time", "lifecycle_stage", "params", "tags",
                                        "inputs")}
    doc["metrics"] = {k: [[s, t, repr(float(v))] for s, t, v in pts] for k, pts in sorted(record.metrics.items())}
    doc["artifacts"] = {p: getattr(f, "stamp", "?") for p, f in sorted(record.artifacts.items())}
    return hashlib.sha256(json.dumps(doc, sort_keys=True, default=str).encode()).hexdigest()
