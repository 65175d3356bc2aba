"""One git wrapper (gitexp._git): a missing git executable and a failing git command are
gitexp errors wherever git is run, and no module starts git any other way (except the
long-lived object readers, on purpose).
"""

from __future__ import annotations

import ast
import os
import subprocess
import sys
from pathlib import Path

import pytest

from gitexp import _git
from gitexp.exceptions import GitCommandFailed, StoreError

SRC = Path(__file__).resolve().parents[1] / "src" / "gitexp"


def test_a_failing_command_names_command_exit_code_and_gits_message(repo):
    with pytest.raises(GitCommandFailed) as info:
        _git.run(["rev-parse", "--verify", "no-such-branch"], cwd=str(repo), check=True)
    error = info.value
    assert isinstance(error, StoreError)
    assert error.command == ["rev-parse", "--verify", "no-such-branch"]
    assert error.returncode == 128
    assert "`git rev-parse --verify no-such-branch` failed: fatal: Needed a single revision" in error.message
    # Without check, the exit code is the caller's data.
    assert _git.run(["rev-parse", "--verify", "-q", "no-such-branch"], cwd=str(repo)).returncode == 1


def test_a_missing_working_directory_is_not_reported_as_missing_git(tmp_path):
    with pytest.raises(FileNotFoundError):
        _git.run(["status"], cwd=str(tmp_path / "gone"))


_NO_GIT = """
from gitexp.exceptions import GitNotFound
{body}
"""


def _without_git(cwd, code: str) -> subprocess.CompletedProcess:
    """Run `code` in a real interpreter, in `cwd`, whose PATH has no git on it."""
    empty = Path(cwd).parent / "empty-bin"
    empty.mkdir(exist_ok=True)
    env = {**os.environ, "PATH": str(empty)}
    return subprocess.run([sys.executable, "-c", code], cwd=cwd, env=env, capture_output=True, text=True,
                          timeout=120)


@pytest.mark.parametrize("label,body", [
    ("repository", "from gitexp.store.repo import open_repository\nopen_repository('.')"),
    ("client", "import gitexp\ngitexp.Client('.').search_experiments()"),
    ("code version", "from gitexp import code_version\ncode_version.capture('.')"),
    ("hooks", "from gitexp import hooks\nhooks.hooks_dir('.')"),
    ("as_of", "from gitexp.search import _asof\nfrom types import SimpleNamespace as NS\n"
              "_asof.resolve_as_of(NS(repo=NS(common_dir='.git')), 'HEAD')"),
])
def test_missing_git_is_a_gitexp_error_at_every_door(repo, label, body):
    code = _NO_GIT.format(body="try:\n    " + body.replace("\n", "\n    ") +
                          "\nexcept GitNotFound as exc:\n    print('GitNotFound:', exc)\n")
    result = _without_git(repo, code)
    if "AttributeError" in result.stderr or "ImportError" in result.stderr:
        pytest.fail(f"{label}: the probe itself is wrong: {result.stderr}")
    assert "GitNotFound: git is not installed or not on PATH" in result.stdout, (label, result.stdout, result.stderr)
    assert "FileNotFoundError" not in result.stderr


def test_the_cli_says_git_is_missing_without_a_traceback(tmp_path, repo):
    empty = tmp_path / "empty-bin"
    empty.mkdir()
    result = subprocess.run([sys.executable, "-m", "gitexp", "runs", "list"], cwd=repo, capture_output=True,
                            text=True, env={**os.environ, "PATH": str(empty)}, timeout=120)
    assert result.returncode != 0
    assert "git is not installed or not on PATH" in result.stderr
    assert "Traceback" not in result.stderr


def _starts_git(node: ast.Call) -> bool:
    """subprocess.run/Popen/call/check_output whose argument list starts with "git"."""
    func = node.func
    if not (isinstance(func, ast.Attribute) and isinstance(func.value, ast.Name) and func.value.id == "subprocess"):
        return False
    if not node.args or not isinstance(node.args[0], ast.List) or not node.args[0].elts:
        return False
    first = node.args[0].elts[0]
    return isinstance(first, ast.Constant) and first.value == "git"


def test_only_the_wrapper_and_the_object_readers_start_git():
    # store/objects.py keeps its long-lived `cat-file --batch` readers (docs/ARCHITECTURE.md, "One git wrapper").
    allowed = {"_git.py": 0, "store/objects.py": 1}
    found: dict[str, int] = {}
    for path in SRC.rglob("*.py"):
        name = path.relative_to(SRC).as_posix()
        count = sum(1 for node in ast.walk(ast.parse(path.read_text()))
                    if isinstance(node, ast.Call) and _starts_git(node))
        if count:
            found[name] = count
    assert {k: v for k, v in found.items() if allowed.get(k) != v} == {}
