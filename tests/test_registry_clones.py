"""Registry changes from two clones merge without conflict, and nothing is lost."""

from __future__ import annotations

import logging
import os
import subprocess
import sys
import textwrap

import gitexp
from gitexp.client import forget_stores

from .conftest import git, make_repo


def _as(monkeypatch, name: str) -> None:
    monkeypatch.setenv("GIT_AUTHOR_NAME", name)
    monkeypatch.setenv("GIT_AUTHOR_EMAIL", f"{name.lower()}@example.com")


def _versions(client: gitexp.Client, name: str) -> list[tuple]:
    found = client.search_model_versions(f"name = '{name}'", order_by=["version_number ASC"])
    return [(v.version, v.source, v.current_stage, v.aliases, v.renumbered_from, v.user_id) for v in found]


def _merge_with_merge_tree(repo, other_ref: str) -> None:
    """Merge `other_ref` into the tracking branch without a work tree (what a sync does)."""
    ours = git("rev-parse", "gitexp", cwd=repo).strip()
    result = subprocess.run(["git", "merge-tree", "--write-tree", "gitexp", other_ref], cwd=repo,
                            capture_output=True, text=True)
    assert result.returncode == 0, f"the merge had conflicts: {result.stdout}"
    tree = result.stdout.split()[0]
    commit = git("commit-tree", tree, "-p", ours, "-p", other_ref, "-m", "merge registry", cwd=repo).strip()
    git("update-ref", "refs/heads/gitexp", commit, ours, cwd=repo)


def test_two_clones_registering_at_once_get_distinct_numbers_and_a_notice(tmp_path, monkeypatch, caplog):
    origin = make_repo(tmp_path / "origin")
    _as(monkeypatch, "Olga")
    gitexp.Client(str(origin)).create_registered_model("churn", description="Churn model")
    gitexp.Client(str(origin)).create_model_version("churn", "/models/v1")
    git("clone", "-q", str(origin), "ana", cwd=tmp_path)
    git("clone", "-q", str(origin), "bo", cwd=tmp_path)
    ana, bo = tmp_path / "ana", tmp_path / "bo"
    forget_stores()

    # Each clone registers "version 2" of churn, unaware of the other.
    _as(monkeypatch, "Ana")
    mine = gitexp.Client(str(ana)).create_model_version("churn", "/models/ana")
    _as(monkeypatch, "Bo")
    bo_client = gitexp.Client(str(bo))
    theirs = bo_client.create_model_version("churn", "/models/bo")
    bo_client.transition_model_version_stage("churn", theirs.version, "Staging")
    bo_client.set_registered_model_alias("churn", "challenger", theirs.version)
    assert mine.version == theirs.version == 2

    # Ana merges Bo's branch with plumbing; Bo merges Ana's with a plain `git merge` in a worktree.
    git("fetch", "-q", str(bo), "gitexp:refs/remotes/bo/gitexp", cwd=ana)
    _merge_with_merge_tree(ana, "refs/remotes/bo/gitexp")
    git("fetch", "-q", str(ana), "gitexp:refs/remotes/ana/gitexp", cwd=bo)
    git("worktree", "add", "-q", str(tmp_path / "merge-wt"), "gitexp", cwd=bo)
    git("merge", "-q", "--no-edit", "refs/remotes/ana/gitexp", cwd=tmp_path / "merge-wt")
    git("worktree", "remove", str(tmp_path / "merge-wt"), cwd=bo)
    forget_stores()

    with caplog.at_level(logging.WARNING, logger="gitexp"):
        merged_ana = gitexp.Client(str(ana))
        after = _versions(merged_ana, "churn")
    # Ana registered first: her version keeps 2; Bo's becomes 3, with its stage and alias.
    assert after == [
        (1, "/models/v1", "None", [], None, "Olga"),
        (2, "/models/ana", "None", [], None, "Ana"),
        (3, "/models/bo", "Staging", ["challenger"], 2, "Bo"),
    ]
    assert _versions(gitexp.Client(str(bo)), "churn") == after  # both clones fold the same registry
    model = merged_ana.get_registered_model("churn")
    assert model.aliases == {"challenger": 3}
    assert any("Version 3" in n and "was version 2 where it was registered" in n for n in model.notices)
    assert "was version 2 where it was registered" in caplog.text
    history = merged_ana.get_registered_model_history("churn")
    assert [(h.user, h.action, h.version) for h in history if h.user == "Bo"] == [
        ("Bo", "create_version", 3), ("Bo", "transition_stage", 3), ("Bo", "set_alias", 3)]
    assert "renumbered from 2" in [h for h in history if h.user == "Bo"][0].detail
    # The URIs resolve to the right files after the merge.
    assert merged_ana.resolve_model_version("models:/churn@challenger").source == "/models/bo"
    assert merged_ana.resolve_model_version("models:/churn/2").source == "/models/ana"
    for clone in (ana, bo):
        assert subprocess.run(["git", "fsck", "--no-dangling"], cwd=clone, capture_output=True).returncode == 0
        assert git("status", "--porcelain", cwd=clone) == ""


def test_concurrent_writers_in_one_clone_never_share_a_number(repo):
    gitexp.Client().create_registered_model("busy")
    worker = textwrap.dedent("""
        import sys, gitexp
        c = gitexp.Client()
        for i in range(5):
            c.create_model_version("busy", f"/models/w{sys.argv[1]}-{i}")
    """)
    # The workers import this gitexp (not whatever the venv has installed).
    env = {**os.environ, "PYTHONPATH": os.path.dirname(os.path.dirname(gitexp.__file__))}
    procs = [subprocess.Popen([sys.executable, "-c", worker, str(w)], cwd=repo, stderr=subprocess.PIPE, text=True,
                              env=env) for w in range(4)]
    for p in procs:
        _, err = p.communicate(timeout=120)
        assert p.returncode == 0, err
    forget_stores()
    versions = gitexp.Client().search_model_versions("name = 'busy'")
    assert sorted(v.version for v in versions) == list(range(1, 21))
    assert sorted(v.source for v in versions) == sorted(f"/models/w{w}-{i}" for w in range(4) for i in range(5))
    assert all(v.renumbered_from is None for v in versions)
