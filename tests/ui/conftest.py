"""Fixtures of the UI tests: one repository full of runs, served by `gitexp ui` on loopback."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from ._data import build_repo

ROOT = Path(__file__).resolve().parents[2]
SCREENSHOTS = ROOT / "test-artifacts" / "screenshots"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="session")
def ui_repo(tmp_path_factory):
    path = tmp_path_factory.mktemp("ui") / "repo"
    ids = build_repo(path)
    return path, ids


class Server:
    def __init__(self, path: Path, ids: dict, port: int, process: subprocess.Popen):
        self.path = path
        self.ids = ids
        self.port = port
        self.process = process
        self.url = f"http://127.0.0.1:{port}"

    def http(self, **kwargs) -> httpx.Client:
        return httpx.Client(base_url=self.url, timeout=60, **kwargs)

    def tip(self) -> str:
        return subprocess.run(["git", "rev-parse", "gitexp"], cwd=self.path, capture_output=True,
                              text=True, check=True).stdout.strip()

    def last_commit(self) -> tuple[str, str, str]:
        out = subprocess.run(["git", "log", "-1", "--format=%an%x00%ae%x00%s", "gitexp"], cwd=self.path,
                             capture_output=True, text=True, check=True).stdout.strip()
        name, email, subject = out.split("\0")
        return name, email, subject


@pytest.fixture(scope="session")
def ui_server(ui_repo):
    """`python -m gitexp ui` on 127.0.0.1, with the git identity of the repository's config
    (not the test process's GIT_AUTHOR_* variables): actions must commit as that user."""
    path, ids = ui_repo
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("GIT_AUTHOR_", "GIT_COMMITTER_"))}
    process = subprocess.Popen([sys.executable, "-m", "gitexp", "--repo", str(path), "ui", "--port", str(port)],
                               env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    server = Server(path, ids, port, process)
    deadline = time.time() + 60
    while True:
        try:
            if httpx.get(server.url + "/", timeout=5).status_code == 200:
                break
        except httpx.TransportError:
            pass
        if process.poll() is not None or time.time() > deadline:
            output = process.stdout.read().decode(errors="replace") if process.stdout else ""
            process.kill()
            raise AssertionError(f"gitexp ui did not start: {output}")
        time.sleep(0.2)
    yield server
    process.terminate()
    try:
        process.wait(timeout=10)
    except subprocess.TimeoutExpired:
        process.kill()
