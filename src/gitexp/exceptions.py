"""Every error gitexp raises.

    GitexpError (alias MlflowException)            error_code
    ├── NotAGitRepository                           INVALID_STATE
    ├── InvalidParameterValue                       INVALID_PARAMETER_VALUE
    │   ├── SearchError      a malformed filter or order_by
    │   └── RepositoryRequired   an operation needs the git repository, the tracking URI is a server
    ├── ResourceDoesNotExist                        RESOURCE_DOES_NOT_EXIST
    ├── ResourceAlreadyExists                       RESOURCE_ALREADY_EXISTS
    ├── MissingDependency    an optional library is not installed (names the extra)
    │   └── PluginRequired   (also an AttributeError) a flavor or feature only MLflow's own package
    │                        has: use it with gitexp as its store (gitexp[mlflow])
    └── StoreError           the repository refused a read or write
        ├── GitNotFound      the git executable cannot be started
        ├── GitCommandFailed a git command exited non-zero (command, exit code, git's message)
        ├── RefLocked        a ref's lock file outlived the bounded wait   RESOURCE_CONFLICT
        ├── BranchCheckedOut the tracking branch is checked out in a worktree  RESOURCE_CONFLICT
        └── SyncError        a fetch or push of the tracking branch failed
            └── MergeConflict    tracking branches that do not merge (hand-edited files)

Each error says what was wrong, with the offending value, and what to do.
The offending values stay on the exception as attributes.  ``error_code``
matches MLflow's codes so the REST server can map errors to its responses.
"""

from __future__ import annotations

from typing import Any


class GitexpError(Exception):
    """Base class of all gitexp errors."""

    error_code = "INTERNAL_ERROR"

    def __init__(self, message: str, error_code: str | None = None, **attributes: Any) -> None:
        super().__init__(message)
        self.message = message
        if error_code is not None:
            self.error_code = error_code
        for name, value in attributes.items():
            setattr(self, name, value)

    def get_error_code(self) -> str:
        return self.error_code


MlflowException = GitexpError


class NotAGitRepository(GitexpError):
    error_code = "INVALID_STATE"

    def __init__(self, path: str) -> None:
        self.path = path
        super().__init__(
            f"{path!s} is not inside a git repository. gitexp keeps runs in a git repository: "
            f"run `git init` (or `gitexp init`) there, or point gitexp at a repository with "
            f"set_tracking_uri('/path/to/repo') or GITEXP_TRACKING_URI."
        )


class InvalidParameterValue(GitexpError):
    error_code = "INVALID_PARAMETER_VALUE"


class SearchError(InvalidParameterValue):
    """A filter string or order_by clause that cannot be parsed or applied."""


class RepositoryRequired(InvalidParameterValue):
    """An operation that needs the git repository itself (pull, push, code checkout, the search
    index, doctor...) was asked of a tracking server's store; run it where the repository is."""

    def __init__(self, operation: str, url: str) -> None:
        super().__init__(
            f"{operation} needs the git repository itself, but the tracking URI is the server {url}. "
            "Run it on the server's machine, or in a clone of its repository (`gitexp pull` to get the runs).",
            operation=operation, url=url)


class ResourceDoesNotExist(GitexpError):
    error_code = "RESOURCE_DOES_NOT_EXIST"


class ResourceAlreadyExists(GitexpError):
    error_code = "RESOURCE_ALREADY_EXISTS"


class MissingDependency(GitexpError):
    """An optional library that a part of gitexp needs is not installed; the message names the
    extra that brings it (``pip install 'gitexp[sklearn]'``).  Attributes: library, extra."""

    error_code = "INVALID_STATE"


def plugin_message(what: str, mlflow_name: str) -> str:
    """The one line saying that `what` exists only through MLflow's package with gitexp as its store."""
    return (f"{what} is logged through MLflow's own package with gitexp as its store: "
            f"pip install 'gitexp[mlflow]', then `import mlflow; mlflow.set_tracking_uri(\"gitexp:\")` "
            f"and use {mlflow_name}")


class PluginRequired(MissingDependency, AttributeError):
    """``gitexp.lightgbm``, ``gitexp.models.evaluate``...: what only MLflow's own package has.
    An AttributeError too, so ``hasattr(gitexp, "lightgbm")`` is False.  Attribute: mlflow_name."""

    def __init__(self, what: str, mlflow_name: str) -> None:
        super().__init__(plugin_message(what, mlflow_name), library="mlflow", extra="mlflow",
                         mlflow_name=mlflow_name)


class StoreError(GitexpError):
    error_code = "INTERNAL_ERROR"


class GitNotFound(StoreError):
    """The ``git`` executable is not installed or not on PATH."""

    def __init__(self) -> None:
        super().__init__("git is not installed or not on PATH; gitexp needs git 2.31 or later "
                         "(https://git-scm.com/downloads). Install it, or add its directory to PATH.")


class GitCommandFailed(StoreError):
    """A git command gitexp ran exited non-zero.  Attributes: command, returncode, stderr."""

    def __init__(self, command: list[str], returncode: int, stderr: str) -> None:
        message = stderr.strip() or f"exit code {returncode}"
        super().__init__(f"`git {' '.join(command)}` failed: {message}", command=command,
                         returncode=returncode, stderr=stderr)


class DamagedData(StoreError):
    """A file on the tracking branch cannot be read (a hand edit, a truncated line); the
    message names the run, the file and the line."""

    error_code = "DATA_LOSS"


class RefLocked(StoreError):
    """A ref gitexp must update is locked (``<ref>.lock``) by a process that did not let go in time:
    usually one killed mid-update.  Nothing logged is lost; `gitexp doctor` diagnoses it."""

    error_code = "RESOURCE_CONFLICT"


class BranchCheckedOut(StoreError):
    """The tracking branch is checked out in a worktree, so gitexp does not move it (as git does
    not fetch into a checked-out branch).  Check out another branch there."""

    error_code = "RESOURCE_CONFLICT"


class SyncError(StoreError):
    """A fetch or push of the tracking branch failed (remote unknown, unreachable, or refused)."""


class MergeConflict(SyncError):
    """Two tracking branches changed the same file differently (only after hand edits)."""


__all__ = [
    "GitexpError",
    "MlflowException",
    "NotAGitRepository",
    "InvalidParameterValue",
    "SearchError",
    "RepositoryRequired",
    "ResourceDoesNotExist",
    "ResourceAlreadyExists",
    "MissingDependency",
    "PluginRequired",
    "StoreError",
    "GitNotFound",
    "GitCommandFailed",
    "RefLocked",
    "BranchCheckedOut",
    "SyncError",
    "MergeConflict",
]
