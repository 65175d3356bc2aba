"""Code versions: `runs checkout-code` recreates the tracked tree a run saw, byte for byte,
and runs made on uncommitted code are linked to the commit that later holds that code."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest
from click.testing import CliRunner

import gitexp
from gitexp.exceptions import InvalidParameterValue, ResourceDoesNotExist
from gitexp.store.code_links import LINK_TAG

from .conftest import git, reset_gitexp
from .remotes import bare_remote, clone, first_clone


def snapshot(root: Path) -> dict[str, tuple[bytes, bool]]:
    """Tracked files as they are on disk now: content and executable bit."""
    out = {}
    for name in git("ls-files", "-z", cwd=root).split("\0"):
        path = root / name
        if name and path.exists():
            out[name] = (path.read_bytes(), bool(path.stat().st_mode & stat.S_IXUSR))
    return out


def tree_of(directory: Path) -> dict[str, tuple[bytes, bool]]:
    out = {}
    for path in directory.rglob("*"):
        if path.is_file():
            out[str(path.relative_to(directory))] = (path.read_bytes(), bool(path.stat().st_mode & stat.S_IXUSR))
    return out


def start_and_end_run(name: str) -> str:
    with gitexp.start_run(run_name=name) as run:
        gitexp.log_metric("m", 1.0)
    return run.info.run_id


@pytest.fixture
def project(repo):
    """A repository with a few kinds of files committed."""
    (repo / "pkg").mkdir()
    (repo / "pkg" / "model.py").write_text("def fit():\n    return 1\n")
    (repo / "run.sh").write_text("#!/bin/sh\npython train.py\n")
    os.chmod(repo / "run.sh", 0o755)
    (repo / "weights.bin").write_bytes(bytes(range(256)) * 4)
    (repo / "old.txt").write_text("to be deleted\n")
    git("add", "-A", cwd=repo)
    git("commit", "-q", "-m", "project", cwd=repo)
    return repo


def test_checkout_code_recreates_the_dirty_tree_byte_for_byte(project, tmp_path):
    repo = project
    (repo / "train.py").write_text("print('training v2')\n")               # modified, unstaged
    (repo / "pkg" / "model.py").write_text("def fit():\n    return 2\n")  # modified, staged
    git("add", "pkg/model.py", cwd=repo)
    (repo / "pkg" / "new.py").write_text("NEW = True\n")                  # new, staged
    git("add", "pkg/new.py", cwd=repo)
    (repo / "old.txt").unlink()                                           # deleted
    os.chmod(repo / "run.sh", 0o644)                                      # mode change
    (repo / "weights.bin").write_bytes(bytes(reversed(range(256))) * 4)   # binary change
    (repo / "notes.txt").write_text("scratch\n")                          # untracked
    seen = snapshot(repo)
    run_id = start_and_end_run("dirty")

    # The working tree moves on; the run's code must still come back exactly.
    git("add", "-A", cwd=repo)
    git("commit", "-q", "-m", "later work", cwd=repo)
    (repo / "train.py").write_text("print('v3')\n")

    target = tmp_path / "recreated"
    result = gitexp.Client().checkout_code(run_id, str(target))
    assert result.patched and result.untracked == ["notes.txt"]
    assert result.files == len(seen)
    assert tree_of(target) == seen
    assert "old.txt" not in tree_of(target)
    assert (repo / "train.py").read_text() == "print('v3')\n"  # the user's tree was not touched
    assert "later work" in git("log", "-1", "--format=%s", cwd=repo)


def test_recorded_diff_ignores_diff_config_that_would_break_apply(project, tmp_path):
    git("config", "diff.noprefix", "true", cwd=project)
    git("config", "diff.relative", "true", cwd=project)
    (project / "pkg" / "model.py").write_text("def fit():\n    return 42\n")
    (project / "train.py").write_text("print('noprefix')\n")
    seen = snapshot(project)
    os.chdir(project / "pkg")  # a run started in a subdirectory
    run_id = start_and_end_run("configured")
    assert "a/train.py" in gitexp.Client().get_run_code_diff(run_id)
    gitexp.Client().checkout_code(run_id, str(tmp_path / "out"))
    assert tree_of(tmp_path / "out") == seen


def test_checkout_code_of_a_clean_run_is_its_commit(project, tmp_path):
    run_id = start_and_end_run("clean")
    commit = gitexp.get_run(run_id).data.tags["mlflow.source.git.commit"]
    result = gitexp.Client().checkout_code(run_id, str(tmp_path / "out"))
    assert result.commit == commit and not result.patched and result.untracked == []
    assert tree_of(tmp_path / "out") == snapshot(project)


def test_checkout_code_errors_name_the_problem(project, tmp_path, monkeypatch):
    client = gitexp.Client()
    run_id = start_and_end_run("r")
    busy = tmp_path / "busy"
    busy.mkdir()
    (busy / "keep.txt").write_text("mine")
    with pytest.raises(InvalidParameterValue, match="not an empty directory"):
        client.checkout_code(run_id, str(busy))
    assert (busy / "keep.txt").read_text() == "mine"
    monkeypatch.setenv("GITEXP_CAPTURE_CODE", "0")
    no_code = start_and_end_run("no-code")
    with pytest.raises(InvalidParameterValue, match="no recorded code version"):
        client.checkout_code(no_code, str(tmp_path / "x"))


def test_checkout_code_of_a_commit_not_fetched_says_to_fetch_it(tmp_path, monkeypatch):
    url = str(bare_remote(tmp_path / "remote.git"))
    a = first_clone(tmp_path / "a", url)
    b = clone(url, tmp_path / "b")
    monkeypatch.chdir(a)
    reset_gitexp()
    (a / "train.py").write_text("print('unpushed')\n")
    git("commit", "-q", "-am", "local only", cwd=a)
    run_id = start_and_end_run("local")
    gitexp.Client().push()  # the tracking branch goes out; the code commit does not
    reset_gitexp()
    other = gitexp.Client(str(b))
    other.pull()
    with pytest.raises(ResourceDoesNotExist, match=r"not in this repository.*git fetch"):
        other.checkout_code(run_id, str(tmp_path / "out"))
    git("fetch", "-q", str(a), "main", cwd=b)
    assert other.checkout_code(run_id, str(tmp_path / "out")).files == 1
    assert (tmp_path / "out" / "train.py").read_text() == "print('unpushed')\n"


def test_cli_checkout_code(project, tmp_path):
    from gitexp.cli import main

    (project / "train.py").write_text("print('edited')\n")
    (project / "scratch.py").write_text("x = 1\n")
    run_id = start_and_end_run("cli")
    runner = CliRunner()
    result = runner.invoke(main, ["runs", "checkout-code", run_id[:8], str(tmp_path / "code")])
    assert result.exit_code == 0, result.output
    assert "plus the run's uncommitted diff" in result.output
    assert "1 untracked file(s)" in result.output and "scratch.py" in result.output
    assert (tmp_path / "code" / "train.py").read_text() == "print('edited')\n"
    assert not (tmp_path / "code" / "scratch.py").exists()
    assert "Example:" in runner.invoke(main, ["runs", "checkout-code", "--help"]).output


# -- linking runs to the commit that holds their code ----------------------------------------------------
def commit_all(repo: Path, message: str, *paths: str) -> str:
    git("add", *(paths or ("-A",)), cwd=repo)
    git("commit", "-q", "-m", message, cwd=repo)
    return git("rev-parse", "HEAD", cwd=repo).strip()


def link_tag(run_id: str) -> str | None:
    return gitexp.Client().get_run(run_id).data.tags.get(LINK_TAG)


def test_link_rule(project):
    repo = project
    client = gitexp.Client()
    (repo / "train.py").write_text("print('a')\n")
    (repo / "pkg" / "model.py").write_text("def fit():\n    return 3\n")
    both = start_and_end_run("both")
    first = commit_all(repo, "model only", "pkg/model.py")
    assert client.link_runs_to_commit(first) == []  # train.py change not committed yet

    (repo / "train.py").write_text("print('a')\n")
    second = commit_all(repo, "train.py too")
    assert client.link_runs_to_commit(second) == [both]  # base is second's grandparent
    assert link_tag(both) == second
    assert client.link_runs_to_commit(second) == []  # linked once, to the first commit holding it

    (repo / "train.py").write_text("print('b')\n")
    edited_later = start_and_end_run("edited-later")
    (repo / "train.py").write_text("print('c')\n")
    third = commit_all(repo, "not what the run ran")
    assert client.link_runs_to_commit(third) == [] and link_tag(edited_later) is None

    (repo / "new_script.py").write_text("print('new')\n")  # untracked when the run ran
    untracked = start_and_end_run("untracked-script")
    assert gitexp.get_run(untracked).data.tags["mlflow.source.git.dirty"] == "false"
    (repo / "unrelated.txt").write_text("x\n")
    fourth = commit_all(repo, "unrelated", "unrelated.txt")
    assert client.link_runs_to_commit(fourth) == []  # holds none of the run's code
    fifth = commit_all(repo, "add the script", "new_script.py")
    assert client.link_runs_to_commit(fifth) == [untracked]

    clean = start_and_end_run("clean")  # ran on a commit: never linked
    (repo / "train.py").write_text("print('d')\n")
    commit_all(repo, "after clean")
    assert client.link_runs_to_commit() == [] and link_tag(clean) is None
