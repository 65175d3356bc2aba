"""Model registry entities with MLflow's names, fields and printed form.

``from gitexp.entities.model_registry import ModelVersion`` works where
``mlflow.entities.model_registry`` was imported.  As in MLflow's local
(SQL) registry, ``ModelVersion.version`` and alias targets are ints.

gitexp adds three read-only fields that MLflow does not have:
``ModelVersion.renumbered_from`` (the number a version had in the clone that
registered it, when a merge moved it), ``RegisteredModel.notices`` (what the
fold of merged changes had to decide) and the ``ModelHistoryEntry`` audit record.
"""

from __future__ import annotations

from typing import Any

from . import _Entity

__all__ = [
    "ModelHistoryEntry",
    "ModelVersion",
    "ModelVersionStages",
    "ModelVersionStatus",
    "ModelVersionTag",
    "RegisteredModel",
    "RegisteredModelAlias",
    "RegisteredModelTag",
]


class ModelVersionStatus:
    """Status of a model version (the proto enum values). gitexp versions are READY at once."""

    PENDING_REGISTRATION = 1
    FAILED_REGISTRATION = 2
    READY = 3
    _STRING_TO_STATUS = {"PENDING_REGISTRATION": 1, "FAILED_REGISTRATION": 2, "READY": 3}
    _STATUS_TO_STRING = {v: k for k, v in _STRING_TO_STATUS.items()}

    @staticmethod
    def from_string(status_str: str) -> int:
        if status_str not in ModelVersionStatus._STRING_TO_STATUS:
            from ..exceptions import InvalidParameterValue

            raise InvalidParameterValue(
                f"Unknown model version status {status_str!r}; use one of "
                f"{list(ModelVersionStatus._STRING_TO_STATUS)}"
            )
        return ModelVersionStatus._STRING_TO_STATUS[status_str]

    @staticmethod
    def to_string(status: int) -> str:
        if status not in ModelVersionStatus._STATUS_TO_STRING:
            from ..exceptions import InvalidParameterValue

            raise InvalidParameterValue(
                f"Unknown model version status number {status!r}; use one of "
                f"{list(ModelVersionStatus._STATUS_TO_STRING)}"
            )
        return ModelVersionStatus._STATUS_TO_STRING[status]

    @staticmethod
    def all_status() -> list[int]:
        return list(ModelVersionStatus._STATUS_TO_STRING)


class ModelVersionStages:
    """The four stages a version can be in, and MLflow's case-insensitive spelling rule."""

    NONE = "None"
    STAGING = "Staging"
    PRODUCTION = "Production"
    ARCHIVED = "Archived"
    ALL = (NONE, STAGING, PRODUCTION, ARCHIVED)
    ACTIVE = (STAGING, PRODUCTION)  # where archive_existing_versions is allowed

    @classmethod
    def canonical(cls, stage: Any) -> str:
        """'production' -> 'Production'; anything else is an INVALID_PARAMETER_VALUE."""
        key = str(stage).lower() if stage is not None else "none"
        for name in cls.ALL:
            if name.lower() == key:
                return name
        from ..exceptions import InvalidParameterValue

        raise InvalidParameterValue(
            f"Invalid Model Version stage: {stage!r}. Value must be one of {', '.join(cls.ALL)} "
            "(case does not matter).", stage=stage,
        )


class _KeyValue(_Entity):
    def __init__(self, key: str, value: str) -> None:
        self._key = key
        self._value = value

    key = property(lambda self: self._key)
    value = property(lambda self: self._value)

    def __hash__(self) -> int:  # type: ignore[override]  # hashable, under an unhashable base
        return hash((self._key, self._value))


class RegisteredModelTag(_KeyValue):
    """A tag on a registered model."""


class ModelVersionTag(_KeyValue):
    """A tag on a model version."""


class RegisteredModelAlias(_Entity):
    """An alias (``champion``) naming one version of a registered model."""

    def __init__(self, alias: str, version: int) -> None:
        self._alias = alias
        self._version = version

    alias = property(lambda self: self._alias)
    version = property(lambda self: self._version)


class ModelVersion(_Entity):
    """One registered version of a model."""

    def __init__(
        self,
        name: str,
        version: int,
        creation_timestamp: int,
        last_updated_timestamp: int | None = None,
        description: str | None = None,
        user_id: str | None = None,
        current_stage: str | None = None,
        source: str | None = None,
        run_id: str | None = None,
        status: str = "READY",
        status_message: str | None = None,
        tags: list[ModelVersionTag] | dict[str, str] | None = None,
        run_link: str | None = None,
        aliases: list[str] | None = None,
        model_id: str | None = None,
        params: list[Any] | None = None,
        metrics: list[Any] | None = None,
        deployment_job_state: Any = None,
        workspace: str | None = None,
        renumbered_from: int | None = None,
    ) -> None:
        self._name = name
        self._version = version
        self._creation_time = creation_timestamp
        self._last_updated_timestamp = last_updated_timestamp
        self._description = description
        self._user_id = user_id
        self._current_stage = current_stage
        self._source = source
        self._run_id = run_id
        self._run_link = run_link
        self._status = status
        self._status_message = status_message
        if isinstance(tags, dict):
            self._tags = dict(tags)
        else:
            self._tags = {t.key: t.value for t in (tags or [])}
        self._aliases = list(aliases or [])
        self._model_id = model_id
        self._params = params
        self._metrics = metrics
        self._deployment_job_state = deployment_job_state
        self._workspace = workspace or "default"
        self._renumbered_from = renumbered_from

    name = property(lambda self: self._name)
    version = property(lambda self: self._version)
    creation_timestamp = property(lambda self: self._creation_time)
    last_updated_timestamp = property(lambda self: self._last_updated_timestamp)
    description = property(lambda self: self._description)
    user_id = property(lambda self: self._user_id)
    current_stage = property(lambda self: self._current_stage)
    source = property(lambda self: self._source)
    run_id = property(lambda self: self._run_id)
    run_link = property(lambda self: self._run_link)
    status = property(lambda self: self._status)
    status_message = property(lambda self: self._status_message)
    tags = property(lambda self: self._tags)
    aliases = property(lambda self: self._aliases)
    model_id = property(lambda self: self._model_id)
    params = property(lambda self: self._params)
    metrics = property(lambda self: self._metrics)
    deployment_job_state = property(lambda self: self._deployment_job_state)
    workspace = property(lambda self: self._workspace)
    renumbered_from = property(
        lambda self: self._renumbered_from,
        doc="gitexp: the number this version had where it was registered, if a merge renumbered it.",
    )


class RegisteredModel(_Entity):
    """A registered model: its name, description, tags, aliases and latest version per stage."""

    def __init__(
        self,
        name: str,
        creation_timestamp: int | None = None,
        last_updated_timestamp: int | None = None,
        description: str | None = None,
        latest_versions: list[ModelVersion] | None = None,
        tags: list[RegisteredModelTag] | dict[str, str] | None = None,
        aliases: list[RegisteredModelAlias] | dict[str, int] | None = None,
        deployment_job_id: str | None = None,
        deployment_job_state: Any = None,
        workspace: str | None = None,
        notices: list[str] | None = None,
    ) -> None:
        self._name = name
        self._creation_time = creation_timestamp
        self._last_updated_timestamp = last_updated_timestamp
        self._description = description
        self._latest_version = latest_versions
        if isinstance(tags, dict):
            self._tags = dict(tags)
        else:
            self._tags = {t.key: t.value for t in (tags or [])}
        if isinstance(aliases, dict):
            self._aliases = dict(aliases)
        else:
            self._aliases = {a.alias: a.version for a in (aliases or [])}
        self._deployment_job_id = deployment_job_id
        self._deployment_job_state = deployment_job_state
        self._workspace = workspace or "default"
        self._notices = list(notices or [])

    name = property(lambda self: self._name)
    creation_timestamp = property(lambda self: self._creation_time)
    last_updated_timestamp = property(lambda self: self._last_updated_timestamp)
    description = property(lambda self: self._description)
    latest_versions = property(lambda self: self._latest_version,
                               doc="The highest version in each stage, by version number.")
    tags = property(lambda self: self._tags)
    aliases = property(lambda self: self._aliases, doc="alias -> version number")
    deployment_job_id = property(lambda self: self._deployment_job_id)
    deployment_job_state = property(lambda self: self._deployment_job_state)
    workspace = property(lambda self: self._workspace)
    notices = property(
        lambda self: self._notices,
        doc="gitexp: decisions the fold of merged registry changes made (renumbered versions...).",
    )

    def to_dictionary(self) -> dict[str, Any]:
        out = super().to_dictionary()
        out["latest_versions"] = [v.to_dictionary() for v in (self._latest_version or [])]
        return out


class ModelHistoryEntry(_Entity):
    """gitexp: one change in a registered model's audit trail (from one registry event)."""

    def __init__(self, timestamp: int, user: str, email: str | None, action: str, model: str,
                 version: int | None = None, detail: str = "", event: str = "", commit: str | None = None,
                 ignored: str | None = None) -> None:
        self._timestamp = timestamp
        self._user = user
        self._email = email
        self._action = action
        self._model = model
        self._version = version
        self._detail = detail
        self._event = event
        self._commit = commit
        self._ignored = ignored

    timestamp = property(lambda self: self._timestamp, doc="When (ms since the epoch, the writer's clock).")
    user = property(lambda self: self._user, doc="Who: the git user.name of the writer.")
    email = property(lambda self: self._email, doc="The git user.email of the writer.")
    action = property(lambda self: self._action, doc="What: create_model, create_version, transition_stage...")
    model = property(lambda self: self._model, doc="The model's name when the change was made.")
    version = property(lambda self: self._version, doc="The version concerned (current numbering).")
    detail = property(lambda self: self._detail, doc="A readable summary: 'Staging -> Production'...")
    event = property(lambda self: self._event, doc="Path of the event file on the tracking branch.")
    commit = property(lambda self: self._commit, doc="The commit that added the event, if known.")
    ignored = property(lambda self: self._ignored,
                       doc="Why the fold skipped this change (e.g. its version was deleted first), else None.")
