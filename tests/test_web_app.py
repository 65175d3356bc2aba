"""One web app behind `gitexp ui` and `gitexp server`: the same options, one Host policy
(DNS rebinding refused on every bind address), and a busy port is one clear error."""

from __future__ import annotations

import socket
import subprocess
import sys
import time

import fastapi  # noqa: F401  (a dev dependency: missing, the test fails loudly)
import httpx
import pytest

from tests.conftest import make_repo
from tests.server_process import free_port


def _start(args: list[str], port: int) -> subprocess.Popen:
    proc = subprocess.Popen([sys.executable, "-m", "gitexp", *args, "--port", str(port)],
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    deadline = time.monotonic() + 60
    while True:
        try:
            if httpx.get(f"http://127.0.0.1:{port}/health", timeout=5).status_code == 200:
                return proc
        except httpx.TransportError:
            pass
        if proc.poll() is not None or time.monotonic() > deadline:
            proc.kill()
            raise AssertionError(f"{args} did not start: {proc.communicate()[0].decode(errors='replace')}")
        time.sleep(0.1)


def _stop(proc: subprocess.Popen) -> str:
    proc.send_signal(2)
    try:
        out = proc.communicate(timeout=30)[0]
    except subprocess.TimeoutExpired:
        proc.kill()
        out = proc.communicate()[0]
    return out.decode(errors="replace")


def _status(port: int, host: str, path: str = "/") -> int:
    return httpx.get(f"http://127.0.0.1:{port}{path}", headers={"Host": host}, timeout=30).status_code


@pytest.mark.parametrize("command", [
    ["ui", "--allowed-hosts", "box.lan,other.lan"],
    ["ui", "--allowed-host", "box.lan"],                  # ui's old spelling, still accepted
    ["server", "--allowed-hosts", "box.lan"],
    ["server", "--allowed-hosts", "x.lan", "--allowed-hosts", "box.lan"],
])
def test_dns_rebinding_is_refused_on_a_wildcard_bind(tmp_path, command):
    """Bound to 0.0.0.0, a page of evil.example that resolves to this machine sends
    `Host: evil.example`: 403 from both commands; a configured name and localhost get 200."""
    repo = make_repo(tmp_path / "repo")
    port = free_port()
    proc = _start([command[0], "--repo", str(repo), "--host", "0.0.0.0", "--no-auth", *command[1:]], port)
    try:
        assert _status(port, f"evil.example:{port}") == 403
        assert _status(port, "evil.example") == 403
        body = httpx.get(f"http://127.0.0.1:{port}/", headers={"Host": f"evil.example:{port}"}).json()
        assert body["error_code"] == "PERMISSION_DENIED" and "--allowed-hosts evil.example" in body["message"]
        assert _status(port, f"box.lan:{port}") == 200
        assert _status(port, f"localhost:{port}") == 200
        assert _status(port, f"127.0.0.1:{port}") == 200
        assert _status(port, f"192.168.1.7:{port}") == 200  # an address, not a name: no rebinding
    finally:
        log = _stop(proc)
    assert "Traceback" not in log


def test_ui_and_server_are_one_app_with_different_defaults(tmp_path):
    repo = make_repo(tmp_path / "repo")
    ui_port, server_port = free_port(), free_port()
    ui = _start(["ui", "--repo", str(repo)], ui_port)
    server = _start(["--repo", str(repo), "server"], server_port)
    ui_api = _start(["ui", "-C", str(repo), "--api"], free_port())
    api_port = int(ui_api.args[-1])
    try:
        search = "/api/2.0/mlflow/experiments/search?max_results=5"
        # Both serve the UI; the API is on for `server` and off for `ui` unless --api.
        assert "text/html" in httpx.get(f"http://127.0.0.1:{ui_port}/").headers["content-type"]
        assert "text/html" in httpx.get(f"http://127.0.0.1:{server_port}/").headers["content-type"]
        assert httpx.get(f"http://127.0.0.1:{server_port}{search}").status_code == 200
        assert httpx.get(f"http://127.0.0.1:{api_port}{search}").status_code == 200
        missing = httpx.get(f"http://127.0.0.1:{ui_port}{search}")
        assert missing.status_code == 404 and missing.json()["error_code"] == "ENDPOINT_NOT_FOUND"
        # One error map: a missing run is 404 on a page and in the API alike.
        assert httpx.get(f"http://127.0.0.1:{ui_port}/runs/{'0' * 32}").status_code == 404
        assert httpx.get(f"http://127.0.0.1:{server_port}/api/2.0/mlflow/runs/get",
                         params={"run_id": "0" * 32}).status_code == 404
    finally:
        logs = [_stop(p) for p in (ui, server, ui_api)]
    assert not any("Traceback" in log for log in logs), logs


def _occupied_port():
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    sock.listen(1)
    return sock, sock.getsockname()[1]


@pytest.mark.parametrize("command", [["ui"], ["server"], ["ui", "--host", "0.0.0.0"]])
def test_a_busy_port_is_one_clear_error(tmp_path, command):
    repo = make_repo(tmp_path / "repo")
    sock, port = _occupied_port()
    try:
        result = subprocess.run([sys.executable, "-m", "gitexp", *command, "--repo", str(repo),
                                 "--port", str(port)], capture_output=True, text=True, timeout=120)
    finally:
        sock.close()
    assert result.returncode == 1
    assert f"Port {port} on " in result.stderr and "already in use" in result.stderr
    assert "--port" in result.stderr
    assert "Traceback" not in result.stderr and "Errno" not in result.stderr


def test_demo_checks_its_port_before_training(tmp_path):
    sock, port = _occupied_port()
    start = time.monotonic()
    try:
        result = subprocess.run([sys.executable, "-m", "gitexp", "demo", str(tmp_path / "demo"), "--port", str(port)],
                                capture_output=True, text=True, timeout=300)
    finally:
        sock.close()
    assert result.returncode == 1
    assert f"Port {port} on 127.0.0.1 is already in use" in result.stderr
    assert "make demo PORT=" in result.stderr
    assert "python train.py" not in result.stdout  # nothing was trained
    assert not (tmp_path / "demo").exists()
    assert time.monotonic() - start < 60


def test_make_demo_takes_a_port():
    from pathlib import Path

    root = Path(__file__).resolve().parents[1]
    out = subprocess.run(["make", "-n", "demo", "PORT=8123", "VENV=/nonexistent-venv"], cwd=root,
                         capture_output=True, text=True).stdout
    assert "gitexp demo --port 8123" in out


def test_unknown_paths_and_errors_are_json_everywhere(tmp_path):
    """The UI-only app answers unknown paths with the API's JSON error, without naming an
    /openapi.json it does not serve."""
    repo = make_repo(tmp_path / "repo")
    port = free_port()
    proc = _start(["ui", "--repo", str(repo)], port)
    try:
        response = httpx.get(f"http://127.0.0.1:{port}/no/such/page")
        assert response.status_code == 404
        assert response.json()["error_code"] == "ENDPOINT_NOT_FOUND" and "openapi" not in response.text
        assert httpx.get(f"http://127.0.0.1:{port}/openapi.json").status_code == 404
    finally:
        _stop(proc)


def test_nothing_to_serve_is_an_error(tmp_path):
    from click.testing import CliRunner

    from gitexp.cli import main

    repo = make_repo(tmp_path / "repo")
    result = CliRunner().invoke(main, ["ui", "--repo", str(repo), "--no-ui", "--port", "0"])
    assert result.exit_code == 1 and "Nothing to serve" in result.output


def test_mlflow_s_backend_store_uri_names_the_repository(tmp_path):
    """`mlflow ui --backend-store-uri sqlite:///mlflow.db` (the tutorials' line) serves the
    repository around mlflow.db's directory."""
    repo = make_repo(tmp_path / "repo")
    port = free_port()
    proc = subprocess.Popen([sys.executable, "-m", "gitexp", "ui", "--backend-store-uri", "sqlite:///mlflow.db",
                             "--port", str(port)], cwd=repo, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                if httpx.get(f"http://127.0.0.1:{port}/", timeout=5).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            assert proc.poll() is None and time.monotonic() < deadline, proc.communicate()[0]
            time.sleep(0.1)
    finally:
        log = _stop(proc)
    assert str(repo) in log
