"""gitexp's git hooks in real repositories: installed by `gitexp hooks install`, and through
the pre-commit framework with this project's .pre-commit-hooks.yaml."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from click.testing import CliRunner

import gitexp
from gitexp import hooks
from gitexp.store.code_links import LINK_TAG

from .conftest import git
from .remotes import bare_remote, child_env

PROJECT = Path(__file__).resolve().parents[1]


def run_git(*args: str, cwd: Path, env: dict | None = None) -> subprocess.CompletedProcess:
    """git as the user runs it, hooks included (hooks import this checkout's gitexp)."""
    return subprocess.run(["git", *args], cwd=cwd, capture_output=True, text=True, env=env or child_env())


def dirty_run(repo: Path, content: str, name: str) -> str:
    (repo / "train.py").write_text(content)
    with gitexp.start_run(run_name=name) as run:
        gitexp.log_metric("m", 1.0)
    return run.info.run_id


def stage_tracking_file(repo: Path) -> None:
    (repo / ".tracking").mkdir(exist_ok=True)
    (repo / ".tracking" / "stray.yaml").write_text("x: 1\n")
    git("add", ".tracking/stray.yaml", cwd=repo)


def test_install_then_hooks_work_in_a_real_repository(repo, tmp_path):
    changes = hooks.install(str(repo))
    assert [(c.hook, c.action) for c in changes] == [("pre-commit", "installed"), ("post-commit", "installed"),
                                                     ("pre-push", "installed")]
    hook_file = repo / ".git" / "hooks" / "pre-push"
    assert os.access(hook_file, os.X_OK) and sys.executable in hook_file.read_text()
    assert [c.action for c in hooks.install(str(repo))] == ["unchanged"] * 3

    # pre-commit: .tracking/ files are refused on a code branch.
    stage_tracking_file(repo)
    refused = run_git("commit", "-m", "oops", cwd=repo)
    assert refused.returncode == 1
    assert "refusing to commit 1 file(s) under .tracking/ on branch 'main'" in refused.stderr
    assert "git rm -r --cached .tracking" in refused.stderr
    git("rm", "-q", "-r", "--cached", ".tracking", cwd=repo)
    shutil.rmtree(repo / ".tracking")

    # post-commit: the run made on uncommitted code is linked to the commit holding it.
    run_id = dirty_run(repo, "print('v2')\n", "dirty")
    committed = run_git("commit", "-am", "v2", cwd=repo)
    assert committed.returncode == 0, committed.stderr
    head = git("rev-parse", "HEAD", cwd=repo).strip()
    assert f"linked 1 run(s) made on uncommitted code to commit {head[:7]}" in committed.stderr
    assert gitexp.get_run(run_id).data.tags[LINK_TAG] == head

    # pre-push: pushing the code pushes the tracking branch to the same remote.
    remote = bare_remote(tmp_path / "remote.git")
    git("remote", "add", "origin", str(remote), cwd=repo)
    pushed = run_git("push", "-u", "origin", "main", cwd=repo)
    assert pushed.returncode == 0, pushed.stderr
    assert "Pushed gitexp to origin" in pushed.stderr
    assert git("rev-parse", "gitexp", cwd=remote) == git("rev-parse", "gitexp", cwd=repo)
    # Pushing the tracking branch itself does not push it twice, and skipping works.
    assert "Pushed gitexp" not in run_git("push", "origin", "gitexp", cwd=repo).stderr
    dirty_run(repo, "print('v3')\n", "later")
    run_git("commit", "-qam", "v3", cwd=repo)
    skipped = run_git("push", "origin", "main", cwd=repo, env=child_env(GITEXP_SKIP_HOOKS="1"))
    assert skipped.returncode == 0 and "Pushed gitexp" not in skipped.stderr
    assert git("rev-parse", "gitexp", cwd=remote) != git("rev-parse", "gitexp", cwd=repo)


def test_pre_commit_alone_links_runs_at_the_next_commit(repo):
    hooks.install(str(repo), hooks=["pre-commit"])
    run_id = dirty_run(repo, "print('only pre-commit')\n", "r")
    assert run_git("commit", "-qam", "holds the run's code", cwd=repo).returncode == 0
    first = git("rev-parse", "HEAD", cwd=repo).strip()
    assert LINK_TAG not in gitexp.get_run(run_id).data.tags  # no post-commit hook installed
    (repo / "other.txt").write_text("x\n")
    git("add", "other.txt", cwd=repo)
    assert run_git("commit", "-qm", "next", cwd=repo).returncode == 0
    assert gitexp.get_run(run_id).data.tags[LINK_TAG] == first


def test_tracking_files_may_be_committed_on_the_tracking_branch(repo, tmp_path):
    hooks.install(str(repo))
    dirty_run(repo, "print('x')\n", "r")
    worktree = tmp_path / "tracking-wt"
    git("worktree", "add", "-q", str(worktree), "gitexp", cwd=repo)
    (worktree / ".tracking" / "NOTES.md").write_text("hand-written notes\n")
    git("add", ".tracking/NOTES.md", cwd=worktree)
    result = run_git("commit", "-m", "notes", cwd=worktree)
    assert result.returncode == 0, result.stderr


def test_install_refuses_your_hooks_and_force_chains_them(repo, tmp_path):
    hooks_dir = repo / ".git" / "hooks"
    marker = tmp_path / "user-hook-ran"
    user_hook = f"#!/bin/sh\necho \"$0 $*\" >> {marker}\nexit ${{USER_HOOK_EXIT:-0}}\n"
    (hooks_dir / "pre-commit").write_text(user_hook)
    os.chmod(hooks_dir / "pre-commit", 0o755)
    with pytest.raises(hooks.HookExists, match=r"pre-commit.*--force") as err:
        hooks.install(str(repo))
    assert err.value.hooks == ["pre-commit"]
    assert (hooks_dir / "pre-commit").read_text() == user_hook
    assert not (hooks_dir / "pre-push").exists()  # nothing half-installed

    changes = {c.hook: c.action for c in hooks.install(str(repo), force=True)}
    assert changes == {"pre-commit": "chained", "post-commit": "installed", "pre-push": "installed"}
    assert (hooks_dir / "pre-commit.local").read_text() == user_hook

    (repo / "train.py").write_text("print('1')\n")
    assert run_git("commit", "-qam", "one", cwd=repo).returncode == 0
    assert marker.read_text().count("pre-commit.local") == 1  # your hook still runs
    stage_tracking_file(repo)
    assert run_git("commit", "-qm", "two", cwd=repo).returncode == 1  # and so does gitexp's
    git("rm", "-q", "-r", "--cached", ".tracking", cwd=repo)
    (repo / "train.py").write_text("print('2')\n")
    blocked = run_git("commit", "-qam", "three", cwd=repo, env=child_env(USER_HOOK_EXIT="3"))
    assert blocked.returncode != 0  # a failing hook of yours still stops the commit

    assert {c.hook: c.action for c in hooks.uninstall(str(repo))} == \
        {"pre-commit": "restored", "post-commit": "removed", "pre-push": "removed"}
    assert (hooks_dir / "pre-commit").read_text() == user_hook
    assert not (hooks_dir / "pre-commit.local").exists()


def test_install_honours_core_hooks_path(repo):
    git("config", "core.hooksPath", ".githooks", cwd=repo)
    hooks.install(str(repo), hooks=["pre-commit"])
    assert hooks.is_gitexp_hook(str(repo / ".githooks" / "pre-commit"))
    stage_tracking_file(repo)
    assert run_git("commit", "-m", "x", cwd=repo).returncode == 1


def test_cli_hooks_commands(repo):
    from gitexp.cli import main

    runner = CliRunner()
    result = runner.invoke(main, ["hooks", "install", "--hook", "pre-push"])
    assert result.exit_code == 0 and "pre-push: installed" in result.output
    result = runner.invoke(main, ["hooks", "status"])
    assert "pre-push: gitexp" in result.output and "pre-commit: absent" in result.output
    (repo / ".git" / "hooks" / "pre-commit").write_text("#!/bin/sh\nexit 0\n")
    result = runner.invoke(main, ["hooks", "install"])
    assert result.exit_code == 1 and "will not overwrite" in result.output
    result = runner.invoke(main, ["hooks", "uninstall"])
    assert "pre-push: removed" in result.output and "pre-commit: not ours" in result.output
    for args in (["hooks"], ["hooks", "install"], ["hooks", "uninstall"], ["hooks", "status"], ["hooks", "run"]):
        assert "Example:" in runner.invoke(main, [*args, "--help"]).output


def test_shipped_hook_files(repo):
    for name in hooks.HOOK_NAMES:
        wrapper = PROJECT / "hooks" / name
        assert os.access(wrapper, os.X_OK)
        assert f'exec gitexp hooks run {name} "$@"' in wrapper.read_text()
        rendered = hooks.render(name, "/opt/py'thon")
        assert rendered.startswith("#!/bin/sh\n") and hooks.MARKER in rendered
        assert "GITEXP_PYTHON='/opt/py'\\''thon'" in rendered
        checked = subprocess.run(["sh", "-n"], input=rendered, text=True, capture_output=True)
        assert checked.returncode == 0, checked.stderr


# -- the pre-commit framework ------------------------------------------------------------------------
def _framework_env(tmp_path: Path) -> dict[str, str]:
    # `gitexp` on PATH runs this checkout (the manifest's entry is `gitexp hooks run ...`).
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir(exist_ok=True)
    shim = bin_dir / "gitexp"
    shim.write_text(f"#!/bin/sh\nexec '{sys.executable}' -m gitexp \"$@\"\n")
    os.chmod(shim, 0o755)
    path = os.pathsep.join([str(bin_dir), os.path.dirname(sys.executable), os.environ.get("PATH", "")])
    return child_env(PATH=path, PRE_COMMIT_HOME=str(tmp_path / "pre-commit-home"))


def test_manifest_is_valid_for_the_pre_commit_framework(tmp_path):
    import pre_commit  # noqa: F401  (a dev dependency: missing, the test fails loudly)
    result = subprocess.run([sys.executable, "-m", "pre_commit", "validate-manifest",
                             str(PROJECT / ".pre-commit-hooks.yaml")], capture_output=True, text=True,
                            env=_framework_env(tmp_path))
    assert result.returncode == 0, result.stdout + result.stderr
    manifest = yaml.safe_load((PROJECT / ".pre-commit-hooks.yaml").read_text())
    assert {h["stages"][0] for h in manifest} == {"pre-commit", "post-commit", "pre-push"}


def test_hooks_through_the_pre_commit_framework(repo, tmp_path):
    import pre_commit  # noqa: F401  (a dev dependency: missing, the test fails loudly)
    env = _framework_env(tmp_path)
    # The manifest's hooks as a `repo: local` config: same ids, entries and stages; `language:
    # system` because the isolated environment of `language: python` needs PyPI, not here.
    manifest = yaml.safe_load((PROJECT / ".pre-commit-hooks.yaml").read_text())
    local_hooks = [{**hook, "language": "system"} for hook in manifest]
    config = {"repos": [{"repo": "local", "hooks": local_hooks}]}
    (repo / ".pre-commit-config.yaml").write_text(yaml.safe_dump(config, sort_keys=False))
    git("add", ".pre-commit-config.yaml", cwd=repo)
    git("commit", "-q", "-m", "pre-commit config", cwd=repo)
    installed = subprocess.run([sys.executable, "-m", "pre_commit", "install", "-t", "pre-commit",
                                "-t", "post-commit", "-t", "pre-push"], cwd=repo, capture_output=True,
                               text=True, env=env)
    assert installed.returncode == 0, installed.stdout + installed.stderr

    stage_tracking_file(repo)
    refused = run_git("commit", "-m", "oops", cwd=repo, env=env)
    assert refused.returncode == 1
    assert "refusing to commit 1 file(s) under .tracking/" in refused.stdout + refused.stderr
    git("rm", "-q", "-r", "--cached", ".tracking", cwd=repo)
    shutil.rmtree(repo / ".tracking")

    run_id = dirty_run(repo, "print('framework')\n", "via-framework")
    committed = run_git("commit", "-am", "framework", cwd=repo, env=env)
    assert committed.returncode == 0, committed.stdout + committed.stderr
    head = git("rev-parse", "HEAD", cwd=repo).strip()
    assert gitexp.get_run(run_id).data.tags[LINK_TAG] == head

    remote = bare_remote(tmp_path / "remote.git")
    git("remote", "add", "origin", str(remote), cwd=repo)
    pushed = run_git("push", "origin", "main", cwd=repo, env=env)
    assert pushed.returncode == 0, pushed.stdout + pushed.stderr
    assert git("rev-parse", "gitexp", cwd=remote) == git("rev-parse", "gitexp", cwd=repo)
