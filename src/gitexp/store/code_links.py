"""Linking runs made on uncommitted code to the commit that later contains that code.

A run records its base commit and, on a dirty tree, the diff of tracked files
(plus blob ids of small untracked files).  When a commit C is made, a run R is
linked to it -- an event tag ``gitexp.code.committedAs = C`` -- when:

1. R is not linked yet, and its diff was recorded in full;
2. R's base commit is C's first parent or one of C's first-parent ancestors up
   to ``SEARCH_DEPTH`` commits back (no base: C is a root commit);
3. every path R's diff touches has in C exactly the content (and mode) R ran
   with -- deleted paths are absent from C -- and every recorded untracked file
   that C holds has the content R saw; and
4. C holds some of R's uncommitted code: R's diff touched a path, or C holds
   one of R's recorded untracked files.

So C is the first commit that holds all of R's tracked changes.  Other changes
in C do not matter; a later edit of the same lines before committing breaks the
link, as it should: the commit no longer holds the code the run ran.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import tempfile
from typing import TYPE_CHECKING, Any

from .. import _git as git
from .. import code_version
from ..entities import LifecycleStage
from ..exceptions import InvalidParameterValue
from . import layout

if TYPE_CHECKING:
    from .tracking import GitStore

LINK_TAG = "gitexp.code.committedAs"
SEARCH_DEPTH = 64
_CACHE_FILE = "code-index.json"


def _git(git_dir: str, args: list[str], input: bytes | None = None) -> subprocess.CompletedProcess[bytes]:
    env = dict(os.environ)
    env.pop("GIT_INDEX_FILE", None)
    return git.run(args, git_dir=git_dir, input=input, env=env)


def _code_index(store: GitStore) -> dict[str, tuple[str | None, bool]]:
    """run_id -> (base commit, ran on uncommitted code?) for every run with a code version.

    code.yaml blobs are parsed once per repository: the result is kept by blob id in
    .git/gitexp/code-index.json (derived, deletable).
    """
    branch = store.branch
    path = os.path.join(store.repo.state_dir, _CACHE_FILE)
    try:
        with open(path) as fh:
            cache: dict[str, list[Any]] = json.load(fh)
    except (OSError, ValueError):
        cache = {}
    changed = False
    out: dict[str, tuple[str | None, bool]] = {}
    for run_id, tree in branch.run_trees().items():
        entry = branch.odb.tree_dict(tree).get("code.yaml")
        if entry is None:
            continue
        known = cache.get(entry.sha)
        if known is None:
            code = layout.load_yaml(branch.odb.read_blob(entry.sha)) or {}
            uncommitted = ((bool(code.get("dirty")) and not code.get("diff_truncated"))
                           or bool(code.get("untracked_blobs")))
            known = cache[entry.sha] = [code.get("commit"), uncommitted]
            changed = True
        out[run_id] = (known[0], bool(known[1]))
    if changed:
        os.makedirs(store.repo.state_dir, exist_ok=True)
        tmp = f"{path}.{os.getpid()}"
        with open(tmp, "w") as fh:
            json.dump(cache, fh)
        os.replace(tmp, path)
    return out


def commit_contains(git_dir: str, code: dict[str, Any], patch: bytes, commit: str, object_format: str = "sha1") -> bool:
    """Rules 3 and 4 of the module docstring: does `commit` hold the run's uncommitted code?"""
    if code.get("diff_truncated"):
        return False
    touched: list[str] = []
    if code.get("dirty") and patch:
        scratch = tempfile.mkdtemp(prefix="gitexp-link-")
        try:
            index = os.path.join(scratch, "index")
            if code_version.apply_to_index(git_dir, index, code.get("commit"), patch, object_format):
                return False
            base = code.get("commit") or code_version._EMPTY_TREE[object_format]
            env_index = {**os.environ, "GIT_INDEX_FILE": index}
            touched = _names(git.run(["diff-index", "--cached", "-z", "--name-only", "--no-renames", base],
                                     git_dir=git_dir, env=env_index).stdout)
            differing = set(_names(git.run(["diff-index", "--cached", "-z", "--name-only", "--no-renames", commit],
                                           git_dir=git_dir, env=env_index).stdout))
        finally:
            shutil.rmtree(scratch, ignore_errors=True)
        if differing.intersection(touched):
            return False
    blobs: dict[str, str] = code.get("untracked_blobs") or {}
    held = 0
    if blobs:
        paths = list(blobs)
        query = "".join(f"{commit}:{p}\n" for p in paths).encode("utf-8", "surrogateescape")
        result = _git(git_dir, ["cat-file", "--batch-check=%(objectname) %(objecttype)"], query)
        lines = result.stdout.decode().splitlines()
        for p, line in zip(paths, lines, strict=False):
            sha, _, kind = line.partition(" ")
            if kind == "blob":
                if sha != blobs[p]:
                    return False
                held += 1
    return bool(touched) or held > 0


def _names(raw: bytes) -> list[str]:
    return [p.decode("utf-8", "surrogateescape") for p in raw.split(b"\0") if p]


def link_runs_to_commit(store: GitStore, commit: str = "HEAD", code_repository: str | None = None) -> list[str]:
    """Tag every run whose uncommitted code `commit` holds (see the module docstring)."""
    git_dir = store.repo.common_dir
    if code_repository is not None:
        from .repo import open_repository

        git_dir = open_repository(code_repository).common_dir
    resolved = _git(git_dir, ["rev-parse", "--verify", "-q", f"{commit}^{{commit}}"]).stdout.decode().strip()
    if not resolved:
        raise InvalidParameterValue(f"{commit!r} is not a commit in {git_dir}", commit=commit)
    parents = _git(git_dir, ["rev-list", "--first-parent", f"--max-count={SEARCH_DEPTH}", f"{resolved}^"])
    ancestors = set(parents.stdout.decode().split()) if parents.returncode == 0 else set()
    is_root = not ancestors and _git(git_dir, ["rev-parse", "-q", "--verify", f"{resolved}^"]).returncode != 0
    candidates = [run_id for run_id, (base, uncommitted) in _code_index(store).items()
                  if uncommitted and (base in ancestors or (base is None and is_root))]
    linked = []
    for run_id in sorted(candidates):
        state = store.run_state(run_id)
        if LINK_TAG in state.tags or store._lifecycle(state) != LifecycleStage.ACTIVE or not state.code:
            continue
        patch = store.branch.code_patch(run_id) or b""
        if commit_contains(git_dir, state.code, patch, resolved, store.repo.object_format):
            store.set_tag(run_id, LINK_TAG, resolved)
            linked.append(run_id)
    for run_id in linked:
        store.flush(run_id)
    return linked
