"""Tracking entities with MLflow's names, fields and printed form.

Code written against ``mlflow.entities`` works with these unchanged:
``run.info.run_id``, ``run.data.metrics["rmse"]``, ``ViewType.ACTIVE_ONLY``...
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from typing import Any, Generic, TypeVar, overload

_T = TypeVar("_T")

__all__ = [
    "Dataset",
    "DatasetInput",
    "Experiment",
    "ExperimentTag",
    "FileInfo",
    "InputTag",
    "LifecycleStage",
    "LoggedModelInput",
    "LoggedModelOutput",
    "Metric",
    "MetricHistory",
    "PagedList",
    "Param",
    "Run",
    "RunData",
    "RunInfo",
    "RunInputs",
    "RunOutputs",
    "RunStatus",
    "RunTag",
    "SourceType",
    "ViewType",
]


class _Entity:
    """Base: iterable as (property, value) pairs, printed the way MLflow prints."""

    @classmethod
    def _properties(cls) -> list[str]:
        names: set[str] = set()
        for klass in cls.__mro__:
            names.update(n for n, v in vars(klass).items() if isinstance(v, property))
        return sorted(names)

    def __iter__(self) -> Iterator[tuple[str, Any]]:
        for name in self._properties():
            yield name, getattr(self, name)

    def __repr__(self) -> str:
        fields = ", ".join(f"{k}={_fmt(v)}" for k, v in self)
        return f"<{type(self).__name__}: {fields}>"

    def __eq__(self, other: object) -> bool:
        return type(other) is type(self) and isinstance(other, _Entity) and dict(self) == dict(other)

    __hash__ = None  # type: ignore[assignment]  # mutable: unhashable, as MLflow's entities

    def to_dictionary(self) -> dict[str, Any]:
        return {k: (v.to_dictionary() if isinstance(v, _Entity) else v) for k, v in self}


def _fmt(value: Any) -> str:
    if isinstance(value, _Entity):
        return repr(value)
    import pprint  # only for printing entities: not on every process's import path

    return pprint.pformat(value)


class ViewType:
    """Which runs or experiments a search returns, by lifecycle stage."""

    ACTIVE_ONLY, DELETED_ONLY, ALL = 1, 2, 3
    _TO_STRING = {1: "active_only", 2: "deleted_only", 3: "all"}
    _FROM_STRING = {v: k for k, v in _TO_STRING.items()}

    @classmethod
    def from_string(cls, view_str: str) -> int:
        key = str(view_str).lower()
        if key not in cls._FROM_STRING:
            from ..exceptions import InvalidParameterValue

            raise InvalidParameterValue(
                f"Unknown view type {view_str!r}; use one of {sorted(cls._FROM_STRING)}"
            )
        return cls._FROM_STRING[key]

    @classmethod
    def to_string(cls, view_type: int) -> str:
        if view_type not in cls._TO_STRING:
            from ..exceptions import InvalidParameterValue

            raise InvalidParameterValue(
                f"Unknown view type {view_type!r}; use ViewType.ACTIVE_ONLY, DELETED_ONLY or ALL"
            )
        return cls._TO_STRING[view_type]


class LifecycleStage:
    ACTIVE = "active"
    DELETED = "deleted"
    _VALID_STAGES = {ACTIVE, DELETED}

    @classmethod
    def view_type_to_stages(cls, view_type: int = ViewType.ALL) -> list[str]:
        stages = []
        if view_type in (ViewType.ACTIVE_ONLY, ViewType.ALL):
            stages.append(cls.ACTIVE)
        if view_type in (ViewType.DELETED_ONLY, ViewType.ALL):
            stages.append(cls.DELETED)
        return stages

    @classmethod
    def is_valid(cls, stage: str) -> bool:
        return stage in cls._VALID_STAGES

    @classmethod
    def matches_view_type(cls, view_type: int, stage: str) -> bool:
        return stage in cls.view_type_to_stages(view_type)


class RunStatus:
    """Run status as MLflow numbers it (the proto enum values)."""

    RUNNING, SCHEDULED, FINISHED, FAILED, KILLED = 1, 2, 3, 4, 5
    _TO_STRING = {1: "RUNNING", 2: "SCHEDULED", 3: "FINISHED", 4: "FAILED", 5: "KILLED"}
    _FROM_STRING = {v: k for k, v in _TO_STRING.items()}
    _TERMINATED = {3, 4, 5}

    @staticmethod
    def from_string(status_str: str) -> int:
        if status_str not in RunStatus._FROM_STRING:
            from ..exceptions import InvalidParameterValue

            raise InvalidParameterValue(
                f"Unknown run status {status_str!r}; use one of {list(RunStatus._FROM_STRING)}"
            )
        return RunStatus._FROM_STRING[status_str]

    @staticmethod
    def to_string(status: int) -> str:
        if status not in RunStatus._TO_STRING:
            from ..exceptions import InvalidParameterValue

            raise InvalidParameterValue(f"Unknown run status number {status!r}")
        return RunStatus._TO_STRING[status]

    @staticmethod
    def is_terminated(status: int) -> bool:
        return status in RunStatus._TERMINATED

    @staticmethod
    def all_status() -> list[int]:
        return list(RunStatus._TO_STRING)


class SourceType:
    NOTEBOOK, JOB, PROJECT, LOCAL, UNKNOWN, RECIPE = 1, 2, 3, 4, 1000, 5
    _TO_STRING = {1: "NOTEBOOK", 2: "JOB", 3: "PROJECT", 4: "LOCAL", 1000: "UNKNOWN", 5: "RECIPE"}
    _FROM_STRING = {v: k for k, v in _TO_STRING.items()}

    @staticmethod
    def to_string(source_type: int) -> str:
        return SourceType._TO_STRING[source_type]

    @staticmethod
    def from_string(name: str) -> int:
        return SourceType._FROM_STRING[name]


class _KeyValue(_Entity):
    def __init__(self, key: str, value: Any) -> None:
        self._key = key
        self._value = value

    @property
    def key(self) -> str:
        return self._key

    @property
    def value(self) -> Any:
        return self._value

    def __hash__(self) -> int:  # type: ignore[override]  # hashable, under an unhashable base
        return hash((self._key, self._value))


class Param(_KeyValue):
    """A run parameter: a string value that never changes once logged."""


class RunTag(_KeyValue):
    """A run tag: a string value that may be changed or deleted."""


class ExperimentTag(_KeyValue):
    """An experiment tag."""


class InputTag(_KeyValue):
    """A tag on a dataset input, e.g. ``mlflow.data.context=train``."""


class Metric(_Entity):
    """One logged metric value: key, value, timestamp (ms) and step."""

    def __init__(
        self,
        key: str,
        value: float,
        timestamp: int,
        step: int,
        model_id: str | None = None,
        dataset_name: str | None = None,
        dataset_digest: str | None = None,
        run_id: str | None = None,
    ) -> None:
        self._key = key
        self._value = value
        self._timestamp = timestamp
        self._step = step
        self._model_id = model_id
        self._dataset_name = dataset_name
        self._dataset_digest = dataset_digest
        self._run_id = run_id

    key = property(lambda self: self._key)
    value = property(lambda self: self._value)
    timestamp = property(lambda self: self._timestamp)
    step = property(lambda self: self._step)
    model_id = property(lambda self: self._model_id)
    dataset_name = property(lambda self: self._dataset_name)
    dataset_digest = property(lambda self: self._dataset_digest)
    run_id = property(lambda self: self._run_id)

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Metric):
            return False
        same_value = self._value == other._value or (self._value != self._value and other._value != other._value)
        return (self._key, self._timestamp, self._step) == (other._key, other._timestamp, other._step) and same_value

    def __hash__(self) -> int:  # type: ignore[override]  # hashable, under an unhashable base
        return hash((self._key, self._timestamp, self._step))

    def to_dictionary(self) -> dict[str, Any]:
        return {"key": self._key, "value": self._value, "timestamp": self._timestamp, "step": self._step}


class MetricHistory(Sequence[Any]):
    """What `get_metric_history` returns: a read-only sequence of `Metric` entities, in step
    order, backed by three numpy arrays.  A Metric is made when an item is read, so a history
    of millions of points costs its arrays (24 bytes a point), not an object a point; it
    iterates, indexes, slices (a list), compares equal to a list of the same Metrics, and
    `list(history)` makes a real list.  `arrays()` gives (steps, timestamps, values)."""

    __slots__ = ("key", "run_id", "_steps", "_timestamps", "_values")
    _BATCH = 65536

    def __init__(self, key: str, run_id: str | None, steps: Any, timestamps: Any, values: Any) -> None:
        self.key = key
        self.run_id = run_id
        self._steps, self._timestamps, self._values = steps, timestamps, values

    def arrays(self) -> tuple[Any, Any, Any]:
        return self._steps, self._timestamps, self._values

    def __len__(self) -> int:
        return len(self._steps)

    def _metric(self, step: int, ts: int, value: float) -> Metric:
        return Metric(self.key, value, ts, step, run_id=self.run_id)

    @overload
    def __getitem__(self, index: int) -> Metric: ...

    @overload
    def __getitem__(self, index: slice) -> list[Metric]: ...

    def __getitem__(self, index: int | slice) -> Metric | list[Metric]:
        if isinstance(index, slice):
            s, t, v = self._steps[index], self._timestamps[index], self._values[index]
            return [self._metric(*p) for p in zip(s.tolist(), t.tolist(), v.tolist(), strict=True)]
        if not -len(self) <= index < len(self):
            raise IndexError("metric history index out of range")
        return self._metric(int(self._steps[index]), int(self._timestamps[index]), float(self._values[index]))

    def __iter__(self) -> Iterator[Metric]:
        for start in range(0, len(self), self._BATCH):  # a batch of Python numbers at a time
            yield from self[start:start + self._BATCH]

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Sequence) or isinstance(other, str) or len(other) != len(self):
            return False
        return all(a == b for a, b in zip(self, other, strict=True))

    def __ne__(self, other: object) -> bool:
        return not self == other

    __hash__ = None  # type: ignore[assignment]  # mutable: unhashable, as MLflow's entities

    def __add__(self, other: Any) -> list[Metric]:
        return list(self) + list(other)

    def __repr__(self) -> str:
        shown = ", ".join(repr(m) for m in self[:3])
        more = f", ... {len(self) - 3} more" if len(self) > 3 else ""
        return f"MetricHistory([{shown}{more}])"


class Experiment(_Entity):
    DEFAULT_EXPERIMENT_NAME = "Default"

    def __init__(
        self,
        experiment_id: str,
        name: str,
        artifact_location: str,
        lifecycle_stage: str,
        tags: list[ExperimentTag] | dict[str, str] | None = None,
        creation_time: int | None = None,
        last_update_time: int | None = None,
    ) -> None:
        self._experiment_id = experiment_id
        self._name = name
        self._artifact_location = artifact_location
        self._lifecycle_stage = lifecycle_stage
        if isinstance(tags, dict):
            self._tags = dict(tags)
        else:
            self._tags = {t.key: t.value for t in (tags or [])}
        self._creation_time = creation_time
        self._last_update_time = last_update_time

    experiment_id = property(lambda self: self._experiment_id)
    name = property(lambda self: self._name)
    artifact_location = property(lambda self: self._artifact_location)
    lifecycle_stage = property(lambda self: self._lifecycle_stage)
    tags = property(lambda self: self._tags)
    creation_time = property(lambda self: self._creation_time)
    last_update_time = property(lambda self: self._last_update_time)


class RunInfo(_Entity):
    def __init__(
        self,
        run_id: str,
        experiment_id: str,
        user_id: str,
        status: str,
        start_time: int,
        end_time: int | None,
        lifecycle_stage: str,
        artifact_uri: str | None = None,
        run_name: str | None = None,
    ) -> None:
        self._run_id = run_id
        self._experiment_id = experiment_id
        self._user_id = user_id
        self._status = status
        self._start_time = start_time
        self._end_time = end_time
        self._lifecycle_stage = lifecycle_stage
        self._artifact_uri = artifact_uri
        self._run_name = run_name

    run_id = property(lambda self: self._run_id)
    experiment_id = property(lambda self: self._experiment_id)
    user_id = property(lambda self: self._user_id)
    status = property(lambda self: self._status)
    start_time = property(lambda self: self._start_time)
    end_time = property(lambda self: self._end_time)
    lifecycle_stage = property(lambda self: self._lifecycle_stage)
    artifact_uri = property(lambda self: self._artifact_uri)
    run_name = property(lambda self: self._run_name)

    @property
    def run_uuid(self) -> str:
        """Deprecated MLflow alias of run_id."""
        return self._run_id


class RunData(_Entity):
    def __init__(
        self,
        metrics: list[Metric] | None = None,
        params: list[Param] | None = None,
        tags: list[RunTag] | None = None,
    ) -> None:
        self._metric_objs = list(metrics or [])
        self._metrics = {m.key: m.value for m in self._metric_objs}
        self._params = {p.key: p.value for p in (params or [])}
        self._tags = {t.key: t.value for t in (tags or [])}

    metrics = property(lambda self: self._metrics, doc="Latest value of each metric (largest step, then timestamp).")
    params = property(lambda self: self._params)
    tags = property(lambda self: self._tags)

    def to_dictionary(self) -> dict[str, Any]:
        return {"metrics": dict(self._metrics), "params": dict(self._params), "tags": dict(self._tags)}


class Dataset(_Entity):
    def __init__(
        self,
        name: str,
        digest: str,
        source_type: str,
        source: str,
        schema: str | None = None,
        profile: str | None = None,
    ) -> None:
        self._name = name
        self._digest = digest
        self._source_type = source_type
        self._source = source
        self._schema = schema
        self._profile = profile

    name = property(lambda self: self._name)
    digest = property(lambda self: self._digest)
    source_type = property(lambda self: self._source_type)
    source = property(lambda self: self._source)
    schema = property(lambda self: self._schema)
    profile = property(lambda self: self._profile)


class DatasetInput(_Entity):
    def __init__(self, dataset: Dataset, tags: list[InputTag] | None = None) -> None:
        self._dataset = dataset
        self._tags = list(tags or [])

    dataset = property(lambda self: self._dataset)
    tags = property(lambda self: self._tags)


class LoggedModelInput(_Entity):
    """A logged model a run took as input (MLflow 3)."""

    def __init__(self, model_id: str) -> None:
        self._model_id = model_id

    model_id = property(lambda self: self._model_id)


class LoggedModelOutput(_Entity):
    """A logged model a run produced, at a step (MLflow 3)."""

    def __init__(self, model_id: str, step: int = 0) -> None:
        self._model_id = model_id
        self._step = step

    model_id = property(lambda self: self._model_id)
    step = property(lambda self: self._step)


class RunOutputs(_Entity):
    def __init__(self, model_outputs: list[LoggedModelOutput] | None = None) -> None:
        self._model_outputs = list(model_outputs or [])

    model_outputs = property(lambda self: self._model_outputs)


class RunInputs(_Entity):
    def __init__(self, dataset_inputs: list[DatasetInput] | None = None, model_inputs: list[Any] | None = None) -> None:
        self._dataset_inputs = list(dataset_inputs or [])
        self._model_inputs = list(model_inputs or [])

    dataset_inputs = property(lambda self: self._dataset_inputs)
    model_inputs = property(lambda self: self._model_inputs)


class Run(_Entity):
    def __init__(self, run_info: RunInfo, run_data: RunData | None, run_inputs: RunInputs | None = None,
                 run_outputs: Any = None) -> None:
        self._info = run_info
        self._data = run_data or RunData()
        self._inputs = run_inputs or RunInputs()
        self._outputs = run_outputs

    info = property(lambda self: self._info)
    data = property(lambda self: self._data)
    inputs = property(lambda self: self._inputs)
    outputs = property(lambda self: self._outputs)

    def to_dictionary(self) -> dict[str, Any]:
        out: dict[str, Any] = {"info": self._info.to_dictionary(), "data": self._data.to_dictionary()}
        if self._inputs.dataset_inputs:
            out["inputs"] = self._inputs.to_dictionary()
        return out


class FileInfo(_Entity):
    """One entry of a run's artifact listing: a file (with its size) or a directory."""

    def __init__(self, path: str, is_dir: bool, file_size: int | None) -> None:
        self._path = path
        self._is_dir = is_dir
        self._file_size = file_size

    path = property(lambda self: self._path, doc="Path relative to the run's artifact root, '/'-separated.")
    is_dir = property(lambda self: self._is_dir)
    file_size = property(lambda self: self._file_size, doc="Size in bytes; None for directories.")


class PagedList(list[_T], Generic[_T]):
    """A page of results; ``token`` fetches the next page (None on the last)."""

    def __init__(self, items: Iterable[_T] = (), token: str | None = None) -> None:
        super().__init__(items)
        self.token = token
