"""The exact code a run ran on: commit, branch, remote, and uncommitted changes.

Read with `git --no-optional-locks`, so capturing never rewrites the user's
index.  One `git status` answers commit, branch and dirtiness; a `git diff`
runs only when the tree is dirty.
"""

from __future__ import annotations

import functools
import os
import shutil
import stat
import subprocess
import sys
import tempfile
from dataclasses import dataclass, field
from typing import Any, Protocol

from . import _git as git

MAX_DIFF_BYTES = 10 * 1024 * 1024
UNTRACKED_HASH_BYTES = 1 << 20      # untracked files up to this size get their blob id recorded
UNTRACKED_HASH_TOTAL = 8 << 20
UNTRACKED_HASH_FILES = 200
UNTRACKED_SCAN_LIMIT = 2000
# A patch `git apply` takes back whatever the user's diff config (noprefix, relative...) says.
_DIFF_OPTIONS = ("--binary", "--no-color", "--no-ext-diff", "--no-relative", "--src-prefix=a/", "--dst-prefix=b/")
_EMPTY_TREE = {"sha1": "4b825dc642cb6eb9a060e54bf8d69288fbee4904",
               "sha256": "6ef19b41225c5369f1c104d45d8d85efa9b057b53b14b4b9b939dd74decc5321"}


class GitRepository(Protocol):
    """What code checkouts and diffs need of a repository (store.repo.Repository has it)."""

    @property
    def common_dir(self) -> str: ...
    @property
    def object_format(self) -> str: ...


def _git(args: list[str], cwd: str, input: bytes | None = None) -> subprocess.CompletedProcess[bytes]:
    return git.run(["--no-optional-locks", *args], cwd=cwd, input=input)


def _start(args: list[str], cwd: str) -> subprocess.Popen[bytes]:
    return git.start(["--no-optional-locks", *args], cwd=cwd, stderr=git.DEVNULL)


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


def capture(directory: str | None = None, max_diff_bytes: int = MAX_DIFF_BYTES) -> dict[str, Any] | None:
    """Describe the code in `directory`'s repository, or None outside a work tree."""
    directory = directory or source_dir()
    # status and diff run side by side: each costs mostly git's start-up time.
    diff_proc = _start(["diff", *_DIFF_OPTIONS, "HEAD"], directory)
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
    untracked_blobs = _hash_untracked(top, untracked) if untracked and top else {}
    url = urls.get(remote) or (next(iter(urls.values())) if len(urls) == 1 else None)
    info: dict[str, Any] = {
        "repository": top,
        "commit": commit,
        "branch": _storable(branch),
        "remote_url": url,
        "dirty": dirty,
        "untracked": [_storable(p) for p in untracked],
    }
    if untracked_blobs:
        info["untracked_blobs"] = {_storable(p): sha for p, sha in untracked_blobs.items()}
    if dirty:
        if commit and diff_proc.returncode == 0:
            base, diff = commit, head_diff
        else:  # no commit yet: everything tracked is new
            base = _EMPTY_TREE[_object_format(directory)]
            diff = _git(["diff", *_DIFF_OPTIONS, base], directory).stdout
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


def _storable(name: str | None) -> str | None:
    """A name git printed, as text that can be stored: bytes that are not UTF-8 (decoded with
    surrogateescape above) become \\xNN escapes, since a lone surrogate cannot be written to the
    branch and would make every commit of the run fail."""
    if name is None or name.isascii():
        return name
    return name.encode("utf-8", "surrogateescape").decode("utf-8", "backslashreplace")


def _hash_untracked(top: str, untracked: list[str]) -> dict[str, str]:
    """Blob ids of small untracked files (content not stored): enough to tell, once they are
    committed, whether the commit holds the version the run saw."""
    paths: list[str] = []
    total = 0
    for path in untracked[:UNTRACKED_SCAN_LIMIT]:
        try:
            info = os.lstat(os.path.join(top, path))
        except OSError:
            continue
        size = info.st_size
        if (stat.S_ISREG(info.st_mode) and size <= UNTRACKED_HASH_BYTES and total + size <= UNTRACKED_HASH_TOTAL
                and "\n" not in path):
            paths.append(path)
            total += size
            if len(paths) >= UNTRACKED_HASH_FILES:
                break
    if not paths:
        return {}
    # hash-object applies the same clean filters (eol, attributes) `git add` would.
    result = _git(["hash-object", "--stdin-paths"], top,
                  input="\n".join(paths).encode("utf-8", "surrogateescape") + b"\n")
    shas = result.stdout.decode().split()
    if result.returncode != 0 or len(shas) != len(paths):
        return {}
    return dict(zip(paths, shas, strict=True))


def _object_format(directory: str) -> str:
    out = _git(["rev-parse", "--show-object-format"], directory).stdout.decode().strip()
    return out or "sha1"


def tags_for(info: dict[str, Any] | None) -> dict[str, str]:
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


# -- recreating a run's source tree ---------------------------------------------------------------
@dataclass
class CodeCheckout:
    """What `checkout` wrote: the run's commit, plus its uncommitted diff when it had one."""

    run_id: str
    directory: str
    commit: str | None
    branch: str | None
    patched: bool
    files: int
    untracked: list[str] = field(default_factory=list)  # the run saw these; their content was not recorded

    def __str__(self) -> str:
        base = f"commit {self.commit[:12]}" if self.commit else "an empty repository (no commit yet)"
        lines = [f"Recreated the code of run {self.run_id} in {self.directory}: {self.files} file(s) from {base}"
                 + (" plus the run's uncommitted diff" if self.patched else "")]
        if self.untracked:
            shown = ", ".join(self.untracked[:10]) + (" ..." if len(self.untracked) > 10 else "")
            lines.append(f"{len(self.untracked)} untracked file(s) the run saw are not included "
                         f"(gitexp records their names, not their content): {shown}")
        return "\n".join(lines)


def _plumbing(git_dir: str, args: list[str], index: str | None = None, input: bytes | None = None,
              work_tree: str | None = None) -> subprocess.CompletedProcess[bytes]:
    env = dict(os.environ)
    env.pop("GIT_INDEX_FILE", None)  # set inside git hooks; ours is a private index
    env.pop("GIT_WORK_TREE", None)
    if index is not None:
        env["GIT_INDEX_FILE"] = index
    return git.run(([f"--work-tree={work_tree}"] if work_tree else []) + args, git_dir=git_dir, input=input,
                   env=env)


def _patch_bytes(patch: bytes | str | None) -> bytes:
    if not patch:
        return b""
    return patch if isinstance(patch, bytes) else patch.encode("utf-8", "surrogateescape")


def apply_to_index(git_dir: str, index: str, base: str | None, patch: bytes, object_format: str = "sha1") -> str | None:
    """Load `base` (a commit, or None for the empty tree) into a private index and apply the
    patch there.  Returns None on success, else git's complaint."""
    result = _plumbing(git_dir, ["read-tree", base or _EMPTY_TREE[object_format]], index)
    if result.returncode != 0:
        return result.stderr.decode(errors="replace").strip()
    if patch:
        result = _plumbing(git_dir, ["apply", "--cached", "--whitespace=nowarn", "-"], index, input=patch)
        if result.returncode != 0:
            return result.stderr.decode(errors="replace").strip()
    return None


def checkout(repo: GitRepository, run_id: str, code: dict[str, Any] | None, patch: bytes | str | None,
             directory: str) -> CodeCheckout:
    """Write the tracked files a run ran with into `directory` (new or empty).

    The run's commit is read into a private index, its recorded diff applied there
    (`git apply --cached`), and the result checked out with `git checkout-index`:
    no worktree, no change to your HEAD, index or working tree.
    """
    from .exceptions import InvalidParameterValue, ResourceDoesNotExist, StoreError

    if not code:
        raise InvalidParameterValue(
            f"Run {run_id} has no recorded code version: it ran outside a git work tree "
            "or with GITEXP_CAPTURE_CODE=0, so there is nothing to check out.", run_id=run_id)
    commit = code.get("commit")
    if code.get("diff_truncated"):
        raise InvalidParameterValue(
            f"Run {run_id}'s uncommitted diff was {code.get('diff_bytes', '?')} bytes, over the recording "
            "limit, so only its summary was kept and the exact tree cannot be recreated. "
            + (f"The committed part is `git worktree add DIR {commit}`." if commit else ""), run_id=run_id)
    directory = os.path.abspath(directory)
    if os.path.exists(directory) and (not os.path.isdir(directory) or os.listdir(directory)):
        raise InvalidParameterValue(
            f"{directory} already exists and is not an empty directory; give a new or empty one "
            "so nothing of yours is overwritten.", directory=directory)
    git_dir = repo.common_dir
    if commit and _plumbing(git_dir, ["cat-file", "-e", f"{commit}^{{commit}}"]).returncode != 0:
        where = code.get("remote_url") or "the remote the run's author pushed to"
        raise ResourceDoesNotExist(
            f"Commit {commit} that run {run_id} ran on is not in this repository "
            f"(branch {code.get('branch')!r}). Fetch it first, e.g. `git fetch {where}`.",
            run_id=run_id, commit=commit)
    patch_data = _patch_bytes(patch) if code.get("dirty") else b""
    os.makedirs(directory, exist_ok=True)
    scratch = tempfile.mkdtemp(prefix="gitexp-checkout-")
    try:
        index = os.path.join(scratch, "index")
        problem = apply_to_index(git_dir, index, commit, patch_data, repo.object_format)
        if problem:
            raise StoreError(f"The recorded diff of run {run_id} does not apply to commit {commit}: {problem}",
                             run_id=run_id)
        result = _plumbing(git_dir, ["checkout-index", "--all", "--force"], index, work_tree=directory)
        if result.returncode != 0:
            raise StoreError(f"git checkout-index into {directory} failed: "
                             f"{result.stderr.decode(errors='replace').strip()}")
        files = _plumbing(git_dir, ["ls-files", "-z"], index, work_tree=directory).stdout.count(b"\0")
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    return CodeCheckout(run_id, directory, commit, code.get("branch"), bool(patch_data), files,
                        list(code.get("untracked") or []))


# -- comparing the code of two runs ----------------------------------------------------------------
MAX_CODE_DIFF_BYTES = 2 * 1024 * 1024


@dataclass
class CodeDiff:
    """How the exact source trees of two runs differ (each: its commit plus its uncommitted diff)."""

    run_ids: tuple[str, str]
    commits: tuple[str | None, str | None]
    trees: tuple[str | None, str | None]   # None where a run's tree could not be rebuilt
    problems: tuple[str | None, str | None]  # why a tree could not be rebuilt
    stat: str = ""
    patch: str = ""
    truncated: bool = False

    @property
    def identical(self) -> bool:
        return self.trees[0] is not None and self.trees[0] == self.trees[1]


def _run_tree(repo: GitRepository, run_id: str, code: dict[str, Any] | None,
              patch: bytes | str | None) -> tuple[str | None, str | None]:
    """(tree id of the code a run ran with, None) or (None, why not)."""
    if not code:
        return None, "no recorded code version (ran outside a git work tree, or with GITEXP_CAPTURE_CODE=0)"
    if code.get("diff_truncated"):
        return None, "its uncommitted diff was over the recording limit, only a summary was kept"
    commit = code.get("commit")
    git_dir = repo.common_dir
    if commit and _plumbing(git_dir, ["cat-file", "-e", f"{commit}^{{commit}}"]).returncode != 0:
        return None, f"commit {commit[:12]} is not in this repository (fetch it first)"
    scratch = tempfile.mkdtemp(prefix="gitexp-codediff-")
    try:
        index = os.path.join(scratch, "index")
        problem = apply_to_index(git_dir, index, commit, _patch_bytes(patch) if code.get("dirty") else b"",
                                 repo.object_format)
        if problem:
            return None, f"its recorded diff does not apply to commit {str(commit)[:12]}: {problem}"
        tree = _plumbing(git_dir, ["write-tree"], index)
        if tree.returncode != 0:
            return None, tree.stderr.decode(errors="replace").strip()
        return tree.stdout.decode().strip(), None
    finally:
        shutil.rmtree(scratch, ignore_errors=True)


def diff_runs(repo: GitRepository, first: tuple[str, dict[str, Any] | None, bytes | str | None],
              second: tuple[str, dict[str, Any] | None, bytes | str | None],
              max_bytes: int = MAX_CODE_DIFF_BYTES) -> CodeDiff:
    """The diff from the first run's source tree to the second's, uncommitted changes included.

    Each argument is (run_id, recorded code, recorded patch).  The trees are rebuilt in
    private indexes (as `checkout` does), so nothing of the user's work tree is touched.
    """
    (run_a, code_a, patch_a), (run_b, code_b, patch_b) = first, second
    tree_a, problem_a = _run_tree(repo, run_a, code_a, patch_a)
    tree_b, problem_b = _run_tree(repo, run_b, code_b, patch_b)
    result = CodeDiff((run_a, run_b), ((code_a or {}).get("commit"), (code_b or {}).get("commit")),
                      (tree_a, tree_b), (problem_a, problem_b))
    if tree_a is None or tree_b is None or tree_a == tree_b:
        return result
    git_dir = repo.common_dir
    options = ["-c", "core.quotePath=false", "diff-tree", "-r", "-M", "--no-color", "--no-ext-diff"]
    stat = _plumbing(git_dir, [*options[:2], *options[2:], "--stat=120", tree_a, tree_b])
    result.stat = stat.stdout.decode("utf-8", "replace")
    proc = git.start([*options, "-p", tree_a, tree_b], git_dir=git_dir, stderr=git.DEVNULL)
    assert proc.stdout is not None
    data = proc.stdout.read(max_bytes + 1)
    if len(data) > max_bytes:
        result.truncated = True
        data = data[:max_bytes]
        proc.kill()
    proc.wait()
    result.patch = data.decode("utf-8", "replace")
    return result
