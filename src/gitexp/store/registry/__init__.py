"""The model registry on the tracking branch: registry events, their fold, and models:/ URIs.

    .tracking/registry/<model dir>/events/<UTC time to the µs>-<random>.yaml

Every registry change is one immutable event file ``{time, user, email, model,
ops: [...]}`` committed at once (never journaled).  A model's state is the fold
of its directory's events in file-name order, which is (time, random id) order,
so every clone that holds the same events computes the same registry.

Identity:

* A model's **directory** is chosen once, at creation, from its name
  (``layout.encode_key``, ``~2``, ``~3``... when a renamed model still holds
  that directory).  Two clones that create the same name write into the same
  directory and converge on one model.  The name itself is folded state, so a
  rename is one event and never moves files.
* A **version** is named by a random ``uid`` in every event that refers to it.
  Its number is its place among the version-creating events of the model
  (deleted versions keep their numbers, as in MLflow).  When a merge brings in
  a creation with an earlier time, later versions move up by one; the folded
  version keeps ``renumbered_from`` (the number its writer saw) and the model
  a notice.  Nothing is lost, and stages and aliases follow the uid.
* Two live models that claim one name after a merge (a rename racing a
  create): the earlier claim keeps it, the other is listed as ``name~2``
  with a notice until someone renames it.

Ops that no longer apply after a merge (a stage change of a version deleted
earlier...) are skipped and listed, with the reason, in the model's history.

The package, along its seams:

* ``_validation`` -- argument checks (MLflow's rules, gitexp's messages);
* ``_fold``       -- events into state: ``fold_model``, ``ModelState``, ``RegistryState``;
* ``_uris``       -- ``models:/`` URIs: ``parse_models_uri``, ``resolve_models_uri``;
* ``_service``    -- ``ModelRegistry``, the registry over one store (reads the folded
  state at the branch tip, commits events).
"""

from __future__ import annotations

from ._fold import ModelState, RegistryState, VersionState, ev_ops, fold_model
from ._service import ModelRegistry
from ._uris import ModelsUri, parse_models_uri, resolve_models_uri
from ._validation import (
    MAX_ALIAS_LENGTH,
    MAX_DESCRIPTION_LENGTH,
    MAX_MODEL_NAME_LENGTH,
    MAX_TAG_VALUE_LENGTH,
    alias_name,
    description_text,
    model_name,
    tag_key,
    tag_value,
    version_number,
)

__all__ = [
    "MAX_ALIAS_LENGTH",
    "MAX_DESCRIPTION_LENGTH",
    "MAX_MODEL_NAME_LENGTH",
    "MAX_TAG_VALUE_LENGTH",
    "ModelRegistry",
    "ModelState",
    "ModelsUri",
    "RegistryState",
    "VersionState",
    "alias_name",
    "description_text",
    "ev_ops",
    "fold_model",
    "model_name",
    "parse_models_uri",
    "resolve_models_uri",
    "tag_key",
    "tag_value",
    "version_number",
]
