"""Fault trials: gitexp writers beside git's housekeeping, a user on the checked-out branch, SIGKILLs.

One trial, in a fresh repository:
  * writers, each a real process printing every write that *returned* to an ack file:
    "threads" (two threads, short runs through the Client: params, metrics, a text
    artifact, end), "long" (one run for the whole trial: metrics, artifacts, live
    checkpoints every 0.1 s, publishing every 3rd) and "dirs" (short runs logging a
    directory with log_artifacts);
  * a housekeeper looping `git repack -a -d`, `git gc --prune=now`, `git maintenance run`
    and `git pack-refs --all`;
  * a user who checks the tracking branch out in a linked worktree, commits there and
    switches away again (never at the same moment as `git gc --prune=now`: git's own
    commit is not safe from that -- `git help gc` says so -- and neither is anything else);
  * a killer sending SIGKILL to a random writer at a random moment.
Then every process stops, `gitexp doctor` recovers, and the trial checks: `gitexp doctor`
succeeds, `git fsck --strict` is clean, every acknowledged write is on the branch (runs,
params, metric points, artifact bytes, end status), no run is left RUNNING, the user's
commits are in the branch's history, and no journal, live or pending ref or keep file is
left.  Used by tests/test_faults.py (short trials) and benchmarks/soak_faults.py (a soak).
"""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import textwrap
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

SRC = str(Path(__file__).resolve().parents[1] / "src")
ENV = {
    **os.environ,
    "GIT_AUTHOR_NAME": "Trial", "GIT_AUTHOR_EMAIL": "trial@example.com",
    "GIT_COMMITTER_NAME": "Trial", "GIT_COMMITTER_EMAIL": "trial@example.com",
    "GIT_CONFIG_NOSYSTEM": "1", "GIT_CONFIG_GLOBAL": os.devnull,
    "PYTHONPATH": os.pathsep.join([SRC, *[p for p in os.environ.get("PYTHONPATH", "").split(os.pathsep) if p]]),
}
WRITER_ENV = {
    "GITEXP_CHECKPOINT_INTERVAL": "0.1", "GITEXP_PUBLISH_EVERY": "3",
    "GITEXP_DEBUG_UNPROTECTED_WRITES": "raise",  # an object written outside protection is an error
}
# What a writer may be told while faults run; anything else fails the trial.
EXPECTED_ERRORS = {"BranchCheckedOut", "RefLocked"}
HOUSEKEEPING = (["repack", "-a", "-d", "-q"], ["gc", "--prune=now", "-q"], ["maintenance", "run", "--quiet"],
                ["pack-refs", "--all"])


def fsck(repo) -> str:
    """'' if `git fsck --strict` finds nothing wrong, else what it says."""
    result = subprocess.run(["git", "fsck", "--strict", "--no-dangling", "--no-progress"], cwd=repo,
                            capture_output=True, text=True, env=ENV)
    text = (result.stdout + result.stderr).strip()
    return text if result.returncode != 0 or text else ""


WRITER = textwrap.dedent(r'''
    import json, os, random, sys, threading, time
    import gitexp
    role, seed, until, acks = sys.argv[1], int(sys.argv[2]), float(sys.argv[3]), sys.argv[4]
    fd = os.open(acks, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
    client = gitexp.Client()

    def ack(*record):  # one write(2) per acknowledged call, after it returned
        os.write(fd, (json.dumps(record) + "\n").encode())

    def attempt(what, call, *record):
        try:
            result = call()
        except Exception as exc:
            ack("err", what, type(exc).__name__, str(exc)[:300])
            time.sleep(0.02)
            return False
        if record:
            ack(*record)
        return result if result is not None else True

    def short_runs(name, rnd, dirs=False):
        n = 0
        while time.time() < until:
            run = attempt("create", lambda: client.create_run("0", run_name=f"{name}-{n}"))
            if run is False:
                continue
            rid = run.info.run_id
            ack("run", rid)
            attempt("param", lambda: client.log_param(rid, "writer", name), "param", rid, "writer", name)
            for step in range(rnd.randint(1, 20)):
                attempt("metric", lambda: client.log_metric(rid, "loss", step * 0.5, step=step),
                        "metric", rid, "loss", step)
            if dirs:
                base = f"tmp-{name}-{n}"
                os.makedirs(f"{base}/sub", exist_ok=True)
                files = {"a.txt": f"{rid} a", "sub/b.txt": f"{rid} b {rnd.random()}"}
                for path, text in files.items():
                    open(os.path.join(base, path), "w").write(text)
                if attempt("artifacts", lambda: client.log_artifacts(rid, base, "dir")):
                    for path, text in files.items():
                        ack("artifact", rid, f"dir/{path}", text)
            else:
                text = f"{name} {n} {rnd.random()}"
                attempt("text", lambda: client.log_text(rid, text, f"notes/{n}.txt"), "artifact", rid,
                        f"notes/{n}.txt", text)
            status = rnd.choice(["FINISHED", "FINISHED", "FAILED"])
            attempt("end", lambda: client.set_terminated(rid, status), "end", rid, status)
            n += 1

    def long_run(rnd):
        run = None
        while run in (None, False) and time.time() < until:
            run = attempt("create", lambda: client.create_run("0", run_name="long"))
        if not run:
            return
        rid = run.info.run_id
        ack("run", rid)
        step = 0
        while time.time() < until:
            for _ in range(10):
                attempt("metric", lambda: client.log_metric(rid, "acc", step / 100, step=step),
                        "metric", rid, "acc", step)
                step += 1
            if step % 50 == 0:
                text = f"checkpoint {step} {rnd.random()}"
                attempt("text", lambda: client.log_text(rid, text, f"ckpt/{step}.txt"), "artifact", rid,
                        f"ckpt/{step}.txt", text)
                attempt("param", lambda: client.log_param(rid, f"p{step}", step), "param", rid, f"p{step}", str(step))
            time.sleep(0.005)
        attempt("end", lambda: client.set_terminated(rid, "FINISHED"), "end", rid, "FINISHED")

    rnd = random.Random(seed)
    if role == "threads":
        threads = [threading.Thread(target=short_runs, args=(f"t{i}", random.Random(seed * 10 + i)))
                   for i in range(2)]
        for t in threads: t.start()
        for t in threads: t.join()
    elif role == "long":
        long_run(rnd)
    else:
        short_runs("d", rnd, dirs=True)
    ack("exit")
''')

VERIFY = textwrap.dedent(r'''
    import json, os, sys, tempfile
    import gitexp
    acks = json.load(sys.stdin)
    client = gitexp.Client()
    problems = []
    runs = {}
    for rec in acks:
        if rec[0] in ("run", "param", "metric", "artifact", "end"):
            runs.setdefault(rec[1], []).append(rec)
    for rid, recs in runs.items():
        try:
            run = client.get_run(rid)
        except Exception as exc:
            problems.append(f"acknowledged run {rid} is not on the branch: {exc}")
            continue
        if run.info.status not in ("FINISHED", "FAILED", "KILLED"):
            problems.append(f"run {rid} is left {run.info.status}")
        history = {}
        files = None
        for rec in recs:
            kind = rec[0]
            if kind == "param" and run.data.params.get(rec[2]) != rec[3]:
                problems.append(f"run {rid}: param {rec[2]}={rec[3]!r} acknowledged, branch has "
                                f"{run.data.params.get(rec[2])!r}")
            elif kind == "metric":
                if rec[2] not in history:
                    history[rec[2]] = {m.step for m in client.get_metric_history(rid, rec[2])}
                if rec[3] not in history[rec[2]]:
                    problems.append(f"run {rid}: metric {rec[2]} step {rec[3]} acknowledged, not on the branch")
            elif kind == "artifact":
                if files is None:
                    files = client.download_artifacts(rid, "", tempfile.mkdtemp())
                path = os.path.join(files, *rec[2].split("/"))
                got = open(path).read() if os.path.isfile(path) else None
                if got != rec[3]:
                    problems.append(f"run {rid}: artifact {rec[2]} acknowledged, branch has {got!r}")
            elif kind == "end" and run.info.status != rec[2]:
                problems.append(f"run {rid}: end {rec[2]} acknowledged, status is {run.info.status}")
    # Runs nobody acknowledged may exist (a create that raised after journaling): none may be RUNNING.
    for run in client.search_runs(["0"], max_results=50000):
        if run.info.status == "RUNNING":
            problems.append(f"run {run.info.run_id} ({run.info.run_name}) is left RUNNING")
    print(json.dumps({"problems": problems, "runs": len(runs)}))
''')


@dataclass
class TrialReport:
    seed: int
    seconds: float = 0.0
    problems: list[str] = field(default_factory=list)
    counts: Counter = field(default_factory=Counter)
    errors: Counter = field(default_factory=Counter)

    @property
    def ok(self) -> bool:
        return not self.problems

    def describe(self) -> str:
        return (f"trial seed {self.seed}: {'ok' if self.ok else 'FAILED'} in {self.seconds:.1f} s; "
                f"{dict(self.counts)}; writer errors {dict(self.errors)}"
                + "".join(f"\n  - {p}" for p in self.problems[:30]))


class FaultTrial:
    def __init__(self, path: Path, seed: int, duration: float = 1.5, kills: int = 1,
                 housekeeping: bool = True, checkout: bool = True):
        self.path = Path(path)
        self.repo = self.path / "repo"
        self.seed = seed
        self.rnd = random.Random(seed)
        self.duration = duration
        self.kills = kills
        self.housekeeping = housekeeping
        self.checkout = checkout
        self.report = TrialReport(seed)
        self._stop = threading.Event()
        self._prune = threading.Lock()  # the user's own git commit and `git gc --prune=now` take turns
        self._user_commits: list[str] = []
        self._checked_out = False

    def git(self, *args: str, cwd: Path | None = None, check: bool = False) -> subprocess.CompletedProcess:
        result = subprocess.run(["git", *args], cwd=cwd or self.repo, capture_output=True, text=True, env=ENV)
        if check and result.returncode != 0:
            raise RuntimeError(f"git {' '.join(args)}: {result.stderr}")
        return result

    # -- the trial ----------------------------------------------------------------------------
    def run(self) -> TrialReport:
        start = time.monotonic()
        self.repo.mkdir(parents=True)
        self.git("init", "-q", "-b", "main", check=True)
        (self.repo / "train.py").write_text("print('train')\n")
        self.git("add", "train.py", check=True)
        self.git("commit", "-q", "-m", "init", check=True)
        env = {**ENV, **WRITER_ENV}
        # The branch exists before the faults start (the user checks it out).
        subprocess.run([sys.executable, "-m", "gitexp", "init"], cwd=self.repo, env=env, check=True,
                       capture_output=True)
        until = time.time() + self.duration
        writers = {}
        for i, role in enumerate(("threads", "long", "dirs")):
            acks = self.path / f"acks-{role}.jsonl"
            writers[role] = (subprocess.Popen(
                [sys.executable, "-c", WRITER, role, str(self.seed * 100 + i), str(until), str(acks)],
                cwd=self.repo, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True), acks)
        helpers = []
        if self.housekeeping:
            helpers.append(threading.Thread(target=self._housekeeper, daemon=True))
        if self.checkout:
            helpers.append(threading.Thread(target=self._user, daemon=True))
        if self.kills:
            helpers.append(threading.Thread(target=self._killer, args=([w[0] for w in writers.values()],),
                                            daemon=True))
        for t in helpers:
            t.start()
        stderr = {}
        for role, (proc, _acks) in writers.items():
            try:
                _, stderr[role] = proc.communicate(timeout=self.duration + 60)
            except subprocess.TimeoutExpired:
                proc.kill()
                _, stderr[role] = proc.communicate()
                self.report.problems.append(f"writer {role} hung past the trial (killed)")
        self._stop.set()
        for t in helpers:
            t.join(timeout=120)
        for role, text in stderr.items():
            (self.path / f"stderr-{role}.txt").write_text(text or "")
        for role, (proc, _acks) in writers.items():
            if proc.returncode not in (0, -signal.SIGKILL):
                self.report.problems.append(f"writer {role} exited {proc.returncode}: {stderr[role][-2000:]}")
        self._verify([acks for _, acks in writers.values()], env)
        self.report.seconds = time.monotonic() - start
        return self.report

    # -- faults ---------------------------------------------------------------------------------
    def _housekeeper(self) -> None:
        rnd = random.Random(self.seed + 1)
        while not self._stop.is_set():
            args = rnd.choice(HOUSEKEEPING)
            if "--prune=now" in args:
                with self._prune:
                    self.git(*args)
            else:
                self.git(*args)
            self.report.counts[f"git {args[0]}"] += 1

    def _user(self) -> None:
        rnd = random.Random(self.seed + 2)
        wt = self.path / "look"
        n = 0
        while not self._stop.wait(rnd.uniform(0.1, 0.4)):
            if self.git("worktree", "add", "-q", "--force", str(wt), "gitexp").returncode != 0:
                continue
            self._checked_out = True
            self.report.counts["user checkouts"] += 1
            (wt / "NOTES.md").write_text(f"note {n}\n")
            with self._prune:
                self.git("add", "NOTES.md", cwd=wt)
                if self.git("commit", "-q", "-m", f"user's note {n}", cwd=wt).returncode == 0:
                    self._user_commits.append(self.git("rev-parse", "HEAD", cwd=wt).stdout.strip())
                    self.report.counts["user commits"] += 1
            n += 1
            self._stop.wait(rnd.uniform(0.05, 0.3))
            self.git("switch", "-q", "--detach", cwd=wt)
            self.git("worktree", "remove", "--force", str(wt))
            self._checked_out = False
        self.git("worktree", "prune")

    def _killer(self, procs: list[subprocess.Popen]) -> None:
        rnd = random.Random(self.seed + 3)
        for _ in range(self.kills):
            if self._stop.wait(rnd.uniform(0.3, self.duration)):
                return
            alive = [p for p in procs if p.poll() is None]
            if alive:
                rnd.choice(alive).send_signal(signal.SIGKILL)
                self.report.counts["SIGKILLs"] += 1

    # -- checking ---------------------------------------------------------------------------------
    def _verify(self, ack_files: list[Path], env: dict) -> None:
        report = self.report
        acks = []
        for path in ack_files:
            if not path.exists():
                continue
            for line in path.read_text().splitlines():
                try:
                    acks.append(json.loads(line))
                except ValueError:
                    pass  # a line torn by SIGKILL was never acknowledged
        for rec in acks:
            if rec[0] == "err":
                report.errors[rec[2]] += 1
                if rec[2] not in EXPECTED_ERRORS:
                    report.problems.append(f"writer error in {rec[1]}: {rec[2]}: {rec[3]}")
            elif rec[0] in ("run", "metric", "artifact", "end", "param"):
                report.counts[f"acked {rec[0]}s"] += 1
        # A writer killed inside a ref update leaves a lock file; doctor removes it once it is
        # older than any live holder could make it (10 s): let that time pass.
        for lock in self._locks():
            then = time.time() - 60
            os.utime(lock, (then, then))
            report.counts["stale locks aged for doctor"] += 1
        doctor = subprocess.run([sys.executable, "-m", "gitexp", "doctor"], cwd=self.repo, env=env,
                                capture_output=True, text=True, timeout=300)
        if doctor.returncode != 0:
            report.problems.append(f"gitexp doctor failed: {doctor.stdout[-2000:]}{doctor.stderr[-2000:]}")
        problems = fsck(self.repo)
        if problems:
            report.problems.append(f"git fsck --strict: {problems[:2000]}")
        verify = subprocess.run([sys.executable, "-c", VERIFY], cwd=self.repo, env=env, input=json.dumps(acks),
                                capture_output=True, text=True, timeout=300)
        if verify.returncode != 0:
            report.problems.append(f"verification crashed: {verify.stderr[-3000:]}")
        else:
            result = json.loads(verify.stdout.strip().splitlines()[-1])
            report.problems += result["problems"]
            report.counts["runs checked"] = result["runs"]
        tip = self.git("rev-parse", "gitexp").stdout.strip()
        for commit in self._user_commits:
            if self.git("merge-base", "--is-ancestor", commit, tip).returncode != 0:
                report.problems.append(f"the user's commit {commit[:12]} is not in the branch's history")
        left = self.git("for-each-ref", "--format=%(refname)", "refs/gitexp/").stdout.split()
        if left:
            report.problems.append(f"refs left behind: {left}")
        journal = self.repo / ".git" / "gitexp" / "journal"
        # A journal-to-be (".new.*") of a writer killed before its header was linked into place
        # holds no op; recovery removes it once a minute old (journal.sweep_temporaries).
        left_journals = [n for n in os.listdir(journal) if not n.startswith(".new.")] if journal.exists() else []
        if left_journals:
            report.problems.append(f"journals left behind: {left_journals}; doctor said: {doctor.stdout[-1500:]}")
        keeps = [p.name for p in (self.repo / ".git" / "objects" / "pack").glob("*.keep")]
        if keeps:
            report.problems.append(f"keep files left behind: {keeps}")
        if self._locks():
            report.problems.append(f"lock files left behind: {self._locks()}")

    def _locks(self) -> list[str]:
        git_dir = self.repo / ".git"
        found = [str(p) for p in (git_dir / "refs").rglob("*.lock")]
        return found + [str(p) for p in (git_dir / "packed-refs.lock",) if p.exists()]
