"""Git object database access: read through one long-lived ``git cat-file``,
write objects in-process, edit trees, move refs by compare-and-swap.

Writing objects in Python (zlib + hash + atomic rename) is what git itself does;
it costs microseconds instead of a subprocess per object, which is what makes
ending a run cheap.  Reading goes through git so packs, deltas and alternates
are handled by git.

Objects nothing references yet are protected the way `git fetch` protects what
it downloads: inside `ObjectDB.protected()` every object is written into a pack
that has a ``.keep`` file (created before git can see the pack) until the block
ends, i.e. until the ref update that makes them reachable.  `git repack -a -d`,
`git gc --prune=now` and `git maintenance` leave kept packs alone.  A keep file
names its process (``gitexp pid <pid> start <start time> host <host>``), so one
left by a killed process is removed by recovery (`store/protection.py`).
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import re
import socket
import struct
import subprocess
import threading
import time
import zlib
from collections import OrderedDict
from collections.abc import Callable, Iterable, Iterator
from typing import Any, NamedTuple, TypeVar

from .. import _git as git
from ..exceptions import GitexpError, GitNotFound, RefLocked

try:
    import fcntl
except ImportError:  # pragma: no cover - not POSIX
    fcntl = None  # type: ignore[assignment]  # no fcntl (Windows): locking falls back

MODE_BLOB = b"100644"
MODE_EXEC = b"100755"
MODE_TREE = b"40000"
MODE_LINK = b"120000"

LOOSE_OBJECT_BYTES = 4 << 20    # outside protected(), larger objects are written loose
MAX_PACK_BYTES = 256 << 20      # a batch past this is flushed as a pack early
REPACK_PACK_COUNT = 32          # roll small packs up once this many exist
REPACK_SEALED_BYTES = 2 << 20   # packs this large are left to git's own gc (ObjectDB.maybe_repack)
_PINNED = (".keep", ".promisor", ".mtimes")
REF_LOCK_TIMEOUT = 2.0          # seconds to wait for another process's ref lock (git itself waits 0.1 s)
_PACK_TYPES = {"commit": 1, "tree": 2, "blob": 3, "tag": 4}
_KINDS = {b"blob": "blob", b"tree": "tree", b"commit": "commit", b"tag": "tag"}
_READ_SIZE = 1 << 20
_PIPE_SIZE = 1 << 20
KEEP_MAGIC = "gitexp pid "      # how a keep file written by gitexp starts
_EMPTY_STORED_BLOCK = b"\x00\x00\x00\xff\xff"  # deflate: a non-final stored block of 0 bytes


def _start_time(pid: int) -> str | None:
    """A process's start time (clock ticks since boot) from /proc: with the pid, an identity
    that survives pid reuse.  None without /proc."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as fh:
            return fh.read().rsplit(b")", 1)[1].split()[19].decode()
    except (OSError, IndexError):
        return None


_owner: tuple[int, str] = (0, "")


def owner_note() -> str:
    """`gitexp pid <pid> start <start> host <host>`: who holds a keep file (recomputed after fork)."""
    global _owner
    pid = os.getpid()
    if _owner[0] != pid:
        _owner = (pid, f"{KEEP_MAGIC}{pid} start {_start_time(pid) or '-'} host {socket.gethostname()}\n")
    return _owner[1]


def _makedirs(path: str) -> None:
    """os.makedirs(exist_ok=True), also when git removes the directory during the call (it raises
    FileExistsError then); the caller's next attempt creates it again."""
    try:
        os.makedirs(path, exist_ok=True)
    except FileExistsError:
        pass


def _atomic_write(path: str, data: bytes) -> None:
    """Write a read-only file under its final name only once it is complete.  The temporary
    name starts with tmp_obj_, which `git prune` removes if a kill leaves it behind."""
    head, name = os.path.split(path)
    tmp = f"{head}/tmp_obj_gitexp_{os.getpid()}_{threading.get_ident()}_{name}"
    for attempt in range(10):
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o444)
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
        try:
            os.replace(tmp, path)
            return
        except FileNotFoundError:
            if attempt < 9 and os.path.isdir(head):
                continue  # `git gc --prune=now` removed the temporary file meanwhile: write it again
            raise
        except OSError:
            if os.path.exists(tmp):
                os.unlink(tmp)
            if not os.path.exists(path):
                raise
            return


_GIT_VERSION: list[tuple[int, ...]] = []


def _popen_piped(args: list[str], env: dict[str, Any] | None) -> subprocess.Popen[bytes]:
    """Popen with stdin/stdout pipes, unbuffered on our side; 1 MiB pipes where the system
    allows (fewer reads, so a reading thread waits less often for the GIL while another
    thread works), the default size where it does not."""
    try:
        return subprocess.Popen(args, stdin=subprocess.PIPE, stdout=subprocess.PIPE, env=env, bufsize=0,
                                pipesize=_PIPE_SIZE)
    except PermissionError:  # over the per-user limit on pipe buffers, or a lower pipe-max-size
        return subprocess.Popen(args, stdin=subprocess.PIPE, stdout=subprocess.PIPE, env=env, bufsize=0)


def _batch_command_supported() -> bool:
    """git >= 2.36 (cat-file --batch-command)."""
    if not _GIT_VERSION:
        try:
            out = git.run(["version"], text=True).stdout
            numbers = out.split()[2].split(".")
            _GIT_VERSION.append(tuple(int(n) for n in numbers[:2] if n.isdigit()))
        except (OSError, IndexError, ValueError, GitNotFound):
            _GIT_VERSION.append((0,))
    return _GIT_VERSION[0] >= (2, 36)


class ObjectMissing(GitexpError):
    """A git object that should exist is not in the repository."""

    def __init__(self, sha: str) -> None:
        self.sha = sha
        super().__init__(
            f"Git object {sha} is missing from the repository; "
            "run `git fsck` to check the repository"
        )


class TreeEntry(NamedTuple):
    # A named tuple: a cold index build decodes millions of these, and a tuple is built
    # several times faster than a frozen dataclass.
    mode: bytes
    name: str
    sha: str

    @property
    def is_tree(self) -> bool:
        return self.mode == MODE_TREE


def _sort_key(entry: TreeEntry) -> bytes:
    # git orders tree entries by name bytes, comparing a subtree as "name/".
    name = entry.name.encode()
    return name + b"/" if entry.mode == MODE_TREE else name


def encode_tree(entries: Iterable[TreeEntry]) -> bytes:
    parts = []
    for e in sorted(entries, key=_sort_key):
        parts.append(e.mode + b" " + e.name.encode() + b"\0" + bytes.fromhex(e.sha))
    return b"".join(parts)


_TREE_ENTRY = {20: re.compile(rb"([0-7]+) ([^\0]*)\0(.{20})", re.DOTALL),
               32: re.compile(rb"([0-7]+) ([^\0]*)\0(.{32})", re.DOTALL)}


def decode_tree(data: bytes, hash_len: int) -> list[TreeEntry]:
    pattern = _TREE_ENTRY.get(hash_len)
    if pattern is not None:
        found = pattern.findall(data)
        # Every byte accounted for (else a damaged tree: decoded entry by entry to fail where it is).
        if sum(len(mode) + len(name) + 2 + hash_len for mode, name, _ in found) == len(data):
            return [TreeEntry(mode, name.decode("utf-8", "surrogateescape"), sha.hex()) for mode, name, sha in found]
    entries = []
    pos, end = 0, len(data)
    while pos < end:
        space = data.index(b" ", pos)
        nul = data.index(b"\0", space)
        mode = data[pos:space]
        name = data[space + 1 : nul].decode("utf-8", "surrogateescape")
        sha = data[nul + 1 : nul + 1 + hash_len].hex()
        entries.append(TreeEntry(mode, name, sha))
        pos = nul + 1 + hash_len
    return entries


def geometric_roll(packs: list[tuple[int, str]], factor: int) -> list[str]:
    """The packs a geometric repack rolls into one, as `git repack --geometric` picks them:
    by size, the smallest ones up to where the rest already grow by `factor` each, plus any
    above that are smaller than `factor` times what is rolled."""
    ordered = sorted(packs)
    split = 0
    for i in range(len(ordered) - 1, 0, -1):
        if ordered[i][0] < factor * ordered[i - 1][0]:
            split = i + 1  # the pair that breaks the progression rolls, both of it
            break
    rolled_bytes = sum(size for size, _ in ordered[:split])
    while split < len(ordered) and ordered[split][0] < factor * rolled_bytes:
        rolled_bytes += ordered[split][0]
        split += 1
    return [stem for _, stem in ordered[:split]]


_K = TypeVar("_K")
_V = TypeVar("_V")


class _LRU(OrderedDict[_K, _V]):
    def __init__(self, maxsize: int) -> None:
        super().__init__()
        self.maxsize = maxsize

    def get_item(self, key: _K) -> _V | None:
        value = self.get(key)
        if value is not None:
            self.move_to_end(key)
        return value

    def put(self, key: _K, value: _V) -> None:
        self[key] = value
        self.move_to_end(key)
        if len(self) > self.maxsize:
            self.popitem(last=False)


class _Hold:
    """The packs one `ObjectDB.protected()` block keeps, and the objects in them."""

    __slots__ = ("keeps", "written")

    def __init__(self) -> None:
        self.keeps: list[str] = []
        self.written: set[str] = set()


class ObjectDB:
    """Objects of one repository.  Thread-safe; re-forks its reader after fork()."""

    def __init__(self, git_common_dir: str, object_format: str = "sha1", git_env: dict[str, Any] | None = None) -> None:
        self.git_dir = git_common_dir
        self.objects_dir = os.path.join(git_common_dir, "objects")
        self.object_format = object_format
        self._hash = hashlib.sha256 if object_format == "sha256" else hashlib.sha1
        self.hash_len = 32 if object_format == "sha256" else 20
        self._env = git_env
        self._lock = threading.Lock()
        self._proc: subprocess.Popen[bytes] | None = None
        self._proc_pid = 0
        self._bulk: subprocess.Popen[bytes] | None = None  # see _bulk_reader
        self._bulk_pid = 0
        self._bulk_lock = threading.Lock()
        self._trees: _LRU[str, list[TreeEntry]] = _LRU(20000)
        # Trees this process wrote, kept apart: a long run writes ~20 trees a checkpoint,
        # each superseding the last, and only the latest ones are edited again.  In the
        # read cache they would grow the process by ~5 MB a million points until it filled.
        self._written: _LRU[str, list[TreeEntry]] = _LRU(1024)
        self._blobs: _LRU[str, bytes] = _LRU(4000)
        self._local = threading.local()
        self._packs_written = 0
        self._pack_names: set[str] = set()  # packs written under protection: a name is used once
        self.unprotected_writes = 0  # objects written outside protected(): loose, as git writes them

    # -- reading -------------------------------------------------------
    def _reader(self) -> subprocess.Popen[bytes]:
        if self._proc is None or self._proc_pid != os.getpid() or self._proc.poll() is not None:
            # Not through gitexp._git: one process kept for every read of this process's life.
            try:
                self._proc = subprocess.Popen(
                    ["git", f"--git-dir={self.git_dir}", "cat-file", "--batch"],
                    stdin=subprocess.PIPE,
                    stdout=subprocess.PIPE,
                    env=self._env,
                )
            except FileNotFoundError as exc:
                if exc.filename not in (None, "git"):
                    raise
                raise GitNotFound() from None
            self._proc_pid = os.getpid()
        return self._proc

    def close(self) -> None:
        with self._lock:
            for attr, pid in (("_proc", self._proc_pid), ("_bulk", self._bulk_pid)):
                proc = getattr(self, attr)
                setattr(self, attr, None)
                if proc is not None and pid == os.getpid():
                    try:
                        git.pipe(proc.stdin).close()
                        proc.wait(timeout=5)
                    except Exception:
                        proc.kill()

    def read(self, sha: str) -> tuple[str, bytes]:
        """Return (type, content) of an object."""
        batch = getattr(self._local, "batch", None)
        if batch and sha in batch:
            batched: tuple[str, bytes] = batch[sha]
            return batched
        preloaded = getattr(self._local, "preloaded", None)
        if preloaded is not None:
            found: tuple[str, bytes] | None = preloaded.get(sha)
            if found is not None:
                return found
        with self._lock:
            for attempt in range(2):
                proc = self._reader()
                stdin, stdout = git.pipe(proc.stdin), git.pipe(proc.stdout)
                stdin.write(sha.encode() + b"\n")
                stdin.flush()
                header = stdout.readline()
                if not header:
                    self._proc = None
                    raise GitexpError(f"git cat-file stopped unexpectedly while reading {sha}")
                fields = header.split()
                if len(fields) >= 3 and fields[1] != b"missing":
                    size = int(fields[2])
                    data = stdout.read(size + 1)[:-1]
                    return fields[1].decode(), data
                if attempt == 0:
                    # A repack moving the object between packs right then (a user's `git repack
                    # -a -d`, gitexp's own roll-up) can hide it from a long-lived reader's view of
                    # the pack directory (docs/reliability.md): ask a fresh reader once.
                    self._restart_reader()
                    time.sleep(0.01)
            raise ObjectMissing(sha)

    def _restart_reader(self) -> None:
        proc, self._proc = self._proc, None
        if proc is not None and self._proc_pid == os.getpid():
            try:
                git.pipe(proc.stdin).close()
                proc.wait(timeout=5)
            except Exception:  # a reader that will not stop is killed
                proc.kill()

    def read_many(self, shas: list[str]) -> Iterator[tuple[str, bytes]]:
        """Yield (sha, content) for many objects, pipelining requests to git."""
        for sha, _kind, data in self.stream(shas):
            yield sha, data

    def stream(self, shas: list[str]) -> Iterator[tuple[str, str, bytes]]:
        """Yield (sha, type, content) for each of `shas`, in order, from one pipelined
        `git cat-file` with buffered output.

        git writes its answers through stdio buffering instead of one write per
        object, and they are parsed from large reads rather than a readline and a
        read per object: ~1 µs of Python per object.  With git 2.36 or later one
        long-lived `cat-file --batch-command --buffer` serves every bulk read of this
        process (`flush` ends each request), so a cold index build does not start a
        git -- and map the packs again -- for every few thousand objects.
        """
        if not shas:
            return
        proc = self._bulk_reader()
        persistent = proc is not None
        if proc is None:
            proc = _popen_piped(["git", f"--git-dir={self.git_dir}", "cat-file", "--batch", "--buffer"], self._env)
            request = ("\n".join(shas) + "\n").encode()
        else:
            request = ("".join(f"contents {sha}\n" for sha in shas) + "flush\n").encode()

        def feed() -> None:
            try:
                stdin = git.pipe(proc.stdin)
                stdin.write(request)
                if persistent:
                    stdin.flush()
                else:
                    stdin.close()
            except (BrokenPipeError, ValueError, OSError):
                pass

        writer = threading.Thread(target=feed, daemon=True)
        writer.start()
        fd = git.pipe(proc.stdout).fileno()
        read = os.read
        kinds = _KINDS
        buf = b""
        pos = 0
        complete = False
        try:
            for sha in shas:
                nl = buf.find(b"\n", pos)
                while nl < 0:
                    more = read(fd, _READ_SIZE)
                    if not more:
                        raise GitexpError(f"git cat-file stopped unexpectedly while reading {sha}")
                    buf = buf[pos:] + more
                    pos = 0
                    nl = buf.find(b"\n")
                fields = buf[pos:nl].split(b" ")
                if len(fields) != 3:
                    raise ObjectMissing(sha)
                start = nl + 1
                end = start + int(fields[2])
                if end >= len(buf):  # the object (and its newline) is not all here yet
                    parts = [buf[pos:]]
                    have = len(buf) - pos
                    need = end + 1 - pos
                    while have < need:
                        more = read(fd, max(_READ_SIZE, need - have))
                        if not more:
                            raise GitexpError(f"git cat-file stopped unexpectedly while reading {sha}")
                        parts.append(more)
                        have += len(more)
                    buf = b"".join(parts)
                    start -= pos
                    end -= pos
                    pos = 0
                kind = kinds.get(fields[1]) or fields[1].decode()
                yield sha, kind, buf[start:end]
                pos = end + 1
            complete = pos == len(buf)  # nothing of another request in the pipe
        finally:
            if not persistent:
                git.pipe(proc.stdout).close()
                writer.join()
                proc.wait()
            else:
                if not complete:  # stopped half-way: the process's output is out of step
                    proc.kill()
                    self._bulk = None
                writer.join()
                self._bulk_lock.release()

    def _bulk_reader(self) -> subprocess.Popen[bytes] | None:
        """This process's long-lived `cat-file --batch-command --buffer`, held by the caller
        until it releases `_bulk_lock`; None when git is older than 2.36 or another thread
        is using it (the caller then starts a one-off reader)."""
        if not _batch_command_supported() or not self._bulk_lock.acquire(blocking=False):
            return None
        proc = self._bulk
        if proc is None or self._bulk_pid != os.getpid() or proc.poll() is not None:
            try:
                proc = _popen_piped(["git", f"--git-dir={self.git_dir}", "cat-file", "--batch-command", "--buffer"],
                                    self._env)
            except OSError:
                self._bulk_lock.release()
                raise
            self._bulk, self._bulk_pid = proc, os.getpid()
        return proc

    @contextlib.contextmanager
    def preloaded(self, objects: dict[str, tuple[str, bytes]],
                  trees: dict[str, list[TreeEntry]] | None = None) -> Iterator[None]:
        """Serve reads in this thread from `objects` (sha -> (type, content)) first.

        Bulk readers fetch many objects with one pipelined `stream` and then
        run the ordinary read path over them, so folding stays one code path.
        `trees` (sha -> decoded entries) saves decoding a tree the bulk reader
        already decoded.  Objects served from here do not go through the LRU
        caches: a bulk read would only evict what other readers use.
        """
        previous = getattr(self._local, "preloaded", None)
        previous_trees = getattr(self._local, "preloaded_trees", None)
        self._local.preloaded = objects
        self._local.preloaded_trees = trees
        try:
            yield
        finally:
            self._local.preloaded = previous
            self._local.preloaded_trees = previous_trees

    def read_many_typed(self, shas: list[str]) -> dict[str, tuple[str, bytes]]:
        """sha -> (type, content) for many objects, read through one pipelined git process
        (once more after a miss: see `read`)."""
        unique = list(dict.fromkeys(shas))
        try:
            return {sha: (kind, data) for sha, kind, data in self.stream(unique)}
        except ObjectMissing:
            time.sleep(0.01)
            return {sha: (kind, data) for sha, kind, data in self.stream(unique)}

    def read_blob(self, sha: str) -> bytes:
        preloaded = getattr(self._local, "preloaded", None)
        if preloaded is not None:
            found: tuple[str, bytes] | None = preloaded.get(sha)
            if found is not None and found[0] == "blob":
                return found[1]
        cached = self._blobs.get_item(sha)
        if cached is not None:
            return cached
        kind, data = self.read(sha)
        if kind != "blob":
            raise GitexpError(f"Git object {sha} is a {kind}, expected a blob")
        if len(data) < 1 << 16:
            with self._lock:
                self._blobs.put(sha, data)
        return data

    def read_tree(self, sha: str) -> list[TreeEntry]:
        trees = getattr(self._local, "preloaded_trees", None)
        if trees is not None:
            found: list[TreeEntry] | None = trees.get(sha)
            if found is not None:
                return found
        preloaded = getattr(self._local, "preloaded", None)
        if preloaded is not None:
            raw = preloaded.get(sha)
            if raw is not None and raw[0] == "tree":
                return decode_tree(raw[1], self.hash_len)
        cached = self._trees.get_item(sha)
        if cached is None:
            cached = self._written.get_item(sha)
        if cached is not None:
            return cached
        kind, data = self.read(sha)
        if kind != "tree":
            raise GitexpError(f"Git object {sha} is a {kind}, expected a tree")
        entries = decode_tree(data, self.hash_len)
        with self._lock:
            self._trees.put(sha, entries)
        return entries

    def tree_dict(self, sha: str | None) -> dict[str, TreeEntry]:
        if sha is None:
            return {}
        return {e.name: e for e in self.read_tree(sha)}

    def read_commit(self, sha: str) -> dict[str, Any]:
        kind, data = self.read(sha)
        if kind != "commit":
            raise GitexpError(f"Git object {sha} is a {kind}, expected a commit")
        head, _, message = data.partition(b"\n\n")
        info: dict[str, Any] = {"parents": [], "message": message.decode("utf-8", "replace")}
        for line in head.split(b"\n"):
            key, _, value = line.partition(b" ")
            if key == b"tree":
                info["tree"] = value.decode()
            elif key == b"parent":
                info["parents"].append(value.decode())
            elif key in (b"author", b"committer"):
                info[key.decode()] = value.decode("utf-8", "replace")
        return info

    def lookup(self, tree_sha: str | None, path: str) -> TreeEntry | None:
        """The entry at a slash-separated path below a tree, or None."""
        entry = None
        for part in path.strip("/").split("/"):
            if tree_sha is None:
                return None
            entry = self.tree_dict(tree_sha).get(part)
            if entry is None:
                return None
            tree_sha = entry.sha if entry.is_tree else None
        return entry

    # -- writing -------------------------------------------------------
    def write(self, kind: str, data: bytes) -> str:
        """Store an object and return its id.

        Inside `protected()` every object goes into a kept pack (collected into one pack
        per `batch()`).  Elsewhere objects inside `batch()` are written as one pack when
        the batch ends, and others (and large ones) as loose objects.
        """
        header = b"%s %d\0" % (kind.encode(), len(data))
        h = self._hash(header)
        h.update(data)
        sha = h.hexdigest()
        hold = getattr(self._local, "hold", None)
        if hold is not None and sha in hold.written:
            return sha  # already in a pack this block keeps
        batch = getattr(self._local, "batch", None)
        if batch is not None and (hold is not None or len(data) < LOOSE_OBJECT_BYTES):
            if sha not in batch:
                batch[sha] = (kind, data)
                self._local.batch_bytes += len(data)
                if self._local.batch_bytes > MAX_PACK_BYTES:
                    self._flush_batch()
            return sha
        if hold is not None:
            self._write_pack({sha: (kind, data)})
            return sha
        self._unprotected_write(sha)
        self._write_loose(sha, header + data)
        return sha

    def _unprotected_write(self, sha: str) -> None:
        self.unprotected_writes += 1
        if os.environ.get("GITEXP_DEBUG_UNPROTECTED_WRITES") == "raise":
            raise GitexpError(f"internal: object {sha} written outside ObjectDB.protected()")

    def _write_loose(self, sha: str, raw: bytes) -> None:
        directory = self.objects_dir + "/" + sha[:2]
        path = directory + "/" + sha[2:]
        if not os.path.exists(path):
            data = zlib.compress(raw, 1)
            for _ in range(3):  # `git prune` removes empty object directories
                _makedirs(directory)
                try:
                    _atomic_write(path, data)
                    break
                except FileNotFoundError:
                    continue

    @contextlib.contextmanager
    def protected(self) -> Iterator[None]:
        """Keep every object this thread writes inside the block from being pruned until it ends.

        Wrap everything from writing the objects to the ref update that makes them
        reachable.  Objects go into packs whose ``.keep`` file exists before the pack
        is visible to git and is removed when the block ends (also on error: then the
        objects are garbage).  Within the block an object is written once; nested
        blocks join the outer one.
        """
        if getattr(self._local, "hold", None) is not None:
            yield
            return
        hold = self._local.hold = _Hold()
        try:
            yield
        finally:
            self._local.hold = None
            for keep in hold.keeps:
                try:
                    os.unlink(keep)
                except FileNotFoundError:
                    pass

    @contextlib.contextmanager
    def batch(self) -> Iterator[None]:
        """Collect objects written in this thread and store them as one pack at the end.

        A pack per commit instead of a file per object: a run's commit is two
        files on disk, not twenty.  Nested batches join the outer one.
        """
        if getattr(self._local, "batch", None) is not None:
            yield
            return
        self._local.batch = {}
        self._local.batch_bytes = 0
        try:
            yield
            self._flush_batch()
        finally:
            self._local.batch = None

    def flush(self) -> None:
        """Write now what this thread's open batch holds.  Before any ref update: a batch
        nested in an outer one is written only when the outer one ends, and a ref must
        never point at objects that are not on disk yet."""
        if getattr(self._local, "batch", None):
            self._flush_batch()

    def _flush_batch(self) -> None:
        objects = self._local.batch
        if objects:
            self._local.batch = {}
            self._local.batch_bytes = 0
            self._write_pack(objects)

    def _encode_pack(self, objects: dict[str, tuple[str, bytes]], variant: int = 0) -> tuple[bytes, bytes, bytes]:
        """(pack, idx, checksum) of pack v2 / idx v2 files holding `objects`.

        `variant` > 0 makes a different file of the same objects: the first entry's
        zlib stream starts with that many empty stored deflate blocks (5 bytes each,
        valid for every inflater), so the pack's checksum, hence its name, differs."""
        pack = bytearray(b"PACK" + struct.pack(">II", 2, len(objects)))
        index = []
        for sha, (kind, data) in objects.items():
            size = len(data)
            byte = (_PACK_TYPES[kind] << 4) | (size & 0x0F)
            size >>= 4
            head = bytearray()
            while size:
                head.append(byte | 0x80)
                byte = size & 0x7F
                size >>= 7
            head.append(byte)
            deflated = zlib.compress(data, 1)
            if variant:
                deflated = deflated[:2] + _EMPTY_STORED_BLOCK * variant + deflated[2:]
                variant = 0
            entry = bytes(head) + deflated
            index.append((bytes.fromhex(sha), len(pack), zlib.crc32(entry)))
            pack += entry
        checksum = self._hash(pack).digest()
        pack += checksum
        index.sort()
        counts = [0] * 256
        for name, _, _ in index:
            counts[name[0]] += 1
        total, fanout = 0, []
        for c in counts:
            total += c
            fanout.append(total)
        idx = bytearray(b"\xfftOc" + struct.pack(">I", 2) + struct.pack(">256I", *fanout))
        idx += b"".join(name for name, _, _ in index)
        idx += b"".join(struct.pack(">I", crc) for _, _, crc in index)
        idx += b"".join(struct.pack(">I", offset) for _, offset, _ in index)
        idx += checksum
        idx += self._hash(idx).digest()
        return bytes(pack), bytes(idx), checksum

    def _write_pack(self, objects: dict[str, tuple[str, bytes]]) -> None:
        pack_dir = os.path.join(self.objects_dir, "pack")
        os.makedirs(pack_dir, exist_ok=True)
        hold = getattr(self._local, "hold", None)
        variant = 0
        while True:
            pack, idx, checksum = self._encode_pack(objects, variant)
            base = os.path.join(pack_dir, f"pack-{checksum.hex()}")
            if hold is None or (base not in self._pack_names and self._claim_keep(base)):
                break
            # Never write a pack under a name used before: a retry with the same objects
            # (a refused commit tried again) gives the same pack, and the earlier one --
            # unkept, unreachable -- may be being deleted by `git repack -a -d`, which
            # removes .idx, .pack and then .keep by name, ours included.
            variant += 1
        if hold is not None:
            if len(self._pack_names) > 100_000:
                self._pack_names.clear()
            self._pack_names.add(base)
            hold.keeps.append(base + ".keep")
        # The .keep (when protected) exists before the pack; the .pack is complete before
        # git can see the .idx that announces it.
        _atomic_write(base + ".pack", pack)
        _atomic_write(base + ".idx", idx)
        if hold is not None:
            hold.written.update(objects)
        self._packs_written += 1
        if self._packs_written % 8 == 0:
            self.maybe_repack()

    @staticmethod
    def _claim_keep(base: str) -> bool:
        """Create `base`.keep, naming this process, for a pack not yet written; False if that
        pack or keep exists.  The keep appears with its content (link(2) of a finished
        temporary file), so a kill never leaves an empty keep -- which is how users pin packs
        by hand, so nobody could remove it.  `tmp_` files are what `git prune` cleans up."""
        tmp = f"{os.path.dirname(base)}/tmp_gitexp_keep_{os.getpid()}_{threading.get_ident()}"
        for _ in range(10):
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
            try:
                os.write(fd, owner_note().encode())
            finally:
                os.close(fd)
            try:
                os.link(tmp, base + ".keep")
                break
            except FileExistsError:
                return False
            except FileNotFoundError:
                continue  # `git gc --prune=now` took the temporary file: write it again
            finally:
                try:
                    os.unlink(tmp)
                except FileNotFoundError:
                    pass
        else:
            raise GitexpError(f"Could not create {base}.keep: its temporary file kept disappearing")
        if os.path.exists(base + ".idx") or os.path.exists(base + ".pack"):
            os.unlink(base + ".keep")  # that pack exists (or is being deleted): not ours to reuse
            return False
        return True

    def maybe_repack(self, threshold: int = REPACK_PACK_COUNT) -> bool:
        """Roll small packs up once there are many of them: a geometric roll-up (factor 2, as
        `git repack --geometric=2 -d`) of the unkept packs under REPACK_SEALED_BYTES only.

        A geometric repack of every pack rewrites each object about log2(packs) times, so
        the bytes a long run writes per point grew with its length (docs/benchmarks.md,
        "Long runs").  Packs that reached REPACK_SEALED_BYTES are left alone (git's own gc
        still consolidates them), which bounds how often an object is rewritten: writes
        stay linear in the data.  The roll-up is `git pack-objects --stdin-packs` (every
        object of the rolled packs, reachable or not, so nothing pending is lost), then the
        rolled packs are removed, .idx first, as `git repack -d` does.  Kept packs are
        never rolled.  Inline, in the commit that found many packs: in the background it
        would leave a user's `git fsck` meanwhile reporting packs it could not open."""
        pack_dir = os.path.join(self.objects_dir, "pack")
        try:
            names = os.listdir(pack_dir)
        except FileNotFoundError:
            return False
        if sum(1 for name in names if name.endswith(".idx")) < threshold:
            return False
        lock = os.path.join(self.git_dir, "gitexp", "repack.lock")
        os.makedirs(os.path.dirname(lock), exist_ok=True)
        try:
            fd = os.open(lock, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
        except FileExistsError:
            try:
                if time.time() - os.path.getmtime(lock) > 600:
                    os.unlink(lock)  # left by a process that died while repacking
            except OSError:
                pass
            return False
        try:
            return self._roll_up(pack_dir, threshold)
        finally:
            os.close(fd)
            os.unlink(lock)

    def _roll_up(self, pack_dir: str, threshold: int) -> bool:
        packs: list[tuple[int, str]] = []   # (bytes, "pack-<hash>") of the packs that may roll
        for name in os.listdir(pack_dir):
            if not name.endswith(".idx"):
                continue
            stem = name[:-4]
            base = os.path.join(pack_dir, stem)
            try:
                size = os.path.getsize(base + ".pack")
            except OSError:
                continue  # being written or removed
            if size < REPACK_SEALED_BYTES and not any(os.path.exists(base + ext) for ext in _PINNED):
                packs.append((size, stem))
        if len(packs) < min(threshold, 2):
            return False
        rolled = [stem for stem in geometric_roll(packs, 2)]
        if len(rolled) < 2:
            return False
        # Every object of the rolled packs goes into the new one, also those another pack has
        # too: a copy elsewhere is no guarantee -- a user's `git repack -a -d` that started
        # earlier deletes the unkept packs it saw, dropping what was unreachable when it looked
        # (an object a checkpoint made reachable since, whose kept pack we are rolling now).
        # A duplicate costs a few bytes; a missing object costs a run.
        request = "".join(f"{stem}.pack\n" for stem in rolled)
        result = git.run(["pack-objects", "--stdin-packs", "-q", os.path.join(pack_dir, "pack")],
                         git_dir=self.git_dir, input=request.encode(), env=self._env)
        written = result.stdout.decode().strip()
        if result.returncode != 0 or not written:
            return False  # a pack vanished under it (a user's `git gc`): nothing removed
        for stem in rolled:
            if stem == f"pack-{written}":
                continue
            for ext in (".idx", ".pack", ".rev", ".bitmap"):
                try:
                    os.unlink(os.path.join(pack_dir, stem + ext))
                except FileNotFoundError:
                    pass
        return True

    def write_blob(self, data: bytes) -> str:
        return self.write("blob", data)

    def write_tree(self, entries: Iterable[TreeEntry]) -> str:
        entries = list(entries)
        sha = self.write("tree", encode_tree(entries))
        with self._lock:
            self._written.put(sha, sorted(entries, key=_sort_key))
        return sha

    def write_commit(self, tree: str, parents: list[str], message: str, author: str, committer: str) -> str:
        lines = [f"tree {tree}"]
        lines += [f"parent {p}" for p in parents]
        lines += [f"author {author}", f"committer {committer}", "", message]
        body = "\n".join(lines)
        if not body.endswith("\n"):
            body += "\n"
        return self.write("commit", body.encode())

    def edit_tree(self, tree_sha: str | None, changes: dict[str, tuple[bytes, str] | None]) -> str:
        """Apply path -> (mode, sha) | None (delete) changes to a tree.

        Only the trees along changed paths are read and rewritten.  Deleting
        the last entry of a directory removes the directory.  Returns the new
        tree's id (an empty tree when everything was removed).
        """
        nested: dict[str, Any] = {}  # name -> a nested dict, or ("leaf", change)
        for path, value in changes.items():
            parts = [p for p in path.split("/") if p]
            node = nested
            for part in parts[:-1]:
                node = node.setdefault(part, {})
                if not isinstance(node, dict):
                    raise GitexpError(f"Path {path!r} conflicts with a file of the same name")
            node[parts[-1]] = ("leaf", value)
        return self._edit(tree_sha, nested) or self.write_tree([])

    def _edit(self, tree_sha: str | None, node: dict[str, Any]) -> str | None:
        entries = self.tree_dict(tree_sha)
        for name, change in node.items():
            if isinstance(change, tuple) and change[0] == "leaf":
                value = change[1]
                if value is None:
                    entries.pop(name, None)
                else:
                    entries[name] = TreeEntry(value[0], name, value[1])
            else:
                old = entries.get(name)
                sub = self._edit(old.sha if old is not None and old.is_tree else None, change)
                if sub is None:
                    entries.pop(name, None)
                else:
                    entries[name] = TreeEntry(MODE_TREE, name, sub)
        if not entries:
            return None
        return self.write_tree(entries.values())


class RefStore:
    """Read and compare-and-swap branch refs.

    For the files ref backend the git lock-file protocol is followed directly
    (the same `<ref>.lock` git uses, so git and gitexp exclude each other);
    other backends go through `git update-ref`.

    A lock held by someone else is waited for `lock_timeout` seconds, then the
    update fails with `RefLocked` naming the file (a lock seen to time out once
    fails at once while it is the same file).  While gitexp holds a ref lock it
    also holds an flock on it, which the kernel drops when the process dies: so
    `gitexp doctor` can tell a lock of a live gitexp process from one left by a
    killed process (store/protection.py has the whole rule).
    """

    def __init__(self, git_common_dir: str, files_backend: bool = True, git_env: dict[str, Any] | None = None,
                 lock_timeout: float = REF_LOCK_TIMEOUT) -> None:
        self.git_dir = git_common_dir
        self.files_backend = files_backend
        self._env = git_env
        self.lock_timeout = lock_timeout
        self._stale: dict[str, tuple[int, int]] = {}  # lock path -> (inode, mtime) seen to time out

    def read(self, ref: str) -> str | None:
        if not self.files_backend:
            result = git.run(["rev-parse", "--verify", "-q", ref], git_dir=self.git_dir, env=self._env, text=True)
            return result.stdout.strip() or None
        path = os.path.join(self.git_dir, ref)
        try:
            with open(path, "rb") as fh:
                value = fh.read().strip().decode()
            if value.startswith("ref: "):
                return self.read(value[5:])
            if value:
                return value
        except (FileNotFoundError, IsADirectoryError, NotADirectoryError):
            pass
        return self._read_packed(ref)

    def _read_packed(self, ref: str) -> str | None:
        try:
            with open(os.path.join(self.git_dir, "packed-refs"), "rb") as fh:
                target = ref.encode()
                for line in fh:
                    if line[:1] in (b"#", b"^"):
                        continue
                    sha, _, name = line.rstrip(b"\n").partition(b" ")
                    if name == target:
                        return sha.decode()
        except FileNotFoundError:
            pass
        return None

    # -- locks -----------------------------------------------------------------
    def _acquire(self, lock: str, what: str) -> int:
        """Create git's lock file `lock` (O_EXCL) and flock it; RefLocked after the bounded wait."""
        deadline = None
        delay = 0.0002
        missing = 0
        while True:
            try:
                fd = os.open(lock, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
                break
            except FileNotFoundError:
                # `git pack-refs` removes directories it emptied (refs/gitexp/live/...): recreate
                # and try again, as git's own raceproof_create_file does.
                missing += 1
                if missing > 100:
                    raise
                _makedirs(os.path.dirname(lock))
            except FileExistsError:
                now = time.monotonic()
                if deadline is None:
                    if self._known_stale(lock):
                        raise self._locked_error(lock, what, 0.0) from None
                    deadline = now + self.lock_timeout
                elif now > deadline:
                    self._remember_stale(lock)
                    raise self._locked_error(lock, what, self.lock_timeout) from None
                time.sleep(delay)
                delay = min(delay * 2, 0.01)
        if fcntl is not None:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:  # `gitexp doctor` probing this very moment: it lets go at once
                fcntl.flock(fd, fcntl.LOCK_EX)
            except OSError:
                pass  # a file system without flock: doctor then relies on the age rule alone
        return fd

    def _known_stale(self, lock: str) -> bool:
        seen = self._stale.get(lock)
        if seen is None:
            return False
        try:
            st = os.stat(lock)
        except FileNotFoundError:
            return False
        if (st.st_ino, st.st_mtime_ns) == seen:
            return True
        self._stale.pop(lock, None)
        return False

    def _remember_stale(self, lock: str) -> None:
        try:
            st = os.stat(lock)
        except FileNotFoundError:
            return
        self._stale[lock] = (st.st_ino, st.st_mtime_ns)

    def _locked_error(self, lock: str, what: str, waited: float) -> RefLocked:
        from .protection import describe_lock

        held = describe_lock(lock)
        waited_text = f"was not released within {waited:g} s" if waited else "is still the one that timed out before"
        return RefLocked(
            f"Cannot update {what}: its lock file {lock} {waited_text} ({held}). A git or gitexp "
            "process was probably killed while updating it. Run `gitexp doctor`, which removes the "
            "lock when its owner is provably dead, or delete the file yourself once no git command "
            "is running in this repository. Nothing logged is lost: changes not yet committed stay "
            "in the journal (.git/gitexp/journal) until the ref can be updated.",
            lock=lock, ref=what)

    def wait_unlocked(self, ref: str) -> None:
        """Return once `ref` is not locked (at once, usually); RefLocked after the bounded wait.
        For failing fast before accepting a write whose commit could not land."""
        if not self.files_backend:
            return
        lock = os.path.join(self.git_dir, ref) + ".lock"
        if not os.path.exists(lock):
            return
        if self._known_stale(lock):
            raise self._locked_error(lock, ref, 0.0)
        deadline = time.monotonic() + self.lock_timeout
        while os.path.exists(lock):
            if time.monotonic() > deadline:
                self._remember_stale(lock)
                raise self._locked_error(lock, ref, self.lock_timeout)
            time.sleep(0.002)

    # -- updates ---------------------------------------------------------------
    def compare_and_swap(self, ref: str, new: str, old: str | None, message: str, ident: str,
                         reflog: bool = True, check: Callable[[], None] | None = None) -> bool:
        """Point `ref` at `new` if it still points at `old`.  False if it moved.

        `check` runs while the ref is locked, right before the update; whatever it
        raises cancels the update.  RefLocked if the lock stays taken.
        """
        if not self.files_backend:
            if check is not None:
                check()
            zero = "0" * len(new)
            result = git.run(["update-ref", "-m", message, ref, new, old or zero], git_dir=self.git_dir,
                             env=self._env, text=True)
            return result.returncode == 0
        path = os.path.join(self.git_dir, ref)
        lock = path + ".lock"
        fd = self._acquire(lock, ref)
        reflog_size: int | None = None  # the reflog's length before our line, while it may be undone
        try:
            current = self.read(ref)
            if current != old:
                return False
            os.write(fd, new.encode() + b"\n")
            # The reflog line is written while the lock is held (as git does), so the lines of
            # concurrent writers are in the order of their updates: each line's old id is the
            # previous line's new id.  Appended after the lock, 54 of 450 lines of three racing
            # processes were out of order.  Written before `check`, which it must not delay.
            if reflog:
                reflog_size = self._append_reflog(ref, old, new, message, ident)
            if check is not None:
                # As late as possible, right before the rename: a checkout that begins after
                # it (git worktree add sets HEAD, then runs `git reset --hard`) reads the new
                # value; one that finished before it is seen.
                check()
            os.close(fd)
            fd = -1
            try:
                os.replace(lock, path)
            except OSError:
                os.unlink(lock)
                raise
            reflog_size = None
        finally:
            if reflog_size is not None:  # the update did not happen: take its line back
                self._truncate_reflog(ref, reflog_size)
            if fd >= 0:
                os.close(fd)
                os.unlink(lock)
        return True

    def delete(self, ref: str, old: str) -> bool:
        """Delete `ref` if it still points at `old`.  False if it moved or is gone; RefLocked
        if its lock stays taken."""
        if not self.files_backend:
            return self._git_delete(ref, old)
        path = os.path.join(self.git_dir, ref)
        lock = path + ".lock"
        if not os.path.isfile(path):
            return self._git_delete(ref, old) if self._read_packed(ref) == old else False
        fd = self._acquire(lock, ref)
        packed_fd = -1
        try:
            if self.read(ref) != old:
                return False
            # `git pack-refs` copies loose refs into packed-refs without taking their locks:
            # only under packed-refs.lock is "not packed" still true when the file goes (git
            # takes it for every deletion too).
            packed_fd = self._acquire(os.path.join(self.git_dir, "packed-refs.lock"), "packed-refs")
            packed = self._read_packed(ref) is not None
            if not packed:
                os.unlink(path)
                return True
        finally:
            if packed_fd >= 0:
                os.close(packed_fd)
                os.unlink(os.path.join(self.git_dir, "packed-refs.lock"))
            os.close(fd)
            os.unlink(lock)
        return self._git_delete(ref, old)  # also packed: git rewrites packed-refs

    def _git_delete(self, ref: str, old: str) -> bool:
        deadline = time.monotonic() + self.lock_timeout
        while True:
            result = git.run(["update-ref", "-d", ref, old], git_dir=self.git_dir, env=self._env)
            if result.returncode == 0:
                return True
            if self.read(ref) != old:
                return False  # moved or gone
            if time.monotonic() > deadline:  # still there: a lock git could not take
                raise RefLocked(f"Cannot delete {ref}: `git update-ref -d` failed: "
                                f"{result.stderr.decode(errors='replace').strip()}. Run `gitexp doctor`.",
                                ref=ref)
            time.sleep(0.01)

    def list_refs(self, prefix: str) -> dict[str, str]:
        """ref name -> object id of every ref under `prefix` (e.g. "refs/gitexp/live/")."""
        if not self.files_backend:
            result = git.run(["for-each-ref", "--format=%(refname) %(objectname)", prefix], git_dir=self.git_dir,
                             env=self._env, text=True)
            pairs = (line.split(" ", 1) for line in result.stdout.splitlines() if " " in line)
            return {ref: sha for ref, sha in pairs}
        out: dict[str, str] = {}
        # Loose refs first, packed-refs second: `git pack-refs` writes packed-refs before it
        # deletes the loose files, so a ref being packed meanwhile is seen in one or the other.
        directory = os.path.join(self.git_dir, prefix)
        try:
            names = os.listdir(directory)
        except (FileNotFoundError, NotADirectoryError):
            names = []
        for name in names:
            if name.endswith(".lock"):
                continue
            try:
                with open(os.path.join(directory, name), "rb") as fh:
                    value = fh.read().strip().decode()
            except (IsADirectoryError, FileNotFoundError):
                continue
            if value:
                out[prefix + name] = value
        try:
            with open(os.path.join(self.git_dir, "packed-refs"), "rb") as fh:
                target = prefix.encode()
                for raw in fh:
                    sha, _, refname = raw.rstrip(b"\n").partition(b" ")
                    if refname.startswith(target) and raw[:1] not in (b"#", b"^"):
                        out.setdefault(refname.decode(), sha.decode())
        except FileNotFoundError:
            pass
        return out

    def _append_reflog(self, ref: str, old: str | None, new: str, message: str, ident: str) -> int | None:
        """Append one line to `ref`'s reflog (the caller holds the ref lock); the length the
        file had before it, or None if nothing was written."""
        path = os.path.join(self.git_dir, "logs", ref)
        try:
            os.makedirs(os.path.dirname(path), exist_ok=True)
            with open(path, "ab") as fh:
                size = fh.seek(0, os.SEEK_END)
                line = f"{old or '0' * len(new)} {new} {ident}\t{message.splitlines()[0]}\n"
                fh.write(line.encode())
            return size
        except OSError:
            return None  # a reflog is a convenience; the ref itself still moves

    def _truncate_reflog(self, ref: str, size: int) -> None:
        try:
            os.truncate(os.path.join(self.git_dir, "logs", ref), size)
        except OSError:
            pass
