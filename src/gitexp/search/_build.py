"""Folding many runs into index rows and columns, in this process or in worker processes.

A cold build of the search index folds every run of the branch: read its tree and
small files (``TrackingBranch.read_run_trees``), parse them, and turn the state
into a ``runs`` row and column values.  That is CPU-bound Python, so with many
runs it is split over worker processes (``python -m gitexp.search._build``), one
per core up to four, each with its own ``git cat-file``; the process that owns
the index only inserts what they send.  Workers get contiguous slices of the
runs (in run id order, so row ids stay in that order) a few thousand at a time,
and a slice a worker has not taken yet goes to whichever finishes first.

Messages on the pipes are length-prefixed ``marshal`` (lists, dicts, strings,
numbers and bytes only): the same interpreter runs on both ends.
"""

from __future__ import annotations

import gc
import logging
import marshal
import os
import struct
import subprocess
import sys
import threading
import time
from array import array
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

from .._git import pipe
from ._records import _DATASET_KEYS, ATTR, ATTR_NAMES, DATASET, METRIC, PARAM, TAG, _dataset_values, doc_of, record_of

if TYPE_CHECKING:
    from ..store.branch import TrackingBranch

_log = logging.getLogger("gitexp")
_LENGTH = struct.Struct("<Q")
PARALLEL_MIN_RUNS = 3000  # below this, starting interpreters costs more than it saves
SLICE_RUNS = 1000
_TRACE = bool(os.environ.get("GITEXP_INDEX_TRACE"))

# A slice of runs to fold: [(rid, run_id, bucket, tree), ...]
Item = tuple[Any, ...]


# -- one slice: runs rows and column pieces ----------------------------------------------------------------
def _pack(kind: str, key: str, rids: array[Any], values: list[Any]) -> tuple[Any, ...]:
    """(rids bytes, float64/int64 bytes or (int32 codes bytes, [distinct strings])) for marshal."""
    if kind == METRIC:
        return rids.tobytes(), array("d", values).tobytes()
    if kind == ATTR and key in ("start_time", "end_time"):
        return rids.tobytes(), array("q", values).tobytes()
    index: dict[Any, int] = {}
    setdefault = index.setdefault
    codes = array("i", [setdefault(v, len(index)) for v in values])
    return rids.tobytes(), (codes.tobytes(), list(index))


def fold_slice(branch: TrackingBranch,
               items: list[Item]) -> tuple[list[tuple[Any, ...]], dict[tuple[str, str], tuple[Any, ...]]]:
    """(runs rows without seq, column pieces {(kind, key): packed}) for a slice of runs, in row
    id order, folded by the branch's own fold."""
    rows: list[tuple[Any, ...]] = []
    attrs: list[tuple[array[Any], list[Any]]] = [(array("i"), []) for _ in ATTR_NAMES]
    keyed: dict[str, dict[str, tuple[array[Any], list[Any]]]] = {METRIC: {}, PARAM: {}, TAG: {}, DATASET: {}}
    metrics, params, tags, datasets = keyed[METRIC], keyed[PARAM], keyed[TAG], keyed[DATASET]
    states = dict(branch.read_run_trees({run_id: tree for _rid, run_id, _bucket, tree in items},
                                        chunk=250))
    for rid, run_id, bucket, tree in items:  # row id order
        record = record_of(states.pop(run_id))
        rows.append((rid, run_id, bucket, tree) + record[1:8] + (doc_of(record),))
        for attr, value in zip(attrs, record[:8], strict=False):
            if value is not None:
                attr[0].append(rid)
                attr[1].append(value)
        for group, values in ((metrics, record[8]), (params, record[9]), (tags, record[10])):
            for key, value in values.items():
                slot = group.get(key)
                if slot is None:
                    slot = group[key] = (array("i"), [])
                slot[0].append(rid)
                slot[1].append(value)
        if record[11]:
            for key in _DATASET_KEYS:
                for value in _dataset_values(record[11], key):
                    if value is not None:
                        slot = datasets.get(key)
                        if slot is None:
                            slot = datasets[key] = (array("i"), [])
                        slot[0].append(rid)
                        slot[1].append(value)
    pieces = {}
    for name, (rids, values) in zip(ATTR_NAMES, attrs, strict=True):
        if rids:
            pieces[(ATTR, name)] = _pack(ATTR, name, rids, values)
    for kind, group in keyed.items():
        for key, (rids, values) in group.items():
            if kind == METRIC:
                values = [point[2] for point in values]
            pieces[(kind, key)] = _pack(kind, key, rids, values)
    return rows, pieces


# -- in this process or in workers ----------------------------------------------------------------------
def worker_count(runs: int) -> int:
    """Worker processes for folding `runs` runs besides this one (0: fold here only).

    GITEXP_INDEX_WORKERS sets the number (0 turns workers off); by default one per
    core, at most four.  This process folds too: while it waits for git or for a
    worker's answer, the others keep the cores busy.
    """
    raw = os.environ.get("GITEXP_INDEX_WORKERS")
    if raw is not None:
        try:
            wanted = int(raw)
        except ValueError:
            wanted = 0
    else:
        wanted = min(4, os.cpu_count() or 1)
    if runs < PARALLEL_MIN_RUNS or wanted < 1 or not sys.executable:
        return 0
    return min(wanted, max(1, runs // SLICE_RUNS - 1))


def fold_all(branch: TrackingBranch, items: list[Item],
             workers: Workers | None = None
             ) -> Iterator[tuple[int, list[tuple[Any, ...]], dict[tuple[str, str], tuple[Any, ...]]]]:
    """(slice number, rows, pieces) for every slice of `items`, in any order.  `workers`:
    processes started earlier (the caller closes them); else started here if worth it."""
    slices = [items[i:i + SLICE_RUNS] for i in range(0, len(items), SLICE_RUNS)]
    own = workers is None
    if own:
        workers = Workers.start(branch, len(items))
    try:
        if workers is not None and len(slices) > 1:
            yield from _fold_in_workers(branch, slices, workers)
            return
        for number, part in enumerate(slices):
            rows, pieces = fold_slice(branch, part)
            yield number, rows, pieces
    finally:
        if own and workers is not None:
            workers.close()


class Workers:
    """Worker processes for one build, started as early as the caller knows it will need them
    (an interpreter takes ~0.1 s to start and import the store)."""

    def __init__(self, branch: TrackingBranch, count: int) -> None:
        repo = branch.repo
        package_dir = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
        setup = {"git_dir": repo.git_dir, "common_dir": repo.common_dir, "path": repo.path,
                 "work_tree": repo.work_tree or "", "config": dict(repo.config), "branch": repo.branch_name}
        self.procs: list[subprocess.Popen[bytes]] = []
        self.failures: list[str] = []
        for _ in range(count):
            try:
                proc = _start_worker([sys.executable, "-c", _BOOTSTRAP, package_dir], repo.common_dir)
                _send(proc.stdin, setup)
            except OSError as exc:
                self.failures.append(f"{type(exc).__name__}: {exc}")
                break
            self.procs.append(proc)

    @classmethod
    def start(cls, branch: TrackingBranch, runs: int) -> Workers | None:
        count = worker_count(runs)
        return cls(branch, count) if count else None

    def close(self) -> None:
        if self.failures:
            _log.warning("gitexp: a search-index worker process failed (%s); its runs were folded in "
                         "this process", self.failures[0])
        for proc in self.procs:
            try:
                pipe(proc.stdin).close()
            except OSError:
                pass
        for proc in self.procs:
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
            try:
                pipe(proc.stdout).close()
            except OSError:
                pass
        self.procs = []


def _start_worker(args: list[str], cwd: str) -> subprocess.Popen[bytes]:
    # A slice's answer (~0.7 MB for 1,000 runs) fits a 1 MiB pipe: the worker goes on to its
    # next slice while this process is busy folding, instead of waiting for it to read.
    try:
        return subprocess.Popen(args, stdin=subprocess.PIPE, stdout=subprocess.PIPE, cwd=cwd, pipesize=1 << 20)
    except PermissionError:  # over the per-user limit on pipe buffers
        return subprocess.Popen(args, stdin=subprocess.PIPE, stdout=subprocess.PIPE, cwd=cwd)


def _send(stream: Any, obj: Any) -> None:
    data = marshal.dumps(obj)
    stream.write(_LENGTH.pack(len(data)) + data)
    stream.flush()


def _receive(stream: Any) -> Any:
    head = stream.read(_LENGTH.size)
    if len(head) < _LENGTH.size:
        raise EOFError("the other end closed the pipe")
    (size,) = _LENGTH.unpack(head)
    data = stream.read(size)
    if len(data) < size:
        raise EOFError("the other end closed the pipe")
    return marshal.loads(data)


def _fold_in_workers(branch: TrackingBranch, slices: list[list[Item]],
                     workers: Workers
                     ) -> Iterator[tuple[int, list[tuple[Any, ...]], dict[tuple[str, str], tuple[Any, ...]]]]:
    """Fold the slices here and in the worker processes, whichever is free takes the next.

    A worker that fails (cannot start, crashes, reports an error) hands its slices
    back and this process folds them: a build never depends on the workers.
    """
    todo = list(range(len(slices)))
    results: list[Any] = []
    cond = threading.Condition()
    failures = workers.failures

    def take() -> int | None:
        with cond:
            return todo.pop(0) if todo else None

    def run(proc: subprocess.Popen[bytes]) -> None:
        mine: list[int] = []
        try:
            for _ in range(2):  # one to fold, one waiting, so the pipe never runs dry
                number = take()
                if number is None:
                    break
                mine.append(number)
                _send(proc.stdin, (number, slices[number]))
            while mine:
                message = _receive(proc.stdout)
                if message[0] != "ok":
                    raise RuntimeError(str(message[1]).strip().splitlines()[-1])
                _, number, rows, pieces = message
                if _TRACE:
                    print(f"{time.time():.3f} main received {number}", file=sys.stderr)
                with cond:
                    mine.remove(number)
                    results.append((number, rows, pieces))
                    cond.notify_all()
                following = take()
                if following is not None:
                    mine.append(following)
                    _send(proc.stdin, (following, slices[following]))
        except Exception as exc:  # any failure: this process folds the slices instead
            proc.kill()
            with cond:
                failures.append(f"{type(exc).__name__}: {exc}")
                todo[:0] = sorted(mine)
        finally:
            with cond:
                cond.notify_all()

    threads = [threading.Thread(target=run, args=(proc,), daemon=True, name=f"gitexp-index-worker-{i}")
               for i, proc in enumerate(workers.procs)]
    for thread in threads:
        thread.start()
    finished = 0
    while finished < len(slices):
        with cond:
            batch, results[:] = list(results), []
        for number, rows, pieces in batch:
            finished += 1
            yield number, rows, pieces
        if batch:
            continue
        number = take()  # nothing to insert: fold a slice here (first while the workers start)
        if number is not None:
            if _TRACE:
                print(f"{time.time():.3f} main fold {number} start", file=sys.stderr)
            rows, pieces = fold_slice(branch, slices[number])
            if _TRACE:
                print(f"{time.time():.3f} main fold {number} done", file=sys.stderr)
            finished += 1
            yield number, rows, pieces
            continue
        with cond:
            while not results and not todo and any(t.is_alive() for t in threads):
                cond.wait(0.5)
            if not results and not todo and not any(t.is_alive() for t in threads) and finished < len(slices):
                raise RuntimeError("index build workers stopped without finishing their slices")


# -- the worker process ------------------------------------------------------------------------------------
def _worker_main() -> None:
    """Fold the slices this process is sent, each through the branch's own fold."""
    from ..store.branch import TrackingBranch
    from ..store.repo import Repository

    stdin, stdout = sys.stdin.buffer, sys.stdout.buffer
    sys.stdout = sys.stderr  # nothing else may write to the pipe
    if _TRACE:
        print(f"{time.time():.3f} worker {os.getpid()} started", file=sys.stderr)
    setup = _receive(stdin)
    repo = Repository(path=setup["path"], work_tree=setup["work_tree"] or None, git_dir=setup["git_dir"],
                      common_dir=setup["common_dir"], config=setup["config"],
                      branch_name=setup.get("branch"))
    branch = TrackingBranch(repo)
    queue: list[Any] = []
    cond = threading.Condition()
    finished = threading.Event()

    def reader() -> None:
        try:
            while True:
                message = _receive(stdin)
                with cond:
                    queue.append(message)
                    cond.notify_all()
                if message is None:
                    return
        except EOFError:
            with cond:
                queue.append(None)
                cond.notify_all()
        finally:
            finished.set()

    threading.Thread(target=reader, daemon=True).start()
    # A short-lived process that only folds: no cyclic garbage worth collecting, and no
    # later reader for the folded states the branch caches.
    gc.disable()
    try:
        while True:
            with cond:
                while not queue:
                    cond.wait()
                message = queue.pop(0)
            if message is None:
                break
            number, items = message
            if _TRACE:
                print(f"{time.time():.3f} worker {os.getpid()} fold {number} start", file=sys.stderr)
            rows, pieces = fold_slice(branch, items)
            branch._runs.clear()
            if _TRACE:
                print(f"{time.time():.3f} worker {os.getpid()} fold {number} done", file=sys.stderr)
            _send(stdout, ("ok", number, rows, pieces))
            if _TRACE:
                print(f"{time.time():.3f} worker {os.getpid()} sent {number}", file=sys.stderr)
    except BaseException as exc:  # any failure: the parent folds this slice itself
        import traceback

        try:
            _send(stdout, ("error", "".join(traceback.format_exception(exc))[-4000:]))
        except Exception:
            pass
        raise SystemExit(1) from None
    finally:
        branch.close()


# Started as `python -c _BOOTSTRAP <package dir>`: the gitexp package is registered without
# running its __init__ (the whole public API), so a worker imports only the store and this module.
_BOOTSTRAP = (
    "import sys, types\n"
    "pkg = types.ModuleType('gitexp'); pkg.__path__ = [sys.argv[1]]; sys.modules['gitexp'] = pkg\n"
    "from gitexp.search._build import _worker_main\n"
    "_worker_main()\n"
)

if __name__ == "__main__":
    _worker_main()
