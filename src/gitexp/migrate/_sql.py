"""Reading an MLflow database directly with SQL over MLflow's schema (its alembic migrations
define it; the tables read here have been stable since MLflow 2.x: experiments,
experiment_tags, runs, params, tags, metrics, datasets, inputs, input_tags,
registered_models, registered_model_tags, registered_model_aliases, model_versions,
model_version_tags, logged_models, logged_model_tags, logged_model_params, logged_model_metrics;
runs' model inputs and outputs are rows of `inputs` with source type RUN_INPUT/RUN_OUTPUT).

sqlite:/// URIs are read with the standard library's sqlite3 (no dependency); any other
SQLAlchemy URL MLflow accepts (postgresql://, mysql://, mssql://) through SQLAlchemy.
"""

from __future__ import annotations

import json
import urllib.parse
from collections.abc import Iterator
from typing import Any

from ..exceptions import InvalidParameterValue
from ._artifacts import list_files
from ._records import (
    ExperimentRecord,
    LoggedModelRecord,
    ModelRecord,
    ReadError,
    RunRecord,
    VersionRecord,
    model_metric,
)

BATCH = 500


class _Db:
    def __init__(self, uri: str) -> None:
        self.uri = uri
        self.conn: Any
        if uri.startswith("sqlite:"):
            import os
            import sqlite3

            # sqlite:///relative.db, sqlite:////absolute.db (SQLAlchemy's forms)
            path = urllib.parse.unquote(uri.split(":", 1)[1]).split("?", 1)[0]
            path = path[3:] if path.startswith("///") else path
            if path in ("", ":memory:"):
                raise InvalidParameterValue(f"{uri}: an in-memory database has nothing to import")
            if not os.path.exists(path):
                raise InvalidParameterValue(f"No MLflow database at {path} (from {uri})")
            self.conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
            self.kind = "sqlite"
            self.tables = {r[0] for r in self.conn.execute("select name from sqlite_master where type='table'")}
        else:
            import sqlalchemy

            self.engine = sqlalchemy.create_engine(uri)
            self.conn = self.engine.connect()
            self.kind = "sqlalchemy"
            self.tables = set(sqlalchemy.inspect(self.engine).get_table_names())
        if "runs" not in self.tables or "experiments" not in self.tables:
            raise InvalidParameterValue(f"{uri} is not an MLflow tracking database (no runs/experiments tables)")

    def rows(self, sql: str, args: list[Any] | tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
        """`sql` with `?` placeholders; `{ids}` expands to one placeholder per remaining arg."""
        if "{ids}" in sql:
            sql = sql.replace("{ids}", ", ".join("?" for _ in args[sql.count("?"):]))
        if self.kind == "sqlite":
            return list(self.conn.execute(sql, list(args)))
        import sqlalchemy

        parts = sql.split("?")
        named = "".join(p + (f":p{i}" if i < len(parts) - 1 else "") for i, p in enumerate(parts))
        result = self.conn.execute(sqlalchemy.text(named), {f"p{i}": a for i, a in enumerate(args)})
        return [tuple(r) for r in result]

    def close(self) -> None:
        self.conn.close()


def _value(value: float, is_nan: Any) -> float:
    return float("nan") if is_nan else float(value)


class SqlSource:
    def __init__(self, uri: str, artifacts_root: str | None = None) -> None:
        self.uri = uri
        self.db = _Db(uri)
        self.artifacts_root = artifacts_root

    def close(self) -> None:
        self.db.close()

    def experiments(self) -> list[ExperimentRecord]:
        out = {}
        for eid, name, location, stage, created, updated in self.db.rows(
                "select experiment_id, name, artifact_location, lifecycle_stage, creation_time, last_update_time "
                "from experiments order by experiment_id"):
            out[str(eid)] = ExperimentRecord(str(eid), name, location or "", stage or "active", {}, created, updated)
        for key, value, eid in self.db.rows("select key, value, experiment_id from experiment_tags"):
            if str(eid) in out:
                out[str(eid)].tags[key] = value
        return list(out.values())

    def run_ids(self, experiment_ids: list[str], since: int | None, until: int | None) -> list[str]:
        sql = "select run_uuid from runs where 1=1"
        args: list[Any] = []
        if since is not None:
            sql += " and start_time >= ?"
            args.append(since)
        if until is not None:
            sql += " and start_time < ?"
            args.append(until)
        sql += " and experiment_id in ({ids}) order by start_time, run_uuid"
        return [r[0] for r in self.db.rows(sql, args + [int(e) for e in experiment_ids])] if experiment_ids else []

    def runs(self, run_ids: list[str]) -> Iterator[RunRecord | ReadError]:
        for i in range(0, len(run_ids), BATCH):
            yield from self._runs(run_ids[i:i + BATCH])

    def _runs(self, ids: list[str]) -> list[RunRecord | ReadError]:
        db = self.db
        records: dict[str, RunRecord] = {}
        locations: dict[str, str] = {}
        for (rid, name, user, status, start, end, stage, uri, eid) in db.rows(
                "select run_uuid, name, user_id, status, start_time, end_time, lifecycle_stage, artifact_uri, "
                "experiment_id from runs where run_uuid in ({ids})", ids):
            records[rid] = RunRecord(run_id=rid, experiment_id=str(eid), user_id=user or "", run_name=name or None,
                                     status=status or "FINISHED", start_time=start or 0, end_time=end,
                                     lifecycle_stage=stage or "active")
            locations[rid] = uri or ""
        for key, value, rid in db.rows("select key, value, run_uuid from params where run_uuid in ({ids})", ids):
            records[rid].params[key] = value
        for key, value, rid in db.rows("select key, value, run_uuid from tags where run_uuid in ({ids})", ids):
            records[rid].tags[key] = value
        for key, value, ts, step, is_nan, rid in db.rows(
                "select key, value, timestamp, step, is_nan, run_uuid from metrics where run_uuid in ({ids}) "
                "order by run_uuid, key, step, timestamp", ids):
            records[rid].metrics.setdefault(key, []).append((int(step), int(ts), _value(value, is_nan)))
        if {"inputs", "datasets"} <= db.tables:
            inputs: dict[str, tuple[str, dict[str, Any], dict[str, str]]] = {}
            for (uuid, rid, name, digest, stype, source, schema, profile) in db.rows(
                    "select i.input_uuid, i.destination_id, d.name, d.digest, d.dataset_source_type, "
                    "d.dataset_source, d.dataset_schema, d.dataset_profile from inputs i join datasets d "
                    "on i.source_id = d.dataset_uuid where i.source_type = 'DATASET' and "
                    "i.destination_type = 'RUN' and i.destination_id in ({ids})", ids):
                dataset = {"name": name, "digest": digest, "source_type": stype, "source": source}
                if schema is not None:
                    dataset["schema"] = schema
                if profile is not None:
                    dataset["profile"] = profile
                inputs[uuid] = (rid, dataset, {})
            if inputs and "input_tags" in db.tables:
                uuids = list(inputs)
                for j in range(0, len(uuids), BATCH):
                    for uuid, key, value in db.rows("select input_uuid, name, value from input_tags "
                                                    "where input_uuid in ({ids})", uuids[j:j + BATCH]):
                        inputs[uuid][2][key] = value
            for rid, dataset, tags in sorted(inputs.values(), key=lambda x: json.dumps(x[1], sort_keys=True)):
                records[rid].inputs.append((dataset, tags))
        out: list[RunRecord | ReadError] = []
        for rid in ids:
            if rid not in records:
                continue
            try:
                records[rid].artifacts.update(list_files(locations[rid], self.artifacts_root))
                out.append(records[rid])
            except Exception as exc:  # this run's artifacts cannot be read: named, the others go on
                out.append(ReadError(rid, records[rid].run_name or rid, exc))
        return out

    def registered_models(self) -> list[ModelRecord]:
        if "registered_models" not in self.db.tables:
            return []
        models: dict[str, ModelRecord] = {}
        for name, created, updated, description in self.db.rows(
                "select name, creation_time, last_updated_time, description from registered_models order by name"):
            models[name] = ModelRecord(name, description, {}, {}, [], created, updated)
        for key, value, name in self.db.rows("select key, value, name from registered_model_tags"):
            if name in models:
                models[name].tags[key] = value
        if "registered_model_aliases" in self.db.tables:
            for alias, version, name in self.db.rows("select alias, version, name from registered_model_aliases"):
                if name in models:
                    models[name].aliases[alias] = int(version)
        versions: dict[tuple[str, int], VersionRecord] = {}
        for (name, version, created, updated, description, user, stage, source, run_id, status) in self.db.rows(
                "select name, version, creation_time, last_updated_time, description, user_id, current_stage, "
                "source, run_id, status from model_versions where current_stage != 'Deleted_Internal' "
                "order by name, version"):  # MLflow soft-deletes a version with that stage
            if name in models:
                v = VersionRecord(int(version), source or "", run_id or None, description, user, stage or "None",
                                  status or "READY", {}, created, updated)
                models[name].versions.append(v)
                versions[(name, int(version))] = v
        for key, value, name, version in self.db.rows("select key, value, name, version from model_version_tags"):
            if (name, int(version)) in versions:
                versions[(name, int(version))].tags[key] = value
        return list(models.values())

    def logged_models(self, experiment_ids: list[str]) -> list[LoggedModelRecord]:
        if "logged_models" not in self.db.tables or not experiment_ids:
            return []
        models: dict[str, LoggedModelRecord] = {}
        locations: dict[str, str] = {}
        for (mid, eid, name, location, created, status, stage, mtype, run_id) in self.db.rows(
                "select model_id, experiment_id, name, artifact_location, creation_timestamp_ms, status, "
                "lifecycle_stage, model_type, source_run_id from logged_models where experiment_id in ({ids}) "
                "order by creation_timestamp_ms", [int(e) for e in experiment_ids]):
            models[mid] = LoggedModelRecord(mid, str(eid), name, run_id or None, _STATUS.get(status, "PENDING"),
                                            mtype or None, {}, {}, stage or "active", created)
            locations[mid] = location or ""
        for mid, key, value in self.db.rows("select model_id, tag_key, tag_value from logged_model_tags"):
            if mid in models:
                models[mid].tags[key] = value
        for mid, key, value in self.db.rows("select model_id, param_key, param_value from logged_model_params"):
            if mid in models:
                models[mid].params[key] = value
        if "logged_model_metrics" in self.db.tables:
            for (mid, key, ts, step, value, run_id, ds_name, ds_digest) in self.db.rows(
                    "select model_id, metric_name, metric_timestamp_ms, metric_step, metric_value, run_id, "
                    "dataset_name, dataset_digest from logged_model_metrics "
                    "order by model_id, metric_name, metric_step, metric_timestamp_ms, run_id"):
                if mid in models:
                    models[mid].metrics.append(model_metric(key, float("nan") if value is None else value, ts, step,
                                                            run_id, ds_name, ds_digest))
        if "inputs" in self.db.tables:  # MLflow's log_inputs(models=) and log_outputs rows
            for run_id, mid in self.db.rows(
                    "select source_id, destination_id from inputs where source_type = 'RUN_INPUT' and "
                    "destination_type = 'MODEL_INPUT' order by source_id"):
                if mid in models and run_id not in models[mid].inputs:
                    models[mid].inputs.append(run_id)
            for run_id, mid, step in self.db.rows(
                    "select source_id, destination_id, step from inputs where source_type = 'RUN_OUTPUT' and "
                    "destination_type = 'MODEL_OUTPUT' order by source_id"):
                if mid in models:
                    models[mid].outputs[run_id] = int(step or 0)
        for mid, model in models.items():
            model.files.update(list_files(locations[mid], self.artifacts_root))
        return list(models.values())


# logged_models.status holds MLflow's LoggedModelStatus proto numbers.
_STATUS = {0: "UNSPECIFIED", 1: "PENDING", 2: "READY", 3: "FAILED", "READY": "READY", "PENDING": "PENDING",
           "FAILED": "FAILED"}
