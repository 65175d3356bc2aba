"""Tracking servers side by side: `gitexp server` (a git repository) and `mlflow server` (sqlite).

    python benchmarks/bench_server.py [--runs 400] [--clients 20] [--quick]

Both servers speak MLflow's REST API, so one load generator drives both with
byte-identical requests: a thread per client, each with its own keep-alive
HTTP connection, logging runs the way an MLflow client does (create the run,
one log-batch of 5 metric steps + 2 params + 1 tag, one log-metric, end the
run).  Each server runs in its own process on a free loopback port, with its
own scratch repository or database; MLflow with its default workers (4),
gitexp with its one process.  After the load both servers must return every
run (checked with runs/search).  Lower is better in every row.
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from _harness import ENV, Row, report, scratch_repo

API = "/api/2.0/mlflow"


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class Server:
    def __init__(self, kind: str):
        self.kind = kind
        self.port = _free_port()
        self.dir = tempfile.mkdtemp(prefix=f"bench-server-{kind}-")
        if kind == "gitexp":
            repo = scratch_repo()
            self.cleanup = [repo]
            args = [sys.executable, "-m", "gitexp", "server", "--repo", repo, "--port", str(self.port),
                    "--log-level", "warning"]
        else:
            self.cleanup = []
            args = [sys.executable, "-m", "mlflow", "server", "--backend-store-uri",
                    f"sqlite:///{self.dir}/mlflow.db", "--artifacts-destination", f"{self.dir}/artifacts",
                    "--host", "127.0.0.1", "--port", str(self.port)]
        self.log = open(os.path.join(self.dir, "server.log"), "wb")
        self.proc = subprocess.Popen(args, cwd=self.dir, env=ENV, stdout=self.log, stderr=subprocess.STDOUT,
                                     start_new_session=True)
        started = time.perf_counter()
        while True:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{self.port}/health", timeout=2) as resp:
                    if resp.status == 200:
                        break
            except OSError:
                pass
            if self.proc.poll() is not None or time.perf_counter() - started > 180:
                raise RuntimeError(f"{kind} server did not start; see {self.log.name}")
            time.sleep(0.2)
        self.startup = time.perf_counter() - started

    def stop(self) -> None:
        os.killpg(self.proc.pid, signal.SIGINT)
        try:
            self.proc.wait(timeout=60)
        except subprocess.TimeoutExpired:
            os.killpg(self.proc.pid, signal.SIGKILL)
        self.log.close()
        for path in [self.dir, *self.cleanup]:
            shutil.rmtree(path, ignore_errors=True)


class Connection:
    def __init__(self, port: int):
        self.port = port
        self.conn = http.client.HTTPConnection("127.0.0.1", port, timeout=300)

    def call(self, method: str, path: str, body: dict | None = None, raw: bytes | None = None) -> dict:
        data = raw if raw is not None else (json.dumps(body).encode() if body is not None else None)
        try:
            self.conn.request(method, path, body=data, headers={"Content-Type": "application/json"})
            resp = self.conn.getresponse()
        except (BrokenPipeError, ConnectionResetError, http.client.RemoteDisconnected):
            # The server closed an idle keep-alive connection: reconnect once.
            self.conn.close()
            self.conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=300)
            self.conn.request(method, path, body=data, headers={"Content-Type": "application/json"})
            resp = self.conn.getresponse()
        payload = resp.read()
        if resp.status != 200:
            raise RuntimeError(f"{method} {path}: HTTP {resp.status} {payload[:300]!r}")
        return json.loads(payload) if payload else {}


def log_runs(port: int, experiment_id: str, clients: int, runs_per_client: int) -> float:
    """Seconds for `clients` threads to log `runs_per_client` runs each."""
    errors: list[BaseException] = []

    def work(c: int) -> None:
        try:
            http = Connection(port)
            for r in range(runs_per_client):
                run = http.call("POST", f"{API}/runs/create", {
                    "experiment_id": experiment_id, "start_time": int(time.time() * 1000),
                    "tags": [{"key": "mlflow.runName", "value": f"c{c}-r{r}"}]})["run"]["info"]["run_id"]
                now = int(time.time() * 1000)
                http.call("POST", f"{API}/runs/log-batch", {
                    "run_id": run, "metrics": [{"key": "loss", "value": 1 / (s + 1), "timestamp": now, "step": s}
                                               for s in range(5)],
                    "params": [{"key": "client", "value": str(c)}, {"key": "index", "value": str(r)}],
                    "tags": [{"key": "kind", "value": "bench"}]})
                http.call("POST", f"{API}/runs/log-metric", {"run_id": run, "key": "final", "value": r,
                                                             "timestamp": now, "step": 0})
                http.call("POST", f"{API}/runs/update", {"run_id": run, "status": "FINISHED", "end_time": now})
        except BaseException as exc:  # reported after the threads finish
            errors.append(exc)

    threads = [threading.Thread(target=work, args=(c,)) for c in range(clients)]
    started = time.perf_counter()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    if errors:
        raise errors[0]
    return time.perf_counter() - started


def measure(kind: str, runs: int, clients: int, metric_calls: int) -> dict:
    server = Server(kind)
    try:
        http = Connection(server.port)
        out: dict[str, float] = {"startup": server.startup}
        seq = http.call("POST", f"{API}/experiments/create", {"name": "sequential"})["experiment_id"]
        out["sequential"] = log_runs(server.port, seq, 1, runs // 4)
        conc = http.call("POST", f"{API}/experiments/create", {"name": "concurrent"})["experiment_id"]
        out["concurrent"] = log_runs(server.port, conc, clients, runs // clients)
        run = http.call("POST", f"{API}/runs/create", {"experiment_id": seq, "start_time": 0})["run"]["info"]["run_id"]
        started = time.perf_counter()
        for i in range(metric_calls):
            http.call("POST", f"{API}/runs/log-metric", {"run_id": run, "key": "m", "value": i, "timestamp": i,
                                                         "step": i})
        out["log_metric"] = (time.perf_counter() - started) / metric_calls
        body = {"experiment_ids": [conc], "max_results": 100, "order_by": ["metrics.final DESC"],
                "filter": "params.client = '3'"}
        http.call("POST", f"{API}/runs/search", body)
        started = time.perf_counter()
        for _ in range(20):
            found = http.call("POST", f"{API}/runs/search", body)
        out["search"] = (time.perf_counter() - started) / 20
        assert len(found["runs"]) == min(100, runs // clients), (kind, len(found["runs"]))
        # Every run of the concurrent phase is there.
        total, token = 0, None
        while True:
            page = http.call("POST", f"{API}/runs/search", {"experiment_ids": [conc], "max_results": 1000,
                                                           **({"page_token": token} if token else {})})
            total += len(page.get("runs", []))
            token = page.get("next_page_token")
            if not token:
                break
        assert total == (runs // clients) * clients, (kind, total)
        run = http.call("POST", f"{API}/runs/create", {"experiment_id": seq, "start_time": 0})["run"]["info"]
        root = run["artifact_uri"].replace("mlflow-artifacts:/", "/api/2.0/mlflow-artifacts/artifacts/")
        payload = os.urandom(64 * 1024)
        started = time.perf_counter()
        for i in range(50):
            http.call("PUT", f"{root}/files/f{i}.bin", raw=payload)
        out["upload"] = (time.perf_counter() - started) / 50
        return out
    finally:
        server.stop()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=400, help="runs in the concurrent phase (1/4 sequentially)")
    parser.add_argument("--clients", type=int, default=20)
    parser.add_argument("--quick", action="store_true", help="a smoke run: 80 runs, 10 clients")
    args = parser.parse_args()
    if args.quick:
        args.runs, args.clients = 80, 10
    metric_calls = 200
    results = {kind: measure(kind, args.runs, args.clients, metric_calls) for kind in ("gitexp", "mlflow")}
    g, m = results["gitexp"], results["mlflow"]
    seq = args.runs // 4
    conc = (args.runs // args.clients) * args.clients
    report(f"Tracking server: {conc} runs from {args.clients} concurrent clients over REST", [
        Row(f"{seq} runs, one client (4 requests per run)", g["sequential"], m["sequential"], "s"),
        Row(f"{conc} runs, {args.clients} clients at once", g["concurrent"], m["concurrent"], "s"),
        Row("log-metric request, one client", g["log_metric"] * 1e3, m["log_metric"] * 1e3, "ms"),
        Row(f"runs/search (filter + order_by over {conc} runs, one page)", g["search"] * 1e3, m["search"] * 1e3, "ms"),
        Row("artifact upload through the proxy (64 KiB)", g["upload"] * 1e3, m["upload"] * 1e3, "ms"),
        Row("server start until /health answers", g["startup"], m["startup"], "s"),
    ])
    print(f"runs/s with {args.clients} clients: gitexp {conc / g['concurrent']:.0f}, "
          f"MLflow {conc / m['concurrent']:.0f}")


if __name__ == "__main__":
    main()
