"""Pushing the tracking branch to a remote every few seconds while the server runs.

One background thread; each round pushes only when the branch moved since the
last successful push.  The push itself is ``Client.push`` (store/sync.py): a
remote that moved first is fetched and merged, then the push is retried.  A
failed round is logged and tried again at the next interval; nothing is lost,
since the branch keeps everything locally.
"""

from __future__ import annotations

import logging
import threading
from typing import Any

from ..exceptions import InvalidParameterValue

_log = logging.getLogger("gitexp.server")


class PeriodicPush:
    def __init__(self, client: Any, remote: str, interval: float) -> None:
        if not remote:
            raise InvalidParameterValue("--push-to needs a remote name or URL")
        if not interval or interval <= 0:
            raise InvalidParameterValue(f"The push interval must be a positive number of seconds, got {interval!r}")
        self.client = client
        self.remote = remote
        self.interval = float(interval)
        self.pushed: str | None = None
        self.pushes = 0
        self.last_error: str | None = None
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()

    def start(self) -> None:
        self._thread = threading.Thread(target=self._loop, name="gitexp-server-push", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=60)
        self.push_now()  # what the last interval logged

    def _loop(self) -> None:
        while not self._stop.wait(self.interval):
            self.push_now()

    def push_now(self) -> bool:
        """Push if the branch moved since the last push; True if a push happened."""
        with self._lock:
            tip = self.client.get_tracking_tip()
            if tip is None or tip == self.pushed:
                return False
            try:
                self.client.push(self.remote, progress=False)
            except Exception as exc:  # keep serving; try again next round
                self.last_error = str(exc)
                _log.warning("gitexp server: push of %s to %s failed (%s); retrying in %gs",
                             self.client.get_repository_info().branch, self.remote, exc, self.interval)
                return False
            self.pushed = tip
            self.pushes += 1
            self.last_error = None
            _log.info("gitexp server: pushed %s to %s (%s)", self.client.get_repository_info().branch, self.remote,
                      tip[:12])
            return True
