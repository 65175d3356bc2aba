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
import logging
import os
import secrets
import socket
import threading
import time
from collections.abc import Callable
from collections.abc import Set as AbstractSet
from typing import TYPE_CHECKING, Any

try:
    import fcntl
except ImportError:  # pragma: no cover - not POSIX
    fcntl = None  # type: ignore[assignment]  # no fcntl (Windows): locking falls back

from ..exceptions import BranchCheckedOut, RefLocked, StoreError
from . import histories, layout
from .branch import LIVE_PREFIX
from .objects import MODE_BLOB
from .protection import release_pending
from .repo import ACTING_AS, acting_as
from .state import DAMAGED_TAG, TERMINAL, RunState

if TYPE_CHECKING:
    from .branch import TrackingBranch

OWNER, EDITOR = "owner", "editor"


class SessionClosed(RuntimeError):
    """The session was committed and closed (by the checkpoint thread, or another thread
    ending or flushing the run) after a writer picked it: record on a fresh session."""


_EVENT_OPS = ("delete_tag", "lifecycle")  # owners record these as events too
_HOST = socket.gethostname()
_log = logging.getLogger("gitexp")


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
_BOOT: list[str | None] = []


def boot_id() -> str | None:
    """This kernel's boot id: the same in every container on this machine, new at every boot."""
    if not _BOOT:
        try:
            with open("/proc/sys/kernel/random/boot_id") as fh:
                _BOOT.append(fh.read().strip() or None)
        except OSError:
            _BOOT.append(None)
    return _BOOT[0]


def _try_lock(fd: int) -> bool | None:
    """Take the journal's flock without waiting: True when taken, False when another open
    file holds it (its writer or recoverer lives -- in any process, any container on this
    kernel), None when the file system has no flock."""
    if fcntl is None:
        return None
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        return True
    except BlockingIOError:
        return False
    except OSError:
        return None


def lock_free(path: str) -> bool | None:
    """Whether nobody holds `path`'s flock (None: no such file, or no flock here)."""
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return None
    try:
        return _try_lock(fd)
    finally:
        os.close(fd)  # releases the lock if we took it


_METRIC_PREFIX: dict[str, str] = {}


class Session:
    """One process's writes to one run, journaled and committed in batches.

    An owner's checkpoints write the run's own directory as a tree on the run's
    live ref (``refs/gitexp/live/<run_id>``, see branch.LIVE_PREFIX); every
    `publish_every`-th checkpoint, the run's last commit, and every explicit flush
    graft that directory into the shared branch instead and drop the live ref.
    Editors' changes are event files, committed to the branch at the same
    publishing points.
    """

    last_failure: type[BaseException]  # of the last background checkpoint that failed (GitStore)

    def __init__(self, branch: TrackingBranch, run_id: str, mode: str, journal_dir: str,
                 state: RunState | None = None, keep_open: bool = False, own_tree: str | None = None) -> None:
        self.branch = branch
        self.run_id = run_id
        self.mode = mode
        self.state = state if mode == OWNER else None
        if self.state is not None:
            self.state.keep_points = False  # the history is in the journal and the chunks, not in memory
        self.keep_open = keep_open  # a resumed run stays open until end_run
        self.id = secrets.token_hex(6)
        # Whom the session writes for (the server's authenticated user who opened it, else None:
        # the repository's identity); its commits are authored so from any thread.
        self.author = ACTING_AS.get()
        self.lock = threading.RLock()
        self.pending: list[dict[str, Any]] = []
        self.dirty_since: float | None = None
        self.closed = False
        self._code_written = False
        self._torn = False
        self._waiters: list[threading.Thread] = []
        # The owner's own directory as last committed (live ref or branch), what the branch
        # has of it, what the live ref points at (a tree), and the next chunk number of each metric.
        self.own_tree = own_tree
        self.published_tree = own_tree
        self.live_commit: str | None = None
        self.next_chunk: dict[str, int] = {}
        self.checkpoints = 0
        # refs/gitexp/pending/<id> -> the tree reaching the artifact blobs logged since the
        # last commit (store/protection.py); dropped right after the commit that links them.
        self.held: str | None = None
        self._deferred = False  # warned that publishing waits for the branch
        os.makedirs(journal_dir, exist_ok=True)
        self.path = os.path.join(journal_dir, f"{run_id}.{self.id}.jsonl")
        # The journal appears under its name with its header already in it (written under a
        # temporary name, then linked): a process killed in between leaves no headerless
        # journal that recovery could not tell from one being created (only a temporary
        # file, which `sweep_temporaries` removes).
        temporary = os.path.join(journal_dir, f"{TEMPORARY_PREFIX}{run_id}.{self.id}")
        self.fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_APPEND | os.O_EXCL, 0o644)
        try:
            # The flock lives as long as this process holds the file open, whatever kills it,
            # and other processes see it across containers sharing this disk and kernel:
            # recovery takes a journal only when it can take its lock (see journal_status).
            locked = _try_lock(self.fd)
            header = {
                "journal": 1, "run_id": run_id, "mode": mode, "session": self.id,
                "pid": os.getpid(), "pid_start": _MY_START, "host": _HOST, "boot": boot_id(),
                "lock": "flock" if locked else None, "created": layout.now_ms(),
                # Last, so that resume() can turn it into `true ` in place (the header
                # survives every truncation of the journal).
                "resumed": False,
            }
            data = (json.dumps(header) + "\n").encode()
            _write_all(self.fd, data)
            os.link(temporary, self.path)  # fails if the name exists, as O_EXCL did
        except BaseException:
            os.close(self.fd)
            os.unlink(temporary)
            raise
        os.unlink(temporary)
        self.header_len = len(data)
        self.size = len(data)  # what the journal holds: every record is appended right after it
        self._resumed_at = len(data) - len(b"false}\n")

    # -- recording ---------------------------------------------------------------------
    def _hand_over(self, author: tuple[str, str] | None) -> None:
        """Another person writes to this run (a server's request for another user): commit what is
        pending under its author first, onto the shared branch, so that no commit there mixes two
        people's changes."""
        if self.pending or (self.mode == OWNER and self.own_tree != self.published_tree):
            self.commit(publish=True)
        self.author = author

    def record(self, ops: list[dict[str, Any]]) -> None:
        """Journal ops now (one write), apply them, and queue them for the next commit."""
        author = ACTING_AS.get()
        if author != self.author:
            self._hand_over(author)
        with self.lock:
            if self.closed:
                raise SessionClosed(f"session for run {self.run_id} is closed")
            if len(ops) == 1:
                data = json.dumps(ops[0]) + "\n"
            else:
                data = "".join(json.dumps(op) + "\n" for op in ops)
            self._journal(data.encode())
            if not self.pending:
                self.dirty_since = time.monotonic()
            self.pending.extend(ops)
            if self.state is not None:
                self.state.apply_all(ops)

    def record_metric(self, key: str, value: float, timestamp: int, step: int) -> None:
        """The hot path of log_metric: one compact journal line, no dict round trips."""
        prefix = _METRIC_PREFIX.get(key)
        if prefix is None:
            prefix = _METRIC_PREFIX[key] = f'["m", {json.dumps(key)}, '
        line = f"{prefix}{step}, {timestamp}, {histories.number(value)}]\n"
        author = ACTING_AS.get()
        if author != self.author:
            self._hand_over(author)
        with self.lock:
            if self.closed:
                raise SessionClosed(f"session for run {self.run_id} is closed")
            self._journal(line.encode())
            if not self.pending:
                self.dirty_since = time.monotonic()
            self.pending.append({"op": "metric", "key": key, "value": value, "timestamp": timestamp, "step": step})
            if self.state is not None:
                self.state.add_metric(key, step, timestamp, value)

    def _journal(self, data: bytes) -> None:
        """Append to the journal, all or raise: a write that did not happen is never
        acknowledged.  After a short write (a full disk, a file size limit) the journal is
        cut back to where the record began, so recovery never finds a part of a record
        whose call raised, and the next record follows the last acknowledged one."""
        if self._torn:
            self._cut_back()  # raises (the record is refused) while even that fails
        try:
            written = os.write(self.fd, data)
            if written != len(data):
                _write_all(self.fd, data[max(written, 0):])
        except OSError:
            self._torn = True
            try:
                self._cut_back()
            except OSError:
                pass
            raise
        self.size += len(data)

    def _cut_back(self) -> None:
        os.ftruncate(self.fd, self.size)
        self._torn = False

    def resume(self) -> None:
        """Keep this editor session open until the run ends (a resumed run), and say so in
        the journal's header, which every truncation keeps: if the process dies, recovery
        marks the run KILLED even when nothing was pending."""
        with self.lock:
            if self.closed:
                raise SessionClosed(f"session for run {self.run_id} is closed")
            if not self.keep_open and self.mode == EDITOR:
                fd = os.open(self.path, os.O_WRONLY)  # not O_APPEND: pwrite at the offset
                try:
                    if os.pwrite(fd, b"true ", self._resumed_at) != 5:
                        raise OSError(f"could not mark journal {self.path} as a resumed run")
                finally:
                    os.close(fd)  # another open file: our flock stays
            self.keep_open = True

    def wait_for(self, thread: threading.Thread) -> None:
        """Commit only after `thread` (e.g. code capture) has recorded its ops."""
        self._waiters.append(thread)

    # -- committing ---------------------------------------------------------------------
    def join_waiters(self) -> None:
        """Wait for helper threads (code capture) that still have ops to record."""
        while self._waiters:
            self._waiters.pop().join()

    def commit(self, publish: bool | None = None) -> str | None:
        """Commit pending ops; returns the commit id or None when nothing was committed.

        publish=None decides by the checkpoint count (see the class docstring);
        True puts everything on the shared branch now.
        """
        self.join_waiters()
        with self.lock, acting_as(self.author):
            if self.closed:
                return None
            unpublished = self.mode == OWNER and self.own_tree != self.published_tree
            if not self.pending and not (publish and unpublished):
                return None
            ops = self.pending
            periodic = publish is None and not self.finished and not any(op["op"] in _EVENT_OPS for op in ops)
            if publish is None:
                publish = (self.finished or (self.checkpoints + 1) % self.branch.repo.publish_every == 0
                           or any(op["op"] in _EVENT_OPS for op in ops))
            if self.mode == EDITOR and not publish:
                self.checkpoints += 1  # the journal keeps the ops until the next publishing point
                self.dirty_since = time.monotonic()
                return None
            with self.branch.odb.protected():  # what the commit writes is kept until a ref has it
                try:
                    commit = self._commit(ops, publish)
                except (BranchCheckedOut, RefLocked) as exc:
                    if not (publish and periodic):
                        raise
                    # A publishing point the branch cannot take now (checked out, locked): the run
                    # goes on with live checkpoints (an editor keeps its journal) and publishes later.
                    if not self._deferred:
                        _log.warning("gitexp: run %s goes on without publishing to the branch: %s",
                                     self.run_id, exc)
                        self._deferred = True
                    if self.mode == EDITOR:
                        self.dirty_since = time.monotonic()
                        return None
                    commit = self._commit(ops, False)
            self.checkpoints += 1
            self.pending = []
            self.dirty_since = None
            os.ftruncate(self.fd, self.header_len)
            self.size = self.header_len
            self._torn = False
            release_pending(self.branch, self)  # the artifacts are linked by a ref now
            return commit

    def _commit(self, ops: list[dict[str, Any]], publish: bool) -> str:
        branch, odb = self.branch, self.branch.odb
        message = commit_message(self.run_id, self.mode, self.state, ops)
        next_chunk = dict(self.next_chunk)
        new_own = self.own_tree
        if self.mode == OWNER and self.state is not None:
            with odb.batch():
                changes = own_changes(branch, self.state, ops, self.own_tree, next_chunk,
                                      write_code=not self._code_written)
                new_own = odb.edit_tree(self.own_tree, changes) if changes else self.own_tree
            if not publish:
                odb.flush()
                live = new_own  # the live ref names the tree itself (see branch.LIVE_PREFIX)
                if not branch.refs.compare_and_swap(LIVE_PREFIX + self.run_id, live, self.live_commit,  # type: ignore[arg-type]  # an owner has its own tree
                                                    message, branch._ident(), reflog=False):
                    raise StoreError(f"The live ref of run {self.run_id} was moved by another process; "
                                     "its journal is kept for `gitexp doctor`")
                self.live_commit = live
                self._committed(new_own, next_chunk)
                return live  # type: ignore[return-value]  # an owner's checkpoint always has its own tree
        graft = run_graft(branch, self.run_id, new_own, self.published_tree) if self.mode == OWNER else {}
        # The event files are written inside the commit's own pack (once, kept over retries).

        def branch_changes() -> dict[str, Any]:
            events = event_changes(branch, self.run_id, self.mode, ops)
            if self.mode == OWNER and self.state is not None:
                events.update(_status_event(branch, self.run_id, self.state.status, ops))
            return {**graft, **events}
        commit = branch.commit(_once(branch_changes), message, group=True)
        if self.mode == OWNER:
            self._committed(new_own, next_chunk)
            self.published_tree = new_own
            if self.live_commit is not None:
                self._drop_live(new_own)
        return commit

    def _drop_live(self, published: str | None) -> None:
        """Delete the live ref after a publish.  If a lock prevents that, point it at what was
        just published instead, so a live ref left behind never holds an older checkpoint."""
        ref = LIVE_PREFIX + self.run_id
        refs = self.branch.refs
        try:
            refs.delete(ref, self.live_commit)  # type: ignore[arg-type]  # called while a live ref is held
            self.live_commit = None
            return
        except RefLocked as exc:
            _log.warning("gitexp: could not drop the live ref of run %s: %s", self.run_id, exc)
        try:
            if published and refs.compare_and_swap(ref, published, self.live_commit, "gitexp: published",
                                                   self.branch._ident(), reflog=False):
                self.live_commit = published
        except RefLocked:
            pass  # the next checkpoint moves it on from self.live_commit

    def _committed(self, new_own: str | None, next_chunk: dict[str, int]) -> None:
        self.own_tree = new_own
        self.next_chunk = next_chunk
        if self.state is not None and self.state.code is not None:
            self._code_written = True

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

    def abandon(self) -> None:
        """In a forked child: let go of the parent's session without touching its journal
        (closing our copy of the file keeps the parent's flock)."""
        self.closed = True
        try:
            os.close(self.fd)
        except OSError:
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


def _write_all(fd: int, data: bytes) -> None:
    """Write every byte or raise: a write that did not happen is never acknowledged."""
    view = memoryview(data)
    while view:
        written = os.write(fd, view)
        if written <= 0:
            raise OSError(f"could not write the journal (wrote {written} bytes)")
        view = view[written:]


def own_changes(branch: TrackingBranch, state: RunState, ops: list[dict[str, Any]], own_tree: str | None,
                next_chunk: dict[str, int], write_code: bool = True) -> dict[str, tuple[bytes, str] | None]:
    """The changes to a run's own directory (paths relative to it) that commit `ops`.

    Small files are rewritten whole (unchanged ones hash to the same blob); each
    metric with new points gets one new chunk, and `next_chunk` is advanced.
    """
    odb = branch.odb
    changes: dict[str, tuple[bytes, str] | None] = {}

    def put(name: str, data: bytes | None) -> None:
        changes[name] = (MODE_BLOB, odb.write_blob(data)) if data is not None else None

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
    new_points: dict[str, list[histories.Point]] = {}
    for op in ops:
        if op["op"] == "metric":
            new_points.setdefault(op["key"], []).append((op["step"], op["timestamp"], op["value"]))
    if new_points:
        metrics_tree = None
        for key, points in new_points.items():
            index = next_chunk.get(key)
            if index is None:
                if metrics_tree is None and own_tree is not None:
                    entry = odb.lookup(own_tree, "metrics")
                    metrics_tree = entry.sha if entry is not None and entry.is_tree else None
                index = histories.next_chunk_index(odb, metrics_tree, key)
            put(histories.chunk_path(key, index), histories.format_chunk(points))
            next_chunk[key] = index + 1
        put(histories.LATEST_FILE, histories.dump_latest(state.latest))
    # Artifact blobs are already in the object database (written when logged);
    # a commit only links them into a tree.
    for op in ops:
        if op["op"] == "artifact":
            changes[f"artifacts/{op['path']}"] = (op["mode"].encode(), op["sha"])
    return changes


def event_changes(branch: TrackingBranch, run_id: str, mode: str, ops: list[dict[str, Any]]
                  ) -> dict[str, tuple[bytes, str] | None]:
    """The event file (and an editor's artifacts) that commit `ops` to the branch."""
    event_ops = ops if mode == EDITOR else [op for op in ops if op["op"] in _EVENT_OPS]
    if not event_ops:
        return {}
    base = layout.run_dir(run_id)
    doc = {"time": layout.now_ms(), "user": branch.repo.identity()[0], "ops": event_ops}
    name = layout.event_name()
    changes: dict[str, tuple[bytes, str] | None] = {
        f"{base}/events/{name}": (MODE_BLOB, branch.odb.write_blob(layout.dump_yaml(doc)))}
    if mode == EDITOR:
        # An editor's files go to a directory named after its event, so two
        # writers never touch the same path and every merge stays clean.
        for op in event_ops:
            if op["op"] == "artifact":
                changes[f"{base}/{layout.event_artifact_dir(name)}/{op['path']}"] = (op["mode"].encode(), op["sha"])
    return changes


def run_graft(branch: TrackingBranch, run_id: str, own_tree: str | None, old_own: str | None
              ) -> dict[str, tuple[bytes, str] | None]:
    """Branch changes that make a run's own entries those of `own_tree` (its events stay)."""
    if own_tree is None:
        return {}
    base = layout.run_dir(run_id)
    entries = branch.odb.tree_dict(own_tree)
    changes: dict[str, tuple[bytes, str] | None] = {
        f"{base}/{name}": (e.mode, e.sha) for name, e in entries.items() if name != "events"}
    for name in branch.odb.tree_dict(old_own) if old_own else {}:
        if name not in entries and name != "events":
            changes[f"{base}/{name}"] = None
    return changes


def session_changes(branch: TrackingBranch, run_id: str, mode: str, state: RunState | None,
                    ops: list[dict[str, Any]]) -> dict[str, tuple[bytes, str] | None]:
    """Everything one commit of `ops` writes to the branch for a run that has no own files yet
    (owners) or any run (editors): the files a finished session leaves, in one dict."""
    changes = event_changes(branch, run_id, mode, ops)
    if mode == OWNER and state is not None:
        base = layout.run_dir(run_id)
        for path, value in own_changes(branch, state, ops, None, {}).items():
            changes[f"{base}/{path}"] = value
    return changes


def commit_message(run_id: str, mode: str, state: RunState | None, ops: list[dict[str, Any]]) -> str:
    counts: dict[str, int] = {}
    for op in ops:
        counts[op["op"]] = counts.get(op["op"], 0) + 1
    summary = ", ".join(f"{n} {k}{'s' if n > 1 else ''}" for k, n in sorted(counts.items()))
    if mode == OWNER and state is not None:
        title = f"run {run_id[:8]} ({state.run_name}): {state.status}"
    else:
        title = f"run {run_id[:8]}: edit"
    return f"{title}\n\n{summary}\nrun_id: {run_id}\n"


def _once(compute: Callable[[], dict[str, Any]]) -> Callable[[str | None], dict[str, Any]]:
    cache: list[Any] = []

    def build(_tree: str | None) -> dict[str, Any]:
        if not cache:
            cache.append(compute())
        built: dict[str, Any] = cache[0]
        return built
    return build


# -- recovery of journals left by dead processes ----------------------------------------------
def read_journal(path: str) -> tuple[dict[str, Any] | None, list[dict[str, Any]]]:
    """The header and ops of a journal.  A torn line (a process killed mid-write, a short
    write on a full disk) is skipped, and reading goes on past it."""
    header = None
    ops: list[dict[str, Any]] = []
    with open(path, "rb") as fh:
        for i, raw in enumerate(fh):
            try:
                record = json.loads(raw) if raw.endswith(b"\n") else None
            except ValueError:
                record = None
            if i == 0:
                if not isinstance(record, dict):
                    return None, []
                header = record
            elif isinstance(record, list) and len(record) == 5 and record[0] == "m":
                _, key, step, ts, value = record
                ops.append({"op": "metric", "key": key, "step": step, "timestamp": ts,
                            "value": histories.value_of(value)})
            elif isinstance(record, dict) and "op" in record:
                ops.append(record)
    return header, ops


LIVE, DEAD, UNKNOWN = "live", "dead", "unknown"


def journal_status(path: str) -> tuple[str, dict[str, Any] | None]:
    """Whether a journal's writer can still be alive: (LIVE | DEAD | UNKNOWN, header).

    DEAD only when it is proven: the journal's flock is free and it was taken on this
    kernel (same boot id: this machine, any container), or -- journals without a lock
    (earlier gitexp versions, file systems without flock) -- its process on this host is gone.
    A held lock is LIVE wherever the writer runs.  A free lock taken under another
    kernel (another machine sharing the disk, or this one before a reboot) or a journal
    of another host without a lock is UNKNOWN: `gitexp doctor` lists those and
    recovers them only when asked (`--recover-all`).
    """
    name = os.path.basename(path)
    try:
        header, _ = _read_header(path)
        mtime = os.path.getmtime(path)
    except OSError:
        return LIVE, None  # gone (recovered or closed meanwhile) or unreadable: not ours
    if ".recovering." in name:
        # Claimed by a recoverer, who holds the lock while it recovers (older ones did not).
        free = lock_free(path)
        if free is False:
            return LIVE, header
        pid = name.rsplit(".", 1)[-1]
        if free is True and (not pid.isdigit() or int(pid) == os.getpid() or time.time() - mtime > 600):
            return DEAD, header
        alive = pid.isdigit() and process_alive(int(pid), None)
        return (LIVE if alive else DEAD), header
    if header is None:
        # Created but header not yet written (the lock is taken first), or torn: old enough means dead.
        if time.time() - mtime > 60 and lock_free(path) is not False:
            return DEAD, None
        return LIVE, None
    free = lock_free(path) if header.get("lock") == "flock" else None
    if free is False:
        return LIVE, header
    if free is True and header.get("boot") is not None and header.get("boot") == boot_id():
        return DEAD, header
    if header.get("host") == _HOST:
        if header.get("pid") == os.getpid() and header.get("pid_start") == _MY_START:
            return LIVE, header
        alive = process_alive(int(header["pid"]), header.get("pid_start"))
        return (LIVE if alive else DEAD), header
    return UNKNOWN, header


def list_journals(journal_dir: str,
                  live: AbstractSet[str] = frozenset()) -> list[tuple[str, str, dict[str, Any] | None]]:
    """(path, status, header) of every journal not in `live` (this process's own)."""
    try:
        names = os.listdir(journal_dir)
    except FileNotFoundError:
        return []
    out = []
    for name in names:
        path = os.path.join(journal_dir, name)
        if path in live or not (name.endswith(".jsonl") or ".recovering." in name):
            continue
        status, header = journal_status(path)
        out.append((path, status, header))
    return out


TEMPORARY_PREFIX = ".new."


def sweep_temporaries(journal_dir: str, min_age: float = 60.0) -> list[str]:
    """Remove journals-to-be that a killed process left (a header at most, never an op):
    temporary files older than `min_age` seconds whose lock nobody holds."""
    try:
        names = os.listdir(journal_dir)
    except FileNotFoundError:
        return []
    removed = []
    for name in names:
        if not name.startswith(TEMPORARY_PREFIX):
            continue
        path = os.path.join(journal_dir, name)
        try:
            if time.time() - os.path.getmtime(path) < min_age or lock_free(path) is False:
                continue
            os.unlink(path)
        except OSError:
            continue
        removed.append(path)
    return removed


def find_dead_journals(journal_dir: str, live: set[str], include_unknown: bool = False) -> list[str]:
    """Journals whose writer is dead (and, with include_unknown, those that cannot be
    proven alive or dead: see journal_status)."""
    wanted = (DEAD, UNKNOWN) if include_unknown else (DEAD,)
    return [path for path, status, _ in list_journals(journal_dir, live) if status in wanted]


def _read_header(path: str) -> tuple[dict[str, Any] | None, int]:
    with open(path, "rb") as fh:
        line = fh.readline()
    if not line.endswith(b"\n"):
        return None, 0
    try:
        return json.loads(line), len(line)
    except ValueError:
        return None, 0


def recover_journal(branch: TrackingBranch, path: str, on_recovered: Callable[[str], None] | None = None) -> str | None:
    """Commit what a dead process's journal holds; returns the run id recovered, if any.

    The recoverer holds the journal's flock from before it claims it (by renaming it)
    until it is gone, so no other recoverer, in any container, takes it meanwhile."""
    claimed = f"{path.split('.recovering.')[0]}.recovering.{os.getpid()}"
    try:
        fd = os.open(path, os.O_RDONLY)
    except FileNotFoundError:
        return None  # another process claimed it first
    try:
        if _try_lock(fd) is False:
            return None  # its writer lives after all, or another recoverer has it
        try:
            os.rename(path, claimed)
        except FileNotFoundError:
            return None  # another process claimed it first
        run_id = _recover_claimed(branch, claimed)
        os.unlink(claimed)
    finally:
        os.close(fd)
    if run_id is not None and on_recovered is not None:
        on_recovered(run_id)
    return run_id


def _recover_claimed(branch: TrackingBranch, claimed: str) -> str | None:
    header, ops = read_journal(claimed)
    if header is None:
        return None
    run_id: str = header["run_id"]
    end_time = max([int(os.path.getmtime(claimed) * 1000)]
                   + [op.get("timestamp", 0) for op in ops if op["op"] == "metric"])
    what = f"journal of dead process {header.get('pid')}" + (
        f" on {header['host']}" if header.get("host") not in (None, _HOST) else "")
    if header.get("mode", EDITOR) == OWNER:
        publish_dead_owner(branch, run_id, ops, end_time, what)
        return run_id
    statuses = [op["status"] for op in ops if op["op"] == "status"]
    if header.get("resumed") or (statuses and statuses[-1] not in TERMINAL):
        # The dead session had resumed the run: it ends KILLED -- unless the run was ended
        # (by this session or anyone else) or another writer of it may still be alive.
        status = statuses[-1] if statuses else None
        if status is None:
            state = branch.read_run(run_id)
            status = state.status if state is not None else None
        if status is not None and status not in TERMINAL and not _other_writers(branch, run_id, claimed):
            ops = ops + [{"op": "status", "status": "KILLED", "end_time": end_time}]
    if ops:
        events = event_changes(branch, run_id, EDITOR, ops)
        branch.commit(lambda _tree: events, f"run {run_id[:8]}: recover {what}\n\nrun_id: {run_id}\n")
    return run_id


def _other_writers(branch: TrackingBranch, run_id: str, claimed: str) -> bool:
    """Whether another journal of the run (this process's included) may belong to a live writer."""
    journal_dir = os.path.dirname(claimed)
    try:
        names = os.listdir(journal_dir)
    except FileNotFoundError:
        return False
    for name in names:
        path = os.path.join(journal_dir, name)
        if name.startswith(run_id + ".") and name.endswith(".jsonl") and path != claimed:
            if journal_status(path)[0] != DEAD:
                return True
    return False


def publish_dead_owner(branch: TrackingBranch, run_id: str, ops: list[dict[str, Any]], end_time: int,
                       what: str) -> None:
    """Put a dead owner's last state on the branch: its live checkpoint, then `ops`, and
    KILLED if it was still running.  Deletes its live ref."""
    odb = branch.odb
    live = branch.live_commit(run_id)
    run_tree = branch.run_tree(run_id)
    published = odb.edit_tree(run_tree, {"events": None}) if run_tree else None
    if live and published and not ops and branch.read_own_files(run_id, published).status in TERMINAL:
        # The owner ended the run on the branch and only failed to drop its live ref (a lock):
        # that checkpoint is older than the branch, and grafting it would undo the run's end.
        branch.refs.delete(LIVE_PREFIX + run_id, live)
        return
    base = branch.tree_of(live) if live else published
    if base is None and not ops:
        return
    state = branch.read_own_files(run_id, base) if base else RunState(run_id)
    state.keep_points = False
    state.apply_all(ops)
    if state.status not in TERMINAL:
        kill = {"op": "status", "status": "KILLED", "end_time": end_time}
        state.apply(kill)
        ops = ops + [kill]
    if ops or base != published:
        damaged = {path.rsplit("/", 1)[-1] for path, _line, _what in state.damaged}
        if damaged:  # never rewrite a damaged file from what could be read of it
            state.tags.pop(DAMAGED_TAG, None)
        with odb.batch():
            changes = own_changes(branch, state, ops, base, {})
            changes = {name: change for name, change in changes.items() if name not in damaged}
            new_own = odb.edit_tree(base, changes) if changes else base
        graft = run_graft(branch, run_id, new_own, published)
        events = event_changes(branch, run_id, OWNER, ops)
        status_event = _status_event(branch, run_id, state.status, ops)
        if not status_event and "run.yaml" in damaged:  # the end goes where it can be read
            status_event = event_changes(branch, run_id, EDITOR, [op for op in ops if op["op"] == "status"][-1:])
        events.update(status_event)
        branch.commit(_once(lambda: {**graft, **events}),
                      f"run {run_id[:8]}: recover {what}\n\nrun_id: {run_id}\n")
    if live:
        branch.refs.delete(LIVE_PREFIX + run_id, live)


def _status_event(branch: TrackingBranch, run_id: str, status: str, ops: list[dict[str, Any]]
                  ) -> dict[str, tuple[bytes, str] | None]:
    """An owner ending its run writes the status to its own files, which events override:
    when an event (an editor that resumed the run) says otherwise, the end is an event too."""
    ends = [op for op in ops if op["op"] == "status" and op["status"] in TERMINAL]
    if not ends:
        return {}
    tree = branch.run_tree(run_id)
    entry = branch.odb.tree_dict(tree).get("events") if tree else None
    if entry is None:
        return {}
    said = None
    for _name, doc in branch.read_events(entry.sha, lambda *_damage: None):
        for op in doc.get("ops") or []:
            if isinstance(op, dict) and op.get("op") == "status":
                said = op.get("status")
    if said is None or said == status:
        return {}
    return event_changes(branch, run_id, EDITOR, ends[-1:])


def orphaned_live_runs(branch: TrackingBranch, journal_dir: str) -> list[str]:
    """Runs with a live ref but no journal at all: their writer is gone (a session keeps its
    journal until after it dropped its live ref), so the live checkpoint must be published."""
    live = branch.live_commits()
    if not live:
        return []
    try:
        names = os.listdir(journal_dir)
    except FileNotFoundError:
        names = []
    journaled = {name.split(".", 1)[0] for name in names}
    return [run_id for run_id in live if run_id not in journaled]
