"""ModelRegistry: the registry over one store -- reading the folded state, writing events."""

from __future__ import annotations

import logging
import secrets
import threading
from collections.abc import Callable
from typing import Any
from urllib.parse import urlparse

from ... import _git as git
from ... import _validation as valid
from ...entities.model_registry import ModelHistoryEntry, ModelVersion, RegisteredModel
from ...entities.model_registry import ModelVersionStages as STAGES
from ...exceptions import InvalidParameterValue, ResourceAlreadyExists, ResourceDoesNotExist
from .. import layout
from ..objects import _LRU, MODE_BLOB
from ._fold import ModelState, RegistryState, VersionState, fold_model
from ._uris import ModelsUri, resolve_version
from ._validation import (
    alias_name,
    checked_tags,
    description_text,
    model_name,
    tag_key,
    tag_value,
    version_number,
)

_log = logging.getLogger("gitexp")


class ModelRegistry:
    """Registered models and versions on the tracking branch of one GitStore."""

    def __init__(self, store: Any):
        self.store = store
        self.branch = store.branch
        self._models: _LRU[tuple[str, str], ModelState] = _LRU(10000)
        self._docs: _LRU[str, Any] = _LRU(200_000)   # event blob id -> parsed document (events never change)
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
        out: list[ModelVersion] = []
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
        return str(v.storage_location or v.source or "")

    def resolve(self, uri: str) -> ModelVersion:
        """The version a models:/ URI names."""

        def latest(parsed: ModelsUri) -> ModelVersion:
            reg, m = self._model(parsed.name)
            candidates = [v for v in m.live_versions() if parsed.stage is None or v.stage == parsed.stage]
            if not candidates:
                where = f" and stage '{parsed.stage}'" if parsed.stage else ""
                raise ResourceDoesNotExist(
                    f"No versions of model with name '{reg.name_of(m)}'{where} found (from {uri!r}). "
                    "See `gitexp models versions " + reg.name_of(m) + "`.", uri=uri)
            return self.to_version(reg, m, max(candidates, key=lambda v: v.number))

        version: ModelVersion = resolve_version(self, uri, latest)
        return version

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
    def _commit(self, name: str | None, build_ops: Callable[[RegistryState, Any], tuple[Any, ...]],
                message: str, directory_for_new: bool = False) -> Any:
        """Commit one event built against the tip it lands on.

        `build_ops(reg, model)` validates against that state and returns (ops, result); it runs
        again if another writer moved the branch first, so checks are never stale.
        """
        user, email = self.branch.repo.identity()
        outcome: dict[str, Any] = {}
        self.store.recover_dead_journals()

        def build(tree: str | None) -> dict[str, Any]:
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
            ns = layout.event_time_ns()
            doc = {"time": ns // 1_000_000, "user": user, "email": email, "model": shown, "ops": ops}
            path = f"{layout.REGISTRY}/{directory}/events/{layout.event_name(ns)}"
            return {path: (MODE_BLOB, self.branch.odb.write_blob(layout.dump_yaml(doc)))}

        self.branch.commit(build, message)
        return outcome.get("result")

    def create_registered_model(self, name: str, tags: dict[str, Any] | None = None,
                                description: str | None = None) -> RegisteredModel:
        name = model_name(name)
        tag_dict = checked_tags(tags)
        description = description_text(description)

        def build(reg: RegistryState, _model: None) -> tuple[Any, ...]:  # (ops, result, directory, shown name)
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

        def build(reg: RegistryState, m: ModelState) -> tuple[list[dict[str, Any]], Any]:
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
        tag_dict = checked_tags(tags)
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

        def build(reg: RegistryState, m: ModelState) -> tuple[list[dict[str, Any]], Any]:
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
                version = self.to_version(reg, m, v)
                if model_id:
                    self._link_logged_model(model_id, version.name, version.version)
                return version
        raise ResourceDoesNotExist(f"Version {number} of {name!r} vanished right after it was registered")

    def _link_logged_model(self, model_id: str, name: str, version: Any) -> None:
        """MLflow's mlflow.modelVersions tag on the logged model a version was registered from."""
        try:
            self.store.logged_models.add_model_version(model_id, name, version)
        except ResourceDoesNotExist as exc:  # as MLflow's fluent API: the version stands, say why no tag
            _log.warning(
                "Registered %s version %s, but could not tag logged model %r with it: %s",
                name, version, model_id, exc.message)

    def _version_change(self, name: str, version: Any,
                        make_op: Callable[[ModelState, Any], dict[str, Any] | None], message: str) -> ModelVersion:
        name = model_name(name)
        number = version_number(version)
        uid_box: dict[str, str] = {}

        def build(reg: RegistryState, m: ModelState) -> tuple[list[dict[str, Any]], Any]:
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

        def build(reg: RegistryState, m: ModelState) -> tuple[list[dict[str, Any]], Any]:
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
        self._version_change(
            name, version,
            lambda m, v: None if m.aliases.get(alias) == v.uid else {"op": "set_alias", "alias": alias},
            f"registry {name!r}: alias @{alias} -> version {version}")

    def delete_registered_model_alias(self, name: str, alias: str) -> None:
        alias = alias_name(alias)
        self._commit(model_name(name),
                     lambda reg, m: ([{"op": "delete_alias", "alias": alias}] if alias in m.aliases else [], None),
                     f"registry {name!r}: delete alias @{alias}")


_warned: set[tuple[str, str]] = set()


def _warn_renumbered(m: ModelState, v: VersionState) -> None:
    key = (m.directory, v.uid)
    if key in _warned:
        return
    _warned.add(key)
    _log.warning("gitexp: model %r version %d was version %d where it was registered (a version registered "
                 "earlier in another clone was merged in); see `gitexp models show %s`",
                 m.name, v.number, v.renumbered_from, m.name)
