"""`gitexp import`: copy an MLflow store into the tracking branch, incrementally.

Runs go through `Client.put_runs` (GitStore.put_runs: one commit per batch, ids and times
kept).  What was copied is remembered per source in `.git/gitexp/import/<source>.json`
(run id -> fingerprint of the record as read), written after every committed batch: a
second import skips unchanged runs without reading them back, and an import killed
midway resumes after the last committed batch.  The file is derived: without it every
run is compared with the branch instead (put_runs writes only differences), so nothing
is ever duplicated either way.
"""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

from ..client import Client
from ..exceptions import GitexpError, ResourceDoesNotExist
from ..store.layout import recorded_at
from ._records import (
    ExperimentRecord,
    LoggedModelRecord,
    ModelRecord,
    ReadError,
    RunRecord,
    Source,
    VersionRecord,
    fingerprint,
    metric_identity,
    model_metric,
)

BATCH = 500
KINDS = ("experiments", "runs", "logged models", "registered models", "model versions")


@dataclass
class Failure:
    kind: str
    name: str
    error: str


@dataclass
class ImportResult:
    """Counts per kind ("runs", ...) and outcome ("created", "updated", "unchanged"), failures."""

    counts: dict[str, dict[str, int]] = field(default_factory=lambda: {k: {} for k in KINDS})
    failures: list[Failure] = field(default_factory=list)
    dry_run: bool = False

    def add(self, kind: str, outcome: str, n: int = 1) -> None:
        self.counts[kind][outcome] = self.counts[kind].get(outcome, 0) + n

    def fail(self, kind: str, name: str, exc: BaseException) -> None:
        self.failures.append(Failure(kind, name, f"{type(exc).__name__}: {exc}"))
        self.add(kind, "failed")


def open_source(uri: str, artifacts_root: str | None = None) -> Source:
    """The reader for an MLflow tracking URI or an mlruns/ path."""
    if uri.startswith(("http://", "https://")):
        from ._server import ServerSource

        server: Source = ServerSource(uri)
        return server
    if "://" in uri and not uri.startswith("file://") or uri.startswith("sqlite:"):
        from ._sql import SqlSource

        return SqlSource(uri, artifacts_root)
    from ._files import FileSource

    return FileSource(uri, artifacts_root)


def _state_path(client: Client, source: Source) -> str:
    info = client.get_repository_info()
    digest = hashlib.sha256(source.uri.encode()).hexdigest()[:16]
    return os.path.join(info.common_dir, "gitexp", "import", f"{digest}.json")


def _load_state(path: str) -> dict[str, str]:
    try:
        with open(path, encoding="utf-8") as fh:
            doc = json.load(fh)
        return dict(doc.get("runs", {}))
    except (OSError, ValueError):
        return {}


def _save_state(path: str, uri: str, runs: dict[str, str]) -> None:
    os.makedirs(os.path.dirname(path), exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=os.path.dirname(path), prefix="tmp_")
    with os.fdopen(fd, "w", encoding="utf-8") as fh:
        json.dump({"source": uri, "runs": runs}, fh)
    os.replace(tmp, path)


class Importer:
    def __init__(self, client: Client, source: Source, experiments: list[str] | None = None,
                 since: int | None = None, until: int | None = None, dry_run: bool = False,
                 progress: Callable[[str, int, int], None] | None = None, batch: int = BATCH) -> None:
        self.client = client
        self.source = source
        self.wanted = experiments
        self.since, self.until = since, until
        self.dry_run = dry_run
        self.progress = progress or (lambda what, done, total: None)
        self.batch = batch
        self.result = ImportResult(dry_run=dry_run)
        self.experiment_ids: dict[str, str] = {}   # source id -> gitexp id
        self.run_ids: set[str] = set()
        self._known_runs: dict[str, bool] = {}     # run id -> on the branch (model links)

    # -- the whole import ---------------------------------------------------------------------------
    def run(self) -> ImportResult:
        experiments = [e for e in self.source.experiments()
                       if not self.wanted or e.name in self.wanted or e.experiment_id in self.wanted]
        for exp in experiments:
            self._experiment(exp)
        self._runs([e.experiment_id for e in experiments if e.experiment_id in self.experiment_ids])
        models = self.source.logged_models(list(self.experiment_ids))
        model_sources = {}
        for model in models:
            model_sources[model.model_id] = self._logged_model(model)
        for registered in self.source.registered_models():
            self._registered_model(registered, model_sources)
        if not self.dry_run:
            for exp in experiments:  # deleted last: a deleted experiment still takes its runs
                gid = self.experiment_ids.get(exp.experiment_id)
                if gid and exp.lifecycle_stage == "deleted" and gid != "0":
                    try:
                        if self.client.get_experiment(gid).lifecycle_stage != "deleted":
                            self.client.delete_experiment(gid)
                    except Exception as exc:
                        self.result.fail("experiments", exp.name, exc)
        return self.result

    # -- experiments --------------------------------------------------------------------------------
    def _experiment(self, exp: ExperimentRecord) -> None:
        try:
            found = self.client.get_experiment("0") if exp.experiment_id == "0" and exp.name == "Default" \
                else self.client.get_experiment_by_name(exp.name)
            if found is None:
                if self.dry_run:
                    self.experiment_ids[exp.experiment_id] = f"(new:{exp.name})"
                    self.result.add("experiments", "created")
                    return
                with recorded_at(exp.creation_time):
                    gid = self.client.create_experiment(exp.name, tags=exp.tags or None)
                self.result.add("experiments", "created")
            else:
                gid = found.experiment_id
                changed = {k: v for k, v in exp.tags.items() if found.tags.get(k) != v}
                if changed and not self.dry_run:
                    if found.lifecycle_stage == "deleted":
                        self.client.restore_experiment(gid)
                        for k, v in changed.items():
                            self.client.set_experiment_tag(gid, k, v)
                        self.client.delete_experiment(gid)
                    else:
                        for k, v in changed.items():
                            self.client.set_experiment_tag(gid, k, v)
                self.result.add("experiments", "updated" if changed else "unchanged")
            self.experiment_ids[exp.experiment_id] = gid
        except Exception as exc:
            self.result.fail("experiments", f"{exp.name} (id {exp.experiment_id})", exc)

    # -- runs ---------------------------------------------------------------------------------------
    def _runs(self, source_experiments: list[str]) -> None:
        ids = self.source.run_ids(source_experiments, self.since, self.until)
        state_path = _state_path(self.client, self.source)
        state = _load_state(state_path)
        total, done = len(ids), 0
        self.progress("runs", 0, total)
        pending: list[tuple[RunRecord, str]] = []
        for record in self._read(ids):
            if isinstance(record, ReadError):
                self.result.fail("runs", f"{record.run_id} ({record.name})", record.error)
                done += 1
                continue
            self.run_ids.add(record.run_id)
            print_ = fingerprint(record)
            record.experiment_id = self.experiment_ids.get(record.experiment_id, record.experiment_id)
            if state.get(record.run_id) == print_:
                self.result.add("runs", "unchanged")
                done += 1
                self.progress("runs", done, total)
                continue
            pending.append((record, print_))
            if len(pending) >= self.batch:
                done += self._write(pending, state, state_path)
                self.progress("runs", done, total)
                pending = []
        if pending:
            done += self._write(pending, state, state_path)
            self.progress("runs", done, total)

    def _read(self, ids: list[str]) -> Iterator[RunRecord | ReadError]:
        try:
            yield from self.source.runs(ids)
        except Exception as exc:  # the source itself failed (a database gone): say so, stop reading
            self.result.fail("runs", f"(reading {self.source.uri})", exc)

    def _write(self, pending: list[tuple[RunRecord, str]], state: dict[str, str], state_path: str) -> int:
        if self.dry_run:
            for record, _print in pending:
                try:
                    self.client.get_run(record.run_id)
                    self.result.add("runs", "updated")
                except ResourceDoesNotExist:
                    self.result.add("runs", "created")
            return len(pending)
        try:
            outcome = self.client.put_runs([r for r, _p in pending])
        except Exception as exc:  # find the run that fails; the others go on
            if len(pending) == 1:
                record = pending[0][0]
                self.result.fail("runs", f"{record.run_id} ({record.run_name})", exc)
                return 1
            half = len(pending) // 2
            return self._write(pending[:half], state, state_path) + self._write(pending[half:], state, state_path)
        for record, print_ in pending:
            self.result.add("runs", outcome.get(record.run_id, "unchanged"))
            state[record.run_id] = print_
        _save_state(state_path, self.source.uri, state)
        return len(pending)

    # -- logged models and the registry ----------------------------------------------------------
    def _logged_model(self, model: LoggedModelRecord) -> str | None:
        """Copy a logged model, its id kept; the runs:/ URI of its files in gitexp.

        Its files go where gitexp keeps a logged model's files: a directory of its source run
        (`<name>/`, or `<name>-<8 hex>` when taken), or a holder run without one."""
        experiment = self.experiment_ids.get(model.experiment_id)
        if experiment is None:
            return None
        try:
            try:
                found = self.client.get_logged_model(model.model_id, allow_deleted=True)
            except ResourceDoesNotExist:
                found = None
            if found is not None:
                changed_tags = {k: v for k, v in model.tags.items() if found.tags.get(k) != v}
                new_params = {k: v for k, v in model.params.items() if k not in found.params}
                if not self.dry_run:
                    if changed_tags:
                        self.client.set_logged_model_tags(model.model_id, changed_tags)
                    if new_params:
                        self.client.log_model_params(model.model_id, new_params)
                linked = self._links(model)
                self.result.add("logged models", "updated" if changed_tags or new_params or linked else "unchanged")
                return str(found.artifact_location)
            if self.dry_run:
                self.result.add("logged models", "created")
                return None
            source_run = model.source_run_id
            if source_run is not None:
                try:
                    if self.client.get_run(source_run).info.lifecycle_stage != "active":
                        source_run = None
                except ResourceDoesNotExist:
                    source_run = None
            with recorded_at(model.creation_time):
                created = self.client.create_logged_model(experiment, model.name, source_run, model.tags or None,
                                                          model.params or None, model.model_type,
                                                          model_id=model.model_id)
            location = str(created.artifact_location)
            run_id, _, path = location[len("runs:/"):].partition("/")
            if model.files:
                with tempfile.TemporaryDirectory() as tmp:
                    for rel, read in model.files.items():
                        target = os.path.join(tmp, *rel.split("/"))
                        os.makedirs(os.path.dirname(target), exist_ok=True)
                        with open(target, "wb") as fh:
                            fh.write(read())
                    self.client.log_artifacts(run_id, tmp, path)
                    self.client.flush(run_id)
            if model.status in ("READY", "FAILED"):
                self.client.finalize_logged_model(model.model_id, model.status)
            self._links(model)
            if model.lifecycle_stage == "deleted":
                self.client.delete_logged_model(model.model_id)
            self.result.add("logged models", "created")
            return location
        except Exception as exc:
            self.result.fail("logged models", f"{model.name} ({model.model_id})", exc)
            return None

    def _run_exists(self, run_id: str | None) -> bool:
        if not run_id:
            return False
        if run_id not in self._known_runs:
            try:
                self.client.get_run(run_id)
                self._known_runs[run_id] = True
            except ResourceDoesNotExist:
                self._known_runs[run_id] = False
        return self._known_runs[run_id]

    def _links(self, model: LoggedModelRecord) -> bool:
        """Write the model's links to runs the branch lacks: metric points logged with its id (on the
        model only: they are in the run's histories already), the runs that took it as input and the
        runs that output it. Links to runs not on the branch wait for an import that brings the run.
        True if anything was (or, in a dry run, would be) written."""
        if not (model.metrics or model.inputs or model.outputs):
            return False
        from ..entities import LoggedModelInput, LoggedModelOutput, Metric

        try:
            current = self.client.get_logged_model(model.model_id)
        except ResourceDoesNotExist:  # a model deleted in gitexp takes no new links
            return False
        have = {metric_identity(model_metric(m.key, m.value, m.timestamp, m.step, m.run_id, m.dataset_name,
                                             m.dataset_digest))
                for m in current.metrics}
        points: dict[str, list[Any]] = {}
        for point in model.metrics:
            identity = metric_identity(point)
            if identity in have or not self._run_exists(point["run_id"]):
                continue
            have.add(identity)
            points.setdefault(point["run_id"], []).append(
                Metric(point["key"], point["value"], point["timestamp"], point["step"], model.model_id,
                       point["dataset_name"], point["dataset_digest"]))
        def linked(run_id: str) -> tuple[set[str], dict[str, int]]:
            run = self.client.get_run(run_id)
            ins = run.inputs.model_inputs if run.inputs is not None else []
            outs = run.outputs.model_outputs if run.outputs is not None else []
            return {m.model_id for m in ins or []}, {m.model_id: m.step for m in outs or []}

        inputs = [r for r in dict.fromkeys(model.inputs)
                  if self._run_exists(r) and model.model_id not in linked(r)[0]]
        outputs = {r: step for r, step in model.outputs.items()
                   if self._run_exists(r) and linked(r)[1].get(model.model_id) != step}
        if not self.dry_run:
            for run_id, metrics in points.items():
                for i in range(0, len(metrics), 1000):
                    self.client.link_logged_model_metrics(run_id, metrics[i:i + 1000])
            for run_id in inputs:
                self.client.log_inputs(run_id, models=[LoggedModelInput(model.model_id)])
            for run_id, step in outputs.items():
                self.client.log_outputs(run_id, [LoggedModelOutput(model.model_id, step)])
        return bool(points or inputs or outputs)

    def _source(self, version: VersionRecord, model_sources: dict[str, str | None]) -> str:
        """A version's source in gitexp: a logged model's runs:/ location, or runs:/<run>/<path> for a
        path inside its run's artifacts; anything else as it was."""
        source = version.source
        if source.startswith("models:/m-"):
            found = model_sources.get(source[len("models:/"):].split("/")[0])
            if found:
                return found
        if version.run_id and f"/{version.run_id}/artifacts/" in source:
            return f"runs:/{version.run_id}/" + source.split(f"/{version.run_id}/artifacts/", 1)[1]
        if version.run_id and source.endswith(f"/{version.run_id}/artifacts"):
            return f"runs:/{version.run_id}"
        return source

    def _registered_model(self, model: ModelRecord, model_sources: dict[str, str | None]) -> None:
        client = self.client
        try:
            try:
                found = client.get_registered_model(model.name)
            except ResourceDoesNotExist:
                found = None
            if found is None:
                if self.dry_run:
                    self.result.add("registered models", "created")
                    self.result.add("model versions", "created", len(model.versions))
                    return
                with recorded_at(model.creation_time):
                    client.create_registered_model(model.name)
                with recorded_at(model.last_updated_time):  # the model's last update: its tags, description
                    for k, v in model.tags.items():
                        client.set_registered_model_tag(model.name, k, v)
                    if model.description:
                        client.update_registered_model(model.name, model.description)
                outcome = "created"
                have: dict[int, Any] = {}
            else:
                changed = {k: v for k, v in model.tags.items() if found.tags.get(k) != v}
                outcome = "updated" if changed or (model.description or "") != (found.description or "") \
                    else "unchanged"
                if not self.dry_run:
                    with recorded_at(model.last_updated_time):
                        for k, v in changed.items():
                            client.set_registered_model_tag(model.name, k, v)
                        if (model.description or "") != (found.description or ""):
                            client.update_registered_model(model.name, model.description or "")
                escaped = model.name.replace("'", "\\'")
                have = {int(v.version): v for v in client.search_model_versions(f"name='{escaped}'")}
        except Exception as exc:
            self.result.fail("registered models", model.name, exc)
            return
        for version in model.versions:
            try:
                self._version(model.name, version, have.get(version.version), model_sources)
            except Exception as exc:
                self.result.fail("model versions", f"{model.name} version {version.version}", exc)
        if not self.dry_run:
            try:
                current = client.get_registered_model(model.name).aliases or {}
                latest = _latest(model.last_updated_time, *[v.last_updated_time for v in model.versions],
                                 *[v.creation_time for v in model.versions])
                with recorded_at(latest):  # after every version it names
                    for alias, number in model.aliases.items():
                        if str(current.get(alias)) != str(number):
                            client.set_registered_model_alias(model.name, alias, number)
                            outcome = "updated" if outcome == "unchanged" else outcome
            except Exception as exc:
                self.result.fail("registered models", f"{model.name} (aliases)", exc)
                return
        self.result.add("registered models", outcome)

    def _version(self, name: str, version: VersionRecord, found: Any, model_sources: dict[str, str | None]) -> None:
        client = self.client
        if found is None:
            if self.dry_run:
                self.result.add("model versions", "created")
                return
            source = self._source(version, model_sources)
            run_id = version.run_id if version.run_id in self.run_ids or self._has_run(version.run_id) else None
            model_id = version.source[len("models:/"):].split("/")[0] if version.source.startswith("models:/m-") \
                and model_sources.get(version.source[len("models:/"):].split("/")[0]) else None
            with recorded_at(version.creation_time):
                while True:  # numbers are never reused: deleted source versions become deleted gitexp versions
                    created = client.create_model_version(name, source, run_id, version.tags or None,
                                                          description=version.description or None,
                                                          model_id=model_id)
                    if int(created.version) >= version.version:
                        break
                    client.delete_model_version(name, created.version)
            if int(created.version) != version.version:
                raise GitexpError(f"got version {created.version} for {name} version {version.version}: gitexp "
                                  "already has later versions of this model")
            if version.current_stage and version.current_stage != "None":
                with recorded_at(_latest(version.creation_time, version.last_updated_time)):
                    client.transition_model_version_stage(name, version.version, version.current_stage)
            self.result.add("model versions", "created")
            return
        with recorded_at(_latest(version.creation_time, version.last_updated_time)):
            self._update_version(name, version, found)

    def _update_version(self, name: str, version: VersionRecord, found: Any) -> None:
        client = self.client
        changed = False
        if (found.description or "") != (version.description or ""):
            changed = True
            if not self.dry_run:
                client.update_model_version(name, version.version, version.description or "")
        for k, v in version.tags.items():
            if found.tags.get(k) != v:
                changed = True
                if not self.dry_run:
                    client.set_model_version_tag(name, str(version.version), k, v)
        if (found.current_stage or "None") != (version.current_stage or "None"):
            changed = True
            if not self.dry_run:
                client.transition_model_version_stage(name, version.version, version.current_stage or "None")
        self.result.add("model versions", "updated" if changed else "unchanged")

    def _has_run(self, run_id: str | None) -> bool:
        if not run_id:
            return False
        try:
            self.client.get_run(run_id)
            return True
        except GitexpError:
            return False


def _latest(*times: int | None) -> int | None:
    known = [t for t in times if t is not None]
    return max(known) if known else None


def import_store(client: Client, source_uri: str, **options: Any) -> ImportResult:
    artifacts_root = options.pop("artifacts_root", None)
    source = open_source(source_uri, artifacts_root)
    try:
        return Importer(client, source, **options).run()
    finally:
        source.close()
