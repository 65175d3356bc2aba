"""What every flavor shares: preparing a model directory, finishing it, logging it to a run."""

from __future__ import annotations

import importlib
import json
import os
import shutil
import sys
import tempfile
from collections.abc import Callable
from typing import Any

from ..exceptions import GitexpError, InvalidParameterValue, ResourceAlreadyExists, ResourceDoesNotExist
from ._environment import write_environment
from .model import MLMODEL_FILE_NAME, Model, ModelInfo, _gitexp_version

_HISTORY_TAG = "mlflow.log-model.history"
_UNSUPPORTED_LOG_ARGS = ("params", "tags", "model_type", "step", "model_id", "prompts", "resources", "auth_policy")


def prepare_save_path(path: str | os.PathLike[str]) -> str:
    path = os.path.abspath(os.fspath(path))
    if os.path.exists(path) and (not os.path.isdir(path) or os.listdir(path)):
        raise ResourceAlreadyExists(
            f"Cannot save a model to {path!r}: it already exists and is not empty. Choose a new directory "
            "or delete the old one first.", path=path)
    os.makedirs(path, exist_ok=True)
    return path


def copy_code_paths(code_paths: list[str] | None, path: str) -> str | None:
    """Copy user code next to the model (added to sys.path when it loads); returns 'code'."""
    if not code_paths:
        return None
    if isinstance(code_paths, (str, os.PathLike)):
        raise InvalidParameterValue("code_paths must be a list of paths, e.g. code_paths=['src/features.py']")
    target = os.path.join(path, "code")
    os.makedirs(target, exist_ok=True)
    for code in code_paths:
        code = os.fspath(code)
        if not os.path.exists(code):
            raise InvalidParameterValue(f"code path {code!r} does not exist (working directory {os.getcwd()})")
        dest = os.path.join(target, os.path.basename(os.path.normpath(code)))
        if os.path.isdir(code):
            shutil.copytree(code, dest, dirs_exist_ok=True,
                            ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
        else:
            shutil.copy2(code, dest)
    return "code"


def add_code_to_sys_path(model_dir: str, conf: dict[str, Any]) -> None:
    code = conf.get("code")
    if code:
        code_dir = os.path.join(model_dir, code)
        if code_dir not in sys.path:
            sys.path.insert(0, code_dir)


def check_deserialization_allowed(path: str) -> None:
    """Refuse to unpickle when the user turned it off (it runs code from whoever saved the model)."""
    for var in ("GITEXP_ALLOW_PICKLE_DESERIALIZATION", "MLFLOW_ALLOW_PICKLE_DESERIALIZATION"):
        value = os.environ.get(var)
        if value is not None and value.strip().lower() in ("false", "0", "no"):
            raise GitexpError(
                f"Not loading {path}: it is a pickle, loading it runs code from whoever saved the model, "
                f"and {var}={value} forbids that. Set it to true only for models from people you trust.")


def flavor_conf(model_dir: str, flavor: str) -> dict[str, Any]:
    model = Model.load(model_dir)
    if flavor not in model.flavors:
        raise ResourceDoesNotExist(
            f"The model at {model_dir} has no {flavor!r} flavor (it has {sorted(model.flavors)}); load it with "
            "gitexp.pyfunc.load_model or the loader of one of its flavors.", path=model_dir)
    conf: dict[str, Any] = model.flavors[flavor]
    return conf


def directory_size(path: str) -> int:
    total = 0
    for root, _dirs, files in os.walk(path):
        for name in files:
            total += os.path.getsize(os.path.join(root, name))
    return total


def begin_model(path: str | os.PathLike[str], code_paths: list[str] | None, mlflow_model: Model | None,
                input_example: Any, signature: Any, metadata: dict[str, Any] | None,
                predictor: Any) -> tuple[str, str | None, Model]:
    """The first steps of a flavor's save_model: the directory, code, example, signature, metadata.

    The signature is inferred from the input example through `predictor` (an
    object with ``predict``) unless given; ``signature=False`` means none.
    """
    from ._example import save_example
    from .signature import infer_from_example

    path = prepare_save_path(path)
    code = copy_code_paths(code_paths, path)
    model = mlflow_model or Model()
    example = save_example(model, input_example, path)
    if signature is None and example is not None:
        signature = infer_from_example(example, predictor)
    if signature is not None and signature is not False:
        model.signature = signature
    if metadata is not None:
        model.metadata = metadata
    return path, code, model


def finish_model(model: Model, path: str, default_requirements: list[str], conda_env: Any = None,
                 pip_requirements: Any = None, extra_pip_requirements: Any = None) -> None:
    """Write MLmodel and the environment files: the last step of every save_model."""
    model.__dict__["gitexp_version"] = _gitexp_version()
    write_environment(path, default_requirements, conda_env, pip_requirements, extra_pip_requirements)
    model.model_size_bytes = directory_size(path)
    model.save(os.path.join(path, MLMODEL_FILE_NAME))


def model_name(artifact_path: str | None, name: str | None) -> str:
    from ..store.artifacts import validate_artifact_path

    if artifact_path is not None and name is not None:
        raise InvalidParameterValue(
            f"Pass the model's name once: name={name!r} or artifact_path={artifact_path!r} (MLflow 3 prefers name)")
    return validate_artifact_path(name or artifact_path or "model", "model name", allow_root=False)


def log_model(save: Callable[..., None], artifact_path: str | None, name: str | None,
              registered_model_name: str | None, extra: dict[str, Any], **save_kwargs: Any) -> ModelInfo:
    """Save a model into a temporary directory and log it as artifacts of the active run."""
    from ..fluent import _client, _run_id

    unsupported = sorted(k for k, v in extra.items() if k in _UNSUPPORTED_LOG_ARGS and v is not None)
    unknown = sorted(k for k in extra if k not in _UNSUPPORTED_LOG_ARGS and k != "await_registration_for")
    if unknown:
        raise InvalidParameterValue(f"log_model got unexpected arguments {unknown}")
    if unsupported:
        raise InvalidParameterValue(
            f"log_model arguments {unsupported} set fields of MLflow 3's logged model, which gitexp's log_model "
            "does not take (its logged model is the model's directory in its run). Log them to the run instead, "
            "with gitexp.log_params / gitexp.set_tags.")
    path_in_run = model_name(artifact_path, name)
    client = _client()
    run_id = _run_id()
    existing = client.get_artifact_kind(run_id, path_in_run)
    if existing is not None:
        raise ResourceAlreadyExists(
            f"Run {run_id} already has an artifact {'directory' if existing == 'dir' else 'file'} "
            f"{path_in_run!r}; log the model under another name (name='{path_in_run}_2').",
            run_id=run_id, path=path_in_run)
    model = Model(artifact_path=path_in_run, run_id=run_id)
    model_id = _begin_logged_model(client, run_id, path_in_run)
    if model_id is not None:
        model.__dict__["model_id"] = model_id  # in MLmodel, as MLflow 3 writes it
    try:
        with tempfile.TemporaryDirectory(prefix="gitexp-model-") as tmp:
            local = os.path.join(tmp, "model")
            save(path=local, mlflow_model=model, **save_kwargs)
            client.log_artifacts(run_id, local, path_in_run)
    except BaseException:
        if model_id is not None:
            _end_logged_model(client, model_id, "FAILED")
        raise
    _record_history(client, run_id, model)
    info = model.get_model_info()
    if model_id is not None:
        from ..fluent import _set_last_logged_model

        _end_logged_model(client, model_id, "READY")
        info.model_id = model_id
        _set_last_logged_model(model_id)
    if registered_model_name:
        register = getattr(importlib.import_module("gitexp"), "register_model", None)
        if register is None:
            raise GitexpError(
                f"The model was logged ({info.model_uri}) but cannot be registered as "
                f"{registered_model_name!r}: this gitexp has no model registry (gitexp.register_model).")
        version = register(info.model_uri, registered_model_name)
        info.registered_model_version = getattr(version, "version", None)
    return info


def _begin_logged_model(client: Any, run_id: str, name: str) -> str | None:
    """MLflow 3's LoggedModel record for a model logged to `name` in the run: its files are that
    directory (store/logged_models.py). None when there is none: a name a logged model cannot have
    (a path such as 'models/clf'), or a server without logged models -- the model is logged all the same."""
    try:
        logged = client.create_logged_model(None, name=name, source_run_id=run_id)
    except GitexpError:
        return None
    if logged.artifact_location != f"runs:/{run_id}/{name}":  # another logged model holds the directory
        _end_logged_model(client, logged.model_id, "FAILED")
        return None
    model_id: str = logged.model_id
    return model_id


def _end_logged_model(client: Any, model_id: str, status: str) -> None:
    try:
        client.finalize_logged_model(model_id, status)
    except GitexpError:
        pass


def _record_history(client: Any, run_id: str, model: Model) -> None:
    """The run tag MLflow 2 kept of logged models (what UIs use to find models in a run)."""
    entry = {"run_id": run_id, "artifact_path": model.artifact_path, "utc_time_created": model.utc_time_created,
             "model_uuid": model.model_uuid,
             "flavors": {k: {kk: vv for kk, vv in v.items() if kk in ("loader_module", "python_version",
                                                                      "sklearn_version", "xgb_version",
                                                                      "serialization_format", "model_format")}
                         for k, v in model.flavors.items()}}
    try:
        history = json.loads(client.get_run(run_id).data.tags.get(_HISTORY_TAG, "[]"))
    except ValueError:
        history = []
    history.append(entry)
    while len(history) > 1 and len(json.dumps(history)) > 8000:
        history.pop(0)
    client.set_tag(run_id, _HISTORY_TAG, json.dumps(history))


def pyfunc_loader(loader_module: str) -> Any:
    """The module whose _load_pyfunc loads a model: gitexp's own for the flavors it has."""
    builtin = {
        "mlflow.sklearn": "gitexp.sklearn",
        "mlflow.xgboost": "gitexp.xgboost",
        "mlflow.pyfunc.model": "gitexp.pyfunc.model",
    }
    name = builtin.get(loader_module, loader_module)
    try:
        return importlib.import_module(name)
    except ImportError as exc:
        raise GitexpError(
            f"This model is loaded by {loader_module!r}, a flavor gitexp does not include. Install the package "
            f"that provides it (for MLflow flavors: pip install mlflow) and load it again. ({exc})") from exc
