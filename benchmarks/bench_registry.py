"""Model registry: gitexp (events on a git branch) side by side with MLflow (SQLite registry).

    python benchmarks/bench_registry.py [--versions 200] [--quick]

Each library runs in a fresh interpreter in its own scratch repository or
database.  Per-call times are means over the whole loop; "cold" is a fresh
process whose first registry read folds every event from git (gitexp) or opens
the database (MLflow).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import textwrap

HERE = os.path.dirname(os.path.abspath(__file__))
SRC = os.path.join(os.path.dirname(HERE), "src")
ENV = {
    **os.environ,
    "PYTHONPATH": SRC + os.pathsep + os.environ.get("PYTHONPATH", ""),
    "GIT_AUTHOR_NAME": "bench", "GIT_AUTHOR_EMAIL": "bench@example.com",
    "GIT_COMMITTER_NAME": "bench", "GIT_COMMITTER_EMAIL": "bench@example.com",
    "GIT_CONFIG_NOSYSTEM": "1", "MLFLOW_DISABLE_TELEMETRY": "true", "DO_NOT_TRACK": "true",
}

WORKLOAD = """
import json, sys, time, warnings
warnings.simplefilter("ignore")
N = int(sys.argv[1])
LIB = sys.argv[2]
if LIB == "gitexp":
    import gitexp
    client = gitexp.Client()
else:
    from mlflow import MlflowClient
    client = MlflowClient(tracking_uri=sys.argv[3], registry_uri=sys.argv[3])
out = {}
t = time.perf_counter(); client.create_registered_model("m"); out["create_model_ms"] = (time.perf_counter() - t) * 1e3
t = time.perf_counter()
for i in range(N):
    client.create_model_version("m", f"runs:/{i:032x}/model", run_id=f"{i:032x}")
out["create_version_ms"] = (time.perf_counter() - t) * 1e3 / N
t = time.perf_counter()
for i in range(1, N + 1):
    client.transition_model_version_stage("m", i, "Production" if i % 2 else "Staging", archive_existing_versions=True)
out["transition_ms"] = (time.perf_counter() - t) * 1e3 / N
t = time.perf_counter()
for i in range(1, N + 1, 10):
    client.set_registered_model_alias("m", "champion", i)
out["set_alias_ms"] = (time.perf_counter() - t) * 1e3 / len(range(1, N + 1, 10))
t = time.perf_counter()
for _ in range(100):
    latest = client.get_latest_versions("m", ["Production"])
out["get_latest_versions_ms"] = (time.perf_counter() - t) * 1e3 / 100
t = time.perf_counter()
for _ in range(20):
    found = client.search_model_versions("name = 'm' AND version_number > 10")
out["search_versions_ms"] = (time.perf_counter() - t) * 1e3 / 20
assert len(found) == N - 10
print(json.dumps(out))
"""

COLD = """
import json, sys, time, warnings
warnings.simplefilter("ignore")
t0 = time.perf_counter()
if sys.argv[1] == "gitexp":
    import gitexp
    client = gitexp.Client()
    mv = client.resolve_model_version("models:/m/Production")
else:
    from mlflow import MlflowClient
    from mlflow.store.artifact.utils.models import get_model_name_and_version
    client = MlflowClient(tracking_uri=sys.argv[2], registry_uri=sys.argv[2])
    name, version = get_model_name_and_version(client, "models:/m/Production")
    mv = client.get_model_version(name, version)
print(json.dumps({"cold_resolve_s": time.perf_counter() - t0}))
"""


def _run(code: str, args: list[str], cwd: str) -> dict:
    result = subprocess.run([sys.executable, "-c", textwrap.dedent(code), *args], cwd=cwd, env=ENV,
                            capture_output=True, text=True, timeout=3600)
    if result.returncode != 0:
        raise RuntimeError(result.stderr[-3000:])
    return json.loads(result.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--versions", type=int, default=200)
    parser.add_argument("--quick", action="store_true", help="a smoke run: 30 versions")
    args = parser.parse_args()
    n = 30 if args.quick else args.versions
    repo = tempfile.mkdtemp(prefix="gitexp-bench-registry-")
    subprocess.run(["git", "init", "-q", "-b", "main", repo], check=True, env=ENV)
    subprocess.run(["git", "commit", "-q", "--allow-empty", "-m", "init"], cwd=repo, check=True, env=ENV)
    db_dir = tempfile.mkdtemp(prefix="mlflow-bench-registry-")
    db = f"sqlite:///{db_dir}/mlflow.db"
    ours = _run(WORKLOAD, [str(n), "gitexp"], repo)
    ours.update(_run(COLD, ["gitexp"], repo))
    theirs = _run(WORKLOAD, [str(n), "mlflow", db], db_dir)
    theirs.update(_run(COLD, ["mlflow", db], db_dir))
    events = subprocess.run(["git", "ls-tree", "-r", "--name-only", "gitexp", ".tracking/registry"], cwd=repo,
                            capture_output=True, text=True).stdout.count("\n")
    print(f"### Model registry, {n} versions ({events} event files)\n")
    print(f"Machine: {os.cpu_count()} cores, Python {platform.python_version()}\n")
    print("| workload | gitexp | MLflow (sqlite) | MLflow / gitexp |\n|---|---:|---:|---:|")
    for key in ours:
        unit = "s" if key.endswith("_s") else "ms"
        print(f"| {key.rsplit('_', 1)[0]} | {ours[key]:.3f} {unit} | {theirs[key]:.3f} {unit} | "
              f"{theirs[key] / ours[key]:.2f}x |")


if __name__ == "__main__":
    main()
