"""gitexp's git hooks: installing them into a repository and what each one does.

    pre-commit   refuse .tracking/ files staged on a code branch; link runs to
                 HEAD as post-commit does, catching up when post-commit did not run
    post-commit  link runs made on uncommitted code to the commit that now holds
                 that code (tag gitexp.code.committedAs; rule in store/code_links.py)
    pre-push     push the tracking branch to the same remote, along with the code

`install` writes a small POSIX sh script per hook (hooks_data/hook.sh) that runs
`python -m gitexp hooks run <hook>` with the interpreter gitexp was installed in,
so hooks work from IDEs and shells where no virtualenv is active.  A hook the
user already had is never overwritten: install refuses, and with --force keeps
it as `<hook>.local`, which gitexp's hook runs first (a failing pre-commit or
pre-push .local stops the commit or push, as before).  The same `hooks run`
entry point serves the pre-commit framework (.pre-commit-hooks.yaml).
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from dataclasses import dataclass
from importlib import resources

from . import _git as git
from .exceptions import GitexpError, InvalidParameterValue, NotAGitRepository

HOOK_NAMES = ("pre-commit", "post-commit", "pre-push")
MARKER = "gitexp-hook"
_ZERO = "0" * 40


@dataclass
class HookChange:
    hook: str
    path: str
    action: str    # installed, updated, unchanged, chained, removed, restored, not ours, absent
    note: str = ""

    def __str__(self) -> str:
        return f"{self.hook}: {self.action} ({self.path}){' - ' + self.note if self.note else ''}"


class HookExists(InvalidParameterValue):
    """Hooks the user already has, which `install` will not replace without --force."""


def _git_out(args: list[str], cwd: str | None = None) -> str:
    result = git.run(args, cwd=cwd)
    if result.returncode != 0:
        return ""
    return result.stdout.decode(errors="surrogateescape").strip()


def hooks_dir(path: str | None = None) -> str:
    """The directory git runs hooks from (honours core.hooksPath and linked worktrees)."""
    cwd = os.path.abspath(path or os.getcwd())
    if not os.path.isdir(cwd):
        raise NotAGitRepository(cwd)
    found = _git_out(["rev-parse", "--path-format=absolute", "--git-path", "hooks"], cwd)
    if not found:
        raise NotAGitRepository(cwd)
    return found


def render(hook: str, python: str | None = None) -> str:
    template = resources.files("gitexp.hooks_data").joinpath("hook.sh").read_text()
    python = (python or sys.executable).replace("'", "'\\''")
    return template.replace("@HOOK@", hook).replace("@PYTHON@", python)


def is_gitexp_hook(path: str) -> bool:
    try:
        with open(path, "rb") as fh:
            head = fh.read(1024)
    except OSError:
        return False
    return MARKER.encode() in head


def _check_names(hooks: tuple[str, ...] | list[str]) -> list[str]:
    for name in hooks:
        if name not in HOOK_NAMES:
            raise InvalidParameterValue(f"Unknown hook {name!r}: gitexp has {', '.join(HOOK_NAMES)}", hook=name)
    return list(hooks)


def _write_hook(path: str, content: str) -> None:
    tmp = f"{path}.gitexp-tmp{os.getpid()}"
    with open(tmp, "w") as fh:
        fh.write(content)
    os.chmod(tmp, 0o755)
    os.replace(tmp, path)


def install(path: str | None = None, force: bool = False, hooks: tuple[str, ...] | list[str] = HOOK_NAMES,
            python: str | None = None) -> list[HookChange]:
    """Install gitexp's hooks; a hook you already have is kept as <hook>.local (with force) and chained."""
    names = _check_names(hooks)
    directory = hooks_dir(path)
    theirs = [n for n in names if os.path.lexists(os.path.join(directory, n))
              and not is_gitexp_hook(os.path.join(directory, n))]
    if theirs and not force:
        listing = ", ".join(os.path.join(directory, n) for n in theirs)
        raise HookExists(
            f"You already have git hook(s) {listing}; gitexp will not overwrite them. "
            "Run `gitexp hooks install --force` to keep each as <hook>.local, which gitexp's hook runs first, "
            "or call `gitexp hooks run <hook> \"$@\"` from your own hook.",
            hooks=theirs,
        )
    os.makedirs(directory, exist_ok=True)
    changes = []
    for name in names:
        target = os.path.join(directory, name)
        content = render(name, python)
        if name in theirs:
            local = target + ".local"
            note = ""
            if os.path.lexists(local):
                backup = f"{local}.{time.strftime('%Y%m%d%H%M%S')}.bak"
                os.replace(local, backup)
                note = f"the older {os.path.basename(local)} is now {os.path.basename(backup)}"
            os.replace(target, local)
            _write_hook(target, content)
            changes.append(HookChange(name, target, "chained",
                                      f"your hook is now {os.path.basename(local)} and runs first"
                                      + (f"; {note}" if note else "")))
            continue
        if os.path.lexists(target):
            with open(target) as fh:
                same = fh.read() == content
            if same:
                changes.append(HookChange(name, target, "unchanged"))
                continue
            _write_hook(target, content)
            changes.append(HookChange(name, target, "updated"))
            continue
        _write_hook(target, content)
        changes.append(HookChange(name, target, "installed"))
    return changes


def uninstall(path: str | None = None, hooks: tuple[str, ...] | list[str] = HOOK_NAMES) -> list[HookChange]:
    """Remove gitexp's hooks, putting back the <hook>.local each one chained to."""
    directory = hooks_dir(path)
    changes = []
    for name in _check_names(hooks):
        target = os.path.join(directory, name)
        local = target + ".local"
        if not os.path.lexists(target):
            changes.append(HookChange(name, target, "absent"))
        elif not is_gitexp_hook(target):
            changes.append(HookChange(name, target, "not ours", "left as it is"))
        elif os.path.lexists(local):
            os.replace(local, target)
            changes.append(HookChange(name, target, "restored", f"your {os.path.basename(local)} is back"))
        else:
            os.unlink(target)
            changes.append(HookChange(name, target, "removed"))
    return changes


def status(path: str | None = None) -> list[HookChange]:
    directory = hooks_dir(path)
    out = []
    for name in HOOK_NAMES:
        target = os.path.join(directory, name)
        if not os.path.lexists(target):
            state = "absent"
        elif is_gitexp_hook(target):
            state = "gitexp" + (" (chains to .local)" if os.path.lexists(target + ".local") else "")
        else:
            state = "not ours"
        out.append(HookChange(name, target, state))
    return out


# -- running ---------------------------------------------------------------------------------------
def _say(message: str) -> None:
    print(f"gitexp: {message}", file=sys.stderr)


def run(hook: str, args: list[str], stdin: bytes | None = None) -> int:
    """Run hook `hook` as git would: chained .local first, then gitexp's part. Returns the exit code."""
    _check_names([hook])
    if hook == "pre-push" and stdin is None:
        stdin = _read_stdin()
    if not os.environ.get("PRE_COMMIT"):  # under the pre-commit framework it chains hooks itself
        code = _run_local(hook, args, stdin)
        if code != 0 and hook != "post-commit":
            return code
    if os.environ.get("GITEXP_SKIP_HOOKS", "") not in ("", "0"):
        return 0
    if hook == "pre-commit":
        refused = refuse_tracking_files()
        if refused == 0:
            link_head()  # catch-up for setups without post-commit (or commits made by rebase)
        return refused
    if hook == "post-commit":
        return link_head()
    return push_tracking_branch(args, stdin or b"")


def _read_stdin() -> bytes:
    try:
        if sys.stdin is None or sys.stdin.isatty():
            return b""
        return sys.stdin.buffer.read()
    except (OSError, ValueError, AttributeError):
        return b""


def _run_local(hook: str, args: list[str], stdin: bytes | None) -> int:
    try:
        local = os.path.join(hooks_dir(), hook + ".local")
    except GitexpError:
        return 0
    if not os.path.isfile(local) or not os.access(local, os.X_OK):
        return 0
    return subprocess.run([local, *args], input=stdin or b"").returncode


def _here() -> str:
    """The repository git runs the hook in: its work tree, or its git dir when bare."""
    return _git_out(["rev-parse", "--show-toplevel"]) or _git_out(["rev-parse", "--absolute-git-dir"]) or "."


def refuse_tracking_files() -> int:
    """pre-commit: .tracking/ belongs on the tracking branch, never on a code branch."""
    from .client import Client

    tracking = Client(_here()).get_repository_info().branch
    current = _git_out(["symbolic-ref", "-q", "--short", "HEAD"])
    if current == tracking:
        return 0  # committing on the tracking branch itself (a merge in a worktree, say)
    staged = git.run(["diff", "--cached", "--name-only", "-z", "--diff-filter=ACMRT"]).stdout
    bad = [p.decode(errors="replace") for p in staged.split(b"\0")
           if p == b".tracking" or p.startswith(b".tracking/")]
    if not bad:
        return 0
    shown = "\n    ".join(bad[:10]) + (f"\n    ... and {len(bad) - 10} more" if len(bad) > 10 else "")
    where = f"branch {current!r}" if current else "a detached HEAD"
    _say(
        f"refusing to commit {len(bad)} file(s) under .tracking/ on {where}:\n    {shown}\n"
        f"Experiment data lives on the tracking branch {tracking!r} (gitexp writes it; `gitexp sync` shares it).\n"
        "Unstage them with `git rm -r --cached .tracking` and add `.tracking/` to .gitignore.\n"
        "(To commit anyway, once: git commit --no-verify.)"
    )
    return 1


def link_head() -> int:
    """post-commit: link runs whose uncommitted code HEAD now holds. Never fails the commit."""
    from .client import Client

    try:
        # Runs go where this repository's tracking URI says; the code is this repository.
        linked = Client().link_runs_to_commit("HEAD", repository=_here())
    except GitexpError as exc:
        _say(f"could not link runs to the new commit: {exc}")
        return 0
    if linked:
        head = _git_out(["rev-parse", "--short", "HEAD"])
        _say(f"linked {len(linked)} run(s) made on uncommitted code to commit {head}: "
             + ", ".join(r[:8] for r in linked))
    return 0


def _pushed_refs(stdin: bytes) -> list[tuple[str, str, str, str]]:
    refs = []
    for line in stdin.decode(errors="replace").splitlines():
        parts = line.split()
        if len(parts) == 4:
            refs.append((parts[0], parts[1], parts[2], parts[3]))
    return refs


def push_tracking_branch(args: list[str], stdin: bytes) -> int:
    """pre-push: push the tracking branch to the remote the code goes to. Never blocks the code push."""
    from .client import Client

    name = args[0] if args else os.environ.get("PRE_COMMIT_REMOTE_NAME", "")
    url = args[1] if len(args) > 1 else os.environ.get("PRE_COMMIT_REMOTE_URL", "")
    if not name and not url:
        _say("pre-push needs the remote's name and URL (git passes them); nothing pushed")
        return 0
    client = Client(_here())
    repository = client.get_repository_info()
    tracking_ref = repository.ref
    refs = _pushed_refs(stdin)
    remote_branch = os.environ.get("PRE_COMMIT_REMOTE_BRANCH", "")
    if remote_branch == tracking_ref or any(local == tracking_ref or remote == tracking_ref
                                            for local, _, remote, _ in refs):
        return 0  # the tracking branch is being pushed already
    if refs and all(set(sha) == {"0"} for _, sha, _, _ in refs):
        return 0  # only deleting remote branches
    if client.get_tracking_tip() is None:
        return 0  # nothing tracked in this repository yet
    configured = git.run(["config", "--get", f"remote.{name}.url"]).returncode == 0
    target = name if configured else (url or name)
    try:
        result = client.push(target, progress=False, no_verify=True)
    except GitexpError as exc:
        _say(f"could not push the tracking branch {repository.branch!r} to {target}: {exc}\n"
             "Your code push goes on; run `gitexp sync` later.")
        return 0
    _say(str(result))
    return 0
