"""Writing runs never touches the user's work, in every kind of repository."""

from __future__ import annotations

import hashlib
import subprocess

import pytest

import gitexp
from gitexp.exceptions import NotAGitRepository

from .conftest import git, make_repo, reset_gitexp, run_python


def snapshot(path) -> dict:
    """Everything of the user's that gitexp must leave byte-identical."""
    git_dir = path / ".git"
    files = {}
    for f in sorted(path.rglob("*")):
        if f.is_file() and ".git" not in f.relative_to(path).parts:
            files[str(f.relative_to(path))] = hashlib.sha256(f.read_bytes()).hexdigest()
    return {
        "status": git("status", "--porcelain=v2", "--branch", "--untracked-files=all", cwd=path),
        "HEAD": (git_dir / "HEAD").read_bytes(),
        "head_commit": git("rev-parse", "HEAD", cwd=path),
        "index": (git_dir / "index").read_bytes() if (git_dir / "index").exists() else None,
        "stash": git("stash", "list", cwd=path),
        "stash_ref": git("rev-parse", "-q", "--verify", "refs/stash", cwd=path, check=False),
        "branches": git("for-each-ref", "--format=%(refname) %(objectname)", "refs/heads/main", cwd=path),
        "files": files,
    }


def test_logging_leaves_working_tree_index_head_and_stash_identical(repo):
    # A realistic messy state: staged, unstaged, untracked changes and a stash entry.
    (repo / "stashed.txt").write_text("to stash\n")
    git("add", "stashed.txt", cwd=repo)
    git("stash", "push", "-q", "-m", "wip", cwd=repo)
    (repo / "train.py").write_text("print('changed')\n")
    (repo / "staged.py").write_text("x = 1\n")
    git("add", "staged.py", cwd=repo)
    (repo / "notes.txt").write_text("untracked\n")
    before = snapshot(repo)

    exp = gitexp.set_experiment("safety")
    with gitexp.start_run() as run:
        gitexp.log_params({"a": 1})
        for i in range(50):
            gitexp.log_metric("m", i, step=i)
        gitexp.set_tag("t", "v")
    client = gitexp.Client()
    client.set_tag(run.info.run_id, "after", "end")
    client.delete_run(run.info.run_id)
    client.restore_run(run.info.run_id)
    client.rename_experiment(exp.experiment_id, "safety-2")
    gitexp.flush()
    result = run_python("import gitexp\nwith gitexp.start_run():\n    gitexp.log_metric('x', 1)\n", cwd=repo)
    assert result.returncode == 0, result.stderr

    assert snapshot(repo) == before
    # ...and the run recorded the uncommitted diff it ran with.
    patch = client.get_run_code_diff(run.info.run_id)
    assert "print('changed')" in patch and "staged.py" in patch
    tags = client.get_run(run.info.run_id).data.tags
    assert tags["mlflow.source.git.dirty"] == "true"
    assert tags["mlflow.source.git.commit"] == before["head_commit"].strip()
    assert tags["mlflow.source.git.branch"] == "main"


def test_clean_tree_records_commit_and_no_diff(repo):
    with gitexp.start_run() as run:
        pass
    client = gitexp.Client()
    assert client.get_run_code_diff(run.info.run_id) == ""
    assert client.get_run(run.info.run_id).data.tags["mlflow.source.git.dirty"] == "false"


def test_repository_without_commits(tmp_path, monkeypatch):
    path = make_repo(tmp_path / "empty", commit=False)
    (path / "model.py").write_text("print(1)\n")
    git("add", "model.py", cwd=path)
    monkeypatch.chdir(path)
    reset_gitexp()
    before = snapshot_no_head(path)
    with gitexp.start_run() as run:
        gitexp.log_metric("m", 1.0)
    r = gitexp.get_run(run.info.run_id)
    assert r.data.metrics == {"m": 1.0}
    assert "mlflow.source.git.commit" not in r.data.tags
    assert "model.py" in gitexp.Client().get_run_code_diff(run.info.run_id)
    assert snapshot_no_head(path) == before
    assert git("rev-parse", "-q", "--verify", "HEAD", cwd=path, check=False) == ""  # still no commit
    reset_gitexp()


def snapshot_no_head(path) -> dict:
    return {
        "status": git("status", "--porcelain=v2", "--untracked-files=all", cwd=path),
        "HEAD": (path / ".git" / "HEAD").read_bytes(),
        "index": (path / ".git" / "index").read_bytes(),
    }


def test_linked_worktree_shares_the_tracking_branch(repo, tmp_path, monkeypatch):
    wt = tmp_path / "wt"
    git("worktree", "add", "-q", "-b", "feature", str(wt), cwd=repo)
    monkeypatch.chdir(wt)
    reset_gitexp()
    with gitexp.start_run() as run:
        gitexp.log_metric("m", 2.0)
    assert gitexp.get_run(run.info.run_id).data.tags["mlflow.source.git.branch"] == "feature"
    reset_gitexp()
    monkeypatch.chdir(repo)
    assert gitexp.get_run(run.info.run_id).data.metrics == {"m": 2.0}
    assert git("status", "--porcelain", cwd=wt) == ""


def test_bare_repository_as_tracking_uri(tmp_path, monkeypatch):
    bare = tmp_path / "store.git"
    subprocess.run(["git", "init", "-q", "--bare", str(bare)], check=True)
    monkeypatch.chdir(tmp_path)
    reset_gitexp()
    gitexp.set_tracking_uri(str(bare))
    with gitexp.start_run() as run:
        gitexp.log_param("p", 1)
    assert gitexp.Client(str(bare)).get_run(run.info.run_id).data.params == {"p": "1"}
    reset_gitexp()


def test_outside_a_git_repository_is_a_clear_error(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    reset_gitexp()
    with pytest.raises(NotAGitRepository) as info:
        gitexp.start_run()
    message = str(info.value)
    assert str(tmp_path) in message and "git init" in message and "gitexp init" in message


def test_file_uri_and_custom_branch_name(repo, tmp_path):
    other = make_repo(tmp_path / "other")
    git("config", "gitexp.branch", "experiments", cwd=other)
    reset_gitexp()
    gitexp.set_tracking_uri(f"file://{other}")
    with gitexp.start_run() as run:
        gitexp.log_metric("m", 3.0)
    assert "experiments" in git("branch", "--list", "experiments", cwd=other)
    assert git("branch", "--list", "gitexp", cwd=other) == ""
    assert gitexp.get_run(run.info.run_id).data.metrics == {"m": 3.0}


def test_tracking_branch_root_is_identical_in_every_clone(tmp_path):
    roots = []
    for name in ("a", "b"):
        path = make_repo(tmp_path / name)
        reset_gitexp()
        client = gitexp.Client(str(path))
        client.create_experiment(f"only-in-{name}")
        roots.append(git("rev-list", "--max-parents=0", "gitexp", cwd=path).strip())
    assert roots[0] == roots[1]  # so independently started branches always merge
    reset_gitexp()


def test_same_experiment_name_in_two_clones_gets_the_same_id(tmp_path):
    ids = []
    for name in ("a", "b"):
        reset_gitexp()
        ids.append(gitexp.Client(str(make_repo(tmp_path / name))).create_experiment("shared"))
    assert ids[0] == ids[1]
    reset_gitexp()


def test_objects_are_packed_and_the_repository_stays_valid(repo):
    for i in range(40):
        with gitexp.start_run():
            gitexp.log_metric("m", i)
    loose = git("count-objects", "-v", cwd=repo)
    assert "count: 0" in loose.splitlines()[0] or int(loose.splitlines()[0].split()[1]) < 50
    fsck = subprocess.run(["git", "fsck", "--strict", "--no-dangling"], cwd=repo, capture_output=True, text=True)
    assert fsck.returncode == 0, fsck.stdout + fsck.stderr
    assert len(gitexp.Client().search_runs(["0"])) == 40
