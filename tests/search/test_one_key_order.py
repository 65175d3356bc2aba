"""Ordering by one key reads the index in parts (values, NaN, missing); every page must equal
the same slice of the general query's order, whatever the offset and page size."""

from __future__ import annotations

import math
import random

import pytest

from gitexp.entities import Metric, Param, RunTag, ViewType


@pytest.fixture(scope="module")
def store(tmp_path_factory):
    import gitexp
    from gitexp.client import forget_stores

    from ..conftest import make_repo

    path = make_repo(tmp_path_factory.mktemp("order") / "repo")
    forget_stores()
    client = gitexp.Client(str(path))
    rng = random.Random(5)
    exp = client.create_experiment("order")
    other = client.create_experiment("order-2")
    for i in range(45):
        run = client.create_run(exp if i % 5 else other, start_time=1_700_000_000_000 + rng.randint(0, 12) * 1000)
        metrics, params, tags = [], [], []
        roll = rng.random()
        if roll < 0.6:
            metrics.append(Metric("m", rng.choice([0.5, 1.0, -math.inf, math.inf, rng.random()]), 1, 0))
        elif roll < 0.75:
            metrics.append(Metric("m", math.nan, 1, 0))
        if rng.random() < 0.7:
            params.append(Param("p", rng.choice(["a", "b", "B", "10", "9"])))
        if rng.random() < 0.5:
            tags.append(RunTag("t", rng.choice(["x", "y"])))
        client.log_batch(run.info.run_id, metrics=metrics, params=params, tags=tags)
        if rng.random() < 0.8:
            client.set_terminated(run.info.run_id, end_time=1_700_000_100_000 + rng.randint(0, 3) * 1000)
        if rng.random() < 0.1:
            client.delete_run(run.info.run_id)
    client.flush()
    yield client, [exp, other]
    forget_stores()


def _ids(page) -> list[str]:
    return [r.info.run_id for r in page]


@pytest.mark.parametrize("key", ["metrics.m", "params.p", "tags.t", "attributes.end_time", "attributes.run_name",
                                 "attributes.status", "attributes.start_time"])
@pytest.mark.parametrize("direction", ["ASC", "DESC"])
@pytest.mark.parametrize("view", [ViewType.ACTIVE_ONLY, ViewType.ALL])
def test_pages_of_one_key_equal_slices_of_the_general_order(store, key, direction, view):
    client, experiments = store
    for exps in (experiments[:1], experiments):
        # The general query (several keys): start_time DESC as an explicit second key is the
        # same tie-break one key gets, except for start_time itself.
        tie = ["attributes.run_id ASC"] if key == "attributes.start_time" else ["attributes.start_time DESC"]
        expected = _ids(client.search_runs(exps, "", view, 1000, [f"{key} {direction}", *tie]))
        assert len(expected) >= 8
        assert _ids(client.search_runs(exps, "", view, 1000, [f"{key} {direction}"])) == expected
        for size in (1, 3, 7):
            pages, token = [], None
            while True:
                page = client.search_runs(exps, "", view, size, [f"{key} {direction}"], token)
                pages += _ids(page)
                token = page.token
                if not token:
                    break
            assert pages == expected, (size, exps)
        filtered = _ids(client.search_runs(exps, "attributes.status != 'RUNNING'", view, 1000,
                                           [f"{key} {direction}"]))
        assert filtered == [r for r in expected
                            if client.get_run(r).info.status != "RUNNING"]
