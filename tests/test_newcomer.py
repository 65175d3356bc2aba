"""A newcomer's first hour: `--repo` means one thing on every command, `gitexp init` initialises
where it is told, and the repository's own files (LICENSE, README, Makefile) hold up."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from pathlib import Path

import click
import pytest
import tomllib
from click.testing import CliRunner

import gitexp
from gitexp.cli import main

from .conftest import git, make_repo, reset_gitexp

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.parametrize("args", [
    lambda p: ["--repo", p, "init"],
    lambda p: ["-C", p, "init"],
    lambda p: ["init", "--repo", p],
    lambda p: ["init", p],
])
def test_init_prepares_the_repository_it_is_given(tmp_path, monkeypatch, args):
    """`gitexp --repo X init` used to run `git init` around the current directory."""
    here = tmp_path / "here"
    here.mkdir()
    monkeypatch.chdir(here)
    target = tmp_path / "target"
    result = CliRunner().invoke(main, args(str(target)), catch_exceptions=False)
    assert result.exit_code == 0, result.output
    assert (target / ".git").is_dir()
    assert git("rev-parse", "--verify", "gitexp", cwd=target).strip()
    assert not (here / ".git").exists()
    reset_gitexp()


def test_init_refuses_a_server_url_for_a_repository(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    result = CliRunner().invoke(main, ["--repo", "http://127.0.0.1:9", "init"])
    assert result.exit_code == 2 and "give a PATH" in result.output
    assert not (tmp_path / ".git").exists()


def _commands(group: click.Group, prefix: tuple[str, ...] = ()):
    for name, command in group.commands.items():
        yield prefix + (name,), command
        if isinstance(command, click.Group):
            yield from _commands(command, prefix + (name,))


def test_every_command_in_a_repository_takes_repo_after_its_name():
    for path, command in _commands(main):
        if path[0] == "demo":  # makes its own scratch repository: DIRECTORY
            continue
        names = [opt for p in command.params for opt in getattr(p, "opts", [])]
        assert "--repo" in names and "-C" in names, " ".join(path)


def test_repo_before_or_after_the_command_is_the_same(tmp_path, monkeypatch):
    repo = make_repo(tmp_path / "repo")
    client = gitexp.Client(str(repo))
    client.create_experiment("placed")
    reset_gitexp()
    monkeypatch.chdir(tmp_path)  # no repository here
    outputs = []
    for args in (["--repo", str(repo), "experiments", "list", "-f", "csv"],
                 ["experiments", "list", "--repo", str(repo), "-f", "csv"],
                 ["experiments", "--repo", str(repo), "list", "-f", "csv"],
                 ["-C", "/nowhere", "experiments", "list", "-C", str(repo), "-f", "csv"]):  # the later wins
        result = CliRunner().invoke(main, args, catch_exceptions=False)
        assert result.exit_code == 0, (args, result.output)
        outputs.append(result.output)
    assert "placed" in outputs[0] and len(set(outputs)) == 1
    reset_gitexp()


def test_license_is_the_apache_license_the_package_declares():
    declared = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["license"]
    assert declared == "Apache-2.0"
    text = (ROOT / "LICENSE").read_text()
    assert "Apache License\n                           Version 2.0, January 2004" in text
    assert "TERMS AND CONDITIONS FOR USE, REPRODUCTION, AND DISTRIBUTION" in text
    assert "END OF TERMS AND CONDITIONS" in text
    for section in range(1, 10):
        assert re.search(rf"^\s*{section}\. [A-Z]", text, re.M), section


def test_readme_has_no_links_that_break_on_the_package_index():
    """The README is the wheel's long description: a relative link there points nowhere."""
    text = (ROOT / "README.md").read_text()
    targets = re.findall(r"\]\(([^)]+)\)", text) + re.findall(r'(?:src|href)="([^"]+)"', text)
    relative = [t for t in targets if not re.match(r"[a-z]+:", t) and not t.startswith("#")]
    assert relative == []
    assert "pip install gitexp\n" not in text  # not published: install from a checkout


def test_make_clean_removes_what_tests_leave(tmp_path):
    scratch = tmp_path / "checkout"
    scratch.mkdir()
    shutil.copy(ROOT / "Makefile", scratch / "Makefile")
    for name in (".hypothesis/examples", "test-artifacts/screenshots", ".pytest_cache", ".mypy_cache", ".ruff_cache",
                 "build", "src/x.egg-info"):
        (scratch / name).mkdir(parents=True)
    subprocess.run(["make", "clean", "VENV=.venv-none"], cwd=scratch, check=True, capture_output=True)
    assert sorted(p.name for p in scratch.iterdir()) == ["Makefile", "src"]
    assert list((scratch / "src").iterdir()) == []


@pytest.mark.skipif(shutil.which("setpriv") is None or os.geteuid() != 0,
                    reason="runs make as an unprivileged user: needs root and setpriv")
def test_make_test_without_chromium_or_root_says_what_to_install(tmp_path):
    """A developer's laptop (no root, no passwordless sudo, no chromium): `make browser` stops
    before any test with what to install, and names the target that runs the other tests."""
    scratch = tmp_path / "checkout"
    scratch.mkdir()
    shutil.copy(ROOT / "Makefile", scratch / "Makefile")
    os.chmod(tmp_path, 0o755)
    result = subprocess.run(["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups",
                             "make", "browser", f"CHROMIUM={tmp_path}/no-chromium"],
                            cwd=scratch, capture_output=True, text=True, env={**os.environ, "HOME": str(tmp_path)})
    assert result.returncode != 0
    assert "apt-get install chromium" in result.stdout and "make test-fast" in result.stdout
    assert "Permission denied" not in result.stdout + result.stderr
    out = subprocess.run(["make", "-n", "test-fast", "VENV=/nonexistent-venv"], cwd=ROOT, capture_output=True,
                         text=True).stdout
    assert "--ignore=tests/ui/test_browser.py" in out and "apt-get" not in out


def test_make_test_lints_and_type_checks_before_the_suite():
    """`make test` (what CI runs) runs ruff and mypy, each with the project's settings, before pytest;
    `make lint` runs the two alone."""
    out = subprocess.run(["make", "-n", "test", "VENV=/nonexistent-venv"], cwd=ROOT,
                         capture_output=True, text=True).stdout.splitlines()
    ruff = next(i for i, line in enumerate(out) if "-m ruff check src tests benchmarks" in line)
    mypy = next(i for i, line in enumerate(out) if line.endswith("-m mypy"))
    pytest_ = next(i for i, line in enumerate(out) if "-m pytest" in line)
    assert ruff < pytest_ and mypy < pytest_
    lint = subprocess.run(["make", "-n", "lint", "VENV=/nonexistent-venv"], cwd=ROOT, capture_output=True,
                          text=True).stdout
    assert "-m ruff check" in lint and "-m mypy" in lint and "pytest" not in lint
    dev = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["optional-dependencies"]["dev"]
    assert {d.split("=")[0].split(">")[0] for d in dev} >= {"ruff", "mypy"}


def test_cpu_extras_leave_out_nvidia_s_libraries():
    """gitexp[all-cpu] is gitexp[all] with xgboost-cpu, which needs no nvidia-nccl-cu12."""
    from packaging.requirements import Requirement

    extras = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["optional-dependencies"]
    linux = {"platform_system": "Linux", "sys_platform": "linux", "platform_machine": "x86_64", "extra": ""}

    def closure(name: str) -> set[str]:
        names = set()
        for line in extras[name]:
            req = Requirement(line)
            if req.marker is not None and not req.marker.evaluate(linux):
                continue
            if req.name == "gitexp":
                for extra in req.extras:
                    names |= closure(extra)
            else:
                names.add(req.name)
        return names

    assert "xgboost" in closure("all") and "xgboost" not in closure("all-cpu")
    assert "xgboost-cpu" in closure("all-cpu")
    assert closure("all") - {"xgboost"} == closure("all-cpu") - {"xgboost-cpu"}
