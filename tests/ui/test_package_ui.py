"""The UI ships its templates and static files, and stays out of `import gitexp`."""

from __future__ import annotations

import fnmatch
from pathlib import Path

import tomllib

from ..conftest import run_python

ROOT = Path(__file__).resolve().parents[2]
UI = ROOT / "src" / "gitexp" / "ui"


def test_templates_and_static_files_are_package_data():
    patterns = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]["package-data"]["gitexp"]
    files = [p for d in ("templates", "static") for p in (UI / d).iterdir()]
    assert len(files) > 15
    for path in files:
        rel = path.relative_to(ROOT / "src" / "gitexp").as_posix()
        assert any(fnmatch.fnmatch(rel, pattern) for pattern in patterns), rel


def test_import_gitexp_does_not_load_the_ui(tmp_path):
    result = run_python("import sys, gitexp, gitexp.cli\nprint('gitexp.ui' in sys.modules, 'jinja2' in sys.modules)",
                        cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == ["False", "False"]


def test_gitexp_ui_outside_a_repository_is_one_clear_error(tmp_path):
    from click.testing import CliRunner

    from gitexp.cli import main

    result = CliRunner().invoke(main, ["--repo", str(tmp_path), "ui", "--port", "0"])
    assert result.exit_code == 1
    assert "is not inside a git repository" in result.output


def test_allowed_hosts_follow_the_bind_address():
    from gitexp.server.app import host_allowed
    from gitexp.ui import allowed_hosts

    assert set(allowed_hosts("127.0.0.1")) >= {"127.0.0.1", "localhost"}
    assert "evil.example" not in allowed_hosts("127.0.0.1")
    # A wildcard bind is no name: it still refuses names it was not given (DNS rebinding).
    assert "*" not in allowed_hosts("0.0.0.0") and not host_allowed("evil.example", allowed_hosts("0.0.0.0"))
    assert {"192.168.1.5", "box.lan"} <= set(allowed_hosts("192.168.1.5", ["box.lan"]))
    assert "*" in allowed_hosts("0.0.0.0", ["*"])
