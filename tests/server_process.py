"""A real `gitexp server` in a separate process, on a free loopback port, for tests."""

from __future__ import annotations

import os
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


class ServerProcess:
    def __init__(self, repo: Path, extra_args: list[str] | None = None, env: dict | None = None):
        self.repo = Path(repo)
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log = self.repo.parent / f"server-{self.port}.log"
        args = [sys.executable, "-m", "gitexp", "server", "--repo", str(self.repo), "--port", str(self.port),
                *(extra_args or [])]
        self._log_fh = open(self.log, "wb")
        self.proc = subprocess.Popen(args, stdout=self._log_fh, stderr=subprocess.STDOUT,
                                     env={**os.environ, "GITEXP_CHECKPOINT_INTERVAL": "0.5", **(env or {})})
        deadline = time.monotonic() + 60
        while True:
            try:
                with urllib.request.urlopen(self.url + "/health", timeout=2) as resp:
                    if resp.status == 200:
                        break
            except OSError:
                pass
            if self.proc.poll() is not None or time.monotonic() > deadline:
                self.stop()
                raise RuntimeError(f"gitexp server did not start:\n{self.output()}")
            time.sleep(0.1)

    def output(self) -> str:
        self._log_fh.flush()
        return self.log.read_text(errors="replace")

    def stop(self) -> str:
        """Stop the server the way Ctrl-C does (it commits what it holds); returns its log."""
        if self.proc.poll() is None:
            self.proc.send_signal(2)  # SIGINT
            try:
                self.proc.wait(timeout=60)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self._log_fh.close()
        return self.log.read_text(errors="replace")
