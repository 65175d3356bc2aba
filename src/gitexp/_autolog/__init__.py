"""Autologging: patches that make a library's training calls log themselves (MLflow's autolog).

What every integration shares, one concern a module:

* ``_config``: the settings each ``autolog()`` call stores (``get_config``), whether a
  flavor is on, and the check that its library is installed (else ``MissingDependency``
  naming the extra to install);
* ``_patching``: ``safe_patch`` -- replace a function with a wrapper whose own failures
  are warnings: the user's training always runs, and its result or exception is what
  the caller gets -- managed runs (a patched training call with no active run starts
  one and ends it, tag ``mlflow.autologging``), and the ``integration`` decorator;
* ``_warnings``: autologging's own warnings as log events, or nothing when silent;
* ``_sessions``: training sessions -- a meta-estimator's inner fits (GridSearchCV's
  candidates, a Pipeline's steps) are not logged as runs of their own;
* ``_helpers``: input examples and signatures, datasets, variable names, the client;
* ``_hooks`` and ``_universal``: ``gitexp.autolog()``, which configures every
  integration whose library is (or later gets) imported.

Integrations (``sklearn.py``, ``xgboost.py``) only call gitexp's public API. The flavor
module whose ``log_model`` they call (``gitexp.sklearn``, ``gitexp.xgboost``) hands
itself over when it is imported (``use_flavor``), so no integration imports its flavor
and there is no import cycle.
"""

from __future__ import annotations

# `import x as x` re-exports a name that __all__ leaves out: is_disabled and revert_patches, and
# the process-wide state that tests reset between tests (_configs, _hooks, _managed_runs;
# tests/autolog_helpers.py).
from ._config import _configs as _configs
from ._config import get_config
from ._config import is_disabled as is_disabled
from ._hooks import _hooks as _hooks
from ._hooks import register_post_import_hook
from ._patching import _managed_runs as _managed_runs
from ._patching import disable_autologging, safe_patch
from ._patching import revert_patches as revert_patches
from ._universal import autolog

__all__ = ["autolog", "disable_autologging", "get_config", "register_post_import_hook", "safe_patch"]
