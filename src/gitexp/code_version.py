"""The exact code a run ran on: commit, branch, remote, and uncommitted changes.

Read with `git --no-optional-locks`, so capturing never rewrites the user's
index.  One `git status` answers commit, branch and dirtiness; a `git diff`
runs only when the tree is dirty.
"""

from __future__ import annotations

import functools
import os
import subprocess
import sys

MAX_DIFF_BYTES = 10 * 1024 * 1024
_EMPTY_TREE = {"sha1": "4b825dc642cb6eb9a060e54bf8d69288fbee4904",
               "sha256": "6ef19b41225c5369f1c104d45d8d85efa9b057b53b14b4b9b939dd74decc5321"}


def _git(args: list[str], cwd: str) -> subprocess.CompletedProcess:
    return subprocess.run(["git", "--no-optional-locks", *args], cwd=cwd, capture_output=True)


def _start(args: list[str], cwd: str) -> subprocess.Popen:
    return subprocess.Popen(["git", "--no-optional-locks", *args], cwd=cwd,
                            stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)


def source_dir() -> str:
    """Where the running code lives: the entry script's directory, else the current one."""
    script = sys.argv[0] if sys.argv and sys.argv[0] else ""
    if script and os.path.isfile(script) and not _installed(script):
        directory = os.path.dirname(os.path.abspath(script))
        if _repo_facts(directory)[0]:
            return directory
    return os.getcwd()


def _installed(path: str) -> bool:
    """True for tools run from an environment (pytest, jupyter...): not the user's code."""
    path = os.path.realpath(path)
    prefixes = {os.path.realpath(p) for p in (sys.prefix, sys.base_prefix, sys.exec_prefix)}
    return any(path.startswith(p + os.sep) for p in prefixes) or "site-packages" in path.split(os.sep)


@functools.lru_cache(maxsize=64)
def _repo_facts(directory: str) -> tuple[str | None, dict[str, str]]:
    """(top level, remote URLs) of the repository around `directory`, read once per process."""
    top = _git(["rev-parse", "--show-toplevel"], directory)
    if top.returncode != 0:
        return None, {}
    urls = {}
    for line in _git(["config", "--get-regexp", r"^remote\..*\.url$"], directory).stdout.decode().splitlines():
        key, _, url = line.partition(" ")
        urls[key[len("remote."):-len(".url")]] = url
    return top.stdout.decode().strip(), urls


def capture(directory: str | None = None, max_diff_bytes: int = MAX_DIFF_BYTES) -> dict | None:
    """Describe the code in `directory`'s repository, or None outside a work tree."""
    directory = directory or source_dir()
    # status and diff run side by side: each costs mostly git's start-up time.
    diff_proc = _start(["diff", "--binary", "--no-color", "--no-ext-diff", "HEAD"], directory)
    status = _git(["status", "--porcelain=v2", "--branch", "-z", "--untracked-files=all"], directory)
    head_diff, _ = diff_proc.communicate()
    if status.returncode != 0:
        return None
    commit = branch = upstream = None
    dirty = False
    untracked: list[str] = []
    records = status.stdout.split(b"\0")
    i = 0
    while i < len(records):
        record = records[i].decode("utf-8", "surrogateescape")
        i += 1
        if record.startswith("# branch.oid "):
            oid = record[len("# branch.oid "):]
            commit = None if oid == "(initial)" else oid
        elif record.startswith("# branch.head "):
            head = record[len("# branch.head "):]
            branch = None if head == "(detached)" else head
        elif record.startswith("# branch.upstream "):
            upstream = record[len("# branch.upstream "):]
        elif record.startswith("? "):
            untracked.append(record[2:])
        elif record.startswith("2 "):
            dirty = True
            i += 1  # a rename record is followed by its original path
        elif record[:2] in ("1 ", "u "):
            dirty = True
    top, urls = _repo_facts(directory)
    remote = upstream.split("/", 1)[0] if upstream else "origin"
    url = urls.get(remote) or (next(iter(urls.values())) if len(urls) == 1 else None)
    info: dict = {
        "repository": top,
        "commit": commit,
        "branch": branch,
        "remote_url": url,
        "dirty": dirty,
        "untracked": untracked,
    }
    if dirty:
        if commit and diff_proc.returncode == 0:
            base, diff = commit, head_diff
        else:  # no commit yet: everything tracked is new
            base = _EMPTY_TREE[_object_format(directory)]
            diff = _git(["diff", "--binary", "--no-color", "--no-ext-diff", base], directory).stdout
        info["diff_bytes"] = len(diff)
        if len(diff) > max_diff_bytes:
            stat = _git(["diff", "--stat", "--no-color", base], directory).stdout
            info["diff_truncated"] = True
            diff = (
                f"# gitexp: the uncommitted diff was {len(diff)} bytes, over the "
                f"{max_diff_bytes}-byte limit (git config gitexp.maxDiffBytes); its summary:\n"
            ).encode() + stat
        # Text that survives JSON journals; undecodable bytes round-trip via surrogateescape.
        info["patch"] = diff.decode("utf-8", "surrogateescape")
    return info


def _object_format(directory: str) -> str:
    out = _git(["rev-parse", "--show-object-format"], directory).stdout.decode().strip()
    return out or "sha1"


def tags_for(info: dict | None) -> dict[str, str]:
    """MLflow's source tags for a captured code version."""
    if not info:
        return {}
    tags = {"mlflow.source.git.dirty": "true" if info["dirty"] else "false"}
    if info.get("commit"):
        tags["mlflow.source.git.commit"] = info["commit"]
    if info.get("branch"):
        tags["mlflow.source.git.branch"] = info["branch"]
    if info.get("remote_url"):
        tags["mlflow.source.git.repoURL"] = info["remote_url"]
    return tags
