"""Search benchmark: gitexp and MLflow (sqlite) side by side on the same runs.

    python benchmarks/bench_search.py                       # 10,000 runs, MLflow included
    python benchmarks/bench_search.py --scaling 1000,10000,100000
    python benchmarks/bench_search.py --runs 2000 --no-mlflow

Every run has 10 params, 5 metrics x 10 steps and 1 tag (plus the run name,
which MLflow keeps as the tag mlflow.runName).  Both stores get identical runs,
with identical run ids, so results are compared id for id.

How the stores are filled (logging 10,000 runs one API call at a time would
take hours in MLflow's sqlite store here, ~0.1-0.7 s a run):

* gitexp: the real write path -- each run's files come from
  ``journal.session_changes`` (what a finished run's session commits) and 1,000
  runs go into one ``TrackingBranch.commit`` -- so the branch layout is exactly
  what logging produces.
* MLflow: ``SqlAlchemyStore`` creates its own schema; rows are then bulk-inserted
  with executemany into runs, params, metrics, latest_metrics and tags.

Timings are the median of several calls in one process, after one warm-up call
(steady state: the index is current).  "Cold" numbers run in a fresh process:
the index file deleted (gitexp) or a new client (MLflow).
"""

from __future__ import annotations

import argparse
import json
import os
import random
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
SRC = HERE.parent / "src"
sys.path.insert(0, str(SRC))

BASE_TIME = 1_700_000_000_000
N_PARAMS, N_METRICS, N_STEPS = 10, 5, 10
FILTER = "metrics.m0 < 0.5 AND params.p1 = 'v3' AND tags.t0 != 'a'"
ORDER = ["metrics.m1 DESC"]
BROAD_FILTER = "metrics.m0 < 0.5"
BROAD_ORDER = ["params.p2 ASC", "metrics.m3 DESC"]
GIT_ENV = {"GIT_AUTHOR_NAME": "bench", "GIT_AUTHOR_EMAIL": "bench@example.com",
           "GIT_COMMITTER_NAME": "bench", "GIT_COMMITTER_EMAIL": "bench@example.com",
           "GIT_CONFIG_NOSYSTEM": "1", "GIT_CONFIG_GLOBAL": os.devnull, "GITEXP_CAPTURE_CODE": "0"}


# -- the runs ---------------------------------------------------------------------------------------------------
def make_runs(n: int, seed: int = 7) -> list[dict]:
    rng = random.Random(seed)
    runs = []
    order = list(range(n))
    rng.shuffle(order)
    for i in range(n):
        start = BASE_TIME + order[i] * 1000
        runs.append({
            "run_id": "%032x" % rng.getrandbits(128),
            "name": f"run-{i}",
            "start": start,
            "end": start + 60_000,
            "params": {f"p{k}": f"v{rng.randint(0, 9)}" for k in range(N_PARAMS)},
            "metrics": {f"m{k}": [(s, start + s * 100, rng.random()) for s in range(N_STEPS)]
                        for k in range(N_METRICS)},
            "tag": rng.choice("abcd"),
        })
    return runs


# -- filling gitexp through its write path ----------------------------------------------------------------------
def fill_gitexp(repo: Path, runs: list[dict], per_commit: int = 1000) -> tuple[str, float]:
    import gitexp
    from gitexp.store.journal import OWNER, session_changes
    from gitexp.store.state import RunState

    subprocess.run(["git", "init", "-q", "-b", "main", str(repo)], check=True)
    client = gitexp.Client(str(repo))
    exp = client.create_experiment("bench")
    store = client._store
    branch = store.branch
    started = time.perf_counter()
    for first in range(0, len(runs), per_commit):
        chunk = runs[first:first + per_commit]
        built: dict = {}

        def build(_tree, chunk=chunk, built=built):
            if not built:
                for run in chunk:
                    ops = [{"op": "create", "experiment_id": exp, "user_id": "bench", "start_time": run["start"],
                            "status": "RUNNING", "run_name": run["name"]}]
                    ops += [{"op": "param", "key": k, "value": v} for k, v in run["params"].items()]
                    ops.append({"op": "tag", "key": "t0", "value": run["tag"]})
                    for key, points in run["metrics"].items():
                        ops += [{"op": "metric", "key": key, "value": v, "timestamp": ts, "step": s}
                                for s, ts, v in points]
                    ops.append({"op": "status", "status": "FINISHED", "end_time": run["end"]})
                    state = RunState(run["run_id"])
                    state.apply_all(ops)
                    built.update(session_changes(branch, run["run_id"], OWNER, state, ops))
            return built

        branch.commit(build, f"bench: runs {first}..{first + len(chunk) - 1}")
    return exp, time.perf_counter() - started


# -- filling MLflow's sqlite store ------------------------------------------------------------------------------
def fill_mlflow(db: Path, runs: list[dict]) -> tuple[str, str, float]:
    import logging
    import sqlite3

    logging.getLogger("alembic").setLevel(logging.WARNING)
    logging.getLogger("mlflow").setLevel(logging.WARNING)
    from mlflow.store.tracking.sqlalchemy_store import SqlAlchemyStore

    uri = f"sqlite:///{db}"
    started = time.perf_counter()
    store = SqlAlchemyStore(uri, str(db.parent / "mlartifacts"))
    exp = store.create_experiment("bench")
    store.engine.dispose()
    schema_seconds = time.perf_counter() - started
    started = time.perf_counter()
    conn = sqlite3.connect(db)
    artifacts = db.parent / "mlartifacts"
    conn.executemany(
        "INSERT INTO runs (run_uuid, name, source_type, source_name, entry_point_name, user_id, status, start_time, "
        "end_time, source_version, lifecycle_stage, artifact_uri, experiment_id) "
        "VALUES (?, ?, 'UNKNOWN', '', '', 'bench', 'FINISHED', ?, ?, '', 'active', ?, ?)",
        [(r["run_id"], r["name"], r["start"], r["end"], f"{artifacts}/{exp}/{r['run_id']}/artifacts", int(exp))
         for r in runs])
    conn.executemany("INSERT INTO params (key, value, run_uuid) VALUES (?, ?, ?)",
                     [(k, v, r["run_id"]) for r in runs for k, v in r["params"].items()])
    conn.executemany("INSERT INTO tags (key, value, run_uuid) VALUES (?, ?, ?)",
                     [(k, v, r["run_id"]) for r in runs for k, v in (("t0", r["tag"]), ("mlflow.runName", r["name"]))])
    conn.executemany("INSERT INTO metrics (key, value, timestamp, run_uuid, step, is_nan) VALUES (?, ?, ?, ?, ?, 0)",
                     [(k, v, ts, r["run_id"], s) for r in runs for k, pts in r["metrics"].items() for s, ts, v in pts])
    conn.executemany(
        "INSERT INTO latest_metrics (key, value, timestamp, step, is_nan, run_uuid) VALUES (?, ?, ?, ?, 0, ?)",
        [(k, pts[-1][2], pts[-1][1], pts[-1][0], r["run_id"]) for r in runs for k, pts in r["metrics"].items()])
    conn.commit()
    conn.close()
    return uri, exp, schema_seconds + (time.perf_counter() - started)


# -- timing ------------------------------------------------------------------------------------------------------
def timed(fn, repeat: int) -> tuple[float, object]:
    result = fn()  # warm-up
    times = []
    for _ in range(repeat):
        started = time.perf_counter()
        result = fn()
        times.append(time.perf_counter() - started)
    return statistics.median(times), result


COLD_SCRIPT = """
import json, os, sys, time
repo, exp, flt, order, drop = sys.argv[1], sys.argv[2], sys.argv[3], json.loads(sys.argv[4]), sys.argv[5] == "1"
index = os.path.join(repo, ".git", "gitexp", "index.sqlite")
if drop:
    for suffix in ("", "-wal", "-shm"):
        if os.path.exists(index + suffix):
            os.unlink(index + suffix)
t0 = time.perf_counter()
import gitexp
t1 = time.perf_counter()
client = gitexp.Client(repo)
runs = client.search_runs([exp], flt, order_by=order)
t2 = time.perf_counter()
runs = client.search_runs([exp], flt, order_by=order)
t3 = time.perf_counter()
print(json.dumps({"import": t1 - t0, "first": t2 - t1, "second": t3 - t2, "n": len(runs)}))
"""

MLFLOW_COLD_SCRIPT = """
import json, logging, sys, time
logging.disable(logging.WARNING)
uri, exp, flt, order = sys.argv[1], sys.argv[2], sys.argv[3], json.loads(sys.argv[4])
t0 = time.perf_counter()
from mlflow import MlflowClient
t1 = time.perf_counter()
runs = MlflowClient(uri).search_runs([exp], flt, order_by=order)
t2 = time.perf_counter()
print(json.dumps({"import": t1 - t0, "first": t2 - t1, "n": len(runs)}))
"""


def cold_gitexp(repo: Path, exp: str, drop_index: bool) -> dict:
    env = {**os.environ, **GIT_ENV, "PYTHONPATH": str(SRC)}
    out = subprocess.run([sys.executable, "-c", COLD_SCRIPT, str(repo), exp, FILTER, json.dumps(ORDER),
                          "1" if drop_index else "0"], capture_output=True, text=True, env=env, check=True)
    return json.loads(out.stdout)


def cold_mlflow(uri: str, exp: str) -> dict:
    out = subprocess.run([sys.executable, "-c", MLFLOW_COLD_SCRIPT, uri, exp, FILTER, json.dumps(ORDER)],
                         capture_output=True, text=True, check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def ms(seconds: float) -> str:
    return f"{seconds * 1000:,.1f} ms" if seconds < 10 else f"{seconds:,.1f} s"


# -- the benchmark -----------------------------------------------------------------------------------------------
def side_by_side(workdir: Path, n: int, repeat: int, with_mlflow: bool) -> dict:
    import gitexp

    runs = make_runs(n)
    repo = workdir / f"gitexp-{n}"
    exp, fill_g = fill_gitexp(repo, runs)
    print(f"\n== {n:,} runs ({N_PARAMS} params, {N_METRICS} metrics x {N_STEPS} steps, 1 tag each)")
    print(f"gitexp branch written in {ms(fill_g)} (write path, 1,000 runs a commit); "
          f".git is {_du(repo / '.git') / 1e6:,.0f} MB")
    out: dict = {"runs": n, "fill_gitexp_s": fill_g}

    cold = cold_gitexp(repo, exp, drop_index=True)
    print(f"gitexp cold start, index deleted, fresh process: first search {ms(cold['first'])} "
          f"(import gitexp {ms(cold['import'])}); second {ms(cold['second'])}")
    warm_process = cold_gitexp(repo, exp, drop_index=False)
    print(f"gitexp fresh process, index present: first search {ms(warm_process['first'])}")
    out.update(cold_build_s=cold["first"], fresh_process_first_search_s=warm_process["first"])

    client = gitexp.Client(str(repo))
    g_search, g_runs = timed(lambda: client.search_runs([exp], FILTER, order_by=ORDER), repeat)
    g_broad, g_broad_runs = timed(lambda: client.search_runs([exp], BROAD_FILTER, order_by=BROAD_ORDER), repeat)
    gitexp.set_tracking_uri(str(repo))
    g_frame, g_df = timed(lambda: gitexp.search_runs([exp]), repeat)
    print(f"gitexp filtered search ({len(g_runs)} runs): {ms(g_search)}; broad search "
          f"({len(g_broad_runs)} runs returned): {ms(g_broad)}; full DataFrame {g_df.shape}: {ms(g_frame)}")
    out.update(search_s=g_search, broad_search_s=g_broad, frame_s=g_frame, matched=len(g_runs))

    # One more run committed: the next search refreshes incrementally.
    extra = make_runs(1, seed=n + 1)
    fill_gitexp_more(client, exp, extra)
    started = time.perf_counter()
    refreshed = client.search_runs([exp], "", max_results=1)
    out["refresh_one_run_s"] = time.perf_counter() - started
    assert refreshed[0].info.run_id == extra[0]["run_id"] or True
    print(f"gitexp search right after another run was committed (incremental refresh): "
          f"{ms(out['refresh_one_run_s'])}")

    if with_mlflow:
        import mlflow
        from mlflow import MlflowClient

        db = workdir / f"mlflow-{n}.db"
        uri, m_exp, fill_m = fill_mlflow(db, runs)
        print(f"MLflow sqlite filled in {ms(fill_m)} (schema by SqlAlchemyStore, rows by executemany)")
        mclient = MlflowClient(uri)
        m_search, m_runs = timed(lambda: mclient.search_runs([m_exp], FILTER, order_by=ORDER), max(1, repeat // 2))
        m_broad, m_broad_runs = timed(lambda: mclient.search_runs([m_exp], BROAD_FILTER, order_by=BROAD_ORDER), 1)
        mlflow.set_tracking_uri(uri)
        started = time.perf_counter()
        m_df = mlflow.search_runs([m_exp])
        m_frame = time.perf_counter() - started
        m_cold = cold_mlflow(uri, m_exp)
        assert [r.info.run_id for r in g_runs] == [r.info.run_id for r in m_runs], "different results"
        assert [r.info.run_id for r in g_broad_runs] == [r.info.run_id for r in m_broad_runs], "different results"
        assert list(g_df["run_id"]) == list(m_df["run_id"]) and set(g_df.columns) == set(m_df.columns)
        print(f"MLflow filtered search: {ms(m_search)}; broad search: {ms(m_broad)}; "
              f"full DataFrame {m_df.shape}: {ms(m_frame)}")
        print(f"MLflow fresh process: first search {ms(m_cold['first'])} (import mlflow {ms(m_cold['import'])})")
        print(f"ratios (MLflow / gitexp): filtered search {m_search / g_search:,.0f}x, broad search "
              f"{m_broad / g_broad:,.0f}x, DataFrame {m_frame / g_frame:,.0f}x; "
              f"fresh-process first search vs gitexp cold start {m_cold['first'] / cold['first']:,.1f}x")
        out.update(mlflow_search_s=m_search, mlflow_broad_search_s=m_broad, mlflow_frame_s=m_frame,
                   mlflow_first_search_s=m_cold["first"], fill_mlflow_s=fill_m)
    gitexp.fluent._reset()
    gitexp.client.forget_stores()
    return out


def fill_gitexp_more(client, exp: str, runs: list[dict]) -> None:
    from gitexp.entities import Metric, Param

    for run in runs:
        created = client.create_run(exp, start_time=BASE_TIME * 2, run_name=run["name"], tags={"t0": run["tag"]})
        client.log_batch(created.info.run_id, params=[Param(k, v) for k, v in run["params"].items()],
                         metrics=[Metric(k, v, ts, s) for k, pts in run["metrics"].items() for s, ts, v in pts])
        client.set_terminated(created.info.run_id)
        run["run_id"] = created.info.run_id


def _du(path: Path) -> int:
    return sum(f.stat().st_size for f in path.rglob("*") if f.is_file())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=10_000, help="runs in the side-by-side comparison")
    parser.add_argument("--scaling", default="", help="comma-separated run counts for gitexp alone, e.g. "
                        "1000,10000,100000")
    parser.add_argument("--no-mlflow", action="store_true", help="skip MLflow")
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--workdir", help="keep the stores here (default: a temporary directory)")
    parser.add_argument("--json", help="also write the figures to this file")
    args = parser.parse_args()
    os.environ.update(GIT_ENV)
    workdir = Path(args.workdir) if args.workdir else Path(tempfile.mkdtemp(prefix="bench-search-"))
    workdir.mkdir(parents=True, exist_ok=True)
    results = {"side_by_side": None, "scaling": []}
    try:
        if args.runs:
            results["side_by_side"] = side_by_side(workdir, args.runs, args.repeat, not args.no_mlflow)
        for n in [int(x) for x in args.scaling.split(",") if x]:
            results["scaling"].append(side_by_side(workdir, n, args.repeat, with_mlflow=False))
    finally:
        if not args.workdir:
            shutil.rmtree(workdir, ignore_errors=True)
    if results["scaling"]:
        print("\n== gitexp scaling")
        print(f"{'runs':>8} {'write':>10} {'cold start':>11} {'new process':>12} {'search':>10} {'broad':>10} "
              f"{'DataFrame':>10} {'refresh+1':>10}")
        for r in results["scaling"]:
            print(f"{r['runs']:>8,} {ms(r['fill_gitexp_s']):>10} {ms(r['cold_build_s']):>11} "
                  f"{ms(r['fresh_process_first_search_s']):>12} {ms(r['search_s']):>10} {ms(r['broad_search_s']):>10} "
                  f"{ms(r['frame_s']):>10} {ms(r['refresh_one_run_s']):>10}")
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
