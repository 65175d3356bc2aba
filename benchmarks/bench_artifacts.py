"""Artifacts and models: gitexp vs MLflow (sqlite backend, local artifact store), side by side.

    python benchmarks/bench_artifacts.py            # 3 repetitions, median
    python benchmarks/bench_artifacts.py --repeat 1

Each workload runs in a fresh interpreter in a fresh scratch git repository
(gitexp) or directory with an sqlite database (MLflow); the same code runs for
both, `lib` being `gitexp` or `mlflow`.  Times exclude the import.

Workloads:
  * 100 small files (1 KiB) logged with 100 log_artifact calls in one run, run end included;
  * one log_artifacts call for a directory of 100 small files, run end included;
  * sklearn log_model of a small RandomForest with an input example, cloudpickle (MLflow 3.17's
    default, skops, refuses RandomForest without skops_trusted_types); MLflow infers pip
    requirements by loading the model in a subprocess, gitexp pins the flavor's packages;
  * the same with pip_requirements given (no inference for either);
  * pyfunc load_model of that model by runs:/ URI, then one predict.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import textwrap

sys.path.insert(0, os.path.dirname(__file__))
from _harness import ENV, scratch_repo

ENV = {**ENV, "PYTHONWARNINGS": "ignore"}


SETUP = {
    "gitexp": "import gitexp as lib\nimport gitexp.sklearn, gitexp.pyfunc\n",
    "mlflow": ("import mlflow as lib\nimport mlflow.sklearn, mlflow.pyfunc\n"
               "lib.set_tracking_uri('sqlite:///' + os.path.abspath('mlflow.db'))\n"
               "import logging; logging.getLogger('mlflow').setLevel(logging.ERROR)\n"),
}

PREPARE = """
import json, os, time, warnings
warnings.filterwarnings("ignore")
os.makedirs("files", exist_ok=True)
for i in range(100):
    with open(f"files/f{i:03d}.txt", "wb") as fh:
        fh.write(os.urandom(1024))
"""

WORKLOADS = {
    "log_artifact x100 (1 KiB files)": """
lib.set_experiment("bench")
t = time.perf_counter()
with lib.start_run():
    for i in range(100):
        lib.log_artifact(f"files/f{i:03d}.txt", artifact_path="many")
print(json.dumps({"seconds": time.perf_counter() - t}))
""",
    "log_artifacts (dir of 100 files)": """
lib.set_experiment("bench")
t = time.perf_counter()
with lib.start_run():
    lib.log_artifacts("files", artifact_path="dir")
print(json.dumps({"seconds": time.perf_counter() - t}))
""",
    "sklearn log_model (requirements inferred)": """
import numpy as np, pandas as pd
from sklearn.ensemble import RandomForestRegressor
X = pd.DataFrame({"a": np.arange(200.0), "b": np.arange(200) % 7}); y = X.a * 2
model = RandomForestRegressor(n_estimators=10, max_depth=4, random_state=0).fit(X, y)
lib.set_experiment("bench")
t = time.perf_counter()
with lib.start_run():
    lib.sklearn.log_model(model, name="model", input_example=X.head(5), serialization_format="cloudpickle")
print(json.dumps({"seconds": time.perf_counter() - t}))
""",
    "sklearn log_model (pip_requirements given)": """
import numpy as np, pandas as pd
from sklearn.ensemble import RandomForestRegressor
X = pd.DataFrame({"a": np.arange(200.0), "b": np.arange(200) % 7}); y = X.a * 2
model = RandomForestRegressor(n_estimators=10, max_depth=4, random_state=0).fit(X, y)
lib.set_experiment("bench")
t = time.perf_counter()
with lib.start_run():
    lib.sklearn.log_model(model, name="model", input_example=X.head(5), pip_requirements=["scikit-learn"],
                          serialization_format="cloudpickle")
print(json.dumps({"seconds": time.perf_counter() - t}))
""",
    "pyfunc load_model + predict": """
import numpy as np, pandas as pd
from sklearn.ensemble import RandomForestRegressor
X = pd.DataFrame({"a": np.arange(200.0), "b": np.arange(200) % 7}); y = X.a * 2
model = RandomForestRegressor(n_estimators=10, max_depth=4, random_state=0).fit(X, y)
lib.set_experiment("bench")
with lib.start_run() as run:
    lib.sklearn.log_model(model, name="model", input_example=X.head(5), pip_requirements=["scikit-learn"],
                          serialization_format="cloudpickle")
t = time.perf_counter()
loaded = lib.pyfunc.load_model(f"runs:/{run.info.run_id}/model")
loaded.predict(X.head(10))
print(json.dumps({"seconds": time.perf_counter() - t}))
""",
}


def run(lib: str, body: str) -> float:
    code = "import os\n" + SETUP[lib] + PREPARE + textwrap.dedent(body)
    result = subprocess.run([sys.executable, "-c", code], cwd=scratch_repo(f"bench-{lib}-"), env=ENV,
                            capture_output=True,
                            text=True, timeout=900)
    if result.returncode != 0:
        raise RuntimeError(f"{lib} workload failed:\n{result.stderr[-3000:]}")
    return json.loads(result.stdout.strip().splitlines()[-1])["seconds"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    from importlib import metadata

    lines = ["### Artifacts and models", "",
             f"Machine: {os.cpu_count()} cores, Python {platform.python_version()}, "
             f"mlflow {metadata.version('mlflow')}, scikit-learn {metadata.version('scikit-learn')}; "
             f"median of {args.repeat} fresh processes.", "",
             "| workload | gitexp | MLflow (sqlite + local artifacts) | MLflow / gitexp |", "|---|---:|---:|---:|"]
    for name, body in WORKLOADS.items():
        ours = statistics.median(run("gitexp", body) for _ in range(args.repeat))
        theirs = statistics.median(run("mlflow", body) for _ in range(args.repeat))
        lines.append(f"| {name} | {ours * 1000:.0f} ms | {theirs * 1000:.0f} ms | {theirs / ours:.1f}x |")
        print(lines[-1], flush=True)
    print("\n".join(lines))


if __name__ == "__main__":
    main()
