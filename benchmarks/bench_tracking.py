"""Logging: gitexp vs MLflow (sqlite backend), side by side, same code, fresh processes.

    python benchmarks/bench_tracking.py            # the issue's workloads
    python benchmarks/bench_tracking.py --quick    # smaller MLflow samples (for a smoke run)

Workloads (identical code for both, `lib` is `gitexp` or `mlflow`):
  * per-call latency of log_metric inside an active run;
  * 100 runs, each with 10 params (one log_params call) and 5 metrics x 20 steps
    (one log_metric call per value), as tutorials log them;
  * `import lib` in a fresh interpreter (median of 5).
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys

sys.path.insert(0, os.path.dirname(__file__))
from _harness import Row, report, run_workload, scratch_repo

SETUP = {
    "gitexp": "import gitexp as lib\n",
    "mlflow": "import mlflow as lib\nlib.set_tracking_uri('sqlite:///' + os.path.abspath('mlflow.db'))\n",
}

LOG_METRIC = """
import json, os, time
{setup}
lib.set_experiment("bench")
with lib.start_run():
    for i in range(20):
        lib.log_metric("warmup", i, step=i)
    t = time.perf_counter()
    for i in range({n}):
        lib.log_metric("loss", 1.0 / (i + 1), step=i)
    elapsed = time.perf_counter() - t
print(json.dumps({{"per_call": elapsed / {n}}}))
"""

HUNDRED_RUNS = """
import json, os, time
{setup}
t = time.perf_counter()
lib.set_experiment("bench")
for r in range({runs}):
    with lib.start_run():
        lib.log_params({{f"param_{{i}}": r * 10 + i for i in range(10)}})
        for step in range(20):
            for k in range(5):
                lib.log_metric(f"metric_{{k}}", 1.0 / (1 + step + k + r), step=step)
elapsed = time.perf_counter() - t
print(json.dumps({{"seconds": elapsed}}))
"""

IMPORT = """
import json, time
t = time.perf_counter()
import {lib}
print(json.dumps({{"seconds": time.perf_counter() - t}}))
"""


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="fewer MLflow runs and calls (ratios stay valid)")
    args = parser.parse_args()
    mlflow_calls = 100 if args.quick else 500
    mlflow_runs = 10 if args.quick else 100
    rows = []

    per_call = {}
    for lib, n in (("gitexp", 50_000), ("mlflow", mlflow_calls)):
        per_call[lib] = run_workload(LOG_METRIC.format(setup=SETUP[lib], n=n), scratch_repo())["per_call"]
    rows.append(Row("log_metric, per call", per_call["gitexp"] * 1e6, per_call["mlflow"] * 1e6, "us", 200))

    seconds = {}
    for lib, runs in (("gitexp", 100), ("mlflow", mlflow_runs)):
        # Scaled to 100 runs when --quick measured fewer MLflow runs (its cost per run is flat).
        seconds[lib] = run_workload(HUNDRED_RUNS.format(setup=SETUP[lib], runs=runs), scratch_repo())["seconds"] \
            * (100 / runs)
    label = "100 runs x (10 params, 5 metrics x 20 steps)" + (" [MLflow extrapolated from 10]" if args.quick else "")
    rows.append(Row(label, seconds["gitexp"], seconds["mlflow"], "s", 10))

    imports = {}
    for lib in ("gitexp", "mlflow"):
        samples = [run_workload(IMPORT.format(lib=lib), scratch_repo())["seconds"] for _ in range(5)]
        imports[lib] = statistics.median(samples)
    rows.append(Row("import (median of 5 fresh interpreters)", imports["gitexp"], imports["mlflow"], "s", 6))

    report("Tracking: logging and import", rows)


if __name__ == "__main__":
    main()
