"""Large artifacts: an external content-addressed store, pointers on the branch, verified downloads."""

from __future__ import annotations

import hashlib
import os
import subprocess

import pytest

import gitexp
from gitexp.exceptions import InvalidParameterValue, ResourceDoesNotExist, StoreError

from .conftest import git, run_python


def _disk_usage(repo) -> int:
    """Bytes on disk of every object reachable from the tracking branch."""
    out = git("rev-list", "--objects", "--disk-usage", "gitexp", cwd=repo)
    return int(out.strip())


def _sha256(path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        while chunk := fh.read(1 << 20):
            h.update(chunk)
    return h.hexdigest()


def test_a_50mb_file_goes_to_the_store_and_the_branch_grows_under_1kb(repo, tmp_path):
    big = tmp_path / "weights.bin"
    with open(big, "wb") as fh:
        for _ in range(50):
            fh.write(os.urandom(1 << 20))
    client = gitexp.Client()
    run_id = client.create_run("0").info.run_id
    client.log_param(run_id, "alpha", 1)
    client.flush()
    before = _disk_usage(repo)

    client.log_artifact(run_id, str(big), "model")
    client.flush()
    grown = _disk_usage(repo) - before
    assert 0 < grown < 1024, f"the branch grew by {grown} bytes"

    # The branch holds a readable pointer; the bytes are in the default store under .git/gitexp.
    pointer = git("show", f"gitexp:.tracking/runs/{run_id[:2]}/{run_id}/artifacts/model/weights.bin", cwd=repo)
    digest = _sha256(big)
    assert pointer.splitlines()[:3] == ["gitexp-artifact-pointer v1", f"sha256 {digest}", f"size {50 << 20}"]
    stored = repo / ".git" / "gitexp" / "artifacts" / "sha256" / digest[:2] / digest
    assert stored.stat().st_size == 50 << 20
    assert [f.file_size for f in client.list_artifacts(run_id, "model")] == [50 << 20]

    out = client.download_artifacts(run_id, "model/weights.bin", str(tmp_path / "dl"))
    assert _sha256(out) == digest


def test_missing_object_error_names_every_place_looked(repo, tmp_path, monkeypatch):
    store = tmp_path / "team-store"
    git("config", "gitexp.artifactStore", str(store), cwd=repo)
    git("config", "gitexp.artifactThreshold", "1k", cwd=repo)
    from gitexp.client import forget_stores

    forget_stores()
    (tmp_path / "big.bin").write_bytes(b"z" * 5000)
    client = gitexp.Client()
    run_id = client.create_run("0").info.run_id
    client.log_artifact(run_id, str(tmp_path / "big.bin"))
    digest = hashlib.sha256(b"z" * 5000).hexdigest()
    obj = store / "sha256" / digest[:2] / digest
    assert obj.exists()
    assert not (repo / ".git" / "gitexp" / "artifacts").exists()  # the configured store was used

    os.chmod(obj, 0o644)
    obj.write_bytes(b"z" * 4999 + b"y")  # damaged in place
    with pytest.raises(StoreError, match="damaged"):
        client.download_artifacts(run_id, "big.bin", str(tmp_path / "dl"))
    assert not (tmp_path / "dl" / "big.bin").exists()

    obj.unlink()
    monkeypatch.setenv("GITEXP_ARTIFACT_STORE", str(tmp_path / "elsewhere"))
    with pytest.raises(ResourceDoesNotExist) as err:
        client.download_artifacts(run_id, "big.bin", str(tmp_path / "dl"))
    message = err.value.message
    assert digest in message and "big.bin" in message
    for place in (tmp_path / "elsewhere", store, repo / ".git" / "gitexp" / "artifacts"):
        assert str(place / "sha256" / digest[:2] / digest) in message
    assert len(err.value.looked_in) == 3


def test_any_fsspec_url_can_be_the_store(repo, tmp_path, monkeypatch):
    import fsspec

    monkeypatch.setenv("GITEXP_ARTIFACT_STORE", "memory://gitexp-test-bucket/artifacts")
    monkeypatch.setenv("GITEXP_ARTIFACT_THRESHOLD", "2k")
    data = os.urandom(8000)
    client = gitexp.Client()
    run_id = client.create_run("0").info.run_id
    client.log_text(run_id, "small", "small.txt")
    (tmp_path / "blob.bin").write_bytes(data)
    client.log_artifact(run_id, str(tmp_path / "blob.bin"), "data")
    digest = hashlib.sha256(data).hexdigest()
    fs = fsspec.filesystem("memory")
    assert fs.cat(f"/gitexp-test-bucket/artifacts/sha256/{digest[:2]}/{digest}") == data
    assert client._artifacts.read_bytes(run_id, "data/blob.bin") == data
    assert client._artifacts.read_bytes(run_id, "small.txt") == b"small"  # below the threshold: in git
    # The same content is uploaded once.
    client.log_artifact(run_id, str(tmp_path / "blob.bin"), "copy")
    assert len(fs.ls(f"/gitexp-test-bucket/artifacts/sha256/{digest[:2]}")) == 1


def test_a_clone_reads_large_files_from_a_shared_store(repo, tmp_path):
    shared = tmp_path / "shared"
    git("config", "gitexp.artifactStore", shared.as_uri(), cwd=repo)
    git("config", "gitexp.artifactThreshold", "1k", cwd=repo)
    from gitexp.client import forget_stores

    forget_stores()
    data = os.urandom(4096)
    client = gitexp.Client()
    with gitexp.start_run() as run:
        (tmp_path / "m.bin").write_bytes(data)
        gitexp.log_artifact(str(tmp_path / "m.bin"))
    clone = tmp_path / "colleague"
    git("clone", "-q", str(repo), str(clone), cwd=tmp_path)
    git("fetch", "-q", "origin", "gitexp:gitexp", cwd=clone)
    code = f"""
import gitexp
print(gitexp.Client().download_artifacts("{run.info.run_id}", "m.bin", "out"))
"""
    # The pointer names the store it was uploaded to, so the clone finds the file without any setup.
    result = run_python(code, cwd=clone)
    assert result.returncode == 0, result.stderr
    assert (clone / "out" / "m.bin").read_bytes() == data
    assert client.list_artifacts(run.info.run_id)[0].file_size == 4096


@pytest.mark.parametrize("value", ["lots", "-5", "10x"])
def test_a_bad_threshold_is_a_clear_error(repo, tmp_path, monkeypatch, value):
    monkeypatch.setenv("GITEXP_ARTIFACT_THRESHOLD", value)
    client = gitexp.Client()
    run_id = client.create_run("0").info.run_id
    with pytest.raises(InvalidParameterValue, match=f"{value!r}.*GITEXP_ARTIFACT_THRESHOLD"):
        client.log_text(run_id, "x", "a.txt")


def test_the_work_tree_and_index_are_untouched(repo, tmp_path):
    (tmp_path / "big.bin").write_bytes(os.urandom(3000))
    git("config", "gitexp.artifactThreshold", "1k", cwd=repo)
    from gitexp.client import forget_stores

    forget_stores()
    index_before = (repo / ".git" / "index").read_bytes()
    with gitexp.start_run():
        gitexp.log_artifact(str(tmp_path / "big.bin"))
        gitexp.log_text("t", "t.txt")
    assert (repo / ".git" / "index").read_bytes() == index_before
    assert subprocess.run(["git", "status", "--porcelain"], cwd=repo, capture_output=True, text=True).stdout == ""
    assert git("fsck", "--no-dangling", cwd=repo) == ""
