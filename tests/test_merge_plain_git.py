"""Diverged tracking branches merge with plain `git merge` (in a worktree) without conflict,
and gitexp reads the merged result: experiments, runs, tags, deletions, registry events."""

from __future__ import annotations

import random
import subprocess
from pathlib import Path

import pytest

import gitexp
from gitexp.entities import ViewType
from gitexp.store import layout
from gitexp.store import sync as sync_mod

from .conftest import git
from .remotes import bare_remote, clone, first_clone


def finished_run(client: gitexp.Client, experiment_id: str, name: str, **metrics: float) -> str:
    run = client.create_run(experiment_id, run_name=name)
    for key, value in metrics.items():
        client.log_metric(run.info.run_id, key, value)
    client.set_terminated(run.info.run_id)
    return run.info.run_id


def registry_event(client: gitexp.Client, model: str, ops: list[dict]) -> None:
    """A registry change as the registry writes it: an event file under registry/<model>/events/."""
    client._store.branch.write_event(f"{layout.REGISTRY}/{layout.encode_key(model)}", ops, f"model {model!r}")


def plain_git_merge(path: Path, other: str = "origin/gitexp") -> subprocess.CompletedProcess:
    """`git merge` of the tracking branch in a scratch worktree, as a person (or a host) would."""
    worktree = path.parent / f"{path.name}-merge"
    git("worktree", "add", "-q", str(worktree), "gitexp", cwd=path)
    try:
        return subprocess.run(["git", "merge", "--no-edit", other], cwd=worktree, capture_output=True, text=True)
    finally:
        git("worktree", "remove", "--force", str(worktree), cwd=path)


def registry_ops(client: gitexp.Client, model: str) -> list[dict]:
    branch = client._store.branch
    tree = branch.subtree(branch.tree_of(branch.tip()), f"{layout.REGISTRY}/{layout.encode_key(model)}/events")
    return [op for _name, doc in branch.read_events(tree) for op in doc["ops"]] if tree else []


def test_diverged_branches_merge_with_plain_git(fresh):
    url = str(bare_remote(fresh / "remote.git"))
    a_path, b_path = first_clone(fresh / "a", url), None
    a = gitexp.Client(str(a_path))
    shared = a.create_experiment("shared")
    r1 = finished_run(a, shared, "r1", loss=0.5)
    r2 = finished_run(a, shared, "r2", loss=0.4)
    a.set_tag(r1, "stale", "yes")
    registry_event(a, "churn", [{"op": "create", "name": "churn"}])
    a.push()
    b_path = clone(url, fresh / "b")
    b = gitexp.Client(str(b_path))
    assert {r.info.run_name for r in b.search_runs([shared])} == {"r1", "r2"}

    # Side A: tags on a finished run, a deletion, a resumed run, registry changes, a new experiment.
    a.set_tag(r1, "reviewed_by", "alice")
    a.set_tag(r1, "verdict", "good")
    a.delete_run(r2)
    a._store.update_run_info(r1, "RUNNING")
    a.log_metric(r1, "loss", 0.3, step=1)
    a.set_terminated(r1)
    registry_event(a, "churn", [{"op": "version", "version": 1, "run_id": r1}])
    registry_event(a, "churn", [{"op": "alias", "alias": "champion", "version": 1}])
    a_new = a.create_experiment("new-exp")
    finished_run(a, a_new, "a-new")
    a.set_experiment_tag(shared, "owner", "alice")

    # Side B: the same run and model, the same new experiment name, other tags.
    b.set_tag(r1, "checked_by", "bob")
    b.delete_tag(r1, "stale")
    b.set_tag(r2, "note", "kept by bob")
    registry_event(b, "churn", [{"op": "version", "version": 2, "run_id": r2}])
    registry_event(b, "fraud", [{"op": "create", "name": "fraud"}])
    b_new = b.create_experiment("new-exp")
    assert b_new == a_new  # ids derive from the name
    finished_run(b, b_new, "b-new")
    b.create_experiment("bob-only")
    b.set_experiment_tag(shared, "reviewer", "bob")

    a.push()
    b.flush()
    git("fetch", "-q", "origin", cwd=b_path)
    local = git("rev-parse", "gitexp", cwd=b_path).strip()
    remote = git("rev-parse", "origin/gitexp", cwd=b_path).strip()
    expected_tree = sync_mod.merge_trees(b._store, local, remote, "origin/gitexp")

    merged = plain_git_merge(b_path)
    assert merged.returncode == 0, merged.stdout + merged.stderr
    assert "CONFLICT" not in merged.stdout
    head = git("rev-parse", "gitexp", cwd=b_path).strip()
    assert git("rev-parse", f"{head}^{{tree}}", cwd=b_path).strip() == expected_tree
    assert git("rev-list", "--parents", "-n", "1", head, cwd=b_path).split()[1:] == [local, remote]

    # gitexp reads the merged branch (same process, warm caches).
    names = sorted(e.name for e in b.search_experiments(view_type=ViewType.ALL))
    assert names == ["Default", "bob-only", "new-exp", "shared"]
    assert b.get_experiment(shared).tags == {"owner": "alice", "reviewer": "bob"}
    assert {r.info.run_name for r in b.search_runs([a_new])} == {"a-new", "b-new"}
    run1 = b.get_run(r1)
    assert {k: run1.data.tags.get(k) for k in ("reviewed_by", "verdict", "checked_by", "stale")} == \
        {"reviewed_by": "alice", "verdict": "good", "checked_by": "bob", "stale": None}
    assert run1.info.status == "FINISHED"
    assert [(m.step, m.value) for m in b.get_metric_history(r1, "loss")] == [(0, 0.5), (1, 0.3)]
    run2 = b.get_run(r2)
    assert run2.info.lifecycle_stage == "deleted" and run2.data.tags["note"] == "kept by bob"
    assert {r.info.run_name for r in b.search_runs([shared])} == {"r1"}
    churn = registry_ops(b, "churn")
    # Folded in event-name (= time) order: A's changes were made before B's.
    assert [(op["op"], op.get("version")) for op in churn] == \
        [("create", None), ("version", 1), ("alias", 1), ("version", 2)]
    assert [op["op"] for op in registry_ops(b, "fraud")] == ["create"]

    # B's merge goes back to the remote as a fast-forward; A catches up the same way.
    assert b.push().action == "pushed"
    assert a.pull().action == "fast-forward"
    assert a.get_run(r1).data.tags == b.get_run(r1).data.tags


OPS = ("run", "tag", "delete", "restore", "resume", "registry", "experiment", "experiment_tag")


def _random_changes(client: gitexp.Client, rng: random.Random, count: int, side: str) -> None:
    experiments = ["e1", "e2", "e3"]
    for step in range(count):
        op = rng.choice(OPS)
        runs = list(client._store.branch.run_trees())
        if op == "run" or not runs:
            name = rng.choice(experiments)
            found = client.get_experiment_by_name(name)
            experiment_id = found.experiment_id if found else client.create_experiment(name)
            finished_run(client, experiment_id, f"{side}-{step}", m=rng.random())
            continue
        run_id = rng.choice(sorted(runs))
        run = client.get_run(run_id)
        deleted = run.info.lifecycle_stage == "deleted"
        if op == "tag" and not deleted:
            client.set_tag(run_id, rng.choice(["k1", "k2", f"{side}-k"]), f"{side}{step}")
        elif op == "delete" and not deleted:
            client.delete_run(run_id)
        elif op == "restore" and deleted:
            client.restore_run(run_id)
        elif op == "resume" and not deleted:
            client._store.update_run_info(run_id, "RUNNING")
            client.log_metric(run_id, "m", rng.random(), step=step + 1)
            client.set_terminated(run_id)
        elif op == "registry":
            registry_event(client, rng.choice(["m1", "m2"]), [{"op": "tag", "key": side, "value": str(step)}])
        elif op == "experiment":
            name = rng.choice(experiments + ["e4"])
            if client.get_experiment_by_name(name) is None:
                client.create_experiment(name)
        elif op == "experiment_tag":
            found = client.get_experiment_by_name(rng.choice(experiments))
            if found is not None:
                client.set_experiment_tag(found.experiment_id, side, str(step))


@pytest.mark.parametrize("seed", [1, 2])
def test_random_diverged_histories_never_conflict(fresh, seed):
    rng = random.Random(seed)
    url = str(bare_remote(fresh / "remote.git"))
    a = gitexp.Client(str(first_clone(fresh / "a", url)))
    _random_changes(a, rng, 8, "base")
    a.push()
    b_path = clone(url, fresh / "b")
    b = gitexp.Client(str(b_path))
    for round_ in range(2):  # diverge, merge by plain git, push; twice, so merges stack up
        _random_changes(a, rng, 12, f"a{round_}")
        _random_changes(b, rng, 12, f"b{round_}")
        a.push()
        b.flush()
        git("fetch", "-q", "origin", cwd=b_path)
        a_runs = set(a._store.branch.run_trees())
        b_runs = set(b._store.branch.run_trees())
        merged = plain_git_merge(b_path)
        assert merged.returncode == 0, merged.stdout + merged.stderr
        assert set(b._store.branch.run_trees()) == a_runs | b_runs
        assert b.push().action == "pushed"
        a.pull()
        assert git("rev-parse", "gitexp", cwd=b_path) == git("rev-parse", "gitexp", cwd=fresh / "a")
    # Both clones fold the same state from the same tree.
    for run_id in a._store.branch.run_trees():
        ra, rb = a.get_run(run_id), b.get_run(run_id)
        assert (ra.data.tags, ra.data.metrics, ra.info.lifecycle_stage) == \
            (rb.data.tags, rb.data.metrics, rb.info.lifecycle_stage)
