"""Load: 20 concurrent clients x 50 runs through one `gitexp server`; afterwards every value is on the branch.

Each client is a thread with its own real MlflowClient (no retries, so any
failed request fails the test).  Every run gets params, a metric history, a
tag and an end status; the runs of half the clients are ended FAILED.  The
check reads the repository directly, not through the server.
"""

from __future__ import annotations

import time
from concurrent.futures import ThreadPoolExecutor

import pytest

mlflow = pytest.importorskip("mlflow")
pytest.importorskip("fastapi")

from mlflow import MlflowClient  # noqa: E402
from mlflow.entities import Metric, Param, RunTag  # noqa: E402

import gitexp  # noqa: E402
from tests.conftest import make_repo, reset_gitexp  # noqa: E402
from tests.server_process import ServerProcess  # noqa: E402

CLIENTS = 20
RUNS_PER_CLIENT = 50
STEPS = 5


def test_twenty_clients_fifty_runs_each_lose_nothing(tmp_path, monkeypatch):
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "0")
    monkeypatch.setenv("MLFLOW_DISABLE_TELEMETRY", "true")
    monkeypatch.setenv("MLFLOW_HTTP_POOL_MAXSIZE", str(CLIENTS))  # one kept-alive connection per client
    srv = ServerProcess(make_repo(tmp_path / "served"), extra_args=["--log-level", "warning"],
                        env={"GITEXP_CHECKPOINT_INTERVAL": "5"})
    try:
        exp_id = MlflowClient(srv.url).create_experiment("load")

        def work(c: int) -> list[str]:
            client = MlflowClient(srv.url)
            ids = []
            for r in range(RUNS_PER_CLIENT):
                run = client.create_run(exp_id, run_name=f"c{c}-r{r}", tags={"client": str(c)})
                run_id = run.info.run_id
                now = int(time.time() * 1000)
                client.log_batch(run_id, metrics=[Metric("loss", c + r / 100 + s, now, s) for s in range(STEPS)],
                                 params=[Param("client", str(c)), Param("index", str(r))],
                                 tags=[RunTag("pair", f"{c}:{r}")])
                client.log_metric(run_id, "final", c * 1000 + r)
                client.set_terminated(run_id, "FAILED" if c % 2 else "FINISHED")
                ids.append(run_id)
            return ids

        started = time.perf_counter()
        with ThreadPoolExecutor(CLIENTS) as pool:
            per_client = list(pool.map(work, range(CLIENTS)))
        elapsed = time.perf_counter() - started
        print(f"\n{CLIENTS * RUNS_PER_CLIENT} runs ({CLIENTS * RUNS_PER_CLIENT * 5} requests) "
              f"from {CLIENTS} clients in {elapsed:.1f} s")
    finally:
        log = srv.stop()
    assert "Traceback" not in log and "ERROR" not in log, log[-5000:]

    # Ended runs are committed before set_terminated returns: read the branch directly.
    reset_gitexp()
    local = gitexp.Client(str(srv.repo))
    frame = local.search_runs_frame([exp_id])
    assert len(frame) == CLIENTS * RUNS_PER_CLIENT
    by_id = frame.set_index("run_id")
    history = local.metric_history_frame(list(frame["run_id"]), "loss")
    points = history.groupby("run_id").size()
    for c, ids in enumerate(per_client):
        assert len(ids) == RUNS_PER_CLIENT
        for r, run_id in enumerate(ids):
            row = by_id.loc[run_id]
            assert row["status"] == ("FAILED" if c % 2 else "FINISHED"), run_id
            assert (row["params.client"], row["params.index"]) == (str(c), str(r))
            assert (row["tags.pair"], row["tags.client"], row["tags.mlflow.runName"]) == (f"{c}:{r}", str(c),
                                                                                            f"c{c}-r{r}")
            assert row["metrics.final"] == c * 1000 + r
            assert row["metrics.loss"] == c + r / 100 + (STEPS - 1)
            assert points[run_id] == STEPS
