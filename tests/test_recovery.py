"""Recovery of the journals of dead processes ("Lose nothing", defects 2, 3 and 5).

Every writer here is a real process, killed with SIGKILL.  A journal written in
another container (another hostname, another pid namespace) or on another machine is
made by rewriting a killed (or live) process's journal header: the liveness rule must
not need the hostname when the journal's lock proves the writer dead or alive.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest
from click.testing import CliRunner

import gitexp
from gitexp.cli import main
from gitexp.store.journal import find_dead_journals

from .conftest import git, require_mlflow, reset_gitexp


# -- helpers ---------------------------------------------------------------------------------------------------
def journal_dir(repo: Path) -> Path:
    return repo / ".git" / "gitexp" / "journal"


def journals(repo: Path) -> list[Path]:
    d = journal_dir(repo)
    return sorted(d.iterdir()) if d.exists() else []


def journal_of(repo: Path, run_id: str) -> Path:
    found = [p for p in journals(repo) if p.name.startswith(run_id + ".")]
    assert len(found) == 1, found
    return found[0]


def start(code: str, repo: Path, **env: str) -> tuple[subprocess.Popen, str]:
    """A real writer process; returns it and the first line it prints (a run id)."""
    proc = subprocess.Popen([sys.executable, "-c", textwrap.dedent(code)], cwd=repo, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True,
                            env={**os.environ, "GITEXP_CHECKPOINT_INTERVAL": "600", **env})
    line = proc.stdout.readline().strip()  # type: ignore[union-attr]
    if not line:
        proc.kill()
        raise AssertionError(proc.stderr.read())  # type: ignore[union-attr]
    return proc, line


def sigkill(proc: subprocess.Popen) -> None:
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=30)


def rewrite_header(path: Path, **changes) -> dict:
    """Make a journal look written elsewhere: change header fields in place (same length,
    padded with spaces, so a live writer's open file stays the same file)."""
    with open(path, "r+b") as fh:
        first = fh.readline()
        header = json.loads(first)
        header.update(changes)
        header = {k: v for k, v in header.items() if v is not _DROP}
        new = json.dumps(header).encode()
        assert len(new) < len(first), "the new header must fit in place"
        fh.seek(0)
        fh.write(new + b" " * (len(first) - 1 - len(new)))
    return header


_DROP = object()


def other_host(path: Path) -> str:
    """Another hostname that fits in place of this one (with pid 1, which is shorter)."""
    host = json.loads(path.read_bytes().splitlines()[0])["host"]
    for candidate in ("container-7f3a91", "ctr-7f3a", "c7", "c"):
        if candidate != host and len(candidate) <= len(host) + 3:
            return candidate
    raise AssertionError(host)


def doctor(*args: str) -> str:
    reset_gitexp()
    result = CliRunner().invoke(main, ["doctor", *args])
    assert result.exit_code == 0, result.output
    return result.output  # stdout and stderr


def trigger_write() -> None:
    """Any write in the repository recovers the journals of dead processes."""
    reset_gitexp()
    gitexp.Client().create_experiment(f"trigger-{time.monotonic_ns()}")


OWNER = """
    import time, gitexp
    run = gitexp.start_run(run_name="doomed")
    gitexp.log_param("lr", 0.1)
    for step in range(100):
        gitexp.log_metric("loss", 1.0 / (step + 1), step=step)
    print(run.info.run_id, flush=True)
    time.sleep(600)
"""


def assert_killed_with_everything(run_id: str) -> None:
    reset_gitexp()
    client = gitexp.Client()
    run = client.get_run(run_id)
    assert run.info.status == "KILLED"
    assert run.info.end_time is not None
    assert run.data.params == {"lr": "0.1"}
    assert [m.step for m in client.get_metric_history(run_id, "loss")] == list(range(100))


# -- defect 2: journals written under another hostname --------------------------------------------------------
@pytest.mark.parametrize("trial", range(2))
def test_a_run_killed_in_another_container_is_recovered(repo, trial):
    """Another container on this machine: another hostname, another pid namespace (its pid
    means nothing here -- 1 is alive here), the same kernel.  Its free lock proves it dead."""
    proc, run_id = start(OWNER, repo)
    sigkill(proc)
    path = journal_of(repo, run_id)
    rewrite_header(path, host=other_host(path), pid=1, pid_start="1")
    trigger_write()
    assert_killed_with_everything(run_id)
    assert journals(repo) == []


def test_a_live_writer_in_another_container_is_left_alone_until_it_dies(repo):
    proc, run_id = start(OWNER, repo)
    try:
        path = journal_of(repo, run_id)
        rewrite_header(path, host=other_host(path), pid=1, pid_start="1")
        trigger_write()
        output = doctor("--recover-all")  # not even --recover-all takes a journal whose lock is held
        assert "nothing to recover" in output
        assert path.exists()
        reset_gitexp()
        with pytest.raises(gitexp.exceptions.ResourceDoesNotExist):
            gitexp.get_run(run_id)  # nothing committed yet (checkpoints every 600 s)
    finally:
        sigkill(proc)
    trigger_write()
    assert_killed_with_everything(run_id)


def test_a_run_killed_on_another_machine_is_listed_and_recovered_on_request(repo):
    """Another machine sharing the disk (another boot id): a free lock proves nothing there
    (its locks may not reach us), so doctor lists the journal and recovers it on request."""
    proc, run_id = start(OWNER, repo)
    sigkill(proc)
    path = journal_of(repo, run_id)
    rewrite_header(path, host=other_host(path), pid=1, pid_start="1", boot="0" * 36)
    trigger_write()
    assert path.exists()  # not recovered by a write
    output = doctor()
    assert "nothing to recover" in output
    assert "cannot prove dead" in output and run_id in output and "--recover-all" in output
    assert path.exists()
    output = doctor("--recover-all")
    assert "warning" in output and f"recovered run {run_id}" in output
    assert_killed_with_everything(run_id)
    assert journals(repo) == []


def test_a_journal_without_a_lock_falls_back_to_the_pid_on_this_host(repo):
    """Journals of gitexp before flock (or file systems without it): the pid rule on this host."""
    proc, run_id = start(OWNER, repo)
    sigkill(proc)
    rewrite_header(journal_of(repo, run_id), lock=_DROP, boot=_DROP)
    trigger_write()
    assert_killed_with_everything(run_id)


RECOVERERS = """
    import gitexp
    store = gitexp.Client()._store
    print(len(store.recover_dead_journals(force=True)), flush=True)
"""


def test_concurrent_recoverers_recover_each_journal_once(repo):
    """Four processes recover twelve dead journals at once: each is committed exactly once."""
    script = """
        import time, gitexp
        client = gitexp.Client()
        run_ids = [client.create_run("0").info.run_id for _ in range(12)]
        for i, run_id in enumerate(run_ids):
            client.log_metric(run_id, "m", i, step=0)
        print(" ".join(run_ids), flush=True)
        time.sleep(600)
    """
    proc, line = start(script, repo)
    run_ids = line.split()
    sigkill(proc)
    assert len(find_dead_journals(str(journal_dir(repo)), set())) == 12
    procs = [subprocess.Popen([sys.executable, "-c", textwrap.dedent(RECOVERERS)], cwd=repo,
                              stdout=subprocess.PIPE, text=True) for _ in range(4)]
    counts = [int(p.communicate(timeout=120)[0].strip()) for p in procs]
    assert sum(counts) == 12
    reset_gitexp()
    client = gitexp.Client()
    log = git("log", "--format=%s%n%b", "gitexp", cwd=repo)
    for run_id in run_ids:
        assert client.get_run(run_id).info.status == "KILLED"
        assert log.count(f"run {run_id[:8]}: recover") == 1
    assert journals(repo) == []


# -- defect 3: killed after a checkpoint, with nothing pending --------------------------------------------------
def wait_until(condition, what: str, timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.05)


def header_only(path: Path) -> bool:
    try:
        return path.read_bytes().count(b"\n") == 1
    except FileNotFoundError:
        return False


def live_refs(repo: Path) -> list[str]:
    return git("for-each-ref", "--format=%(refname)", "refs/gitexp/live/", cwd=repo).split()


CHECKPOINTED_OWNER = """
    import time, gitexp
    run = gitexp.start_run()
    gitexp.log_param("lr", 0.1)
    for step in range(50):
        gitexp.log_metric("loss", 1.0 / (step + 1), step=step)
    time.sleep(1.0)  # the run's first checkpoint (on the branch when GITEXP_PUBLISH_EVERY=1)
    for step in range(50, 100 if LIVE else 50):
        gitexp.log_metric("loss", 1.0 / (step + 1), step=step)
    print(run.info.run_id, flush=True)
    time.sleep(600)
"""


@pytest.mark.parametrize("where", ["branch", "live-ref"])
def test_an_owner_killed_right_after_a_checkpoint_ends_killed(repo, where):
    """The journal holds only its header when the process dies: nothing was pending."""
    code = CHECKPOINTED_OWNER.replace("LIVE", str(where == "live-ref"))
    if where == "branch":
        code = code.replace("range(50)", "range(100)")
    proc, run_id = start(code, repo, GITEXP_CHECKPOINT_INTERVAL="0.2",
                         GITEXP_PUBLISH_EVERY="1" if where == "branch" else "12")
    path = journal_of(repo, run_id)
    wait_until(lambda: header_only(path) and bool(live_refs(repo)) == (where == "live-ref"), "a checkpoint")
    sigkill(proc)
    reset_gitexp()
    assert gitexp.get_run(run_id).info.status == "RUNNING"  # what the checkpoint says
    trigger_write()
    assert_killed_with_everything(run_id)
    assert journals(repo) == [] and live_refs(repo) == []


RESUMER = """
    import time, gitexp
    gitexp.start_run(run_id=RUN_ID)
    gitexp.log_metric("loss", 0.5, step=1)
    print("resumed", flush=True)
    time.sleep(600)
"""


@pytest.mark.parametrize("door", ["write", "doctor"])
def test_a_resumed_run_killed_after_its_checkpoint_ends_killed(repo, door):
    """An editor session of a resumed run publishes, truncating its journal to the header;
    the header still says the run was resumed, so recovery marks it KILLED."""
    with gitexp.start_run() as run:
        gitexp.log_metric("loss", 1.0, step=0)
    reset_gitexp()
    proc, _ = start(RESUMER.replace("RUN_ID", repr(run.info.run_id)), repo,
                    GITEXP_CHECKPOINT_INTERVAL="0.2", GITEXP_PUBLISH_EVERY="1")
    path = journal_of(repo, run.info.run_id)
    wait_until(lambda: header_only(path), "the resumed run's checkpoint")
    sigkill(proc)
    reset_gitexp()
    assert gitexp.get_run(run.info.run_id).info.status == "RUNNING"
    if door == "write":
        trigger_write()
    else:
        assert f"recovered run {run.info.run_id}" in doctor()
    reset_gitexp()
    assert gitexp.get_run(run.info.run_id).info.status == "KILLED"
    assert [m.value for m in gitexp.Client().get_metric_history(run.info.run_id, "loss")] == [1.0, 0.5]
    assert journals(repo) == []


def test_a_dead_resumer_does_not_kill_a_run_whose_owner_lives(repo):
    """The owner (another live process) keeps the run; when it dies too, the run ends KILLED,
    although the resumer's RUNNING is an event (events override a run's own files)."""
    owner, run_id = start("""
        import time, gitexp
        run = gitexp.start_run()
        gitexp.flush()
        print(run.info.run_id, flush=True)
        time.sleep(600)
    """, repo)
    try:
        _kill_a_resumer(repo, run_id)
    finally:
        sigkill(owner)
    trigger_write()
    reset_gitexp()
    assert gitexp.get_run(run_id).info.status == "KILLED"


def test_an_owner_ends_its_run_after_a_resumer_died(repo):
    client = gitexp.Client()
    run_id = client.create_run("0").info.run_id
    client._store.flush(run_id)
    _kill_a_resumer(repo, run_id, in_process=True)
    client.log_metric(run_id, "loss", 0.25, step=2)
    client.set_terminated(run_id)
    reset_gitexp()
    run = gitexp.get_run(run_id)
    assert run.info.status == "FINISHED"
    assert [m.value for m in gitexp.Client().get_metric_history(run_id, "loss")] == [0.5, 0.25]


def _kill_a_resumer(repo: Path, run_id: str, in_process: bool = False) -> None:
    """A process resumes the run, checkpoints and is killed; recovery leaves the run RUNNING
    (its owner lives: another process, or this one when in_process)."""
    resumer, _ = start(RESUMER.replace("RUN_ID", repr(run_id)), repo,
                       GITEXP_CHECKPOINT_INTERVAL="0.2", GITEXP_PUBLISH_EVERY="1")
    path = [p for p in journals(repo) if p.name.startswith(run_id) and b'"editor"' in p.read_bytes()][0]
    wait_until(lambda: header_only(path), "the resumer's checkpoint")
    sigkill(resumer)
    if in_process:  # this process's sessions stay open
        assert gitexp.Client()._store.recover_dead_journals(force=True) == [run_id]
    else:
        trigger_write()
        reset_gitexp()
    assert not path.exists()  # recovered...
    run = gitexp.get_run(run_id)
    assert run.info.status == "RUNNING"  # ...but its owner still runs it
    assert run.data.metrics == {"loss": 0.5}


def test_runs_of_a_sigkilled_server_with_nothing_pending_end_killed(tmp_path, monkeypatch):
    """A real `gitexp server` (the real mlflow client) holding 30 new runs and 5 resumed
    ones, all checkpointed, is SIGKILLed; `gitexp doctor` (a real CLI process) ends every
    one KILLED with everything logged."""
    mlflow = require_mlflow()
    import fastapi  # noqa: F401  (a dev dependency: missing, the test fails loudly)

    from tests.conftest import make_repo
    from tests.server_process import ServerProcess

    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "0")
    monkeypatch.setenv("MLFLOW_DISABLE_TELEMETRY", "true")
    served = make_repo(tmp_path / "served")
    srv = ServerProcess(served, env={"GITEXP_CHECKPOINT_INTERVAL": "0.2", "GITEXP_PUBLISH_EVERY": "3"})
    try:
        client = mlflow.MlflowClient(srv.url)
        finished = []
        for _ in range(5):
            run_id = client.create_run("0").info.run_id
            client.log_metric(run_id, "m", 1.0, step=0)
            client.set_terminated(run_id)
            finished.append(run_id)
        running = []
        for i in range(30):
            run_id = client.create_run("0").info.run_id
            client.log_param(run_id, "i", i)
            for step in range(3):
                client.log_metric(run_id, "m", float(step), step=step)
            running.append(run_id)
        for run_id in finished:
            client.update_run(run_id, status="RUNNING")
            client.log_metric(run_id, "m", 2.0, step=1)
        wait_until(lambda: len(journals(served)) == 35 and all(header_only(p) for p in journals(served)),
                   "every run's checkpoint")
        srv.proc.kill()
    finally:
        srv.stop()
    result = subprocess.run([sys.executable, "-m", "gitexp", "doctor"], cwd=served, capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    assert result.stdout.count("recovered run ") == 35
    reset_gitexp()
    direct = gitexp.Client(str(served))
    for i, run_id in enumerate(running):
        run = direct.get_run(run_id)
        assert run.info.status == "KILLED" and run.data.params == {"i": str(i)}
        assert [m.step for m in direct.get_metric_history(run_id, "m")] == [0, 1, 2]
    for run_id in finished:
        assert direct.get_run(run_id).info.status == "KILLED"
        assert [m.value for m in direct.get_metric_history(run_id, "m")] == [1.0, 2.0]
    assert journals(served) == [] and live_refs(served) == []


# -- defect 5: a short journal write ------------------------------------------------------------------------------
SHORT_WRITES = """
    import glob, json, os, resource, signal, time, gitexp
    from gitexp.entities import Metric
    signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # a write beyond the limit fails (EFBIG) instead
    client = gitexp.Client()
    run_id = client.create_run("0").info.run_id
    journal = glob.glob(f".git/gitexp/journal/{run_id}.*.jsonl")[0]
    acked, refused = [], []
    step = [1000]

    def call(batch):
        steps = list(range(step[0], step[0] + batch))
        step[0] += batch
        try:
            if batch == 1:
                client.log_metric(run_id, "loss", 0.5, timestamp=1700000000000, step=steps[0])
            else:
                client.log_batch(run_id, metrics=[Metric("loss", 0.5, 1700000000000, s) for s in steps])
        except OSError:
            refused.extend(steps)
            return False
        acked.extend(steps)
        return True

    for i in range(40):
        call(1 if i % 2 else 7)
    size = os.path.getsize(journal); call(1); line = os.path.getsize(journal) - size       # one log_metric line
    size = os.path.getsize(journal); call(7); batch_line = (os.path.getsize(journal) - size) // 7
    size = os.path.getsize(journal)
    cut, batch = {"mid-line": (line // 2, 1), "in-a-batch": (batch_line + batch_line // 2, 7),
                  "before-newline": (line - 1, 1)}[CUT]
    resource.setrlimit(resource.RLIMIT_FSIZE, (size + cut, resource.RLIM_INFINITY))
    assert not call(batch)  # a short write: `cut` bytes reached the file, then EFBIG
    for i in range(5):
        assert not call(batch)  # (the space left is less than a record of this size)
    resource.setrlimit(resource.RLIMIT_FSIZE, (resource.RLIM_INFINITY, resource.RLIM_INFINITY))  # space again
    for i in range(40):
        assert call(1 if i % 2 else 7)
    print(json.dumps({"run_id": run_id, "acked": acked, "refused": refused}), flush=True)
    if END == "sigkill":
        time.sleep(600)
"""


@pytest.mark.parametrize("end", ["sigkill", "exit"])
@pytest.mark.parametrize("cut", ["mid-line", "in-a-batch", "before-newline"])
def test_a_short_journal_write_loses_nothing_acknowledged_and_claims_nothing_refused(repo, cut, end):
    """A real short write (RLIMIT_FSIZE in the writing process) cuts a record; later records
    fail until the limit is raised, then succeed.  What recovery (after SIGKILL) or the exit's
    commit puts on the branch is exactly what the calls that returned logged."""
    code = SHORT_WRITES.replace("CUT", repr(cut)).replace("END", repr(end))
    proc = subprocess.Popen([sys.executable, "-c", textwrap.dedent(code)], cwd=repo, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, env={**os.environ, "GITEXP_CHECKPOINT_INTERVAL": "600"})
    out = proc.stdout.readline()  # type: ignore[union-attr]
    assert out, proc.stderr.read()  # type: ignore[union-attr]
    report = json.loads(out)
    if end == "sigkill":
        sigkill(proc)
        trigger_write()
    else:
        assert proc.wait(timeout=60) == 0, proc.stderr.read()  # type: ignore[union-attr]
    assert report["refused"] and len(report["acked"]) == 40 * 4 + 1 + 7 + 40 * 4
    reset_gitexp()
    client = gitexp.Client()
    steps = [m.step for m in client.get_metric_history(report["run_id"], "loss")]
    assert steps == sorted(report["acked"])  # every acknowledged point, also after the torn record
    assert not set(steps) & set(report["refused"])  # nothing of a call that raised
    assert client.get_run(report["run_id"]).info.status == ("KILLED" if end == "sigkill" else "RUNNING")
    assert journals(repo) == []


def test_a_journal_appears_with_its_header_and_what_a_kill_leaves_before_is_swept(repo):
    """A journal is written under a temporary name and linked into place with its header, so
    recovery never meets a headerless journal it must take for one being created (a fault
    trial found one left behind by a process killed between creating and writing it).  A
    temporary file a killed process left is removed by the next recovery once it is old."""
    with gitexp.start_run() as run:
        gitexp.log_param("a", "1")
        path = journal_of(repo, run.info.run_id)
        header = json.loads(path.read_text().splitlines()[0])
        assert header["run_id"] == run.info.run_id and header["journal"] == 1
        assert not [p for p in journals(repo) if p.name.startswith(".new.")]
    left = journal_dir(repo) / ".new.0123456789abcdef0123456789abcdef.deadbeef0000"
    left.write_text('{"journal": 1, "run_id": "0123456789abcdef0123456789abcdef"')  # cut by the kill
    fresh = journal_dir(repo) / ".new.fedcba9876543210fedcba9876543210.deadbeef0001"
    fresh.write_text("")
    old = time.time() - 120
    os.utime(left, (old, old))
    out = doctor()
    assert "journals:        nothing to recover" in out
    assert not left.exists()  # old and unlocked: swept
    assert fresh.exists()  # young: it may be a journal being created right now
    assert [p.name for p in journals(repo)] == [fresh.name]
