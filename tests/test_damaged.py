"""One damaged file on the branch ("Lose nothing", defect 4): a hand-edited file that is no
longer valid, or a truncated line, affects only its run -- and says where.

Searches, the experiment page and REST runs/search keep working; the damaged run is
folded around the file (what can be read is kept) and tagged gitexp.damaged with the
file and line, shown in the UI and listed by `gitexp doctor`.  A damaged metric chunk
fails only the read of that history, with an error naming run, metric, file and line.
Files are damaged the way people do: a commit on the tracking branch.
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

import gitexp
from gitexp.entities import Metric
from gitexp.exceptions import StoreError

from .conftest import git, require_mlflow, reset_gitexp

DAMAGED = "gitexp.damaged"


def hand_edit(repo: Path, path: str, content: bytes) -> None:
    """Commit `content` at `path` on the tracking branch (as an edit on a checkout would)."""
    with tempfile.TemporaryDirectory() as scratch:
        env = {**os.environ, "GIT_INDEX_FILE": os.path.join(scratch, "index")}
        subprocess.run(["git", "read-tree", "gitexp"], cwd=repo, env=env, check=True)
        sha = subprocess.run(["git", "hash-object", "-w", "--stdin"], cwd=repo, input=content,
                             capture_output=True, check=True).stdout.decode().strip()
        subprocess.run(["git", "update-index", "--add", "--cacheinfo", f"100644,{sha},{path}"], cwd=repo, env=env,
                       check=True)
        tree = subprocess.run(["git", "write-tree"], cwd=repo, env=env, capture_output=True, check=True,
                              text=True).stdout.strip()
    commit = git("commit-tree", tree, "-p", "gitexp", "-m", f"hand edit of {path}", cwd=repo).strip()
    git("update-ref", "refs/heads/gitexp", commit, cwd=repo)
    reset_gitexp()


def show(repo: Path, path: str) -> bytes:
    return subprocess.run(["git", "show", f"gitexp:{path}"], cwd=repo, capture_output=True, check=True).stdout


def make_runs(repo: Path) -> tuple[str, list[str]]:
    """Three runs in experiment 'e' (params, tags, two checkpointed chunks of two metrics, a
    dataset, an event from a tag set after the end); returns the experiment id and run ids."""
    client = gitexp.Client()
    exp = client.create_experiment("e")
    ids = []
    for i in range(3):
        run_id = client.create_run(exp, run_name=f"r{i}").info.run_id
        client.log_batch(run_id, params=[gitexp.entities.Param("lr", str(i)), gitexp.entities.Param("bs", "32")],
                         tags=[gitexp.entities.RunTag("team", "ml")])
        client.log_batch(run_id, metrics=[Metric("loss", 1.0 / (s + 1), 1000 + s, s) for s in range(5)])
        client._store.checkpoint(run_id)  # the first chunk
        client.log_batch(run_id, metrics=[Metric("loss", 0.1, 2000 + s, s) for s in range(5, 8)]
                         + [Metric("acc", 0.5, 2000, 0)])
        client.set_terminated(run_id)
        client.set_tag(run_id, "after", "end")  # an event file
        ids.append(run_id)
    client._store.flush()
    reset_gitexp()
    return exp, ids


def run_dir(run_id: str) -> str:
    return f".tracking/runs/{run_id[:2]}/{run_id}"


def truncate_mid_line(data: bytes) -> bytes:
    """Cut a file in the middle of its last line."""
    body = data.rstrip(b"\n")
    last = body.rfind(b"\n") + 1
    return body[: last + max(1, (len(body) - last) // 2)]


# Each case: the file (relative to the run's directory, or "event"), how it is damaged, the line
# the damage is reported at (None: the whole file), and what of the run must still be read.
CASES = {
    "params-hand-edit": ("params.yaml", lambda d: b"lr: [0\nbs: 32\n", 1, lambda r: r.data.params == {"bs": "32"}),
    "params-truncated": ("params.yaml", truncate_mid_line, "last", lambda r: r.data.params == {"lr": "1"}),
    "tags-unterminated": ("tags.yaml", lambda d: d + b'note: "unterminated\n', "last",
                          lambda r: r.data.tags["team"] == "ml"),
    "run-hand-edit": ("run.yaml", lambda d: d.replace(b"user_id: ", b"user_id: [", 1), 4,
                      lambda r: r.info.run_name == "r1" and r.info.status == "FINISHED"),
    "latest-truncated": ("latest_metrics.yaml", truncate_mid_line, "last", lambda r: "acc" in r.data.metrics),
    "inputs-not-a-list": ("inputs.yaml", lambda d: b"dataset: x\n", None, lambda r: r.data.params["bs"] == "32"),
    "event-truncated": ("event", truncate_mid_line, "any", lambda r: r.data.params["bs"] == "32"),
}


def damage(repo: Path, run_id: str, case: str) -> str:
    name, how, _line, _kept = CASES[case]
    if name == "event":
        events = git("ls-tree", "--name-only", f"gitexp:{run_dir(run_id)}/events/", cwd=repo).split()
        path = f"{run_dir(run_id)}/events/{events[-1]}"
    else:
        path = f"{run_dir(run_id)}/{name}"
    try:
        data = show(repo, path)
    except subprocess.CalledProcessError:
        data = b""
    hand_edit(repo, path, how(data))
    return path


@pytest.mark.parametrize("case", sorted(CASES))
def test_a_damaged_file_affects_only_its_run_and_says_where(repo, case):
    exp, ids = make_runs(repo)
    bad = ids[1]
    path = damage(repo, bad, case)
    _name, _how, line, kept = CASES[case]
    client = gitexp.Client()
    runs = client.search_runs([exp], max_results=100)
    assert sorted(r.info.run_id for r in runs) == sorted(ids)  # the damaged run stays in its experiment
    by_id = {r.info.run_id: r for r in runs}
    for good in (ids[0], ids[2]):
        assert DAMAGED not in by_id[good].data.tags
        assert by_id[good].data.params == {"lr": str(ids.index(good)), "bs": "32"}
    where = by_id[bad].data.tags[DAMAGED]
    assert where.startswith(path) and path in where
    if line is not None:
        assert " line " in where
        if isinstance(line, int):
            assert f"{path} line {line}:" in where
    assert kept(client.get_run(bad))
    flagged = client.search_runs([exp], f"tags.`{DAMAGED}` LIKE '%'")
    assert [r.info.run_id for r in flagged] == [bad]
    frame = gitexp.search_runs(experiment_ids=[exp])
    assert len(frame) == 3
    assert [m.step for m in client.get_metric_history(bad, "loss")] == list(range(8))


def test_a_damaged_metric_chunk_fails_only_that_history(repo):
    exp, ids = make_runs(repo)
    bad = ids[0]
    chunk = f"{run_dir(bad)}/metrics/loss/0000/000001.jsonl"
    hand_edit(repo, chunk, truncate_mid_line(show(repo, chunk)))
    client = gitexp.Client()
    assert len(client.search_runs([exp])) == 3
    assert DAMAGED not in client.get_run(bad).data.tags  # searches never read histories
    with pytest.raises(StoreError) as err:
        client.get_metric_history(bad, "loss")
    message = str(err.value)
    assert bad in message and "'loss'" in message and f"{chunk} line 3" in message
    assert [m.value for m in client.get_metric_history(bad, "acc")] == [0.5]
    assert len(client.get_metric_history(ids[1], "loss")) == 8


def test_a_chunk_with_a_wrong_line_is_not_misread(repo):
    """Three numbers a line on average is not a chunk: a four-number line and a two-number
    line fail the read instead of being read as two points."""
    exp, ids = make_runs(repo)
    chunk = f"{run_dir(ids[0])}/metrics/loss/0000/000001.jsonl"
    hand_edit(repo, chunk, b"[5, 2005, 0.1, 7]\n[6, 2006]\n[7, 2007, 0.1]\n")
    with pytest.raises(StoreError, match=r"000001.jsonl line 1"):
        gitexp.Client().get_metric_history(ids[0], "loss")


def test_a_damaged_experiment_event_affects_only_its_experiment(repo):
    exp, ids = make_runs(repo)
    client = gitexp.Client()
    other = client.create_experiment("other")
    client.set_experiment_tag(exp, "owner", "ada")
    client.set_experiment_tag(exp, "team", "ml")
    reset_gitexp()
    events = git("ls-tree", "--name-only", f"gitexp:.tracking/experiments/{exp}/events/", cwd=repo).split()
    path = f".tracking/experiments/{exp}/events/{events[1]}"
    hand_edit(repo, path, b"time: 1\nops: [ {op: tag, key: owner, value: ada\n")
    client = gitexp.Client()
    assert {e.name for e in client.search_experiments()} == {"Default", "e", "other"}
    assert client.get_experiment(other).tags == {}
    tags = client.get_experiment(exp).tags
    assert tags["team"] == "ml" and "owner" not in tags and tags[DAMAGED].startswith(f"{path} line ")
    assert len(client.search_runs([exp])) == 3


def test_damaged_runs_through_the_cli_the_server_and_the_ui(repo, tmp_path):
    """`gitexp doctor` and `gitexp runs list` (real CLI processes), REST runs/search and
    get-history through a real `gitexp server` with the real mlflow client, and the
    experiment and run pages of the UI it serves."""
    exp, ids = make_runs(repo)
    bad, chunky = ids[1], ids[2]
    path = damage(repo, bad, "params-hand-edit")
    chunk = f"{run_dir(chunky)}/metrics/loss/0000/000000.jsonl"
    hand_edit(repo, chunk, b"[0, 1000, 1.0]\n[1, 1001, 0.5]\n[2, 10")

    doctor = subprocess.run([sys.executable, "-m", "gitexp", "doctor"], cwd=repo, capture_output=True, text=True)
    assert doctor.returncode == 0, doctor.stderr
    assert f"run {bad}: {path} line 1:" in doctor.stdout
    listed = subprocess.run([sys.executable, "-m", "gitexp", "runs", "list", "-e", exp],
                            cwd=repo, capture_output=True, text=True)
    assert listed.returncode == 0, listed.stderr
    assert all(run_id[:8] in listed.stdout for run_id in ids)

    mlflow = require_mlflow()
    import httpx

    from tests.server_process import ServerProcess

    os.environ["MLFLOW_HTTP_REQUEST_MAX_RETRIES"] = "0"
    try:
        srv = ServerProcess(repo)
        try:
            client = mlflow.MlflowClient(srv.url)
            runs = client.search_runs([exp])
            assert len(runs) == 3
            assert {r.info.run_id for r in runs if DAMAGED in r.data.tags} == {bad}
            with pytest.raises(mlflow.exceptions.MlflowException):  # (mlflow's client hides a 500's message)
                client.get_metric_history(chunky, "loss")
            assert [m.value for m in client.get_metric_history(chunky, "acc")] == [0.5]
            with httpx.Client(base_url=srv.url, timeout=60) as http:
                rest = http.get("/api/2.0/mlflow/metrics/get-history", params={"run_id": chunky, "metric_key": "loss"})
                assert rest.status_code == 500 and rest.json()["error_code"] == "DATA_LOSS"
                assert f"{chunk} line 3" in rest.json()["message"] and chunky in rest.json()["message"]
                page = http.get(f"/experiments/{exp}")
                assert page.status_code == 200
                assert page.text.count('class="status damaged"') == 1
                run_page = http.get(f"/runs/{bad}")
                assert run_page.status_code == 200
                assert 'id="run-damaged"' in run_page.text and f"{path} line 1" in run_page.text
                chart = http.get(f"/ui-api/runs/{chunky}/metric", params={"key": "loss"})
                assert chart.status_code >= 400 and f"{chunk} line 3" in chart.json()["message"]
        finally:
            log = srv.stop()
    finally:
        os.environ.pop("MLFLOW_HTTP_REQUEST_MAX_RETRIES", None)
    assert "Traceback" not in log, log[-3000:]


def test_recovering_a_killed_run_never_rewrites_its_damaged_file(repo):
    """A dead owner's last state is published over its files on the branch: a damaged one is
    left as it is (not replaced by what could be read of it), and the damage tag stays a tag
    of the fold, never a tag written to the run."""
    import signal

    proc = subprocess.Popen([sys.executable, "-c", (
        "import time, gitexp\nrun = gitexp.start_run()\ngitexp.log_params({'lr': 0.1, 'bs': 32})\n"
        "gitexp.flush()\nfor s in range(5):\n    gitexp.log_metric('loss', 1.0, step=s)\n"
        "print(run.info.run_id, flush=True)\ntime.sleep(600)\n")], cwd=repo, stdout=subprocess.PIPE, text=True,
        env={**os.environ, "GITEXP_CHECKPOINT_INTERVAL": "600"})
    run_id = proc.stdout.readline().strip()  # type: ignore[union-attr]
    path = f"{run_dir(run_id)}/params.yaml"
    hand_edit(repo, path, b"lr: [0.1\nbs: 32\n")
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=30)
    gitexp.Client().create_experiment("trigger")  # a write recovers the dead process's journal
    reset_gitexp()
    run = gitexp.get_run(run_id)
    assert run.info.status == "KILLED" and run.data.metrics == {"loss": 1.0}
    assert run.data.tags[DAMAGED].startswith(f"{path} line 1:")
    assert show(repo, path) == b"lr: [0.1\nbs: 32\n"
    assert DAMAGED.encode() not in show(repo, f"{run_dir(run_id)}/tags.yaml")
