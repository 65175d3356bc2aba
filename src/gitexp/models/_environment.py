"""The environment files of a model: requirements.txt, python_env.yaml and conda.yaml (MLflow's forms)."""

from __future__ import annotations

import os
import platform
from importlib import metadata
from typing import Any

import yaml

from ..exceptions import InvalidParameterValue

REQUIREMENTS_FILE = "requirements.txt"
PYTHON_ENV_FILE = "python_env.yaml"
CONDA_ENV_FILE = "conda.yaml"


def pinned(package: str) -> str:
    """'package==<installed version>' (just the name if it is not installed)."""
    try:
        return f"{package}=={metadata.version(package)}"
    except metadata.PackageNotFoundError:
        return package


def _read_requirements(value: Any) -> list[str]:
    if isinstance(value, (str, os.PathLike)):
        path = os.fspath(value)
        if not os.path.isfile(path):
            raise InvalidParameterValue(f"pip requirements file {path!r} does not exist; pass a list of strings "
                                        "or the path of a requirements.txt")
        with open(path) as fh:
            lines = fh.read().splitlines()
    elif isinstance(value, (list, tuple)):
        lines = [str(v) for v in value]
    else:
        raise InvalidParameterValue(f"pip requirements must be a list of strings or a file path, got {value!r}")
    return [line.strip() for line in lines if line.strip() and not line.strip().startswith("#")]


def _conda_pip(conda_env: dict[str, Any]) -> list[str]:
    for dep in conda_env.get("dependencies") or []:
        if isinstance(dep, dict) and "pip" in dep:
            return [str(x) for x in dep["pip"]]
    return []


def _conda_env(pip: list[str]) -> dict[str, Any]:
    return {
        "channels": ["conda-forge"],
        "dependencies": [f"python={platform.python_version()}", f"pip<={_version('pip')}", {"pip": pip}],
        "name": "mlflow-env",
    }


def _version(package: str) -> str:
    try:
        return metadata.version(package)
    except metadata.PackageNotFoundError:
        return ""


def python_env() -> dict[str, Any]:
    build = []
    for package in ("pip", "setuptools", "wheel"):
        version = _version(package)
        build.append(f"{package}=={version}" if version else package)
    return {"python": platform.python_version(), "build_dependencies": build, "dependencies": ["-r requirements.txt"]}


def write_environment(path: str, default_requirements: list[str], conda_env: Any = None,
                      pip_requirements: Any = None, extra_pip_requirements: Any = None) -> None:
    """Write the three environment files of a model directory."""
    given = [n for n, v in (("conda_env", conda_env), ("pip_requirements", pip_requirements),
                            ("extra_pip_requirements", extra_pip_requirements)) if v is not None]
    if len(given) > 1:
        raise InvalidParameterValue(f"Pass only one of conda_env, pip_requirements and extra_pip_requirements, "
                                    f"got {given}")
    if conda_env is not None:
        if isinstance(conda_env, (str, os.PathLike)):
            with open(os.fspath(conda_env)) as fh:
                conda_env = yaml.safe_load(fh)
        if not isinstance(conda_env, dict):
            raise InvalidParameterValue(f"conda_env must be a dict or the path of a conda.yaml, got {conda_env!r}")
        requirements = _conda_pip(conda_env)
        conda = conda_env
    else:
        if pip_requirements is not None:
            requirements = _read_requirements(pip_requirements)
        else:
            requirements = list(default_requirements)
            for extra in _read_requirements(extra_pip_requirements) if extra_pip_requirements is not None else []:
                if extra not in requirements:
                    requirements.append(extra)
        conda = _conda_env(requirements)
    with open(os.path.join(path, CONDA_ENV_FILE), "w") as fh:
        yaml.safe_dump(conda, fh, default_flow_style=False)
    with open(os.path.join(path, REQUIREMENTS_FILE), "w") as fh:
        fh.write("\n".join(requirements))
    with open(os.path.join(path, PYTHON_ENV_FILE), "w") as fh:
        yaml.safe_dump(python_env(), fh, default_flow_style=False, sort_keys=False)
