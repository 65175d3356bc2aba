"""The derived search index: never stale, disposable, safe with other processes."""

from __future__ import annotations

import json
import os
import sqlite3
import subprocess
import sys
import time

import pytest

import gitexp
from gitexp.entities import Metric, Param, ViewType
from gitexp.exceptions import InvalidParameterValue, ResourceDoesNotExist, SearchError
from tests.conftest import git, make_repo, run_python

INDEX = os.path.join(".git", "gitexp", "index.sqlite")
# Child processes import this gitexp (not another installed copy), however the tests were started.
SRC_ENV = {"PYTHONPATH": os.pathsep.join([os.path.dirname(os.path.dirname(gitexp.__file__)),
                                          os.environ.get("PYTHONPATH", "")])}


def _log_runs(client, experiment_id, n, start=1_700_000_000_000, prefix="run"):
    ids = []
    for i in range(n):
        run = client.create_run(experiment_id, start_time=start + i * 1000, run_name=f"{prefix}-{i}")
        client.log_batch(run.info.run_id, metrics=[Metric("rmse", float(i), 1, 0)],
                         params=[Param("alpha", str(i % 3))])
        client.set_terminated(run.info.run_id)
        ids.append(run.info.run_id)
    return ids


def _names(runs):
    return [r.info.run_name for r in runs]


def _index_rows(repo, sql):
    with sqlite3.connect(os.path.join(repo, INDEX)) as conn:
        return conn.execute(sql).fetchall()


def test_index_lives_in_git_dir_and_deleting_it_loses_nothing(repo, client):
    exp = client.create_experiment("e")
    _log_runs(client, exp, 5)
    client.delete_run(client.search_runs(exp, "params.alpha = '1'")[0].info.run_id)
    queries = [("", None), ("metrics.rmse >= 2", ["metrics.rmse DESC"]), ("params.alpha = '0'", ["run_name"])]
    before = [[(r.info.run_name, r.info.lifecycle_stage) for r in client.search_runs(exp, f, ViewType.ALL, order_by=o)]
              for f, o in queries]
    assert os.path.exists(INDEX)
    assert git("status", "--porcelain", cwd=repo) == ""  # nothing in the working tree
    for suffix in ("", "-wal", "-shm"):
        if os.path.exists(INDEX + suffix):
            os.unlink(INDEX + suffix)
    after = [[(r.info.run_name, r.info.lifecycle_stage) for r in client.search_runs(exp, f, ViewType.ALL, order_by=o)]
             for f, o in queries]
    assert after == before
    assert os.path.exists(INDEX)  # rebuilt


def test_damaged_index_is_rebuilt(repo, client):
    exp = client.create_experiment("e")
    _log_runs(client, exp, 3)
    expected = _names(client.search_runs(exp))
    gitexp.client.forget_stores()
    for suffix in ("-wal", "-shm"):
        if os.path.exists(INDEX + suffix):
            os.unlink(INDEX + suffix)
    with open(INDEX, "wb") as fh:
        fh.write(b"this is not a database" * 100)
    assert _names(gitexp.Client().search_runs(exp)) == expected


def test_a_run_committed_by_another_process_appears_in_the_next_search(repo, client):
    exp = client.create_experiment("e")
    _log_runs(client, exp, 2)
    assert len(client.search_runs(exp)) == 2
    result = run_python(
        "import gitexp\n"
        "gitexp.set_experiment('e')\n"
        "with gitexp.start_run(run_name='from-elsewhere'):\n"
        "    gitexp.log_metric('rmse', 0.25)\n", cwd=repo, env=SRC_ENV)
    assert result.returncode == 0, result.stderr
    found = client.search_runs(exp, "metrics.rmse = 0.25")
    assert _names(found) == ["from-elsewhere"]
    assert found[0].data.metrics == {"rmse": 0.25}


def test_a_pulled_branch_appears_in_the_next_search(repo, client, tmp_path):
    exp = client.create_experiment("shared")
    _log_runs(client, exp, 2, prefix="mine")
    other = make_repo(tmp_path / "colleague")
    git("fetch", "-q", str(repo), "gitexp:gitexp", cwd=other)
    result = run_python(
        "import gitexp\n"
        "gitexp.set_experiment('shared')\n"
        "for i in range(3):\n"
        "    with gitexp.start_run(run_name=f'theirs-{i}'):\n"
        "        gitexp.log_param('alpha', 'x')\n", cwd=other, env=SRC_ENV)
    assert result.returncode == 0, result.stderr
    assert len(client.search_runs(exp)) == 2
    git("fetch", "-q", str(other), "gitexp:gitexp", cwd=repo)  # a fast-forward, as after a pull
    assert sorted(_names(client.search_runs(exp, "params.alpha = 'x'"))) == ["theirs-0", "theirs-1", "theirs-2"]
    assert len(client.search_runs(exp)) == 5


def test_only_changed_runs_are_folded_again(repo, client):
    exp = client.create_experiment("e")
    ids = _log_runs(client, exp, 30)
    client.search_runs(exp)
    branch = client._store.branch
    folded = []
    original = branch.read_run_trees

    def counting(items, *args, **kwargs):
        folded.extend(items)
        return original(items, *args, **kwargs)

    branch.read_run_trees = counting
    try:
        client.set_tag(ids[7], "stage", "best")
        client.flush()
        assert _names(client.search_runs(exp, "tags.stage = 'best'")) == ["run-7"]
        assert folded == [ids[7]]
        folded.clear()
        new = _log_runs(client, exp, 1, start=1_800_000_000_000, prefix="new")
        assert _names(client.search_runs(exp, max_results=1)) == ["new-0"]
        assert folded == new
        folded.clear()
        client.search_runs(exp)
        assert folded == []  # the tip did not move: nothing to do
    finally:
        del branch.read_run_trees
    assert _index_rows(repo, "SELECT count(*) FROM runs") == [(31,)]


def test_pending_changes_of_this_process_are_visible_but_never_stored(repo):
    gitexp.set_experiment("live")
    with gitexp.start_run(run_name="running") as run:
        gitexp.log_metric("rmse", 0.5)
        gitexp.log_param("alpha", "0.1")
        client = gitexp.Client()
        exp = run.info.experiment_id
        found = client.search_runs(exp, "metrics.rmse = 0.5 AND params.alpha = '0.1'")
        assert _names(found) == ["running"]
        assert found[0].info.status == "RUNNING"
        df = gitexp.search_runs(filter_string="metrics.rmse < 1")
        assert list(df["tags.mlflow.runName"]) == ["running"]
        gitexp.log_metric("rmse", 0.75, step=1)
        assert client.search_runs(exp)[0].data.metrics["rmse"] == 0.75
        # The overlay is rolled back: the index file holds only committed runs.
        assert _index_rows(repo, "SELECT count(*) FROM metrics WHERE value = 0.75") == [(0,)]
    found = gitexp.Client().search_runs(exp, "attributes.status = 'FINISHED'")
    assert found[0].data.metrics["rmse"] == 0.75
    assert _index_rows(repo, "SELECT count(*) FROM metrics WHERE value = 0.75") == [(1,)]


def test_lifecycle_changes_are_reflected(repo, client):
    exp = client.create_experiment("e")
    ids = _log_runs(client, exp, 3)
    client.delete_run(ids[0])
    assert _names(client.search_runs(exp, run_view_type=ViewType.DELETED_ONLY)) == ["run-0"]
    client.restore_run(ids[0])
    assert client.search_runs(exp, run_view_type=ViewType.DELETED_ONLY) == []
    client.delete_experiment(exp)
    assert client.search_runs(exp) == []
    assert {r.info.lifecycle_stage for r in client.search_runs(exp, run_view_type=ViewType.ALL)} == {"deleted"}
    client.restore_experiment(exp)
    assert len(client.search_runs(exp)) == 3


def test_an_experiment_deleted_elsewhere_is_deleted_in_the_next_search(repo, client):
    """The index keeps the deleted experiments with the commit they are of: a new process
    on a current index, and this one after another process deleted an experiment, agree
    with the branch."""
    a, b = client.create_experiment("a"), client.create_experiment("b")
    _log_runs(client, a, 2, prefix="a")
    _log_runs(client, b, 1, prefix="b")
    assert len(client.search_runs([a, b])) == 3
    result = run_python(f"import gitexp\ngitexp.Client().delete_experiment('{b}')\n", cwd=repo, env=SRC_ENV)
    assert result.returncode == 0, result.stderr
    assert sorted(_names(client.search_runs([a, b]))) == ["a-0", "a-1"]
    code = ("import gitexp, json\n"
            f"c = gitexp.Client()\nprint(json.dumps([[r.info.run_name, r.info.lifecycle_stage] for r in "
            f"c.search_runs(['{a}', '{b}'], run_view_type=3)]))\n")
    result = run_python(code, cwd=repo, env=SRC_ENV)
    assert result.returncode == 0, result.stderr
    assert sorted(json.loads(result.stdout)) == [["a-0", "active"], ["a-1", "active"], ["b-0", "deleted"]]
    client.restore_experiment(b)
    result = run_python(code, cwd=repo, env=SRC_ENV)
    assert sorted(json.loads(result.stdout)) == [["a-0", "active"], ["a-1", "active"], ["b-0", "active"]]


def test_concurrent_cold_builds_in_several_processes(repo, client):
    exp = client.create_experiment("e")
    _log_runs(client, exp, 40)
    expected = _names(client.search_runs(exp, "metrics.rmse > 10", order_by=["metrics.rmse DESC"]))
    for suffix in ("", "-wal", "-shm"):
        if os.path.exists(INDEX + suffix):
            os.unlink(INDEX + suffix)
    code = (
        "import gitexp, json\n"
        f"runs = gitexp.Client().search_runs('{exp}', 'metrics.rmse > 10', order_by=['metrics.rmse DESC'])\n"
        "print(json.dumps([r.info.run_name for r in runs]))\n"
        "with gitexp.start_run(experiment_id='" + exp + "'):\n"
        "    gitexp.log_metric('rmse', 100)\n"
    )
    procs = [subprocess.Popen([sys.executable, "-c", code], cwd=repo, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                              text=True, env={**os.environ, **SRC_ENV}) for _ in range(3)]
    outs = [p.communicate(timeout=120) for p in procs]
    for p, (out, err) in zip(procs, outs, strict=True):
        assert p.returncode == 0, err
        names = json.loads(out)
        # Each process sees the 29 old runs, plus any 100s another process committed first.
        assert names[len(names) - len(expected):] == expected
    assert len(client.search_runs(exp, "metrics.rmse = 100")) == 3


def test_index_per_branch(repo, monkeypatch):
    gitexp.set_experiment("main-branch")
    with gitexp.start_run(run_name="on-gitexp"):
        pass
    gitexp.client.forget_stores()
    gitexp.fluent._reset()
    monkeypatch.setenv("GITEXP_BRANCH", "other-tracking")
    gitexp.set_experiment("other")
    with gitexp.start_run(run_name="on-other"):
        pass
    assert list(gitexp.search_runs(search_all_experiments=True)["tags.mlflow.runName"]) == ["on-other"]
    assert os.path.exists(os.path.join(".git", "gitexp", "index-other-tracking.sqlite"))


# -- as_of ---------------------------------------------------------------------------------------------------
def test_as_of_commit_and_dates(repo, client):
    exp = client.create_experiment("e")
    first = _log_runs(client, exp, 2, prefix="early")
    client.set_tag(first[0], "verdict", "good")
    client.flush()
    tip_then = git("rev-parse", "gitexp", cwd=repo).strip()
    time.sleep(1.1)  # git dates have one-second resolution
    import datetime as dt

    moment = dt.datetime.now(dt.timezone.utc)
    time.sleep(1.1)
    _log_runs(client, exp, 1, start=1_800_000_000_000, prefix="late")
    client.set_tag(first[0], "verdict", "bad")
    client.delete_run(first[1])
    client.flush()

    assert sorted(_names(client.search_runs(exp))) == ["early-0", "late-0"]
    for as_of in (tip_then, tip_then[:10], moment, moment.isoformat(), moment.astimezone().replace(tzinfo=None)):
        then = client.search_runs(exp, as_of=as_of)
        assert sorted(_names(then)) == ["early-0", "early-1"], as_of
        assert then[1].data.tags["verdict"] == "good"
    assert _names(client.search_runs(exp, "tags.verdict = 'good'", as_of=moment)) == ["early-0"]
    assert _names(client.search_runs(exp, "tags.verdict = 'good'")) == []
    # A whole day (the end of it), a ref expression, and the fluent API.
    today = dt.date.today()
    assert len(client.search_runs(exp, as_of=today)) == 2
    assert len(client.search_runs(exp, as_of=today.isoformat())) == 2
    assert client.search_runs(exp, as_of=today - dt.timedelta(days=400)) == []
    assert len(client.search_runs(exp, as_of="gitexp~3")) == 2
    gitexp.set_experiment("e")
    df = gitexp.search_runs(as_of=tip_then, order_by=["run_name"])
    assert list(df["tags.mlflow.runName"]) == ["early-0", "early-1"]
    # The live index still answers for the tip.
    assert sorted(_names(client.search_runs(exp, run_view_type=ViewType.ALL))) == ["early-0", "early-1", "late-0"]
    tip = git("rev-parse", "gitexp", cwd=repo).strip()
    assert _index_rows(repo, "SELECT value FROM meta WHERE key = 'commit'") == [(tip,)]


@pytest.mark.parametrize("as_of", ["not-a-ref-or-date", "", 12345, object()])
def test_bad_as_of_is_a_clear_error(client, as_of):
    with pytest.raises(InvalidParameterValue, match="as_of"):
        client.search_runs("0", as_of=as_of)


# -- paging and arguments ---------------------------------------------------------------------------------------
def test_page_tokens(repo, client):
    exp = client.create_experiment("e")
    _log_runs(client, exp, 7)
    first = client.search_runs(exp, "metrics.rmse > 0", max_results=4)
    assert len(first) == 4 and first.token
    second = client.search_runs(exp, "metrics.rmse > 0", max_results=4, page_token=first.token)
    assert len(second) == 2 and second.token is None
    with pytest.raises(SearchError, match="different search"):
        client.search_runs(exp, "metrics.rmse > 1", max_results=4, page_token=first.token)
    with pytest.raises(SearchError, match="Invalid page token"):
        client.search_runs(exp, page_token="not base64!")


@pytest.mark.parametrize("max_results", [0, -1, 50001, 2.5, True])
def test_max_results_is_checked(client, max_results):
    with pytest.raises(InvalidParameterValue, match="max_results"):
        client.search_runs("0", max_results=max_results)


def test_max_results_none_and_cap(repo, client):
    exp = client.create_experiment("e")
    _log_runs(client, exp, 3)
    assert len(client.search_runs(exp, max_results=None)) == 3
    assert len(client.search_runs(exp, max_results=50000)) == 3


def test_fluent_search_runs_experiment_selection(repo):
    client = gitexp.Client()
    a, b = client.create_experiment("a"), client.create_experiment("b")
    _log_runs(client, a, 2, prefix="a")
    _log_runs(client, b, 1, prefix="b")
    client.delete_experiment(b)
    gitexp.set_experiment("a")
    assert sorted(gitexp.search_runs()["tags.mlflow.runName"]) == ["a-0", "a-1"]
    assert len(gitexp.search_runs(experiment_names=["a", "b", "missing"], run_view_type=ViewType.ALL)) == 3
    assert len(gitexp.search_runs(search_all_experiments=True, run_view_type=ViewType.ALL)) == 2
    listed = gitexp.search_runs([a], output_format="list", max_results=1)
    assert len(listed) == 1 and listed[0].info.run_name == "a-1"
    with pytest.raises(InvalidParameterValue, match="not both"):
        gitexp.search_runs([a], experiment_names=["a"])
    with pytest.raises(InvalidParameterValue, match="output_format"):
        gitexp.search_runs(output_format="arrow")
    empty = gitexp.search_runs(filter_string="metrics.rmse > 100")
    assert list(empty.columns) == ["run_id", "experiment_id", "status", "artifact_uri", "start_time", "end_time"]
    assert len(empty) == 0


def test_search_experiments_fluent_and_paging(repo):
    for name in ("x1", "x2", "y1"):
        gitexp.create_experiment(name, tags={"group": name[0]})
    assert [e.name for e in gitexp.search_experiments(filter_string="tags.group = 'x'", order_by=["name DESC"])] == \
        ["x2", "x1"]
    page = gitexp.Client().search_experiments(max_results=2, order_by=["name"])
    assert [e.name for e in page] == ["Default", "x1"]
    rest = gitexp.Client().search_experiments(max_results=2, order_by=["name"], page_token=page.token)
    assert [e.name for e in rest] == ["x2", "y1"] and rest.token is None


# -- metric histories ---------------------------------------------------------------------------------------
def test_metric_history_frame(repo):
    gitexp.set_experiment("h")
    ids = []
    for r in range(2):
        with gitexp.start_run() as run:
            for step in range(3):
                gitexp.log_metric("loss", 1.0 / (step + 1 + r), step=step, timestamp=1000 + step)
            gitexp.log_metric("acc", 0.5 + r, step=0, timestamp=5)
            ids.append(run.info.run_id)
    frame = gitexp.metric_history_frame(ids)
    assert list(frame.columns) == ["run_id", "key", "step", "timestamp", "value"]
    assert [str(t) for t in frame.dtypes] [2:] == ["int64", "int64", "float64"]
    assert len(frame) == 8
    assert list(frame[frame.run_id == ids[1]]["key"]) == ["acc", "loss", "loss", "loss"]
    loss0 = frame[(frame.run_id == ids[0]) & (frame.key == "loss")]
    assert list(loss0.step) == [0, 1, 2] and list(loss0.value) == [1.0, 0.5, 1 / 3]
    assert frame.groupby("run_id")["value"].count().to_dict() == {ids[0]: 4, ids[1]: 4}
    only = gitexp.metric_history_frame(gitexp.search_runs(), keys="acc")
    assert set(only.key) == {"acc"} and len(only) == 2
    assert gitexp.metric_history_frame(ids[0], keys=["missing"]).empty
    with pytest.raises(ResourceDoesNotExist):
        gitexp.metric_history_frame(["0" * 32])
    points = gitexp.Client().get_metric_histories(ids[:1], "loss")
    assert [(m.step, m.value, m.run_id) for m in points] == [(0, 1.0, ids[0]), (1, 0.5, ids[0]), (2, 1 / 3, ids[0])]


def test_metric_history_frame_sees_pending_points_and_events(repo):
    gitexp.set_experiment("h")
    with gitexp.start_run() as run:
        gitexp.log_metric("loss", 3.0, step=0)
        gitexp.log_metric("loss", 2.0, step=1)
        assert list(gitexp.metric_history_frame(run.info.run_id)["value"]) == [3.0, 2.0]
    # A resumed run logs through events.
    with gitexp.start_run(run_id=run.info.run_id):
        gitexp.log_metric("loss", 1.0, step=2)
    gitexp.flush()
    gitexp.client.forget_stores()
    assert list(gitexp.metric_history_frame(run.info.run_id)["value"]) == [3.0, 2.0, 1.0]


def test_many_runs_are_folded_in_bulk(repo, client):
    exp = client.create_experiment("bulk")
    ids = _log_runs(client, exp, 40)
    gitexp.client.forget_stores()
    fresh = gitexp.Client()
    frame = fresh.metric_history_frame(ids)
    assert len(frame) == 40 and list(frame.value) == [float(i) for i in range(40)]
    states = dict(fresh._store.branch.read_run_trees(
        {r: fresh._store.branch.run_tree(r) for r in ids}, chunk=16))
    for run_id in ids[::7]:
        assert fresh.get_run(run_id) == fresh._store.to_run(states[run_id])


def test_search_before_anything_was_logged(client):
    assert client.search_runs("0") == []
    assert client.search_runs("0", "metrics.rmse < 1", order_by=["params.a"]) == []
    assert len(client.search_runs_frame("0")) == 0
    assert [e.name for e in client.search_experiments()] == ["Default"]


def test_numbers_beyond_64_bits(repo, client):
    exp = client.create_experiment("e")
    _log_runs(client, exp, 3)
    assert len(client.search_runs(exp, "metrics.rmse < 1" + "0" * 400)) == 3
    assert client.search_runs(exp, "attributes.start_time > 1" + "0" * 30) == []
    assert len(client.search_runs(exp, "attributes.start_time > -1" + "0" * 30)) == 3


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs fork()")
def test_forked_child_searches_with_its_own_connection(repo, client):
    import multiprocessing

    exp = client.create_experiment("e")
    _log_runs(client, exp, 3)
    assert len(client.search_runs(exp)) == 3  # the parent holds an open index connection

    def child(queue):
        try:
            c = gitexp.Client()
            _log_runs(c, exp, 1, start=1_800_000_000_000, prefix="child")
            queue.put(_names(c.search_runs(exp, max_results=2)))
        except Exception as exc:  # reported to the parent
            queue.put(repr(exc))

    ctx = multiprocessing.get_context("fork")
    queue = ctx.Queue()
    proc = ctx.Process(target=child, args=(queue,))
    proc.start()
    result = queue.get(timeout=60)
    proc.join(60)
    assert result == ["child-0", "run-2"]
    assert _names(client.search_runs(exp, max_results=1)) == ["child-0"]


def test_unusable_index_path_falls_back_to_memory(repo, client, caplog):
    exp = client.create_experiment("e")
    _log_runs(client, exp, 3)
    gitexp.client.forget_stores()
    for suffix in ("", "-wal", "-shm"):
        if os.path.exists(INDEX + suffix):
            os.unlink(INDEX + suffix)
    os.makedirs(INDEX)  # a directory where the file should be: SQLite cannot open it
    fresh = gitexp.Client()
    with caplog.at_level("WARNING", logger="gitexp"):
        assert sorted(_names(fresh.search_runs(exp, "metrics.rmse >= 1"))) == ["run-1", "run-2"]
    assert "in memory" in caplog.text
    _log_runs(fresh, exp, 1, start=1_800_000_000_000, prefix="later")
    assert _names(fresh.search_runs(exp, max_results=1)) == ["later-0"]
