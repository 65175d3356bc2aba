"""gitexp as MLflow's backend: the real ``mlflow`` package logs into git, in-process.

With ``pip install 'gitexp[mlflow]'``, MLflow finds these through its plugin entry points
(pyproject.toml):

    mlflow.tracking_store        gitexp = GitexpTrackingStore     (tracking.py)
    mlflow.model_registry_store  gitexp = GitexpRegistryStore     (registry.py)
    mlflow.artifact_repository   gitexp = GitexpArtifactRepository (artifacts.py)
    mlflow.run_context_provider  gitexp = GitexpRunContextProvider (context.py)

so that ``mlflow.set_tracking_uri("gitexp:")`` (or ``gitexp:///path/to/repo?branch=NAME``,
or ``MLFLOW_TRACKING_URI``) makes every MLflow call read and write the repository's
tracking branch.  The stores are MLflow's own REST clients whose transport is
``gitexp.server._inprocess.InProcessApi``: each call runs the handler ``gitexp server``
runs for the same request, over the same Client, with no HTTP in between.  One
translation of MLflow's semantics serves the plugin and the server.

This package imports mlflow; nothing else in gitexp imports it (``import gitexp`` stays
light).  See docs/mlflow-plugin.md.
"""
