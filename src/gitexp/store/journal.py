"""Sessions: how a process writes to a run.

A session appends every change (an op) to a journal file under
``.git/gitexp/journal/`` the moment it is made, and turns the pending ops into
one commit at run end and at each checkpoint.  The journal holds only what is
not yet committed, so a process killed with SIGKILL loses nothing it logged:
the next writer in the repository (or ``gitexp doctor``) finds the journal of
the dead process and commits it, marking a still-running run KILLED.

The session that creates a run is its *owner* and writes the run's own files.
Any other session (a resumed run, a tag set on a finished run, a delete) is an
*editor*: its commits are new event files.
"""

from __future__ import annotations

import json
import os
import secrets
import socket
import threading
import time
from typing import TYPE_CHECKING, Any, Callable

from . import layout
from .objects import MODE_BLOB
from .state import TERMINAL, RunState

if TYPE_CHECKING:
    from .branch import TrackingBranch

OWNER, EDITOR = "owner", "editor"
_EVENT_OPS = ("delete_tag", "lifecycle")  # owners record these as events too
_HOST = socket.gethostname()


def _proc_start_time(pid: int) -> str | None:
    try:
        with open(f"/proc/{pid}/stat", "rb") as fh:
            fields = fh.read().rsplit(b")", 1)[1].split()
        if fields[0] == b"Z":
            return None
        return fields[19].decode()
    except (OSError, IndexError):
        return None


def process_alive(pid: int, start: str | None) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    if os.path.isdir("/proc"):
        current = _proc_start_time(pid)
        if current is None:
            return False
        return start is None or current == start
    return True


_MY_START = _proc_start_time(os.getpid())
_METRIC_PREFIX: dict[str, str] = {}
_INFINITIES = (float("inf"), float("-inf"))


class Session:
    """One process's writes to one run, journaled and committed in batches."""

    def __init__(self, branch: "TrackingBranch", run_id: str, mode: str, journal_dir: str,
                 state: RunState | None = None, keep_open: bool = False):
        self.branch = branch
        self.run_id = run_id
        self.mode = mode
        self.state = state if mode == OWNER else None
        self.keep_open = keep_open  # a resumed run stays open until end_run
        self.id = secrets.token_hex(6)
        self.lock = threading.RLock()
        self.pending: list[dict[str, Any]] = []
        self.dirty_since: float | None = None
        self.closed = False
        self._metric_blobs: dict[str, tuple[int, bytes]] = {}
        self._code_written = False
        self._waiters: list[threading.Thread] = []
        os.makedirs(journal_dir, exist_ok=True)
        self.path = os.path.join(journal_dir, f"{run_id}.{self.id}.jsonl")
        self.fd = os.open(self.path, os.O_WRONLY | os.O_CREAT | os.O_APPEND | os.O_EXCL, 0o644)
        header = {
            "journal": 1, "run_id": run_id, "mode": mode, "session": self.id,
            "pid": os.getpid(), "pid_start": _MY_START, "host": _HOST, "created": layout.now_ms(),
        }
        data = (json.dumps(header) + "\n").encode()
        os.write(self.fd, data)
        self.header_len = len(data)

    # -- recording ---------------------------------------------------------------------
    def record(self, ops: list[dict[str, Any]]) -> None:
        """Journal ops now (one write), apply them, and queue them for the next commit."""
        with self.lock:
            if self.closed:
                raise RuntimeError(f"session for run {self.run_id} is closed")
            if len(ops) == 1:
                data = json.dumps(ops[0]) + "\n"
            else:
                data = "".join(json.dumps(op) + "\n" for op in ops)
            os.write(self.fd, data.encode())
            if not self.pending:
                self.dirty_since = time.monotonic()
            self.pending.extend(ops)
            if self.state is not None:
                self.state.apply_all(ops)

    def record_metric(self, key: str, value: float, timestamp: int, step: int) -> None:
        """The hot path of log_metric: one journal line, no dict round trips."""
        prefix = _METRIC_PREFIX.get(key)
        if prefix is None:
            prefix = _METRIC_PREFIX[key] = f'{{"op": "metric", "key": {json.dumps(key)}, "value": '
        number = repr(value) if value == value and value not in _INFINITIES else json.dumps(value)
        line = f'{prefix}{number}, "timestamp": {timestamp}, "step": {step}}}\n'
        with self.lock:
            if self.closed:
                raise RuntimeError(f"session for run {self.run_id} is closed")
            os.write(self.fd, line.encode())
            if not self.pending:
                self.dirty_since = time.monotonic()
            self.pending.append({"op": "metric", "key": key, "value": value, "timestamp": timestamp, "step": step})
            if self.state is not None:
                self.state.add_metric(key, step, timestamp, value)

    def wait_for(self, thread: threading.Thread) -> None:
        """Commit only after `thread` (e.g. code capture) has recorded its ops."""
        self._waiters.append(thread)

    # -- committing ---------------------------------------------------------------------
    def join_waiters(self) -> None:
        """Wait for helper threads (code capture) that still have ops to record."""
        while self._waiters:
            self._waiters.pop().join()

    def commit(self) -> str | None:
        """Commit pending ops; returns the commit id or None when nothing was pending."""
        self.join_waiters()
        with self.lock:
            if not self.pending or self.closed:
                return None
            ops = self.pending
            # The files depend only on this session's ops, not on the tip: build them once.
            build = _once(lambda: session_changes(self.branch, self.run_id, self.mode, self.state, ops,
                                                  self._metric_blobs, write_code=not self._code_written))
            commit = self.branch.commit(build, commit_message(self.run_id, self.mode, self.state, ops), group=True)
            if self.state is not None and self.state.code is not None:
                self._code_written = True
            self.pending = []
            self.dirty_since = None
            os.ftruncate(self.fd, self.header_len)
            return commit

    def close(self) -> None:
        with self.lock:
            if self.closed:
                return
            self.closed = True
            os.close(self.fd)
            try:
                os.unlink(self.path)
            except FileNotFoundError:
                pass

    @property
    def finished(self) -> bool:
        """True when nothing more is expected: commit, then close."""
        if self.keep_open:
            return False
        if self.mode == OWNER and self.state is not None:
            return self.state.status in TERMINAL
        return True

    def overlay(self, state: RunState) -> RunState:
        """`state` (folded from the branch) with this session's pending ops applied."""
        with self.lock:
            if not self.pending:
                return state
            merged = state.copy()
            merged.apply_all(self.pending)
            return merged


def session_changes(branch: "TrackingBranch", run_id: str, mode: str, state: RunState | None,
                    ops: list[dict], metric_blobs: dict[str, tuple[int, bytes]] | None = None,
                    write_code: bool = True, all_metrics: bool = False) -> dict[str, tuple[bytes, str] | None]:
    """The files a commit of these ops writes: own files for owners, an event for editors."""
    odb = branch.odb
    base = layout.run_dir(run_id)
    changes: dict[str, tuple[bytes, str] | None] = {}
    event_ops = ops if mode == EDITOR else [op for op in ops if op["op"] in _EVENT_OPS]
    if mode == OWNER and state is not None:
        def put(name: str, data: bytes | None) -> None:
            changes[f"{base}/{name}"] = (MODE_BLOB, odb.write_blob(data)) if data is not None else None

        put("run.yaml", layout.dump_flat(state.info_doc()))
        put("params.yaml", layout.dump_flat(state.params) if state.params else None)
        put("tags.yaml", layout.dump_flat(state.tags) if state.tags else None)
        if state.inputs:
            put("inputs.yaml", layout.dump_yaml(state.inputs))
        if state.code is not None and write_code:
            code = dict(state.code)
            patch = code.pop("patch", None)
            put("code.yaml", layout.dump_yaml(code))
            if patch:
                put("code.patch", patch.encode("utf-8", "surrogateescape") if isinstance(patch, str) else patch)
        cache = metric_blobs if metric_blobs is not None else {}
        touched = set(state.metrics) if all_metrics else {op["key"] for op in ops if op["op"] == "metric"}
        for key in touched:
            points = state.metrics.get(key, [])
            done, data = cache.get(key, (0, b""))
            if done > len(points):
                done, data = 0, b""
            data += layout.format_metric_lines(points[done:]).encode()
            cache[key] = (len(points), data)
            put(f"metrics/{layout.encode_key(key)}.jsonl", data)
    # Artifact blobs are already in the object database (written when logged);
    # a commit only links them into a tree.
    artifact_ops = [op for op in ops if op["op"] == "artifact"]
    if mode == OWNER and state is not None:
        for op in artifact_ops:
            changes[f"{base}/artifacts/{op['path']}"] = (op["mode"].encode(), op["sha"])
    if event_ops:
        doc = {"time": layout.now_ms(), "user": branch.repo.identity()[0], "ops": event_ops}
        name = layout.event_name()
        changes[f"{base}/events/{name}"] = (MODE_BLOB, odb.write_blob(layout.dump_yaml(doc)))
        if mode == EDITOR:
            # An editor's files go to a directory named after its event, so two
            # writers never touch the same path and every merge stays clean.
            for op in artifact_ops:
                changes[f"{base}/{layout.event_artifact_dir(name)}/{op['path']}"] = (op["mode"].encode(), op["sha"])
    return changes


def commit_message(run_id: str, mode: str, state: RunState | None, ops: list[dict]) -> str:
    counts: dict[str, int] = {}
    for op in ops:
        counts[op["op"]] = counts.get(op["op"], 0) + 1
    summary = ", ".join(f"{n} {k}{'s' if n > 1 else ''}" for k, n in sorted(counts.items()))
    if mode == OWNER and state is not None:
        title = f"run {run_id[:8]} ({state.run_name}): {state.status}"
    else:
        title = f"run {run_id[:8]}: edit"
    return f"{title}\n\n{summary}\nrun_id: {run_id}\n"


def _once(compute: Callable[[], dict]) -> Callable[[str | None], dict]:
    cache: list = []

    def build(_tree: str | None) -> dict:
        if not cache:
            cache.append(compute())
        return cache[0]
    return build


# -- recovery of journals left by dead processes ----------------------------------------------
def read_journal(path: str) -> tuple[dict | None, list[dict]]:
    header = None
    ops: list[dict] = []
    with open(path, "rb") as fh:
        for i, raw in enumerate(fh):
            if not raw.endswith(b"\n"):
                break  # torn last line: the process died mid-write
            try:
                record = json.loads(raw)
            except ValueError:
                break
            if i == 0:
                header = record
            else:
                ops.append(record)
    return header, ops


def find_dead_journals(journal_dir: str, live: set[str]) -> list[str]:
    try:
        names = os.listdir(journal_dir)
    except FileNotFoundError:
        return []
    dead = []
    for name in names:
        path = os.path.join(journal_dir, name)
        if path in live or not (name.endswith(".jsonl") or ".recovering." in name):
            continue
        if ".recovering." in name:
            pid = name.rsplit(".", 1)[-1]
            if pid.isdigit() and process_alive(int(pid), None):
                continue
            dead.append(path)
            continue
        try:
            header, _ = _read_header(path)
        except OSError:
            continue
        if header is None:
            # Created but header not yet written, or torn: old enough means dead.
            try:
                if time.time() - os.path.getmtime(path) > 60:
                    dead.append(path)
            except OSError:
                pass
            continue
        if header.get("host") != _HOST:
            continue  # another machine's journal on a shared disk: not ours to judge
        if header.get("pid") == os.getpid() and header.get("pid_start") == _MY_START:
            continue
        if not process_alive(int(header["pid"]), header.get("pid_start")):
            dead.append(path)
    return dead


def _read_header(path: str) -> tuple[dict | None, int]:
    with open(path, "rb") as fh:
        line = fh.readline()
    if not line.endswith(b"\n"):
        return None, 0
    try:
        return json.loads(line), len(line)
    except ValueError:
        return None, 0


def recover_journal(branch: "TrackingBranch", path: str, on_recovered: Callable[[str], None] | None = None) -> str | None:
    """Commit what a dead process's journal holds; returns the run id recovered, if any."""
    claimed = f"{path.split('.recovering.')[0]}.recovering.{os.getpid()}"
    try:
        os.rename(path, claimed)
    except FileNotFoundError:
        return None  # another process claimed it first
    header, ops = read_journal(claimed)
    if header is None:
        os.unlink(claimed)
        return None
    run_id = header["run_id"]
    if ops:
        mode = header.get("mode", EDITOR)
        last_time = max((op.get("timestamp", 0) for op in ops if op["op"] == "metric"), default=0)
        end_time = max(last_time, int(os.path.getmtime(claimed) * 1000))
        if mode == OWNER:
            tree = branch.run_tree(run_id)
            state = branch.read_own_files(run_id, tree) if tree else RunState(run_id)
            state.apply_all(ops)
            if state.status not in TERMINAL:
                kill = {"op": "status", "status": "KILLED", "end_time": end_time}
                state.apply(kill)
                ops = ops + [kill]
            changes = lambda: session_changes(branch, run_id, OWNER, state, ops, all_metrics=True)  # noqa: E731
        else:
            resumed = [op for op in ops if op["op"] == "status"]
            if resumed and resumed[-1]["status"] not in TERMINAL:
                ops = ops + [{"op": "status", "status": "KILLED", "end_time": end_time}]
            changes = lambda: session_changes(branch, run_id, EDITOR, None, ops)  # noqa: E731
        branch.commit(_once(changes), f"run {run_id[:8]}: recover journal of dead process {header.get('pid')}\n\nrun_id: {run_id}\n")
    os.unlink(claimed)
    if on_recovered is not None:
        on_recovered(run_id)
    return run_id
