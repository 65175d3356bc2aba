"""The MLmodel file: a model directory's flavors, signature, example and provenance.

Fields and their YAML form are MLflow's, so MLflow reads what gitexp writes
and the other way round.  Unknown fields are kept as they are.
"""

from __future__ import annotations

import datetime as dt
import os
import uuid
from typing import IO, TYPE_CHECKING, Any, overload

import yaml

from ..exceptions import InvalidParameterValue, ResourceDoesNotExist
from .signature import ModelSignature

if TYPE_CHECKING:
    from ..types.schema import ParamSchema, Schema

MLMODEL_FILE_NAME = "MLmodel"


def _gitexp_version() -> str:
    from .. import __version__

    return __version__


class Model:
    """An MLflow Model: metadata of a model directory (written as its MLmodel file)."""

    def __init__(self, artifact_path: str | None = None, run_id: str | None = None,
                 utc_time_created: str | None = None, flavors: dict[str, Any] | None = None,
                 signature: ModelSignature | None = None, saved_input_example_info: dict[str, Any] | None = None,
                 model_uuid: str | None = None, mlflow_version: str | None = None,
                 metadata: dict[str, Any] | None = None, model_size_bytes: int | None = None, **kwargs: Any) -> None:
        self.run_id = run_id
        self.artifact_path = artifact_path
        self.utc_time_created = str(utc_time_created or dt.datetime.now(dt.timezone.utc).replace(tzinfo=None))
        self.flavors = flavors if flavors is not None else {}
        self.signature = signature
        self.saved_input_example_info = saved_input_example_info
        self.model_uuid = model_uuid or uuid.uuid4().hex
        self.mlflow_version = mlflow_version
        self.metadata = metadata
        self.model_size_bytes = model_size_bytes
        self.__dict__.update(kwargs)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Model) and self.to_dict() == other.to_dict()

    def add_flavor(self, name: str, **params: Any) -> Model:
        self.flavors[name] = params
        return self

    def get_input_schema(self) -> Schema | None:
        return self.signature.inputs if self.signature is not None else None

    def get_output_schema(self) -> Schema | None:
        return self.signature.outputs if self.signature is not None else None

    def get_params_schema(self) -> ParamSchema | None:
        return self.signature.params if self.signature is not None else None

    def load_input_example(self, path: str) -> Any:
        """The input example saved with the model in directory `path` (None if there is none)."""
        from ._example import read_example

        return read_example(self.saved_input_example_info, self.signature, path)

    # -- serialization ------------------------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        out = {k: v for k, v in self.__dict__.items() if not k.startswith("_") and v is not None}
        out.pop("signature", None)
        if self.signature is not None:
            out["signature"] = self.signature.to_dict()
            out["is_signature_from_type_hint"] = False
            out["type_hint_from_example"] = False
        return out

    @overload
    def to_yaml(self, stream: None = None) -> str: ...
    @overload
    def to_yaml(self, stream: IO[str]) -> None: ...

    def to_yaml(self, stream: IO[str] | None = None) -> str | None:
        """The MLmodel YAML; written to `stream` (and None returned) when one is given."""
        dumped: str | None = yaml.safe_dump(self.to_dict(), stream=stream, default_flow_style=False)
        return dumped

    def __str__(self) -> str:
        return self.to_yaml()

    def save(self, path: str) -> None:
        with open(path, "w") as fh:
            self.to_yaml(fh)

    @classmethod
    def from_dict(cls, model_dict: dict[str, Any]) -> Model:
        d = dict(model_dict)
        signature = d.pop("signature", None)
        d.pop("is_signature_from_type_hint", None)
        d.pop("type_hint_from_example", None)
        if isinstance(signature, dict):
            signature = ModelSignature.from_dict(signature)
        return cls(signature=signature, **d)

    @classmethod
    def load(cls, path: str | os.PathLike[str]) -> Model:
        """Read an MLmodel file, a model directory, or (runs:/, models:/) a logged model's."""
        from ._resolve import resolve_model_uri

        path = resolve_model_uri(os.fspath(path))
        file = path if os.path.basename(path) == MLMODEL_FILE_NAME else os.path.join(path, MLMODEL_FILE_NAME)
        if not os.path.isfile(file):
            raise ResourceDoesNotExist(
                f"No MLmodel file at {file}: {path!r} is not a model directory. A model directory is what "
                "save_model writes or log_model logs (it holds MLmodel, the model file and its environment).",
                path=path)
        with open(file) as fh:
            doc = yaml.safe_load(fh)
        if not isinstance(doc, dict):
            raise InvalidParameterValue(f"{file} is not a valid MLmodel file (expected a YAML mapping)")
        return cls.from_dict(doc)

    def get_model_info(self) -> ModelInfo:
        info = ModelInfo(
            artifact_path=self.artifact_path, flavors=self.flavors,
            model_uri=f"runs:/{self.run_id}/{self.artifact_path}" if self.run_id else None,
            model_uuid=self.model_uuid, run_id=self.run_id, saved_input_example_info=self.saved_input_example_info,
            signature=self.signature, utc_time_created=self.utc_time_created, mlflow_version=self.mlflow_version,
            metadata=self.metadata,
        )
        info.model_id = self.__dict__.get("model_id")
        return info


class ModelInfo:
    """What log_model returns: where the model is and what it is."""

    def __init__(self, artifact_path: str | None, flavors: dict[str, Any], model_uri: str | None,
                 model_uuid: str | None, run_id: str | None, saved_input_example_info: dict[str, Any] | None,
                 signature: ModelSignature | None, utc_time_created: str, mlflow_version: str | None,
                 metadata: dict[str, Any] | None = None, registered_model_version: int | None = None) -> None:
        self.artifact_path = artifact_path
        self.name = artifact_path
        self.flavors = flavors
        self.model_uri = model_uri
        self.model_uuid = model_uuid
        self.run_id = run_id
        self.saved_input_example_info = saved_input_example_info
        self.signature = signature
        self.utc_time_created = utc_time_created
        self.mlflow_version = mlflow_version
        self.metadata = metadata
        self.registered_model_version = registered_model_version
        self.model_id: str | None = None  # MLflow 3's logged model (its files: this model's directory)

    @property
    def signature_dict(self) -> dict[str, Any] | None:
        return self.signature.to_dict() if self.signature is not None else None

    def __repr__(self) -> str:
        return f"<ModelInfo: model_uri={self.model_uri!r}, flavors={sorted(self.flavors)}>"


def get_model_info(model_uri: str) -> ModelInfo:
    """The ModelInfo of a saved or logged model."""
    from ._resolve import resolve_model_uri

    return Model.load(resolve_model_uri(model_uri)).get_model_info()
