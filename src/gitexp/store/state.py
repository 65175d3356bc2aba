"""Folding: a run's own files, then its events, then pending changes -> one state.

Every change to a run or an experiment is an *op*, a small dict such as
``{"op": "tag", "key": "team", "value": "ml"}``.  Journals hold ops one per
line; event files hold lists of ops; a run's own files are the folded ops of
the session that created it.  Folding applies ops in (time, id) order, which
is the order of event file names, so every clone computes the same state.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from ..entities import (
    Dataset,
    DatasetInput,
    Experiment,
    InputTag,
    LifecycleStage,
    Metric,
    Param,
    Run,
    RunData,
    RunInfo,
    RunInputs,
    RunTag,
)
from . import layout
from .histories import newer

TERMINAL = ("FINISHED", "FAILED", "KILLED")
RUN_NAME_TAG = "mlflow.runName"
# Set on a run folded from a file (or event) that could not be read: "<file> line <n>: <problem>".
DAMAGED_TAG = "gitexp.damaged"


class RunState:
    """Everything known about one run; built by applying ops."""

    __slots__ = (
        "run_id", "experiment_id", "run_name", "user_id", "status", "start_time", "end_time",
        "lifecycle_stage", "params", "tags", "latest", "points", "keep_points", "inputs", "code",
        "param_conflicts", "artifacts", "damaged",
    )

    def __init__(self, run_id: str, keep_points: bool = True) -> None:
        self.run_id = run_id
        self.experiment_id = layout.DEFAULT_EXPERIMENT_ID
        self.run_name: str | None = None
        self.user_id = ""
        self.status = "RUNNING"
        self.start_time = 0
        self.end_time: int | None = None
        self.lifecycle_stage = LifecycleStage.ACTIVE
        self.params: dict[str, str] = {}
        self.tags: dict[str, str] = {}
        # The latest point of each metric (what searches and Run entities show).
        self.latest: dict[str, tuple[int, int, float]] = {}
        # Points NOT in the run's own history files: logged through events or still
        # pending.  A run's own history is read from its files on demand
        # (TrackingBranch.history), so folding a run never holds a long history.
        # A writing session's own state does not keep them (keep_points=False).
        self.points: dict[str, list[tuple[int, int, float]]] = {}
        self.keep_points = keep_points
        self.inputs: list[dict[str, Any]] = []
        self.code: dict[str, Any] | None = None
        self.param_conflicts: list[tuple[str, str, str]] = []
        # Artifacts logged by events and pending ops, path -> op, in fold order (later wins).
        # The run's own artifacts are the tree under artifacts/, read on demand.
        self.artifacts: dict[str, dict[str, Any]] = {}
        # Files of the branch this run was folded from that could not be read: (path, line, problem).
        self.damaged: list[tuple[str, int | None, str]] = []

    def note_damage(self, path: str, line: int | None, problem: str) -> None:
        """Fold around a file that cannot be read, and say so in the tag DAMAGED_TAG (so
        searches, the UI and `gitexp doctor` show the run and where it is damaged)."""
        self.damaged.append((path, line, problem))
        self.tags[DAMAGED_TAG] = "; ".join(
            f"{p}{f' line {n}' if n else ''}: {what}" for p, n, what in self.damaged)[:4000]

    # -- applying ops -----------------------------------------------------------
    def apply(self, op: dict[str, Any]) -> None:
        kind = op["op"]
        if kind == "metric":
            self.add_metric(op["key"], op["step"], op["timestamp"], op["value"])
        elif kind == "param":
            self.set_param(op["key"], op["value"])
        elif kind == "tag":
            self.tags[op["key"]] = op["value"]
            if op["key"] == RUN_NAME_TAG:
                self.run_name = op["value"]
        elif kind == "delete_tag":
            self.tags.pop(op["key"], None)
        elif kind == "status":
            self.status = op["status"]
            self.end_time = op.get("end_time") if op["status"] in TERMINAL else None
        elif kind == "name":
            self.run_name = op["run_name"]
            self.tags[RUN_NAME_TAG] = op["run_name"]
        elif kind == "lifecycle":
            self.lifecycle_stage = op["stage"]
        elif kind == "input":
            self.add_input(op["dataset"], op.get("tags") or {})
        elif kind == "create":
            self.experiment_id = op["experiment_id"]
            self.user_id = op.get("user_id", "")
            self.start_time = op.get("start_time", 0)
            self.status = op.get("status", "RUNNING")
            if op.get("run_name"):
                self.run_name = op["run_name"]
                self.tags[RUN_NAME_TAG] = op["run_name"]
        elif kind == "code":
            self.code = op["code"]
        elif kind == "artifact":
            self.artifacts.pop(op["path"], None)
            self.artifacts[op["path"]] = op
        # Unknown ops come from a newer gitexp; skipping them keeps old readers working.

    def apply_all(self, ops: Iterable[dict[str, Any]]) -> None:
        for op in ops:
            self.apply(op)

    def set_param(self, key: str, value: str) -> None:
        old = self.params.get(key)
        if old is None:
            self.params[key] = value
        elif old != value:
            # Two clones logged different values concurrently: the first folded wins.
            self.param_conflicts.append((key, old, value))

    def add_metric(self, key: str, step: int, timestamp: int, value: float) -> None:
        point = (step, timestamp, value)
        if newer(point, self.latest.get(key)):
            self.latest[key] = point
        if self.keep_points:
            points = self.points.get(key)
            if points is None:
                self.points[key] = [point]
            else:
                points.append(point)

    def add_input(self, dataset: dict[str, Any], tags: dict[str, Any]) -> None:
        ident = (dataset.get("name"), dataset.get("digest"), tags.get("mlflow.data.context"))
        for existing in self.inputs:
            d = existing["dataset"]
            if (d.get("name"), d.get("digest"), existing["tags"].get("mlflow.data.context")) == ident:
                existing["tags"].update(tags)
                return
        self.inputs.append({"dataset": dict(dataset), "tags": dict(tags)})

    # -- reading -----------------------------------------------------------------
    def latest_metrics(self) -> dict[str, tuple[int, int, float]]:
        return self.latest

    def to_run(self) -> Run:
        info = RunInfo(
            run_id=self.run_id,
            experiment_id=self.experiment_id,
            user_id=self.user_id,
            status=self.status,
            start_time=self.start_time,
            end_time=self.end_time,
            lifecycle_stage=self.lifecycle_stage,
            artifact_uri=layout.artifact_uri(self.run_id),
            run_name=self.run_name,
        )
        metrics = [
            Metric(k, v, ts, step, run_id=self.run_id)
            for k, (step, ts, v) in self.latest_metrics().items()
        ]
        data = RunData(
            metrics=metrics,
            params=[Param(k, v) for k, v in self.params.items()],
            tags=[RunTag(k, v) for k, v in self.tags.items()],
        )
        inputs = RunInputs([
            DatasetInput(
                Dataset(
                    name=i["dataset"].get("name", ""),
                    digest=i["dataset"].get("digest", ""),
                    source_type=i["dataset"].get("source_type", ""),
                    source=i["dataset"].get("source", ""),
                    schema=i["dataset"].get("schema"),
                    profile=i["dataset"].get("profile"),
                ),
                [InputTag(k, v) for k, v in i["tags"].items()],
            )
            for i in self.inputs
        ])
        return Run(info, data, inputs)

    def copy(self) -> RunState:
        other = RunState(self.run_id)
        for name in self.__slots__:
            setattr(other, name, getattr(self, name))
        other.params = dict(self.params)
        other.tags = dict(self.tags)
        other.latest = dict(self.latest)
        other.points = {k: list(v) for k, v in self.points.items()}
        other.keep_points = True
        other.inputs = [{"dataset": dict(i["dataset"]), "tags": dict(i["tags"])} for i in self.inputs]
        other.param_conflicts = list(self.param_conflicts)
        other.artifacts = dict(self.artifacts)
        other.damaged = list(self.damaged)
        return other

    # -- the run's own files -------------------------------------------------------
    def info_doc(self) -> dict[str, Any]:
        return {
            "run_id": self.run_id,
            "experiment_id": self.experiment_id,
            "run_name": self.run_name,
            "user_id": self.user_id,
            "status": self.status,
            "start_time": self.start_time,
            "end_time": self.end_time,
        }

    def load_info_doc(self, doc: dict[str, Any]) -> None:
        self.experiment_id = str(doc.get("experiment_id", layout.DEFAULT_EXPERIMENT_ID))
        self.run_name = doc.get("run_name")
        self.user_id = doc.get("user_id") or ""
        self.status = doc.get("status") or "RUNNING"
        self.start_time = doc.get("start_time") or 0
        self.end_time = doc.get("end_time")


class ExperimentState:
    __slots__ = ("experiment_id", "name", "artifact_location", "lifecycle_stage", "tags",
                 "creation_time", "last_update_time")

    def __init__(self, experiment_id: str) -> None:
        self.experiment_id = experiment_id
        self.name: str | None = None
        self.artifact_location = layout.experiment_artifact_location(experiment_id)
        self.lifecycle_stage = LifecycleStage.ACTIVE
        self.tags: dict[str, str] = {}
        self.creation_time: int | None = None
        self.last_update_time: int | None = None

    def apply(self, op: dict[str, Any], time: int | None) -> None:
        kind = op["op"]
        if kind == "create":
            if self.name is None:
                self.name = op["name"]
                self.creation_time = time
                if op.get("artifact_location"):
                    self.artifact_location = op["artifact_location"]
            # A second "create" (another clone made the same experiment) adds its tags.
            for k, v in (op.get("tags") or {}).items():
                self.tags.setdefault(k, v)
        elif kind == "rename":
            self.name = op["name"]
        elif kind == "tag":
            self.tags[op["key"]] = op["value"]
        elif kind == "delete_tag":
            self.tags.pop(op["key"], None)
        elif kind == "lifecycle":
            self.lifecycle_stage = op["stage"]
        if time is not None:
            self.last_update_time = max(self.last_update_time or 0, time)

    def to_experiment(self) -> Experiment:
        return Experiment(
            experiment_id=self.experiment_id,
            name=self.name or "",
            artifact_location=self.artifact_location,
            lifecycle_stage=self.lifecycle_stage,
            tags=dict(self.tags),
            creation_time=self.creation_time,
            last_update_time=self.last_update_time,
        )


def default_experiment() -> ExperimentState:
    state = ExperimentState(layout.DEFAULT_EXPERIMENT_ID)
    state.name = layout.DEFAULT_EXPERIMENT_NAME
    return state
