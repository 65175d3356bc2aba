"""Many writers at once, and writers that die: nothing is lost, nothing is damaged."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time

import gitexp
from gitexp.store.journal import find_dead_journals

from .conftest import git, reset_gitexp, run_python

WORKER = textwrap.dedent("""
    import sys, gitexp
    worker = int(sys.argv[1])
    gitexp.set_experiment("concurrent")
    for i in range(25):
        with gitexp.start_run(run_name=f"w{worker}-r{i}"):
            gitexp.log_params({"worker": worker, "i": i})
            for step in range(5):
                gitexp.log_metric("loss", 1.0 / (step + 1), step=step)
""")


def test_eight_processes_times_25_runs_land_every_run(repo):
    script = repo / "worker.py"
    script.write_text(WORKER)
    procs = [subprocess.Popen([sys.executable, str(script), str(w)], cwd=repo,
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for w in range(8)]
    for p in procs:
        out, err = p.communicate(timeout=240)
        assert p.returncode == 0, err
    reset_gitexp()
    client = gitexp.Client()
    exp = client.get_experiment_by_name("concurrent")
    assert exp is not None  # one experiment, although 8 processes raced to create it
    runs = client.search_runs([exp.experiment_id], max_results=1000)
    assert len(runs) == 200
    names = {r.info.run_name for r in runs}
    assert names == {f"w{w}-r{i}" for w in range(8) for i in range(25)}
    for r in runs:
        assert r.info.status == "FINISHED"
        assert set(r.data.params) == {"worker", "i"}
        assert [m.step for m in client.get_metric_history(r.info.run_id, "loss")] == [0, 1, 2, 3, 4]
    assert len([e for e in client.search_experiments() if e.name == "concurrent"]) == 1
    assert subprocess.run(["git", "fsck", "--no-dangling"], cwd=repo, capture_output=True).returncode == 0


KILLED = textwrap.dedent("""
    import sys, time, gitexp
    run = gitexp.start_run(run_name="doomed")
    gitexp.log_param("lr", 0.1)
    for step in range(100):
        gitexp.log_metric("loss", 1.0 / (step + 1), step=step)
    print(run.info.run_id, flush=True)
    time.sleep(600)
""")


def test_sigkilled_run_is_recovered_as_killed_with_everything_logged(repo):
    proc = subprocess.Popen([sys.executable, "-c", KILLED], cwd=repo, stdout=subprocess.PIPE, text=True,
                            env={**os.environ, "GITEXP_CHECKPOINT_INTERVAL": "60"})
    run_id = proc.stdout.readline().strip()
    assert len(run_id) == 32
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=30)
    journal_dir = repo / ".git" / "gitexp" / "journal"
    # The dead process left its journal (dead once the git processes its code capture
    # started, which hold nothing of it but may outlive it by a moment, are gone too).
    deadline = time.monotonic() + 20
    while not find_dead_journals(str(journal_dir), set()) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert find_dead_journals(str(journal_dir), set())

    # Nothing was committed yet (checkpoint 60 s); the next write recovers the journal.
    reset_gitexp()
    client = gitexp.Client()
    client.create_experiment("trigger-a-write")
    run = client.get_run(run_id)
    assert run.info.status == "KILLED"
    assert run.info.end_time is not None
    assert run.data.params == {"lr": "0.1"}
    history = client.get_metric_history(run_id, "loss")
    assert [m.step for m in history] == list(range(100))  # the journal lost nothing
    assert not find_dead_journals(str(journal_dir), set())


def test_doctor_recovers_a_killed_resumed_run(repo):
    with gitexp.start_run() as run:
        gitexp.log_metric("loss", 1.0, step=0)
    code = (f"import time, gitexp\ngitexp.start_run(run_id='{run.info.run_id}')\n"
            "gitexp.log_metric('loss', 0.5, step=1)\nprint('ready', flush=True)\ntime.sleep(600)\n")
    proc = subprocess.Popen([sys.executable, "-c", code], cwd=repo, stdout=subprocess.PIPE, text=True)
    assert proc.stdout.readline().strip() == "ready"
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait(timeout=30)
    from click.testing import CliRunner

    from gitexp.cli import main

    reset_gitexp()
    result = CliRunner().invoke(main, ["doctor"])
    assert result.exit_code == 0, result.output
    assert f"recovered run {run.info.run_id}" in result.output
    fetched = gitexp.get_run(run.info.run_id)
    assert fetched.info.status == "KILLED"
    assert [m.value for m in gitexp.Client().get_metric_history(run.info.run_id, "loss")] == [1.0, 0.5]


def test_a_failing_run_does_not_damage_another(repo):
    with gitexp.start_run() as good:
        gitexp.log_metric("m", 1.0)
    result = run_python("import gitexp\nwith gitexp.start_run():\n    gitexp.log_metric('m', 2.0)\n"
                        "    raise SystemExit('boom')\n", cwd=repo)
    assert result.returncode != 0
    reset_gitexp()
    assert gitexp.get_run(good.info.run_id).data.metrics == {"m": 1.0}
    runs = gitexp.Client().search_runs(["0"])
    assert sorted(r.info.status for r in runs) == ["FAILED", "FINISHED"]


def test_two_threads_logging_to_one_run(repo):
    import threading

    with gitexp.start_run() as run:
        client = gitexp.Client()

        def work(key):
            for i in range(500):
                client.log_metric(run.info.run_id, key, i, step=i)

        threads = [threading.Thread(target=work, args=(f"k{t}",)) for t in range(4)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
    for t in range(4):
        assert len(client.get_metric_history(run.info.run_id, f"k{t}")) == 500


def test_concurrent_commits_from_checkpoints_and_ends(repo, monkeypatch):
    monkeypatch.setenv("GITEXP_CHECKPOINT_INTERVAL", "0.05")
    client = gitexp.Client()
    run_ids = [client.create_run("0").info.run_id for _ in range(5)]
    deadline = time.time() + 1.0
    i = 0
    while time.time() < deadline:
        for run_id in run_ids:
            client.log_metric(run_id, "m", i, step=i)
        i += 1
    for run_id in run_ids:
        client.set_terminated(run_id)
    for run_id in run_ids:
        assert len(client.get_metric_history(run_id, "m")) == i
    log = git("log", "--oneline", "gitexp", cwd=repo)
    assert log.count("\n") > 5
