"""Reading an MLflow tracking server (http(s)://) through the real mlflow's MlflowClient, and
artifacts through the server's proxy (MLflow's artifact repositories), so any server MLflow
itself talks to works.  Needs `pip install gitexp[mlflow]`."""

from __future__ import annotations

import functools
import tempfile
from collections.abc import Iterator
from typing import Any

from ..exceptions import InvalidParameterValue
from ._records import (
    ArtifactFile,
    ExperimentRecord,
    LoggedModelRecord,
    ModelRecord,
    ReadError,
    RunRecord,
    VersionRecord,
    model_metric,
)


def _mlflow() -> Any:
    try:
        import mlflow
    except ImportError as exc:
        raise InvalidParameterValue("Importing from a tracking server needs mlflow: pip install 'gitexp[mlflow]'") \
            from exc
    return mlflow


def _read(repo: Any, path: str) -> bytes:
    with tempfile.TemporaryDirectory() as tmp:
        local = repo.download_artifacts(path, tmp)
        with open(local, "rb") as fh:
            return fh.read()


def remote_files(location: str, tracking_uri: str) -> dict[str, ArtifactFile]:
    """path -> file below an artifact location, through MLflow's artifact repository for it."""
    from mlflow.store.artifact.artifact_repository_registry import get_artifact_repository

    repo = get_artifact_repository(location, tracking_uri=tracking_uri)
    out: dict[str, ArtifactFile] = {}
    todo: list[str | None] = [None]
    while todo:
        for info in repo.list_artifacts(todo.pop()):
            if info.is_dir:
                todo.append(info.path)
            else:
                out[info.path] = ArtifactFile(functools.partial(_read, repo, info.path), str(info.file_size))
    return out


def _pages(call: Any, **kwargs: Any) -> Iterator[Any]:
    token = None
    while True:
        page = call(page_token=token, **kwargs)
        yield from page
        token = page.token
        if not token:
            return


class ServerSource:
    def __init__(self, uri: str) -> None:
        mlflow = _mlflow()
        self.uri = uri.rstrip("/")
        self.client = mlflow.MlflowClient(tracking_uri=self.uri, registry_uri=self.uri)
        self._runs: dict[str, Any] = {}
        # model id -> runs that took it as input / {run: step} of runs that output it, from the runs read
        self._inputs: dict[str, list[str]] = {}
        self._outputs: dict[str, dict[str, int]] = {}

    def close(self) -> None:
        pass

    def experiments(self) -> list[ExperimentRecord]:
        from mlflow.entities import ViewType

        return [ExperimentRecord(e.experiment_id, e.name, e.artifact_location or "", e.lifecycle_stage,
                                 dict(e.tags), e.creation_time, e.last_update_time)
                for e in _pages(self.client.search_experiments, view_type=ViewType.ALL, max_results=1000)]

    def run_ids(self, experiment_ids: list[str], since: int | None, until: int | None) -> list[str]:
        from mlflow.entities import ViewType

        clauses = []
        if since is not None:
            clauses.append(f"attributes.start_time >= {int(since)}")
        if until is not None:
            clauses.append(f"attributes.start_time < {int(until)}")
        out = []
        for i in range(0, len(experiment_ids), 100):
            for run in _pages(self.client.search_runs, experiment_ids=experiment_ids[i:i + 100],
                              filter_string=" and ".join(clauses), run_view_type=ViewType.ALL, max_results=1000,
                              order_by=["attributes.start_time ASC"]):
                self._runs[run.info.run_id] = run
                out.append(run.info.run_id)
        return out

    def runs(self, run_ids: list[str]) -> Iterator[RunRecord | ReadError]:
        for rid in run_ids:
            try:
                yield self._run(rid)
            except Exception as exc:  # one run the server cannot give: named, the others go on
                yield ReadError(rid, rid, exc)

    def _run(self, rid: str) -> RunRecord:
        run = self._runs.get(rid) or self.client.get_run(rid)
        info = run.info
        record = RunRecord(run_id=rid, experiment_id=info.experiment_id, user_id=info.user_id or "",
                           run_name=info.run_name or None, status=info.status, start_time=info.start_time or 0,
                           end_time=info.end_time, lifecycle_stage=info.lifecycle_stage,
                           params=dict(run.data.params), tags=dict(run.data.tags))
        for key in run.data.metrics:
            record.metrics[key] = sorted((m.step, m.timestamp, m.value)
                                         for m in self.client.get_metric_history(rid, key))
        for inp in run.inputs.dataset_inputs if run.inputs else []:
            d = inp.dataset
            dataset = {"name": d.name, "digest": d.digest, "source_type": d.source_type, "source": d.source}
            if d.schema is not None:
                dataset["schema"] = d.schema
            if d.profile is not None:
                dataset["profile"] = d.profile
            record.inputs.append((dataset, {t.key: t.value for t in inp.tags}))
        # model inputs are only in get_run (search_runs leaves them out); outputs are in both
        full = self.client.get_run(rid)
        for model_input in getattr(full.inputs, "model_inputs", None) or []:
            self._inputs.setdefault(model_input.model_id, []).append(rid)
        for output in getattr(full.outputs, "model_outputs", None) or []:
            self._outputs.setdefault(output.model_id, {})[rid] = int(output.step or 0)
        record.artifacts.update(remote_files(info.artifact_uri, self.uri))
        return record

    def registered_models(self) -> list[ModelRecord]:
        out = []
        for m in _pages(self.client.search_registered_models, max_results=1000):
            model = ModelRecord(m.name, m.description, dict(m.tags), {k: int(v) for k, v in (m.aliases or {}).items()},
                                [], m.creation_timestamp, m.last_updated_timestamp)
            escaped = m.name.replace("'", "\\'")
            for v in _pages(self.client.search_model_versions, filter_string=f"name='{escaped}'", max_results=1000):
                model.versions.append(VersionRecord(
                    int(v.version), v.source or "", v.run_id or None, v.description, v.user_id,
                    v.current_stage or "None", v.status or "READY", dict(v.tags), v.creation_timestamp,
                    v.last_updated_timestamp, getattr(v, "model_id", None)))
            model.versions.sort(key=lambda x: x.version)
            out.append(model)
        return out

    def logged_models(self, experiment_ids: list[str]) -> list[LoggedModelRecord]:
        if not experiment_ids:
            return []
        out = []
        for m in _pages(self.client.search_logged_models, experiment_ids=experiment_ids, max_results=100):
            record = LoggedModelRecord(m.model_id, m.experiment_id, m.name, m.source_run_id or None,
                                       str(m.status.name if hasattr(m.status, "name") else m.status).replace(
                                           "UPLOAD_", ""),
                                       m.model_type or None, dict(m.tags), dict(m.params),
                                       "active", m.creation_timestamp)
            record.files.update(remote_files(m.artifact_location, self.uri))
            record.metrics = [model_metric(p.key, p.value, p.timestamp, p.step, p.run_id, p.dataset_name,
                                           p.dataset_digest) for p in m.metrics or []]
            record.inputs = list(self._inputs.get(m.model_id, []))
            record.outputs = dict(self._outputs.get(m.model_id, {}))
            out.append(record)
        return out

