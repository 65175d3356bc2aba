"""Load: 20 concurrent clients x 50 runs through one `gitexp server`; afterwards every value is on the branch.

Each client is a thread with its own keep-alive HTTP connection sending the
requests an MLflow client sends (create, log-batch, log-metric, update), raw,
so the test measures the server rather than the client library (the real
mlflow client is exercised in test_server_mlflow.py).  Any failed request
fails the test.  Every run gets params, a metric history, a tag and an end
status; the runs of half the clients are ended FAILED.  The check reads the
repository directly, not through the server.
"""

from __future__ import annotations

import http.client
import json
import time
from concurrent.futures import ThreadPoolExecutor

import fastapi  # noqa: F401  (a dev dependency: missing, the test fails loudly)

import gitexp
from tests.conftest import make_repo, reset_gitexp
from tests.server_process import ServerProcess

CLIENTS = 20
RUNS_PER_CLIENT = 50
STEPS = 5


class Connection:
    def __init__(self, port: int):
        self.conn = http.client.HTTPConnection("127.0.0.1", port, timeout=120)

    def post(self, path: str, body: dict) -> dict:
        self.conn.request("POST", "/api/2.0/mlflow" + path, json.dumps(body), {"Content-Type": "application/json"})
        resp = self.conn.getresponse()
        data = resp.read()
        assert resp.status == 200, (path, resp.status, data[:500])
        return json.loads(data)


def test_twenty_clients_fifty_runs_each_lose_nothing(tmp_path):
    srv = ServerProcess(make_repo(tmp_path / "served"), extra_args=["--log-level", "warning"],
                        env={"GITEXP_CHECKPOINT_INTERVAL": "5"})
    try:
        exp_id = Connection(srv.port).post("/experiments/create", {"name": "load"})["experiment_id"]

        def work(c: int) -> list[str]:
            http = Connection(srv.port)
            ids = []
            for r in range(RUNS_PER_CLIENT):
                run_id = http.post("/runs/create", {
                    "experiment_id": exp_id, "run_name": f"c{c}-r{r}", "start_time": int(time.time() * 1000),
                    "tags": [{"key": "client", "value": str(c)}]})["run"]["info"]["run_id"]
                now = int(time.time() * 1000)
                http.post("/runs/log-batch", {
                    "run_id": run_id,
                    "metrics": [{"key": "loss", "value": c + r / 100 + s, "timestamp": now, "step": s}
                                for s in range(STEPS)],
                    "params": [{"key": "client", "value": str(c)}, {"key": "index", "value": str(r)}],
                    "tags": [{"key": "pair", "value": f"{c}:{r}"}]})
                http.post("/runs/log-metric", {"run_id": run_id, "key": "final", "value": c * 1000 + r,
                                               "timestamp": now})
                http.post("/runs/update", {"run_id": run_id, "status": "FAILED" if c % 2 else "FINISHED",
                                           "end_time": now})
                ids.append(run_id)
            return ids

        started = time.perf_counter()
        with ThreadPoolExecutor(CLIENTS) as pool:
            per_client = list(pool.map(work, range(CLIENTS)))
        elapsed = time.perf_counter() - started
        print(f"\n{CLIENTS * RUNS_PER_CLIENT} runs ({CLIENTS * RUNS_PER_CLIENT * 4} requests) "
              f"from {CLIENTS} clients in {elapsed:.1f} s")

        # Ended runs are committed before runs/update answers: read the branch directly, server still up.
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
    finally:
        log = srv.stop()
    assert "Traceback" not in log and "ERROR" not in log, log[-5000:]
