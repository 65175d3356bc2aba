"""Logged models (MLflow 3's ``LoggedModel``): a model a run produced, with its own id.

``from gitexp.entities.logged_model import LoggedModel`` works where
``mlflow.entities.LoggedModel`` was used.  In gitexp a logged model's files are
ordinary artifacts of a run; ``artifact_location`` is their ``runs:/`` URI.
"""

from __future__ import annotations

from typing import Any

from . import Metric, _Entity

__all__ = ["LoggedModel", "LoggedModelStatus"]


class LoggedModelStatus:
    """A logged model's upload status, with MLflow's names."""

    PENDING = "PENDING"
    READY = "READY"
    FAILED = "FAILED"
    ALL = (PENDING, READY, FAILED)
    # MLflow's proto enum names, as the REST API spells them.
    _FROM_PROTO = {"LOGGED_MODEL_PENDING": PENDING, "LOGGED_MODEL_READY": READY,
                   "LOGGED_MODEL_UPLOAD_FAILED": FAILED}
    _TO_PROTO = {v: k for k, v in _FROM_PROTO.items()}

    @classmethod
    def canonical(cls, status: Any) -> str:
        """PENDING/READY/FAILED from any spelling MLflow uses (enum member, proto name, any case)."""
        raw = getattr(status, "name", None) or getattr(status, "value", None) or status
        text = str(raw).upper()
        text = cls._FROM_PROTO.get(text, text)
        if text == "UPLOAD_FAILED":
            text = cls.FAILED
        if text not in cls.ALL:
            from ..exceptions import InvalidParameterValue

            raise InvalidParameterValue(
                f"Unknown logged model status {status!r}; use one of {list(cls.ALL)}", status=status)
        return text

    @classmethod
    def to_proto_name(cls, status: str) -> str:
        return cls._TO_PROTO[status]


class LoggedModel(_Entity):
    """A model logged by a run (MLflow 3): id ``m-<hex>``, name, status, tags, params."""

    def __init__(
        self,
        experiment_id: str,
        model_id: str,
        name: str,
        artifact_location: str,
        creation_timestamp: int,
        last_updated_timestamp: int,
        model_type: str | None = None,
        source_run_id: str | None = None,
        status: str = LoggedModelStatus.PENDING,
        status_message: str | None = None,
        tags: dict[str, str] | None = None,
        params: dict[str, str] | None = None,
        metrics: list[Metric] | None = None,
    ) -> None:
        self._experiment_id = experiment_id
        self._model_id = model_id
        self._name = name
        self._artifact_location = artifact_location
        self._creation_time = creation_timestamp
        self._last_updated_timestamp = last_updated_timestamp
        self._model_type = model_type
        self._source_run_id = source_run_id
        self._status = status
        self._status_message = status_message
        self._tags = dict(tags or {})
        self._params = dict(params or {})
        self._metrics = list(metrics or [])

    experiment_id = property(lambda self: self._experiment_id)
    model_id = property(lambda self: self._model_id)
    name = property(lambda self: self._name)
    artifact_location = property(lambda self: self._artifact_location,
                                 doc="Where the model's files are: runs:/<run_id>/<path>.")
    creation_timestamp = property(lambda self: self._creation_time)
    last_updated_timestamp = property(lambda self: self._last_updated_timestamp)
    model_type = property(lambda self: self._model_type)
    source_run_id = property(lambda self: self._source_run_id)
    status = property(lambda self: self._status)
    status_message = property(lambda self: self._status_message)
    tags = property(lambda self: self._tags)
    params = property(lambda self: self._params)
    metrics = property(lambda self: self._metrics)

    @property
    def model_uri(self) -> str:
        return f"models:/{self._model_id}"
