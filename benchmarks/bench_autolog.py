"""Autologging: what an autologged fit costs, gitexp (git branch) side by side with MLflow (sqlite).

    python benchmarks/bench_autolog.py [--quick]

Each library runs in a fresh interpreter in its own scratch repository or
database.  Times are medians per training call, after one warm-up call (imports,
first commit); "overhead" is the median difference between an autologged
call and the same call with autologging off, alternated in one process.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from _harness import Row, report, run_workload, scratch_repo

WORKLOAD = """
import json, sys, time, warnings
warnings.simplefilter("ignore")
import logging; logging.disable(logging.WARNING)
N = {n}
LIB = "{lib}"
import numpy as np
import xgboost as xgb
from sklearn.datasets import load_wine
from sklearn.ensemble import RandomForestClassifier
from sklearn.linear_model import LinearRegression
from sklearn.model_selection import GridSearchCV
if LIB == "gitexp":
    import gitexp as tracker
else:
    import mlflow as tracker
    tracker.set_tracking_uri("{uri}")
X, y = load_wine(return_X_y=True)
rng = np.random.default_rng(0)
Xr = rng.random((2000, 10)); yr = Xr @ rng.random(10)
workloads = {{
    "LinearRegression fit": lambda: LinearRegression().fit(Xr, yr),
    "RandomForestClassifier fit (wine)": lambda: RandomForestClassifier(n_estimators=20, random_state=0).fit(X, y),
    "GridSearchCV, 8 candidates": lambda: GridSearchCV(LinearRegression(), {{"fit_intercept": [True, False],
        "positive": [True, False], "copy_X": [True, False]}}, cv=3).fit(Xr, yr),
    "xgb.train, 100 rounds, evals": lambda: xgb.train({{"max_depth": 3, "nthread": 1}},
        xgb.DMatrix(Xr[:1500], label=yr[:1500]), 100,
        evals=[(xgb.DMatrix(Xr[1500:], label=yr[1500:]), "validation")], verbose_eval=False),
}}

if LIB == "gitexp":
    from gitexp._autolog import disable_autologging
else:
    from mlflow.utils.autologging_utils import disable_autologging

def median(values):
    values = sorted(values)
    return values[len(values) // 2]

out = {{}}
t = time.perf_counter()
tracker.sklearn.autolog(max_tuning_runs=None)
tracker.xgboost.autolog()
out["autolog() calls"] = time.perf_counter() - t
for name, fn in workloads.items():
    fn()  # warm-up: first commit, lazy imports
    plain, logged = [], []
    for _ in range(N):  # alternate, so load from other processes hits both alike
        with disable_autologging():
            t = time.perf_counter(); fn(); plain.append(time.perf_counter() - t)
        t = time.perf_counter(); fn(); logged.append(time.perf_counter() - t)
    out[name] = median(logged)
    out[name + " overhead"] = median([a - b for a, b in zip(logged, plain)])
if LIB == "gitexp":
    tracker.flush()
print(json.dumps(out))
"""


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="3 timed calls per workload instead of 7")
    args = parser.parse_args()
    n = 3 if args.quick else 7
    ours = run_workload(WORKLOAD.format(n=n, lib="gitexp", uri=""), scratch_repo())
    db = tempfile.mkdtemp(prefix="mlflow-bench-")
    theirs = run_workload(WORKLOAD.format(n=n, lib="mlflow", uri=f"sqlite:///{db}/mlflow.db"), db)
    rows = [Row(name, ours[name], theirs[name], "s") for name in ours]
    report("Autologging (per training call; models, plots and datasets logged)", rows)


if __name__ == "__main__":
    main()
