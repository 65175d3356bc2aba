"""gitexp pull / push / sync against real remotes: a bare repository and `git daemon`."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner

import gitexp
from gitexp.exceptions import MergeConflict, SyncError
from gitexp.store import sync as sync_mod
from gitexp.store.objects import MODE_BLOB

from .conftest import git, make_repo
from .remotes import GitDaemon, bare_remote, child_env, clone, first_clone


@pytest.fixture(params=["bare", "daemon"])
def remote_url(request, fresh):
    if request.param == "bare":
        yield str(bare_remote(fresh / "remote.git"))
        return
    served = fresh / "served"
    served.mkdir()
    bare_remote(served / "project.git")
    daemon = GitDaemon(served)
    yield daemon.url("project.git")
    daemon.stop()


def log_runs(client: gitexp.Client, experiment: str, names: list[str]) -> list[str]:
    found = client.get_experiment_by_name(experiment)
    experiment_id = found.experiment_id if found else client.create_experiment(experiment)
    ids = []
    for i, name in enumerate(names):
        run = client.create_run(experiment_id, run_name=name)
        client.log_param(run.info.run_id, "i", i)
        client.log_metric(run.info.run_id, "loss", 1.0 / (i + 1))
        client.set_terminated(run.info.run_id)
        ids.append(run.info.run_id)
    return ids


def run_names(client: gitexp.Client, experiment: str) -> set[str]:
    exp = client.get_experiment_by_name(experiment)
    return {r.info.run_name for r in client.search_runs([exp.experiment_id])}


def test_two_clones_log_into_one_experiment_and_sync(remote_url, fresh):
    a_path = first_clone(fresh / "alice", remote_url)
    b_path = clone(remote_url, fresh / "bob")
    alice, bob = gitexp.Client(str(a_path)), gitexp.Client(str(b_path))
    log_runs(alice, "shared", ["a1", "a2"])
    log_runs(bob, "shared", ["b1", "b2", "b3"])
    assert run_names(alice, "shared") == {"a1", "a2"}  # warms alice's caches before the pull

    first = alice.sync()
    assert first.pull.action == "remote has no tracking branch" and first.push.action == "pushed"
    second = bob.sync()
    assert second.pull.action == "merged" and second.pull.new_runs == 2
    assert second.push.action == "pushed"
    third = alice.pull()
    assert third.action == "fast-forward" and third.new_runs == 3

    for client in (alice, bob):
        experiments = [e for e in client.search_experiments() if e.name != "Default"]
        assert [e.name for e in experiments] == ["shared"]
        assert run_names(client, "shared") == {"a1", "a2", "b1", "b2", "b3"}
        assert client.get_experiment_by_name("shared").experiment_id == experiments[0].experiment_id
    tips = {git("rev-parse", "gitexp", cwd=p).strip() for p in (a_path, b_path)}
    assert len(tips) == 1
    assert alice.sync().pull.action == "up to date"
    assert alice.push().action == "up to date"


def test_plain_git_push_and_fetch_share_runs(fresh):
    url = str(bare_remote(fresh / "remote.git"))
    a_path = first_clone(fresh / "a", url)
    b_path = clone(url, fresh / "b")
    a, b = gitexp.Client(str(a_path)), gitexp.Client(str(b_path))
    log_runs(a, "plain", ["by-git"])
    log_runs(b, "plain", ["local"])
    git("push", "-q", "origin", "gitexp", cwd=a_path)
    git("fetch", "-q", "origin", cwd=b_path)          # origin/gitexp, as plain git leaves it
    assert b.pull().action == "merged"
    assert run_names(b, "plain") == {"by-git", "local"}
    git("push", "-q", "origin", "gitexp", cwd=b_path)
    git("fetch", "-q", "origin", "gitexp:gitexp", cwd=a_path)  # a fast-forward, no gitexp involved
    assert run_names(a, "plain") == {"by-git", "local"}


def test_push_that_loses_the_race_merges_and_retries(fresh):
    url = str(bare_remote(fresh / "remote.git"))
    a_path = first_clone(fresh / "a", url)
    b_path = clone(url, fresh / "b")
    a, b = gitexp.Client(str(a_path)), gitexp.Client(str(b_path))
    log_runs(a, "exp", ["from-a"])
    log_runs(b, "exp", ["from-b"])
    assert a.push().action == "pushed"
    result = b.push()  # rejected (fetch first), pulls a's runs, merges, pushes
    assert result.action == "pushed" and result.attempts == 2
    assert [m.action for m in result.merges] == ["merged"]
    c = gitexp.Client(str(clone(url, fresh / "c")))
    assert run_names(c, "exp") == {"from-a", "from-b"}  # a fresh clone starts from origin/gitexp


def test_push_commits_pending_logging_of_a_running_run_first(fresh):
    url = str(bare_remote(fresh / "remote.git"))
    a = gitexp.Client(str(first_clone(fresh / "a", url)))
    b = gitexp.Client(str(clone(url, fresh / "b")))
    run = a.create_run(a.create_experiment("live"), run_name="still-running")
    a.log_metric(run.info.run_id, "acc", 0.75)  # journaled, not committed (checkpoint every 5 s)
    a.push()
    b.pull()
    seen = b.get_run(run.info.run_id)
    assert seen.info.status == "RUNNING" and seen.data.metrics == {"acc": 0.75}
    a.set_terminated(run.info.run_id)


def test_default_remote_is_the_upstream_then_origin(fresh):
    url = str(bare_remote(fresh / "team.git"))
    path = make_repo(fresh / "work")
    client = gitexp.Client(str(path))
    log_runs(client, "e", ["r"])
    with pytest.raises(SyncError, match=r"no upstream and there is no remote named 'origin'") as err:
        client.push()
    assert "git remote add origin" in str(err.value)
    git("remote", "add", "team", url, cwd=path)
    with pytest.raises(SyncError, match=r"remotes are: team"):
        client.push()
    git("push", "-q", "-u", "team", "main", cwd=path)  # main's upstream is now team
    assert client.push().remote == "team"
    assert git("rev-parse", "gitexp", cwd=url).strip() == git("rev-parse", "gitexp", cwd=path).strip()
    with pytest.raises(SyncError, match=r"Unknown remote 'nope'.*team"):
        client.pull("nope")
    # A URL or path that is no configured remote works too.
    other = bare_remote(fresh / "other.git")
    assert client.push(str(other)).action == "pushed"
    assert client.pull(str(other)).action == "up to date"


def test_unreachable_remote_is_a_clear_error(fresh):
    path = make_repo(fresh / "work")
    git("remote", "add", "origin", str(fresh / "missing.git"), cwd=path)
    client = gitexp.Client(str(path))
    log_runs(client, "e", ["r"])
    with pytest.raises(SyncError, match=r"Could not fetch the tracking branch 'gitexp' from 'origin'"):
        client.pull()


def _diverge(fresh: Path) -> tuple[gitexp.Client, gitexp.Client, Path, Path]:
    url = str(bare_remote(fresh / "remote.git"))
    a_path = first_clone(fresh / "a", url)
    b_path = clone(url, fresh / "b")
    a, b = gitexp.Client(str(a_path)), gitexp.Client(str(b_path))
    log_runs(a, "shared", ["base"])
    a.push()
    b.pull()
    log_runs(a, "shared", ["a-only"])
    log_runs(b, "shared", ["b-only"])
    a.push()
    git("fetch", "-q", "origin", cwd=b_path)
    return a, b, a_path, b_path


def test_in_process_tree_merge_equals_git_merge_tree(fresh):
    _a, b, _a_path, b_path = _diverge(fresh)
    store = b._store
    local = git("rev-parse", "gitexp", cwd=b_path).strip()
    other = git("rev-parse", "origin/gitexp", cwd=b_path).strip()
    by_git = sync_mod.merge_trees(store, local, other, "origin/gitexp")
    in_process = sync_mod.merge_trees_in_process(store, local, other, "origin/gitexp")
    assert by_git == in_process


def test_criss_cross_merges_agree_with_git(fresh):
    """Two merge bases, and a running run's own files moving on one side: no false conflict."""
    url = str(bare_remote(fresh / "remote.git"))
    a_path = first_clone(fresh / "a", url)
    b_path = clone(url, fresh / "b")
    a, b = gitexp.Client(str(a_path)), gitexp.Client(str(b_path))
    running = a.create_run(a.create_experiment("cc")).info.run_id
    a.log_metric(running, "loss", 1.0, step=0)
    a.push()                                   # R at v1 everywhere
    b.pull()
    a.log_metric(running, "loss", 0.9, step=1)
    a.flush()                                  # A1: R's metric file at v2
    log_runs(b, "cc", ["b1"])                  # B1
    a.push()                                   # remote = A1
    assert a.pull(str(b_path)).action == "merged"   # A2 = merge(A1, B1)
    assert b.pull().action == "merged"              # B2 = merge(B1, A1): criss-cross
    a.log_metric(running, "loss", 0.8, step=2)
    a.flush()                                  # A3: R's metric file at v3
    b.set_tag(running, "seen_by", "b")         # B3
    a_tip = git("rev-parse", "gitexp", cwd=a_path).strip()
    git("fetch", "-q", str(a_path), "+gitexp:refs/remotes/a/gitexp", cwd=b_path)
    b_tip = git("rev-parse", "gitexp", cwd=b_path).strip()
    assert len(git("merge-base", "--all", a_tip, b_tip, cwd=b_path).split()) == 2
    by_git = sync_mod.merge_trees(b._store, b_tip, a_tip, "a/gitexp")
    assert sync_mod.merge_trees_in_process(b._store, b_tip, a_tip, "a/gitexp") == by_git
    assert b.pull(str(a_path)).action == "merged"
    seen = b.get_run(running)
    assert [m.value for m in b.get_metric_history(running, "loss")] == [1.0, 0.9, 0.8]
    assert seen.data.tags["seen_by"] == "b"
    a.set_terminated(running)


def test_hand_edited_conflict_stops_the_pull_and_names_the_path(fresh):
    a, b, a_path, b_path = _diverge(fresh)
    for client, text in ((a, b"edited by a\n"), (b, b"edited by b\n")):
        branch = client._store.branch
        branch.commit(lambda _t, text=text, branch=branch:
                      {".tracking/NOTES.txt": (MODE_BLOB, branch.odb.write_blob(text))}, "hand edit")
    a.push()
    before = git("rev-parse", "gitexp", cwd=b_path).strip()
    with pytest.raises(MergeConflict, match=r"\.tracking/NOTES\.txt") as err:
        b.pull()
    assert err.value.paths == [".tracking/NOTES.txt"]
    assert "branch is unchanged" in str(err.value)
    assert git("rev-parse", "gitexp", cwd=b_path).strip() == before
    local = before
    other = git("rev-parse", "origin/gitexp", cwd=b_path).strip()
    with pytest.raises(MergeConflict):
        sync_mod.merge_trees_in_process(b._store, local, other, "origin/gitexp")


def test_cli_sync_pull_push(fresh):
    from gitexp.cli import main

    url = str(bare_remote(fresh / "remote.git"))
    a_path = first_clone(fresh / "a", url)
    b_path = clone(url, fresh / "b")
    log_runs(gitexp.Client(str(a_path)), "cli", ["x"])
    runner = CliRunner()
    result = runner.invoke(main, ["-C", str(a_path), "sync"])
    assert result.exit_code == 0, result.output
    assert "Pushed gitexp to origin" in result.output
    result = runner.invoke(main, ["-C", str(b_path), "pull", "origin", "--no-progress"])
    assert result.exit_code == 0, result.output
    assert "1 new run(s)" in result.output
    result = runner.invoke(main, ["-C", str(b_path), "push", "nowhere"])
    assert result.exit_code == 1 and "Unknown remote 'nowhere'" in result.output
    for name in ("pull", "push", "sync"):
        assert "Example:" in runner.invoke(main, [name, "--help"]).output


def test_progress_goes_to_stderr(fresh, capfd):
    url = str(bare_remote(fresh / "remote.git"))
    client = gitexp.Client(str(first_clone(fresh / "a", url)))
    log_runs(client, "p", ["r"])
    capfd.readouterr()
    client.push(progress=True)
    assert "objects" in capfd.readouterr().err  # git's "Writing objects: 100% ..." lines
    log_runs(client, "p", ["s"])
    client.push(progress=False)
    assert "objects" not in capfd.readouterr().err


_PUSHER = """
import json, sys, gitexp
client = gitexp.Client(sys.argv[1])
name, rounds = sys.argv[2], int(sys.argv[3])
found = client.get_experiment_by_name("race")
experiment_id = found.experiment_id if found else client.create_experiment("race")
attempts = []
for i in range(rounds):
    run = client.create_run(experiment_id, run_name=f"{name}-{i}")
    client.log_metric(run.info.run_id, "m", i)
    client.set_terminated(run.info.run_id)
    attempts.append(client.push().attempts)
print(json.dumps(attempts))
"""


def test_six_clones_pushing_concurrently_land_every_run(fresh):
    served = fresh / "served"
    served.mkdir()
    bare_remote(served / "race.git")
    daemon = GitDaemon(served)
    try:
        url = daemon.url("race.git")
        first_clone(fresh / "c0", url)
        clones = [fresh / "c0"] + [clone(url, fresh / f"c{i}") for i in range(1, 6)]
        rounds = 3
        procs = [subprocess.Popen([sys.executable, "-c", _PUSHER, str(p), p.name, str(rounds)],
                                  stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=child_env())
                 for p in clones]
        outputs = [p.communicate(timeout=240) for p in procs]
        for proc, (_out, err) in zip(procs, outputs, strict=True):
            assert proc.returncode == 0, err
        attempts = [a for out, _ in outputs for a in json.loads(out)]
        check = gitexp.Client(str(clone(url, fresh / "check")))
        expected = {f"c{i}-{r}" for i in range(6) for r in range(rounds)}
        assert run_names(check, "race") == expected
        assert max(attempts) > 1  # the race really happened
        last = gitexp.Client(str(clones[3]))
        last.pull()
        assert run_names(last, "race") == expected
    finally:
        daemon.stop()
