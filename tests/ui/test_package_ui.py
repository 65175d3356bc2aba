"""The UI ships its templates and static files, and stays out of `import gitexp`."""

from __future__ import annotations

import fnmatch
import tomllib
from pathlib import Path

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
