"""Reading an MLflow `mlruns/` file store straight from its files (no mlflow needed, so stores
written by any MLflow version that had the file store, up to 3.13 and beyond with
MLFLOW_ALLOW_FILE_STORE, are read alike).

    <root>/<experiment id>/meta.yaml, tags/<key>          experiments (<root>/.trash/<id>/: deleted)
    <root>/<experiment id>/<run id>/meta.yaml            run info (status as RunStatus numbers)
        params/<key>  tags/<key>  metrics/<key>          "<timestamp> <value> <step>" lines
        inputs/<id>/meta.yaml -> <experiment>/datasets/<id>/meta.yaml
        artifacts/ (or wherever meta.yaml's artifact_uri says)
        inputs/<id>/meta.yaml (source_type MODEL)        a logged model the run took as input
        outputs/<model id>/meta.yaml                      a logged model the run output (its step)
    <root>/<experiment id>/models/<model id>/             logged models (meta.yaml, tags/, params/,
        metrics/<key>: "<timestamp> <value> <step> <run id> [<dataset name> <digest>]" lines)
    <root>/models/<name>/meta.yaml, tags/, aliases/, version-<n>/meta.yaml, version-<n>/tags/
Keys containing "/" are subdirectories, as MLflow writes them.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from typing import Any

import yaml

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

_STATUS = {1: "RUNNING", 2: "SCHEDULED", 3: "FINISHED", 4: "FAILED", 5: "KILLED"}
_MODEL_STATUS = {0: "UNSPECIFIED", 1: "PENDING", 2: "READY", 3: "FAILED"}


def _yaml(path: str) -> dict[str, Any]:
    with open(path, encoding="utf-8") as fh:
        doc = yaml.safe_load(fh)
    return doc if isinstance(doc, dict) else {}


def _text(path: str) -> str:
    with open(path, encoding="utf-8") as fh:
        return fh.read()


def _key_files(directory: str) -> dict[str, str]:
    """key -> file path of a params/, tags/ or metrics/ directory (keys with "/" are nested)."""
    out: dict[str, str] = {}
    if not os.path.isdir(directory):
        return out
    for root, dirs, names in os.walk(directory):
        dirs.sort()
        for name in sorted(names):
            full = os.path.join(root, name)
            out[os.path.relpath(full, directory).replace(os.sep, "/")] = full
    return out


def _values(directory: str) -> dict[str, str]:
    return {k: _text(p) for k, p in _key_files(directory).items()}


def _float(raw: str) -> float:
    return float(raw)  # "nan", "inf", "-inf" included


class FileSource:
    def __init__(self, root: str, artifacts_root: str | None = None) -> None:
        root = os.path.abspath(root[len("file://"):] if root.startswith("file://") else root)
        if not os.path.isdir(root) or not any(
                os.path.isfile(os.path.join(root, d, "meta.yaml")) for d in os.listdir(root)):
            raise InvalidParameterValue(f"{root} is not an MLflow file store (no <experiment>/meta.yaml in it)")
        self.uri = root
        self.root = root
        self.artifacts_root = artifacts_root
        self._run_dirs: dict[str, str] = {}
        self._experiment_dirs: dict[str, str] = {}

    def close(self) -> None:
        pass

    def _experiment_paths(self) -> dict[str, str]:
        if not self._experiment_dirs:
            for base in (self.root, os.path.join(self.root, ".trash")):
                if not os.path.isdir(base):
                    continue
                for name in sorted(os.listdir(base)):
                    if name != "models" and os.path.isfile(os.path.join(base, name, "meta.yaml")):
                        self._experiment_dirs[name] = os.path.join(base, name)
        return self._experiment_dirs

    def experiments(self) -> list[ExperimentRecord]:
        out = []
        for eid, path in self._experiment_paths().items():
            meta = _yaml(os.path.join(path, "meta.yaml"))
            out.append(ExperimentRecord(str(meta.get("experiment_id", eid)), str(meta.get("name", eid)),
                                        meta.get("artifact_location") or "",
                                        meta.get("lifecycle_stage") or "active",
                                        _values(os.path.join(path, "tags")),
                                        meta.get("creation_time"), meta.get("last_update_time")))
        return out

    def run_ids(self, experiment_ids: list[str], since: int | None, until: int | None) -> list[str]:
        found = []
        for eid in experiment_ids:
            path = self._experiment_paths().get(eid)
            if path is None:
                continue
            for name in sorted(os.listdir(path)):
                meta_path = os.path.join(path, name, "meta.yaml")
                if name in ("tags", "datasets", "models") or not os.path.isfile(meta_path):
                    continue
                meta = _yaml(meta_path)
                start = int(meta.get("start_time") or 0)
                if (since is not None and start < since) or (until is not None and start >= until):
                    continue
                self._run_dirs[name] = os.path.join(path, name)
                found.append((start, name))
        return [rid for _start, rid in sorted(found)]

    def runs(self, run_ids: list[str]) -> Iterator[RunRecord | ReadError]:
        for rid in run_ids:
            try:
                yield self._run(rid, self._run_dirs[rid])
            except Exception as exc:  # one unreadable run: named, and the others go on
                yield ReadError(rid, rid, exc)

    def _run(self, rid: str, path: str) -> RunRecord:
        meta = _yaml(os.path.join(path, "meta.yaml"))
        status = meta.get("status", 3)
        record = RunRecord(
            run_id=str(meta.get("run_id") or rid), experiment_id=str(meta.get("experiment_id")),
            user_id=meta.get("user_id") or "", run_name=meta.get("run_name") or None,
            status=_STATUS.get(status, str(status)) if isinstance(status, int) else str(status),
            start_time=int(meta.get("start_time") or 0), end_time=meta.get("end_time"),
            lifecycle_stage=meta.get("lifecycle_stage") or "active",
            params=_values(os.path.join(path, "params")), tags=_values(os.path.join(path, "tags")))
        for key, file in _key_files(os.path.join(path, "metrics")).items():
            points = []
            for line in _text(file).splitlines():
                parts = line.split()
                if len(parts) >= 2:
                    points.append((int(parts[2]) if len(parts) > 2 else 0, int(parts[0]), _float(parts[1])))
            points.sort(key=lambda p: (p[0], p[1]))
            record.metrics[key] = points
        experiment_dir = os.path.dirname(path)
        inputs_dir = os.path.join(path, "inputs")
        if os.path.isdir(inputs_dir):
            for name in sorted(os.listdir(inputs_dir)):
                meta_path = os.path.join(inputs_dir, name, "meta.yaml")
                if not os.path.isfile(meta_path):
                    continue
                link = _yaml(meta_path)
                if link.get("source_type") != "DATASET":
                    continue
                ds_meta = os.path.join(experiment_dir, "datasets", str(link.get("source_id")), "meta.yaml")
                if not os.path.isfile(ds_meta):
                    continue
                ds = _yaml(ds_meta)
                dataset = {k: ds[k] for k in ("name", "digest", "source_type", "source", "schema", "profile")
                           if ds.get(k) is not None}
                record.inputs.append((dataset, {str(k): str(v) for k, v in (link.get("tags") or {}).items()}))
        uri = meta.get("artifact_uri") or os.path.join(path, "artifacts")
        record.artifacts.update(list_files(uri, self.artifacts_root))
        return record

    def registered_models(self) -> list[ModelRecord]:
        base = os.path.join(self.root, "models")
        out: list[ModelRecord] = []
        if not os.path.isdir(base):
            return out
        for name in sorted(os.listdir(base)):
            path = os.path.join(base, name)
            if not os.path.isfile(os.path.join(path, "meta.yaml")):
                continue
            meta = _yaml(os.path.join(path, "meta.yaml"))
            model = ModelRecord(str(meta.get("name", name)), meta.get("description"),
                                _values(os.path.join(path, "tags")),
                                {k: int(v) for k, v in _values(os.path.join(path, "aliases")).items()}, [],
                                meta.get("creation_timestamp"), meta.get("last_updated_timestamp"))
            for entry in os.listdir(path):
                vmeta_path = os.path.join(path, entry, "meta.yaml")
                if not entry.startswith("version-") or not os.path.isfile(vmeta_path):
                    continue
                v = _yaml(vmeta_path)
                model.versions.append(VersionRecord(
                    int(v.get("version", entry[len("version-"):])), v.get("source") or "", v.get("run_id") or None,
                    v.get("description"), v.get("user_id"), v.get("current_stage") or "None",
                    v.get("status") or "READY", _values(os.path.join(path, entry, "tags")),
                    v.get("creation_timestamp"), v.get("last_updated_timestamp"), v.get("model_id")))
            model.versions.sort(key=lambda x: x.version)
            out.append(model)
        return out

    def logged_models(self, experiment_ids: list[str]) -> list[LoggedModelRecord]:
        out = []
        for eid in experiment_ids:
            path = self._experiment_paths().get(eid)
            models = os.path.join(path, "models") if path else ""
            if not path or not os.path.isdir(models):
                continue
            for mid in sorted(os.listdir(models)):
                meta_path = os.path.join(models, mid, "meta.yaml")
                if not os.path.isfile(meta_path):
                    continue
                m = _yaml(meta_path)
                status = m.get("status", 2)
                record = LoggedModelRecord(
                    str(m.get("model_id", mid)), str(m.get("experiment_id", eid)), str(m.get("name", mid)),
                    m.get("source_run_id") or None,
                    _MODEL_STATUS.get(status, str(status)) if isinstance(status, int) else str(status),
                    m.get("model_type") or None, _values(os.path.join(models, mid, "tags")),
                    _values(os.path.join(models, mid, "params")), m.get("lifecycle_stage") or "active",
                    m.get("creation_timestamp"))
                record.files.update(list_files(m.get("artifact_location") or os.path.join(models, mid, "artifacts"),
                                               self.artifacts_root))
                for key, file in _key_files(os.path.join(models, mid, "metrics")).items():
                    for line in _text(file).splitlines():  # "<timestamp> <value> <step> <run> [<dataset> <digest>]"
                        parts = line.split()
                        if len(parts) in (4, 6):
                            record.metrics.append(model_metric(key, _float(parts[1]), parts[0], parts[2], parts[3],
                                                               *(parts[4:6] if len(parts) == 6 else ())))
                out.append(record)
        if out:
            links = self._model_links()
            for record in out:
                record.inputs = sorted(links[0].get(record.model_id, set()))
                record.outputs = links[1].get(record.model_id, {})
        return out

    def _model_links(self) -> tuple[dict[str, set[str]], dict[str, dict[str, int]]]:
        """model id -> runs that took it as input, and -> {run: step} of runs that output it, from
        every run's inputs/<id>/meta.yaml (source_type MODEL) and outputs/<model id>/meta.yaml."""
        inputs: dict[str, set[str]] = {}
        outputs: dict[str, dict[str, int]] = {}
        for path in self._experiment_paths().values():
            for rid in sorted(os.listdir(path)):
                run_dir = os.path.join(path, rid)
                if rid in ("tags", "datasets", "models") or not os.path.isfile(os.path.join(run_dir, "meta.yaml")):
                    continue
                run_id = str(_yaml(os.path.join(run_dir, "meta.yaml")).get("run_id") or rid)
                for name in _subdirs(os.path.join(run_dir, "inputs")):
                    link = _yaml(os.path.join(run_dir, "inputs", name, "meta.yaml"))
                    if link.get("source_type") == "MODEL" and link.get("source_id"):
                        inputs.setdefault(str(link["source_id"]), set()).add(run_id)
                for name in _subdirs(os.path.join(run_dir, "outputs")):  # the directory is the model id
                    link = _yaml(os.path.join(run_dir, "outputs", name, "meta.yaml"))
                    if link.get("destination_type", "MODEL_OUTPUT") == "MODEL_OUTPUT":
                        outputs.setdefault(name, {})[run_id] = int(link.get("step") or 0)
        return inputs, outputs


def _subdirs(directory: str) -> list[str]:
    if not os.path.isdir(directory):
        return []
    return sorted(n for n in os.listdir(directory) if os.path.isfile(os.path.join(directory, n, "meta.yaml")))
