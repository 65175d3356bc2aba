"""The fold: a model directory's events, in file-name order, applied into its state.

``fold_model`` builds one model directory's ``ModelState`` from its event files
(ops that no longer apply are skipped and recorded with the reason);
``RegistryState`` then resolves the names the live models answer to across
directories (the earliest claim keeps a name, later claimants show as ``name~2``).
"""

from __future__ import annotations

import datetime as _dt
import hashlib
from collections.abc import Iterable
from typing import Any

from ...entities.model_registry import ModelVersionStages as STAGES
from ...exceptions import InvalidParameterValue, ResourceDoesNotExist
from .. import layout

_DIR_NAME_LIMIT = 150  # bytes of a model directory name before it is shortened with a hash


class _Event:
    """The context every op of one event file shares."""

    __slots__ = ("path", "name", "time", "user", "email")

    def __init__(self, path: str, name: str, doc: dict[str, Any]):
        self.path = path
        self.name = name
        self.time = _event_time(name, doc)
        self.user = str(doc.get("user") or "")
        self.email = doc.get("email")


def _event_time(name: str, doc: dict[str, Any]) -> int:
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

    def __init__(self, uid: str, number: int, op: dict[str, Any], ev: _Event):
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

    def _live_version(self, op: dict[str, Any], ev: _Event, action: str) -> VersionState | None:
        v = self.versions.get(str(op.get("uid")))
        if v is None or v.deleted:
            why = "its version was deleted earlier" if v is not None else "its version is unknown"
            self._record(ev, action, v.number if v else op.get("version"), _describe(op), ignored=why)
            return None
        return v

    def apply(self, op: dict[str, Any], ev: _Event) -> None:
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

    def _create(self, op: dict[str, Any], ev: _Event) -> None:
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

    def _create_version(self, op: dict[str, Any], ev: _Event) -> None:
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

    def _transition(self, v: VersionState, op: dict[str, Any], ev: _Event) -> None:
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


def _describe(op: dict[str, Any]) -> str:
    parts = [f"{k}={_short(v, 40)}" for k, v in op.items() if k not in ("op", "uid")]
    return ", ".join(parts)


def fold_model(directory: str, events: Iterable[tuple[str, dict[str, Any]]]) -> ModelState:
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


def ev_ops(doc: Any) -> list[dict[str, Any]]:
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
