"""The model registry on the tracking branch: registry events, their fold, and models:/ URIs.

    .tracking/registry/<model dir>/events/<UTC time to the µs>-<random>.yaml

Every registry change is one immutable event file ``{time, user, email, model,
ops: [...]}`` committed at once (never journaled).  A model's state is the fold
of its directory's events in file-name order, which is (time, random id) order,
so every clone that holds the same events computes the same registry.

Identity:

* A model's **directory** is chosen once, at creation, from its name
  (``layout.encode_key``, ``~2``, ``~3``... when a renamed model still holds
  that directory).  Two clones that create the same name write into the same
  directory and converge on one model.  The name itself is folded state, so a
  rename is one event and never moves files.
* A **version** is named by a random ``uid`` in every event that refers to it.
  Its number is its place among the version-creating events of the model
  (deleted versions keep their numbers, as in MLflow).  When a merge brings in
  a creation with an earlier time, later versions move up by one; the folded
  version keeps ``renumbered_from`` (the number its writer saw) and the model
  a notice.  Nothing is lost, and stages and aliases follow the uid.
* Two live models that claim one name after a merge (a rename racing a
  create): the earlier claim keeps it, the other is listed as ``name~2``
  with a notice until someone renames it.

Ops that no longer apply after a merge (a stage change of a version deleted
earlier...) are skipped and listed, with the reason, in the model's history.
"""

from __future__ import annotations

import datetime as _dt
import hashlib
import logging
import posixpath
import re
import secrets
import threading
import time
from typing import Any, Iterable
from urllib.parse import urlparse

from .. import _git as git
from .. import _validation as valid
from ..entities.model_registry import (
    ModelHistoryEntry,
    ModelVersion,
    ModelVersionStages,
    RegisteredModel,
)
from ..exceptions import InvalidParameterValue, ResourceAlreadyExists, ResourceDoesNotExist
from . import layout
from .objects import MODE_BLOB, _LRU

_log = logging.getLogger("gitexp")

STAGES = ModelVersionStages
MAX_MODEL_NAME_LENGTH = 256
MAX_TAG_VALUE_LENGTH = 100_000
MAX_ALIAS_LENGTH = 255
MAX_DESCRIPTION_LENGTH = 100_000
_DIR_NAME_LIMIT = 150  # bytes of a model directory name before it is shortened with a hash


# -- validation (MLflow's rules, gitexp's messages) ------------------------------------------------
def model_name(name: Any, what: str = "name") -> str:
    if name is None or not isinstance(name, str) or name.strip() == "":
        raise InvalidParameterValue(
            f"Missing value for required parameter {what!r}: a registered model needs a non-empty "
            f"name, got {name!r}", name=name)
    valid.text("Registered model name" if what == "name" else f"Registered model {what}", name, name=name)
    if "/" in name or ":" in name:
        raise InvalidParameterValue(
            f"Invalid model name {name!r}: names cannot contain '/' or ':' (they would break "
            "models:/<name>/<version> URIs). Use '-' or '_' instead.", name=name)
    norm = posixpath.normpath(name)
    if norm != name or norm == "." or norm.startswith(".."):
        raise InvalidParameterValue(
            f"Invalid model name {name!r}: names must not resolve to another name when treated as "
            f"a path (this one resolves to {norm!r})", name=name)
    if "\0" in name:
        raise InvalidParameterValue(f"Invalid model name {name!r}: it contains a NUL character", name=name)
    if len(name) > MAX_MODEL_NAME_LENGTH:
        raise InvalidParameterValue(
            f"Model name {name[:40]!r}... is {len(name)} characters long; the limit is "
            f"{MAX_MODEL_NAME_LENGTH}", name=name)
    return name


def version_number(version: Any) -> int:
    if isinstance(version, bool):
        version = str(version)
    try:
        number = int(str(version).strip()) if not isinstance(version, int) else version
    except ValueError:
        raise InvalidParameterValue(
            f"Parameter 'version' must be an integer, got {version!r}. Use the version number "
            "shown by `gitexp models versions NAME`.", version=version) from None
    return number


def tag_key(key: Any) -> str:
    return valid.validate_key("Tag", key)


def tag_value(key: str, value: Any) -> str:
    text = valid.text(f"Tag value for {key!r}", str(value), key=key)  # as MlflowClient: None becomes 'None'
    if len(text) > MAX_TAG_VALUE_LENGTH:
        raise InvalidParameterValue(
            f"Tag value for {key!r} is {len(text)} characters long; the limit is {MAX_TAG_VALUE_LENGTH}",
            key=key)
    return text


def description_text(description: Any) -> str | None:
    if description is None:
        return None
    text = valid.text("Description", str(description))
    if len(text) > MAX_DESCRIPTION_LENGTH:
        raise InvalidParameterValue(
            f"Description is {len(text)} characters long; the limit is {MAX_DESCRIPTION_LENGTH}")
    return text


def alias_name(alias: Any, for_setting: bool = False) -> str:
    if alias is None or alias == "":
        raise InvalidParameterValue("Registered model alias name cannot be empty.", alias=alias)
    if isinstance(alias, str):
        valid.text("Alias", alias, alias=alias)
    if not isinstance(alias, str) or not re.fullmatch(r"[\w\-]*", alias):
        raise InvalidParameterValue(
            f"Invalid alias name: {alias!r}. Names may only contain alphanumerics, underscores (_), "
            "and dashes (-).", alias=alias)
    if len(alias) > MAX_ALIAS_LENGTH:
        raise InvalidParameterValue(
            f"Alias {alias[:40]!r}... is {len(alias)} characters long; the limit is {MAX_ALIAS_LENGTH}",
            alias=alias)
    if for_setting:
        if alias.lower() == "latest":
            raise InvalidParameterValue(
                "'latest' alias name (case insensitive) is reserved: models:/<name>@latest always "
                "means the highest version. Choose another alias.", alias=alias)
        if re.fullmatch(r"[vV]\d+", alias):
            raise InvalidParameterValue(
                f"Version alias name {alias!r} is reserved (v<number> names a version). "
                "Choose another alias.", alias=alias)
    return alias


# -- the fold -----------------------------------------------------------------------------------------
class _Event:
    """The context every op of one event file shares."""

    __slots__ = ("path", "name", "time", "user", "email")

    def __init__(self, path: str, name: str, doc: dict):
        self.path = path
        self.name = name
        self.time = _event_time(name, doc)
        self.user = str(doc.get("user") or "")
        self.email = doc.get("email")


def _event_time(name: str, doc: dict) -> int:
    t = doc.get("time")
    if isinstance(t, int):
        return t
    try:  # 20240102T030405.123456Z-<hex>.yaml
        stamp = _dt.datetime.strptime(name[:22], "%Y%m%dT%H%M%S.%f").replace(tzinfo=_dt.timezone.utc)
        return int(stamp.timestamp() * 1000)
    except ValueError:
        return 0


class VersionState:
    __slots__ = ("uid", "number", "source", "storage_location", "run_id", "run_link", "description",
                 "tags", "stage", "user", "creation_time", "last_updated", "deleted", "renumbered_from",
                 "model_id", "created_event")

    def __init__(self, uid: str, number: int, op: dict, ev: _Event):
        self.uid = uid
        self.number = number
        self.source = op.get("source")
        self.storage_location = op.get("storage_location")
        self.run_id = op.get("run_id")
        self.run_link = op.get("run_link")
        self.description = op.get("description")
        self.tags: dict[str, str] = {str(k): str(v) for k, v in (op.get("tags") or {}).items()}
        self.stage = STAGES.NONE
        self.user = ev.user
        self.creation_time = ev.time
        self.last_updated = ev.time
        self.deleted = False
        recorded = op.get("version")
        self.renumbered_from = recorded if isinstance(recorded, int) and recorded != number else None
        self.model_id = op.get("model_id")
        self.created_event = ev.name


class ModelState:
    """Everything known about one model directory, built by applying its events in order."""

    def __init__(self, directory: str):
        self.directory = directory
        self.history: list[dict[str, Any]] = []     # every change, across delete and re-create
        self.exists = False
        self._reset()

    def _reset(self) -> None:
        """Forget the model (not its history): a create after a delete starts a new one."""
        self.name: str | None = None
        self.deleted = False
        self.description: str | None = None
        self.tags: dict[str, str] = {}
        self.creation_time = 0
        self.last_updated = 0
        self.versions: dict[str, VersionState] = {}   # uid -> version, in creation order
        self.by_number: dict[int, str] = {}
        self.aliases: dict[str, str] = {}             # alias -> version uid
        self.next_number = 1
        self.name_claim = ""                          # event that gave the model its current name
        self.notices: list[str] = []

    @property
    def live(self) -> bool:
        return self.exists and not self.deleted

    def live_versions(self) -> list[VersionState]:
        return [v for v in self.versions.values() if not v.deleted]

    def version(self, number: int) -> VersionState | None:
        uid = self.by_number.get(number)
        v = self.versions.get(uid) if uid is not None else None
        return v if v is not None and not v.deleted else None

    def aliases_of(self, uid: str) -> list[str]:
        return sorted(a for a, u in self.aliases.items() if u == uid)

    def latest_per_stage(self) -> list[VersionState]:
        best: dict[str, VersionState] = {}
        for v in self.live_versions():
            if v.stage not in best or v.number > best[v.stage].number:
                best[v.stage] = v
        return sorted(best.values(), key=lambda v: v.number)

    # -- applying ops -------------------------------------------------------------------------------
    def _record(self, ev: _Event, action: str, version: int | None = None, detail: str = "",
                ignored: str | None = None) -> None:
        self.history.append({"event": ev.path, "time": ev.time, "user": ev.user, "email": ev.email,
                             "action": action, "model": self.name or "", "version": version,
                             "detail": detail, "ignored": ignored})

    def _live_version(self, op: dict, ev: _Event, action: str) -> VersionState | None:
        v = self.versions.get(str(op.get("uid")))
        if v is None or v.deleted:
            why = "its version was deleted earlier" if v is not None else "its version is unknown"
            self._record(ev, action, v.number if v else op.get("version"), _describe(op), ignored=why)
            return None
        return v

    def apply(self, op: dict, ev: _Event) -> None:
        kind = op.get("op")
        if kind == "create_model":
            self._create(op, ev)
            return
        if not self.live:
            why = "the model was deleted earlier" if self.exists else "the model does not exist yet"
            self._record(ev, str(kind), op.get("version"), _describe(op), ignored=why)
            return
        if kind == "rename":
            old, self.name = self.name, str(op["name"])
            self.name_claim = ev.name
            self.last_updated = ev.time
            self._record(ev, "rename", None, f"{old!r} -> {self.name!r}")
        elif kind == "update_description":
            self.description = op.get("description")
            self.last_updated = ev.time
            self._record(ev, "update_description", None, _short(self.description))
        elif kind == "set_tag":
            self.tags[str(op["key"])] = str(op["value"])
            self._record(ev, "set_tag", None, f"{op['key']}={_short(op['value'])}")
        elif kind == "delete_tag":
            self.tags.pop(str(op["key"]), None)
            self._record(ev, "delete_tag", None, str(op["key"]))
        elif kind == "delete_model":
            self.deleted = True
            self.last_updated = ev.time
            self._record(ev, "delete_model", None, f"deleted with {len(self.live_versions())} version(s)")
        elif kind == "create_version":
            self._create_version(op, ev)
        elif kind == "update_version":
            v = self._live_version(op, ev, kind)
            if v is not None:
                v.description = op.get("description")
                v.last_updated = ev.time
                self._record(ev, kind, v.number, _short(v.description))
        elif kind == "transition_stage":
            v = self._live_version(op, ev, kind)
            if v is not None:
                self._transition(v, op, ev)
        elif kind == "set_alias":
            v = self._live_version(op, ev, kind)
            if v is not None:
                alias = str(op["alias"])
                before = self.versions.get(self.aliases.get(alias, ""))
                self.aliases[alias] = v.uid
                moved = f" (was version {before.number})" if before is not None and before is not v else ""
                self._record(ev, kind, v.number, f"@{alias} -> version {v.number}{moved}")
        elif kind == "delete_alias":
            alias = str(op["alias"])
            before = self.versions.get(self.aliases.pop(alias, ""))
            self._record(ev, kind, before.number if before else None,
                         f"@{alias} removed" + (f" (was version {before.number})" if before else ""))
        elif kind == "delete_version":
            v = self._live_version(op, ev, kind)
            if v is not None:
                v.deleted = True
                v.last_updated = ev.time
                dropped = self.aliases_of(v.uid)
                for alias in dropped:
                    del self.aliases[alias]
                self.last_updated = ev.time
                self._record(ev, kind, v.number, f"deleted (stage {v.stage})"
                             + (f"; removed alias(es) {', '.join('@' + a for a in dropped)}" if dropped else ""))
        elif kind == "set_version_tag":
            v = self._live_version(op, ev, kind)
            if v is not None:
                v.tags[str(op["key"])] = str(op["value"])
                self._record(ev, kind, v.number, f"{op['key']}={_short(op['value'])}")
        elif kind == "delete_version_tag":
            v = self._live_version(op, ev, kind)
            if v is not None:
                v.tags.pop(str(op["key"]), None)
                self._record(ev, kind, v.number, str(op["key"]))
        else:  # written by a newer gitexp: skipping keeps old readers working
            self._record(ev, str(kind), None, "", ignored="unknown change (written by a newer gitexp?)")

    def _create(self, op: dict, ev: _Event) -> None:
        if self.live:
            # Two clones created the model concurrently: one model, both creations merged.
            if op.get("description"):
                self.description = op["description"]
            self.tags.update({str(k): str(v) for k, v in (op.get("tags") or {}).items()})
            note = (f"{ev.user or 'someone'} also created this model at {_when(ev.time)} "
                    "(concurrently, in another clone); the two creations were merged into one model.")
            self.notices.append(note)
            self._record(ev, "create_model", None, "created again concurrently; merged")
            return
        again = self.exists
        self._reset()
        self.exists = True
        self.name = str(op["name"])
        self.name_claim = ev.name
        self.description = op.get("description")
        self.tags = {str(k): str(v) for k, v in (op.get("tags") or {}).items()}
        self.creation_time = self.last_updated = ev.time
        self._record(ev, "create_model", None, "created again after a delete" if again else "created")

    def _create_version(self, op: dict, ev: _Event) -> None:
        uid = str(op["uid"])
        if uid in self.versions:
            self._record(ev, "create_version", self.versions[uid].number, "", ignored="duplicate version id")
            return
        v = VersionState(uid, self.next_number, op, ev)
        self.next_number += 1
        self.versions[uid] = v
        self.by_number[v.number] = uid
        self.last_updated = ev.time
        detail = f"{v.source}" + (f" (run {v.run_id})" if v.run_id and v.run_id not in str(v.source) else "")
        if v.renumbered_from is not None:
            note = (f"Version {v.number} (registered by {ev.user or 'someone'} at {_when(ev.time)} from "
                    f"{v.source}) was version {v.renumbered_from} where it was registered: a version "
                    "registered earlier in another clone arrived by merge and took that number.")
            self.notices.append(note)
            detail += f"; renumbered from {v.renumbered_from}"
        self._record(ev, "create_version", v.number, detail)

    def _transition(self, v: VersionState, op: dict, ev: _Event) -> None:
        stage = STAGES.canonical(op["stage"])
        archived = []
        if op.get("archive_existing_versions") and stage in STAGES.ACTIVE:
            for other in self.live_versions():
                if other is not v and other.stage == stage:
                    other.stage = STAGES.ARCHIVED
                    other.last_updated = ev.time
                    archived.append(other.number)
        old = v.stage
        v.stage = stage
        v.last_updated = ev.time
        self.last_updated = ev.time
        detail = f"{old} -> {stage}"
        if archived:
            detail += f"; archived version(s) {', '.join(map(str, archived))}"
        self._record(ev, "transition_stage", v.number, detail)


def _short(value: Any, limit: int = 60) -> str:
    text = "" if value is None else str(value).replace("\n", " ")
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _when(ms: int) -> str:
    return _dt.datetime.fromtimestamp(ms / 1000, _dt.timezone.utc).strftime("%Y-%m-%d %H:%M:%S UTC")


def _describe(op: dict) -> str:
    parts = [f"{k}={_short(v, 40)}" for k, v in op.items() if k not in ("op", "uid")]
    return ", ".join(parts)


def fold_model(directory: str, events: Iterable[tuple[str, dict]]) -> ModelState:
    """The state of one model directory from its events, in any order (sorted here by file name)."""
    state = ModelState(directory)
    for name, doc in sorted(events, key=lambda e: e[0]):
        ev = _Event(f"{layout.REGISTRY}/{directory}/events/{name}", name, doc if isinstance(doc, dict) else {})
        for op in ev_ops(doc):
            try:
                state.apply(op, ev)
            except (KeyError, TypeError, ValueError, InvalidParameterValue) as exc:  # a hand-edited event
                state._record(ev, str(op.get("op")), None, _describe(op),
                              ignored=f"malformed change ({type(exc).__name__}: {exc})")
    return state


def ev_ops(doc: Any) -> list[dict]:
    ops = doc.get("ops") if isinstance(doc, dict) else None
    return [op for op in (ops or []) if isinstance(op, dict)]


class RegistryState:
    """Every model directory folded, and the names the live models answer to."""

    def __init__(self, models: dict[str, ModelState]):
        self.models = models
        self.by_name: dict[str, str] = {}       # display name -> directory (live models)
        self.display: dict[str, str] = {}       # directory -> display name
        self.notices: dict[str, list[str]] = {}  # directory -> name-conflict notices
        claims: dict[str, list[ModelState]] = {}
        for m in models.values():
            if m.live and m.name is not None:
                claims.setdefault(m.name, []).append(m)
        taken = set(claims)
        for name in sorted(claims):
            ordered = sorted(claims[name], key=lambda m: (m.name_claim, m.directory))
            self.by_name[name] = ordered[0].directory
            self.display[ordered[0].directory] = name
            k = 2
            for loser in ordered[1:]:
                while f"{name}~{k}" in taken:
                    k += 1
                alt = f"{name}~{k}"
                taken.add(alt)
                self.by_name[alt] = loser.directory
                self.display[loser.directory] = alt
                self.notices[loser.directory] = [
                    f"Two models were given the name {name!r} in different clones; the earlier "
                    f"(registry/{ordered[0].directory}) keeps it and this one "
                    f"(registry/{loser.directory}) is listed as {alt!r}. Rename it with "
                    f"`gitexp models rename {alt!r} NEW_NAME`."]

    def model(self, name: str) -> ModelState:
        directory = self.by_name.get(name)
        if directory is None:
            raise ResourceDoesNotExist(
                f"Registered Model with name={name} not found. List models with `gitexp models list`; "
                "if a colleague registered it, fetch their tracking branch first.", name=name)
        return self.models[directory]

    def name_of(self, model: ModelState) -> str:
        return self.display.get(model.directory, model.name or "")

    def notices_of(self, model: ModelState) -> list[str]:
        return list(model.notices) + self.notices.get(model.directory, [])

    def new_directory(self, name: str) -> str:
        """Where a model created now under `name` lives: the same in every clone that creates it."""
        base = layout.encode_key(name)
        if len(base.encode()) > _DIR_NAME_LIMIT:
            base = base[:100] + "~" + hashlib.sha256(name.encode()).hexdigest()[:16]
        k = 1
        while True:
            directory = base if k == 1 else f"{base}~{k}"
            existing = self.models.get(directory)
            if existing is None or not existing.live:
                return directory
            k += 1


# -- models:/ URIs ------------------------------------------------------------------------------------
class ModelsUri:
    """A parsed models:/ URI: exactly one of version, stage, alias, or latest (all None)."""

    def __init__(self, name: str, version: int | None = None, stage: str | None = None,
                 alias: str | None = None):
        self.name = name
        self.version = version
        self.stage = stage
        self.alias = alias


def _bad_models_uri(uri: str, why: str = "") -> InvalidParameterValue:
    return InvalidParameterValue(
        f"Not a proper models:/ URI: {uri!r}{' (' + why + ')' if why else ''}. Models URIs must be "
        "'models:/<name>/<version>', 'models:/<name>/<stage>', 'models:/<name>/latest' or "
        "'models:/<name>@<alias>'.", uri=uri)


def parse_models_uri(uri: str) -> ModelsUri:
    """Split models:/name/<version|stage|latest> and models:/name@alias, as MLflow does."""
    parsed = urlparse(str(uri), allow_fragments=False)
    if parsed.scheme != "models":
        raise _bad_models_uri(uri, "the scheme is not models:")
    path = parsed.path if not parsed.netloc else f"/{parsed.netloc}{parsed.path}"
    if not path.startswith("/") or len(path) <= 1:
        raise _bad_models_uri(uri)
    parts = path.lstrip("/").split("/")
    if len(parts) > 2 or parts[0].strip() == "":
        raise _bad_models_uri(uri)
    if len(parts) == 2:
        name, suffix = parts
        if suffix.strip() == "":
            raise _bad_models_uri(uri, "nothing after the name")
        if suffix.isdigit():
            return ModelsUri(name, version=int(suffix))
        if suffix.lower() == "latest":
            return ModelsUri(name)
        return ModelsUri(name, stage=STAGES.canonical(suffix))
    if "@" in parts[0]:
        name, _, alias = parts[0].rpartition("@")
        if not name or not alias.strip():
            raise _bad_models_uri(uri, "empty name or alias")
        return ModelsUri(name, alias=alias)
    raise _bad_models_uri(
        uri, "models:/<id> names a logged model, not a registered one; add a version, stage or @alias")


# -- the registry over one store ----------------------------------------------------------------------
class ModelRegistry:
    """Registered models and versions on the tracking branch of one GitStore."""

    def __init__(self, store: Any):
        self.store = store
        self.branch = store.branch
        self._models = _LRU(10000)
        self._docs = _LRU(200_000)   # event blob id -> parsed document (events never change)
        self._registry: tuple[str | None, RegistryState] | None = None
        self._lock = threading.Lock()

    # -- reading -----------------------------------------------------------------------------------
    def state(self, root_tree: str | None = None) -> RegistryState:
        """The folded registry at a tree (default: the branch tip)."""
        root = root_tree if root_tree is not None else self.branch.tree_of(self.branch.tip())
        reg_tree = self.branch.subtree(root, layout.REGISTRY) if root else None
        cached = self._registry
        if cached is not None and cached[0] == reg_tree:
            return cached[1]
        models: dict[str, ModelState] = {}
        if reg_tree is not None:
            for entry in self.branch.odb.read_tree(reg_tree):
                if entry.is_tree:
                    models[entry.name] = self._fold_directory(entry.name, entry.sha)
        result = RegistryState(models)
        self._registry = (reg_tree, result)
        return result

    def _fold_directory(self, directory: str, tree: str) -> ModelState:
        key = (directory, tree)
        cached = self._models.get_item(key)
        if cached is not None:
            return cached
        events_entry = self.branch.odb.tree_dict(tree).get("events")
        events = []
        if events_entry is not None:
            for entry in self.branch.odb.read_tree(events_entry.sha):
                if entry.name.endswith(".yaml") and not entry.is_tree:
                    doc = self._docs.get_item(entry.sha)
                    if doc is None:
                        doc = layout.load_yaml(self.branch.odb.read_blob(entry.sha)) or {}
                        with self._lock:
                            self._docs.put(entry.sha, doc)
                    events.append((entry.name, doc))
        state = fold_model(directory, events)
        with self._lock:
            self._models.put(key, state)
        for v in state.versions.values():
            if v.renumbered_from is not None:
                _warn_renumbered(state, v)
        return state

    def to_version(self, reg: RegistryState, m: ModelState, v: VersionState) -> ModelVersion:
        return ModelVersion(
            name=reg.name_of(m), version=v.number, creation_timestamp=v.creation_time,
            last_updated_timestamp=v.last_updated, description=v.description, user_id=v.user or None,
            current_stage=v.stage, source=v.source, run_id=v.run_id, status="READY", status_message=None,
            tags=dict(v.tags), run_link=v.run_link, aliases=m.aliases_of(v.uid), model_id=v.model_id,
            renumbered_from=v.renumbered_from,
        )

    def to_model(self, reg: RegistryState, m: ModelState) -> RegisteredModel:
        aliases = {a: m.versions[u].number for a, u in sorted(m.aliases.items())}
        return RegisteredModel(
            name=reg.name_of(m), creation_timestamp=m.creation_time, last_updated_timestamp=m.last_updated,
            description=m.description, latest_versions=[self.to_version(reg, m, v) for v in m.latest_per_stage()],
            tags=dict(m.tags), aliases=aliases, notices=reg.notices_of(m),
        )

    def _model(self, name: str) -> tuple[RegistryState, ModelState]:
        name = model_name(name)
        reg = self.state()
        return reg, reg.model(name)

    @staticmethod
    def _version(reg: RegistryState, m: ModelState, version: Any) -> VersionState:
        number = version_number(version)
        v = m.version(number)
        if v is None:
            known = ", ".join(str(x.number) for x in m.live_versions()) or "none"
            raise ResourceDoesNotExist(
                f"Model Version (name={reg.name_of(m)}, version={number}) not found; "
                f"its versions are: {known}", name=reg.name_of(m), version=number)
        return v

    def get_registered_model(self, name: str) -> RegisteredModel:
        reg, m = self._model(name)
        return self.to_model(reg, m)

    def list_registered_models(self) -> list[RegisteredModel]:
        reg = self.state()
        return [self.to_model(reg, reg.models[d]) for d in reg.by_name.values()]

    def list_model_versions(self) -> list[ModelVersion]:
        reg = self.state()
        out = []
        for directory in reg.by_name.values():
            m = reg.models[directory]
            out.extend(self.to_version(reg, m, v) for v in m.live_versions())
        return out

    def get_model_version(self, name: str, version: Any) -> ModelVersion:
        reg, m = self._model(name)
        return self.to_version(reg, m, self._version(reg, m, version))

    def get_latest_versions(self, name: str, stages: list[str] | None = None) -> list[ModelVersion]:
        reg, m = self._model(name)
        wanted = {STAGES.canonical(s) for s in stages} if stages else set(STAGES.ALL)
        return [self.to_version(reg, m, v) for v in m.latest_per_stage() if v.stage in wanted]

    def get_model_version_by_alias(self, name: str, alias: str) -> ModelVersion:
        alias = alias_name(alias)
        reg, m = self._model(name)
        if alias.lower() == "latest":
            live = m.live_versions()
            if not live:
                raise ResourceDoesNotExist(f"Latest version not found for model {reg.name_of(m)}: "
                                           "it has no versions", name=name)
            return self.to_version(reg, m, max(live, key=lambda v: v.number))
        uid = m.aliases.get(alias)
        if uid is None:
            known = ", ".join(sorted(m.aliases)) or "none"
            raise InvalidParameterValue(
                f"Registered model alias {alias} not found for model {reg.name_of(m)!r} "
                f"(its aliases: {known})", name=name, alias=alias)
        return self.to_version(reg, m, m.versions[uid])

    def get_model_version_download_uri(self, name: str, version: Any) -> str:
        reg, m = self._model(name)
        v = self._version(reg, m, version)
        return v.storage_location or v.source

    def resolve(self, uri: str) -> ModelVersion:
        """The version a models:/ URI names."""
        parsed = parse_models_uri(uri)
        if parsed.version is not None:
            return self.get_model_version(parsed.name, parsed.version)
        if parsed.alias is not None:
            return self.get_model_version_by_alias(parsed.name, parsed.alias)
        reg, m = self._model(parsed.name)
        candidates = [v for v in m.live_versions() if parsed.stage is None or v.stage == parsed.stage]
        if not candidates:
            where = f" and stage '{parsed.stage}'" if parsed.stage else ""
            raise ResourceDoesNotExist(
                f"No versions of model with name '{reg.name_of(m)}'{where} found (from {uri!r}). "
                "See `gitexp models versions " + reg.name_of(m) + "`.", uri=uri)
        return self.to_version(reg, m, max(candidates, key=lambda v: v.number))

    def history(self, name: str) -> list[ModelHistoryEntry]:
        """The audit trail of a model (live, or deleted: every directory whose last name is `name`)."""
        name = model_name(name)
        reg = self.state()
        if name in reg.by_name:
            directories = [reg.by_name[name]]
        else:  # renamed away or deleted: every directory that ever went by this name
            directories = [d for d, m in reg.models.items() if m.name == name
                           or any(r["model"] == name for r in m.history)]
        if not directories:
            raise ResourceDoesNotExist(
                f"No registered model named {name!r}, now or in the past; see `gitexp models list`",
                name=name)
        records = sorted((r for d in directories for r in reg.models[d].history),
                         key=lambda r: r["event"].rsplit("/", 1)[-1])
        commits = self._commits_adding([f"{layout.REGISTRY}/{d}/events" for d in directories])
        return [ModelHistoryEntry(r["time"], r["user"], r["email"], r["action"], r["model"], r["version"],
                                  r["detail"], r["event"], commits.get(r["event"]), r["ignored"])
                for r in records]

    def _commits_adding(self, paths: list[str]) -> dict[str, str]:
        """event path -> commit that added it (one `git log` over the branch)."""
        tip = self.branch.tip()
        if tip is None:
            return {}
        result = git.run(["log", "--format=%x00%H", "--name-only", "--diff-filter=A", "--no-renames", tip, "--",
                          *paths], git_dir=self.branch.repo.common_dir, text=True)
        out: dict[str, str] = {}
        commit = None
        for line in result.stdout.splitlines():
            if line.startswith("\0"):
                commit = line[1:]
            elif line.strip() and commit:
                out.setdefault(line.strip(), commit)
        return out

    # -- writing -----------------------------------------------------------------------------------------
    def _commit(self, name: str | None, build_ops, message: str, directory_for_new: bool = False) -> Any:
        """Commit one event built against the tip it lands on.

        `build_ops(reg, model)` validates against that state and returns (ops, result); it runs
        again if another writer moved the branch first, so checks are never stale.
        """
        user, email = self.branch.repo.identity()
        outcome: dict[str, Any] = {}
        self.store.recover_dead_journals()

        def build(tree: str | None) -> dict:
            reg = self.state(tree)
            if directory_for_new:
                model = None
                ops, result, directory, shown = build_ops(reg, None)
            else:
                model = reg.model(name)  # type: ignore[arg-type]
                ops, result = build_ops(reg, model)
                directory, shown = model.directory, reg.name_of(model)
            outcome["result"] = result
            if not ops:
                return {}
            ns = time.time_ns()
            doc = {"time": ns // 1_000_000, "user": user, "email": email, "model": shown, "ops": ops}
            path = f"{layout.REGISTRY}/{directory}/events/{layout.event_name(ns)}"
            return {path: (MODE_BLOB, self.branch.odb.write_blob(layout.dump_yaml(doc)))}

        self.branch.commit(build, message)
        return outcome.get("result")

    def create_registered_model(self, name: str, tags: dict[str, Any] | None = None,
                                description: str | None = None) -> RegisteredModel:
        name = model_name(name)
        tag_dict = _tag_dict(tags)
        description = description_text(description)

        def build(reg: RegistryState, _model: None):
            if name in reg.by_name:
                raise ResourceAlreadyExists(
                    f"Registered Model (name={name}) already exists. Register a new version with "
                    f"create_model_version / `gitexp models register`, or choose another name.", name=name)
            op: dict[str, Any] = {"op": "create_model", "name": name}
            if description:
                op["description"] = description
            if tag_dict:
                op["tags"] = tag_dict
            return [op], None, reg.new_directory(name), name

        self._commit(None, build, f"registry {name!r}: create model", directory_for_new=True)
        return self.get_registered_model(name)

    def rename_registered_model(self, name: str, new_name: str) -> RegisteredModel:
        name = model_name(name)
        new_name = model_name(new_name, "new_name")

        def build(reg: RegistryState, m: ModelState):
            if new_name == reg.name_of(m):
                return [], None
            if new_name in reg.by_name:
                raise ResourceAlreadyExists(
                    f"Registered Model (name={new_name}) already exists: cannot rename {name!r} to it. "
                    "Choose another name or delete that model first.", name=new_name)
            return [{"op": "rename", "name": new_name}], None

        self._commit(name, build, f"registry {name!r}: rename to {new_name!r}")
        return self.get_registered_model(new_name)

    def update_registered_model(self, name: str, description: str | None) -> RegisteredModel:
        description = description_text(description)
        self._commit(model_name(name), lambda reg, m: ([{"op": "update_description", "description": description}],
                                                       None), f"registry {name!r}: update description")
        return self.get_registered_model(name)

    def delete_registered_model(self, name: str) -> None:
        self._commit(model_name(name), lambda reg, m: ([{"op": "delete_model"}], None),
                     f"registry {name!r}: delete model")

    def set_registered_model_tag(self, name: str, key: str, value: Any) -> None:
        key = tag_key(key)
        value = tag_value(key, value)
        self._commit(model_name(name), lambda reg, m: ([{"op": "set_tag", "key": key, "value": value}], None),
                     f"registry {name!r}: set tag {key!r}")

    def delete_registered_model_tag(self, name: str, key: str) -> None:
        key = tag_key(key)
        # As MLflow: deleting a tag that is not there is not an error (and writes nothing).
        self._commit(model_name(name), lambda reg, m: ([{"op": "delete_tag", "key": key}] if key in m.tags
                                                       else [], None),
                     f"registry {name!r}: delete tag {key!r}")

    def create_model_version(self, name: str, source: str, run_id: str | None = None,
                             tags: dict[str, Any] | None = None, run_link: str | None = None,
                             description: str | None = None, model_id: str | None = None) -> ModelVersion:
        name = model_name(name)
        if not source or not isinstance(source, str):
            raise InvalidParameterValue(
                f"A model version needs a source (where its files are, e.g. 'runs:/<run_id>/model'), "
                f"got {source!r}", source=source)
        valid.text("Model version source", source, source=source)
        for what, value in (("run_id", run_id), ("run_link", run_link), ("model_id", model_id)):
            if isinstance(value, str):
                valid.text(f"Model version {what}", value)
        tag_dict = _tag_dict(tags)
        description = description_text(description)
        storage_location = None
        if urlparse(source).scheme == "models":
            try:
                referenced = self.resolve(source)
                storage_location = self.get_model_version_download_uri(referenced.name, referenced.version)
                run_id = run_id or referenced.run_id
            except (InvalidParameterValue, ResourceDoesNotExist) as exc:
                raise InvalidParameterValue(
                    f"Unable to fetch model from model URI source artifact location {source!r}: {exc.message}",
                    source=source) from exc
        uid = secrets.token_hex(8)

        def build(reg: RegistryState, m: ModelState):
            op: dict[str, Any] = {"op": "create_version", "uid": uid, "version": m.next_number, "source": source}
            for key, value in (("storage_location", storage_location), ("run_id", run_id),
                               ("run_link", run_link), ("description", description), ("model_id", model_id)):
                if value:
                    op[key] = value
            if tag_dict:
                op["tags"] = tag_dict
            return [op], m.next_number

        number = self._commit(name, build, f"registry {name!r}: register a version from {source}")
        reg, m = self._model(name)
        for v in m.versions.values():
            if v.uid == uid:
                return self.to_version(reg, m, v)
        raise ResourceDoesNotExist(f"Version {number} of {name!r} vanished right after it was registered")

    def _version_change(self, name: str, version: Any, make_op, message: str) -> ModelVersion:
        name = model_name(name)
        number = version_number(version)
        uid_box: dict[str, str] = {}

        def build(reg: RegistryState, m: ModelState):
            v = self._version(reg, m, number)
            uid_box["uid"] = v.uid
            op = make_op(m, v)
            return ([{**op, "uid": v.uid, "version": v.number}] if op else []), None

        self._commit(name, build, message)
        reg = self.state()
        for m in reg.models.values():
            v = m.versions.get(uid_box["uid"])
            if v is not None and not v.deleted and m.live:
                return self.to_version(reg, m, v)
        return self.get_model_version(name, number)

    def update_model_version(self, name: str, version: Any, description: str | None = None) -> ModelVersion:
        description = description_text(description)
        return self._version_change(name, version, lambda m, v: {"op": "update_version", "description": description},
                                    f"registry {name!r}: update version {version} description")

    def transition_model_version_stage(self, name: str, version: Any, stage: str,
                                       archive_existing_versions: bool = False) -> ModelVersion:
        stage = STAGES.canonical(stage)
        if archive_existing_versions and stage not in STAGES.ACTIVE:
            raise InvalidParameterValue(
                f"Model version transition cannot archive existing model versions because {stage!r} is not "
                f"an Active stage. Valid stages are {list(STAGES.ACTIVE)}; pass "
                "archive_existing_versions=False for this stage.", stage=stage)
        archive = bool(archive_existing_versions)
        return self._version_change(
            name, version,
            lambda m, v: {"op": "transition_stage", "stage": stage, "archive_existing_versions": archive},
            f"registry {name!r}: version {version} to {stage}" + (" (archive existing)" if archive else ""))

    def delete_model_version(self, name: str, version: Any) -> None:
        name = model_name(name)
        number = version_number(version)

        def build(reg: RegistryState, m: ModelState):
            v = self._version(reg, m, number)
            return [{"op": "delete_version", "uid": v.uid, "version": v.number}], None

        self._commit(name, build, f"registry {name!r}: delete version {number}")

    def set_model_version_tag(self, name: str, version: Any, key: str, value: Any) -> None:
        key = tag_key(key)
        value = tag_value(key, value)
        self._version_change(name, version, lambda m, v: {"op": "set_version_tag", "key": key, "value": value},
                             f"registry {name!r}: set tag {key!r} on version {version}")

    def delete_model_version_tag(self, name: str, version: Any, key: str) -> None:
        key = tag_key(key)
        self._version_change(name, version,
                             lambda m, v: {"op": "delete_version_tag", "key": key} if key in v.tags else None,
                             f"registry {name!r}: delete tag {key!r} of version {version}")

    def set_registered_model_alias(self, name: str, alias: str, version: Any) -> None:
        alias = alias_name(alias, for_setting=True)
        self._version_change(name, version,
                             lambda m, v: None if m.aliases.get(alias) == v.uid else {"op": "set_alias", "alias": alias},
                             f"registry {name!r}: alias @{alias} -> version {version}")

    def delete_registered_model_alias(self, name: str, alias: str) -> None:
        alias = alias_name(alias)
        self._commit(model_name(name),
                     lambda reg, m: ([{"op": "delete_alias", "alias": alias}] if alias in m.aliases else [], None),
                     f"registry {name!r}: delete alias @{alias}")


def _tag_dict(tags: Any) -> dict[str, str]:
    if tags is None:
        return {}
    if not isinstance(tags, dict):
        try:
            tags = {t.key: t.value for t in tags}
        except AttributeError:
            raise InvalidParameterValue(
                f"Tags must be a dict of key -> value, got {tags!r} ({type(tags).__name__})") from None
    out = {}
    for k, v in tags.items():
        key = tag_key(k)
        out[key] = tag_value(key, v)
    return out


_warned: set[tuple[str, str]] = set()


def _warn_renumbered(m: ModelState, v: VersionState) -> None:
    key = (m.directory, v.uid)
    if key in _warned:
        return
    _warned.add(key)
    _log.warning("gitexp: model %r version %d was version %d where it was registered (a version registered "
                 "earlier in another clone was merged in); see `gitexp models show %s`",
                 m.name, v.number, v.renumbered_from, m.name)


def resolve_models_uri(store: Any, uri: str) -> str:
    """The source URI (runs:/<run_id>/<path> or a path) a models:/ URI names.

    ``models:/<name>/<version>``, ``models:/<name>/<stage>`` (the highest version in that
    stage, stage case-insensitive), ``models:/<name>/latest`` and ``models:/<name>@<alias>``.
    """
    registry = store.registry
    mv = registry.resolve(uri)
    return registry.get_model_version_download_uri(mv.name, mv.version)
