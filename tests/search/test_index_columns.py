"""The index's columns: built in worker processes or here, applied changes, rewritten columns,
and other processes' changes -- every path answers exactly as a cold rebuild in one process."""

from __future__ import annotations

import math
import os

import pytest

import gitexp
from gitexp.entities import Metric, Param, RunTag, ViewType
from gitexp.search import _build, _index, _refresh

from ..conftest import run_python
from .test_index import INDEX, SRC_ENV, _names

FILTERS = [
    ("", None),
    ("metrics.m < 0.5", ["metrics.m DESC"]),
    ("metrics.m != 0.25", ["metrics.m ASC", "params.p DESC"]),
    ("params.p = 'b' AND tags.t != 'x'", ["attributes.run_name"]),
    ("params.p ILIKE 'B%'", ["params.p"]),
    ("params.p LIKE 'a%'", ["tags.t DESC"]),
    ("params.p != 'é' AND metrics.n >= 2", ["metrics.n DESC"]),
    ("dataset.name IN ('train-set', 'x') AND dataset.context NOT IN ('train')", None),
    ("attributes.run_id NOT IN ('0123', 'abc') AND attributes.run_name LIKE 'r-1%'", ["attributes.run_name DESC"]),
    ("tags.t IS NULL", ["attributes.end_time DESC"]),
    ("attributes.status != 'RUNNING' AND attributes.start_time > 1700000010000", ["attributes.start_time"]),
    ("dataset.name = 'train-set'", None),
    ("dataset.context = 'eval'", ["metrics.m"]),
    ("attributes.artifact_uri LIKE 'runs:/0%'", ["attributes.artifact_uri DESC"]),
]


def _fill(client, n: int = 60) -> tuple[str, str]:
    import random

    from gitexp.entities import Dataset, DatasetInput, InputTag

    rng = random.Random(3)
    exp, other = client.create_experiment("cols"), client.create_experiment("cols-2")
    for i in range(n):
        run = client.create_run(exp if i % 4 else other, start_time=1_700_000_000_000 + rng.randint(0, 30) * 1000,
                                run_name=f"r-{i}" if i % 7 else None)
        value = rng.choice([0.25, 0.5, 1.0, -math.inf, math.inf, math.nan, rng.random(), 3])
        metrics = [Metric("m", value, 1, rng.randint(0, 3))] if i % 5 else []
        metrics += [Metric("n", float(i % 4), 2, 0)]
        params = [Param("p", rng.choice(["a", "b", "B", "é", "10", "9", "a b"]))] if i % 3 else []
        tags = [RunTag("t", rng.choice(["x", "y", "ü"]))] if i % 2 else []
        client.log_batch(run.info.run_id, metrics=metrics, params=params, tags=tags)
        if i % 6 == 1:
            client.log_inputs(run.info.run_id, [DatasetInput(
                Dataset("train-set" if i % 12 == 1 else "other", "d1", "local", "file:///x"),
                [InputTag("mlflow.data.context", rng.choice(["train", "eval"]))])])
        if rng.random() < 0.8:
            client.set_terminated(run.info.run_id, end_time=1_700_000_100_000 + i)
        if i % 9 == 4:
            client.set_tag(run.info.run_id, "t", "later")  # an event on a finished run
        if rng.random() < 0.1:
            client.delete_run(run.info.run_id)
    client.flush()
    return exp, other


def _answers(client, experiments: list[str]) -> list:
    out = []
    for flt, order in FILTERS:
        for view in (ViewType.ACTIVE_ONLY, ViewType.ALL, ViewType.DELETED_ONLY):
            runs = client.search_runs(experiments, flt, view, 1000, order)
            out.append([(r.info.run_id, r.info.lifecycle_stage, r.info.status, r.info.end_time,
                         {k: ("nan" if v != v else v) for k, v in r.data.metrics.items()}, r.data.params,
                         r.data.tags, [(d.dataset.name, [(t.key, t.value) for t in d.tags])
                                       for d in r.inputs.dataset_inputs]) for r in runs])
            page = client.search_runs(experiments, flt, view, 3, order)
            out.append([r.info.run_id for r in page])
    frame = client.search_runs_frame(experiments, run_view_type=ViewType.ALL)
    out.append(sorted(frame.columns))
    out.append(frame.astype(str).values.tolist())
    out.append(client._store and gitexp.search.run_keys(client._store, experiments, ViewType.ALL))
    return out


def _rebuild(monkeypatch, **env: str) -> None:
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    gitexp.client.forget_stores()
    for suffix in ("", "-wal", "-shm"):
        if os.path.exists(INDEX + suffix):
            os.unlink(INDEX + suffix)


def test_a_build_in_worker_processes_equals_one_in_this_process(repo, monkeypatch):
    client = gitexp.Client()
    experiments = list(_fill(client))
    _rebuild(monkeypatch, GITEXP_INDEX_WORKERS="0")
    expected = _answers(gitexp.Client(), experiments)
    monkeypatch.setattr(_build, "PARALLEL_MIN_RUNS", 1)
    monkeypatch.setattr(_build, "SLICE_RUNS", 7)  # 9 slices for this process and two workers
    _rebuild(monkeypatch, GITEXP_INDEX_WORKERS="2")
    folded_here = []
    original = _build.fold_slice

    def counting(branch, items):
        folded_here.append(len(items))
        return original(branch, items)

    monkeypatch.setattr(_build, "fold_slice", counting)
    assert _answers(gitexp.Client(), experiments) == expected
    assert 0 < sum(folded_here) < 60  # some slices went to the workers


def test_a_failing_worker_leaves_its_runs_to_this_process(repo, monkeypatch, caplog):
    client = gitexp.Client()
    experiments = list(_fill(client, 30))
    _rebuild(monkeypatch, GITEXP_INDEX_WORKERS="0")
    expected = _answers(gitexp.Client(), experiments)
    monkeypatch.setattr(_build, "PARALLEL_MIN_RUNS", 1)
    monkeypatch.setattr(_build, "SLICE_RUNS", 5)
    monkeypatch.setattr(_build, "_BOOTSTRAP", "import sys; sys.stdin.buffer.read(8); sys.exit(3)")
    _rebuild(monkeypatch, GITEXP_INDEX_WORKERS="2")
    with caplog.at_level("WARNING", logger="gitexp"):
        assert _answers(gitexp.Client(), experiments) == expected
    assert "worker process failed" in caplog.text


def _cold_answers(store, experiments):
    """The same questions asked of an index rebuilt from scratch (another file)."""
    cold = _index.RunIndex(store)
    cold.path = os.path.join(".git", "gitexp", "cold-check.sqlite")
    cold.rebuild()
    saved = store.search_index  # the store's own index, for a moment the cold one
    store.search_index = cold
    try:
        return _answers(gitexp.Client(), experiments)
    finally:
        cold.close()
        store.search_index = saved


@pytest.mark.parametrize("compact_after", [1, 3, 1000])
def test_changes_and_rewritten_columns_answer_as_a_cold_rebuild(repo, monkeypatch, compact_after):
    monkeypatch.setattr(_refresh, "COMPACT_AFTER", compact_after)
    client = gitexp.Client()
    experiments = list(_fill(client, 20))
    client.search_runs(experiments)  # a cold build: columns written
    runs = client.search_runs(experiments, run_view_type=ViewType.ALL, max_results=None)
    steps = [
        lambda: client.set_tag(runs[0].info.run_id, "t", "y"),
        lambda: client.log_batch(runs[1].info.run_id, metrics=[Metric("m", 0.125, 5, 9)],
                                 params=[Param("brand-new", "v")]),
        lambda: client.delete_run(runs[2].info.run_id),
        lambda: client.delete_tag(runs[3].info.run_id, "t") if "t" in runs[3].data.tags else None,
        lambda: client.create_run(experiments[0], run_name="late"),
        lambda: client.delete_experiment(experiments[1]),
        lambda: client.restore_run(runs[2].info.run_id),
        lambda: client.restore_experiment(experiments[1]),
    ]
    for step in steps:
        step()
        client.flush()
        gitexp.search.search_runs(client._store, experiments)  # refresh (and maybe rewrite the columns)
        assert _answers(client, experiments) == _cold_answers(client._store, experiments)


def test_a_cached_column_follows_what_another_process_changed(repo, monkeypatch):
    client = gitexp.Client()
    exp = client.create_experiment("e")
    for i in range(5):
        run = client.create_run(exp, run_name=f"run-{i}", start_time=1_700_000_000_000 + i)
        client.log_batch(run.info.run_id, metrics=[Metric("rmse", float(i), 1, 0)], params=[Param("a", "x")])
        client.set_terminated(run.info.run_id)
    assert _names(client.search_runs(exp, "params.a = 'x'", order_by=["metrics.rmse DESC"])) == \
        ["run-4", "run-3", "run-2", "run-1", "run-0"]
    # Another process logs, searches (refreshing the shared index, rewriting its columns), edits.
    code = (
        "import gitexp\n"
        "from gitexp.search import _refresh\n"
        "_refresh.COMPACT_AFTER = 1\n"
        "c = gitexp.Client()\n"
        f"r = c.create_run('{exp}', run_name='theirs', start_time=1_800_000_000_000)\n"
        "c.log_param(r.info.run_id, 'a', 'x'); c.log_metric(r.info.run_id, 'rmse', 2.5)\n"
        "c.set_terminated(r.info.run_id)\n"
        f"assert len(c.search_runs('{exp}', \"params.a = 'x'\")) == 6\n"
        f"first = c.search_runs('{exp}', 'metrics.rmse < 1')[0].info.run_id\n"
        "c.set_tag(first, 'note', 'zero'); c.log_param(first, 'b', 'y')\n"
    )
    result = run_python(code, cwd=repo, env=SRC_ENV)
    assert result.returncode == 0, result.stderr
    assert _names(client.search_runs(exp, "params.a = 'x'", order_by=["metrics.rmse DESC"])) == \
        ["run-4", "run-3", "theirs", "run-2", "run-1", "run-0"]
    assert _names(client.search_runs(exp, "tags.note = 'zero' AND params.b = 'y'")) == ["run-0"]
    # A second change by the other process, without rewriting the columns this time.
    result = run_python(code.replace("COMPACT_AFTER = 1", "COMPACT_AFTER = 1000").replace("'theirs'", "'again'")
                        .replace("== 6", "== 7").replace("2.5", "2.75"), cwd=repo, env=SRC_ENV)
    assert result.returncode == 0, result.stderr
    assert _names(client.search_runs(exp, "params.a = 'x'", order_by=["metrics.rmse DESC"])) == \
        ["run-4", "run-3", "again", "theirs", "run-2", "run-1", "run-0"]


def _three_runs(client) -> str:
    """An experiment "e" with finished runs run-0..run-2, metric m = 0, 1, 2."""
    exp = client.create_experiment("e")
    for i in range(3):
        run = client.create_run(exp, run_name=f"run-{i}")
        client.log_batch(run.info.run_id, metrics=[Metric("m", float(i), 1, 0)])
        client.set_terminated(run.info.run_id)
    return exp


def test_pending_runs_are_laid_over_the_columns_without_changing_them(repo):
    client = gitexp.Client()
    exp = _three_runs(client)
    assert _names(client.search_runs(exp, order_by=["metrics.m DESC"])) == ["run-2", "run-1", "run-0"]
    gitexp.set_experiment("e")
    with gitexp.start_run(run_name="live"):
        gitexp.log_metric("m", 1.5)
        gitexp.log_param("only_here", "yes")
        assert _names(client.search_runs(exp, order_by=["metrics.m DESC"])) == ["run-2", "live", "run-1", "run-0"]
        assert _names(client.search_runs(exp, "params.only_here = 'yes'")) == ["live"]
        frame = client.search_runs_frame(exp)
        assert "params.only_here" in frame.columns and frame["metrics.m"].tolist()[0] == 1.5
        assert gitexp.search.run_keys(client._store, exp)["params"] == ["only_here"]
    gitexp.client.forget_stores()
    fresh = gitexp.Client()
    assert _names(fresh.search_runs(exp, order_by=["metrics.m DESC"])) == ["run-2", "live", "run-1", "run-0"]
    assert _names(client.search_runs(exp, "params.only_here = 'yes'")) == ["live"]


def test_the_first_rows_of_a_partial_sort_equal_the_full_sort():
    import numpy as np
    from hypothesis import given, settings
    from hypothesis import strategies as st

    from gitexp.search._columns import _first_k

    @settings(max_examples=300, deadline=None)
    @given(st.lists(st.tuples(st.integers(0, 2), st.sampled_from([0.0, -0.0, 1.5, -2.0, np.inf, -np.inf]),
                              st.integers(-3, 3)), min_size=1, max_size=60), st.integers(1, 70))
    def check(rows, k):
        keys = [np.array([r[0] for r in rows], dtype=np.int8), np.array([r[1] for r in rows]),
                np.array([r[2] for r in rows], dtype=np.int64), np.arange(len(rows))[::-1].copy()]
        full = np.lexsort(keys[::-1])[:k]
        chosen = _first_k(keys, k)
        partial = chosen[np.lexsort([key[chosen] for key in keys][::-1])][:k]
        assert partial.tolist() == full.tolist()

    check()


def test_a_damaged_column_is_rebuilt(repo):
    import sqlite3

    client = gitexp.Client()
    exp = _three_runs(client)
    expected = _names(client.search_runs(exp, "metrics.m > 0", order_by=["metrics.m"]))
    gitexp.client.forget_stores()
    with sqlite3.connect(INDEX) as conn:
        conn.execute("UPDATE columns SET data = x'00010203' WHERE kind = 'm'")
    assert _names(gitexp.Client().search_runs(exp, "metrics.m > 0", order_by=["metrics.m"])) == expected
