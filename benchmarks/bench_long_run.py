"""Long runs: one run, 10 metrics, every step logged, 200,000 and 2,000,000 points.

    python benchmarks/bench_long_run.py                       # 200k and 2M points, 3 repeats
    python benchmarks/bench_long_run.py --points 200000 --repeat 5
    python benchmarks/bench_long_run.py --quick               # smoke run, a few seconds
    python benchmarks/bench_long_run.py --json long.json      # also write every figure

Time is compressed honestly: the run logs as fast as it can, and makes exactly
as many checkpoints as a run logging 500 points/s with the default 5 s
checkpoint interval would, i.e. one every 2,500 points. The checkpoints are
driven from the logging loop (`store.checkpoint(run_id)`, or `store.flush(run_id)`
on code that predates checkpoints) with the background checkpoint thread
disabled (GITEXP_CHECKPOINT_INTERVAL=1000000), so their number is exact and
their cost is measured separately from `log_metric`'s.

Each scale runs in fresh processes, in a fresh git repository:
  1. the logging process (import gitexp as mlflow; start_run; log_metric per
     point; checkpoint every 2,500 points; end_run) reports /proc/self/io
     (which on Linux includes the I/O of the child processes it has reaped,
     i.e. git repack; their share of write_bytes is shown from
     getrusage(RUSAGE_CHILDREN).ru_oublock), peak RSS, checkpoint times,
     log_metric cost per call (per 2,500-point block, checkpoints excluded),
     and end_run time;
  2. the parent measures `.git` growth (du, no gc) and the commits the run
     added to the branch;
  3. a fresh reading process times get_metric_history for each metric and
     checks every point read back against what was logged (count, step,
     exact value including NaN and +-inf, timestamp inside the run).
The same run goes through MLflow (sqlite backend, MlflowClient.log_batch with
the 10 metrics of one step per call). MLflow takes milliseconds per call, so it
logs for at most --mlflow-seconds; the rest of its figures are extrapolated
from the measured part and labelled so. The remaining rows are then inserted
with plain SQL (same encoding MLflow uses) so that its database size and
get_metric_history are measured at full size, also labelled.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import random
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from _harness import ENV

HERE = os.path.abspath(__file__)
CHECKPOINT_EVERY = 2_500           # points: 500 points/s x the default 5 s interval
SHARED_EVERY = 12                  # format 2: every 12th checkpoint lands on the branch
N_METRICS = 10
STEPS_PER_BLOCK = CHECKPOINT_EVERY // N_METRICS
MLFLOW_BLOCK = 25                  # steps per timed block of MLflow's log_batch calls
KEYS = ["train/loss", "val/loss", "train/accuracy", "val/accuracy", "grad_norm",
        "lr", "train/perplexity", "val/f1", "throughput", "weight_norm"]
SEED = 20240611

TARGETS = {
    "wchar_per_point": 150.0,         # bytes
    "write_bytes_per_point": 150.0,   # bytes
    "git_growth_per_point": 30.0,     # bytes (du of .git, no gc)
    "peak_rss_mb": 150.0,
    "last_over_first_checkpoint": 2.0,
    "log_metric_us": 10.0,
    "history_total_s": 1.5,
    "flat_ratio": 1.25,               # per-point bytes and peak RSS, largest vs smallest scale
}

CHILD_ENV = {
    **ENV,
    "GIT_CONFIG_GLOBAL": "/dev/null",
    "GITEXP_CAPTURE_CODE": "0",
    "GITEXP_CHECKPOINT_INTERVAL": "1000000",
    "PYTHONHASHSEED": "0",
}


# -- the values: a noisy training run, identical in the writer and the reader ---------------------
class Series:
    """Per-step values of the 10 metrics, from random.Random(seed); includes NaN, inf and -inf."""

    def __init__(self, seed: int, total_steps: int):
        self.rng = random.Random(seed)
        self.total = total_steps
        self.shape = [(self.rng.uniform(0.5, 3.0), total_steps * self.rng.uniform(0.05, 0.4),
                       self.rng.uniform(0.01, 0.3), self.rng.uniform(0.005, 0.05)) for _ in KEYS]
        self.special = {
            (total_steps // 3, KEYS.index("grad_norm")): float("nan"),
            (total_steps // 2, KEYS.index("grad_norm")): float("inf"),
            ((2 * total_steps) // 3, KEYS.index("train/loss")): float("-inf"),
            (total_steps - 1, KEYS.index("val/f1")): float("nan"),
        }

    def step(self, step: int) -> list[float]:
        gauss = self.rng.gauss
        out = []
        for k, (amp, tau, floor, noise) in enumerate(self.shape):
            decay = floor + amp * math.exp(-step / tau)
            value = decay * (1.0 + noise * gauss(0.0, 1.0))
            if k in (2, 3, 7):                       # accuracies rise towards 1
                value = 1.0 - min(decay, 1.0) * (1.0 + noise * gauss(0.0, 1.0)) / 1.5
            elif k == 5:                             # cosine learning-rate schedule
                value = 3e-4 * 0.5 * (1.0 + math.cos(math.pi * step / self.total))
            out.append(value)
        for (s, k), value in self.special.items():
            if s == step:
                out[k] = value
        return out


def same(a: float, b: float) -> bool:
    return a == b or (math.isnan(a) and math.isnan(b))


def proc_io() -> dict[str, int]:
    with open("/proc/self/io") as fh:
        return {k: int(v) for k, v in (line.split(": ") for line in fh)}


def children_write_bytes() -> int:
    """write_bytes of reaped child processes (git repack, ...): ru_oublock is in 512-byte blocks."""
    return resource.getrusage(resource.RUSAGE_CHILDREN).ru_oublock * 512


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def disk_usage(path: str) -> dict[str, int]:
    """du (allocated blocks) and apparent size of a directory tree, in bytes."""
    used = apparent = files = 0
    for root, _dirs, names in os.walk(path):
        for name in names:
            try:
                st = os.lstat(os.path.join(root, name))
            except FileNotFoundError:
                continue
            used += st.st_blocks * 512
            apparent += st.st_size
            files += 1
    return {"du": used, "apparent": apparent, "files": files}


def rev_count(repo: str, ref: str = "gitexp") -> int:
    out = subprocess.run(["git", "rev-list", "--count", ref], cwd=repo, env=CHILD_ENV,
                         capture_output=True, text=True, check=False)
    return int(out.stdout) if out.returncode == 0 else 0


def _delta(after: dict, before: dict) -> dict:
    return {k: after[k] - before.get(k, 0) for k in after}


def _progress(msg: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


# -- children -----------------------------------------------------------------------------------------
def child_gitexp_log(points: int, seed: int) -> dict:
    import gitexp as mlflow

    steps = points // N_METRICS
    mlflow.set_experiment("long-run")
    client = mlflow.MlflowClient()
    store = client._store
    checkpoint = getattr(store, "checkpoint", None)
    used = "checkpoint" if checkpoint is not None else "flush"
    checkpoint = checkpoint or store.flush
    repo = os.getcwd()
    before = {"commits": rev_count(repo), "git": disk_usage(".git")}
    series = Series(seed, steps)
    log_metric = mlflow.log_metric
    rss_start = peak_rss_mb()
    io0, kids0 = proc_io(), children_write_bytes()
    t_start = time.time_ns() // 1_000_000
    wall0 = time.perf_counter()
    run = mlflow.start_run()
    run_id = run.info.run_id
    block_s: list[float] = []
    checkpoint_s: list[float] = []
    perf = time.perf_counter
    for first in range(0, steps, STEPS_PER_BLOCK):
        block = [(s, series.step(s)) for s in range(first, first + STEPS_PER_BLOCK)]
        t0 = perf()
        for step, values in block:
            for key, value in zip(KEYS, values, strict=False):
                log_metric(key, value, step=step)
        t1 = perf()
        checkpoint(run_id)
        t2 = perf()
        block_s.append(t1 - t0)
        checkpoint_s.append(t2 - t1)
        if len(checkpoint_s) % 100 == 0:
            _progress(f"gitexp {points:,}: {len(checkpoint_s) * CHECKPOINT_EVERY:,} points, "
                      f"last checkpoint {checkpoint_s[-1] * 1e3:.1f} ms, peak RSS {peak_rss_mb():.0f} MB")
    t3 = perf()
    mlflow.end_run()
    end_run_s = perf() - t3
    wall = perf() - wall0
    t_end = time.time_ns() // 1_000_000
    io = _delta(proc_io(), io0)
    kids = children_write_bytes() - kids0
    per_call_us = sorted(b / CHECKPOINT_EVERY * 1e6 for b in block_s)
    return {
        "run_id": run_id, "checkpoint_fn": used, "points": points, "steps": steps,
        "checkpoints": len(checkpoint_s), "t_start_ms": t_start, "t_end_ms": t_end,
        "before": before, "io": io, "children_write_bytes": kids,
        "peak_rss_mb": peak_rss_mb(), "rss_before_logging_mb": rss_start,
        "checkpoint_ms": [c * 1e3 for c in checkpoint_s],
        "log_metric_us_median": statistics.median(per_call_us),
        "log_metric_us_p10": per_call_us[len(per_call_us) // 10],
        "log_metric_us_p90": per_call_us[(len(per_call_us) * 9) // 10],
        "logging_s": sum(block_s), "checkpoint_total_s": sum(checkpoint_s),
        "end_run_s": end_run_s, "wall_s": wall,
    }


def _verify(histories: dict[str, list[tuple[int, float, int]]], seed: int, steps: int,
            t_start: int, t_end: int) -> dict:
    """Compare (step, value, timestamp) read back with the values the writer logged."""
    series = Series(seed, steps)
    problems: list[str] = []
    for key in KEYS:
        if len(histories[key]) != steps:
            problems.append(f"{key}: {len(histories[key])} points read back, {steps} logged")
    checked = mismatches = 0
    for step in range(steps):
        values = series.step(step)
        for key, value in zip(KEYS, values, strict=False):
            hist = histories[key]
            if step >= len(hist):
                continue
            s, v, ts = hist[step]
            checked += 1
            if s != step or not same(v, value) or not (t_start <= ts <= t_end):
                mismatches += 1
                if len(problems) < 20:
                    problems.append(f"{key} step {step}: read ({s}, {v!r}, {ts}), "
                                    f"logged ({step}, {value!r}, within [{t_start}, {t_end}])")
    special = sorted(f"{KEYS[k]}@{s}={v}" for (s, k), v in series.special.items())
    return {"points_checked": checked, "mismatches": mismatches, "ok": not problems, "problems": problems,
            "special": special}


def _time_histories(get_metric_history, run_id: str) -> dict:
    """Time get_metric_history for each metric; keep the points as compact arrays (so the
    reading process's peak RSS is the library's, not this harness's), in step order."""
    from array import array

    per_key, histories = {}, {}
    iterate = 0.0
    for key in KEYS:
        t = time.perf_counter()
        hist = get_metric_history(run_id, key)
        per_key[key] = time.perf_counter() - t
        # Every point as a Metric entity: MLflow returns a list of them, gitexp a MetricHistory
        # that makes them as they are read; this is what a caller that looks at every point pays.
        t = time.perf_counter()
        steps, values, stamps = array("q"), array("d"), array("q")
        for m in hist:
            steps.append(m.step)
            values.append(m.value)
            stamps.append(m.timestamp)
        iterate += time.perf_counter() - t
        histories[key] = (steps, values, stamps)
        del hist
    rss = peak_rss_mb()
    return {"history_s": per_key, "history_total_s": sum(per_key.values()),
            "history_iterated_s": sum(per_key.values()) + iterate, "read_peak_rss_mb": rss,
            "histories": {k: sorted(zip(*cols, strict=False), key=lambda p: (p[0], p[2]))
                          for k, cols in histories.items()}}


def child_gitexp_read(run_id: str, seed: int, steps: int, t_start: int, t_end: int) -> dict:
    import gitexp as mlflow

    out = _time_histories(mlflow.MlflowClient().get_metric_history, run_id)
    out["verify"] = _verify(out.pop("histories"), seed, steps, t_start, t_end)
    return out


def child_mlflow_log(points: int, seed: int, seconds: float) -> dict:
    import mlflow
    from mlflow import MlflowClient
    from mlflow.entities import Metric

    steps = points // N_METRICS
    mlflow.set_tracking_uri("sqlite:///" + os.path.abspath("mlflow.db"))
    client = MlflowClient()
    experiment_id = client.create_experiment("long-run")
    run = client.create_run(experiment_id)
    run_id = run.info.run_id
    series = Series(seed, steps)
    before = disk_usage(".")
    rss_start = peak_rss_mb()
    io0 = proc_io()
    t_start = time.time_ns() // 1_000_000
    block_s = []
    perf = time.perf_counter
    wall0 = perf()
    logged_steps = 0
    # Blocks of 25 steps (250 points): at milliseconds a call, a finer clock on the time bound.
    for first in range(0, steps, MLFLOW_BLOCK):
        block = [(s, series.step(s)) for s in range(first, first + MLFLOW_BLOCK)]
        t0 = perf()
        for step, values in block:
            ts = time.time_ns() // 1_000_000
            client.log_batch(run_id, metrics=[Metric(k, v, ts, step) for k, v in zip(KEYS, values, strict=False)])
        block_s.append(perf() - t0)
        logged_steps = first + MLFLOW_BLOCK
        if perf() - wall0 >= seconds:
            break
    logging_s = perf() - wall0
    io = _delta(proc_io(), io0)
    after_api = disk_usage(".")
    rss_api = peak_rss_mb()
    t_api_end = time.time_ns() // 1_000_000
    # The rest of the run, inserted with plain SQL in MLflow's encoding (NaN -> 0 + is_nan,
    # +-inf -> +-1.797e308), so the database and reads can be measured at full size.
    fill_s = 0.0
    if logged_steps < steps:
        import sqlite3

        t = perf()
        db = sqlite3.connect("mlflow.db")
        ts = t_api_end
        rows = []
        for step in range(logged_steps, steps):
            for key, value in zip(KEYS, series.step(step), strict=False):
                if math.isnan(value):
                    rows.append((key, 0.0, ts, run_id, step, 1))
                else:
                    clamped = max(min(value, 1.7976931348623157e308), -1.7976931348623157e308)
                    rows.append((key, clamped, ts, run_id, step, 0))
            if len(rows) >= 100_000:
                db.executemany("INSERT INTO metrics (key, value, timestamp, run_uuid, step, is_nan) "
                               "VALUES (?, ?, ?, ?, ?, ?)", rows)
                rows = []
        if rows:
            db.executemany("INSERT INTO metrics (key, value, timestamp, run_uuid, step, is_nan) "
                           "VALUES (?, ?, ?, ?, ?, ?)", rows)
        db.commit()
        db.close()
        fill_s = perf() - t
    client.set_terminated(run_id)
    per_step_ms = sorted(b / MLFLOW_BLOCK * 1e3 for b in block_s)
    return {
        "run_id": run_id, "points": points, "steps": steps, "logged_steps": logged_steps,
        "logged_points": logged_steps * N_METRICS, "t_start_ms": t_start, "t_end_ms": time.time_ns() // 1_000_000,
        "io": io, "db_before": before, "db_after_api": after_api, "db_after_fill": disk_usage("."),
        "peak_rss_mb": rss_api, "rss_before_logging_mb": rss_start,
        "log_batch_ms_median": statistics.median(per_step_ms),
        "log_batch_ms_first_block": block_s[0] / MLFLOW_BLOCK * 1e3,
        "log_batch_ms_last_block": block_s[-1] / MLFLOW_BLOCK * 1e3,
        "logging_s": logging_s, "fill_s": fill_s,
    }


def child_mlflow_read(run_id: str, seed: int, steps: int, t_start: int, t_end: int) -> dict:
    import mlflow
    from mlflow import MlflowClient

    mlflow.set_tracking_uri("sqlite:///" + os.path.abspath("mlflow.db"))
    out = _time_histories(MlflowClient().get_metric_history, run_id)
    out["verify"] = _verify(out.pop("histories"), seed, steps, t_start, t_end)
    return out


CHILDREN = {"gitexp-log": child_gitexp_log, "gitexp-read": child_gitexp_read,
            "mlflow-log": child_mlflow_log, "mlflow-read": child_mlflow_read}


def run_child(name: str, cwd: str, **kwargs) -> dict:
    """One workload in a fresh interpreter; its progress goes to stderr, its result is stdout's last line."""
    cmd = [sys.executable, HERE, "--child", name, "--child-args", json.dumps(kwargs)]
    result = subprocess.run(cmd, cwd=cwd, env=CHILD_ENV, stdout=subprocess.PIPE, text=True, check=False)
    if result.returncode != 0:
        raise RuntimeError(f"{name} failed with exit code {result.returncode} (its stderr is above)")
    return json.loads(result.stdout.strip().splitlines()[-1])


def fresh_repo() -> str:
    path = tempfile.mkdtemp(prefix="gitexp-long-")
    subprocess.run(["git", "init", "-q", "-b", "main", path], check=True, env=CHILD_ENV)
    with open(os.path.join(path, "train.py"), "w") as f:
        f.write("print('train')\n")
    subprocess.run(["git", "add", "train.py"], cwd=path, check=True, env=CHILD_ENV)
    subprocess.run(["git", "commit", "-q", "-m", "init"], cwd=path, check=True, env=CHILD_ENV)
    return path


# -- one scale ----------------------------------------------------------------------------------------
def measure_gitexp(points: int, seed: int) -> dict:
    repo = fresh_repo()
    try:
        log = run_child("gitexp-log", repo, points=points, seed=seed)
        after_git = disk_usage(os.path.join(repo, ".git"))
        log["commits_by_run"] = rev_count(repo) - log["before"]["commits"]
        log["git_growth"] = {k: after_git[k] - log["before"]["git"][k] for k in after_git}
        log["git_after"] = after_git
        read = run_child("gitexp-read", repo, run_id=log["run_id"], seed=seed, steps=log["steps"],
                         t_start=log["t_start_ms"], t_end=log["t_end_ms"])
        return {**log, **read}
    finally:
        shutil.rmtree(repo, ignore_errors=True)


def measure_mlflow(points: int, seed: int, seconds: float) -> dict:
    path = tempfile.mkdtemp(prefix="mlflow-long-")
    try:
        log = run_child("mlflow-log", path, points=points, seed=seed, seconds=seconds)
        read = run_child("mlflow-read", path, run_id=log["run_id"], seed=seed, steps=log["steps"],
                         t_start=log["t_start_ms"], t_end=log["t_end_ms"])
        return {**log, **read}
    finally:
        shutil.rmtree(path, ignore_errors=True)


def summarize_gitexp(r: dict) -> dict:
    """The reported figures of one gitexp repeat."""
    n = r["points"]
    ck = r["checkpoint_ms"]
    write_bytes = r["io"]["write_bytes"]  # /proc/self/io already includes reaped children
    return {
        "wchar_per_point": r["io"]["wchar"] / n,
        "write_bytes_per_point": write_bytes / n,
        "wchar_MB": r["io"]["wchar"] / 1e6,
        "write_bytes_MB": write_bytes / 1e6,
        "git_children_write_bytes_MB": r["children_write_bytes"] / 1e6,
        "own_write_bytes_per_point": (write_bytes - r["children_write_bytes"]) / n,
        "cancelled_write_bytes_MB": r["io"].get("cancelled_write_bytes", 0) / 1e6,
        "git_growth_MB": r["git_growth"]["du"] / 1e6,
        "git_growth_per_point": r["git_growth"]["du"] / n,
        "git_growth_apparent_per_point": r["git_growth"]["apparent"] / n,
        "git_files_added": r["git_growth"]["files"],
        "peak_rss_mb": r["peak_rss_mb"],
        "rss_before_logging_mb": r["rss_before_logging_mb"],
        "first_checkpoint_ms": ck[0],
        "last_checkpoint_ms": ck[-1],
        "median_checkpoint_ms": statistics.median(ck),
        "max_checkpoint_ms": max(ck),
        "last_over_first_checkpoint": ck[-1] / ck[0],
        # Single checkpoints are noisy on a shared machine: the medians of the first and last tenth.
        "first_tenth_checkpoint_ms": statistics.median(ck[:max(1, len(ck) // 10)]),
        "last_tenth_checkpoint_ms": statistics.median(ck[-max(1, len(ck) // 10):]),
        "checkpoints": len(ck),
        "commits_by_run": r["commits_by_run"],
        "commits_allowed": len(ck) // SHARED_EVERY + 1,
        "log_metric_us": r["log_metric_us_median"],
        "log_metric_us_p10": r["log_metric_us_p10"],
        "log_metric_us_p90": r["log_metric_us_p90"],
        "history_total_s": r["history_total_s"],
        "history_iterated_s": r["history_iterated_s"],
        "history_first_s": r["history_s"][KEYS[0]],
        "history_rest_median_s": statistics.median(list(r["history_s"].values())[1:]),
        "read_peak_rss_mb": r["read_peak_rss_mb"],
        "end_run_s": r["end_run_s"],
        "logging_s": r["logging_s"],
        "checkpoint_total_s": r["checkpoint_total_s"],
        "wall_s": r["wall_s"],
        "points_per_s": n / r["wall_s"],
        "verified": r["verify"]["ok"],
    }


def summarize_mlflow(r: dict) -> dict:
    logged = r["logged_points"]
    n = r["points"]
    db_api = r["db_after_api"]["du"] - r["db_before"]["du"]
    db_full = r["db_after_fill"]["du"] - r["db_before"]["du"]
    per_step = r["log_batch_ms_median"] / 1e3
    return {
        "logged_points": logged,
        "extrapolated": logged < n,
        "wchar_per_point": r["io"]["wchar"] / logged,
        "write_bytes_per_point": r["io"]["write_bytes"] / logged,
        "wchar_MB_measured": r["io"]["wchar"] / 1e6,
        "write_bytes_MB_measured": r["io"]["write_bytes"] / 1e6,
        "wchar_MB_extrapolated": r["io"]["wchar"] / logged * n / 1e6,
        "write_bytes_MB_extrapolated": r["io"]["write_bytes"] / logged * n / 1e6,
        "db_growth_per_point_api": db_api / logged,
        "db_growth_MB_full": db_full / 1e6,
        "db_growth_per_point_full": db_full / n,
        "peak_rss_mb": r["peak_rss_mb"],
        "rss_before_logging_mb": r["rss_before_logging_mb"],
        "log_batch_ms": r["log_batch_ms_median"],
        "log_batch_ms_first_block": r["log_batch_ms_first_block"],
        "log_batch_ms_last_block": r["log_batch_ms_last_block"],
        "per_point_us": r["log_batch_ms_median"] * 1e3 / N_METRICS,
        "logging_s_measured": r["logging_s"],
        "logging_s_extrapolated": per_step * r["steps"],
        "points_per_s": logged / r["logging_s"],
        "fill_s": r["fill_s"],
        "history_total_s": r["history_total_s"],
        "history_iterated_s": r["history_iterated_s"],
        "read_peak_rss_mb": r["read_peak_rss_mb"],
        "verified": r["verify"]["ok"],
        "verify_problems": r["verify"]["problems"][:4],
        "verify_mismatches": r["verify"]["mismatches"],
        "verify_checked": r["verify"]["points_checked"],
    }


# -- reporting ----------------------------------------------------------------------------------------
def med(rows: list[dict], key: str) -> tuple[float, float, float]:
    values = [r[key] for r in rows]
    return statistics.median(values), min(values), max(values)


def fmt(value: float, digits: int = 3) -> str:
    if value == 0 or 0.01 <= abs(value) < 1e6:
        return f"{value:,.{digits}g}" if abs(value) < 1000 else f"{value:,.0f}"
    return f"{value:.2e}"


def cell(rows: list[dict], key: str) -> str:
    m, lo, hi = med(rows, key)
    if len(rows) == 1 or lo == hi:
        return fmt(m)
    return f"{fmt(m)} [{fmt(lo)}–{fmt(hi)}]"


def verdict(ok: bool) -> str:
    return "PASS" if ok else "FAIL"


def gitexp_table(points: int, rows: list[dict]) -> list[str]:
    m = {k: med(rows, k)[0] for k in rows[0] if isinstance(rows[0][k], (int, float))}
    n = m["checkpoints"]
    lines = [(f"#### gitexp, {points:,} points ({len(rows)} repeat(s): median [min–max]); "
              f"{int(n)} checkpoints via store.{rows[0]['checkpoint_fn']}()"), "",
             "| figure | measured | target | verdict |", "|---|---:|---|---|"]

    def add(label: str, key: str, target: str = "", ok: bool | None = None, unit: str = "") -> None:
        lines.append(f"| {label} | {cell(rows, key)}{unit} | {target} | {'' if ok is None else verdict(ok)} |")

    T = TARGETS
    add("bytes written, wchar (logging process, incl. the git processes it reaped)", "wchar_MB", unit=" MB")
    add("  per point", "wchar_per_point", f"≤ {T['wchar_per_point']:g} B",
        m["wchar_per_point"] <= T["wchar_per_point"], " B")
    add("bytes written, write_bytes (likewise)", "write_bytes_MB", unit=" MB")
    add("  per point", "write_bytes_per_point", f"≤ {T['write_bytes_per_point']:g} B",
        m["write_bytes_per_point"] <= T["write_bytes_per_point"], " B")
    add("  of which by git processes (repack...)", "git_children_write_bytes_MB", unit=" MB")
    add("  per point, without the git processes", "own_write_bytes_per_point", unit=" B")
    add("  cancelled_write_bytes (truncated before writeback)", "cancelled_write_bytes_MB", unit=" MB")
    add(".git growth, du, no gc", "git_growth_MB", unit=" MB")
    add("  per point", "git_growth_per_point", f"≤ {T['git_growth_per_point']:g} B",
        m["git_growth_per_point"] <= T["git_growth_per_point"], " B")
    add("  per point, apparent size", "git_growth_apparent_per_point", unit=" B")
    add("peak RSS of the logging process", "peak_rss_mb", f"< {T['peak_rss_mb']:g} MB",
        m["peak_rss_mb"] < T["peak_rss_mb"], " MB")
    add("  RSS before logging (after import, set_experiment)", "rss_before_logging_mb", unit=" MB")
    add("first checkpoint", "first_checkpoint_ms", unit=" ms")
    add("last checkpoint", "last_checkpoint_ms", "≤ 2x first", None, " ms")
    add("  last / first", "last_over_first_checkpoint", f"≤ {T['last_over_first_checkpoint']:g}",
        m["last_over_first_checkpoint"] <= T["last_over_first_checkpoint"], "x")
    add("  median of the first tenth of checkpoints", "first_tenth_checkpoint_ms", unit=" ms")
    add("  median of the last tenth of checkpoints", "last_tenth_checkpoint_ms", unit=" ms")
    add("median checkpoint", "median_checkpoint_ms", unit=" ms")
    add("slowest checkpoint", "max_checkpoint_ms", unit=" ms")
    allowed = int(m["commits_allowed"])
    add("commits on the branch made by the run", "commits_by_run",
        f"≤ {allowed} ({int(n)}/{SHARED_EVERY} + final)", m["commits_by_run"] <= allowed)
    add("log_metric per call (median of 2,500-call blocks)", "log_metric_us",
        f"≤ {T['log_metric_us']:g} µs", m["log_metric_us"] <= T["log_metric_us"], " µs")
    add("  p10 / p90 of blocks", "log_metric_us_p90", unit=f" µs (p10 {fmt(m['log_metric_us_p10'])})")
    add("get_metric_history, 10 metrics, fresh process", "history_total_s",
        f"≤ {T['history_total_s']:g} s", m["history_total_s"] <= T["history_total_s"], " s")
    add("  and every point read as a Metric entity", "history_iterated_s", unit=" s")
    add("  first metric (includes opening the run)", "history_first_s", unit=" s")
    add("  each further metric, median", "history_rest_median_s", unit=" s")
    add("  peak RSS of the reading process", "read_peak_rss_mb", unit=" MB")
    add("end_run", "end_run_s", unit=" s")
    add("logging wall time (log_metric + checkpoints + end_run)", "wall_s", unit=" s")
    add("  of which checkpoints", "checkpoint_total_s", unit=" s")
    add("  throughput", "points_per_s", unit=" points/s")
    lines.append(f"| every point read back exactly (count, step, value incl. NaN/±inf, timestamp) | "
                 f"{sum(r['verified'] for r in rows)}/{len(rows)} repeats | all | "
                 f"{verdict(all(r['verified'] for r in rows))} |")
    return lines


def comparison_table(points: int, g: list[dict], ml: dict) -> list[str]:
    gm = {k: med(g, k)[0] for k in g[0] if isinstance(g[0][k], (int, float))}
    ext = ml["extrapolated"]
    tag = f" (extrapolated from {ml['logged_points']:,} logged)" if ext else ""
    fill = f" (API part + SQL fill to {points:,})" if ext else ""
    rows = [
        ("logging cost per step (10 points)", gm["log_metric_us"] * N_METRICS / 1e3, ml["log_batch_ms"], "ms", ""),
        ("logging cost per point", gm["log_metric_us"], ml["per_point_us"], "µs", ""),
        ("logging wall time, whole run", gm["wall_s"],
         ml["logging_s_extrapolated"] if ext else ml["logging_s_measured"], "s", tag),
        ("bytes written (wchar) per point", gm["wchar_per_point"], ml["wchar_per_point"], "B", ""),
        ("bytes written (write_bytes) per point", gm["write_bytes_per_point"], ml["write_bytes_per_point"], "B", ""),
        ("bytes written (write_bytes), whole run", gm["write_bytes_MB"],
         ml["write_bytes_MB_extrapolated"] if ext else ml["write_bytes_MB_measured"], "MB", tag),
        ("storage growth (.git du / db dir du)", gm["git_growth_MB"], ml["db_growth_MB_full"], "MB", fill),
        ("storage growth per point", gm["git_growth_per_point"], ml["db_growth_per_point_full"], "B", fill),
        ("peak RSS while logging", gm["peak_rss_mb"], ml["peak_rss_mb"], "MB",
         f" (MLflow at {ml['logged_points']:,} points)" if ext else ""),
        ("get_metric_history, 10 metrics, fresh process", gm["history_total_s"], ml["history_total_s"], "s", fill),
        ("  and every point read as a Metric", gm["history_iterated_s"], ml["history_iterated_s"], "s", fill),
        ("peak RSS while reading", gm["read_peak_rss_mb"], ml["read_peak_rss_mb"], "MB", fill),
    ]
    lines = [f"#### gitexp vs MLflow {_mlflow_version()} (sqlite), {points:,} points", "",
             "| figure | gitexp | MLflow (sqlite) | MLflow / gitexp | MLflow figure is |",
             "|---|---:|---:|---:|---|"]
    for label, gv, mv, unit, note in rows:
        ratio = mv / gv if gv else float("inf")
        lines.append(f"| {label} | {fmt(gv)} {unit} | {fmt(mv)} {unit} | {ratio:,.1f}x | "
                     f"{note.strip(' ()') or 'measured'} |")
    lines.append(f"| every point read back exactly | {'yes' if all(r['verified'] for r in g) else 'NO'} | "
                 f"{'yes' if ml['verified'] else _mismatch_note(ml)} | | |")
    lines.append("")
    lines.append(f"MLflow logged {ml['logged_points']:,} points through log_batch in "
                 f"{ml['logging_s_measured']:.1f} s (per step: first block {ml['log_batch_ms_first_block']:.2f} ms, "
                 f"last block {ml['log_batch_ms_last_block']:.2f} ms, median {ml['log_batch_ms']:.2f} ms)"
                 + (f"; the remaining {points - ml['logged_points']:,} were inserted with SQL in "
                    f"{ml['fill_s']:.1f} s." if ext else "."))
    return lines


def _mismatch_note(ml: dict) -> str:
    first = ml["verify_problems"][0] if ml["verify_problems"] else ""
    return (f"no: {ml['verify_mismatches']:,} of {ml['verify_checked']:,} points differ"
            + (f", e.g. {first.split(', within')[0]})" if first else ""))


def _mlflow_version() -> str:
    try:
        import importlib.metadata as md
        return md.version("mlflow")
    except md.PackageNotFoundError:
        return "?"


def _code_version() -> str:
    root = os.path.dirname(os.path.dirname(HERE))
    out = subprocess.run(["git", "log", "-1", "--format=%h %s"], cwd=root, capture_output=True, text=True,
                         check=False)
    return out.stdout.strip()[:90] or f"{root} (not a git checkout)"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--points", default="200000,2000000",
                        help="comma-separated totals (multiples of 2,500); default 200000,2000000")
    parser.add_argument("--repeat", type=int, default=3, help="gitexp repeats per scale (median and range)")
    parser.add_argument("--mlflow-seconds", type=float, default=120.0,
                        help="MLflow logs at most this long per scale; the rest is extrapolated (0: skip MLflow)")
    parser.add_argument("--seed", type=int, default=SEED)
    parser.add_argument("--quick", action="store_true", help="30,000 points, 1 repeat, MLflow for 3 s")
    parser.add_argument("--json", metavar="FILE", help="write every figure (and the raw per-repeat data) here")
    parser.add_argument("--child", help=argparse.SUPPRESS)
    parser.add_argument("--child-args", help=argparse.SUPPRESS)
    args = parser.parse_args()

    if args.child:
        print(json.dumps(CHILDREN[args.child](**json.loads(args.child_args))), flush=True)
        return 0

    if args.quick:
        args.points, args.repeat, args.mlflow_seconds = "30000", 1, min(args.mlflow_seconds, 3.0)
    scales = [int(p.replace("_", "")) for p in args.points.split(",") if p.strip()]
    for p in scales:
        if p <= 0 or p % CHECKPOINT_EVERY:
            parser.error(f"--points: {p} is not a positive multiple of {CHECKPOINT_EVERY}")

    git = subprocess.run(["git", "--version"], capture_output=True, text=True, check=False).stdout.split()[-1]
    header = (f"Machine: {os.cpu_count()} cores (shared), Python {platform.python_version()}, git {git}, "
              f"MLflow {_mlflow_version()}; gitexp at: {_code_version()}; "
              f"load average at start {os.getloadavg()[0]:.1f}")
    out: dict = {"header": header, "targets": TARGETS, "scales": {}}
    text = ["### Long runs: one run, 10 metrics, every step", "", header, ""]
    failed_verify = False
    for points in scales:
        raw, rows = [], []
        for i in range(args.repeat):
            _progress(f"gitexp {points:,} points, repeat {i + 1}/{args.repeat}")
            r = measure_gitexp(points, args.seed + i)
            raw.append(r)
            rows.append({**summarize_gitexp(r), "checkpoint_fn": r["checkpoint_fn"]})
            if not r["verify"]["ok"]:
                failed_verify = True
                _progress("gitexp read-back MISMATCH: " + "; ".join(r["verify"]["problems"][:5]))
        ml_raw = ml = None
        if args.mlflow_seconds > 0:
            _progress(f"MLflow {points:,} points, at most {args.mlflow_seconds:g} s of logging")
            ml_raw = measure_mlflow(points, args.seed, args.mlflow_seconds)
            ml = summarize_mlflow(ml_raw)
        section = gitexp_table(points, rows) + [""]
        if ml is not None:
            section += comparison_table(points, rows, ml) + [""]
        print("\n".join(section), flush=True)
        text += section
        out["scales"][str(points)] = {"gitexp": rows, "mlflow": ml,
                                      "raw": {"gitexp": raw, "mlflow": ml_raw}}

    if len(scales) > 1:
        lo, hi = str(min(scales)), str(max(scales))
        a, b = out["scales"][lo]["gitexp"], out["scales"][hi]["gitexp"]
        lines = [f"#### Scaling, {int(lo):,} → {int(hi):,} points (medians)", "",
                 "| figure | small | large | large / small | target | verdict |", "|---|---:|---:|---:|---|---|"]
        flat = TARGETS["flat_ratio"]
        for label, key in (("wchar per point", "wchar_per_point"), ("write_bytes per point", "write_bytes_per_point"),
                           ("  write_bytes per point without git repack", "own_write_bytes_per_point"),
                           (".git growth per point", "git_growth_per_point"), ("peak RSS (MB)", "peak_rss_mb"),
                           ("median checkpoint (ms)", "median_checkpoint_ms"), ("log_metric (µs)", "log_metric_us")):
            x, y = med(a, key)[0], med(b, key)[0]
            target = f"≤ {flat:g}x (flat)" if key in ("wchar_per_point", "write_bytes_per_point",
                                                       "peak_rss_mb") else ""
            ok = verdict(y / x <= flat) if target else ""
            lines.append(f"| {label} | {fmt(x)} | {fmt(y)} | {y / x:.2f}x | {target} | {ok} |")
        print("\n".join(lines) + "\n", flush=True)
        text += lines + [""]
    text.append(f"Load average at the end: {os.getloadavg()[0]:.1f} (1 min), {os.getloadavg()[1]:.1f} (5 min).")
    print(text[-1], flush=True)
    out["markdown"] = "\n".join(text)
    if args.json:
        with open(args.json, "w") as fh:
            json.dump(out, fh, indent=1, default=str)
    if failed_verify:
        print("FAILED: points read back differ from the points logged (see above)", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
