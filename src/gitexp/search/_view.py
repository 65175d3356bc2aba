"""The query side of the search index: one search's view of the index file.

``IndexView`` filters and orders row ids on the columns (``_columns``) and builds
run entities from the stored documents, or column-wise data for a DataFrame.
``_index.RunIndex.view`` hands one out, inside one read transaction, with the
runs that have pending changes in this process laid over the stored ones.
"""

from __future__ import annotations

import json
import sqlite3
from typing import TYPE_CHECKING, Any

import numpy as np

from ..entities import (
    Dataset,
    DatasetInput,
    InputTag,
    LifecycleStage,
    Metric,
    Run,
    RunData,
    RunInfo,
    RunInputs,
)
from ..store import layout
from ._columns import Columns
from ._filter import Clause, OrderKey
from ._records import ATTR, METRIC, PARAM, TAG, Record, load_doc
from ._refresh import deleted_experiments

if TYPE_CHECKING:
    from ..store.tracking import GitStore

_ENTITY_ROW = "rid, run_id, experiment_id, run_name, user_id, status, start_time, end_time, stage, doc"


class IndexView:
    """One search's view of the index: filters and orders on columns, entities from documents."""

    def __init__(self, store: GitStore, conn: sqlite3.Connection, commit: str | None, columns: Columns,
                 overlay: dict[int, Record], deleted: list[str] | None = None):
        self.store = store
        self.conn = conn
        self.commit = commit
        self.cols = columns
        self.overlay = overlay
        if deleted is None:
            deleted = deleted_experiments(store, store.branch.tree_of(commit) if commit else None)
        self.deleted_experiments = deleted

    def select(self, experiment_ids: list[str], clauses: list[Clause], order: list[OrderKey],
               view_type: int, offset: int, limit: int | None) -> list[int]:
        """Row ids of the matching runs, in order, `limit` from `offset`."""
        rids = self.cols.where([str(e) for e in experiment_ids], clauses, view_type, self.deleted_experiments)
        return self.cols.order(rids, order, offset, limit)

    def keys(self, experiment_ids: list[str], view_type: int) -> dict[str, list[str]]:
        """The metric, param and tag keys the selected runs use."""
        rids = self.cols.where([str(e) for e in experiment_ids], [], view_type, self.deleted_experiments)
        out: dict[str, list[str]] = {"metrics": [], "params": [], "tags": []}
        if not len(rids):
            return out
        wanted = set(str(e) for e in experiment_ids)
        group = {METRIC: "metrics", PARAM: "params", TAG: "tags"}
        for (kind, key), experiments in self.cols.keys().items():
            if kind in group and experiments & wanted and self._present(kind, key, rids).any():
                out[group[kind]].append(key)
        for names in out.values():
            names.sort()
        return out

    def _present(self, kind: str, key: str, rids: np.ndarray, keep: bool = False) -> np.ndarray:
        col = self.cols.get(kind, key, keep=keep or (kind, key) in self.cols.cache.columns)
        found: np.ndarray = (col.present if kind == METRIC else col.codes >= 0)[rids]
        return found

    def lifecycle(self, stage: str, experiment_id: str) -> str:
        if stage == LifecycleStage.DELETED or experiment_id in self.deleted_experiments:
            return LifecycleStage.DELETED
        return LifecycleStage.ACTIVE

    # -- reading rows ----------------------------------------------------------------------------------
    def _rows(self, rids: list[int]) -> dict[int, tuple[Any, ...]]:
        """rid -> (run_id, experiment_id, run_name, user_id, status, start, end, stage, metrics, params,
        tags, inputs) for committed runs and pending ones (shared: copy before changing)."""
        overlay = self.overlay
        cached = self.cols.cache.rows
        out: dict[int, tuple[Any, ...]] = {}
        missing = []
        for rid in rids:
            record = overlay.get(rid) if overlay else None
            if record is not None:
                out[rid] = record[:8] + (dict(sorted(record[8].items())), dict(sorted(record[9].items())),
                                         dict(sorted(record[10].items())), record[11])
                continue
            row = cached.get(rid)
            if row is None:
                missing.append(rid)
            else:
                cached.move_to_end(rid)
                out[rid] = row
        if missing:
            if len(missing) == 1:
                rows = self.conn.execute(f"SELECT {_ENTITY_ROW} FROM runs WHERE rid = ?", (missing[0],)).fetchall()
            else:
                rows = self.conn.execute(f"SELECT {_ENTITY_ROW} FROM runs WHERE rid IN "
                                         "(SELECT value FROM json_each(?))", (json.dumps(missing),)).fetchall()
            for row in rows:
                out[row[0]] = cached[row[0]] = row[1:9] + load_doc(row[9])
            while len(cached) > self.cols.cache.ROWS_KEPT:
                cached.popitem(last=False)
        return out

    def runs(self, rids: list[int]) -> list[Run]:
        """Run entities for row ids, in that order."""
        if not rids:
            return []
        rows = self._rows(rids)
        lifecycle = self.lifecycle
        artifact_uri = layout.artifact_uri
        out = []
        for rid in rids:
            row = rows.get(rid)
            if row is None:
                continue
            run_id, experiment_id, run_name, user_id, status, start, end, stage, metrics, params, tags, inputs = row
            info = RunInfo(run_id, experiment_id, user_id or "", status, start, end, lifecycle(stage, experiment_id),
                           artifact_uri(run_id), run_name)
            data = RunData([Metric(key, value, ts, step, None, None, None, run_id)
                            for key, (step, ts, value) in metrics.items()])
            data._params = dict(params)
            data._tags = dict(tags)
            out.append(Run(info, data, RunInputs([_dataset_input(i.get("dataset") or {}, i.get("tags") or {})
                                                  for i in inputs]) if inputs else RunInputs()))
        return out

    def columns(self, rids: list[int]) -> dict[str, Any]:
        """Column-wise data for a DataFrame of these runs (MLflow's columns), without entities."""
        cols = self.cols
        sel = np.asarray(rids, dtype=np.int64)
        run_ids = cols.get(ATTR, "run_id")
        experiments = cols.get(ATTR, "experiment_id")
        out_run_ids = run_ids.objects()[run_ids.codes[sel]]
        exp_codes = experiments.codes[sel]
        out_experiments = experiments.objects()[exp_codes]
        stage = cols.get(ATTR, "stage")
        deleted = (stage.codes[sel] == stage.code_of(LifecycleStage.DELETED)) if stage.code_of(
            LifecycleStage.DELETED) >= 0 else np.zeros(len(sel), dtype=bool)
        deleted_codes = [experiments.code_of(e) for e in self.deleted_experiments]
        deleted |= np.isin(exp_codes, [c for c in deleted_codes if c >= 0])
        lifecycle = np.where(deleted, LifecycleStage.DELETED, LifecycleStage.ACTIVE).astype(object)

        def strings(name: str) -> np.ndarray:
            col = cols.get(ATTR, name)
            picked: np.ndarray = col.objects()[col.codes[sel]]
            return picked

        def times(name: str) -> np.ndarray:
            col = cols.get(ATTR, name)
            return np.where(col.present[sel], col.values[sel].astype(np.float64), np.nan)

        artifact_uri = layout.artifact_uri
        data: dict[str, Any] = {
            "run_id": out_run_ids,
            "experiment_id": out_experiments,
            "status": strings("status"),
            "artifact_uri": np.asarray([artifact_uri(r) for r in out_run_ids.tolist()], dtype=object),
            "start_time": times("start_time"),
            "end_time": times("end_time"),
            "lifecycle_stage": lifecycle,
            "run_name": strings("run_name"),
            "metrics": {}, "params": {}, "tags": {},
        }
        if not len(sel):
            return data
        present_experiments = {experiments.uniques[c] for c in np.unique(exp_codes[exp_codes >= 0]).tolist()}
        candidates = [(kind, key) for (kind, key), exps in cols.keys().items()
                      if kind in (METRIC, PARAM, TAG) and exps & present_experiments]
        keep = len(candidates) <= 256
        group = {METRIC: "metrics", PARAM: "params", TAG: "tags"}
        for kind, key in candidates:
            col = cols.get(kind, key, keep=keep or (kind, key) in cols.cache.columns)
            if kind == METRIC:
                if col.present[sel].any():
                    data["metrics"][key] = col.values[sel]
            else:
                codes = col.codes[sel]
                if (codes >= 0).any():
                    data[group[kind]][key] = col.objects()[codes]
        return data


def _dataset_input(dataset: dict[str, Any], tags: dict[str, Any]) -> DatasetInput:
    return DatasetInput(
        Dataset(name=dataset.get("name", ""), digest=dataset.get("digest", ""),
                source_type=dataset.get("source_type", ""), source=dataset.get("source", ""),
                schema=dataset.get("schema"), profile=dataset.get("profile")),
        [InputTag(k, v) for k, v in tags.items()],
    )
