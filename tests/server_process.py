"""A real `gitexp server` in a separate process, on a free loopback port, for tests."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class ServedProcess:
    """A server in its own process on a free loopback port: started, waited for at /health (its
    log attached to the error when it does not come up), stopped as Ctrl-C stops it."""

    name = "server"

    def __init__(self, args: list[str], log_dir: Path, *, port: int, cwd: Path | None = None,
                 env: dict | None = None, wait: bool = True, timeout: float = 60, group: bool = False):
        self.port = port
        self.url = f"http://127.0.0.1:{port}"
        self.log = Path(log_dir) / f"{self.name.replace(' ', '-')}-{port}.log"
        self._group = group  # a process group: Ctrl-C reaches a supervisor and its workers alike
        self._log_fh = open(self.log, "wb")
        full = dict(os.environ)
        for key, value in (env or {}).items():  # None: not in the server's environment
            if value is None:
                full.pop(key, None)
            else:
                full[key] = value
        self.proc = subprocess.Popen(args, stdout=self._log_fh, stderr=subprocess.STDOUT, cwd=cwd, env=full,
                                     start_new_session=group)
        if wait:
            self._wait(timeout)

    def _wait(self, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while True:
            try:
                with urllib.request.urlopen(self.url + "/health", timeout=2) as resp:
                    if resp.status == 200:
                        return
            except OSError:
                pass
            if self.proc.poll() is not None or time.monotonic() > deadline:
                self.stop()
                raise RuntimeError(f"{self.name} did not start:\n{self.output()}")
            time.sleep(0.1)

    def output(self) -> str:
        self._log_fh.flush()
        return self.log.read_text(errors="replace")

    def stop(self) -> str:
        """Stop it the way Ctrl-C does (a gitexp store commits what it holds); returns its log."""
        if self.proc.poll() is None:
            if self._group:
                os.killpg(self.proc.pid, signal.SIGINT)
            else:
                self.proc.send_signal(signal.SIGINT)
            try:
                self.proc.wait(timeout=60)
            except subprocess.TimeoutExpired:
                if self._group:
                    os.killpg(self.proc.pid, signal.SIGKILL)
                else:
                    self.proc.kill()
                self.proc.wait()
        self._log_fh.close()
        return self.log.read_text(errors="replace")


class ServerProcess(ServedProcess):
    """`gitexp server` over a repository."""

    name = "gitexp server"

    def __init__(self, repo: Path, extra_args: list[str] | None = None, env: dict | None = None):
        self.repo = Path(repo)
        port = free_port()
        super().__init__([sys.executable, "-m", "gitexp", "server", "--repo", str(self.repo), "--port", str(port),
                          *(extra_args or [])], self.repo.parent, port=port,
                         env={"GITEXP_CHECKPOINT_INTERVAL": "0.5", **(env or {})})
