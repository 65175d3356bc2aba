"""Run artifacts: files on the tracking branch, large ones in an external store.

A logged file becomes a git blob at once (so a crash before the next commit
loses nothing: the journal names the blob, recovery links it into a tree).
Until a commit links it, the session's pending ref (``refs/gitexp/pending/<session>``)
keeps it from `git gc` (store/protection.py).
The run's own session puts its files at ``<run>/artifacts/<path>``; any other
session (a resumed run, a second process, a finished run) puts them at
``<run>/events/<event>.artifacts/<path>`` next to the event that lists them,
so no two writers ever produce the same path and merges stay conflict-free.
Reading a run's artifacts is its ``artifacts/`` tree overlaid by the files of
its events (and this process's pending ops), later ones winning.

Files larger than a threshold (default 10 MiB) are not put into git: their
bytes go to a content-addressed store (a local directory by default, or any
fsspec URL) under ``sha256/<aa>/<sha256>``, and the branch holds a small text
pointer (``gitexp-artifact-pointer v1``, the sha256, the size and the store)
in their place.  Downloads resolve pointers and verify the sha256.
"""

from __future__ import annotations

import builtins
import contextlib
import hashlib
import io
import logging
import os
import posixpath
import re
import secrets
import shutil
import tempfile
import threading
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, BinaryIO
from urllib.parse import unquote, urlparse

from .. import _git as git
from .. import _validation as _valid
from ..entities import FileInfo
from ..exceptions import InvalidParameterValue, ResourceDoesNotExist, StoreError
from . import layout
from .objects import _LRU, MODE_BLOB, MODE_EXEC, TreeEntry
from .protection import hold_pending, prepare_pending

if TYPE_CHECKING:
    from .journal import Session
    from .objects import ObjectDB
    from .tracking import GitStore

DEFAULT_THRESHOLD = 10 << 20
# Files of the server's artifact root that belong to no run (mlflow-artifacts:/shared/a.txt):
# events/<event>.yaml (an artifact op) and events/<event>.files/<path> (the file or its pointer).
SHARED_DIR = f"{layout.ROOT}/shared-artifacts"
POINTER_MAGIC = "gitexp-artifact-pointer v1"
MAX_POINTER_BYTES = 1024
_CHUNK = 1 << 20
_SIZE_SUFFIXES = {"": 1, "k": 1 << 10, "m": 1 << 20, "g": 1 << 30, "t": 1 << 40}
_HEX64 = re.compile(r"[0-9a-f]{64}\Z")
_log = logging.getLogger("gitexp")


# -- artifact paths ---------------------------------------------------------------------------
# Names git itself refuses in a tree (fsck.c: fsck_tree; utf8.c: is_hfs_dot*; path.c: is_ntfs_dot*).
# A tree holding one makes `git fsck` fail and every remote that checks objects (receive.fsckObjects,
# hosting services) refuse every push of the tracking branch, forever.  They are the names that mean
# ".git" or ".gitmodules" to macOS (HFS+ ignores some invisible code points) or to Windows (NTFS drops
# trailing dots and spaces, cuts at ':' and has 8.3 short names such as GIT~1).
_HFS_IGNORED_CHARS = "\u200c\u200d\u200e\u200f\u202a\u202b\u202c\u202d\u202e\u206a\u206b\u206c\u206d\u206e\u206f\ufeff"
_HFS_IGNORED = frozenset(_HFS_IGNORED_CHARS)
MAX_GIT_NAME_BYTES = 4096  # fsck's largePathname (fsck.largePathname, default 4096)
GITATTRIBUTES_MAX_BYTES = 100 << 20  # attr.h: ATTR_MAX_FILE_SIZE
GITATTRIBUTES_MAX_LINE = 2048  # attr.h: ATTR_MAX_LINE_LENGTH


def _ascii_ieq(text: str, needle: str) -> bool:
    """text equals the lowercase ASCII needle, ASCII letters compared without case (strncasecmp)."""
    return len(text) == len(needle) and all(c == n or (c.isascii() and c.lower() == n)
                                            for c, n in zip(text, needle, strict=True))


def is_hfs_dot(name: str, needle: str) -> bool:
    """Whether HFS+ sees `name` as '.<needle>' (git's is_hfs_dot_generic)."""
    chars = [c for c in name if c not in _HFS_IGNORED]
    return len(chars) == len(needle) + 1 and chars[0] == "." and _ascii_ieq("".join(chars[1:]), needle)


def _only_spaces_and_periods(name: str, i: int) -> bool:
    for c in name[i:]:
        if c == ":":
            return True
        if c not in " .":
            return False
    return True


def is_ntfs_dotgit(name: str) -> bool:
    """Whether NTFS sees `name` as '.git' (git's is_ntfs_dotgit)."""
    if name[:1] == ".":
        if not _ascii_ieq(name[1:4], "git"):
            return False
        i = 4
    elif _ascii_ieq(name[:3], "git") and name[3:5] == "~1":
        i = 5
    else:
        return False
    for c in name[i:]:
        if c in "/\\:":
            return True
        if c not in " .":
            return False
    return True


def is_ntfs_dot(name: str, needle: str, short_prefix: str) -> bool:
    """Whether NTFS sees `name` as '.<needle>', its 8.3 short name included (git's is_ntfs_dot_generic)."""
    if name[:1] == "." and _ascii_ieq(name[1:1 + len(needle)], needle):
        return _only_spaces_and_periods(name, len(needle) + 1)
    if _ascii_ieq(name[:6], needle[:6]) and name[6:7] == "~" and name[7:8] in ("1", "2", "3", "4"):
        return _only_spaces_and_periods(name, 8)
    i, saw_tilde = 0, False  # the fall-back short name: <prefix chars>~<digits>, 8 characters
    while i < 8:
        if i >= len(name):
            return False
        c = name[i]
        if saw_tilde:
            if not "0" <= c <= "9":
                return False
        elif c == "~":
            i += 1
            if i >= len(name) or not "1" <= name[i] <= "9":
                return False
            saw_tilde = True
        elif i >= 6 or not c.isascii() or c.lower() != short_prefix[i]:
            return False
        i += 1
    return _only_spaces_and_periods(name, 8)


def is_dotgitmodules(name: str) -> bool:
    return is_hfs_dot(name, "gitmodules") or is_ntfs_dot(name, "gitmodules", "gi7eba")


def is_dotgitattributes(name: str) -> bool:
    return is_hfs_dot(name, "gitattributes") or is_ntfs_dot(name, "gitattributes", "gi7d29")


def git_refuses_name(name: str, is_dir: bool) -> str | None:
    """Why git's fsck refuses `name` as a tree entry (a directory, or a regular file), or None."""
    if len(name) * 4 > MAX_GIT_NAME_BYTES and len(name.encode("utf-8")) > MAX_GIT_NAME_BYTES:
        return f"it is {len(name.encode('utf-8'))} bytes long; git refuses names over {MAX_GIT_NAME_BYTES} bytes"
    if "~" not in name[:8] and not name.lstrip(_HFS_IGNORED_CHARS).startswith("."):
        return None  # every rule below needs a leading '.' or an 8.3 short name's '~'
    if is_hfs_dot(name, "git"):
        return ("it is '.git' to macOS, whose file system ignores invisible characters such as "
                "U+200C" if name.lower() != ".git" else "it is git's own directory name")
    if is_ntfs_dotgit(name):
        return ("it is '.git' to Windows, which ignores trailing dots and spaces, ends names at ':' and "
                "gives '.git' the short name GIT~1")
    if is_dotgitmodules(name):
        return ("it is (a spelling of) '.gitmodules', which git reads as submodule configuration wherever "
                "it appears")
    if is_dir and is_dotgitattributes(name):
        return "it is (a spelling of) '.gitattributes', which git requires to be a file, not a directory"
    return None


def check_git_file_content(path: str, data: bytes, what: str = "artifact") -> None:
    """Refuse content git's fsck refuses at this path (only .gitattributes files are checked)."""
    name = path.rsplit("/", 1)[-1]
    if not is_dotgitattributes(name):
        return
    problem = None
    if len(data) > GITATTRIBUTES_MAX_BYTES:
        problem = f"it is {len(data)} bytes; git refuses .gitattributes files over {GITATTRIBUTES_MAX_BYTES} bytes"
    else:
        text = data.split(b"\0", 1)[0]
        longest = max((len(line) for line in text.split(b"\n")), default=0)
        if longest >= GITATTRIBUTES_MAX_LINE:
            problem = (f"it has a line of {longest} bytes; git refuses .gitattributes files with lines of "
                       f"{GITATTRIBUTES_MAX_LINE} bytes or more")
    if problem:
        raise InvalidParameterValue(
            f"Cannot log {what} {path!r}: {problem} (git's fsck would report the tracking branch as "
            "broken and remotes that check objects would refuse every push). Log it under another name, "
            "such as 'gitattributes.txt'.", path=path)


def validate_artifact_path(path: Any, what: str = "artifact_path", allow_root: bool = True) -> str:
    """A run-relative, '/'-separated path that cannot leave the run ("" is the root), made of names
    git accepts in a tree."""
    if path is None:
        path = ""
    if isinstance(path, os.PathLike):
        path = os.fspath(path)
    if not isinstance(path, str):
        raise InvalidParameterValue(
            f"{what} must be a string path such as 'plots/loss.png', got {path!r} ({type(path).__name__})",
            path=path)
    _valid.text(what[:1].upper() + what[1:], path, path=path)
    if "\\" in path:
        raise InvalidParameterValue(
            f"Invalid {what} {path!r}: backslashes are not allowed; separate directories with '/'",
            path=path)
    if path.startswith("/") or re.match(r"[A-Za-z]:([/\\]|$)", path) or path == "~" or path.startswith("~/"):
        raise InvalidParameterValue(
            f"Invalid {what} {path!r}: it must be relative to the run's artifact root "
            "(e.g. 'models/lin_reg'), not an absolute path", path=path)
    parts = [p for p in path.split("/") if p not in ("", ".")]
    for i, part in enumerate(parts):
        if part == "..":
            raise InvalidParameterValue(
                f"Invalid {what} {path!r}: '..' would leave the run's artifact directory; "
                "use a path inside the run such as 'plots/loss.png'", path=path)
        if any(ord(c) < 32 for c in part):
            raise InvalidParameterValue(
                f"Invalid {what} {path!r}: control characters (newline, tab, NUL...) are not "
                "allowed in artifact names", path=path)
        # The last name may still become a directory (log_artifacts); its files are checked then.
        reason = git_refuses_name(part, is_dir=i < len(parts) - 1)
        if reason:
            raise InvalidParameterValue(
                f"Invalid {what} {path!r}: git does not allow the name {part!r} in a repository ({reason}). "
                "Committing it would make `git fsck` report the tracking branch as broken and remotes that "
                "check objects refuse every push; rename it.", path=path, name=part)
    clean = "/".join(parts)
    if not clean and not allow_root:
        raise InvalidParameterValue(f"{what} must name a file, got {path!r}", path=path)
    return clean


def join_artifact_path(*parts: str | None) -> str:
    return "/".join(p for p in parts if p)


def parse_size(raw: str, source: str) -> int:
    """Bytes from '10485760', '10m', '1.5G' (binary units, like git config sizes)."""
    match = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*([kmgt]?)(?:i?b)?\s*", str(raw).lower())
    if not match:
        raise InvalidParameterValue(
            f"Artifact size threshold {raw!r} (from {source}) is not a size; "
            "use a number of bytes or a value such as 10m or 1g", value=raw)
    return int(float(match.group(1)) * _SIZE_SUFFIXES[match.group(2)])


# -- pointers to the external store -------------------------------------------------------------
@dataclass(frozen=True)
class Pointer:
    """What the branch holds in place of a file kept in the external store."""

    sha256: str
    size: int
    store: str

    def encode(self) -> bytes:
        return f"{POINTER_MAGIC}\nsha256 {self.sha256}\nsize {self.size}\nstore {self.store}\n".encode()

    @classmethod
    def parse(cls, data: bytes) -> Pointer | None:
        """The pointer a blob holds, or None if the blob is an ordinary file."""
        if len(data) > MAX_POINTER_BYTES or not data.startswith(POINTER_MAGIC.encode() + b"\n"):
            return None
        try:
            lines = data.decode().splitlines()
        except UnicodeDecodeError:
            return None
        fields: dict[str, str] = {}
        for line in lines[1:]:
            key, _, value = line.partition(" ")
            fields[key] = value
        sha, size = fields.get("sha256", ""), fields.get("size", "")
        if not _HEX64.match(sha) or not size.isdigit():
            return None
        return cls(sha, int(size), fields.get("store", ""))


class ExternalStore:
    """A content-addressed directory of large artifact files: a local path or an fsspec URL."""

    def __init__(self, url: str) -> None:
        self.url = url
        parsed = urlparse(url)
        self.local = parsed.scheme in ("", "file") or len(parsed.scheme) == 1
        if self.local:
            self.root = unquote(parsed.path) if parsed.scheme == "file" else url
            self.root = os.path.abspath(os.path.expanduser(self.root))
        else:
            try:
                import fsspec
            except ImportError:  # pragma: no cover - fsspec is a core dependency
                raise StoreError(f"The artifact store {url!r} needs fsspec: pip install fsspec") from None
            try:
                self.fs, self.root = fsspec.core.url_to_fs(url)
            except (ImportError, ValueError) as exc:
                raise StoreError(
                    f"Cannot open the artifact store {url!r}: {exc}. Install the fsspec driver for "
                    f"'{parsed.scheme}://' (e.g. pip install s3fs or gcsfs) or fix the URL in "
                    "`git config gitexp.artifactStore` / GITEXP_ARTIFACT_STORE") from exc
            self.root = self.root.rstrip("/")

    @staticmethod
    def key(sha256: str) -> str:
        return f"sha256/{sha256[:2]}/{sha256}"

    def location(self, sha256: str) -> str:
        if self.local:
            return os.path.join(self.root, *self.key(sha256).split("/"))
        return f"{self.url.rstrip('/')}/{self.key(sha256)}"

    def _remote_path(self, sha256: str) -> str:
        return f"{self.root}/{self.key(sha256)}"

    def put(self, source: BinaryIO) -> tuple[str, int]:
        """Store the bytes read from `source`; returns (sha256, size)."""
        if self.local:
            tmp_dir = os.path.join(self.root, "tmp")
            os.makedirs(tmp_dir, exist_ok=True)
            tmp = os.path.join(tmp_dir, f"upload-{os.getpid()}-{secrets.token_hex(6)}")
            digest, size = hashlib.sha256(), 0
            try:
                with open(tmp, "wb") as out:
                    while chunk := source.read(_CHUNK):
                        digest.update(chunk)
                        size += len(chunk)
                        out.write(chunk)
                sha = digest.hexdigest()
                final = self.location(sha)
                if os.path.isfile(final):
                    os.unlink(tmp)
                else:
                    os.makedirs(os.path.dirname(final), exist_ok=True)
                    os.chmod(tmp, 0o444)
                    os.replace(tmp, final)
            except BaseException:
                if os.path.exists(tmp):
                    os.unlink(tmp)
                raise
            return sha, size
        # Remote: hash first (one read), upload only what the store does not have.
        spool = tempfile.SpooledTemporaryFile(max_size=64 << 20)
        digest, size = hashlib.sha256(), 0
        while chunk := source.read(_CHUNK):
            digest.update(chunk)
            size += len(chunk)
            spool.write(chunk)
        sha = digest.hexdigest()
        path = self._remote_path(sha)
        try:
            if not self.fs.exists(path):
                parent = path.rsplit("/", 1)[0]
                try:
                    self.fs.makedirs(parent, exist_ok=True)
                except Exception:
                    pass  # object stores have no directories
                spool.seek(0)
                with self.fs.open(path, "wb") as out:
                    shutil.copyfileobj(spool, out, _CHUNK)
        except Exception as exc:
            raise StoreError(f"Could not upload a large artifact to {self.location(sha)}: {exc}") from exc
        finally:
            spool.close()
        return sha, size

    def open(self, sha256: str) -> BinaryIO:
        """The stored bytes; FileNotFoundError if the store does not have them."""
        if self.local:
            return open(self.location(sha256), "rb")
        remote: BinaryIO = self.fs.open(self._remote_path(sha256), "rb")
        return remote


def default_store_dir(store: GitStore) -> str:
    return os.path.join(store.repo.state_dir, "artifacts")


# -- object sizes ---------------------------------------------------------------------------------
_sizes: _LRU[str, int] = _LRU(100_000)
_sizes_lock = threading.Lock()


def _blob_sizes(git_dir: str, shas: list[str]) -> dict[str, int]:
    """Sizes of many objects with one `git cat-file --batch-check`."""
    out: dict[str, int] = {}
    missing = []
    for sha in shas:
        with _sizes_lock:
            size = _sizes.get_item(sha)
        if size is None:
            missing.append(sha)
        else:
            out[sha] = size
    if missing:
        result = git.run(["cat-file", "--batch-check"], git_dir=git_dir,
                         input="".join(s + "\n" for s in missing).encode())
        for line in result.stdout.decode().splitlines():
            fields = line.split()
            if len(fields) == 3 and fields[2].isdigit():
                out[fields[0]] = int(fields[2])
                with _sizes_lock:
                    _sizes.put(fields[0], int(fields[2]))
    return out


# -- a run's artifacts as one view ----------------------------------------------------------------
@dataclass
class ArtifactFile:
    path: str
    mode: bytes
    sha: str                 # the git blob (a pointer blob for external files)
    size: int | None = None  # the file's real size, when known without reading


class ArtifactView:
    """The run's own artifacts/ tree overlaid by event and pending artifacts."""

    def __init__(self, odb: ObjectDB, own_tree: str | None, overlay: dict[str, dict[str, Any]]) -> None:
        self.odb = odb
        self.own_tree = own_tree
        self.overlay = overlay  # path -> op, in fold order

    # -- own tree ------------------------------------------------------------------------------
    def _own_entry(self, path: str) -> TreeEntry | None:
        if self.own_tree is None:
            return None
        if not path:
            return TreeEntry(b"40000", "", self.own_tree)
        return self.odb.lookup(self.own_tree, path)

    def _walk_own(self, tree: str, prefix: str) -> Iterator[ArtifactFile]:
        for entry in self.odb.read_tree(tree):
            path = join_artifact_path(prefix, entry.name)
            if entry.is_tree:
                yield from self._walk_own(entry.sha, path)
            else:
                yield ArtifactFile(path, entry.mode, entry.sha)

    # -- merged ----------------------------------------------------------------------------------
    def _relevant_overlay(self, prefix: str) -> list[dict[str, Any]]:
        if not prefix:
            return list(self.overlay.values())
        return [op for p, op in self.overlay.items()
                if p == prefix or p.startswith(prefix + "/") or prefix.startswith(p + "/")]

    def files(self, prefix: str = "") -> dict[str, ArtifactFile]:
        """Every file at or below `prefix` (and files that shadow it), path -> file."""
        merged: dict[str, ArtifactFile] = {}
        own = self._own_entry(prefix)
        if own is not None:
            if own.is_tree:
                for f in self._walk_own(own.sha, prefix):
                    merged[f.path] = f
            else:
                merged[prefix] = ArtifactFile(prefix, own.mode, own.sha)
        for op in self._relevant_overlay(prefix):
            path = op["path"]
            for existing in list(merged):
                if existing == path or existing.startswith(path + "/") or path.startswith(existing + "/"):
                    del merged[existing]
            merged[path] = ArtifactFile(path, op["mode"].encode(), op["sha"], op.get("size"))
        if prefix:
            merged = {p: f for p, f in merged.items() if p == prefix or p.startswith(prefix + "/")}
        return merged

    def kind(self, path: str) -> str | None:
        """'file', 'dir' or None for a path."""
        if not path:
            return "dir"
        files = self.files(path)
        if path in files:
            return "file"
        return "dir" if files else None

    def children(self, path: str) -> list[tuple[str, ArtifactFile | None]]:
        """(child path, file or None for a directory) directly below a directory."""
        relevant = self._relevant_overlay(path)
        own = self._own_entry(path)
        if not relevant and own is not None and own.is_tree:
            return [(join_artifact_path(path, e.name), None if e.is_tree else ArtifactFile(
                join_artifact_path(path, e.name), e.mode, e.sha)) for e in self.odb.read_tree(own.sha)]
        files = self.files(path)
        if path in files:
            return []
        out: dict[str, ArtifactFile | None] = {}
        depth = len(path.split("/")) if path else 0
        for p, f in files.items():
            parts = p.split("/")
            child = "/".join(parts[: depth + 1])
            out[child] = f if len(parts) == depth + 1 else None
        return sorted(out.items())

    def is_dir(self, path: str) -> bool:
        """True if files are logged below `path`."""
        if not path or any(p.startswith(path + "/") for p in self.overlay):
            return True
        if path in self.overlay:
            return False
        own = self._own_entry(path)
        return own is not None and own.is_tree

    def is_file(self, path: str) -> bool:
        """True if a file (not a directory) is logged at exactly `path`."""
        if not path:
            return False
        if path in self.overlay:
            return True
        if any(p.startswith(path + "/") for p in self.overlay):
            return False
        own = self._own_entry(path)
        return own is not None and not own.is_tree


# -- the artifacts of runs -------------------------------------------------------------------------------
class RunArtifacts:
    """Logging, listing and downloading the artifacts of runs in one repository."""

    def __init__(self, store: GitStore) -> None:
        self.store = store
        self.branch = store.branch
        self.odb = store.branch.odb
        self.repo = store.repo
        self._shared: tuple[str, dict[str, dict[str, Any]]] | None = None  # (events tree, folded ops)

    # -- configuration ---------------------------------------------------------------------------
    def threshold(self) -> int:
        env = os.environ.get("GITEXP_ARTIFACT_THRESHOLD")
        if env:
            return parse_size(env, "GITEXP_ARTIFACT_THRESHOLD")
        raw = self.repo.config.get("gitexp.artifactthreshold")
        if raw:
            return parse_size(raw, "git config gitexp.artifactThreshold")
        return DEFAULT_THRESHOLD

    def store_url(self) -> str:
        return (os.environ.get("GITEXP_ARTIFACT_STORE") or self.repo.config.get("gitexp.artifactstore")
                or default_store_dir(self.store))

    # -- writing ------------------------------------------------------------------------------------
    def _stage_file(self, local_path: str, path: str, threshold: int, external: list[Any]) -> dict[str, Any]:
        st = os.stat(local_path)
        mode = MODE_EXEC if st.st_mode & 0o111 else MODE_BLOB
        if st.st_size > threshold:
            if not external:
                external.append(ExternalStore(self.store_url()))
            with open(local_path, "rb") as fh:
                return self._stage_external(fh, path, mode, external[0])
        with open(local_path, "rb") as fh:
            data = fh.read()
        return {"op": "artifact", "path": path, "sha": self.odb.write_blob(data), "size": len(data),
                "mode": mode.decode()}

    def _stage_external(self, source: BinaryIO, path: str, mode: bytes, ext: ExternalStore) -> dict[str, Any]:
        sha256, size = ext.put(source)
        pointer = Pointer(sha256, size, ext.url)
        return {"op": "artifact", "path": path, "sha": self.odb.write_blob(pointer.encode()), "size": size,
                "mode": mode.decode(), "sha256": sha256}

    def log_path(self, run_id: str, local_path: str | os.PathLike[str], artifact_path: str | None = None) -> None:
        """Log a file (or a directory, as <artifact_path>/<its name>/...)."""
        local = os.fspath(local_path)
        dest = validate_artifact_path(artifact_path)
        if os.path.isdir(local):
            name = os.path.basename(os.path.normpath(os.path.abspath(local)))
            self.log_dir(run_id, local, join_artifact_path(dest, validate_artifact_path(name, "directory name")))
            return
        if not os.path.isfile(local):
            raise InvalidParameterValue(
                f"Cannot log artifact {local!r}: no such file or directory (working directory: {os.getcwd()})",
                path=local)
        name = validate_artifact_path(os.path.basename(local), "file name", allow_root=False)
        # The whole path again: artifact_path's last name is a directory here (".gitattributes/x").
        path = validate_artifact_path(join_artifact_path(dest, name), "artifact path", allow_root=False)
        self.store._writable_session(run_id)  # fail early on a deleted or unknown run
        threshold = self.threshold()
        self._check_file_content(local, path, threshold)
        with self._staging(run_id) as stage:
            stage([self._stage_file(local, path, threshold, [])])

    def log_dir(self, run_id: str, local_dir: str | os.PathLike[str], artifact_path: str | None = None) -> None:
        """Log every file below a directory, keeping its layout (empty directories are skipped)."""
        local = os.fspath(local_dir)
        dest = validate_artifact_path(artifact_path)
        if not os.path.isdir(local):
            raise InvalidParameterValue(
                f"Cannot log artifacts from {local!r}: not a directory (working directory: {os.getcwd()})",
                path=local)
        files = []
        seen_dirs = set()
        for root, dirs, names in os.walk(local, followlinks=True):
            real = os.path.realpath(root)
            if real in seen_dirs:  # a symlink loop
                dirs[:] = []
                continue
            seen_dirs.add(real)
            if any(d.lower() == ".git" for d in dirs):  # a repository's internals are never artifacts
                _log.warning("gitexp: not logging %s (git's own directory)", os.path.join(root, ".git"))
                dirs[:] = [d for d in dirs if d.lower() != ".git"]
            dirs.sort()
            rel = os.path.relpath(root, local)
            rel = "" if rel == "." else rel.replace(os.sep, "/")
            for name in sorted(names):
                full = os.path.join(root, name)
                if os.path.isfile(full):
                    files.append((full, validate_artifact_path(join_artifact_path(dest, rel, name),
                                                               "file name", allow_root=False)))
        if not files:
            return
        self.store._writable_session(run_id)
        threshold = self.threshold()
        for full, path in files:  # every file is checked before anything is written
            self._check_file_content(full, path, threshold)
        external: list[Any] = []
        with self._staging(run_id) as stage:  # all files of the directory land in one pack
            stage([self._stage_file(full, path, threshold, external) for full, path in files])

    def log_bytes(self, run_id: str, data: bytes, artifact_file: str) -> None:
        """Log bytes made in memory (log_text, log_dict, figures...) as one file."""
        path = validate_artifact_path(artifact_file, "artifact_file", allow_root=False)
        self.store._writable_session(run_id)
        threshold = self.threshold()
        if len(data) <= threshold:
            check_git_file_content(path, data)
        with self._staging(run_id) as stage:
            stage([self.stage_bytes(path, data, threshold, [])])

    def stage_bytes(self, path: str, data: bytes, threshold: int, external: list[Any]) -> dict[str, Any]:
        """Write one file's bytes (a blob, or to the external store over `threshold`); its op.
        The caller protects the blob until a ref reaches it (log_bytes, GitStore.put_runs)."""
        if len(data) > threshold:
            if not external:
                external.append(ExternalStore(self.store_url()))
            return self._stage_external(io.BytesIO(data), path, MODE_BLOB, external[0])
        return {"op": "artifact", "path": path, "sha": self.odb.write_blob(data), "size": len(data),
                "mode": MODE_BLOB.decode()}

    @staticmethod
    def _check_file_content(local: str, path: str, threshold: int) -> None:
        """Refuse a file whose content git refuses at `path` (a file over the threshold is stored as a
        small pointer, which git accepts anywhere)."""
        if is_dotgitattributes(path.rsplit("/", 1)[-1]) and os.path.getsize(local) <= threshold:
            with open(local, "rb") as fh:
                check_git_file_content(path, fh.read(GITATTRIBUTES_MAX_BYTES + 1))

    @contextlib.contextmanager
    def _staging(self, run_id: str) -> Iterator[Callable[[list[dict[str, Any]]], None]]:
        """Write artifact blobs and journal their ops, losing nothing to `git gc` in between.

        Inside the block, blobs go into one pack kept (``.keep``) until the block ends;
        `stage(ops)` adds to that pack a tree reaching them, then the session's pending
        ref is pointed at it (store/protection.py) and the ops are journaled, together
        under the session lock.  From then on the ref keeps the blobs until the
        session's next commit links them."""
        ops: list[dict[str, Any]] = []
        session = self.store._writable_session(run_id)  # (may recover journals: not inside the batch)
        with self.odb.protected():
            with self.odb.batch():
                yield ops.extend
                prepared = prepare_pending(self.branch, session, [op["sha"] for op in ops]) if ops else None
            if prepared is not None:
                self._record(run_id, ops, prepared)

    def _record(self, run_id: str, ops: list[dict[str, Any]],
                prepared: tuple[str, str | None, list[str], str]) -> None:
        # A session closed meanwhile (another thread ended the run) is replaced by a fresh one
        # (_with_session), and hold_pending re-links the blobs from that session's pending ref.
        # under the session's lock: no other thread slips a conflict in
        def write(session: Session) -> None:
            self._check_conflicts(run_id, ops)
            hold_pending(self.branch, session, prepared)
            session.record(ops)

        self.store._with_session(run_id, write)

    def _check_conflicts(self, run_id: str, ops: list[dict[str, Any]]) -> None:
        """A file cannot replace a directory of artifacts, nor sit below a file."""
        paths = [op["path"] for op in ops]
        root = posixpath.commonpath(paths) if len(paths) > 1 else posixpath.dirname(paths[0])
        view = self.view(run_id)
        parts = root.split("/") if root else []
        for i in range(1, len(parts) + 1):
            above = "/".join(parts[:i])
            if view.is_file(above):
                raise InvalidParameterValue(
                    f"Cannot log {paths[0]!r} to run {run_id}: artifact {above!r} is a file, not a "
                    "directory; choose another artifact_path", run_id=run_id, path=paths[0])
        if len(paths) == 1:  # the common case: no need to walk the tree
            if view.is_dir(paths[0]):
                raise InvalidParameterValue(
                    f"Cannot log {paths[0]!r} to run {run_id}: it is already a directory of artifacts; "
                    "choose another name", run_id=run_id, path=paths[0])
            return
        existing = view.files(root)
        new_files = set(paths)
        files = set(existing) | new_files
        dirs = {p.rsplit("/", i)[0] for p in files for i in range(1, p.count("/") + 1)}
        for path in paths:
            if path in dirs:
                raise InvalidParameterValue(
                    f"Cannot log {path!r} to run {run_id}: it is already a directory of artifacts; "
                    "choose another name", run_id=run_id, path=path)
            parts = path.split("/")
            for i in range(1, len(parts)):
                above = "/".join(parts[:i])
                if above in files:
                    raise InvalidParameterValue(
                        f"Cannot log {path!r} to run {run_id}: artifact {above!r} is a file, not a "
                        "directory; choose another artifact_path", run_id=run_id, path=path)

    # -- reading ------------------------------------------------------------------------------------
    def view(self, run_id: str) -> ArtifactView:
        # The state (with pending ops) first, then the tree: a checkpoint commit in
        # between moves ops into the tree, so nothing is ever missed (at worst seen twice).
        # A running run's own files are on its live ref (its last checkpoint) until published.
        state = self.store.run_state(run_id)
        run_tree = self.branch.own_tree(run_id)
        own = self.branch.subtree(run_tree, "artifacts") if run_tree else None
        return ArtifactView(self.odb, own, state.artifacts)

    def list(self, run_id: str, path: str | None = None) -> list[FileInfo]:
        """The files and directories directly below `path` (MLflow's list_artifacts)."""
        path = validate_artifact_path(path, "path")
        return self._file_infos(self.view(run_id).children(path))

    def _file_infos(self, children: builtins.list[tuple[str, ArtifactFile | None]]) -> builtins.list[FileInfo]:
        unknown = [f.sha for _, f in children if f is not None and f.size is None]
        sizes = _blob_sizes(self.odb.git_dir, unknown) if unknown else {}
        small = [f for _, f in children
                 if f is not None and f.size is None and sizes.get(f.sha, 0) <= MAX_POINTER_BYTES]
        for blob in small:  # a small blob might be a pointer: its size is the real file's
            pointer = Pointer.parse(self.odb.read_blob(blob.sha))
            if pointer is not None:
                sizes[blob.sha] = pointer.size
        out: builtins.list[FileInfo] = []
        for child, f in children:
            if f is None:
                out.append(FileInfo(child, True, None))
            else:
                out.append(FileInfo(child, False, f.size if f.size is not None else sizes.get(f.sha)))
        return out

    # -- the shared area: files of the artifact root that belong to no run ----------------------------
    def shared_view(self) -> ArtifactView:
        """The shared area (SHARED_DIR): its events folded in name order, later wins."""
        root = self.branch.tree_of(self.branch.tip())
        events = self.branch.subtree(root, f"{SHARED_DIR}/events") if root else None
        if events is None:
            return ArtifactView(self.odb, None, {})
        cached = self._shared
        if cached is None or cached[0] != events:
            overlay: dict[str, dict[str, Any]] = {}
            for _name, doc in self.branch.read_events(events):
                for op in doc.get("ops") or []:
                    if isinstance(op, dict) and op.get("op") == "artifact" and isinstance(op.get("path"), str):
                        overlay.pop(op["path"], None)
                        overlay[op["path"]] = op
            cached = self._shared = (events, overlay)
        return ArtifactView(self.odb, None, cached[1])

    def log_shared(self, path: str, source: BinaryIO, size: int) -> None:
        """Store a file at `path` of the shared area: one event (and the file) in one commit.

        Above the size threshold the file goes to the large-file store and the branch holds
        its pointer, as for run artifacts."""
        path = validate_artifact_path(path, "artifact path", allow_root=False)
        view = self.shared_view()
        if view.is_dir(path):
            raise InvalidParameterValue(f"Cannot store {path!r}: it is a directory of shared artifacts; choose "
                                        "another name", path=path)
        parts = path.split("/")
        for i in range(1, len(parts)):
            if view.is_file("/".join(parts[:i])):
                raise InvalidParameterValue(f"Cannot store {path!r}: {'/'.join(parts[:i])!r} is a file, not a "
                                            "directory", path=path)
        threshold = self.threshold()
        data = source.read() if size <= threshold else None
        if data is not None:
            check_git_file_content(path, data)
        pointer = None
        if data is None:  # to the large-file store now; its pointer blob is written with the commit
            ext = ExternalStore(self.store_url())
            sha256, stored = ext.put(source)
            pointer = Pointer(sha256, stored, ext.url)
        base = f"{SHARED_DIR}/events/{layout.event_name()}"

        def build(_tree: str | None) -> dict[str, Any]:
            # Blobs are written inside the commit, so its kept pack protects them until the ref moves.
            op: dict[str, Any] = {"op": "artifact", "path": path, "mode": MODE_BLOB.decode()}
            if pointer is None:
                op.update(sha=self.odb.write_blob(data or b""), size=len(data or b""))
            else:
                op.update(sha=self.odb.write_blob(pointer.encode()), size=pointer.size, sha256=pointer.sha256)
            doc = {"time": layout.now_ms(), "user": self.repo.identity()[0], "ops": [op]}
            return {base: (MODE_BLOB, self.odb.write_blob(layout.dump_yaml(doc))),
                    f"{base[: -len('.yaml')]}.files/{path}": (MODE_BLOB, op["sha"])}

        self.branch.commit(build, f"shared artifact {path}")

    def list_shared(self, path: str | None = None) -> builtins.list[FileInfo]:
        path = validate_artifact_path(path, "path")
        return self._file_infos(self.shared_view().children(path))

    def read_shared(self, path: str, out: BinaryIO) -> None:
        """Copy the shared file at `path` to `out` (large files from the large-file store)."""
        path = validate_artifact_path(path, "path", allow_root=False)
        files = self.shared_view().files(path)
        if path not in files:
            raise (InvalidParameterValue(f"Shared artifact {path!r} is a directory, not a file", path=path) if files
                   else ResourceDoesNotExist(f"No artifact at {path!r}: it is neither a run's nor a shared file",
                                             path=path))
        data = self.odb.read_blob(files[path].sha)
        pointer = Pointer.parse(data)
        if pointer is None:
            out.write(data)
        else:
            self._fetch_external("(none: shared area)", path, pointer, out)

    def files(self, run_id: str, path: str | None) -> tuple[str, dict[str, ArtifactFile]]:
        """(normalized path, files at or below it); ResourceDoesNotExist if there are none."""
        path = validate_artifact_path(path, "path")
        files = self.view(run_id).files(path)
        if not files and path:
            parent = posixpath.dirname(path)
            nearby = ", ".join(f.path for f in self.list(run_id, parent)[:20]) or "nothing"
            raise ResourceDoesNotExist(
                f"Run {run_id} has no artifact {path!r} (at {parent or 'the artifact root'!r} it has: "
                f"{nearby}). List them with `gitexp artifacts list {run_id[:8]}`.",
                run_id=run_id, path=path)
        return path, files

    def read_bytes(self, run_id: str, path: str) -> bytes:
        """The content of one artifact file."""
        path, files = self.files(run_id, path)
        if path not in files:
            raise InvalidParameterValue(f"Artifact {path!r} of run {run_id} is a directory, not a file",
                                        run_id=run_id, path=path)
        data = self.odb.read_blob(files[path].sha)
        pointer = Pointer.parse(data)
        if pointer is None:
            return data
        buffer = io.BytesIO()
        self._fetch_external(run_id, path, pointer, buffer)
        return buffer.getvalue()

    def download(self, run_id: str, path: str | None, dst_path: str | os.PathLike[str] | None = None) -> str:
        """Copy an artifact file or directory to `dst_path` (a new temporary directory by default).

        Returns the local path of the copy: `dst_path/<path>`, as MLflow does.
        """
        path, files = self.files(run_id, path)
        dst = (os.path.abspath(os.fspath(dst_path)) if dst_path is not None
               else tempfile.mkdtemp(prefix="gitexp-artifacts-"))
        os.makedirs(dst, exist_ok=True)
        self.materialize(run_id, files.values(), dst)
        return os.path.join(dst, *path.split("/")) if path else dst

    def local_copy(self, run_id: str, path: str) -> str:
        """A local directory (or file) holding the artifact at `path`, for reading only.

        A directory is materialized once into a cache keyed by its content
        (``.git/gitexp/cache/models/<digest>``), so loading the same model again costs
        nothing.  The cache is derived: delete it any time.
        """
        path, files = self.files(run_id, path)
        if path in files:  # a single file: nothing to cache as a directory
            return self.download(run_id, path)
        cache_root = os.path.join(self.repo.state_dir, "cache", "models")
        target = os.path.join(cache_root, self.digest(files.values(), path))
        if os.path.isdir(target):
            return target
        os.makedirs(cache_root, exist_ok=True)
        tmp = f"{target}.tmp-{os.getpid()}-{secrets.token_hex(4)}"
        prefix = len(path) + 1 if path else 0
        relative = [ArtifactFile(f.path[prefix:], f.mode, f.sha, f.size) for f in files.values()]
        try:
            self.materialize(run_id, relative, tmp)
            try:
                os.rename(tmp, target)
            except OSError:
                if not os.path.isdir(target):  # not a lost race: a real error
                    raise
        finally:
            if os.path.exists(tmp):
                shutil.rmtree(tmp, ignore_errors=True)
        return target

    def materialize(self, run_id: str, files: Iterable[ArtifactFile], dst: str) -> None:
        """Write files (paths relative to the artifact root) below `dst`."""
        files = list(files)
        shas = [f.sha for f in files]
        reader = self.odb.read_many(shas) if len(files) > 16 else ((s, self.odb.read(s)[1]) for s in shas)
        for f, (_sha, data) in zip(files, reader, strict=False):
            target = os.path.join(dst, *f.path.split("/"))
            if os.path.isdir(target):
                shutil.rmtree(target)
            os.makedirs(os.path.dirname(target), exist_ok=True)
            pointer = Pointer.parse(data)
            tmp = f"{target}.gitexp-tmp{os.getpid()}"
            try:
                with open(tmp, "wb") as out:
                    if pointer is None:
                        out.write(data)
                    else:
                        self._fetch_external(run_id, f.path, pointer, out)
                if f.mode == MODE_EXEC:
                    os.chmod(tmp, 0o755)
                os.replace(tmp, target)
            finally:
                if os.path.exists(tmp):
                    os.unlink(tmp)

    def stores_to_try(self, pointer: Pointer) -> builtins.list[str]:
        urls = [self.store_url(), pointer.store, default_store_dir(self.store)]
        out: builtins.list[str] = []
        for url in urls:
            if url and url not in out:
                out.append(url)
        return out

    def _fetch_external(self, run_id: str, path: str, pointer: Pointer, out: BinaryIO) -> None:
        looked = []
        for url in self.stores_to_try(pointer):
            try:
                ext = ExternalStore(url)
            except Exception as exc:
                looked.append(f"{url} ({exc})")
                continue
            location = ext.location(pointer.sha256)
            try:
                source = ext.open(pointer.sha256)
            except FileNotFoundError:
                looked.append(location)
                continue
            except Exception as exc:  # an unreachable store: say so, try the next
                looked.append(f"{location} ({type(exc).__name__}: {exc})")
                continue
            digest, size = hashlib.sha256(), 0
            start = out.tell() if out.seekable() else None
            with source:
                while chunk := source.read(_CHUNK):
                    digest.update(chunk)
                    size += len(chunk)
                    out.write(chunk)
            if digest.hexdigest() != pointer.sha256 or size != pointer.size:
                if start is not None:
                    out.seek(start)
                    out.truncate()
                raise StoreError(
                    f"Artifact {path!r} of run {run_id}: the object at {location} is "
                    f"damaged (expected sha256 {pointer.sha256} and {pointer.size} bytes, got "
                    f"{digest.hexdigest()} and {size} bytes). Delete it and upload the file again.",
                    run_id=run_id, path=path)
            return
        raise ResourceDoesNotExist(
            f"Artifact {path!r} of run {run_id} is a large file kept outside git (sha256 "
            f"{pointer.sha256}, {pointer.size} bytes), and no artifact store has it. Looked in: "
            + "; ".join(looked) + f". It was logged to {pointer.store!r}: point gitexp at that store "
            "(git config gitexp.artifactStore <url> or GITEXP_ARTIFACT_STORE) or copy the object there.",
            run_id=run_id, path=path, sha256=pointer.sha256, looked_in=looked)

    def digest(self, files: Iterable[ArtifactFile], root: str) -> str:
        """An id of exactly this content (for caching a materialized copy)."""
        h = hashlib.sha256()
        for f in sorted(files, key=lambda f: f.path):
            rel = f.path[len(root):].lstrip("/") if root else f.path
            h.update(f"{rel}\0{f.mode.decode()}\0{f.sha}\n".encode())
        return h.hexdigest()

