"""`gitexp server`: startup errors, stopping commits what the server holds, periodic push to a remote."""

from __future__ import annotations

import json
import time
import urllib.request

import fastapi  # noqa: F401  (a dev dependency: missing, the test fails loudly)
from click.testing import CliRunner

import gitexp
from gitexp.cli import main
from tests.conftest import git, make_repo, reset_gitexp
from tests.server_process import ServerProcess


def _post(url: str, path: str, body: dict) -> dict:
    req = urllib.request.Request(url + "/api/2.0/mlflow" + path, json.dumps(body).encode(),
                                 {"Content-Type": "application/json"})
    with urllib.request.urlopen(req, timeout=30) as resp:
        return json.loads(resp.read())


def test_a_path_that_is_no_repository_is_a_clear_error(tmp_path):
    result = CliRunner().invoke(main, ["server", "--repo", str(tmp_path / "nowhere"), "--port", "0"])
    assert result.exit_code != 0
    assert "is not inside a git repository" in result.output


def test_stopping_the_server_commits_runs_it_still_holds(tmp_path):
    # A long checkpoint interval: only the shutdown can have committed this run.
    srv = ServerProcess(make_repo(tmp_path / "served"), env={"GITEXP_CHECKPOINT_INTERVAL": "3600"})
    run = _post(srv.url, "/runs/create", {"experiment_id": "0"})["run"]["info"]["run_id"]
    _post(srv.url, "/runs/log-metric", {"run_id": run, "key": "m", "value": 2.5, "timestamp": 1})
    assert "Traceback" not in srv.stop()
    reset_gitexp()
    got = gitexp.Client(str(srv.repo)).get_run(run)
    assert got.data.metrics == {"m": 2.5}


def test_push_to_a_remote_while_serving(tmp_path):
    remote = tmp_path / "remote.git"
    git("init", "-q", "--bare", str(remote), cwd=tmp_path)
    served = make_repo(tmp_path / "served")
    git("remote", "add", "origin", str(remote), cwd=served)
    srv = ServerProcess(served, extra_args=["--push-to", "origin", "--push-interval", "0.3"])
    try:
        run = _post(srv.url, "/runs/create", {"experiment_id": "0", "run_name": "pushed"})["run"]["info"]["run_id"]
        _post(srv.url, "/runs/update", {"run_id": run, "status": "FINISHED"})
        deadline = time.monotonic() + 30
        while run not in git("ls-tree", "-r", "--name-only", "gitexp", cwd=remote, check=False):
            assert time.monotonic() < deadline, srv.output()[-3000:]
            time.sleep(0.2)
        later = _post(srv.url, "/runs/create", {"experiment_id": "0"})["run"]["info"]["run_id"]
    finally:
        log = srv.stop()
    assert "Traceback" not in log
    # Stopping pushes what the last interval logged.
    clone = tmp_path / "clone"
    git("clone", "-q", str(remote), str(clone), cwd=tmp_path)
    reset_gitexp()
    runs = {r.info.run_id: r for r in gitexp.Client(str(clone)).search_runs(["0"])}
    assert runs[run].info.run_name == "pushed" and later in runs


def test_a_server_url_is_not_a_repository_to_serve(tmp_path, monkeypatch):
    monkeypatch.setenv("GITEXP_TRACKING_URI", "http://127.0.0.1:9")
    result = CliRunner().invoke(main, ["server", "--port", "0"])
    assert result.exit_code != 0 and "serves a git repository" in result.output


def test_runs_of_a_killed_server_are_recovered_by_the_next_one(tmp_path):
    served = make_repo(tmp_path / "served")
    srv = ServerProcess(served, env={"GITEXP_CHECKPOINT_INTERVAL": "3600"})
    run = _post(srv.url, "/runs/create", {"experiment_id": "0"})["run"]["info"]["run_id"]
    _post(srv.url, "/runs/log-metric", {"run_id": run, "key": "m", "value": 7.0, "timestamp": 1})
    srv.proc.kill()  # SIGKILL: nothing committed, the journal stays behind
    srv.stop()
    again = ServerProcess(served)
    try:
        _post(again.url, "/experiments/create", {"name": "after-crash"})  # the first write recovers journals
        got = json.loads(urllib.request.urlopen(f"{again.url}/api/2.0/mlflow/runs/get?run_id={run}").read())
    finally:
        assert "Traceback" not in again.stop()
    info = got["run"]["info"]
    assert info["status"] == "KILLED" and got["run"]["data"]["metrics"][0]["value"] == 7.0
