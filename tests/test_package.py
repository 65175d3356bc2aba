"""Packaging: a light import, complete exports, the extras the README promises."""

from __future__ import annotations

from pathlib import Path

import tomllib

import gitexp

from .conftest import run_python

ROOT = Path(__file__).resolve().parents[1]


def test_import_is_light(tmp_path):
    heavy = ["pandas", "numpy", "sklearn", "xgboost", "git", "fastapi", "mlflow", "rich", "click"]
    result = run_python(
        "import sys, gitexp\n"
        f"print(','.join(m for m in {heavy!r} if m in sys.modules))", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "", f"import gitexp loaded {result.stdout.strip()}"


def test_everything_in_all_exists():
    for name in gitexp.__all__:
        assert getattr(gitexp, name) is not None, name


def test_extras_and_scripts_are_declared():
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    extras = project["optional-dependencies"]
    assert {"sklearn", "xgboost", "server", "all", "dev"} <= set(extras)
    assert any(d.startswith("mlflow") for d in extras["dev"])
    assert project["scripts"] == {"gitexp": "gitexp.cli:run", "git-exp": "gitexp.cli:run"}


def test_ci_runs_exactly_the_readme_test_command():
    readme = (ROOT / "README.md").read_text()
    ci = (ROOT / ".ci" / "run").read_text()
    command = "make test"
    assert f"\n{command}\n" in readme
    assert command in ci.splitlines()


def test_the_readme_python_example_runs(repo):
    readme = (ROOT / "README.md").read_text()
    code = readme.split("```python\n", 1)[1].split("```", 1)[0]
    result = run_python(code, cwd=repo)
    assert result.returncode == 0, result.stderr
    assert "metrics.test_accuracy" in result.stdout
