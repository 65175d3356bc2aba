"""Finding the git repository a tracking URI names, and reading its config."""

from __future__ import annotations

import contextlib
import contextvars
import os
import threading
import warnings
from collections.abc import Iterator
from dataclasses import dataclass, field
from urllib.parse import parse_qs, unquote, urlparse

from .. import _git
from ..exceptions import InvalidParameterValue, NotAGitRepository

DEFAULT_BRANCH = "gitexp"
DEFAULT_PUBLISH_EVERY = 12
DEFAULT_CHECKPOINT_SECONDS = 5.0

# Who the change being made is for: (name, email), or None for the repository's own git identity.
# Set per request by the server (the authenticated user); read by every commit (its author, and
# the `user` of the event files it writes) and captured by a run's session when it opens, so the
# run's later commits (checkpoint thread, group commits) name the same person. The committer of
# every commit stays the repository's own identity (see Repository.own_identity).
ACTING_AS: contextvars.ContextVar[tuple[str, str] | None] = contextvars.ContextVar("gitexp_acting_as",
                                                                                   default=None)


@contextlib.contextmanager
def acting_as(author: tuple[str, str] | None) -> Iterator[None]:
    """Make the commits of this context (thread or task) authored by `author` (name, email)."""
    token = ACTING_AS.set(author)
    try:
        yield
    finally:
        ACTING_AS.reset(token)


@dataclass
class Repository:
    """One git repository: where its objects, refs and our journals live."""

    path: str                 # what the user named (work tree or git dir)
    work_tree: str | None
    git_dir: str              # this worktree's git dir
    common_dir: str           # shared by all worktrees: objects, refs, gitexp state
    config: dict[str, str] = field(default_factory=dict)
    branch_name: str | None = None  # a URI's ?branch=, over GITEXP_BRANCH and gitexp.branch
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    @property
    def branch(self) -> str:
        return (self.branch_name or os.environ.get("GITEXP_BRANCH") or self.config.get("gitexp.branch")
                or DEFAULT_BRANCH)

    @property
    def ref(self) -> str:
        return f"refs/heads/{self.branch}"

    @property
    def object_format(self) -> str:
        return self.config.get("extensions.objectformat", "sha1")

    @property
    def files_ref_backend(self) -> bool:
        return self.config.get("extensions.refstorage", "files") == "files"

    @property
    def state_dir(self) -> str:
        """gitexp's local, derived state (journals, index): never shared, never committed."""
        return os.path.join(self.common_dir, "gitexp")

    @property
    def checkpoint_seconds(self) -> float:
        raw = os.environ.get("GITEXP_CHECKPOINT_INTERVAL") or self.config.get("gitexp.checkpointinterval")
        if raw is None:
            return DEFAULT_CHECKPOINT_SECONDS
        try:
            value = float(raw)
        except ValueError:
            raise InvalidParameterValue(
                f"Checkpoint interval must be a number of seconds, got {raw!r} "
                "(from GITEXP_CHECKPOINT_INTERVAL or git config gitexp.checkpointInterval)"
            ) from None
        return max(value, 0.05)

    @property
    def publish_every(self) -> int:
        """Checkpoints per commit on the shared branch (the others go to the run's live ref)."""
        raw = os.environ.get("GITEXP_PUBLISH_EVERY") or self.config.get("gitexp.publishevery")
        if raw is None:
            return DEFAULT_PUBLISH_EVERY
        try:
            value = int(raw)
        except ValueError:
            value = 0
        if value < 1:
            raise InvalidParameterValue(
                f"gitexp.publishEvery must be a whole number of checkpoints (1 or more), got {raw!r} "
                "(from GITEXP_PUBLISH_EVERY or git config gitexp.publishEvery)")
        return value

    def identity(self) -> tuple[str, str]:
        """(name, email) of the author of a change made now: whom the current context acts for
        (:data:`ACTING_AS`, set by the server per request), else :meth:`own_identity`."""
        acting = ACTING_AS.get()
        return acting if acting is not None else self.own_identity()

    def own_identity(self) -> tuple[str, str]:
        """(name, email) the way git would pick them for a commit: the committer of every commit."""
        name = os.environ.get("GIT_AUTHOR_NAME") or self.config.get("user.name")
        email = os.environ.get("GIT_AUTHOR_EMAIL") or self.config.get("user.email")
        if not name:
            name = _login_name()
        if not email:
            import socket

            email = f"{_login_name()}@{socket.gethostname()}"
        return name, email


def _login_name() -> str:
    import getpass

    try:
        return getpass.getuser()
    except Exception:
        return "unknown"


def read_config(git_dir: str) -> dict[str, str]:
    result = _git.run(["config", "-z", "--list"], git_dir=git_dir)
    config: dict[str, str] = {}
    for item in result.stdout.split(b"\0"):
        if not item:
            continue
        key, _, value = item.decode("utf-8", "replace").partition("\n")
        config[key.lower()] = value
    return config


GITEXP_SCHEME = "gitexp"


def parse_gitexp_uri(uri: str) -> tuple[str, str | None]:
    """(local path, branch or None) of a ``gitexp:`` URI.

        gitexp:                       the repository around the current directory
        gitexp:relative/path          a path relative to the current directory
        gitexp:///abs/path            an absolute path (also gitexp:/abs/path)
        gitexp:///C:/Users/me/repo    a Windows path (also gitexp:C:/Users/me/repo)
        ...?branch=experiments        a tracking branch other than the repository's default
    """
    parsed = urlparse(uri)
    if parsed.scheme.lower() != GITEXP_SCHEME:
        raise InvalidParameterValue(f"{uri!r} is not a gitexp: URI")
    if parsed.netloc:
        raise InvalidParameterValue(
            f"Tracking URI {uri!r} names a host ({parsed.netloc!r}): a gitexp: URI names a local repository, "
            "as gitexp:///path/to/repo (three slashes) or gitexp:relative/path; for a `gitexp server` "
            "elsewhere use its http(s):// address")
    query = parse_qs(parsed.query, keep_blank_values=True)
    unknown = sorted(set(query) - {"branch"})
    if unknown:
        raise InvalidParameterValue(
            f"Tracking URI {uri!r} has the unknown option {unknown[0]!r}: a gitexp: URI takes only ?branch=NAME")
    branch = query.get("branch", [None])[-1]
    if branch is not None and not branch.strip():
        raise InvalidParameterValue(f"Tracking URI {uri!r} has an empty ?branch=: name a branch or leave it out")
    path = unquote(parsed.path)
    if len(path) >= 3 and path[0] == "/" and path[2] == ":" and path[1].isalpha():
        path = path[1:]  # /C:/Users/... -> C:/Users/...
    return path or os.curdir, branch


def parse_tracking_uri(uri: str) -> tuple[str, str | None]:
    """(local path, branch or None) of a tracking URI: a path, file://, gitexp:, or (tolerated) sqlite:///."""
    parsed = urlparse(uri)
    if parsed.scheme.lower() == GITEXP_SCHEME:
        return parse_gitexp_uri(uri)
    if parsed.scheme == "file":
        return unquote(parsed.path), None
    if parsed.scheme in ("sqlite",):
        db_path = uri.split(":///", 1)[-1] if ":///" in uri else parsed.path
        warnings.warn(
            f"gitexp keeps runs in a git repository, not in a database: {uri!r} is read as "
            f"'the repository containing {os.path.dirname(os.path.abspath(db_path)) or '.'}'. "
            "Drop the set_tracking_uri call, or pass a repository path, to silence this.",
            stacklevel=4,
        )
        return os.path.dirname(os.path.abspath(db_path)) or ".", None
    if parsed.scheme and len(parsed.scheme) > 1:
        raise InvalidParameterValue(
            f"Unsupported tracking URI {uri!r}: use a repository path, a gitexp: or file:// URI, "
            "or the http(s):// address of a `gitexp server`"
        )
    return uri, None


def path_from_uri(uri: str) -> str:
    """The local path a tracking URI names (see parse_tracking_uri)."""
    return parse_tracking_uri(uri)[0]


def open_repository(path: str | None = None, branch: str | None = None) -> Repository:
    """The repository containing `path` (default: the current directory); `branch` overrides the
    tracking branch (GITEXP_BRANCH, git config gitexp.branch)."""
    start = os.path.abspath(path or os.getcwd())
    if not os.path.exists(start):
        raise NotAGitRepository(start)
    cwd = start if os.path.isdir(start) else os.path.dirname(start)
    # One git for all four answers: outside a work tree (a bare repository, or inside .git)
    # --show-toplevel fails after printing the other three, and there is no work tree.
    result = _git.run(["rev-parse", "--path-format=absolute", "--git-dir", "--git-common-dir",
                       "--is-bare-repository", "--show-toplevel"], cwd=cwd)
    lines = result.stdout.decode().splitlines()
    if len(lines) < 3:
        raise NotAGitRepository(start)
    git_dir, common_dir, bare = lines[:3]
    work_tree = lines[3] if result.returncode == 0 and bare != "true" and len(lines) > 3 and lines[3] else None
    return Repository(start, work_tree, git_dir, common_dir, read_config(git_dir), branch)
