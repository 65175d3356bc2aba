"""The one way gitexp runs a git command: porcelain (status, diff, fetch, push, config,
remotes, hooks, rev-parse...) and one-shot plumbing (update-ref, for-each-ref, repack,
diff-tree...).

    run(args, git_dir=..., cwd=..., input=..., env=..., check=...)    -> CompletedProcess
    start(args, ...)                                                 -> Popen (streaming output)

A git executable that cannot be started is ``GitNotFound``, whoever asked; with
``check=True`` a command that exits non-zero is ``GitCommandFailed`` carrying the
command, its exit code and git's own message.  Without ``check`` the exit code is the
caller's data (``rev-parse --verify`` of a missing ref, ``config --get`` of an unset key).

Not here, on purpose: the long-lived ``git cat-file --batch`` readers and the in-process
pack writer of ``store/objects.py`` -- one process kept open for thousands of reads, and
no process at all for writes (docs/ARCHITECTURE.md, "One git wrapper").
"""

from __future__ import annotations

import subprocess
from collections.abc import Sequence
from typing import IO, Any, Literal, overload

from .exceptions import GitCommandFailed, GitNotFound

PIPE = subprocess.PIPE
DEVNULL = subprocess.DEVNULL


def pipe(stream: IO[bytes] | None) -> IO[bytes]:
    """A pipe of a process started with PIPE for it: subprocess types every pipe Optional, and
    this one is there (None would be a bug in how the process was started)."""
    assert stream is not None, "the process was started without this pipe"
    return stream


def _command(args: Sequence[str], git_dir: str | None) -> list[str]:
    return ["git", *([f"--git-dir={git_dir}"] if git_dir else []), *args]


@overload
def run(args: Sequence[str], *, git_dir: str | None = None, cwd: str | None = None, input: bytes | None = None,
        env: dict[str, str] | None = None, check: bool = False,
        text: Literal[False] = False) -> subprocess.CompletedProcess[bytes]: ...
@overload
def run(args: Sequence[str], *, git_dir: str | None = None, cwd: str | None = None, input: str | None = None,
        env: dict[str, str] | None = None, check: bool = False,
        text: Literal[True]) -> subprocess.CompletedProcess[str]: ...


def run(args: Sequence[str], *, git_dir: str | None = None, cwd: str | None = None, input: bytes | str | None = None,
        env: dict[str, str] | None = None, check: bool = False,
        text: bool = False) -> subprocess.CompletedProcess[bytes] | subprocess.CompletedProcess[str]:
    """Run `git [--git-dir=...] args` to completion, capturing stdout and stderr."""
    command = _command(args, git_dir)
    try:
        result = subprocess.run(command, cwd=cwd, input=input, capture_output=True, env=env, text=text)
    except FileNotFoundError as exc:
        if exc.filename not in (None, "git"):
            raise  # the working directory is missing, not git
        raise GitNotFound() from None
    if check and result.returncode != 0:
        stderr = result.stderr if isinstance(result.stderr, str) else result.stderr.decode(errors="replace")
        raise GitCommandFailed(list(args), result.returncode, stderr)
    return result


def start(args: Sequence[str], *, git_dir: str | None = None, cwd: str | None = None,
          env: dict[str, str] | None = None, stdin: int | IO[Any] | None = None, stdout: int | IO[Any] | None = PIPE,
          stderr: int | IO[Any] | None = PIPE) -> subprocess.Popen[bytes]:
    """Start `git [--git-dir=...] args` with its output piped, for callers that stream it."""
    try:
        return subprocess.Popen(_command(args, git_dir), cwd=cwd, env=env, stdin=stdin, stdout=stdout,
                                stderr=stderr)
    except FileNotFoundError as exc:
        if exc.filename not in (None, "git"):
            raise
        raise GitNotFound() from None
