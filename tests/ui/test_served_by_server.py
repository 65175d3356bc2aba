"""`gitexp server` serves the web UI at / next to MLflow's REST API, in one process."""

from __future__ import annotations

import os
import subprocess
import sys
import time

import httpx
import pytest

from .conftest import free_port


@pytest.fixture(scope="module")
def server(ui_repo):
    path, ids = ui_repo
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("GIT_AUTHOR_", "GIT_COMMITTER_"))}
    process = subprocess.Popen([sys.executable, "-m", "gitexp", "--repo", str(path), "server", "--port", str(port),
                                "--log-level", "warning"], env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    deadline = time.time() + 60
    while True:
        try:
            if httpx.get(url + "/health", timeout=5).status_code == 200:
                break
        except httpx.TransportError:
            pass
        if process.poll() is not None or time.time() > deadline:
            process.kill()
            raise AssertionError(process.stdout.read().decode(errors="replace") if process.stdout else "no output")
        time.sleep(0.2)
    yield url, path, ids
    process.terminate()
    process.wait(timeout=30)


def test_pages_api_and_actions_share_one_server(server):
    url, path, ids = server
    with httpx.Client(base_url=url, timeout=60) as http:
        home = http.get("/")
        assert home.status_code == 200 and 'id="experiments-table"' in home.text
        assert "content-security-policy" in home.headers
        page = http.get(f"/runs/{ids['long']}")
        assert page.status_code == 200 and "long-training" in page.text
        chart = http.get(f"/ui-api/runs/{ids['long']}/metric", params={"key": "loss"}).json()
        assert chart["total"] == 20000 and chart["downsampled"]
        api = http.get("/api/2.0/mlflow/runs/get", params={"run_id": ids["long"]}).json()
        assert api["run"]["info"]["run_name"] == "long-training"
        run_id = ids["action_runs"]["to-tag"]
        action = http.post(f"/actions/runs/{run_id}/tags", data={"key": "via-server", "value": "yes"},
                           headers={"Origin": url})
        assert action.status_code == 303
        assert http.post(f"/actions/runs/{run_id}/tags", data={"key": "x", "value": "y"}).status_code == 403
        tags = http.get("/api/2.0/mlflow/runs/get", params={"run_id": run_id}).json()["run"]["data"]["tags"]
        assert {"key": "via-server", "value": "yes"} in tags
    author = subprocess.run(["git", "log", "-1", "--format=%an", "gitexp"], cwd=path, capture_output=True,
                            text=True).stdout.strip()
    assert author == "UI Tester"
