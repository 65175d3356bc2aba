"""Lose nothing: git's housekeeping, a checked-out tracking branch, stale ref locks and SIGKILLs.

Everything here runs real git commands and real processes in temporary repositories.
The first part holds one test per defect (each failed before its fix); the second part
is the fault suite: short trials of writers (threads and processes logging metrics,
params, artifacts, long runs with live checkpoints) beside `git repack -a -d`,
`git gc --prune=now`, `git maintenance run`, `git pack-refs --all`, a user committing
on the tracking branch checked out in a worktree, and random SIGKILLs.  Each trial
checks `git fsck --strict`, that every acknowledged write is on the branch after
recovery, and that no run is left RUNNING (tests/faults.py; benchmarks/soak_faults.py
runs the same trials for longer).
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time

import pytest

import gitexp
from gitexp.exceptions import BranchCheckedOut, RefLocked

from .conftest import git, reset_gitexp, run_python
from .faults import FaultTrial, fsck

GITEXP = [sys.executable, "-m", "gitexp"]


def doctor(repo, timeout: float = 60) -> subprocess.CompletedProcess:
    return subprocess.run([*GITEXP, "doctor"], cwd=repo, capture_output=True, text=True, timeout=timeout)


def gitexp_refs(repo, prefix: str) -> list[str]:
    return git("for-each-ref", "--format=%(refname)", prefix, cwd=repo).split()


def gitexp_keeps(repo) -> list[str]:
    pack = repo / ".git" / "objects" / "pack"
    return [p.name for p in pack.glob("*.keep") if p.read_text().startswith("gitexp pid ")]


# == 1. git's housekeeping between writing objects and the ref that references them ==============
def test_repack_and_prune_between_logging_artifacts_and_end_run_lose_nothing(repo):
    (repo / "model").mkdir()
    for i in range(5):
        (repo / "model" / f"w{i}.bin").write_bytes(os.urandom(200) + bytes([i]))
    (repo / "notes.txt").write_text("a note\n")
    client = gitexp.Client()
    with gitexp.start_run() as run:
        run_id = run.info.run_id
        gitexp.log_artifacts(str(repo / "model"), "model")
        gitexp.log_artifact(str(repo / "notes.txt"))
        gitexp.log_text("some text", "text/t.txt")
        gitexp.log_dict({"a": 1}, "conf.json")
        # What git gc / maintenance does to objects nothing references yet.
        git("repack", "-a", "-d", "-q", cwd=repo)
        git("gc", "--prune=now", "-q", cwd=repo)
        gitexp.log_metric("m", 1.0)
        client._store.checkpoint(run_id)  # a checkpoint to the live ref, then more housekeeping
        gitexp.log_text("after checkpoint", "text/u.txt")
        git("repack", "-a", "-d", "-q", cwd=repo)
        git("gc", "--prune=now", "-q", cwd=repo)
    git("repack", "-a", "-d", "-q", cwd=repo)
    git("gc", "--prune=now", "-q", cwd=repo)
    assert fsck(repo) == ""
    reset_gitexp()
    out = gitexp.Client().download_artifacts(run_id, "", str(repo.parent / "out"))
    for i in range(5):
        assert open(os.path.join(out, "model", f"w{i}.bin"), "rb").read() == \
            (repo / "model" / f"w{i}.bin").read_bytes()
    assert open(os.path.join(out, "notes.txt")).read() == "a note\n"
    assert open(os.path.join(out, "text", "u.txt")).read() == "after checkpoint"
    # Nothing of the protection is left behind.
    assert gitexp_keeps(repo) == [] and gitexp_refs(repo, "refs/gitexp/") == []


KILLED_WITH_ARTIFACTS = textwrap.dedent("""
    import os, sys, time, gitexp
    run = gitexp.start_run()
    gitexp.log_metric("m", 1.0)
    gitexp.log_text("logged, never committed", "a/one.txt")
    os.makedirs("d", exist_ok=True)
    open("d/x.bin", "wb").write(b"x" * 1000)
    gitexp.log_artifacts("d", "dir")
    print(run.info.run_id, flush=True)
    time.sleep(600)
""")


def test_artifacts_of_a_killed_writer_survive_prune_until_recovery(repo):
    proc = subprocess.Popen([sys.executable, "-c", KILLED_WITH_ARTIFACTS], cwd=repo, stdout=subprocess.PIPE,
                            text=True, env={**os.environ, "GITEXP_CHECKPOINT_INTERVAL": "600"})
    run_id = proc.stdout.readline().strip()
    proc.kill()
    proc.wait()
    # The dead session's pending ref keeps its blobs reachable until its journal is committed.
    git("repack", "-a", "-d", "-q", cwd=repo)
    git("gc", "--prune=now", "-q", cwd=repo)
    result = doctor(repo)
    assert result.returncode == 0, result.stdout + result.stderr
    assert fsck(repo) == ""
    reset_gitexp()
    client = gitexp.Client()
    assert client.get_run(run_id).info.status == "KILLED"
    out = client.download_artifacts(run_id, "", str(repo.parent / "out"))
    assert open(os.path.join(out, "a", "one.txt")).read() == "logged, never committed"
    assert open(os.path.join(out, "dir", "x.bin"), "rb").read() == b"x" * 1000
    assert gitexp_refs(repo, "refs/gitexp/") == [] and gitexp_keeps(repo) == []


KILLED_INSIDE_A_COMMIT = textwrap.dedent("""
    import os, signal, gitexp
    from gitexp.store.objects import MODE_BLOB
    branch = gitexp.Client()._store.branch
    branch.ensure()
    # Die where a commit's pack is written and kept, right before the ref update (the last
    # thing a commit does before moving the ref is the checked-out check).
    branch.refuse_if_checked_out = lambda: os.kill(os.getpid(), signal.SIGKILL)
    branch.commit(lambda _tree: {"x.txt": (MODE_BLOB, branch.odb.write_blob(b"never referenced"))}, "doomed")
""")


def test_keep_file_of_a_process_killed_inside_a_commit_is_removed_by_recovery(repo):
    result = run_python(KILLED_INSIDE_A_COMMIT, cwd=repo)
    assert result.returncode == -signal.SIGKILL
    dead = set(gitexp_keeps(repo))
    assert dead  # the dead process's pack is still kept...
    age(repo / ".git" / "refs" / "heads" / "gitexp.lock", 120)  # (it died holding the ref lock too)
    with gitexp.Client()._store.branch.odb.protected():  # ...and a live process's keep stays
        gitexp.Client()._store.branch.odb.write_blob(b"held by a live process")
        mine = set(gitexp_keeps(repo)) - dead
        result = doctor(repo)
        assert result.returncode == 0, result.stdout
        assert "removed stale lock" in result.stdout and "1 pack keep file" in result.stdout
        assert set(gitexp_keeps(repo)) == mine and len(mine) == 1
    assert gitexp_keeps(repo) == []
    assert fsck(repo) == ""


def test_gitexps_own_repack_drops_nothing(repo):
    from gitexp.store.objects import REPACK_PACK_COUNT

    odb = gitexp.Client()._store.branch.odb
    unreachable = []
    for i in range(REPACK_PACK_COUNT + 2):
        with odb.batch():  # an unprotected pack, whose objects nothing references
            unreachable.append(odb.write_blob(b"unreferenced %d" % i))
    with odb.protected():
        kept = odb.write_blob(b"kept, not yet referenced")
        assert odb.maybe_repack(threshold=2)
        packs = os.listdir(repo / ".git" / "objects" / "pack")
        assert len([p for p in packs if p.endswith(".idx")]) < REPACK_PACK_COUNT
        assert [p for p in packs if p.endswith(".keep")]
    for sha in unreachable + [kept]:
        assert git("cat-file", "-t", sha, cwd=repo).strip() == "blob"


def test_roll_up_leaves_large_and_kept_packs_and_loses_nothing(repo):
    """gitexp's own roll-up is geometric over the small unkept packs only: a pack that reached
    REPACK_SEALED_BYTES and a kept pack stay as they are, and every object stays readable."""
    import random

    from gitexp.store import objects

    odb = gitexp.Client()._store.branch.odb
    pack_dir = repo / ".git" / "objects" / "pack"
    rng = random.Random(5)
    with odb.batch():  # one large pack of incompressible blobs (never rolled)
        large = [odb.write_blob(rng.randbytes(1 << 16)) for _ in range(objects.REPACK_SEALED_BYTES // (1 << 16) + 2)]
    large_pack = max(pack_dir.glob("*.pack"), key=lambda p: p.stat().st_size)
    assert large_pack.stat().st_size >= objects.REPACK_SEALED_BYTES
    small = []
    for i in range(10):
        with odb.batch():
            small.append(odb.write_blob(b"small %d" % i))
    with odb.protected():
        kept = odb.write_blob(b"kept while rolling")
        kept_packs = {p.name for p in pack_dir.glob("*.keep")}
        before = {p.name for p in pack_dir.glob("*.pack")}
        assert odb.maybe_repack(threshold=4)
        after = {p.name for p in pack_dir.glob("*.pack")}
        assert large_pack.name in after  # sealed: left to git's own gc
        assert {k[:-5] + ".pack" for k in kept_packs} <= after  # kept: never rolled
        assert len(after) < len(before) - 5  # the small ones became one
        assert not [p for p in pack_dir.iterdir() if p.suffix == ".idx" and not p.with_suffix(".pack").exists()]
    for sha in large + small + [kept]:
        assert git("cat-file", "-t", sha, cwd=repo).strip() == "blob"
        assert odb.read_blob(sha)
    assert fsck(repo) == ""


@pytest.mark.parametrize("sizes, rolled", [
    ([30, 30, 30], [0, 1, 2]),                 # equal small packs: all roll
    ([1000, 30, 31], [1, 2]),                  # a progression above stays
    ([1000, 400, 30], []),                     # already a progression: nothing to do
    ([1000, 100, 30, 31], [1, 2, 3]),          # 100 < 2 x (30 + 31): rolls with them
])
def test_geometric_roll_keeps_a_factor_two_progression(sizes, rolled):
    from gitexp.store.objects import geometric_roll

    packs = [(size, f"p{i}") for i, size in enumerate(sizes)]
    assert sorted(geometric_roll(packs, 2)) == sorted(f"p{i}" for i in rolled)


def test_the_same_objects_written_again_never_reuse_a_pack_name(repo):
    """A refused commit retried with the same objects makes the same pack; the earlier one,
    unkept and unreachable, may be being deleted by `git repack -a -d` (.idx, .pack, then
    .keep, by name): the retry must write a pack of its own."""
    odb = gitexp.Client()._store.branch.odb
    pack_dir = repo / ".git" / "objects" / "pack"
    names = []
    for _ in range(3):
        with odb.protected():
            with odb.batch():
                odb.write_blob(b"the same content")
                odb.write_tree([])
            names.append({p.name for p in pack_dir.glob("*.pack")})
    assert len(names[0]) == 1 and len(names[1]) == 2 and len(names[2]) == 3
    for pack in pack_dir.glob("*.idx"):
        assert git("verify-pack", str(pack), cwd=repo, check=False) == ""
    assert fsck(repo) == ""


# == 2. the tracking branch checked out in a worktree ==============================================
def test_commit_on_the_checked_out_tracking_branch_loses_no_run(repo):
    with gitexp.start_run() as before:
        gitexp.log_metric("m", 1.0)
    git("checkout", "-q", "gitexp", cwd=repo)  # the user looks at the branch in the main worktree
    acknowledged = [before.info.run_id]
    try:
        with gitexp.start_run() as run:
            gitexp.log_metric("m", 2.0)
        acknowledged.append(run.info.run_id)
    except BranchCheckedOut as exc:
        assert str(repo) in exc.message and "switch" in exc.message and "Nothing logged is lost" in exc.message
    (repo / "NOTES.md").write_text("my notes on these runs\n")
    git("add", "NOTES.md", cwd=repo)
    git("commit", "-q", "-m", "user's own commit", cwd=repo)
    user_commit = git("rev-parse", "HEAD", cwd=repo).strip()
    git("checkout", "-q", "main", cwd=repo)
    assert doctor(repo).returncode == 0
    reset_gitexp()
    on_branch = {r.info.run_id for r in gitexp.Client().search_runs(["0"])}
    assert set(acknowledged) <= on_branch
    assert git("merge-base", "--is-ancestor", user_commit, "gitexp", cwd=repo, check=False) == ""
    assert fsck(repo) == ""


RUN_ACROSS_A_CHECKOUT = textwrap.dedent("""
    import sys, time, gitexp
    from gitexp.exceptions import BranchCheckedOut
    run = gitexp.start_run()
    gitexp.log_param("p", 1)
    print(run.info.run_id, flush=True)
    step = 0
    while sys.stdin.readline().strip() == "more":
        for _ in range(20):
            gitexp.log_metric("m", step, step=step)
            step += 1
        gitexp.log_text(f"at {step}", f"notes/{step}.txt")
        time.sleep(0.3)  # checkpoints (0.05 s): live ones, and publishing points every 2nd
        print(step, flush=True)
    try:
        gitexp.end_run()
        print("ended", flush=True)
    except BranchCheckedOut as exc:
        print("refused:", exc.message.splitlines()[0], flush=True)
""")


def test_a_run_goes_on_while_the_branch_is_checked_out_in_a_worktree_and_lands_after(repo, tmp_path):
    gitexp.Client()._store.branch.ensure()
    proc = subprocess.Popen([sys.executable, "-c", RUN_ACROSS_A_CHECKOUT], cwd=repo, stdin=subprocess.PIPE,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env={**os.environ, "GITEXP_CHECKPOINT_INTERVAL": "0.05", "GITEXP_PUBLISH_EVERY": "2"})

    def more() -> str:
        proc.stdin.write("more\n")
        proc.stdin.flush()
        return proc.stdout.readline().strip()

    run_id = proc.stdout.readline().strip()
    more()
    wt = tmp_path / "look"
    git("worktree", "add", "-q", str(wt), "gitexp", cwd=repo)
    tip = git("rev-parse", "gitexp", cwd=repo).strip()
    more()
    more()
    assert git("rev-parse", "gitexp", cwd=repo).strip() == tip  # gitexp does not move it meanwhile
    (wt / "NOTES.md").write_text("notes\n")
    git("add", "NOTES.md", cwd=wt)
    git("commit", "-q", "-m", "user's commit on the checked-out branch", cwd=wt)
    steps = int(more())
    proc.stdin.write("stop\n")
    proc.stdin.flush()
    out, err = proc.communicate(timeout=60)
    assert out.startswith("refused: The tracking branch 'gitexp' is checked out in"), out + err
    assert err.count("goes on without publishing") == 1, err  # said once, not at every checkpoint
    git("-C", str(wt), "switch", "-q", "--detach", cwd=repo)
    result = doctor(repo)
    assert result.returncode == 0, result.stdout
    reset_gitexp()
    client = gitexp.Client()
    run = client.get_run(run_id)
    assert run.info.status == "FINISHED"  # end_run was journaled; it landed once the branch was free
    assert [m.step for m in client.get_metric_history(run_id, "m")] == list(range(steps))
    assert len(client.list_artifacts(run_id, "notes")) == 4
    assert (git("show", "gitexp:NOTES.md", cwd=repo)) == "notes\n"  # the user's commit stays too
    assert gitexp_refs(repo, "refs/gitexp/") == [] and fsck(repo) == ""


def test_cli_and_server_refuse_to_write_to_a_checked_out_branch(repo, tmp_path):
    import httpx

    from .server_process import ServerProcess

    gitexp.Client()._store.branch.ensure()
    wt = tmp_path / "look"
    git("worktree", "add", "-q", str(wt), "gitexp", cwd=repo)
    tip = git("rev-parse", "gitexp", cwd=repo).strip()
    cli = subprocess.run([*GITEXP, "experiments", "create", "new"], cwd=repo, capture_output=True, text=True)
    assert cli.returncode == 1 and "Traceback" not in cli.stderr
    assert f"The tracking branch 'gitexp' is checked out in {wt}" in cli.stderr
    server = ServerProcess(repo)
    try:
        with httpx.Client(base_url=server.url, timeout=30) as http:
            resp = http.post("/api/2.0/mlflow/runs/create", json={"experiment_id": "0"})
            assert resp.status_code == 409, resp.text
            assert resp.json()["error_code"] == "RESOURCE_CONFLICT"
            assert "checked out in" in resp.json()["message"]
            assert git("rev-parse", "gitexp", cwd=repo).strip() == tip
            git("-C", str(wt), "switch", "-q", "--detach", cwd=repo)
            assert http.post("/api/2.0/mlflow/runs/create", json={"experiment_id": "0"}).status_code == 200
    finally:
        log = server.stop()
    assert "Traceback" not in log, log[-3000:]


# == 3. a ref lock left by a process killed inside the ref update ==================================
KILL_INSIDE_REF_UPDATE = textwrap.dedent("""
    import os, signal, gitexp
    branch = gitexp.Client()._store.branch
    tip = branch.ensure()
    lock = os.path.join(branch.refs.git_dir, branch.ref + ".lock")
    read = branch.refs.read
    # The real compare-and-swap, killed while it holds refs/heads/gitexp.lock (at its first read).
    branch.refs.read = lambda ref: os.kill(os.getpid(), signal.SIGKILL) if os.path.exists(lock) else read(ref)
    branch.refs.compare_and_swap(branch.ref, tip, tip, "x", branch._ident())
""")

DEAD_WRITER = textwrap.dedent("""
    import time, gitexp
    run = gitexp.start_run()
    for i in range(10):
        gitexp.log_metric("m", i, step=i)
    print(run.info.run_id, flush=True)
    time.sleep(600)
""")

WRITE_TWICE = textwrap.dedent("""
    import json, time, gitexp
    out = []
    for what in ("start_run", "create_experiment"):
        t = time.monotonic()
        try:
            gitexp.start_run() if what == "start_run" else gitexp.Client().create_experiment("e")
            out.append([what, "ok", time.monotonic() - t, ""])
        except Exception as exc:
            out.append([what, type(exc).__name__, time.monotonic() - t, str(exc)])
    print(json.dumps(out))
""")


def leave_stale_lock(repo, dead_journals: int = 3) -> list[str]:
    """Dead writers' journals, then a process killed inside the branch's ref update."""
    gitexp.Client(str(repo))._store.branch.ensure()
    procs = [subprocess.Popen([sys.executable, "-c", DEAD_WRITER], cwd=repo, stdout=subprocess.PIPE, text=True,
                              env={**os.environ, "GITEXP_CHECKPOINT_INTERVAL": "600"})
             for _ in range(dead_journals)]
    runs = [proc.stdout.readline().strip() for proc in procs]  # all alive: nobody recovers another
    for proc in procs:
        proc.kill()
        proc.wait()
    result = run_python(KILL_INSIDE_REF_UPDATE, cwd=repo)
    assert result.returncode == -signal.SIGKILL, result.stderr
    lock = repo / ".git" / "refs" / "heads" / "gitexp.lock"
    assert lock.exists() and lock.read_bytes() == b""
    return runs


def age(path, seconds: float) -> None:
    then = time.time() - seconds
    os.utime(path, (then, then))


def test_stale_ref_lock_fails_fast_and_doctor_clears_it(repo):
    runs = leave_stale_lock(repo)
    lock = repo / ".git" / "refs" / "heads" / "gitexp.lock"
    age(lock, 120)  # as if the process had died two minutes ago
    result = run_python(WRITE_TWICE, cwd=repo, timeout=40)  # (before: 30 s a dead journal, then 30 s more)
    assert result.returncode == 0, result.stderr
    import json

    (first, kind, first_s, message), second = json.loads(result.stdout)
    assert kind == "RefLocked" and first_s < 8, (kind, first_s, message)
    assert str(lock) in message and "gitexp doctor" in message and "no running gitexp process holds it" in message
    assert second[1] == "RefLocked" and second[2] < 1.0  # the same stale lock: no second wait
    # Nothing was claimed and kept by the failed recovery: the journals are all still there.
    journals = os.listdir(repo / ".git" / "gitexp" / "journal")
    assert len([n for n in journals if n.endswith(".jsonl")]) == len(runs), journals

    result = doctor(repo)
    assert result.returncode == 0, result.stdout + result.stderr
    assert f"removed stale lock {lock}" in result.stdout
    assert not lock.exists()
    reset_gitexp()
    client = gitexp.Client()
    for run_id in runs:
        assert client.get_run(run_id).info.status == "KILLED"
        assert len(client.get_metric_history(run_id, "m")) == 10
    with gitexp.start_run():
        gitexp.log_metric("m", 1.0)
    assert fsck(repo) == ""


HOLD_REF_LOCK = textwrap.dedent("""
    import sys, time, gitexp
    refs = gitexp.Client()._store.branch.refs
    refs._acquire(sys.argv[1], "refs/heads/gitexp")  # as compare_and_swap holds it
    print("held", flush=True)
    time.sleep(600)
""")


def test_doctor_removes_a_lock_only_when_its_owner_is_provably_dead(repo):
    gitexp.Client()._store.branch.ensure()
    lock = repo / ".git" / "refs" / "heads" / "gitexp.lock"
    holder = subprocess.Popen([sys.executable, "-c", HOLD_REF_LOCK, str(lock)], cwd=repo, stdout=subprocess.PIPE,
                              text=True)
    try:
        assert holder.stdout.readline().strip() == "held"
        age(lock, 120)
        result = doctor(repo)
        assert result.returncode == 1 and "a running gitexp process holds it" in result.stdout, result.stdout
        assert lock.exists()
        with pytest.raises(RefLocked) as info:  # a writer meanwhile: a short wait, then a clear error
            gitexp.Client(str(repo)).create_experiment("x")
        assert "held by a running gitexp process" in info.value.message
    finally:
        holder.kill()
        holder.wait()
    os.utime(lock)  # its owner is dead now, but a lock this young might be a live writer's
    result = doctor(repo)
    assert result.returncode == 1 and "younger than" in result.stdout and lock.exists(), result.stdout
    git_proc = subprocess.Popen(["git", "update-ref", "--stdin"], cwd=repo, stdin=subprocess.PIPE)
    try:  # a git process working in the repository might own it (git's locks carry no flock)
        age(lock, 120)
        result = doctor(repo)
        assert result.returncode == 1 and "a git process is running" in result.stdout and lock.exists()
    finally:
        git_proc.communicate(b"", timeout=10)
    result = doctor(repo)
    assert result.returncode == 0 and not lock.exists(), result.stdout
    reset_gitexp()
    gitexp.Client().create_experiment("works again")


def test_a_restarted_server_answers_at_once_despite_a_stale_lock_and_many_dead_journals(repo):
    import httpx

    from .server_process import ServerProcess

    leave_stale_lock(repo, dead_journals=6)
    age(repo / ".git" / "refs" / "heads" / "gitexp.lock", 120)
    server = ServerProcess(repo)
    try:
        with httpx.Client(base_url=server.url, timeout=120) as http:
            t = time.monotonic()
            resp = http.post("/api/2.0/mlflow/runs/create", json={"experiment_id": "0"})
            assert time.monotonic() - t < 8
            assert resp.status_code == 409 and "gitexp.lock" in resp.json()["message"], resp.text
            assert doctor(repo).returncode == 0
            assert http.post("/api/2.0/mlflow/runs/create", json={"experiment_id": "0"}).status_code == 200
    finally:
        log = server.stop()
    assert "Traceback" not in log, log[-3000:]


LONG_RUN = textwrap.dedent("""
    import time, gitexp
    with gitexp.start_run() as run:
        for step in range(40):
            gitexp.log_metric("m", step, step=step)
            time.sleep(0.01)  # live checkpoints every 0.02 s, a publishing point every 2nd
    print(run.info.run_id, flush=True)
""")


def test_a_live_ref_that_cannot_be_deleted_never_undoes_the_run(repo):
    gitexp.Client()._store.branch.ensure()
    # packed-refs.lock left by a process killed while deleting a ref: every deletion needs it.
    stale = repo / ".git" / "packed-refs.lock"
    stale.write_bytes(b"")
    result = run_python(LONG_RUN, cwd=repo, env={"GITEXP_CHECKPOINT_INTERVAL": "0.02", "GITEXP_PUBLISH_EVERY": "2",
                                                "GITEXP_REF_LOCK_TIMEOUT": "0.2"})
    assert result.returncode == 0, result.stderr
    run_id = result.stdout.strip()
    assert "could not drop the live ref" in result.stderr
    assert gitexp_refs(repo, "refs/gitexp/live/")  # left behind, but holding what the branch has
    age(stale, 120)
    assert doctor(repo).returncode == 0  # clears the lock, then the leftover live ref
    reset_gitexp()
    client = gitexp.Client()
    assert client.get_run(run_id).info.status == "FINISHED"
    assert [m.step for m in client.get_metric_history(run_id, "m")] == list(range(40))
    assert gitexp_refs(repo, "refs/gitexp/") == [] and fsck(repo) == ""


# == the fault suite ===================================================================================
# Trial counts and results of the suite and of a longer soak: docs/reliability figures come from
# `python benchmarks/soak_faults.py` (see its docstring).
@pytest.mark.parametrize("seed", range(6))
def test_fault_trial(tmp_path, seed):
    trial = FaultTrial(tmp_path / "trial", seed=seed, duration=1.5)
    report = trial.run()
    assert report.ok, report.describe()
