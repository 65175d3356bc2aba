"""Storage format 2: long histories in write-once chunks, checkpoints on live refs, mixed formats."""

from __future__ import annotations

import math
import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

import gitexp
from gitexp.exceptions import GitexpError, RefLocked
from gitexp.store import layout
from gitexp.store.objects import MODE_BLOB
from gitexp.store.protection import LOCK_MIN_AGE

from .conftest import git, make_repo, require_mlflow, reset_gitexp

SPECIAL = [math.nan, math.inf, -math.inf, 0.0, -0.0, 5e-324, 1.7976931348623157e308, 1 / 3]


def _expected(points: list[tuple[int, int, float]]) -> list[tuple[int, int, float]]:
    """MLflow's history order: by step, then time (stable); exact duplicates once."""
    seen, out = set(), []
    for p in sorted(points, key=lambda p: (p[0], p[1])):
        ident = (p[0], p[1], "nan" if math.isnan(p[2]) else p[2])
        if ident not in seen:
            seen.add(ident)
            out.append(p)
    return out


def _history(client, run_id: str, key: str) -> list[tuple[int, int, float]]:
    return [(m.step, m.timestamp, m.value) for m in client.get_metric_history(run_id, key)]


def _same(a: list[tuple[int, int, float]], b: list[tuple[int, int, float]]) -> bool:
    if len(a) != len(b):
        return False
    for (s1, t1, v1), (s2, t2, v2) in zip(a, b, strict=True):
        if s1 != s2 or t1 != t2:
            return False
        if not (v1 == v2 or (math.isnan(v1) and math.isnan(v2))) or math.copysign(1, v1) != math.copysign(1, v2):
            return False
    return True


def test_a_long_history_through_many_checkpoints_reads_back_exactly(repo, monkeypatch):
    monkeypatch.setenv("GITEXP_CHECKPOINT_INTERVAL", "100000")  # checkpoints driven by the test
    monkeypatch.setenv("GITEXP_PUBLISH_EVERY", "4")
    rng = random.Random(13)
    client = gitexp.MlflowClient()
    run = client.create_run("0")
    run_id = run.info.run_id
    store = client._store
    logged: dict[str, list] = {"loss": [], "acc": []}
    checkpoints = 150  # more than one chunk group (64 chunks) per metric
    before = 0  # the branch is created by the run's first publishing checkpoint
    for c in range(checkpoints):
        for i in range(rng.randint(0, 12)):
            key = rng.choice(["loss", "acc"])
            step = rng.choice([c * 100 + i, rng.randint(-5, 10 ** 6), 2 ** 62 + c, -(2 ** 63)])
            value = rng.choice(SPECIAL) if rng.random() < 0.2 else rng.uniform(-1e6, 1e6)
            ts = rng.choice([1_700_000_000_000 + c * 1000 + i, 0, 2 ** 63 - 1])
            client.log_metric(run_id, key, value, timestamp=ts, step=step)
            logged[key].append((step, ts, value))
            if rng.random() < 0.05:  # an exact duplicate is stored once, as in MLflow
                client.log_metric(run_id, key, value, timestamp=ts, step=step)
                logged[key].append((step, ts, value))
        if c == 77:  # read-your-writes mid-run, with points pending and on the live ref
            for key in logged:
                assert _same(_history(client, run_id, key), _expected(logged[key]))
        store.checkpoint(run_id)
    branch_commits = int(git("rev-list", "--count", "gitexp", cwd=repo)) - before
    assert branch_commits <= checkpoints // 4 + 2
    for extra in range(2):  # a checkpoint right after a publishing one is always live
        client.log_metric(run_id, "loss", 0.5, timestamp=1, step=10 ** 7 + extra)
        logged["loss"].append((10 ** 7 + extra, 1, 0.5))
        store.checkpoint(run_id)
        if git("for-each-ref", f"refs/gitexp/live/{run_id}", cwd=repo).strip():
            break
    assert git("for-each-ref", f"refs/gitexp/live/{run_id}", cwd=repo).strip()
    client.set_terminated(run_id)
    assert git("for-each-ref", "refs/gitexp/live/", cwd=repo).strip() == ""
    for key in logged:
        assert _same(_history(client, run_id, key), _expected(logged[key]))
    # A fresh process reads the same from the branch alone.
    code = ("import gitexp, json, math; c = gitexp.MlflowClient(); "
            f"h = c.get_metric_history({run_id!r}, 'loss'); "
            "print(json.dumps([[m.step, m.timestamp, repr(m.value)] for m in h]))")
    out = subprocess.run([sys.executable, "-c", code], cwd=repo, capture_output=True, text=True, check=True)
    import json

    fresh = [(s, t, float(v)) for s, t, v in json.loads(out.stdout)]
    assert _same(fresh, _expected(logged["loss"]))
    # Chunks are grouped 64 to a directory and each holds one checkpoint's points.
    run_dir = layout.run_dir(run_id)
    groups = git("ls-tree", "--name-only", f"gitexp:{run_dir}/metrics/loss", cwd=repo).split()
    assert groups[:2] == ["0000", "0001"]
    assert git("fsck", "--strict", "--no-dangling", cwd=repo).strip() == ""
    latest = client.get_run(run_id).data.metrics
    expected_latest = max(_expected(logged["acc"]), key=lambda p: (p[0], p[1], 0.0 if math.isnan(p[2]) else p[2]))
    assert latest["acc"] == expected_latest[2] or (math.isnan(latest["acc"]) and math.isnan(expected_latest[2]))


def test_bulk_interval_samples_steps_like_mlflow(repo, tmp_path):
    """Client.get_metric_history_bulk_interval against MLflow's own store on the same points."""
    require_mlflow("mlflow.store.tracking.sqlalchemy_store")
    from mlflow.entities import Metric as MlflowMetric
    from mlflow.store.tracking import sqlalchemy_store as mlflow_store

    theirs = mlflow_store.SqlAlchemyStore(f"sqlite:///{tmp_path / 'm.db'}", str(tmp_path / "art"))
    client = gitexp.MlflowClient()
    rng = random.Random(5)
    ours, mapping = [], {}
    for r in range(3):
        run = client.create_run("0")
        their_run = theirs.create_run("0", "u", 0, [], f"r{r}")
        batch = []
        for i in range(300 * (r + 1)):
            step = rng.choice([i, i, i // 3, 7])  # repeated steps and steps logged twice
            point = (step, 1000 + i, rng.random())
            client.log_metric(run.info.run_id, "m", point[2], timestamp=point[1], step=point[0])
            batch.append(MlflowMetric("m", point[2], point[1], point[0]))
        theirs.log_batch(their_run.info.run_id, batch, [], [])
        client.set_terminated(run.info.run_id)
        ours.append(run.info.run_id)
        mapping[run.info.run_id] = their_run.info.run_id
    for args in [(None, None, 10), (None, None, 2500), (50, 400, 7), (0, 0, 5), (100, 120, 1000), (2000, 3000, 3)]:
        start_step, end_step, max_results = args
        mine = client.get_metric_history_bulk_interval(ours, "m", start_step, end_step, max_results)
        reference = theirs.get_metric_history_bulk_interval(
            [mapping[r] for r in ours], "m", max_results=max_results, start_step=start_step, end_step=end_step)
        assert [(mapping[m.run_id], m.step, m.timestamp, m.value) for m in mine] == \
            [(m.run_id, m.step, m.timestamp, m.value) for m in reference], args
    with pytest.raises(GitexpError, match="max_results"):
        client.get_metric_history_bulk_interval(ours, "m", max_results=0)
    with pytest.raises(GitexpError, match="both start_step and end_step"):
        client.get_metric_history_bulk_interval(ours, "m", start_step=3)


# -- crashes ------------------------------------------------------------------------------------------
_WRITER = r"""
import os, sys, random, gitexp
client = gitexp.MlflowClient()
run = client.create_run("0")
print("RUN", run.info.run_id, flush=True)
rng = random.Random(int(sys.argv[1]))
store = client._store
for i in range(100000):
    key = "m%d" % (i % 3)
    client.log_metric(run.info.run_id, key, rng.random(), timestamp=1_700_000_000_000 + i, step=i)
    print(i, flush=True)
    if i % 97 == 96:
        store.checkpoint(run.info.run_id)
"""


@pytest.mark.parametrize("seed", range(4))
def test_sigkill_during_a_long_run_loses_nothing_logged(repo, seed):
    env = {**os.environ, "GITEXP_CHECKPOINT_INTERVAL": "0.05", "GITEXP_PUBLISH_EVERY": "3"}
    proc = subprocess.Popen([sys.executable, "-c", _WRITER, str(seed)], cwd=repo, env=env,
                            stdout=subprocess.PIPE, text=True)
    first = proc.stdout.readline().split()
    run_id = first[1]
    deadline = time.monotonic() + random.Random(seed).uniform(0.5, 2.5)
    acknowledged = -1
    while time.monotonic() < deadline:
        line = proc.stdout.readline()
        if not line:
            break
        acknowledged = int(line)
    os.kill(proc.pid, signal.SIGKILL)
    for line in proc.stdout:  # lines written before the kill are acknowledged too
        acknowledged = int(line) if line.strip().isdigit() else acknowledged
    proc.wait()
    assert acknowledged > 100
    reset_gitexp()
    client = gitexp.MlflowClient()
    try:
        recovered = client._store.recover_dead_journals(force=True)
    except RefLocked:
        # Killed inside a ref update: the write fails fast and names the lock; `gitexp doctor`
        # removes it once its owner is provably dead (docs/reliability.md), then recovers.
        time.sleep(LOCK_MIN_AGE)
        subprocess.run([sys.executable, "-m", "gitexp", "doctor"], cwd=repo, check=True, capture_output=True)
        recovered = [run_id] if client.get_run(run_id).info.status == "KILLED" else []
    assert run_id in recovered
    run = client.get_run(run_id)
    assert run.info.status == "KILLED"
    steps = set()
    for key in ("m0", "m1", "m2"):
        steps.update(m.step for m in client.get_metric_history(run_id, key))
    assert set(range(acknowledged + 1)) <= steps
    assert git("for-each-ref", "refs/gitexp/live/", cwd=repo).strip() == ""
    assert os.listdir(repo / ".git" / "gitexp" / "journal") == []
    assert git("fsck", "--strict", "--no-dangling", cwd=repo).strip() == ""


def test_a_live_checkpoint_without_a_journal_is_published(repo, monkeypatch):
    """A writer killed between dropping its journal and its live ref (or a journal deleted by
    hand): the live checkpoint still reaches the branch, the run ends KILLED."""
    monkeypatch.setenv("GITEXP_CHECKPOINT_INTERVAL", "100000")
    client = gitexp.MlflowClient()
    run = client.create_run("0")
    run_id = run.info.run_id
    client.log_metric(run_id, "x", 1.0, step=0)
    client._store.checkpoint(run_id)  # first: on the branch
    client.log_metric(run_id, "x", 2.0, step=1)
    client._store.checkpoint(run_id)  # second: on the live ref
    session = client._store._session(run_id)
    session.closed = True  # what a dead process leaves: no session in memory...
    os.close(session.fd)
    os.unlink(session.path)  # ...and no journal
    from gitexp.store.tracking import SESSIONS

    SESSIONS.remove(client._store.repo, session)
    reset_gitexp()
    client = gitexp.MlflowClient()
    assert run_id in client._store.recover_dead_journals(force=True)
    assert [m.value for m in client.get_metric_history(run_id, "x")] == [1.0, 2.0]
    assert client.get_run(run_id).info.status == "KILLED"
    assert git("for-each-ref", "refs/gitexp/live/", cwd=repo).strip() == ""


# -- formats side by side -------------------------------------------------------------------------------
def _old_format_run(repo: Path, run_id: str, points: list[tuple[int, int, float]]) -> None:
    """Commit a run exactly as gitexp 0.1 (format 1) wrote it: a whole history per JSONL file."""
    store = gitexp.MlflowClient()._store
    branch, odb = store.branch, store.branch.odb
    base = layout.run_dir(run_id)
    info = {"run_id": run_id, "experiment_id": "0", "run_name": "old-run", "user_id": "old",
            "status": "FINISHED", "start_time": 1_600_000_000_000, "end_time": 1_600_000_100_000}

    def build(_tree):
        return {
            f"{base}/run.yaml": (MODE_BLOB, odb.write_blob(layout.dump_flat(info))),
            f"{base}/params.yaml": (MODE_BLOB, odb.write_blob(layout.dump_flat({"lr": "0.1"}))),
            f"{base}/tags.yaml": (MODE_BLOB, odb.write_blob(layout.dump_flat({"mlflow.runName": "old-run"}))),
            f"{base}/metrics/loss.jsonl": (MODE_BLOB, odb.write_blob(layout.format_metric_lines(points).encode())),
        }
    tip = branch.ensure()
    tree = branch.tree_of(tip)
    with odb.batch():
        new_tree = odb.edit_tree(tree, build(tree))
        ident = branch._ident()
        commit = odb.write_commit(new_tree, [tip], "an old gitexp's run\n", ident, ident)
    assert branch.refs.compare_and_swap(branch.ref, commit, tip, "old run", ident)


def test_old_and_new_format_runs_merge_with_plain_git_and_read_correctly(tmp_path, monkeypatch):
    a = make_repo(tmp_path / "a")
    b = tmp_path / "b"
    git("clone", "-q", str(a), str(b), cwd=tmp_path)
    monkeypatch.chdir(a)
    reset_gitexp()
    old_id = "ab" * 16
    old_points = [(s, 1_600_000_000_000 + s, s / 10) for s in range(50)] + [(50, 1_600_000_000_050, math.nan)]
    _old_format_run(a, old_id, old_points)
    git("fetch", "-q", "origin", cwd=b)  # the old run is in both sides' history
    # Clone a: a new-format run, and a tag on the old run (an event by the new gitexp).
    with gitexp.start_run() as run:
        for s in range(20):
            gitexp.log_metric("loss", 1 / (s + 1), step=s)
    new_a = run.info.run_id
    gitexp.MlflowClient().set_tag(old_id, "reviewed", "yes")
    reset_gitexp()
    # Clone b: another new-format run.
    monkeypatch.chdir(b)
    with gitexp.start_run() as run:
        gitexp.log_metric("loss", 0.5, step=0)
    new_b = run.info.run_id
    reset_gitexp()
    # A plain git merge of the two tracking branches, in a worktree of b.
    git("fetch", "-q", str(a), "gitexp:refs/remotes/a/gitexp", cwd=b)
    git("worktree", "add", "-q", str(tmp_path / "wt"), "gitexp", cwd=b)
    git("merge", "-q", "--no-edit", "a/gitexp", cwd=tmp_path / "wt")
    reset_gitexp()
    client = gitexp.MlflowClient()
    old = client.get_run(old_id)
    assert old.data.tags["reviewed"] == "yes" and old.data.params == {"lr": "0.1"}
    assert math.isnan(old.data.metrics["loss"])  # the latest point (step 50) is NaN
    history = [(m.step, m.timestamp, m.value) for m in client.get_metric_history(old_id, "loss")]
    assert _same(history, old_points)
    assert [m.step for m in client.get_metric_history(new_a, "loss")] == list(range(20))
    assert client.get_run(new_b).data.metrics == {"loss": 0.5}
    found = {r.info.run_id for r in client.search_runs(["0"], "metrics.loss >= 0")}
    assert found == {new_a, new_b}
    assert git("show", "gitexp:.tracking/format.yaml", cwd=b).startswith("format: gitexp\nversion: 2\n")


def test_a_newer_storage_format_is_refused_with_the_release_to_install(repo):
    client = gitexp.MlflowClient()
    with gitexp.start_run():
        gitexp.log_param("a", 1)
    branch = client._store.branch
    odb = branch.odb
    tip = branch.tip()
    doc = b"format: gitexp\nversion: 7\nrequires: gitexp>=9.1\n"
    with odb.batch():
        tree = odb.edit_tree(branch.tree_of(tip), {layout.FORMAT_FILE: (MODE_BLOB, odb.write_blob(doc))})
        ident = branch._ident()
        commit = odb.write_commit(tree, [tip], "from the future\n", ident, ident)
    assert branch.refs.compare_and_swap(branch.ref, commit, tip, "future", ident)
    reset_gitexp()
    with pytest.raises(GitexpError, match=r"storage format 7.*reads formats up to 2.*gitexp>=9\.1"):
        gitexp.search_runs()
    result = subprocess.run([sys.executable, "-m", "gitexp", "runs", "list"], cwd=repo, capture_output=True,
                            text=True)
    assert result.returncode != 0 and "gitexp>=9.1" in result.stderr and "Traceback" not in result.stderr
