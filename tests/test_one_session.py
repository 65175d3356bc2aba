"""Many threads of one process writing to one run: one session per run per process, and
every write that returned lands on the branch ("Lose nothing", defect 1).

The session a writer picks can be committed and closed by the checkpoint thread or by
another thread's end or flush just before the writer records into it; the write must
then go to a fresh session instead of raising or vanishing.
"""

from __future__ import annotations

import json
import os
import threading

import pytest

import gitexp

from .conftest import require_mlflow, reset_gitexp, run_python

THREADS_ON_A_FINISHED_RUN = r"""
import json, sys, threading, gitexp
client = gitexp.Client()
run_id = RUN_ID
errors = []
barrier = threading.Barrier(8)

def work(t):
    barrier.wait()
    for i in range(200):
        try:
            client.log_metric(run_id, f"k{t}", float(i), step=i)
            if i % 40 == 39:
                # Another thread's flush (or end) commits and closes the shared session
                # while the others are about to record into it.
                client.set_tag(run_id, f"t{t}.{i}", "v")
                client._store.flush(run_id)
        except Exception as exc:
            errors.append(repr(exc))

threads = [threading.Thread(target=work, args=(t,)) for t in range(8)]
for t in threads:
    t.start()
for t in threads:
    t.join()
print(json.dumps(errors))
"""


def _journals(repo):
    d = repo / ".git" / "gitexp" / "journal"
    return sorted(os.listdir(d)) if d.exists() else []


@pytest.mark.parametrize("trial", range(3))
def test_eight_threads_logging_to_a_finished_run_lose_nothing(repo, trial):
    client = gitexp.Client()
    run_id = client.create_run("0").info.run_id
    client.set_terminated(run_id)
    reset_gitexp()
    # A short checkpoint interval: the checkpoint thread closes the session too.
    result = run_python(THREADS_ON_A_FINISHED_RUN.replace("RUN_ID", repr(run_id)), cwd=repo,
                        env={"GITEXP_CHECKPOINT_INTERVAL": "0.05"})
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout.strip().splitlines()[-1]) == []  # no write raised
    assert _journals(repo) == []  # a normal exit leaves no journal behind
    reset_gitexp()
    client = gitexp.Client()
    for t in range(8):
        history = client.get_metric_history(run_id, f"k{t}")
        assert [m.step for m in history] == list(range(200)), t
    tags = client.get_run(run_id).data.tags
    assert {k for k in tags if k.startswith("t")} == {f"t{t}.{i}" for t in range(8) for i in range(39, 200, 40)}
    assert client.get_run(run_id).info.status == "FINISHED"


def test_threads_ending_and_writing_a_run_at_once_in_process(repo, monkeypatch):
    """In this process: threads log while others end (set_terminated) the same run; every
    call returns and every point is read back, before and after the sessions are flushed."""
    monkeypatch.setenv("GITEXP_CHECKPOINT_INTERVAL", "0.05")
    client = gitexp.Client()
    run_id = client.create_run("0").info.run_id
    errors: list[str] = []
    barrier = threading.Barrier(6)

    def work(t: int) -> None:
        barrier.wait()
        for i in range(150):
            try:
                client.log_batch(run_id, metrics=[gitexp.entities.Metric(f"b{t}", i, 0, i)],
                                 params=[gitexp.entities.Param(f"p{t}.{i}", "1")] if i % 50 == 0 else [])
                if i % 50 == 49:
                    client.set_terminated(run_id)
            except Exception as exc:
                errors.append(repr(exc))

    threads = [threading.Thread(target=work, args=(t,)) for t in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    for t in range(6):
        assert len(client.get_metric_history(run_id, f"b{t}")) == 150
    reset_gitexp()
    client = gitexp.Client()
    run = client.get_run(run_id)
    assert set(run.data.params) == {f"p{t}.{i}" for t in range(6) for i in (0, 50, 100)}
    for t in range(6):
        assert [m.step for m in client.get_metric_history(run_id, f"b{t}")] == list(range(150))
    assert _journals(repo) == []


def test_server_concurrent_set_tags_and_metrics_on_a_finished_run(tmp_path, monkeypatch):
    """16 clients at once (the real mlflow client) tag and log to one finished run through
    a real `gitexp server` whose checkpoint thread keeps closing the run's session."""
    mlflow = require_mlflow()
    import fastapi  # noqa: F401  (a dev dependency: missing, the test fails loudly)

    from tests.conftest import make_repo
    from tests.server_process import ServerProcess

    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "0")  # a 5xx must fail, not be retried
    monkeypatch.setenv("MLFLOW_DISABLE_TELEMETRY", "true")
    repo = make_repo(tmp_path / "served")
    srv = ServerProcess(repo, env={"GITEXP_CHECKPOINT_INTERVAL": "0.05"})
    try:
        client = mlflow.MlflowClient(srv.url)
        run_id = client.create_run("0").info.run_id
        client.set_terminated(run_id)
        errors: list[str] = []
        barrier = threading.Barrier(16)

        def work(t: int) -> None:
            barrier.wait()
            for i in range(25):
                try:
                    client.set_tag(run_id, f"t{t}.{i}", str(i))
                    client.log_metric(run_id, f"m{t}", float(i), step=i)
                except Exception as exc:
                    errors.append(repr(exc)[:300])

        threads = [threading.Thread(target=work, args=(t,)) for t in range(16)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert errors == []
        # Through the server, at once: every tag and point (no restart needed).
        tags = client.get_run(run_id).data.tags
        assert {k for k in tags if k.startswith("t")} == {f"t{t}.{i}" for t in range(16) for i in range(25)}
        for t in range(16):
            assert [m.step for m in client.get_metric_history(run_id, f"m{t}")] == list(range(25))
    finally:
        log = srv.stop()
    assert "Traceback" not in log, log[-3000:]
    assert _journals(repo) == []
    reset_gitexp()
    direct = gitexp.Client(str(repo))
    tags = direct.get_run(run_id).data.tags
    assert len([k for k in tags if k.startswith("t")]) == 16 * 25
    for t in range(16):
        assert len(direct.get_metric_history(run_id, f"m{t}")) == 25
