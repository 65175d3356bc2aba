"""Logged models (MLflow 3): small event records on the branch, files as run artifacts.

    .tracking/logged-models/<model_id>/events/<time>-<uid>.yaml

A logged model is created, finalized, tagged and deleted by event files only
(as experiments and the registry are), so merges stay conflict-free.  Its files
are ordinary artifacts of a run: of its source run, in a directory named after
the model (``runs:/<run_id>/<name>``, where MLflow 2 and gitexp's own
``log_model`` put models too), or -- for a model logged outside any run -- of a
*holder run* created for it in the same experiment (tag ``gitexp.loggedModelId``),
because every artifact in gitexp belongs to a run.

Ops: ``create`` (id, experiment, name, type, source run, where the files are,
first params and tags), ``status``, ``tag``, ``delete_tag``, ``param``,
``lifecycle``, and the model's links to runs: ``metric`` (one point logged with
``model_id=``: key, value, step, timestamp, run_id, dataset_name, dataset_digest),
``input`` (a run took the model as input: run_id) and ``output`` (a run recorded it
as an output: run_id, step).  Folding sorts event names ((time, id) order); unknown
ops are skipped (so a gitexp without the link ops reads the rest).
"""

from __future__ import annotations

import builtins
import re
import threading
import uuid
from collections.abc import Iterable, Sequence
from typing import Any, cast

from .. import _validation as valid
from .._names import random_run_name
from ..entities import LifecycleStage, LoggedModelInput, LoggedModelOutput, Metric, PagedList
from ..entities.logged_model import LoggedModel, LoggedModelStatus
from ..exceptions import InvalidParameterValue, ResourceAlreadyExists, ResourceDoesNotExist
from . import layout
from .objects import _LRU

LOGGED_MODELS = f"{layout.ROOT}/logged-models"
HOLDER_TAG = "gitexp.loggedModelId"
MODEL_VERSIONS_TAG = "mlflow.modelVersions"
_MODEL_ID = re.compile(r"m-[0-9a-f]{32}\Z")
_BAD_NAME_CHARS = ("/", ":", ".", "%", '"', "'")


def is_model_id(value: Any) -> bool:
    """True for a logged model id (``m-`` and 32 hex digits)."""
    return isinstance(value, str) and _MODEL_ID.match(value) is not None


def model_id_from_uri(uri: str) -> str | None:
    """The logged model id of ``models:/m-<hex>[/path]``, else None."""
    if not isinstance(uri, str) or not uri.startswith("models:"):
        return None
    rest = uri[len("models:"):].lstrip("/")
    head = rest.split("/", 1)[0]
    return head if is_model_id(head) else None


def check_model_id(model_id: Any) -> str:
    if not is_model_id(model_id):
        raise InvalidParameterValue(
            f"Invalid logged model id {model_id!r}: expected 'm-' followed by 32 hex digits, as returned "
            "by create_logged_model (model_info.model_id)", model_id=model_id)
    return cast(str, model_id)  # is_model_id: a string


def check_name(name: Any) -> str:
    if not isinstance(name, str) or not name or any(c in name for c in _BAD_NAME_CHARS):
        raise InvalidParameterValue(
            f"Invalid model name ({name!r}) provided. Model name must be a non-empty string and cannot "
            f"contain the following characters: {_BAD_NAME_CHARS}", name=name)
    from .artifacts import validate_artifact_path

    # The name is the model's directory among its run's artifacts: the same rules as any artifact name.
    return validate_artifact_path(valid.text("Logged model name", name, name=name), "logged model name",
                                  allow_root=False)


class ModelState:
    """One logged model folded from its events."""

    __slots__ = ("model_id", "experiment_id", "name", "model_type", "source_run_id", "artifact_run_id",
                 "artifact_path", "status", "status_message", "tags", "params", "lifecycle_stage",
                 "creation_time", "last_updated", "metrics", "inputs", "outputs")

    def __init__(self, model_id: str) -> None:
        self.model_id = model_id
        self.experiment_id = layout.DEFAULT_EXPERIMENT_ID
        self.name = ""
        self.model_type: str | None = None
        self.source_run_id: str | None = None
        self.artifact_run_id: str | None = None
        self.artifact_path = ""
        self.status = LoggedModelStatus.PENDING
        self.status_message: str | None = None
        self.tags: dict[str, str] = {}
        self.params: dict[str, str] = {}
        self.lifecycle_stage = LifecycleStage.ACTIVE
        self.creation_time = 0
        self.last_updated = 0
        self.metrics: list[dict[str, Any]] = []   # ``metric`` ops, in fold order
        self.inputs: dict[str, None] = {}         # run ids that took the model as input
        self.outputs: dict[str, int] = {}         # run id -> step of its recorded output

    def apply(self, op: dict[str, Any], time: int) -> None:
        kind = op.get("op")
        if kind == "create":
            self.experiment_id = str(op.get("experiment_id", self.experiment_id))
            self.name = op.get("name") or self.name
            self.model_type = op.get("model_type")
            self.source_run_id = op.get("source_run_id")
            self.artifact_run_id = op.get("artifact_run_id")
            self.artifact_path = op.get("artifact_path") or ""
            self.params.update(op.get("params") or {})
            self.tags.update(op.get("tags") or {})
            self.creation_time = time
        elif kind == "status":
            self.status = op.get("status", self.status)
            self.status_message = op.get("message")
        elif kind == "tag":
            self.tags[op["key"]] = op["value"]
        elif kind == "delete_tag":
            self.tags.pop(op["key"], None)
        elif kind == "param":
            self.params.setdefault(op["key"], op["value"])
        elif kind == "lifecycle":
            self.lifecycle_stage = op.get("stage", self.lifecycle_stage)
        elif kind == "metric":
            self.metrics.append(op)
        elif kind == "input":
            self.inputs[str(op["run_id"])] = None
        elif kind == "output":
            self.outputs[str(op["run_id"])] = int(op.get("step") or 0)
        self.last_updated = max(self.last_updated, time)

    @property
    def artifact_location(self) -> str:
        base = f"runs:/{self.artifact_run_id}"
        return f"{base}/{self.artifact_path}" if self.artifact_path else base

    def to_entity(self) -> LoggedModel:
        return LoggedModel(
            experiment_id=self.experiment_id, model_id=self.model_id, name=self.name,
            artifact_location=self.artifact_location, creation_timestamp=self.creation_time,
            last_updated_timestamp=self.last_updated, model_type=self.model_type,
            source_run_id=self.source_run_id, status=self.status, status_message=self.status_message,
            tags=dict(self.tags), params=dict(self.params),
            metrics=[Metric(m["key"], _number(m["value"]), int(m["timestamp"]), int(m.get("step") or 0),
                            model_id=self.model_id, dataset_name=m.get("dataset_name"),
                            dataset_digest=m.get("dataset_digest"), run_id=m.get("run_id"))
                     for m in self.metrics],
        )


def _number(value: Any) -> float:
    """A metric value as stored in an event: a number, or "NaN"/"Infinity"/"-Infinity"."""
    if isinstance(value, str):
        return float({"NaN": "nan", "Infinity": "inf", "-Infinity": "-inf"}.get(value, value))
    return float(value)


def _stored(value: float) -> Any:
    if value != value:
        return "NaN"
    if value in (float("inf"), float("-inf")):
        return "Infinity" if value > 0 else "-Infinity"
    return value


class LoggedModels:
    """The logged models on the tracking branch of one GitStore."""

    def __init__(self, store: Any) -> None:
        self.store = store
        self.branch = store.branch
        self._folded: _LRU[str, ModelState] = _LRU(20000)   # model directory tree id -> ModelState
        self._all: tuple[str | None, dict[str, ModelState]] | None = None
        # run id -> (input model ids, {output model id: step}), for one folded `_all` dict
        self._links: tuple[dict[str, ModelState], dict[str, tuple[builtins.list[str], dict[str, int]]]] | None = None
        self._lock = threading.Lock()

    # -- reading -------------------------------------------------------------------------------
    def _models(self) -> dict[str, ModelState]:
        root = self.branch.tree_of(self.branch.tip())
        tree = self.branch.subtree(root, LOGGED_MODELS) if root else None
        cached = self._all
        if cached is not None and cached[0] == tree:
            return cached[1]
        models: dict[str, ModelState] = {}
        if tree is not None:
            for entry in self.branch.odb.read_tree(tree):
                if entry.is_tree and is_model_id(entry.name):
                    models[entry.name] = self._fold(entry.name, entry.sha)
        with self._lock:
            self._all = (tree, models)
        return models

    def _fold(self, model_id: str, tree: str) -> ModelState:
        cached = self._folded.get_item(tree)
        if cached is not None:
            return cached
        state = ModelState(model_id)
        events = self.branch.odb.tree_dict(tree).get("events")
        if events is not None:
            for _name, doc in self.branch.read_events(events.sha):
                for op in doc.get("ops") or []:
                    state.apply(op, int(doc.get("time") or 0))
        with self._lock:
            self._folded.put(tree, state)
        return state

    def _state(self, model_id: str, allow_deleted: bool = False) -> ModelState:
        if not is_model_id(model_id):
            # MLflow answers RESOURCE_DOES_NOT_EXIST for any id it does not hold (set_active_model relies on it).
            raise ResourceDoesNotExist(
                f"Logged model with ID {model_id!r} not found: logged model ids are 'm-' followed by 32 hex "
                "digits, as returned by create_logged_model (model_info.model_id)", model_id=model_id)
        state = self._models().get(model_id)
        if state is None or (state.lifecycle_stage == LifecycleStage.DELETED and not allow_deleted):
            raise ResourceDoesNotExist(
                f"Logged model with ID '{model_id}' not found"
                + (" (it is deleted)" if state is not None else
                   "; if it was logged in another clone, `gitexp pull` first"),
                model_id=model_id)
        return state

    def get(self, model_id: str, allow_deleted: bool = False) -> LoggedModel:
        return self._state(model_id, allow_deleted).to_entity()

    def list(self, experiment_ids: Iterable[str] | None = None) -> list[LoggedModel]:
        wanted = None if experiment_ids is None else {str(e) for e in experiment_ids}
        return [s.to_entity() for s in self._models().values()
                if s.lifecycle_stage == LifecycleStage.ACTIVE and (wanted is None or s.experiment_id in wanted)]

    def run_links(self, run_id: str) -> tuple[builtins.list[LoggedModelInput], builtins.list[LoggedModelOutput]]:
        """The run's model inputs and outputs (MLflow's run.inputs.model_inputs, run.outputs.model_outputs).

        Outputs are the models recorded with log_outputs plus the models the run is the source
        run of (step 0), as the run's own record of what it logged.  One map of every run's links
        is built per folded set of models, so get_run does not walk the models."""
        models = self._models()
        cached = self._links
        if cached is None or cached[0] is not models:
            links: dict[str, tuple[builtins.list[str], dict[str, int]]] = {}
            for s in sorted(models.values(), key=lambda m: (m.creation_time, m.model_id)):
                if s.lifecycle_stage != LifecycleStage.ACTIVE:
                    continue
                for rid in s.inputs:
                    links.setdefault(rid, ([], {}))[0].append(s.model_id)
                if s.source_run_id and s.source_run_id not in s.outputs:
                    links.setdefault(s.source_run_id, ([], {}))[1][s.model_id] = 0
                for rid, step in s.outputs.items():
                    links.setdefault(rid, ([], {}))[1][s.model_id] = step
            cached = self._links = (models, links)
        ins, outs = cached[1].get(run_id, ([], {}))
        return [LoggedModelInput(m) for m in ins], [LoggedModelOutput(m, step) for m, step in outs.items()]

    def for_run(self, run_id: str) -> builtins.list[LoggedModel]:
        """Active logged models whose files are in this run (newest first)."""
        found = [s.to_entity() for s in self._models().values()
                 if s.lifecycle_stage == LifecycleStage.ACTIVE and run_id in (s.source_run_id, s.artifact_run_id)]
        return sorted(found, key=lambda m: m.creation_timestamp, reverse=True)

    # -- writing -------------------------------------------------------------------------------
    def _event(self, model_id: str, ops: builtins.list[dict[str, Any]], message: str) -> None:
        self.branch.write_event(f"{LOGGED_MODELS}/{model_id}", ops, message)

    def create(self, experiment_id: str | None, name: str | None = None, source_run_id: str | None = None,
               tags: dict[str, Any] | None = None, params: dict[str, Any] | None = None,
               model_type: str | None = None, model_id: str | None = None) -> LoggedModel:
        """model_id: another store's id, kept (gitexp import); a new one when None."""
        name = check_name(name) if name is not None else random_run_name()
        if isinstance(model_type, str):
            valid.text("Logged model type", model_type, model_type=model_type)
        tag_dict = {valid.validate_key("Tag", k): valid.tag_value(k, v) for k, v in (tags or {}).items()}
        param_dict = {valid.validate_key("Param", k): valid.param_value(k, v) for k, v in (params or {}).items()}
        if model_id is None:
            model_id = f"m-{uuid.uuid4().hex}"
        elif check_model_id(model_id) in self._models():
            raise ResourceAlreadyExists(f"Logged model {model_id} already exists", model_id=model_id)
        run = None
        if source_run_id:
            try:
                run = self.store.get_run(source_run_id)
            except (ResourceDoesNotExist, InvalidParameterValue):
                # MLflow records any source run id; the files then go to a holder run, as without one.
                run = None
        if run is not None and source_run_id:
            if run.info.lifecycle_stage != LifecycleStage.ACTIVE:
                raise InvalidParameterValue(
                    f"Cannot log a model to run {source_run_id}: it is deleted; restore it first",
                    run_id=source_run_id)
            if experiment_id is not None and str(experiment_id) != run.info.experiment_id:
                raise InvalidParameterValue(
                    f"Run {source_run_id} belongs to experiment {run.info.experiment_id}, not {experiment_id}; "
                    "log the model to the run's experiment", run_id=source_run_id)
            experiment_id = run.info.experiment_id
            artifact_run_id = source_run_id
            artifact_path = self._free_directory(source_run_id, name, model_id)
        else:
            experiment_id = str(experiment_id if experiment_id is not None else layout.DEFAULT_EXPERIMENT_ID)
            self.store.get_experiment(experiment_id)  # a clear error for an unknown experiment
            note = f"Holds the files of logged model {name} ({model_id})"
            if source_run_id:
                note += f", whose source run {source_run_id} is not in this repository"
            holder = self.store.create_run(experiment_id, None, None,
                                           {HOLDER_TAG: model_id, "mlflow.note.content": note}, name)
            artifact_run_id = holder.info.run_id
            artifact_path = name
        op: dict[str, Any] = {"op": "create", "model_id": model_id, "experiment_id": experiment_id, "name": name,
                              "artifact_run_id": artifact_run_id, "artifact_path": artifact_path}
        for key, value in (("model_type", model_type), ("source_run_id", source_run_id),
                           ("params", param_dict), ("tags", tag_dict)):
            if value:
                op[key] = value
        self._event(model_id, [op], f"logged model {name!r} ({model_id}): create")
        return self.get(model_id)

    def _free_directory(self, run_id: str, name: str, model_id: str) -> str:
        """`name`, unless the run already has files or another logged model there."""
        from .artifacts import RunArtifacts

        taken = {m.artifact_location for m in self.for_run(run_id)}
        view = RunArtifacts(self.store).view(run_id)
        if f"runs:/{run_id}/{name}" not in taken and view.kind(name) is None:
            return name
        return f"{name}-{model_id[2:10]}"

    def finalize(self, model_id: str, status: Any) -> LoggedModel:
        status = LoggedModelStatus.canonical(status)
        state = self._state(model_id)
        self._event(model_id, [{"op": "status", "status": status}],
                    f"logged model {state.name!r} ({model_id}): {status}")
        holder = self._holder(state)
        if holder is not None and status != LoggedModelStatus.PENDING:
            self.store.update_run_info(holder, "FINISHED" if status == LoggedModelStatus.READY else "FAILED")
        return self.get(model_id)

    def _holder(self, state: ModelState) -> str | None:
        if not state.artifact_run_id or state.artifact_run_id == state.source_run_id:
            return None
        try:
            run = self.store.get_run(state.artifact_run_id)
        except ResourceDoesNotExist:
            return None
        return state.artifact_run_id if run.info.status == "RUNNING" else None

    def set_tags(self, model_id: str, tags: dict[str, Any]) -> None:
        state = self._state(model_id)
        ops = [{"op": "tag", "key": valid.validate_key("Tag", k), "value": valid.tag_value(k, v)}
               for k, v in tags.items()]
        if ops:
            self._event(model_id, ops, f"logged model {state.name!r} ({model_id}): set {len(ops)} tag(s)")

    def delete_tag(self, model_id: str, key: str) -> None:
        state = self._state(model_id)
        if key not in state.tags:
            raise ResourceDoesNotExist(f"No tag with key {key!r} found for logged model {model_id}",
                                       model_id=model_id, key=key)
        self._event(model_id, [{"op": "delete_tag", "key": key}],
                    f"logged model {state.name!r} ({model_id}): delete tag {key!r}")

    def log_params(self, model_id: str, params: dict[str, Any]) -> None:
        state = self._state(model_id)
        ops = []
        for k, v in params.items():
            key = valid.validate_key("Param", k)
            value = valid.param_value(key, v)
            old = state.params.get(key)
            if old is not None and old != value:
                raise InvalidParameterValue(
                    f"Changing param values is not allowed. Param {key!r} of logged model {model_id} is "
                    f"{old!r}; attempted value {value!r}", model_id=model_id, key=key)
            if old is None:
                ops.append({"op": "param", "key": key, "value": value})
        if ops:
            self._event(model_id, ops, f"logged model {state.name!r} ({model_id}): log {len(ops)} param(s)")

    def log_metrics(self, run_id: str, metrics: Sequence[Metric]) -> None:
        """Attach metric points logged with ``model_id=`` to their models: one event per model.

        The points are the run's metrics too (the caller logs them to the run); here they
        become the model's own record, so get_logged_model(...).metrics and search by
        datasets see them.  Every model is checked before anything is written."""
        by_model: dict[str, builtins.list[dict[str, Any]]] = {}
        for m in metrics:
            if m.model_id is None:
                continue
            op: dict[str, Any] = {"op": "metric", "key": m.key, "value": _stored(float(m.value)),
                                  "timestamp": int(m.timestamp), "step": int(m.step or 0), "run_id": run_id}
            for field in ("dataset_name", "dataset_digest"):
                value = getattr(m, field)
                if value is not None:
                    op[field] = valid.text(f"Metric {field}", value, key=m.key)
            by_model.setdefault(m.model_id, []).append(op)
        states = {model_id: self._state(model_id) for model_id in by_model}
        for model_id, ops in by_model.items():
            self._event(model_id, ops, f"logged model {states[model_id].name!r} ({model_id}): "
                                       f"{len(ops)} metric point(s) from run {run_id}")

    def log_run_inputs(self, run_id: str, model_ids: Sequence[str]) -> None:
        """Record that a run took these models as input (MLflow's log_inputs(models=...))."""
        for model_id in dict.fromkeys(model_ids):
            state = self._state(model_id)
            if run_id not in state.inputs:
                self._event(model_id, [{"op": "input", "run_id": run_id}],
                            f"logged model {state.name!r} ({model_id}): input of run {run_id}")

    def log_run_outputs(self, run_id: str, outputs: Sequence[tuple[str, int]]) -> None:
        """Record that a run produced these models, at a step (MLflow's log_outputs)."""
        for model_id, step in outputs:
            state = self._state(model_id)
            if state.outputs.get(run_id) != int(step or 0):
                self._event(model_id, [{"op": "output", "run_id": run_id, "step": int(step or 0)}],
                            f"logged model {state.name!r} ({model_id}): output of run {run_id}")

    def add_model_version(self, model_id: str, name: str, version: str | int) -> None:
        """Add {name, version} to the model's ``mlflow.modelVersions`` tag (a JSON list), as
        MLflow does when a version is registered from the model."""
        import json

        state = self._state(model_id)
        entry = {"name": name, "version": str(version)}
        try:
            current = json.loads(state.tags.get(MODEL_VERSIONS_TAG) or "[]")
        except ValueError:
            current = []
        if not isinstance(current, builtins.list):
            current = []
        known = {(str(e.get("name")), str(e.get("version"))) for e in current if isinstance(e, dict)}
        if (name, str(version)) not in known:  # MLflow's own clients write the version as a number
            self.set_tags(model_id, {MODEL_VERSIONS_TAG: json.dumps([*current, entry])})

    def delete(self, model_id: str) -> None:
        state = self._state(model_id)
        self._event(model_id, [{"op": "lifecycle", "stage": LifecycleStage.DELETED}],
                    f"logged model {state.name!r} ({model_id}): delete")

    # -- searching -----------------------------------------------------------------------------
    def search(self, experiment_ids: Sequence[str], filter_string: str | None = None,
               datasets: Sequence[dict[str, Any]] | None = None, max_results: int | None = None,
               order_by: Sequence[Any] | None = None, page_token: str | None = None) -> PagedList[Any]:
        """MLflow's search_logged_models: attribute and tags.<key> clauses, order_by dicts."""
        from ..search._objects import search_logged_models

        for d in datasets or []:
            if not isinstance(d, dict) or not d.get("dataset_name"):
                raise InvalidParameterValue(
                    f"`dataset_name` in the `datasets` clause must be specified (got {d!r})")
        if isinstance(experiment_ids, str) or not all(isinstance(e, str) for e in experiment_ids or []):
            raise InvalidParameterValue(f"experiment_ids must be a list of strings, got {experiment_ids!r}")
        return search_logged_models(self.list(experiment_ids), filter_string, max_results, order_by, page_token,
                                    list(datasets or []))


