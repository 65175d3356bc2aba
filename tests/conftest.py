"""Fixtures: every test runs in a real, fresh git repository in a temporary directory."""

from __future__ import annotations

import importlib
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

# Tests must not depend on the machine's git identity or global config.
_GIT_ENV = {
    "GIT_AUTHOR_NAME": "Test Author",
    "GIT_AUTHOR_EMAIL": "author@example.com",
    "GIT_COMMITTER_NAME": "Test Author",
    "GIT_COMMITTER_EMAIL": "author@example.com",
    "GIT_CONFIG_NOSYSTEM": "1",
    "GIT_CONFIG_GLOBAL": os.devnull,
    "GITEXP_CHECKPOINT_INTERVAL": "5",
}


def pytest_configure(config):
    os.environ.update(_GIT_ENV)
    # Child processes (run_python) must import this checkout's gitexp, whatever their cwd.
    src = str(Path(__file__).resolve().parents[1] / "src")
    os.environ["PYTHONPATH"] = os.pathsep.join([src, *[p for p in os.environ.get("PYTHONPATH", "").split(os.pathsep)
                                                       if p and os.path.abspath(p) != src]])
    for name in ("GITEXP_TRACKING_URI", "MLFLOW_TRACKING_URI", "GITEXP_BRANCH", "MLFLOW_RUN_ID",
                 "MLFLOW_EXPERIMENT_NAME", "MLFLOW_EXPERIMENT_ID", "GITEXP_RUN_ID"):
        os.environ.pop(name, None)


def require_mlflow(*modules: str) -> Any:
    """The real mlflow package, with `modules` (e.g. "mlflow.data") imported, for a test that
    checks gitexp against it.

    The one way the suite handles a missing mlflow.  mlflow is a dev dependency
    (pyproject.toml's ``dev`` extra, which ``make test`` installs), so in this project's test
    command it is always there, and a test that needs it and cannot import it *fails*, with
    the import error and how to install it -- it never skips (a skipped comparison would let
    the suite pass without checking anything against MLflow) and never quietly does less.
    Every test that needs the real mlflow calls this before using it (at module level where a
    whole file compares with mlflow: that file then fails at collection; in a fixture where the
    fixture builds something with mlflow); nothing calls pytest.importorskip("mlflow").
    """
    for module in ("mlflow", *modules):
        try:
            importlib.import_module(module)
        except ImportError as exc:
            problem = f"{type(exc).__name__}: {exc}"
        else:
            continue
        pytest.fail(f"cannot import {module} ({problem}). mlflow is a dev dependency that these tests compare "
                    "gitexp with; install it with `pip install -e '.[dev]'` (or run `make test`).", pytrace=False)
    return sys.modules["mlflow"]


def git(*args: str, cwd: str | Path, check: bool = True) -> str:
    result = subprocess.run(["git", *args], cwd=cwd, capture_output=True, text=True)
    if check and result.returncode != 0:
        raise AssertionError(f"git {' '.join(args)} failed: {result.stderr}")
    return result.stdout


def make_repo(path: Path, commit: bool = True) -> Path:
    path.mkdir(parents=True, exist_ok=True)
    git("init", "-q", "-b", "main", cwd=path)
    if commit:
        (path / "train.py").write_text("print('training')\n")
        git("add", "train.py", cwd=path)
        git("commit", "-q", "-m", "initial", cwd=path)
    return path


def reset_gitexp() -> None:
    import gitexp.fluent
    from gitexp.client import forget_stores
    from gitexp.store.tracking import SESSIONS

    gitexp.fluent._reset()
    SESSIONS.flush_all()
    forget_stores()


@pytest.fixture
def repo(tmp_path, monkeypatch) -> Path:
    """A fresh repository with one commit, as the current directory."""
    path = make_repo(tmp_path / "repo")
    monkeypatch.chdir(path)
    reset_gitexp()
    yield path
    reset_gitexp()


@pytest.fixture
def fresh(tmp_path, monkeypatch):
    """An empty temporary directory (no repository) as the current directory."""
    monkeypatch.chdir(tmp_path)
    reset_gitexp()
    yield tmp_path
    reset_gitexp()


@pytest.fixture
def client(repo):
    import gitexp

    return gitexp.Client()


def run_python(code: str, cwd: Path, env: dict | None = None, timeout: float = 120) -> subprocess.CompletedProcess:
    """Run code in a fresh interpreter (a real separate process)."""
    return subprocess.run([sys.executable, "-c", code], cwd=cwd, capture_output=True, text=True,
                          env={**os.environ, **(env or {})}, timeout=timeout)


_TRACKING_ENV = ("MLFLOW_", "GITEXP_")


@pytest.fixture(autouse=True)
def _tracking_environment_restored():
    """What a test (or the real mlflow it drives: set_experiment exports MLFLOW_EXPERIMENT_ID)
    sets among MLFLOW_* and GITEXP_* variables does not reach the next test in the process."""
    before = {k: v for k, v in os.environ.items() if k.startswith(_TRACKING_ENV)}
    yield
    for name in [k for k in os.environ if k.startswith(_TRACKING_ENV) and k not in before]:
        del os.environ[name]
    os.environ.update(before)
