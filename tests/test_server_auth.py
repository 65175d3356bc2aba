"""`gitexp server --auth` (issue 20): users, tokens, permissions and commits that say who.

A real server on loopback (ServerProcess), the real mlflow client with MLFLOW_TRACKING_USERNAME/
PASSWORD or MLFLOW_TRACKING_TOKEN, real git to read the commit authors. No mocks.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from .server_process import ServedProcess, ServerProcess, free_port

mlflow = pytest.importorskip("mlflow")
from mlflow import MlflowClient  # noqa: E402
from mlflow.exceptions import MlflowException  # noqa: E402


def _auth_client_class() -> type:
    """MLflow's own AuthServiceClient. Its package's __init__ is the Flask auth app, which needs
    Flask-WTF (mlflow[auth], not installed here); the client's modules need none of it, so the
    package is registered with its real directory and the real client module is imported."""
    import importlib
    import types

    import mlflow.server

    try:
        return importlib.import_module("mlflow.server.auth.client").AuthServiceClient  # type: ignore[no-any-return]
    except ImportError:
        package = types.ModuleType("mlflow.server.auth")
        package.__path__ = [os.path.join(os.path.dirname(mlflow.server.__file__), "auth")]
        sys.modules["mlflow.server.auth"] = package
        return importlib.import_module("mlflow.server.auth.client").AuthServiceClient  # type: ignore[no-any-return]


AuthServiceClient = _auth_client_class()

PASSWORDS = {"root": "root-pw-1", "ada": "ada-pw-1", "bob": "bob-pw-1", "rita": "rita-pw-1"}


def gitexp(repo: Path, *args: str, stdin: str | None = None) -> str:
    done = subprocess.run([sys.executable, "-m", "gitexp", "--repo", str(repo), *args], input=stdin,
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr + done.stdout
    return done.stdout


@pytest.fixture(scope="module")
def served(tmp_path_factory):
    repo = tmp_path_factory.mktemp("auth") / "repo"
    subprocess.run(["git", "init", "-q", str(repo)], check=True)
    for name, password in PASSWORDS.items():
        extra = ["--admin"] if name == "root" else []
        gitexp(repo, "users", "add", name, "--password-stdin", "--email", f"{name}@example.com", *extra,
               stdin=password + "\n")
    server = ServerProcess(repo, ["--auth", "--no-ui"])
    yield server, repo
    server.stop()


@pytest.fixture()
def as_user(monkeypatch):
    def use(name: str | None, token: str | None = None) -> None:
        for key in ("MLFLOW_TRACKING_USERNAME", "MLFLOW_TRACKING_PASSWORD", "MLFLOW_TRACKING_TOKEN"):
            monkeypatch.delenv(key, raising=False)
        if name:
            monkeypatch.setenv("MLFLOW_TRACKING_USERNAME", name)
            monkeypatch.setenv("MLFLOW_TRACKING_PASSWORD", PASSWORDS[name])
        if token:
            monkeypatch.setenv("MLFLOW_TRACKING_TOKEN", token)
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "0")
    return use


def authors_of(repo: Path, path: str) -> set[str]:
    out = subprocess.run(["git", "log", "--format=%an <%ae>|%cn", "gitexp", "--", path], cwd=repo,
                         capture_output=True, text=True, check=True).stdout
    return {line.split("|")[0] for line in out.splitlines()}


def test_users_file_is_outside_the_branch_and_hashed(served):
    _, repo = served
    path = repo / ".git" / "gitexp" / "auth" / "users.json"
    text = path.read_text()
    assert oct(path.stat().st_mode & 0o777) == "0o600"
    for password in PASSWORDS.values():
        assert password not in text
    assert json.loads(text)["users"]["ada"]["password"].startswith("scrypt$")
    assert "users.json" not in subprocess.run(["git", "ls-tree", "-r", "--name-only", "gitexp"], cwd=repo,
                                              capture_output=True, text=True).stdout
    listed = gitexp(repo, "users", "list")
    assert "root\tadmin" in listed and "ada\tuser" in listed


def test_no_credentials_and_wrong_password_are_401(served):
    server, _ = served
    assert httpx.get(server.url + "/health").status_code == 200
    bare = httpx.get(server.url + "/api/2.0/mlflow/experiments/get", params={"experiment_id": "0"})
    assert bare.status_code == 401 and bare.headers["www-authenticate"].startswith("Basic")
    assert bare.json()["error_code"] == "UNAUTHENTICATED"
    wrong = httpx.get(server.url + "/api/2.0/mlflow/experiments/get", params={"experiment_id": "0"},
                      auth=("ada", "nope"))
    assert wrong.status_code == 401 and "nope" not in wrong.text
    ok = httpx.get(server.url + "/api/2.0/mlflow/experiments/get", params={"experiment_id": "0"},
                   auth=("ada", PASSWORDS["ada"]))
    assert ok.status_code == 200
    assert "nope" not in server.output()
    assert "failed login" in server.output() and "'ada'" in server.output()


def test_mlflow_client_without_credentials_fails(served, as_user):
    server, _ = served
    as_user(None)
    with pytest.raises(MlflowException) as info:
        MlflowClient(server.url).search_experiments()
    assert "401" in str(info.value) or "UNAUTHENTICATED" in str(info.value)


def test_permissions_and_commit_authors(served, as_user):
    server, repo = served
    client = MlflowClient(server.url)
    # ada creates an experiment (she gets MANAGE) and logs a run: the commit's author is ada.
    as_user("ada")
    eid = client.create_experiment("ada-exp")
    run = client.create_run(eid)
    client.log_param(run.info.run_id, "lr", "0.1")
    client.log_metric(run.info.run_id, "loss", 0.5)
    client.set_terminated(run.info.run_id)
    run_dir = f".tracking/runs/{run.info.run_id[:2]}/{run.info.run_id}"
    assert authors_of(repo, run_dir) == {"ada <ada@example.com>"}
    committer = subprocess.run(["git", "log", "-1", "--format=%cn", "gitexp", "--", run_dir], cwd=repo,
                               capture_output=True, text=True).stdout.strip()
    assert committer != "ada"  # the server's own identity commits
    # rita has the default READ: she reads, but cannot write (403).
    as_user("rita")
    assert client.get_run(run.info.run_id).data.params == {"lr": "0.1"}
    with pytest.raises(MlflowException) as info:
        client.create_run(eid)
    assert info.value.get_http_status_code() == 403
    with pytest.raises(MlflowException) as info:
        client.set_tag(run.info.run_id, "x", "y")
    assert info.value.get_http_status_code() == 403
    # bob cannot grant himself anything; ada (MANAGE) grants bob EDIT with MLflow's auth client.
    as_user("bob")
    with pytest.raises(MlflowException) as info:
        AuthServiceClient(server.url).grant_user_permission("bob", "experiment", eid, "MANAGE")
    assert info.value.get_http_status_code() == 403
    as_user("ada")
    AuthServiceClient(server.url).grant_user_permission("bob", "experiment", eid, "EDIT")
    assert AuthServiceClient(server.url).get_user_permission("bob", "experiment", eid).permission == "EDIT"
    # EDIT can log, but not delete the experiment.
    as_user("bob")
    bob_run = client.create_run(eid)
    client.log_metric(bob_run.info.run_id, "loss", 0.4)
    client.set_terminated(bob_run.info.run_id)
    assert authors_of(repo, f".tracking/runs/{bob_run.info.run_id[:2]}/{bob_run.info.run_id}") == {
        "bob <bob@example.com>"}
    with pytest.raises(MlflowException) as info:
        client.delete_experiment(eid)
    assert info.value.get_http_status_code() == 403
    # NO_PERMISSIONS hides the experiment from searches and reads.
    as_user("ada")
    AuthServiceClient(server.url).grant_user_permission("rita", "experiment", eid, "NO_PERMISSIONS")
    as_user("rita")
    assert eid not in {e.experiment_id for e in client.search_experiments()}
    with pytest.raises(MlflowException) as info:
        client.get_experiment(eid)
    assert info.value.get_http_status_code() == 403
    with pytest.raises(MlflowException) as info:
        client.search_runs([eid])
    assert info.value.get_http_status_code() == 403
    # An admin can do all.
    as_user("root")
    client.set_experiment_tag(eid, "owner", "ada")
    client.delete_experiment(eid)
    assert client.get_experiment(eid).lifecycle_stage == "deleted"
    client.restore_experiment(eid)


def test_registry_changes_name_their_author(served, as_user):
    server, repo = served
    client = MlflowClient(server.url)
    as_user("ada")
    eid = client.create_experiment("models-exp")
    run = client.create_run(eid)
    client.set_terminated(run.info.run_id)
    client.create_registered_model("churn")
    client.create_model_version("churn", f"runs:/{run.info.run_id}/model", run_id=run.info.run_id)
    AuthServiceClient(server.url).grant_user_permission("bob", "registered_model", "churn", "EDIT")
    as_user("rita")
    with pytest.raises(MlflowException) as info:
        client.set_registered_model_alias("churn", "champion", "1")
    assert info.value.get_http_status_code() == 403
    as_user("bob")
    before = subprocess.run(["git", "rev-parse", "gitexp"], cwd=repo, capture_output=True, text=True).stdout.strip()
    client.transition_model_version_stage("churn", "1", "Production")
    client.set_registered_model_alias("churn", "champion", "1")
    log = subprocess.run(["git", "log", "--format=%an|%s", f"{before}..gitexp"], cwd=repo, capture_output=True,
                         text=True, check=True).stdout.splitlines()
    assert len(log) == 2 and all(line.startswith("bob|") for line in log), log
    with pytest.raises(MlflowException) as info:
        client.delete_registered_model("churn")
    assert info.value.get_http_status_code() == 403
    history = gitexp(repo, "models", "history", "churn")
    assert "bob" in history and "ada" in history


def test_token_and_auth_api(served, as_user):
    server, repo = served
    token = gitexp(repo, "users", "token", "ada", "--label", "test").strip()
    assert token.startswith("gxp_") and token not in (repo / ".git/gitexp/auth/users.json").read_text()
    as_user(None, token=token)
    client = MlflowClient(server.url)
    eid = client.create_experiment("by-token")
    run = client.create_run(eid)
    client.set_terminated(run.info.run_id)
    assert authors_of(repo, f".tracking/runs/{run.info.run_id[:2]}/{run.info.run_id}") == {
        "ada <ada@example.com>"}
    bad = httpx.get(server.url + "/api/2.0/mlflow/experiments/search", headers={"Authorization": "Bearer gxp_x"})
    assert bad.status_code == 401
    # MLflow's user API: admins manage users; others cannot.
    as_user("bob")
    with pytest.raises(MlflowException) as info:
        AuthServiceClient(server.url).create_user("eve", "eve-pw")
    assert info.value.get_http_status_code() == 403
    as_user("root")
    auth = AuthServiceClient(server.url)
    assert auth.create_user("carl", "carl-pw").username == "carl"
    assert auth.get_user("carl").is_admin is False
    auth.update_user_admin("carl", True)
    assert auth.get_user("carl").is_admin is True
    auth.update_user_password("carl", "carl-pw-2")
    assert httpx.get(server.url + "/api/2.0/mlflow/experiments/search?max_results=1",
                     auth=("carl", "carl-pw-2")).status_code == 200
    auth.delete_user("carl")
    assert httpx.get(server.url + "/api/2.0/mlflow/experiments/search?max_results=1",
                     auth=("carl", "carl-pw-2")).status_code == 401


def test_failed_logins_are_rate_limited(tmp_path):
    repo = tmp_path / "repo"
    subprocess.run(["git", "init", "-q", str(repo)], check=True)
    gitexp(repo, "users", "add", "ada", "--password-stdin", stdin="pw-ada\n")
    server = ServerProcess(repo, ["--auth", "--no-ui"])
    try:
        url = server.url + "/api/2.0/mlflow/experiments/search?max_results=1"
        codes = [httpx.get(url, auth=("ada", f"guess-{i}")).status_code for i in range(12)]
        assert codes[:10] == [401] * 10 and codes[10:] == [429, 429]
        assert httpx.get(url, auth=("ada", "pw-ada")).status_code == 429  # even the right one, for a while
        assert "guess-" not in server.output()
    finally:
        server.stop()


def test_non_loopback_refuses_to_start_without_users(tmp_path):
    repo = tmp_path / "repo"
    subprocess.run(["git", "init", "-q", str(repo)], check=True)
    done = subprocess.run([sys.executable, "-m", "gitexp", "--repo", str(repo), "server", "--host", "0.0.0.0",
                           "--port", "0"], capture_output=True, text=True, timeout=60)
    assert done.returncode != 0 and "gitexp users add" in done.stderr


def test_tls(tmp_path, as_user):
    key, cert = tmp_path / "key.pem", tmp_path / "cert.pem"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", str(key), "-out",
                    str(cert), "-days", "1", "-subj", "/CN=127.0.0.1", "-addext", "subjectAltName=IP:127.0.0.1"],
                   check=True, capture_output=True)
    repo = tmp_path / "repo"
    subprocess.run(["git", "init", "-q", str(repo)], check=True)
    gitexp(repo, "users", "add", "ada", "--password-stdin", stdin=PASSWORDS["ada"] + "\n")
    port = free_port()
    server = ServedProcess([sys.executable, "-m", "gitexp", "server", "--repo", str(repo), "--port", str(port),
                            "--auth", "--no-ui", "--ssl-keyfile", str(key), "--ssl-certfile", str(cert)],
                           tmp_path, port=port, wait=False)
    url = f"https://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                if httpx.get(url + "/health", verify=str(cert)).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            assert time.monotonic() < deadline and server.proc.poll() is None, server.output()
            time.sleep(0.2)
        assert httpx.get(url + "/api/2.0/mlflow/experiments/search?max_results=1", verify=str(cert)).status_code == 401
        as_user("ada")
        os.environ["MLFLOW_TRACKING_SERVER_CERT_PATH"] = str(cert)
        try:
            assert MlflowClient(url).create_experiment("over-tls")
        finally:
            del os.environ["MLFLOW_TRACKING_SERVER_CERT_PATH"]
        with pytest.raises(httpx.TransportError):
            httpx.get(f"http://127.0.0.1:{port}/health", timeout=5).raise_for_status()
    finally:
        server.stop()


def test_an_exposed_server_without_auth_says_nobody_signed_in(tmp_path, monkeypatch):
    """Beyond loopback with --no-auth the commits are anonymous; on 127.0.0.1 (a person's own
    server) they stay the repository's identity, as the UI's tests check."""
    from tests.conftest import make_repo

    repo = make_repo(tmp_path / "open")
    srv = ServerProcess(repo, ["--host", "0.0.0.0", "--no-auth", "--no-ui"])
    try:
        monkeypatch.setenv("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "0")
        client = MlflowClient(srv.url)
        run = client.create_run("0")
        client.log_param(run.info.run_id, "p", "1")
        client.set_terminated(run.info.run_id)
    finally:
        srv.stop()
    out = subprocess.run(["git", "log", "--format=%an <%ae>|%cn", "gitexp"], cwd=repo, capture_output=True,
                         text=True, check=True).stdout.splitlines()[:-1]  # all but the branch's root commit
    assert out and {line.split("|")[0] for line in out} == {"anonymous (gitexp server) <anonymous@gitexp-server>"}
    assert "anonymous" not in {line.split("|")[1] for line in out}.pop()  # the committer is the server's


def test_pages_list_only_what_the_user_may_read(tmp_path, as_user):
    """The web UI's lists (experiments, runs of all experiments, registered models) leave out what a
    user has NO_PERMISSIONS on; an admin sees everything."""
    repo = tmp_path / "repo"
    subprocess.run(["git", "init", "-q", str(repo)], check=True)
    for name in ("root", "rita"):
        gitexp(repo, "users", "add", name, "--password-stdin", *(["--admin"] if name == "root" else []),
               stdin=PASSWORDS[name] + "\n")
    server = ServerProcess(repo, ["--auth"])
    try:
        as_user("root")
        client = MlflowClient(server.url)
        client.create_experiment("open-exp")
        secret_id = client.create_experiment("secret-exp")
        client.create_run(secret_id, run_name="secret-run")
        client.create_registered_model("open-model")
        client.create_registered_model("secret-model")
        auth = _auth_client_class()(server.url)
        auth.grant_user_permission("rita", "experiment", secret_id, "NO_PERMISSIONS")
        auth.grant_user_permission("rita", "registered_model", "secret-model", "NO_PERMISSIONS")

        def page(user: str, path: str) -> str:
            resp = httpx.get(server.url + path, auth=(user, PASSWORDS[user]), timeout=30)
            assert resp.status_code == 200, (path, resp.status_code, resp.text[:300])
            return resp.text

        for user, sees_secret in (("rita", False), ("root", True)):
            experiments, runs, models = page(user, "/"), page(user, "/runs"), page(user, "/models")
            assert "open-exp" in experiments and "open-model" in models
            assert ("secret-exp" in experiments, "secret-run" in runs, "secret-model" in models) == \
                (sees_secret,) * 3, user
    finally:
        server.stop()


def test_sessions_outlive_a_restart_and_registering_a_run_needs_to_read_it(tmp_path, as_user):
    from gitexp.server import create_app

    repo = tmp_path / "repo"
    subprocess.run(["git", "init", "-q", str(repo)], check=True)
    for name in ("root", "rita"):
        gitexp(repo, "users", "add", name, "--password-stdin", *(["--admin"] if name == "root" else []),
               stdin=PASSWORDS[name] + "\n")
    # Two apps over one users file (a server, then the same server restarted) share the cookie key.
    first, second = create_app(repo, auth=True, ui=False), create_app(repo, auth=True, ui=False)
    cookie = first.state.auth.make_session("rita")
    assert second.state.auth.read_session(cookie)[0] == "rita"
    key_file = repo / ".git" / "gitexp" / "auth" / "session.key"
    assert oct(key_file.stat().st_mode & 0o777) == "0o600"

    server = ServerProcess(repo, ["--auth", "--no-ui"])
    try:
        as_user("root")
        client = MlflowClient(server.url)
        secret = client.create_experiment("secret")
        run = client.create_run(secret)
        client.create_registered_model("ritas-model")
        auth = _auth_client_class()(server.url)
        auth.grant_user_permission("rita", "experiment", secret, "NO_PERMISSIONS")
        auth.grant_user_permission("rita", "registered_model", "ritas-model", "MANAGE")
        as_user("rita")
        with pytest.raises(MlflowException) as info:
            client.create_model_version("ritas-model", f"runs:/{run.info.run_id}/model", run.info.run_id)
        assert info.value.get_http_status_code() == 403
    finally:
        server.stop()


def test_two_people_writing_to_one_open_run_get_their_own_commits(served, as_user):
    server, repo = served
    client = MlflowClient(server.url)
    as_user("ada")
    eid = client.create_experiment("shared-run")
    AuthServiceClient(server.url).grant_user_permission("bob", "experiment", eid, "EDIT")
    run = client.create_run(eid)
    client.log_param(run.info.run_id, "by_ada", "1")
    as_user("bob")
    client.set_tag(run.info.run_id, "reviewed_by", "bob")  # while ada's run is open in the server
    as_user("ada")
    client.log_metric(run.info.run_id, "loss", 0.1)
    client.set_terminated(run.info.run_id)
    path = f".tracking/runs/{run.info.run_id[:2]}/{run.info.run_id}"
    log = subprocess.run(["git", "log", "--format=%H %an", "gitexp", "--", path], cwd=repo, capture_output=True,
                         text=True, check=True).stdout.split()
    by = dict(zip(log[0::2], log[1::2], strict=True))
    bob_commits = [sha for sha, name in by.items() if name == "bob"]
    assert len(bob_commits) == 1, by
    shown = subprocess.run(["git", "show", bob_commits[0], "--", path], cwd=repo, capture_output=True,
                           text=True, check=True).stdout
    assert "reviewed_by" in shown and "by_ada" not in shown and "loss" not in shown
    assert set(by.values()) == {"ada", "bob"}
