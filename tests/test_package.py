"""Packaging: a light import, complete exports, the extras the README promises."""

from __future__ import annotations

import json
from pathlib import Path

import tomllib

import gitexp

from .conftest import run_python

ROOT = Path(__file__).resolve().parents[1]


def test_import_is_light(tmp_path):
    heavy = ["pandas", "numpy", "sklearn", "xgboost", "git", "fastapi", "mlflow", "rich", "click", "psutil",
             "gitexp.system_metrics", "gitexp.config"]
    result = run_python(
        "import sys, gitexp\n"
        f"print(','.join(m for m in {heavy!r} if m in sys.modules))", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "", f"import gitexp loaded {result.stdout.strip()}"


# gitexp's public API, exactly: a name added to or dropped from the package is a decision, made here too.
PUBLIC_API = [
    "ActiveRun", "Client", "GitexpError", "MlflowClient", "MlflowException",
    "active_run", "autolog", "create_experiment", "delete_experiment", "delete_experiment_tag", "delete_run",
    "delete_tag", "disable_system_metrics_logging", "enable_system_metrics_logging", "end_run", "entities",
    "exceptions", "flush", "flush_async_logging", "get_artifact_uri", "get_experiment",
    "get_experiment_by_name", "get_parent_run", "get_registry_uri", "get_run", "get_tracking_uri",
    "is_tracking_uri_set", "last_active_run", "last_logged_model", "load_table", "log_artifact", "log_artifacts",
    "log_dict", "log_figure", "log_image",
    "log_input", "log_inputs", "log_metric", "log_metrics", "log_param", "log_params", "log_table", "log_text",
    "metric_history_frame", "register_model", "rename_experiment", "restore_experiment", "restore_run",
    "search_experiments", "search_model_versions", "search_registered_models", "search_runs", "set_experiment",
    "set_experiment_tag", "set_experiment_tags", "set_registry_uri", "set_system_metrics_node_id",
    "set_system_metrics_samples_before_logging", "set_system_metrics_sampling_interval", "set_tag", "set_tags",
    "set_tracking_uri", "start_run",
]


def test_all_is_exactly_the_public_api_sorted():
    assert gitexp.__all__ == PUBLIC_API
    assert gitexp.__all__ == sorted(set(gitexp.__all__))  # sorted, each name once


def test_everything_in_all_exists():
    for name in gitexp.__all__:
        assert getattr(gitexp, name) is not None, name


def test_star_import_gives_all_and_all_lists_every_public_name(tmp_path):
    """In a fresh interpreter: `from gitexp import *` binds every name in __all__ (autolog loads
    lazily), and every public name gitexp's namespace defines, other than its submodules and the
    two typing helpers its own code uses, is in __all__."""
    result = run_python(
        "import json, types\n"
        "namespace = {}\n"
        "exec('from gitexp import *', namespace)\n"
        "import gitexp\n"
        "defined = sorted(n for n, v in vars(gitexp).items() if not n.startswith('_')\n"
        "                 and (not isinstance(v, types.ModuleType) or n in ('entities', 'exceptions')))\n"
        "print(json.dumps({'star': sorted(n for n in namespace if n != '__builtins__'), 'defined': defined}))",
        cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    names = json.loads(result.stdout)
    assert names["star"] == gitexp.__all__
    assert sorted(set(names["defined"]) - {"annotations", "Any"}) == sorted(set(gitexp.__all__) - {"autolog"})


def test_extras_and_scripts_are_declared():
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    extras = project["optional-dependencies"]
    assert {"sklearn", "xgboost", "server", "system-metrics", "all", "dev"} <= set(extras)
    assert extras["system-metrics"] == ["psutil>=5.9"]
    for bundle in ("all", "all-cpu"):  # dev has all
        assert any("system-metrics" in d for d in extras[bundle]), bundle
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
