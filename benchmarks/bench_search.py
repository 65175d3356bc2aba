"""Search benchmark: gitexp and MLflow (sqlite) side by side on the same runs.

    python benchmarks/bench_search.py                       # 10,000 runs, MLflow included
    python benchmarks/bench_search.py --scaling 1000,10000,100000
    python benchmarks/bench_search.py --runs 2000 --no-mlflow
    python benchmarks/bench_search.py --workdir /tmp/bench  # keep (and reuse) the stores

Every run has 10 params, 5 metrics x 10 steps and 1 tag (plus the run name,
which MLflow keeps as the tag mlflow.runName).  Both stores get identical runs,
with identical run ids, so results are compared id for id.

How the stores are filled (logging 10,000 runs one API call at a time would
take hours in MLflow's sqlite store here, ~0.1-0.7 s a run):

* gitexp: the real write path -- each run's files come from
  ``journal.session_changes`` (what a finished run's session commits) and 1,000
  runs go into one ``TrackingBranch.commit`` -- so the branch layout is exactly
  what logging produces.  The repository also has a main branch with one commit,
  as a project would.
* MLflow: ``SqlAlchemyStore`` creates its own schema; rows are then bulk-inserted
  with executemany into runs, params, metrics, latest_metrics and tags.

What is measured (medians, with [min-max] over the repetitions):

* steady state: in one process, after one warm-up call (the index is current);
* cold start: a fresh process, the index file deleted, first search;
* fresh process, index present: first search; first full DataFrame;
* refresh: a search right after one more run was committed (each repetition
  commits another run);
* clone: ``git clone --no-local`` (objects copied, as from a server), then a fresh
  process's ``import gitexp`` + first filtered search in the clone (no index yet);
  the clone repetitions reuse one clone, each time without the index and without
  the local tracking branch, as right after cloning;
* MLflow: the same searches in one process, and in fresh processes (its store
  exists already).

Fresh processes run with compiled bytecode available, as after `pip install` (this
repository's environment sets PYTHONDONTWRITEBYTECODE, which would make every fresh
process compile gitexp from source while MLflow's bytecode is installed): they get
PYTHONPYCACHEPREFIX=<workdir>/pycache, and one warm-up process of each kind runs first.
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
MLFLOW_ENV = {"MLFLOW_DISABLE_TELEMETRY": "true", "DO_NOT_TRACK": "true"}


# -- the runs ---------------------------------------------------------------------------------------------------
def make_runs(n: int, seed: int = 7) -> list[dict]:
    rng = random.Random(seed)
    runs = []
    order = list(range(n))
    rng.shuffle(order)
    for i in range(n):
        start = BASE_TIME + order[i] * 1000
        runs.append({
            "run_id": f"{rng.getrandbits(128):032x}",
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
    (repo / "README.md").write_text("A project with tracked runs.\n")
    subprocess.run(["git", "add", "README.md"], cwd=repo, check=True)
    subprocess.run(["git", "commit", "-q", "-m", "init"], cwd=repo, check=True, env={**os.environ, **GIT_ENV})
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
    gitexp.client.forget_stores()
    return exp, time.perf_counter() - started


def stored_gitexp(workdir: Path, n: int, runs: list[dict] | None) -> tuple[Path, str, float | None]:
    """The gitexp repository of n runs in workdir: reused when a previous run left it complete."""
    repo = workdir / f"gitexp-{n}"
    marker = workdir / f"gitexp-{n}.json"
    if marker.exists() and repo.exists():
        return repo, json.loads(marker.read_text())["experiment_id"], None
    shutil.rmtree(repo, ignore_errors=True)
    exp, seconds = fill_gitexp(repo, runs if runs is not None else make_runs(n))
    marker.write_text(json.dumps({"experiment_id": exp, "runs": n}))
    return repo, exp, seconds


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
class Figure:
    """Repeated timings of one thing: the median, and the range."""

    def __init__(self, times: list[float]):
        self.times = sorted(times)

    @property
    def median(self) -> float:
        return statistics.median(self.times)

    def __str__(self) -> str:
        if len(self.times) == 1:
            return ms(self.times[0])
        return f"{ms(self.median)} [{ms(self.times[0])}-{ms(self.times[-1])}]"

    def to_json(self) -> dict:
        return {"median": self.median, "min": self.times[0], "max": self.times[-1], "n": len(self.times)}


def timed(fn, repeat: int) -> tuple[Figure, object]:
    result = fn()  # warm-up
    times = []
    for _ in range(repeat):
        started = time.perf_counter()
        result = fn()
        times.append(time.perf_counter() - started)
    return Figure(times), result


def ms(seconds: float) -> str:
    return f"{seconds * 1000:,.1f} ms" if seconds < 10 else f"{seconds:,.1f} s"


def _json_tail(stdout: str) -> dict:
    return json.loads(stdout.strip().splitlines()[-1])


# One fresh process: drop the index (or not), import, first search, second search, and
# optionally a DataFrame of every run.  Times after `import gitexp` and pandas.
COLD_SCRIPT = """
import json, os, subprocess, sys, time
repo, exp, flt, order = sys.argv[1], sys.argv[2], sys.argv[3], json.loads(sys.argv[4])
drop, what = sys.argv[5], sys.argv[6]
index = os.path.join(repo, ".git", "gitexp", "index.sqlite")
if drop != "0":
    for suffix in ("", "-wal", "-shm"):
        if os.path.exists(index + suffix):
            os.unlink(index + suffix)
if drop == "clone":  # as right after `git clone`: no local tracking branch either
    subprocess.run(["git", "-C", repo, "update-ref", "-d", "refs/heads/gitexp"], capture_output=True)
t0 = time.perf_counter()
import gitexp
t1 = time.perf_counter()
if what == "frame":
    import pandas
    t1 = time.perf_counter()
    gitexp.set_tracking_uri(repo)
    frame = gitexp.search_runs([exp])
    t2 = time.perf_counter()
    print(json.dumps({"import": t1 - t0, "first": t2 - t1, "n": len(frame), "shape": list(frame.shape)}))
    sys.exit(0)
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
uri, exp, flt, order, what = sys.argv[1], sys.argv[2], sys.argv[3], json.loads(sys.argv[4]), sys.argv[5]
t0 = time.perf_counter()
import mlflow
from mlflow import MlflowClient
t1 = time.perf_counter()
if what == "frame":
    import pandas
    t1 = time.perf_counter()
    mlflow.set_tracking_uri(uri)
    frame = mlflow.search_runs([exp])
    t2 = time.perf_counter()
    print(json.dumps({"import": t1 - t0, "first": t2 - t1, "n": len(frame), "shape": list(frame.shape)}))
    sys.exit(0)
runs = MlflowClient(uri).search_runs([exp], flt, order_by=order)
t2 = time.perf_counter()
print(json.dumps({"import": t1 - t0, "first": t2 - t1, "n": len(runs)}))
"""


_PYCACHE: list[str] = []


def _fresh_env(extra: dict) -> dict:
    env = {**os.environ, **extra}
    env.pop("PYTHONDONTWRITEBYTECODE", None)
    if _PYCACHE:
        env["PYTHONPYCACHEPREFIX"] = _PYCACHE[0]
    return env


def fresh_gitexp(repo: Path, exp: str, drop: str = "0", what: str = "search") -> dict:
    """drop: "0" keep the index, "1" delete it, "clone" delete it and the local tracking branch."""
    env = _fresh_env({**GIT_ENV, "PYTHONPATH": str(SRC)})
    out = subprocess.run([sys.executable, "-c", COLD_SCRIPT, str(repo), exp, FILTER, json.dumps(ORDER), drop, what],
                         capture_output=True, text=True, env=env)
    if out.returncode != 0:
        raise RuntimeError(out.stderr[-3000:])
    return _json_tail(out.stdout)


def fresh_mlflow(uri: str, exp: str, what: str = "search") -> dict:
    out = subprocess.run([sys.executable, "-c", MLFLOW_COLD_SCRIPT, uri, exp, FILTER, json.dumps(ORDER), what],
                         capture_output=True, text=True, env=_fresh_env(MLFLOW_ENV))
    if out.returncode != 0:
        raise RuntimeError(out.stderr[-3000:])
    return _json_tail(out.stdout)


def repeated(fn, times: int, key: str = "first") -> tuple[Figure, list[dict]]:
    outs = [fn() for _ in range(times)]
    return Figure([o[key] for o in outs]), outs


# -- the benchmark -----------------------------------------------------------------------------------------------
def gitexp_figures(workdir: Path, n: int, repeat: int, cold_repeat: int, clone: bool,
                   runs: list[dict] | None = None) -> dict:
    import gitexp

    repo, exp, fill_g = stored_gitexp(workdir, n, runs)
    git_dir = repo / ".git"
    print(f"\n== {n:,} runs ({N_PARAMS} params, {N_METRICS} metrics x {N_STEPS} steps, 1 tag each)")
    written = ("reused from an earlier run" if fill_g is None
               else f"written in {ms(fill_g)} (write path, 1,000 runs a commit)")
    print(f"gitexp branch {written}; .git is {_du(git_dir) / 1e6:,.0f} MB")
    out: dict = {"runs": n, "fill_gitexp_s": fill_g, "git_dir_mb": _du(git_dir) / 1e6}

    fresh_gitexp(repo, exp, "0", "frame")  # warm-up: compiled bytecode in the cache
    cold, cold_outs = repeated(lambda: fresh_gitexp(repo, exp, "1"), cold_repeat)
    print(f"gitexp cold start (fresh process, index deleted), first search: {cold} "
          f"(import gitexp {ms(statistics.median(o['import'] for o in cold_outs))}); "
          f"second search {ms(statistics.median(o['second'] for o in cold_outs))}")
    warm, _ = repeated(lambda: fresh_gitexp(repo, exp, "0"), cold_repeat)
    print(f"gitexp fresh process, index present, first search: {warm}")
    frame_fresh, frame_outs = repeated(lambda: fresh_gitexp(repo, exp, "0", "frame"), cold_repeat)
    print(f"gitexp fresh process, index present, full DataFrame {tuple(frame_outs[0]['shape'])}: {frame_fresh}")
    out.update(cold_build=cold.to_json(), fresh_process_first_search=warm.to_json(),
               fresh_process_frame=frame_fresh.to_json(), matched=cold_outs[0]["n"])

    client = gitexp.Client(str(repo))
    g_search, g_runs = timed(lambda: client.search_runs([exp], FILTER, order_by=ORDER), repeat)
    g_broad, g_broad_runs = timed(lambda: client.search_runs([exp], BROAD_FILTER, order_by=BROAD_ORDER), repeat)
    gitexp.set_tracking_uri(str(repo))
    g_frame, g_df = timed(lambda: gitexp.search_runs([exp]), repeat)
    print(f"gitexp filtered search ({len(g_runs)} runs): {g_search}; broad search "
          f"({len(g_broad_runs)} runs returned): {g_broad}; full DataFrame {g_df.shape}: {g_frame}")
    out.update(search=g_search.to_json(), broad_search=g_broad.to_json(), frame=g_frame.to_json())

    # One more run committed, each time: the next search refreshes incrementally.  The branch
    # is put back afterwards, so a reused repository keeps exactly n runs.
    tip = subprocess.run(["git", "-C", str(repo), "rev-parse", "refs/heads/gitexp"], capture_output=True,
                         text=True, check=True).stdout.strip()
    refresh_times = []
    try:
        for i in range(repeat):
            extra = make_runs(1, seed=n + 1 + i)
            fill_gitexp_more(client, exp, extra, start_time=BASE_TIME * 2 + i)
            started = time.perf_counter()
            refreshed = client.search_runs([exp], "", max_results=1)
            refresh_times.append(time.perf_counter() - started)
            assert refreshed[0].info.run_id == extra[0]["run_id"]
    finally:
        gitexp.fluent._reset()
        gitexp.client.forget_stores()
        subprocess.run(["git", "-C", str(repo), "update-ref", "refs/heads/gitexp", tip], check=True)
    out["refresh_one_run"] = Figure(refresh_times).to_json()
    print(f"gitexp search right after another run was committed (incremental refresh): {Figure(refresh_times)}")

    if clone:
        out.update(clone_figures(workdir, repo, exp, cold_repeat))
    out["_handles"] = {"repo": str(repo), "exp": exp, "g_runs": [r.info.run_id for r in g_runs],
                       "g_broad_runs": [r.info.run_id for r in g_broad_runs], "df_run_ids": list(g_df["run_id"]),
                       "df_columns": sorted(g_df.columns)}
    return out


def clone_figures(workdir: Path, repo: Path, exp: str, cold_repeat: int) -> dict:
    """git clone --no-local, then a fresh process's first search in the clone: from the repository
    as gitexp wrote it (packs without deltas: the clone compresses), and from a server-like copy
    (a bare repository repacked with `git repack -adb`, as hosting services keep them)."""
    out: dict = {}
    server = workdir / f"{repo.name}-server.git"
    if not (server / "packed").exists():
        shutil.rmtree(server, ignore_errors=True)
        subprocess.run(["git", "clone", "-q", "--bare", "--no-local", str(repo), str(server)], check=True,
                       capture_output=True)
        subprocess.run(["git", "-C", str(server), "repack", "-adbq"], check=True, capture_output=True)
        (server / "packed").write_text("repacked with git repack -adb\n")
    for label, source in (("", repo), ("server_", server)):
        clone_times, searches = [], []
        target = workdir / f"{repo.name}-clone"
        for _ in range(max(1, cold_repeat)):
            shutil.rmtree(target, ignore_errors=True)
            started = time.perf_counter()
            subprocess.run(["git", "clone", "-q", "--no-local", str(source), str(target)], check=True,
                           env={**os.environ, **GIT_ENV}, capture_output=True)
            clone_times.append(time.perf_counter() - started)
            searches.append(fresh_gitexp(target, exp, "clone"))
        shutil.rmtree(target, ignore_errors=True)
        search = Figure([s["import"] + s["first"] for s in searches])
        total = Figure([c + s["import"] + s["first"] for c, s in zip(clone_times, searches, strict=True)])
        what = "from the repository as written" if not label else "from a server-like copy (repack -adb)"
        print(f"fresh clone {what} (git clone --no-local): {Figure(clone_times)}; then import gitexp + first "
              f"filtered search in the clone: {search}; clone to first result: {total}")
        out.update({f"{label}clone": Figure(clone_times).to_json(),
                    f"{label}clone_import_first_search": search.to_json(),
                    f"{label}clone_to_first_result": total.to_json()})
    return out


def mlflow_figures(workdir: Path, n: int, runs: list[dict], repeat: int, cold_repeat: int, handles: dict) -> dict:
    import mlflow
    from mlflow import MlflowClient

    db = workdir / f"mlflow-{n}.db"
    if db.exists():
        db.unlink()
    uri, m_exp, fill_m = fill_mlflow(db, runs)
    print(f"MLflow sqlite filled in {ms(fill_m)} (schema by SqlAlchemyStore, rows by executemany)")
    mclient = MlflowClient(uri)
    m_search, m_runs = timed(lambda: mclient.search_runs([m_exp], FILTER, order_by=ORDER), max(1, repeat // 2))
    m_broad, m_broad_runs = timed(lambda: mclient.search_runs([m_exp], BROAD_FILTER, order_by=BROAD_ORDER), 1)
    mlflow.set_tracking_uri(uri)
    started = time.perf_counter()
    m_df = mlflow.search_runs([m_exp])
    m_frame = Figure([time.perf_counter() - started])
    assert [r.info.run_id for r in m_runs] == handles["g_runs"], "different results"
    assert [r.info.run_id for r in m_broad_runs] == handles["g_broad_runs"], "different results"
    assert list(m_df["run_id"]) == handles["df_run_ids"] and sorted(m_df.columns) == handles["df_columns"]
    print(f"MLflow filtered search: {m_search}; broad search: {m_broad}; full DataFrame {m_df.shape}: {m_frame}")
    fresh_mlflow(uri, m_exp)  # warm-up: compiled bytecode in the cache
    out = {"mlflow_search": m_search.to_json(), "mlflow_broad_search": m_broad.to_json(),
           "mlflow_frame": m_frame.to_json(), "fill_mlflow_s": fill_m}
    out.update(paired_figures(workdir, handles, uri, m_exp, cold_repeat))
    return out


def paired_figures(workdir: Path, handles: dict, uri: str, m_exp: str, cold_repeat: int) -> dict:
    """Fresh-process figures of both libraries taken in alternation (gitexp, MLflow, gitexp...),
    so a machine busy with other work slows both sides of each ratio alike."""
    repo, exp = Path(handles["repo"]), handles["exp"]
    pairs: dict[str, list[tuple[float, float]]] = {"first": [], "frame": [], "clone": []}
    for _ in range(cold_repeat):
        pairs["first"].append((fresh_gitexp(repo, exp, "0")["first"], fresh_mlflow(uri, m_exp)["first"]))
    for _ in range(max(1, (cold_repeat + 1) // 2)):  # MLflow takes seconds to tens of seconds here
        pairs["frame"].append((fresh_gitexp(repo, exp, "0", "frame")["first"],
                               fresh_mlflow(uri, m_exp, "frame")["first"]))
    clone = workdir / f"{repo.name}-paired-clone"
    shutil.rmtree(clone, ignore_errors=True)
    subprocess.run(["git", "clone", "-q", "--no-local", str(repo), str(clone)], check=True,
                   env={**os.environ, **GIT_ENV}, capture_output=True)
    for _ in range(cold_repeat):
        g = fresh_gitexp(clone, exp, "clone")  # no index, no local tracking branch: as right after cloning
        m = fresh_mlflow(uri, m_exp)
        pairs["clone"].append((g["import"] + g["first"], m["import"] + m["first"]))
    shutil.rmtree(clone, ignore_errors=True)
    out = {}
    names = {"first": ("fresh_first_search", "first filtered search (index / store present)"),
             "frame": ("fresh_frame", "full DataFrame (after import and pandas)"),
             "clone": ("clone_import_first", "import + first filtered search; gitexp in a fresh clone "
                                             "(builds its index), MLflow on its store")}
    print("fresh processes, in alternation (gitexp / MLflow):")
    for key, (name, what) in names.items():
        g, m = Figure([p[0] for p in pairs[key]]), Figure([p[1] for p in pairs[key]])
        ratio = Figure([p[1] / p[0] for p in pairs[key]])
        print(f"  {what}: gitexp {g}; MLflow {m}; MLflow / gitexp {ratio.median:,.1f}x "
              f"[{ratio.times[0]:,.1f}x-{ratio.times[-1]:,.1f}x]")
        out[f"paired_{name}"] = {"gitexp": g.to_json(), "mlflow": m.to_json(), "ratio": ratio.to_json()}
    return out


def side_by_side(workdir: Path, n: int, repeat: int, cold_repeat: int, with_mlflow: bool, clone: bool) -> dict:
    runs = make_runs(n)
    out = gitexp_figures(workdir, n, repeat, cold_repeat, clone, runs)
    if with_mlflow:
        out.update(mlflow_figures(workdir, n, runs, repeat, cold_repeat, out["_handles"]))
        print_ratios(out)
    return out


def print_ratios(out: dict) -> None:
    def ratio(a: str, b: str) -> float:
        return out[a]["median"] / out[b]["median"]

    rows = [
        ("filtered search, one process (steady state)", ratio("mlflow_search", "search"), None),
        ("broad search, one process", ratio("mlflow_broad_search", "broad_search"), None),
        ("full DataFrame, one process", ratio("mlflow_frame", "frame"), None),
        ("fresh process, first filtered search (store/index present)",
         out["paired_fresh_first_search"]["ratio"]["median"], 15),
        ("fresh process, full DataFrame (after import and pandas)", out["paired_fresh_frame"]["ratio"]["median"], 25),
        ("fresh clone's import + first filtered search vs MLflow's import + first search",
         out["paired_clone_import_first"]["ratio"]["median"], 1.5),
    ]
    print("ratios (MLflow / gitexp; fresh-process ones: median of the alternating pairs):")
    for name, value, target in rows:
        verdict = "" if target is None else f"  (target >= {target:g}x: {'met' if value >= target else 'MISSED'})"
        print(f"  {name}: {value:,.1f}x{verdict}")


def fill_gitexp_more(client, exp: str, runs: list[dict], start_time: int = BASE_TIME * 2) -> None:
    from gitexp.entities import Metric, Param

    for run in runs:
        created = client.create_run(exp, start_time=start_time, run_name=run["name"], tags={"t0": run["tag"]})
        client.log_batch(created.info.run_id, params=[Param(k, v) for k, v in run["params"].items()],
                         metrics=[Metric(k, v, ts, s) for k, pts in run["metrics"].items() for s, ts, v in pts])
        client.set_terminated(created.info.run_id)
        run["run_id"] = created.info.run_id


def _du(path: Path) -> int:
    return sum(f.stat().st_size for f in path.rglob("*") if f.is_file())


TARGETS_100K = [  # (figure, limit in seconds, what)
    ("cold_build", 8.0, "cold start, first search"),
    ("search", 0.020, "filtered + ordered search"),
    ("frame", 1.0, "full DataFrame"),
    ("refresh_one_run", 0.010, "search after one more run"),
    ("clone_to_first_result", 20.0, "fresh clone to first result"),
    ("server_clone_to_first_result", 20.0, "fresh clone (of a server-like copy) to first result"),
]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=10_000, help="runs in the side-by-side comparison (0: none)")
    parser.add_argument("--scaling", default="", help="comma-separated run counts for gitexp alone, e.g. "
                        "1000,10000,100000")
    parser.add_argument("--no-mlflow", action="store_true", help="skip MLflow")
    parser.add_argument("--no-clone", action="store_true", help="skip the clone measurements")
    parser.add_argument("--repeat", type=int, default=7, help="repetitions of in-process timings")
    parser.add_argument("--cold-repeat", type=int, default=3, help="repetitions of fresh-process timings and clones")
    parser.add_argument("--workdir", help="keep the stores here and reuse them (default: a temporary directory)")
    parser.add_argument("--json", help="also write the figures to this file")
    args = parser.parse_args()
    os.environ.update(GIT_ENV)
    workdir = Path(args.workdir) if args.workdir else Path(tempfile.mkdtemp(prefix="bench-search-"))
    workdir.mkdir(parents=True, exist_ok=True)
    _PYCACHE.append(str(workdir / "pycache"))
    results: dict = {"side_by_side": None, "scaling": []}
    try:
        if args.runs:
            results["side_by_side"] = side_by_side(workdir, args.runs, args.repeat, args.cold_repeat,
                                                   not args.no_mlflow, not args.no_clone)
        for n in [int(x) for x in args.scaling.split(",") if x]:
            results["scaling"].append(gitexp_figures(workdir, n, args.repeat, args.cold_repeat, not args.no_clone))
    finally:
        if not args.workdir:
            shutil.rmtree(workdir, ignore_errors=True)
    if results["scaling"]:
        print("\n== gitexp scaling (medians)")
        columns = [("cold start", "cold_build"), ("new process", "fresh_process_first_search"),
                   ("search", "search"), ("broad", "broad_search"), ("DataFrame", "frame"),
                   ("refresh+1", "refresh_one_run"), ("clone", "clone"), ("clone→result", "clone_to_first_result"),
                   ("srv clone", "server_clone"), ("srv→result", "server_clone_to_first_result")]
        print(f"{'runs':>8} " + " ".join(f"{name:>13}" for name, _ in columns))
        for r in results["scaling"]:
            print(f"{r['runs']:>8,} " + " ".join(f"{ms(r[key]['median']) if key in r else '-':>13}"
                                                 for _, key in columns))
        for r in results["scaling"]:
            if r["runs"] == 100_000:
                print("targets at 100,000 runs:")
                for key, limit, what in TARGETS_100K:
                    if key in r:
                        value = r[key]["median"]
                        print(f"  {what}: {ms(value)} (<= {ms(limit)}: {'met' if value <= limit else 'MISSED'})")
    for r in [results["side_by_side"], *results["scaling"]]:
        if r:
            r.pop("_handles", None)
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
