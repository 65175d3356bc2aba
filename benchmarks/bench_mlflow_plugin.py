"""The real mlflow package against gitexp: the same MLflow script on four backends.

    python benchmarks/bench_mlflow_plugin.py [--runs 100] [--repeats 3] [--quick] [--profile FILE]

The script is a sweep of `--runs` runs; each run logs 5 params, 3 metrics x 50 steps (one
``mlflow.log_metric`` call per metric and step, or in the ``log_metrics`` variant one call per
step), a tag and a small artifact; then one ``search_runs`` with a filter and one
``get_metric_history``.  Backends:

* ``gitexp:``          the real mlflow with the gitexp plugin, in-process (a scratch repository);
* ``sqlite``           the real mlflow with its SQL store (``sqlite:///``, artifacts in ./mlruns);
* ``gitexp server``    the real mlflow over HTTP to ``gitexp server`` (a real process, loopback);
* ``import gitexp``    the reference: the same script with ``import gitexp as mlflow``.

Every (backend, variant, repeat) runs in a fresh interpreter with its own scratch repository or
database, so first-call costs are in the figures; ``import mlflow`` itself is not (it is timed
on its own).  Reported: the median of the repeats, the range in brackets, and the ratio to
sqlite (each repeat against the sqlite run of the same repeat, then the median).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import statistics
import sys
import tempfile

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from _harness import _versions, run_workload, scratch_repo
from bench_server import Server

BACKENDS = ("gitexp:", "sqlite", "gitexp server", "import gitexp")

# One MLflow script; BACKEND, URI, RUNS, STEPS, BATCHED, PROFILE are filled in.
SCRIPT = r'''
import json, os, statistics, sys, tempfile, time
BACKEND, URI, RUNS, STEPS, BATCHED, PROFILE = {args}
t_import = time.perf_counter()
if BACKEND == "import gitexp":
    import gitexp as mlflow
    from gitexp import MlflowClient
else:
    import mlflow
    from mlflow import MlflowClient
t_import = time.perf_counter() - t_import

def sweep():
    calls = []
    started = time.perf_counter()
    if URI:
        mlflow.set_tracking_uri(URI)
    mlflow.set_experiment("sweep")
    note = os.path.join(tempfile.mkdtemp(), "config.txt")
    first_run = None
    for r in range(RUNS):
        with mlflow.start_run(run_name=f"trial-{{r}}") as run:
            first_run = first_run or run.info.run_id
            mlflow.log_params({{"lr": 10 ** -(r % 5), "depth": r % 7, "width": 32 * (r % 4 + 1),
                               "opt": "adam" if r % 2 else "sgd", "seed": r}})
            for step in range(STEPS):
                values = {{"loss": 1 / (step + 1 + r), "acc": step / STEPS, "lr_now": 0.1 / (step + 1)}}
                if BATCHED:
                    t = time.perf_counter()
                    mlflow.log_metrics(values, step=step)
                    calls.append(time.perf_counter() - t)
                else:
                    for key, value in values.items():
                        t = time.perf_counter()
                        mlflow.log_metric(key, value, step=step)
                        calls.append(time.perf_counter() - t)
            mlflow.set_tag("sweep", "a")
            with open(note, "w") as fh:
                fh.write(f"trial {{r}}\n")
            mlflow.log_artifact(note)
    wall = time.perf_counter() - started
    exp = mlflow.get_experiment_by_name("sweep").experiment_id
    query = "params.opt = 'adam' and metrics.loss < 0.02"
    searches = []
    for _ in range(5):
        t = time.perf_counter()
        found = mlflow.search_runs([exp], filter_string=query)
        searches.append(time.perf_counter() - t)
    expected = sum(1 for r in range(RUNS) if r % 2 and 1 / (STEPS + r) < 0.02)
    assert len(found) == expected, (len(found), expected)
    client = MlflowClient()
    histories = []
    for _ in range(5):
        t = time.perf_counter()
        history = client.get_metric_history(first_run, "loss")
        histories.append(time.perf_counter() - t)
    assert len(history) == STEPS, len(history)
    return {{"import": t_import, "wall": wall, "call": statistics.median(calls), "call_mean": sum(calls) / len(calls),
            "calls": len(calls), "search_first": searches[0], "search": statistics.median(searches[1:]),
            "history": statistics.median(histories[1:])}}

if PROFILE:
    import cProfile
    profiler = cProfile.Profile()
    out = profiler.runcall(sweep)
    profiler.dump_stats(PROFILE)
else:
    out = sweep()
print(json.dumps(out))
'''


def one(backend: str, runs: int, steps: int, batched: bool, profile: str = "") -> dict:
    """The script on `backend` in a fresh interpreter, in a fresh repository or database."""
    scratch = tempfile.mkdtemp(prefix="bench-mlflow-plugin-")
    server = None
    try:
        if backend == "sqlite":
            cwd, uri = scratch, f"sqlite:///{scratch}/mlflow.db"
        elif backend == "gitexp:":
            cwd = scratch_repo()
            uri = "gitexp:///" + cwd.lstrip("/")
        elif backend == "gitexp server":
            server = Server("gitexp")
            cwd, uri = scratch, f"http://127.0.0.1:{server.port}"
        else:
            cwd, uri = scratch_repo(), ""
        args = repr((backend, uri, runs, steps, batched, profile))
        return run_workload(SCRIPT.format(args=args), cwd=cwd)
    finally:
        if server is not None:
            server.stop()
        shutil.rmtree(scratch, ignore_errors=True)
        if backend in ("gitexp:", "import gitexp"):
            shutil.rmtree(cwd, ignore_errors=True)


def _fmt(seconds: float) -> str:
    if seconds >= 1:
        return f"{seconds:.1f} s" if seconds >= 10 else f"{seconds:.2f} s"
    if seconds >= 1e-3:
        return f"{seconds * 1e3:.2f} ms" if seconds < 0.1 else f"{seconds * 1e3:.0f} ms"
    return f"{seconds * 1e6:.0f} µs"


def table(title: str, results: dict[str, list[dict]]) -> str:
    metrics = [("sweep wall time", "wall"), ("per call (median)", "call"),
               ("search_runs with a filter (warm, median of 4)", "search"),
               ("search_runs, first call", "search_first"), ("get_metric_history (warm)", "history")]
    lines = [f"#### {title}", "", "| | " + " | ".join(BACKENDS) + " |", "|---|" + "---:|" * len(BACKENDS)]
    base = results["sqlite"]
    for label, key in metrics:
        cells = []
        for backend in BACKENDS:
            values = [r[key] for r in results[backend]]
            cell = f"{_fmt(statistics.median(values))}"
            if len(values) > 1:
                cell += f" ({_fmt(min(values))}–{_fmt(max(values))})"
            if backend != "sqlite":
                ratio = statistics.median(r[key] / b[key] for r, b in zip(results[backend], base, strict=True))
                cell += f", **{ratio:.2g}x**" if ratio < 10 else f", **{ratio:.0f}x**"
            cells.append(cell)
        lines.append(f"| {label} | " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=100)
    parser.add_argument("--steps", type=int, default=50)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--quick", action="store_true", help="a smoke run: 10 runs, once")
    parser.add_argument("--profile", metavar="FILE", help="cProfile one gitexp: sweep into FILE and stop")
    args = parser.parse_args()
    if args.quick:
        args.runs, args.repeats = 10, 1
    if args.profile:
        one("gitexp:", args.runs, args.steps, False, os.path.abspath(args.profile))
        print(f"profile of one gitexp: sweep in {args.profile}")
        return
    header = (f"Machine: {os.cpu_count()} cores, Python {platform.python_version()}, {_versions()}; "
              f"{args.runs} runs x (5 params, 3 metrics x {args.steps} steps, a tag, an artifact), "
              f"{args.repeats} repeat(s): median (range), **ratio to sqlite** (time / sqlite's; below 1 is faster)")
    print(header + "\n", flush=True)
    raw: dict[str, dict[str, list[dict]]] = {}
    for variant, batched in (("log_metric per metric and step", False), ("log_metrics per step", True)):
        results: dict[str, list[dict]] = {b: [] for b in BACKENDS}
        for repeat in range(args.repeats):
            for backend in BACKENDS:
                out = one(backend, args.runs, args.steps, batched)
                results[backend].append(out)
                print(f"  {variant} #{repeat + 1} {backend}: sweep {out['wall']:.2f} s, "
                      f"call {out['call'] * 1e3:.3f} ms, search {out['search'] * 1e3:.1f} ms", flush=True)
        raw[variant] = results
        print(table(f"{variant} ({results['sqlite'][0]['calls'] // args.runs} calls per run)", results), flush=True)
    imports = {b: statistics.median(r["import"] for r in raw[next(iter(raw))][b]) for b in BACKENDS}
    print("import (median): " + ", ".join(f"{b} {_fmt(t)}" for b, t in imports.items()))
    print(json.dumps(raw))


if __name__ == "__main__":
    main()
