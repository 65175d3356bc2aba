"""Shared benchmark plumbing: run workloads in fresh interpreters, print ratios.

Every workload runs in its own Python process, in its own scratch git
repository (gitexp) or sqlite database (MLflow), so neither library's imports,
caches or background threads affect the other's numbers.
"""

from __future__ import annotations

import json
import os
import platform
import subprocess
import sys
import tempfile
import textwrap
from dataclasses import dataclass

ENV = {
    **os.environ,
    "GIT_AUTHOR_NAME": "bench", "GIT_AUTHOR_EMAIL": "bench@example.com",
    "GIT_COMMITTER_NAME": "bench", "GIT_COMMITTER_EMAIL": "bench@example.com",
    "GIT_CONFIG_NOSYSTEM": "1",
    # MLflow: no telemetry, no tracing, no prompts.
    "MLFLOW_DISABLE_TELEMETRY": "true", "DO_NOT_TRACK": "true",
}
# Workloads import this checkout's gitexp even when it is not installed.
ENV["PYTHONPATH"] = os.pathsep.join([os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "src"),
                                     ENV.get("PYTHONPATH", "")])


def scratch_repo(prefix: str = "gitexp-bench-") -> str:
    path = tempfile.mkdtemp(prefix=prefix)
    subprocess.run(["git", "init", "-q", "-b", "main", path], check=True, env=ENV)
    with open(os.path.join(path, "train.py"), "w") as f:
        f.write("print('train')\n")
    subprocess.run(["git", "add", "train.py"], cwd=path, check=True, env=ENV)
    subprocess.run(["git", "commit", "-q", "-m", "init"], cwd=path, check=True, env=ENV)
    return path


def run_workload(code: str, cwd: str, timeout: float = 3600) -> dict:
    """Run `code` in a fresh interpreter; it must print one JSON object last."""
    result = subprocess.run([sys.executable, "-c", textwrap.dedent(code)], cwd=cwd, env=ENV,
                            capture_output=True, text=True, timeout=timeout)
    if result.returncode != 0:
        raise RuntimeError(f"workload failed:\n{result.stderr[-3000:]}")
    return json.loads(result.stdout.strip().splitlines()[-1])


@dataclass
class Row:
    name: str
    gitexp: float
    mlflow: float
    unit: str
    target: float | None = None

    @property
    def ratio(self) -> float:
        return self.mlflow / self.gitexp if self.gitexp else float("inf")


def _fmt(value: float, unit: str) -> str:
    if unit == "s":
        return f"{value:.3f} s" if value < 10 else f"{value:.1f} s"
    if unit == "ms":
        return f"{value:.3f} ms" if value < 1 else f"{value:.2f} ms"
    if unit == "us":
        return f"{value:.2f} µs"
    return f"{value:g} {unit}"


def report(title: str, rows: list[Row]) -> str:
    """Print and return a Markdown table of the rows with ratios and targets."""
    lines = [f"### {title}", "",
             f"Machine: {os.cpu_count()} cores, Python {platform.python_version()}, "
             f"{_versions()}", "",
             "| workload | gitexp | MLflow (sqlite) | MLflow / gitexp | target |",
             "|---|---:|---:|---:|---|"]
    for r in rows:
        target = "" if r.target is None else (f"≥ {r.target:g}x " + ("met" if r.ratio >= r.target else "MISSED"))
        lines.append(f"| {r.name} | {_fmt(r.gitexp, r.unit)} | {_fmt(r.mlflow, r.unit)} | "
                     f"{r.ratio:,.1f}x | {target} |")
    text = "\n".join(lines) + "\n"
    print(text, flush=True)
    return text


def _versions() -> str:
    out = subprocess.run([sys.executable, "-c", "import importlib.metadata as m; "
                          "print(m.version('gitexp'), m.version('mlflow'))"],
                         capture_output=True, text=True, env=ENV).stdout.split()
    git = subprocess.run(["git", "--version"], capture_output=True, text=True).stdout.split()[-1]
    return f"gitexp {out[0] if out else '?'}, MLflow {out[1] if len(out) > 1 else '?'}, git {git}"
