"""Web UI benchmark: HTTP time of the runs table and of a 100,000-point metric chart.

    python benchmarks/bench_ui.py                     # 10,000 and 100,000 runs; MLflow at 10,000
    python benchmarks/bench_ui.py --runs 10000 --no-mlflow
    python benchmarks/bench_ui.py --quick             # 10,000 runs only

gitexp: `gitexp ui` (uvicorn) on loopback, timed with httpx from another process:
the whole response of the runs table's first page (the HTML page, 100 runs,
rendered on the server), sorted by a metric, filtered, the second page (via its
page token), and the chart data of a metric with 100,000 points (downsampled to
at most ~2,000 on the server), cold (first request) and warm, plus a zoom.

MLflow (sqlite, `mlflow server`, when installed): the requests its own web UI
makes for the same views -- POST ajax-api/2.0/mlflow/runs/search with
max_results=100 (its table is then rendered in the browser), and
ajax-api/2.0/mlflow/metrics/get-history-bulk-interval for the chart.  Both
stores hold the same runs (benchmarks/bench_search.py fills them: gitexp through
its real write path, 1,000 runs a commit; MLflow by bulk inserts).

Times are medians of --repeat requests after one warm-up request.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
SRC = HERE.parent / "src"
sys.path.insert(0, str(SRC))
sys.path.insert(0, str(HERE))

import bench_search  # noqa: E402  (the shared way to fill both stores with identical runs)

CHART_POINTS = 100_000
ENV = {**os.environ, **bench_search.GIT_ENV, "PYTHONPATH": str(SRC), "MLFLOW_DISABLE_TELEMETRY": "true",
       "DO_NOT_TRACK": "true"}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_until_up(url: str, process: subprocess.Popen, timeout: float = 300) -> None:
    import httpx

    deadline = time.time() + timeout
    while time.time() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"server exited: {process.stdout.read().decode(errors='replace')[-2000:]}")
        try:
            httpx.get(url, timeout=60)
            return
        except httpx.TransportError:
            time.sleep(0.3)
    raise RuntimeError(f"{url} did not come up")


def timed_get(client, url: str, repeat: int, **kwargs) -> tuple[float, object]:
    response = client.get(url, **kwargs)  # warm-up
    response.raise_for_status()
    times = []
    for _ in range(repeat):
        started = time.perf_counter()
        response = client.get(url, **kwargs)
        times.append(time.perf_counter() - started)
        response.raise_for_status()
    return statistics.median(times), response


def timed_post(client, url: str, repeat: int, body: dict) -> tuple[float, object]:
    client.post(url, json=body).raise_for_status()
    times = []
    for _ in range(repeat):
        started = time.perf_counter()
        response = client.post(url, json=body)
        times.append(time.perf_counter() - started)
        response.raise_for_status()
    return statistics.median(times), response


def chart_values(n: int) -> list[tuple[int, int, float]]:
    return [(s, 1_700_000_000_000 + s * 10, math.exp(-s / 20_000) + 0.05 * math.sin(s / 50)) for s in range(n)]


def add_chart_run_gitexp(repo: Path) -> str:
    import gitexp
    from gitexp.entities import Metric

    client = gitexp.Client(str(repo))
    exp = client.create_experiment("long-chart")
    run = client.create_run(exp, run_name="long")
    points = [Metric("loss", v, ts, s) for s, ts, v in chart_values(CHART_POINTS)]
    for first in range(0, len(points), 10_000):
        client.log_batch(run.info.run_id, metrics=points[first:first + 10_000])
    client.set_terminated(run.info.run_id)
    return run.info.run_id


def add_chart_run_mlflow(db: Path, run_id: str, exp: str) -> None:
    import sqlite3

    conn = sqlite3.connect(db)
    conn.execute(
        "INSERT INTO runs (run_uuid, name, source_type, source_name, entry_point_name, user_id, status, start_time, "
        "end_time, source_version, lifecycle_stage, artifact_uri, experiment_id) "
        "VALUES (?, 'long', 'UNKNOWN', '', '', 'bench', 'FINISHED', 1, 2, '', 'active', '', ?)", (run_id, int(exp)))
    rows = [("loss", v, ts, run_id, s) for s, ts, v in chart_values(CHART_POINTS)]
    conn.executemany("INSERT INTO metrics (key, value, timestamp, run_uuid, step, is_nan) VALUES (?, ?, ?, ?, ?, 0)",
                     rows)
    last = rows[-1]
    conn.execute("INSERT INTO latest_metrics (key, value, timestamp, step, is_nan, run_uuid) VALUES (?, ?, ?, ?, 0, ?)",
                 (last[0], last[1], last[2], last[4], run_id))
    conn.commit()
    conn.close()


def bench_gitexp(repo: Path, exp: str, chart_run: str, repeat: int) -> dict:
    import httpx

    port = free_port()
    process = subprocess.Popen([sys.executable, "-m", "gitexp", "--repo", str(repo), "ui", "--port", str(port)],
                               env=ENV, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    base = f"http://127.0.0.1:{port}"
    out: dict = {}
    try:
        wait_until_up(base + "/ui-static/ui.css", process)
        with httpx.Client(base_url=base, timeout=600) as http:
            started = time.perf_counter()
            http.get(f"/experiments/{exp}").raise_for_status()
            out["first_page_cold_index_s"] = time.perf_counter() - started
            out["first_page_s"], page = timed_get(http, f"/experiments/{exp}", repeat)
            assert page.text.count("<tr data-run-id=") == 100
            out["sorted_page_s"], _ = timed_get(http, f"/experiments/{exp}", repeat,
                                                params={"order": "metrics.m1 DESC"})
            out["filtered_page_s"], _ = timed_get(http, f"/experiments/{exp}", repeat,
                                                  params={"filter": bench_search.FILTER})
            link = page.text.split('id="next-page"')[0].rsplit('href="', 1)[1].split('"', 1)[0]
            out["second_page_s"], _ = timed_get(http, link.replace("&amp;", "&"), repeat)
            api = f"/ui-api/runs/{chart_run}/metric"
            started = time.perf_counter()
            cold = http.get(api, params={"key": "loss"})
            out["chart_cold_s"] = time.perf_counter() - started
            data = cold.json()
            assert data["total"] == CHART_POINTS and data["shown"] <= 2004, data.get("message")
            out["chart_points_shown"] = data["shown"]
            out["chart_warm_s"], _ = timed_get(http, api, repeat, params={"key": "loss"})
            out["chart_zoom_s"], zoom = timed_get(http, api, repeat,
                                                  params={"key": "loss", "xmin": 40_000, "xmax": 60_000})
            out["chart_zoom_points"] = zoom.json()["shown"]
            out["chart_smoothed_s"], _ = timed_get(http, api, repeat, params={"key": "loss", "smoothing": 0.9})
            out["run_page_s"], _ = timed_get(http, f"/runs/{chart_run}", repeat)
    finally:
        process.terminate()
        process.wait(timeout=30)
    return out


def bench_mlflow(db: Path, exp: str, chart_run: str, repeat: int) -> dict:
    import httpx

    port = free_port()
    process = subprocess.Popen([sys.executable, "-m", "mlflow", "server", "--backend-store-uri", f"sqlite:///{db}",
                                "--host", "127.0.0.1", "--port", str(port), "--workers", "1"],
                               env=ENV, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, cwd=db.parent)
    base = f"http://127.0.0.1:{port}"
    out: dict = {}
    try:
        wait_until_up(base + "/health", process)
        with httpx.Client(base_url=base, timeout=600) as http:
            search = "/ajax-api/2.0/mlflow/runs/search"
            body = {"experiment_ids": [exp], "max_results": 100, "order_by": ["attributes.start_time DESC"],
                    "run_view_type": "ACTIVE_ONLY"}
            out["first_page_s"], page = timed_post(http, search, repeat, body)
            assert len(page.json()["runs"]) == 100
            out["sorted_page_s"], _ = timed_post(http, search, repeat, {**body, "order_by": ["metrics.m1 DESC"]})
            out["filtered_page_s"], _ = timed_post(http, search, repeat, {**body, "filter": bench_search.FILTER})
            out["second_page_s"], _ = timed_post(http, search, repeat,
                                                 {**body, "page_token": page.json()["next_page_token"]})
            api = "/ajax-api/2.0/mlflow/metrics/get-history-bulk-interval"
            params = {"run_ids": chart_run, "metric_key": "loss", "max_results": 2000}
            started = time.perf_counter()
            first = http.get(api, params=params)
            out["chart_cold_s"] = time.perf_counter() - started
            first.raise_for_status()
            out["chart_points_shown"] = len(first.json()["metrics"])
            out["chart_warm_s"], _ = timed_get(http, api, repeat, params=params)
            out["chart_zoom_s"], _ = timed_get(http, api, repeat,
                                               params={**params, "start_step": 40_000, "end_step": 60_000})
    finally:
        process.terminate()
        process.wait(timeout=30)
    return out


def ms(seconds: float | None) -> str:
    if seconds is None:
        return "--"
    return f"{seconds * 1000:,.1f} ms" if seconds < 10 else f"{seconds:,.1f} s"


def run(workdir: Path, n: int, repeat: int, with_mlflow: bool) -> dict:
    runs = bench_search.make_runs(n)
    repo = workdir / f"gitexp-{n}"
    exp, fill = bench_search.fill_gitexp(repo, runs)
    chart_run = add_chart_run_gitexp(repo)
    import gitexp

    gitexp.fluent._reset()
    gitexp.client.forget_stores()
    print(f"\n== {n:,} runs (+1 run with a {CHART_POINTS:,}-point metric); gitexp branch written in {ms(fill)}",
          flush=True)
    result = {"runs": n, "gitexp": bench_gitexp(repo, exp, chart_run, repeat)}
    if with_mlflow:
        db = workdir / f"mlflow-{n}.db"
        _uri, m_exp, _fill = bench_search.fill_mlflow(db, runs)
        add_chart_run_mlflow(db, chart_run, m_exp)
        result["mlflow"] = bench_mlflow(db, m_exp, chart_run, repeat)
    g, m = result["gitexp"], result.get("mlflow", {})
    rows = [
        ("runs table, first page (100 runs)", "first_page_s"),
        ("... sorted by a metric", "sorted_page_s"),
        ("... filtered (3 clauses)", "filtered_page_s"),
        ("... second page (page token)", "second_page_s"),
        (f"{CHART_POINTS:,}-point metric chart, first request", "chart_cold_s"),
        ("... again (cached arrays)", "chart_warm_s"),
        ("... zoomed to 20,000 steps", "chart_zoom_s"),
        ("... with smoothing 0.9", "chart_smoothed_s"),
        ("run page (HTML) of that run", "run_page_s"),
    ]
    print(f"{'':44} {'gitexp':>12} {'MLflow':>12}")
    for label, key in rows:
        print(f"{label:44} {ms(g.get(key)):>12} {ms(m.get(key)) if m else '':>12}")
    print(f"first page with the index built from scratch (new repository state): {ms(g['first_page_cold_index_s'])}")
    print(f"chart points sent: gitexp {g['chart_points_shown']:,} (zoomed: {g['chart_zoom_points']:,})"
          + (f", MLflow {m['chart_points_shown']:,}" if m else ""))
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", default="10000,100000", help="comma-separated run counts")
    parser.add_argument("--mlflow-runs", type=int, default=10_000,
                        help="compare with `mlflow server` at this run count (0: never)")
    parser.add_argument("--no-mlflow", action="store_true")
    parser.add_argument("--quick", action="store_true", help="10,000 runs only")
    parser.add_argument("--repeat", type=int, default=7)
    parser.add_argument("--workdir", help="keep the stores here (default: a temporary directory)")
    parser.add_argument("--json", help="also write the figures to this file")
    args, _unknown = parser.parse_known_args()  # run_all.py passes every benchmark the same flags
    os.environ.update(bench_search.GIT_ENV)
    counts = [10_000] if args.quick else [int(x) for x in args.runs.split(",") if x]
    try:
        import mlflow  # noqa: F401
        have_mlflow = True
    except ImportError:
        have_mlflow = False
    workdir = Path(args.workdir) if args.workdir else Path(tempfile.mkdtemp(prefix="bench-ui-"))
    workdir.mkdir(parents=True, exist_ok=True)
    results = []
    try:
        for n in counts:
            with_mlflow = have_mlflow and not args.no_mlflow and n == args.mlflow_runs
            results.append(run(workdir, n, args.repeat, with_mlflow))
    finally:
        if not args.workdir:
            shutil.rmtree(workdir, ignore_errors=True)
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
