"""`gitexp import` of a 10,000-run MLflow sqlite store, against the same copy through MLflow's client.

The store (10 params, 5 metrics x 10 steps and 2 tags a run, over 10 experiments) is built fast:
MLflow's own SqlAlchemyStore creates the schema and the experiments, then the runs, params,
tags, metrics and latest_metrics rows are bulk-inserted with SQL into MLflow's tables (the
rows MLflow's log_batch would write; building 10,000 runs through MLflow's API takes minutes).

Workloads, each in a fresh process, repeated (--repeats, default 3):
* gitexp: `gitexp import sqlite:///store.db` into a fresh repository (the CLI, end to end).
* MLflow: the same copy with MlflowClient -- search_runs, get_metric_history for every metric,
  then create_run / log_batch / set_terminated into a fresh sqlite store -- over the first
  --mlflow-runs runs (default 1,000: the full 10,000 takes many minutes here), reported per run
  and scaled to the store's size (marked "scaled").
* gitexp re-import of the same store (nothing new: what an incremental import costs).

Usage: python benchmarks/bench_import.py [--runs 10000] [--mlflow-runs 1000] [--repeats 3] [--json out.json]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from _harness import ENV, run_workload, scratch_repo

_SCHEMA = """
import sys
from mlflow.store.tracking.sqlalchemy_store import SqlAlchemyStore
store = SqlAlchemyStore(sys.argv[1], sys.argv[2])
for i in range(int(sys.argv[3])):
    store.create_experiment(f"bench-{i}")
"""


def build_store(db_path: str, runs: int, params: int = 10, metrics: int = 5, steps: int = 10,
                experiments: int = 10) -> str:
    """An MLflow sqlite store of `runs` finished runs; its URI."""
    uri = f"sqlite:///{db_path}"
    artifacts = os.path.join(os.path.dirname(db_path), "artifacts")
    subprocess.run([sys.executable, "-c", _SCHEMA, uri, artifacts, str(experiments)], check=True, env=ENV,
                   capture_output=True)
    conn = sqlite3.connect(db_path)
    exp_ids = [r[0] for r in conn.execute("select experiment_id from experiments where name like 'bench-%'")]
    t0 = 1_700_000_000_000
    run_rows, param_rows, tag_rows, metric_rows, latest_rows = [], [], [], [], []
    for n in range(runs):
        rid = f"{n:032x}"
        eid = exp_ids[n % len(exp_ids)]
        start = t0 + n * 1000
        run_rows.append((rid, f"run-{n}", "UNKNOWN", "", "", "bench", "FINISHED", start, start + 900, "",
                         "active", f"{artifacts}/{eid}/{rid}/artifacts", eid))
        param_rows += [(f"p{k}", str(n * k), rid) for k in range(params)]
        tag_rows += [("mlflow.runName", f"run-{n}", rid), ("mlflow.user", "bench", rid)]
        for k in range(metrics):
            for s in range(steps):
                metric_rows.append((f"m{k}", (n + k + s) / 100, start + s, rid, s, 0))
            latest_rows.append((f"m{k}", (n + k + steps - 1) / 100, start + steps - 1, steps - 1, 0, rid))
    with conn:
        conn.executemany("insert into runs (run_uuid, name, source_type, source_name, entry_point_name, user_id, "
                         "status, start_time, end_time, source_version, lifecycle_stage, artifact_uri, experiment_id)"
                         " values (?,?,?,?,?,?,?,?,?,?,?,?,?)", run_rows)
        conn.executemany("insert into params (key, value, run_uuid) values (?,?,?)", param_rows)
        conn.executemany("insert into tags (key, value, run_uuid) values (?,?,?)", tag_rows)
        conn.executemany("insert into metrics (key, value, timestamp, run_uuid, step, is_nan) values (?,?,?,?,?,?)",
                         metric_rows)
        conn.executemany("insert into latest_metrics (key, value, timestamp, step, is_nan, run_uuid) "
                         "values (?,?,?,?,?,?)", latest_rows)
    conn.close()
    return uri


def gitexp_import(uri: str) -> dict:
    repo = scratch_repo()
    try:
        t = time.perf_counter()
        result = subprocess.run([sys.executable, "-m", "gitexp", "import", uri, "--repo", repo],
                                capture_output=True, text=True, env=ENV)
        first = time.perf_counter() - t
        if result.returncode != 0:
            raise RuntimeError(result.stdout + result.stderr)
        t = time.perf_counter()
        subprocess.run([sys.executable, "-m", "gitexp", "import", uri, "--repo", repo], check=True,
                       capture_output=True, env=ENV)
        again = time.perf_counter() - t
        count = run_workload(f"""
            import json, gitexp
            c = gitexp.Client({repo!r})
            ids = [e.experiment_id for e in c.search_experiments()]
            print(json.dumps({{"runs": len(c.search_runs(ids, max_results=50000))}}))
        """, repo)["runs"]
        return {"import": first, "reimport": again, "runs": count}
    finally:
        shutil.rmtree(repo, ignore_errors=True)


_MLFLOW_COPY = """
import json, sys, time
from mlflow import MlflowClient
from mlflow.entities import Metric, Param, RunTag
src, dst, limit = sys.argv[1], sys.argv[2], int(sys.argv[3])
a = MlflowClient(tracking_uri=src)
b = MlflowClient(tracking_uri=dst)
t = time.perf_counter()
exps = {}
copied = 0
for e in a.search_experiments():
    if copied >= limit:
        break
    exps[e.experiment_id] = e.experiment_id if e.name == "Default" else b.create_experiment(e.name)
    token = None
    while copied < limit:
        page = a.search_runs([e.experiment_id], max_results=1000, page_token=token)
        for run in page:
            if copied >= limit:
                break
            r = b.create_run(exps[e.experiment_id], start_time=run.info.start_time,
                             tags={k: v for k, v in run.data.tags.items()}, run_name=run.info.run_name)
            metrics = [Metric(k, m.value, m.timestamp, m.step) for k in run.data.metrics
                       for m in a.get_metric_history(run.info.run_id, k)]
            b.log_batch(r.info.run_id, metrics=metrics, params=[Param(k, v) for k, v in run.data.params.items()])
            b.set_terminated(r.info.run_id, run.info.status, run.info.end_time)
            copied += 1
        token = page.token
        if not token:
            break
print(json.dumps({"seconds": time.perf_counter() - t, "runs": copied}))
"""


def mlflow_copy(uri: str, limit: int) -> dict:
    work = tempfile.mkdtemp(prefix="mlflow-copy-")
    try:
        return run_workload(_MLFLOW_COPY.replace("sys.argv[1], sys.argv[2], int(sys.argv[3])",
                                                 f"{uri!r}, 'sqlite:///{work}/copy.db', {limit}"), work)
    finally:
        shutil.rmtree(work, ignore_errors=True)


def _stats(values: list[float]) -> str:
    return f"{statistics.median(values):.1f} s (range {min(values):.1f}-{max(values):.1f} s, n={len(values)})"


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--runs", type=int, default=10_000)
    parser.add_argument("--mlflow-runs", type=int, default=1_000)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--json")
    args = parser.parse_args()
    work = tempfile.mkdtemp(prefix="bench-import-")
    try:
        t = time.perf_counter()
        uri = build_store(os.path.join(work, "store.db"), args.runs)
        built = time.perf_counter() - t
        results = [gitexp_import(uri) for _ in range(args.repeats)]
        assert all(r["runs"] == args.runs for r in results), results
        copies = [mlflow_copy(uri, min(args.mlflow_runs, args.runs)) for _ in range(args.repeats)]
    finally:
        shutil.rmtree(work, ignore_errors=True)
    imports = [r["import"] for r in results]
    again = [r["reimport"] for r in results]
    per_run = [c["seconds"] / c["runs"] for c in copies]
    scaled = [p * args.runs for p in per_run]
    n_ml = copies[0]["runs"]
    lines = [
        f"### gitexp import: {args.runs:,} runs (10 params, 5 metrics x 10 steps), sqlite", "",
        f"Store built in {built:.1f} s (MLflow's schema; rows bulk-inserted with SQL). {os.cpu_count()} cores.", "",
        "| workload | median (range) | per run | target |", "|---|---|---:|---|",
        f"| `gitexp import` (fresh repository) | {_stats(imports)} | "
        f"{statistics.median(imports) / args.runs * 1000:.2f} ms | < 60 s: "
        f"{'met' if statistics.median(imports) < 60 else 'MISSED'} |",
        f"| `gitexp import` again (nothing new) | {_stats(again)} | "
        f"{statistics.median(again) / args.runs * 1000:.2f} ms | |",
        f"| MlflowClient copy, {n_ml:,} runs measured | {_stats([c['seconds'] for c in copies])} | "
        f"{statistics.median(per_run) * 1000:.2f} ms | |",
        f"| MlflowClient copy, scaled to {args.runs:,} runs | {_stats(scaled)} | | |",
        "", f"MLflow client copy / gitexp import: {statistics.median(scaled) / statistics.median(imports):.1f}x "
            "(per run)",
    ]
    text = "\n".join(lines)
    print(text)
    if args.json:
        with open(args.json, "w") as fh:
            json.dump({"imports": imports, "reimports": again, "mlflow": copies, "built": built}, fh)


if __name__ == "__main__":
    main()
