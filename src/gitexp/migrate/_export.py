"""`gitexp export`: the tracking branch into an MLflow database, through MLflow's own store classes.

Runs and logged models are inserted as rows of MLflow's schema with their ids (MLflow's
stores make new ids, and an export must keep them); everything else -- params, tags, metric
histories and latest metrics, datasets, experiments, the registry -- goes through the store
methods MLflow's server itself calls (`SqlAlchemyStore.log_batch`, `log_inputs`,
`create_model_version`...; a logged model's metrics through `log_batch` with
`Metric(model_id=...)`, runs' model inputs and outputs through `log_inputs(models=)` and
`log_outputs`), and artifacts through MLflow's artifact repositories.  Exporting
again adds what is new (new runs, models, versions; new params, tags, points, status of runs
already there).
"""

from __future__ import annotations

import contextlib
import math
import os
import tempfile
import urllib.parse
from collections.abc import Callable, Iterator
from typing import Any

from ..client import Client
from ..exceptions import InvalidParameterValue
from ._importer import ImportResult

_LOGGED_MODEL_STATUS = {"UNSPECIFIED": 0, "PENDING": 1, "READY": 2, "FAILED": 3}


def _stored(value: float) -> float:
    """A value as MLflow's SQL store keeps it (inf as the largest float)."""
    if math.isinf(value):
        return math.copysign(1.7976931348623157e308, value)
    return value


def _pages(call: Callable[..., Any], **kwargs: Any) -> list[Any]:
    out: list[Any] = []
    token = None
    while True:
        page = call(page_token=token, **kwargs)
        out += list(page)
        token = page.token
        if not token:
            return out


def _default_artifact_root(dest: str) -> str:
    if dest.startswith("sqlite:///"):
        path = urllib.parse.unquote(dest[len("sqlite:///"):]).split("?", 1)[0]
        return os.path.join(os.path.dirname(os.path.abspath(path)), "mlartifacts")
    raise InvalidParameterValue(f"Exporting to {dest}: pass --artifact-root (where new experiments keep artifacts)")


class Exporter:
    def __init__(self, client: Client, dest: str, experiments: list[str] | None = None, since: int | None = None,
                 until: int | None = None, registry: bool = True, artifact_root: str | None = None,
                 progress: Callable[[str, int, int], None] | None = None) -> None:
        if dest.startswith(("http://", "https://")):
            raise InvalidParameterValue(
                "gitexp export writes a database (MLflow's REST API cannot keep run ids); export to the "
                "database your tracking server uses (its --backend-store-uri)")
        try:
            from mlflow.store.model_registry.sqlalchemy_store import SqlAlchemyStore as RegistryStore
            from mlflow.store.tracking.sqlalchemy_store import SqlAlchemyStore
        except ImportError as exc:
            raise InvalidParameterValue("gitexp export needs mlflow: pip install 'gitexp[mlflow]'") from exc
        self.client = client
        self.dest = dest
        self.wanted = experiments
        self.since, self.until = since, until
        self.with_registry = registry
        self.store: Any = SqlAlchemyStore(dest, artifact_root or _default_artifact_root(dest))
        self.registry: Any = RegistryStore(dest) if registry else None
        self.progress = progress or (lambda what, done, total: None)
        self.result = ImportResult()
        self.experiment_ids: dict[str, str] = {}   # gitexp id -> MLflow id
        self.locations: dict[str, str] = {}        # MLflow experiment id -> artifact location
        self.model_dirs: dict[str, set[str]] = {}  # run id -> artifact dirs holding logged models
        self.exported_models: set[str] = set()
        self.exported_runs: list[str] = []         # runs the database has after this export

    def run(self) -> ImportResult:
        experiments = [e for e in self.client.search_experiments(view_type=3)
                       if not self.wanted or e.name in self.wanted or e.experiment_id in self.wanted]
        deleted = []
        for exp in experiments:
            try:
                self._experiment(exp)
                if exp.lifecycle_stage == "deleted":
                    deleted.append(exp)
            except Exception as exc:
                self.result.fail("experiments", exp.name, exc)
        models = [m for e in self.experiment_ids for m in self.client.search_logged_models([e])]
        for m in models:
            run_id, _, path = str(m.artifact_location)[len("runs:/"):].partition("/")
            self.model_dirs.setdefault(run_id, set()).add(path)
        self._runs()
        for m in models:
            try:
                self._logged_model(m)
            except Exception as exc:
                self.result.fail("logged models", f"{m.name} ({m.model_id})", exc)
        for m in models:
            if m.model_id in self.exported_models:
                try:
                    self._model_metrics(m)
                except Exception as exc:
                    self.result.fail("logged models", f"{m.name} ({m.model_id}) metrics", exc)
        for run_id in self.exported_runs:
            try:
                self._run_links(run_id)
            except Exception as exc:
                self.result.fail("runs", f"{run_id} (model inputs and outputs)", exc)
        if self.registry is not None:
            # MLflow's registry store looks a models:/m-<id> source up through the global tracking
            # URI (its own TODO in create_model_version): point it at the destination meanwhile.
            from mlflow.tracking._tracking_service.utils import _use_tracking_uri

            with _use_tracking_uri(self.dest):
                for model in _pages(self.client.search_registered_models, max_results=1000):
                    try:
                        self._registered_model(model)
                    except Exception as exc:
                        self.result.fail("registered models", model.name, exc)
        for exp in deleted:
            mid = self.experiment_ids[exp.experiment_id]
            if self.store.get_experiment(mid).lifecycle_stage != "deleted":
                self.store.delete_experiment(mid)
        return self.result

    # -- experiments and runs -------------------------------------------------------------------------
    def _experiment(self, exp: Any) -> None:
        from mlflow.entities import ExperimentTag

        found = self.store.get_experiment("0") if exp.experiment_id == "0" else \
            self.store.get_experiment_by_name(exp.name)
        if found is None:
            mid = self.store.create_experiment(exp.name, tags=[ExperimentTag(k, v) for k, v in exp.tags.items()])
            from mlflow.store.tracking.dbmodels.models import SqlExperiment

            with self.store.ManagedSessionMaker(read_only=False) as session:  # its times, as in gitexp
                row = session.query(SqlExperiment).filter(SqlExperiment.experiment_id == int(mid)).one()
                row.creation_time = exp.creation_time or row.creation_time
                row.last_update_time = exp.last_update_time or row.last_update_time
            self.result.add("experiments", "created")
        else:
            mid = found.experiment_id
            for k, v in exp.tags.items():
                if found.tags.get(k) != v:
                    self.store.set_experiment_tag(mid, ExperimentTag(k, v))
            self.result.add("experiments", "unchanged")
        self.experiment_ids[exp.experiment_id] = mid
        self.locations[mid] = self.store.get_experiment(mid).artifact_location

    def _runs(self) -> None:
        from mlflow.store.tracking.dbmodels.models import SqlRun

        with self.store.ManagedSessionMaker() as session:
            have = {r[0] for r in session.query(SqlRun.run_uuid)}
        runs = [r for r in _pages(self.client.search_runs, experiment_ids=list(self.experiment_ids),
                                  run_view_type=3, max_results=10_000)
                if (self.since is None or r.info.start_time >= self.since)
                and (self.until is None or r.info.start_time < self.until)]
        self.progress("runs", 0, len(runs))
        for done, run in enumerate(runs, 1):
            self.exported_runs.append(run.info.run_id)
            if run.info.run_id in have:
                try:
                    self.result.add("runs", "updated" if self._update_run(run) else "unchanged")
                except Exception as exc:
                    self.result.fail("runs", f"{run.info.run_id} ({run.info.run_name})", exc)
            else:
                try:
                    self._run(run)
                    self.result.add("runs", "created")
                except Exception as exc:
                    self.result.fail("runs", f"{run.info.run_id} ({run.info.run_name})", exc)
            self.progress("runs", done, len(runs))

    def _run(self, run: Any) -> None:
        from mlflow.entities import Dataset, DatasetInput, InputTag, Metric, Param, RunTag
        from mlflow.store.tracking.dbmodels.models import SqlRun

        info = run.info
        mid = self.experiment_ids[info.experiment_id]
        artifact_uri = f"{self.locations[mid].rstrip('/')}/{info.run_id}/artifacts"
        with self.store.ManagedSessionMaker(read_only=False) as session:
            session.add(SqlRun(run_uuid=info.run_id, name=info.run_name, source_type="UNKNOWN", source_name="",
                               entry_point_name="", user_id=info.user_id, status="RUNNING",
                               start_time=info.start_time, end_time=None, source_version="",
                               lifecycle_stage="active", artifact_uri=artifact_uri, experiment_id=int(mid)))
        metrics = [Metric(key, m.value, m.timestamp, m.step)
                   for key in run.data.metrics for m in self.client.get_metric_history(info.run_id, key)]
        params = [Param(k, v) for k, v in run.data.params.items()]
        tags = [RunTag(k, v) for k, v in run.data.tags.items()]
        for i in range(0, max(len(params), len(tags)), 100):  # MLflow's batch limits
            self.store.log_batch(info.run_id, [], params[i:i + 100], tags[i:i + 100])
        for i in range(0, len(metrics), 1000):
            self.store.log_batch(info.run_id, metrics[i:i + 1000], [], [])
        datasets = [DatasetInput(Dataset(d.dataset.name, d.dataset.digest, d.dataset.source_type, d.dataset.source,
                                         d.dataset.schema, d.dataset.profile),
                                 [InputTag(t.key, t.value) for t in d.tags])
                    for d in run.inputs.dataset_inputs]
        if datasets:
            self.store.log_inputs(info.run_id, datasets=datasets)
        self._copy_run_artifacts(info.run_id, artifact_uri)
        with self.store.ManagedSessionMaker(read_only=False) as session:
            row = session.query(SqlRun).filter(SqlRun.run_uuid == info.run_id).one()
            row.status = info.status
            row.end_time = info.end_time
            if info.lifecycle_stage == "deleted":
                row.lifecycle_stage = "deleted"
                row.deleted_time = info.end_time or info.start_time

    def _update_run(self, run: Any) -> bool:
        """Bring a run the database already has up to gitexp's: new params, changed tags, new
        metric points, status, end and deletion (nothing is deleted; artifacts are not compared)."""
        from mlflow.entities import Metric, Param, RunTag
        from mlflow.store.tracking.dbmodels.models import SqlRun

        info = run.info
        theirs = self.store.get_run(info.run_id)
        params = [Param(k, v) for k, v in run.data.params.items() if k not in theirs.data.params]
        tags = [RunTag(k, v) for k, v in run.data.tags.items() if theirs.data.tags.get(k) != v]
        metrics = []
        for key in run.data.metrics:
            have = {(m.step, m.timestamp, repr(m.value)) for m in self.store.get_metric_history(info.run_id, key)}
            metrics += [Metric(key, m.value, m.timestamp, m.step)
                        for m in self.client.get_metric_history(info.run_id, key)
                        if (m.step, m.timestamp, repr(_stored(m.value))) not in have]
        changed = bool(params or tags or metrics)
        if changed and theirs.info.lifecycle_stage != "active":
            with self.store.ManagedSessionMaker(read_only=False) as session:  # MLflow logs to active runs only
                session.query(SqlRun).filter(SqlRun.run_uuid == info.run_id).one().lifecycle_stage = "active"
        for i in range(0, max(len(params), len(tags)), 100):
            self.store.log_batch(info.run_id, [], params[i:i + 100], tags[i:i + 100])
        for i in range(0, len(metrics), 1000):
            self.store.log_batch(info.run_id, metrics[i:i + 1000], [], [])
        with self.store.ManagedSessionMaker(read_only=False) as session:
            row = session.query(SqlRun).filter(SqlRun.run_uuid == info.run_id).one()
            for field, value in (("status", info.status), ("end_time", info.end_time),
                                 ("lifecycle_stage", info.lifecycle_stage)):
                if getattr(row, field) != value:
                    setattr(row, field, value)
                    changed = True
            if row.lifecycle_stage == "deleted" and row.deleted_time is None:
                row.deleted_time = info.end_time or info.start_time
        return changed

    @contextlib.contextmanager
    def _active(self, run_id: str) -> Iterator[None]:
        """The run active meanwhile (MLflow's store logs to active runs only), as it was after."""
        from mlflow.store.tracking.dbmodels.models import SqlRun

        with self.store.ManagedSessionMaker(read_only=False) as session:
            row = session.query(SqlRun).filter(SqlRun.run_uuid == run_id).one()
            stage = row.lifecycle_stage
            row.lifecycle_stage = "active"
        try:
            yield
        finally:
            if stage != "active":
                with self.store.ManagedSessionMaker(read_only=False) as session:
                    session.query(SqlRun).filter(SqlRun.run_uuid == run_id).one().lifecycle_stage = stage

    def _model_metrics(self, model: Any) -> None:
        """The model's metric points the database lacks, through log_batch with Metric(model_id=...)
        (which also keeps them in the run's history, where they already are)."""
        from mlflow.entities import Metric
        from mlflow.store.tracking.dbmodels.models import SqlLoggedModelMetric

        if not model.metrics:
            return
        with self.store.ManagedSessionMaker() as session:
            have = {(r.metric_name, r.metric_timestamp_ms, r.metric_step, r.run_id) for r in session.query(
                SqlLoggedModelMetric).filter(SqlLoggedModelMetric.model_id == model.model_id)}
        runs = set(self.exported_runs)
        by_run: dict[str, list[Any]] = {}
        for m in model.metrics:
            key = (m.key, m.timestamp, m.step, m.run_id)
            if key in have or m.run_id not in runs:  # a point of a run not exported waits for it
                continue
            have.add(key)
            by_run.setdefault(m.run_id, []).append(Metric(m.key, _stored(m.value), m.timestamp, m.step,
                                                          model_id=model.model_id, dataset_name=m.dataset_name,
                                                          dataset_digest=m.dataset_digest))
        for run_id, metrics in by_run.items():
            with self._active(run_id):
                for i in range(0, len(metrics), 1000):
                    self.store.log_batch(run_id, metrics[i:i + 1000], [], [])

    def _run_links(self, run_id: str) -> None:
        """The run's model inputs and outputs the database lacks (log_inputs(models=), log_outputs)."""
        from mlflow.entities import LoggedModelInput, LoggedModelOutput
        from mlflow.store.tracking.dbmodels.models import SqlInput

        run = self.client.get_run(run_id)
        inputs = [m.model_id for m in getattr(run.inputs, "model_inputs", None) or []
                  if m.model_id in self.exported_models]
        outputs = [(m.model_id, int(m.step or 0)) for m in getattr(run.outputs, "model_outputs", None) or []
                   if m.model_id in self.exported_models] if run.outputs else []
        if not inputs and not outputs:
            return
        with self.store.ManagedSessionMaker() as session:
            rows = session.query(SqlInput).filter(SqlInput.source_id == run_id,
                                                  SqlInput.source_type.in_(["RUN_INPUT", "RUN_OUTPUT"])).all()
            have_in = {r.destination_id for r in rows if r.source_type == "RUN_INPUT"}
            have_out = {(r.destination_id, int(r.step or 0)) for r in rows if r.source_type == "RUN_OUTPUT"}
        inputs = [m for m in dict.fromkeys(inputs) if m not in have_in]
        outputs = [o for o in outputs if o not in have_out]
        if not inputs and not outputs:
            return
        with self._active(run_id):
            if inputs:
                self.store.log_inputs(run_id, datasets=None, models=[LoggedModelInput(m) for m in inputs])
            if outputs:
                self.store.log_outputs(run_id, [LoggedModelOutput(m, step) for m, step in outputs])

    def _copy_run_artifacts(self, run_id: str, artifact_uri: str) -> None:
        skip = self.model_dirs.get(run_id, set())
        top = [f for f in self.client.list_artifacts(run_id) if f.path.split("/")[0] not in skip]
        if not top:
            return
        from mlflow.store.artifact.artifact_repository_registry import get_artifact_repository

        repo = get_artifact_repository(artifact_uri)
        with tempfile.TemporaryDirectory() as tmp:
            for f in top:
                self.client.download_artifacts(run_id, f.path, tmp)
            repo.log_artifacts(tmp)

    # -- logged models and the registry ----------------------------------------------------------------
    def _logged_model(self, model: Any) -> None:
        from mlflow.entities import LoggedModelParameter, LoggedModelTag
        from mlflow.store.tracking.dbmodels.models import SqlLoggedModel

        with self.store.ManagedSessionMaker() as session:
            exists = session.query(SqlLoggedModel).filter(SqlLoggedModel.model_id == model.model_id).count()
        if exists:
            self.exported_models.add(model.model_id)
            self.result.add("logged models", "unchanged")
            return
        mid = self.experiment_ids[model.experiment_id]
        location = f"{self.locations[mid].rstrip('/')}/models/{model.model_id}/artifacts"
        status = getattr(model.status, "name", str(model.status)).replace("UPLOAD_", "")
        with self.store.ManagedSessionMaker(read_only=False) as session:
            session.add(SqlLoggedModel(model_id=model.model_id, experiment_id=int(mid), name=model.name,
                                       artifact_location=location, creation_timestamp_ms=model.creation_timestamp,
                                       last_updated_timestamp_ms=model.last_updated_timestamp or
                                       model.creation_timestamp,
                                       status=_LOGGED_MODEL_STATUS.get(status, 1), lifecycle_stage="active",
                                       model_type=model.model_type, source_run_id=model.source_run_id))
        if model.tags:
            self.store.set_logged_model_tags(model.model_id, [LoggedModelTag(k, v) for k, v in model.tags.items()])
        if model.params:
            self.store.log_logged_model_params(model.model_id,
                                               [LoggedModelParameter(k, v) for k, v in model.params.items()])
        run_id, _, path = str(model.artifact_location)[len("runs:/"):].partition("/")
        from mlflow.store.artifact.artifact_repository_registry import get_artifact_repository

        with tempfile.TemporaryDirectory() as tmp:
            local = self.client.download_artifacts(run_id, path, tmp)
            get_artifact_repository(location).log_artifacts(local)
        self.exported_models.add(model.model_id)
        self.result.add("logged models", "created")

    def _registered_model(self, model: Any) -> None:
        from mlflow.entities.model_registry import ModelVersionTag, RegisteredModelTag
        from mlflow.exceptions import MlflowException

        reg = self.registry
        escaped = model.name.replace("'", "\\'")
        try:
            found = reg.get_registered_model(model.name)
        except MlflowException:
            found = None
        if found is None:
            reg.create_registered_model(model.name, [RegisteredModelTag(k, v) for k, v in model.tags.items()],
                                        model.description or None)
            self.result.add("registered models", "created")
            have: set[int] = set()
        else:
            self.result.add("registered models", "unchanged")
            have = {int(v.version) for v in reg.search_model_versions(f"name='{escaped}'", max_results=10_000)}
        versions = sorted(self.client.search_model_versions(f"name='{escaped}'"), key=lambda v: int(v.version))
        created_numbers: set[int] = set()
        for v in versions:
            number = int(v.version)
            if number in have:
                self.result.add("model versions", "unchanged")
                continue
            model_id = getattr(v, "model_id", None)
            source = f"models:/{model_id}" if model_id in self.exported_models else v.source
            while True:  # numbers as in gitexp: deleted numbers are made and deleted again
                created = reg.create_model_version(model.name, source, v.run_id,
                                                   [ModelVersionTag(k, val) for k, val in v.tags.items()],
                                                   None, v.description or None,
                                                   model_id=model_id if model_id in self.exported_models else None)
                if int(created.version) >= number:
                    break
                reg.delete_model_version(model.name, created.version)
            if v.current_stage and v.current_stage != "None":
                reg.transition_model_version_stage(model.name, created.version, v.current_stage, False)
            created_numbers.add(number)
            self.result.add("model versions", "created")
        current = reg.get_registered_model(model.name).aliases or {}
        for alias, number in (model.aliases or {}).items():
            if str(current.get(alias)) != str(number):
                reg.set_registered_model_alias(model.name, alias, str(number))
        self._registry_times(model, versions, created_numbers)

    def _registry_times(self, model: Any, versions: list[Any], created: set[int]) -> None:
        """Creation and update times as gitexp has them (MLflow's store stamps now)."""
        from mlflow.store.model_registry.dbmodels.models import SqlModelVersion, SqlRegisteredModel

        with self.registry.ManagedSessionMaker(read_only=False) as session:
            row = session.query(SqlRegisteredModel).filter(SqlRegisteredModel.name == model.name).one()
            row.creation_time = model.creation_timestamp or row.creation_time
            row.last_updated_time = model.last_updated_timestamp or row.last_updated_time
            for v in versions:
                if int(v.version) not in created:
                    continue
                vrow = session.query(SqlModelVersion).filter(SqlModelVersion.name == model.name,
                                                             SqlModelVersion.version == int(v.version)).one()
                vrow.creation_time = v.creation_timestamp or vrow.creation_time
                vrow.last_updated_time = v.last_updated_timestamp or vrow.last_updated_time


def export_store(client: Client, dest: str, **options: Any) -> ImportResult:
    return Exporter(client, dest, **options).run()

