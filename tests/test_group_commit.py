"""Group commits: threads of one process that commit at once share a commit, and lose nothing.

The server ends many runs at the same moment; each run's session commits with
group=True, so while one commit is being written the others queue and then go
in together.  A failing change fails only its own caller.
"""

from __future__ import annotations

import threading
import time

import pytest

from gitexp.store.branch import TrackingBranch
from gitexp.store.objects import MODE_BLOB
from gitexp.store.repo import open_repository
from tests.conftest import git


def _commits(repo) -> int:
    return int(git("rev-list", "--count", "gitexp", cwd=repo).strip())


def test_queued_commits_share_one_commit_and_all_land(repo):
    branch = TrackingBranch(open_repository(str(repo)))
    branch.ensure()
    before = _commits(repo)
    first_inside = threading.Event()
    results: dict[int, str] = {}

    def change(i: int):
        def build(_tree):
            if i == 0:
                first_inside.set()
                time.sleep(0.5)  # hold the commit lock while the others queue up
            return {f"group/{i}.txt": (MODE_BLOB, branch.odb.write_blob(f"{i}\n".encode()))}
        return build

    def worker(i: int) -> None:
        if i:
            first_inside.wait()
        results[i] = branch.commit(change(i), f"change {i}", group=True)

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(16)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    tip = branch.tip()
    for i in range(16):
        assert git("show", f"gitexp:group/{i}.txt", cwd=repo) == f"{i}\n"
    assert _commits(repo) - before == 2  # the first alone, then the 15 that queued behind it
    assert set(results.values()) == {results[0], tip} and results[1] == tip
    assert git("log", "-1", "--format=%s", "gitexp", cwd=repo).strip() == "15 changes"


def test_a_failing_change_fails_only_its_caller(repo):
    branch = TrackingBranch(open_repository(str(repo)))
    branch.ensure()
    gate = threading.Event()
    outcome: dict[str, object] = {}

    def slow(_tree):
        gate.set()
        time.sleep(0.3)
        return {"ok/slow.txt": (MODE_BLOB, branch.odb.write_blob(b"slow\n"))}

    def bad(_tree):
        raise ValueError("this change is broken")

    def good(_tree):
        return {"ok/good.txt": (MODE_BLOB, branch.odb.write_blob(b"good\n"))}

    def run(name, build):
        if name != "slow":
            gate.wait()
        try:
            outcome[name] = branch.commit(build, name, group=True)
        except Exception as exc:
            outcome[name] = exc

    threads = [threading.Thread(target=run, args=a) for a in (("slow", slow), ("bad", bad), ("good", good))]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert isinstance(outcome["bad"], ValueError)
    assert isinstance(outcome["good"], str) and outcome["good"] == branch.tip()
    assert git("show", "gitexp:ok/good.txt", cwd=repo) == "good\n"
    assert git("show", "gitexp:ok/slow.txt", cwd=repo) == "slow\n"


@pytest.mark.parametrize("runs", [40])
def test_runs_ended_by_many_threads_are_all_committed(client, runs):
    exp = client.create_experiment("threads")
    ids = [client.create_run(exp).info.run_id for _ in range(runs)]
    barrier = threading.Barrier(runs)

    def end(run_id: str) -> None:
        client.log_metric(run_id, "m", 1.0)
        barrier.wait()
        client.set_terminated(run_id)

    threads = [threading.Thread(target=end, args=(r,)) for r in ids]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    from tests.conftest import reset_gitexp

    reset_gitexp()
    import gitexp

    fresh = gitexp.Client()
    found = {r.info.run_id: r for r in fresh.search_runs([exp], max_results=1000)}
    assert set(found) == set(ids)
    assert all(r.info.status == "FINISHED" and r.data.metrics == {"m": 1.0} for r in found.values())
