"""Turning Python objects into artifact bytes: text, dicts, figures, images and tables.

The formats are MLflow's, so files logged by gitexp read the same way as
files logged by MLflow.  Plotting and imaging libraries are imported only
when an object of theirs is logged.
"""

from __future__ import annotations

import importlib.util
import io
import json
import posixpath
from typing import TYPE_CHECKING, Any

from .exceptions import InvalidParameterValue

if TYPE_CHECKING:
    import pandas as pd
    from PIL.Image import Image as PILImage

COMPRESSED_IMAGE_SIZE = 256
_IMAGE_KEY = r"^[a-zA-Z0-9_\-./ ]+$"
_TABLE_FORBIDDEN = ['"', "'", ",", ":", "[", "]", "{", "}"]


def _extension(artifact_file: str) -> str:
    return posixpath.splitext(artifact_file)[1].lower()


def text_bytes(text: Any, artifact_file: str) -> bytes:
    """log_text's file: the text as UTF-8."""
    from ._validation import text as valid_text

    return valid_text(f"Text for {artifact_file!r}", str(text)).encode("utf-8")


def dict_bytes(dictionary: Any, artifact_file: str) -> bytes:
    """YAML for .yaml/.yml files, JSON for everything else (as MLflow's log_dict)."""
    if _extension(artifact_file) in (".yaml", ".yml"):
        import yaml

        try:
            return yaml.safe_dump(dictionary, indent=2, default_flow_style=False, sort_keys=False,
                                  allow_unicode=True).encode()
        except yaml.YAMLError as exc:
            raise InvalidParameterValue(
                f"Cannot write {artifact_file!r} as YAML: {exc}. Log plain dicts, lists, strings and numbers, "
                "or use a .json file name") from exc
    try:
        if _extension(artifact_file) == ".json":
            text = json.dumps(dictionary, indent=2, ensure_ascii=False)
        else:
            text = json.dumps(dictionary, ensure_ascii=False)
    except (TypeError, ValueError) as exc:
        raise InvalidParameterValue(f"Cannot write {artifact_file!r} as JSON: {exc}") from exc
    from ._validation import text as valid_text

    return valid_text(f"Dictionary for {artifact_file!r}", text).encode("utf-8")


# -- figures ---------------------------------------------------------------------------------------
def figure_bytes(figure: Any, artifact_file: str, save_kwargs: dict[str, Any] | None = None) -> bytes:
    """A matplotlib or plotly figure, in the format the file name's extension names."""
    kwargs = dict(save_kwargs or {})
    ext = _extension(artifact_file)
    module = type(figure).__module__
    if module.startswith("matplotlib") and hasattr(figure, "savefig"):
        if not ext:
            raise InvalidParameterValue(
                f"Cannot tell the image format of {artifact_file!r}: give the file an extension such as .png or .svg")
        buffer = io.BytesIO()
        kwargs.setdefault("format", ext[1:])
        try:
            figure.savefig(buffer, **kwargs)
        except ValueError as exc:
            raise InvalidParameterValue(f"matplotlib cannot save {artifact_file!r}: {exc}") from exc
        return buffer.getvalue()
    if module.startswith("plotly") and hasattr(figure, "to_html"):
        if ext == ".html":
            kwargs.setdefault("include_plotlyjs", "cdn")
            html: str = figure.to_html(**kwargs)
            return html.encode()
        if importlib.util.find_spec("kaleido") is None:
            raise InvalidParameterValue(
                f"Saving a plotly figure as {artifact_file!r} needs the kaleido package "
                "(pip install kaleido); or log it as an interactive .html file instead")
        data: bytes = figure.to_image(format=ext[1:] or "png", **kwargs)
        return data
    raise InvalidParameterValue(
        f"log_figure takes a matplotlib or plotly figure, got {type(figure).__module__}.{type(figure).__name__}; "
        "for arrays and PIL images use log_image")


# -- images ------------------------------------------------------------------------------------------
def to_pil_image(image: Any) -> PILImage:
    """A PIL image from a PIL image or a numpy array (HxW, HxWx1, HxWx3 or HxWx4)."""
    try:
        from PIL import Image
    except ImportError:
        raise InvalidParameterValue("Logging images needs Pillow: pip install pillow") from None
    if isinstance(image, Image.Image):
        return image
    if hasattr(image, "to_pil"):  # mlflow.Image and look-alikes
        pil: PILImage = image.to_pil()
        return pil
    try:
        import numpy as np
    except ImportError:  # pragma: no cover - numpy comes with pandas
        raise InvalidParameterValue("Logging an array as an image needs numpy") from None
    if not isinstance(image, np.ndarray):
        raise InvalidParameterValue(
            f"log_image takes a numpy array or a PIL image, got {type(image).__module__}.{type(image).__name__}")
    kinds = {"b": "bool", "i": "signed integer", "u": "unsigned integer", "f": "floating"}
    if image.dtype.kind not in kinds:
        raise InvalidParameterValue(
            f"Cannot log an array of dtype {image.dtype} as an image; use one of {sorted(kinds.values())}")
    if image.ndim not in (2, 3):
        raise InvalidParameterValue(
            f"An image must be a 2-D (grayscale) or 3-D (HxWxC) array, got shape {image.shape}")
    if image.ndim == 3 and image.shape[2] not in (1, 3, 4):
        raise InvalidParameterValue(
            f"An image array must have 1, 3 or 4 channels in its last axis, got shape {image.shape}")
    if image.ndim == 3 and image.shape[2] == 1:
        image = image[:, :, 0]
    if image.dtype.kind in "iu":
        if image.size and (image.min() < 0 or image.max() > 255):
            raise InvalidParameterValue(
                f"Integer pixel values must lie in [0, 255], found {image.min()} to {image.max()}")
    else:
        image = image.astype("float64")
        if image.size and (image.min() < 0 or image.max() > 1):
            import warnings

            warnings.warn(f"Float pixel values outside [0, 1] (found {image.min()} to {image.max()}); "
                          "rescaling them to [0, 1] with a min/max scaler", stacklevel=3)
            span = image.max() - image.min()
            image = (image - image.min()) / (span if span else 1)
        image = image * 255
    return Image.fromarray(image.astype("uint8"))


def image_bytes(image: Any, artifact_file: str) -> bytes:
    """An image encoded in the format of the file's extension (PNG if it has none PIL knows)."""
    from PIL import Image

    pil = to_pil_image(image)
    fmt = Image.registered_extensions().get(_extension(artifact_file))
    if fmt is None:
        raise InvalidParameterValue(
            f"Cannot tell the image format of {artifact_file!r}: use an extension such as .png or .jpg")
    if fmt == "JPEG" and pil.mode in ("RGBA", "LA", "P"):
        pil = pil.convert("RGB")
    buffer = io.BytesIO()
    pil.save(buffer, format=fmt)
    return buffer.getvalue()


def compressed_image_bytes(image: Any) -> bytes:
    """A thumbnail (longest side 256 px) as WebP, as MLflow logs next to keyed images."""
    pil = to_pil_image(image)
    width, height = pil.size
    scale = COMPRESSED_IMAGE_SIZE / max(width, height, 1)
    thumb = pil.resize((max(int(width * scale), 1), max(int(height * scale), 1)))
    buffer = io.BytesIO()
    try:
        thumb.save(buffer, format="WEBP")
    except (KeyError, OSError):  # Pillow built without WebP
        thumb.save(buffer, format="PNG")
    return buffer.getvalue()


def image_key_paths(key: str, step: Any, timestamp: Any, uid: str) -> tuple[str, str]:
    """The files of one step of an image series (step and timestamp checked as a metric's)."""
    import re

    from . import _validation as valid
    from .store.layout import now_ms

    if not isinstance(key, str) or not re.match(_IMAGE_KEY, key):
        raise InvalidParameterValue(
            f"Image key {key!r} may only contain letters, digits, underscores, dashes, periods, "
            "spaces and slashes")
    step = valid.metric_step(f"image {key}", step or 0)
    timestamp = now_ms() if not timestamp else valid.metric_timestamp(f"image {key}", timestamp)
    base = f"images/{key.replace('/', '~')}+step+{step}+timestamp+{timestamp}+{uid}"
    return f"{base}.png", f"{base}+compressed.webp"


# -- tables ------------------------------------------------------------------------------------------
def check_table_file(artifact_file: str) -> None:
    for char in _TABLE_FORBIDDEN:
        if char in artifact_file:
            raise InvalidParameterValue(f"Table file name {artifact_file!r} contains the forbidden character {char!r}")
    if _extension(artifact_file) not in (".json", ".parquet"):
        raise InvalidParameterValue(
            f"A table must be logged as a .json or .parquet file, got {artifact_file!r}")


def table_frame(data: Any) -> pd.DataFrame:
    import pandas as pd

    if isinstance(data, pd.DataFrame):
        return data.copy()
    if isinstance(data, dict):
        try:
            return pd.DataFrame(data)
        except ValueError:  # all scalars: one row
            return pd.DataFrame([data])
    raise InvalidParameterValue(f"log_table takes a pandas DataFrame or a dict, got {type(data).__name__}")


def is_image(obj: Any) -> bool:
    return all(callable(getattr(obj, name, None)) for name in ("save", "resize")) and hasattr(obj, "size")


def table_bytes(frame: Any, artifact_file: str) -> bytes:
    buffer = io.BytesIO()
    try:
        if _extension(artifact_file) == ".json":
            frame.to_json(buffer, orient="split", index=False, date_format="iso")
        else:
            frame.to_parquet(buffer, index=False)
    except Exception as exc:
        raise InvalidParameterValue(f"Cannot save the table as {artifact_file!r}: {exc}") from exc
    return buffer.getvalue()


def read_table(data: bytes, artifact_file: str) -> pd.DataFrame:
    import pandas as pd

    if _extension(artifact_file) == ".json":
        return pd.read_json(io.StringIO(data.decode()), orient="split")
    return pd.read_parquet(io.BytesIO(data))
