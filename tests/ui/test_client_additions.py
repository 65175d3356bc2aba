"""The Client methods the UI reads through: branch history, commit details, code diffs of runs,
run keys and artifact bytes -- on real repositories."""

from __future__ import annotations

import pytest

import gitexp
from gitexp.entities import ViewType
from gitexp.exceptions import InvalidParameterValue, ResourceDoesNotExist

from ..conftest import git


def _run(name: str, **metrics) -> str:
    with gitexp.start_run(run_name=name) as run:
        for k, v in metrics.items():
            gitexp.log_metric(k, v)
    return run.info.run_id


def test_history_lists_commits_newest_first_with_who_and_what(client, repo):
    exp = client.create_experiment("hist")
    gitexp.set_experiment("hist")
    first = _run("first", rmse=1.0)
    second = _run("second", rmse=0.5)
    client.create_registered_model("m")
    page = client.get_tracking_history(max_results=10)
    subjects = [c.subject for c in page]
    assert subjects[0] == "registry 'm': create model"
    assert subjects[1].startswith(f"run {second[:8]} (second)")
    assert page[0].changes[0].kind == "model" and page[0].changes[0].name == "m"
    run_changes = [c for c in page[1].changes if c.kind == "run"]
    assert [(c.key, c.status) for c in run_changes] == [(second, "added")]
    assert any(c.kind == "experiment" and c.key == exp for c in page[3].changes + page[4].changes)
    assert all(c.author_name == "Test Author" and c.author_email == "author@example.com" for c in page[:3])
    assert page[0].timestamp >= page[1].timestamp
    assert page.token is None  # everything fits: start commit, experiment, 2 runs, model
    assert page[-1].subject == "gitexp: start the tracking branch"
    assert first in {c.key for p in page for c in p.changes}


def test_history_pages_stay_stable_while_commits_land(client, repo):
    gitexp.set_experiment("paging")
    ids = [_run(f"r{i}") for i in range(5)]
    page1 = client.get_tracking_history(max_results=2)
    newer = _run("lands-between-pages")
    page2 = client.get_tracking_history(max_results=2, page_token=page1.token)
    seen = [c.changes[0].key for c in list(page1) + list(page2)]
    assert seen == [ids[4], ids[3], ids[2], ids[1]]
    assert newer not in seen
    with pytest.raises(InvalidParameterValue, match="page token"):
        client.get_tracking_history(page_token="not-a-token")


def test_history_follows_one_run_experiment_or_model(client, repo):
    gitexp.set_experiment("follow")
    run_id = _run("followed", rmse=1.0)
    _run("other")
    client.set_tag(run_id, "reviewed", "yes")
    client.flush(run_id)
    followed = client.get_tracking_history(run_id=run_id)
    assert [c.subject.split(":")[0] for c in followed] == [f"run {run_id[:8]}", f"run {run_id[:8]} (followed)"]
    client.create_registered_model("followed-model")
    client.update_registered_model("followed-model", description="d")
    assert len(client.get_tracking_history(model_name="followed-model")) == 2
    exp_id = client.get_experiment_by_name("follow").experiment_id
    assert [c.subject for c in client.get_tracking_history(experiment_id=exp_id)] == ["experiment 'follow': create"]
    with pytest.raises(InvalidParameterValue, match="not a run id"):
        client.get_tracking_history(run_id="../../etc")
    with pytest.raises(ResourceDoesNotExist, match="no-such-model"):
        client.get_tracking_history(model_name="no-such-model")


def test_commit_detail_has_file_diffs(client, repo):
    gitexp.set_experiment("detail")
    with gitexp.start_run(run_name="with-files") as run:
        gitexp.log_param("alpha", 0.5)
        gitexp.log_text("hello\n", "notes.txt")
        gitexp.log_text(bytes(range(256)).decode("latin-1"), "blob.bin")
    commit = client.get_tracking_history(max_results=1)[0].commit
    detail = client.get_tracking_commit(commit[:10])
    assert detail.commit.commit == commit
    files = {f.path.rsplit("/", 1)[-1]: f for f in detail.files}
    assert files["params.yaml"].status == "A" and "+alpha: \"0.5\"" in files["params.yaml"].patch
    assert files["notes.txt"].patch.endswith("+hello\n")
    assert files["blob.bin"].patch is None and files["blob.bin"].note == "binary file"
    assert [c.key for c in detail.commit.changes] == [run.info.run_id]
    git("commit", "--allow-empty", "-q", "-m", "not tracking", cwd=repo)
    head = git("rev-parse", "HEAD", cwd=repo).strip()
    with pytest.raises(ResourceDoesNotExist, match="not on the tracking branch"):
        client.get_tracking_commit(head)
    with pytest.raises(InvalidParameterValue, match="not a commit id"):
        client.get_tracking_commit("HEAD~1; rm -rf /")
    with pytest.raises(ResourceDoesNotExist):
        client.get_tracking_commit("deadbeefdeadbeef")


def test_diff_run_code_compares_exact_trees_including_uncommitted_changes(client, repo):
    gitexp.set_experiment("code")
    clean = _run("clean")
    (repo / "train.py").write_text("print('training')\nlr = 0.1\n")
    dirty_a = _run("dirty-a")
    (repo / "train.py").write_text("print('training')\nlr = 0.2\n")
    dirty_b = _run("dirty-b")
    diff = client.diff_run_code(dirty_a, dirty_b)
    assert diff.problems == (None, None) and not diff.identical
    assert "-lr = 0.1\n+lr = 0.2" in diff.patch and "train.py" in diff.stat
    assert client.diff_run_code(dirty_b, dirty_b).identical
    from_clean = client.diff_run_code(clean, dirty_a)
    assert "+lr = 0.1" in from_clean.patch
    assert diff.commits[0] == diff.commits[1] == git("rev-parse", "HEAD", cwd=repo).strip()


def test_diff_run_code_says_why_a_run_has_no_code(client, repo, monkeypatch):
    gitexp.set_experiment("nocode")
    with_code = _run("with-code")
    monkeypatch.setenv("GITEXP_CAPTURE_CODE", "0")
    without = _run("without-code")
    diff = client.diff_run_code(with_code, without)
    assert diff.problems[0] is None and "no recorded code version" in diff.problems[1]
    assert diff.patch == "" and not diff.identical


def test_run_keys_come_from_the_index_per_experiment(client, repo):
    a = client.create_experiment("keys-a")
    b = client.create_experiment("keys-b")
    r1 = client.create_run(a, tags={"team": "x"})
    client.log_param(r1.info.run_id, "alpha", 1)
    client.log_metric(r1.info.run_id, "rmse", 1.0)
    r2 = client.create_run(b)
    client.log_metric(r2.info.run_id, "auc", 0.5)
    gone = client.create_run(a)
    client.log_metric(gone.info.run_id, "only_deleted", 1.0)
    client.delete_run(gone.info.run_id)
    for r in (r1, r2, gone):
        client.set_terminated(r.info.run_id)
    keys = client.get_run_keys([a])
    assert keys["metrics"] == ["rmse"] and keys["params"] == ["alpha"]
    assert "team" in keys["tags"] and "mlflow.runName" in keys["tags"]
    assert client.get_run_keys([a], ViewType.ALL)["metrics"] == ["only_deleted", "rmse"]
    assert client.get_run_keys([a, b])["metrics"] == ["auc", "rmse"]
    assert client.get_run_keys([b])["params"] == []


def test_read_artifact_returns_bytes_and_never_leaves_the_run(client, repo):
    run = client.create_run("0")
    client.log_text(run.info.run_id, "content", "dir/file.txt")
    assert client.read_artifact(run.info.run_id, "dir/file.txt") == b"content"
    with pytest.raises(ResourceDoesNotExist):
        client.read_artifact(run.info.run_id, "dir/missing.txt")
    for bad in ("../run.yaml", "/etc/passwd", "dir/../../params.yaml"):
        with pytest.raises(InvalidParameterValue):
            client.read_artifact(run.info.run_id, bad)
    with pytest.raises(InvalidParameterValue, match="directory"):
        client.read_artifact(run.info.run_id, "dir")
