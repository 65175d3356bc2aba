"""The tracking branch's own history: which commit changed which run, experiment or model, who, when.

Commits come from one `git log` of the branch (paged by skip/count from a pinned
tip, so pages stay stable while runs keep landing).  What a commit changed is
worked out at entity level by comparing its tree with its first parent's, one
level at a time (`.tracking/runs/<xx>/<run_id>`, `.tracking/experiments/<id>`,
`.tracking/registry/<model>`), through the cached object reader: a commit that
wrote 1,000 runs costs two bucket-level tree reads per bucket, never a listing
of its 17,000 files.  The full file-level diff is only read for one commit at a
time (`commit_detail`).
"""

from __future__ import annotations

import base64
import binascii
import json
import re
import subprocess
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from .. import _git as git
from ..exceptions import InvalidParameterValue, ResourceDoesNotExist, StoreError
from . import layout

if TYPE_CHECKING:
    from .tracking import GitStore

_FIELDS = "%H%x1f%P%x1f%an%x1f%ae%x1f%at%x1f%B%x1e"
_HEX = re.compile(r"[0-9a-fA-F]{4,64}\Z")
MAX_DIFF_BYTES = 256 * 1024
MAX_DETAIL_FILES = 2000


@dataclass(frozen=True)
class ChangedEntity:
    """One run, experiment or registered model a commit touched."""

    kind: str            # "run", "experiment", "model" or "other"
    key: str             # run id, experiment id, model directory, or the path
    status: str          # "added", "modified" or "deleted"
    name: str | None = None  # the model's name (models only)


@dataclass
class BranchCommit:
    """One commit of the tracking branch."""

    commit: str
    parents: list[str]
    author_name: str
    author_email: str
    timestamp: int       # ms since the epoch (author time)
    message: str
    changes: list[ChangedEntity] = field(default_factory=list)
    changes_truncated: bool = False

    @property
    def subject(self) -> str:
        return self.message.split("\n", 1)[0]

    @property
    def is_merge(self) -> bool:
        return len(self.parents) > 1

    def counts(self) -> dict[str, int]:
        out: dict[str, int] = {}
        for c in self.changes:
            out[c.kind] = out.get(c.kind, 0) + 1
        return out


@dataclass
class FileChange:
    """One file of a commit's diff against its first parent."""

    status: str          # A, M, D (git's letters)
    path: str
    patch: str | None    # unified diff text; None for binary or too large
    note: str = ""       # why there is no patch


@dataclass
class CommitDetail:
    commit: BranchCommit
    files: list[FileChange]
    files_truncated: bool


def _git(store: GitStore, args: list[str]) -> subprocess.CompletedProcess[bytes]:
    return git.run(args, git_dir=store.repo.common_dir)


def _token(skip: int, tip: str) -> str:
    return base64.b64encode(json.dumps({"skip": skip, "tip": tip}).encode()).decode()


def _parse_token(token: str | None) -> tuple[int, str | None]:
    if not token:
        return 0, None
    try:
        doc = json.loads(base64.b64decode(token, validate=True))
        skip, tip = int(doc["skip"]), str(doc["tip"])
    except (binascii.Error, ValueError, TypeError, KeyError):
        raise InvalidParameterValue(f"Invalid page token {token!r}: pass the token a previous page returned",
                                    page_token=token) from None
    if skip < 0 or not _HEX.match(tip):
        raise InvalidParameterValue(f"Invalid page token {token!r}", page_token=token)
    return skip, tip


def path_for(run_id: str | None = None, experiment_id: str | None = None,
             model_directory: str | None = None) -> str | None:
    """The branch path whose commits belong to one entity."""
    given = [x for x in (run_id, experiment_id, model_directory) if x]
    if len(given) > 1:
        raise InvalidParameterValue("Give at most one of run_id, experiment_id and model to follow")
    if run_id:
        if not re.fullmatch(r"[0-9a-f]{32}", run_id):
            raise InvalidParameterValue(f"{run_id!r} is not a run id (32 hex digits)", run_id=run_id)
        return layout.run_dir(run_id)
    if experiment_id:
        if not experiment_id.isdigit():
            raise InvalidParameterValue(f"{experiment_id!r} is not an experiment id (digits)",
                                        experiment_id=experiment_id)
        return layout.experiment_dir(experiment_id)
    if model_directory:
        if "/" in model_directory or model_directory in (".", ".."):
            raise InvalidParameterValue(f"Invalid model directory {model_directory!r}")
        return f"{layout.REGISTRY}/{model_directory}"
    return None


def log(store: GitStore, max_results: int = 50, page_token: str | None = None,
        path: str | None = None, model_names: dict[str, str] | None = None) -> tuple[list[BranchCommit], str | None]:
    """A page of the branch's commits, newest first, each with the entities it changed.

    `path` follows one entity's directory.  Returns (commits, next page token or None).
    """
    if isinstance(max_results, bool) or not isinstance(max_results, int) or not 1 <= max_results <= 1000:
        raise InvalidParameterValue(f"max_results must be between 1 and 1000, got {max_results!r}",
                                    max_results=max_results)
    skip, tip = _parse_token(page_token)
    if tip is None:
        tip = store.branch.tip()
        if tip is None:
            return [], None
    args = ["log", f"--format={_FIELDS}", f"--skip={skip}", f"--max-count={max_results + 1}", tip]
    if path:
        args += ["--", path]
    result = _git(store, args)
    if result.returncode != 0:
        raise StoreError(f"Reading the history of the tracking branch failed: "
                         f"{result.stderr.decode(errors='replace').strip()}")
    commits = [_parse_commit(rec) for rec in result.stdout.decode("utf-8", "replace").split("\x1e")
               if rec.strip()]
    more = len(commits) > max_results
    commits = commits[:max_results]
    for c in commits:
        c.changes, c.changes_truncated = entity_changes(store, c, model_names or {})
    return commits, (_token(skip + max_results, tip) if more else None)


def _parse_commit(record: str) -> BranchCommit:
    sha, parents, name, email, when, message = record.lstrip("\n").split("\x1f", 5)
    return BranchCommit(sha, parents.split(), name, email, int(when or 0) * 1000, message.rstrip("\n"))


def _children(store: GitStore, tree: str | None, path: str) -> dict[str, str]:
    """name -> object id of the entries at `path` below `tree` ({} when absent)."""
    odb = store.branch.odb
    if tree is None:
        return {}
    entry = odb.lookup(tree, path) if path else None
    sha = tree if not path else (entry.sha if entry is not None and entry.is_tree else None)
    return {e.name: e.sha for e in odb.read_tree(sha)} if sha else {}


def _diff(old: dict[str, str], new: dict[str, str]) -> list[tuple[str, str]]:
    out = []
    for name in sorted(set(old) | set(new)):
        if name not in old:
            out.append((name, "added"))
        elif name not in new:
            out.append((name, "deleted"))
        elif old[name] != new[name]:
            out.append((name, "modified"))
    return out


def entity_changes(store: GitStore, commit: BranchCommit, model_names: dict[str, str],
                   limit: int = 5000) -> tuple[list[ChangedEntity], bool]:
    """The runs, experiments and models `commit` changed relative to its first parent."""
    odb = store.branch.odb
    new_root = odb.read_commit(commit.commit)["tree"]
    old_root = odb.read_commit(commit.parents[0])["tree"] if commit.parents else None
    out: list[ChangedEntity] = []
    if new_root == old_root:
        return out, False
    # Runs: .tracking/runs/<bucket>/<run_id>
    old_buckets = _children(store, old_root, layout.RUNS)
    new_buckets = _children(store, new_root, layout.RUNS)
    for bucket, _ in _diff(old_buckets, new_buckets):
        old_runs = _children(store, old_buckets[bucket], "") if bucket in old_buckets else {}
        new_runs = _children(store, new_buckets[bucket], "") if bucket in new_buckets else {}
        for run_id, status in _diff(old_runs, new_runs):
            out.append(ChangedEntity("run", run_id, status))
            if len(out) >= limit:
                return out, True
    for name, status in _diff(_children(store, old_root, layout.EXPERIMENTS),
                              _children(store, new_root, layout.EXPERIMENTS)):
        out.append(ChangedEntity("experiment", name, status))
    for directory, status in _diff(_children(store, old_root, layout.REGISTRY),
                                   _children(store, new_root, layout.REGISTRY)):
        out.append(ChangedEntity("model", directory, status,
                                 model_names.get(directory) or layout.decode_key(directory)))
    known = {layout.RUNS, layout.EXPERIMENTS, layout.REGISTRY}
    old_top = _children(store, old_root, layout.ROOT)
    new_top = _children(store, new_root, layout.ROOT)
    for name, status in _diff(old_top, new_top):
        if f"{layout.ROOT}/{name}" not in known:
            out.append(ChangedEntity("other", f"{layout.ROOT}/{name}", status))
    for name, status in _diff(_children(store, old_root, ""), _children(store, new_root, "")):
        if name != layout.ROOT:
            out.append(ChangedEntity("other", name, status))
    return out, False


def resolve_commit(store: GitStore, ref: str) -> str:
    """A full commit id on the tracking branch from a (possibly abbreviated) id."""
    if not isinstance(ref, str) or not _HEX.match(ref):
        raise InvalidParameterValue(f"{ref!r} is not a commit id (hexadecimal, at least 4 digits)", commit=ref)
    result = _git(store, ["rev-parse", "--verify", "--quiet", f"{ref}^{{commit}}"])
    sha = result.stdout.decode().strip()
    tip = store.branch.tip()
    if result.returncode != 0 or not sha or tip is None:
        raise ResourceDoesNotExist(f"No commit {ref!r} in this repository", commit=ref)
    on_branch = _git(store, ["merge-base", "--is-ancestor", sha, tip]).returncode == 0
    if not on_branch:
        raise ResourceDoesNotExist(
            f"Commit {ref!r} is not on the tracking branch {store.repo.branch!r}; "
            "see `git log gitexp` for its commits", commit=ref)
    return sha


def commit_detail(store: GitStore, ref: str, model_names: dict[str, str] | None = None,
                  max_files: int = MAX_DETAIL_FILES, max_diff_bytes: int = MAX_DIFF_BYTES,
                  max_patches: int = 200) -> CommitDetail:
    """One tracking-branch commit: who, when, what, and its file diffs (first parent)."""
    sha = resolve_commit(store, ref)
    result = _git(store, ["log", "-1", f"--format={_FIELDS}", sha])
    commit = _parse_commit(result.stdout.decode("utf-8", "replace").split("\x1e")[0])
    commit.changes, commit.changes_truncated = entity_changes(store, commit, model_names or {})
    base = commit.parents[0] if commit.parents else None
    diff_args = ["diff-tree", "-r", "--no-renames", "--name-status", "-z"]
    listing = _git(store, diff_args + ([base, sha] if base else ["--root", sha]))
    fields = listing.stdout.decode("utf-8", "replace").split("\0")
    if not base and fields and _HEX.match(fields[0] or "-"):
        fields = fields[1:]  # --root prints the commit id first
    pairs = [(fields[i], fields[i + 1]) for i in range(0, len(fields) - 1, 2) if fields[i]]
    truncated = len(pairs) > max_files
    pairs = pairs[:max_files]
    patches = _patches(store, base, sha, [path for _, path in pairs[:max_patches]])
    files = []
    budget = max_diff_bytes
    for i, (status, path) in enumerate(pairs):
        if i >= max_patches:
            files.append(FileChange(status, path, None, f"only the first {max_patches} files' diffs are shown"))
            continue
        hunk = patches.get(path)
        if hunk is None:
            files.append(FileChange(status, path, None, "binary file"))
        elif len(hunk) > budget:
            files.append(FileChange(status, path, None, f"diff of {len(hunk):,} bytes not shown"))
        else:
            budget -= len(hunk)
            files.append(FileChange(status, path, hunk))
    return CommitDetail(commit, files, truncated)


def _patches(store: GitStore, base: str | None, sha: str, paths: list[str]) -> dict[str, str | None]:
    """path -> its hunks ('@@ ...'), or None for a binary file; one git call for all paths."""
    if not paths:
        return {}
    result = _git(store, ["-c", "core.quotePath=false", "--literal-pathspecs", "diff-tree", "-p", "-r",
                          "--no-renames", "--no-color", "--no-ext-diff", "--full-index",
                          *([base, sha] if base else ["--root", sha]), "--", *paths])
    text = result.stdout.decode("utf-8", "replace")
    out: dict[str, str | None] = {}
    sections = re.split(r"^diff --git ", text, flags=re.M)[1:]
    pending = list(paths)
    for section in sections:
        header = section.split("\n", 1)[0]
        # Sections come in the listing's order; match by header, else take the next path.
        path = next((p for p in pending if header == f"a/{p} b/{p}"), pending[0] if pending else None)
        if path is None:
            break
        pending.remove(path)
        head, sep, body = section.partition("\n@@")
        out[path] = ("@@" + body) if sep else (None if "Binary files" in head else "")
    return out
