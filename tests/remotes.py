"""Real remotes for sync tests: bare repositories on disk and a `git daemon` on 127.0.0.1."""

from __future__ import annotations

import os
import socket
import subprocess
import time
from pathlib import Path

import pytest

import gitexp

from .conftest import git, make_repo

SRC = str(Path(gitexp.__file__).resolve().parents[1])


def child_env(**extra: str) -> dict[str, str]:
    """Environment for subprocesses: this checkout's gitexp first, whatever the cwd."""
    env = dict(os.environ)
    env["PYTHONPATH"] = SRC + (os.pathsep + env["PYTHONPATH"] if env.get("PYTHONPATH") else "")
    env.update(extra)
    return env


def bare_remote(path: Path) -> Path:
    git("init", "-q", "--bare", "-b", "main", str(path), cwd=path.parent)
    return path


def first_clone(path: Path, url: str) -> Path:
    """A repository with one commit on main, pushed to `url` as origin (upstream set)."""
    make_repo(path)
    git("remote", "add", "origin", url, cwd=path)
    git("push", "-q", "-u", "origin", "main", cwd=path)
    return path


def clone(url: str, path: Path) -> Path:
    git("clone", "-q", url, str(path), cwd=path.parent)
    return path


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class GitDaemon:
    """`git daemon` serving every repository under `base` read-write on 127.0.0.1."""

    def __init__(self, base: Path):
        self.base = base
        self.port = _free_port()
        self.proc = subprocess.Popen(
            ["git", "daemon", "--export-all", f"--base-path={base}", "--enable=receive-pack",
             "--reuseaddr", f"--port={self.port}", "--listen=127.0.0.1", "--informative-errors", str(base)],
            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
        )
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"git daemon exited: {self.proc.stderr.read().decode()}")  # type: ignore[union-attr]
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=0.2):
                    return
            except OSError:
                time.sleep(0.05)
        self.stop()
        raise RuntimeError("git daemon did not start listening within 15 s")

    def url(self, name: str) -> str:
        return f"git://127.0.0.1:{self.port}/{name}"

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


@pytest.fixture
def git_daemon(tmp_path):
    base = tmp_path / "served"
    base.mkdir()
    daemon = GitDaemon(base)
    yield daemon
    daemon.stop()
