"""The layers of docs/ARCHITECTURE.md ("Layers"), checked on the source: who may import whom,
and that nothing outside client.py reaches into a Client's store.

No mocks: the rules are read from the package's own files, and the store interface is
exercised on a real repository and a RestStore pointed at a port where nothing listens.
"""

from __future__ import annotations

import ast
import inspect
import os
from pathlib import Path

import pytest

import gitexp
from gitexp.exceptions import RepositoryRequired
from gitexp.store.interface import TrackingStore

SRC = Path(gitexp.__file__).parent

# Modules every layer may import: errors, entities, schema types and helpers that know
# nothing of a store.
FOUNDATION = {"exceptions", "entities", "types", "_validation", "_names", "code_version", "_git",
              "_artifact_formats"}
# What each layer may import besides itself and FOUNDATION (see docs/ARCHITECTURE.md, "Layers").
MAY_IMPORT = {
    "foundation": set(),
    "store": {"search"},            # lazily: the search index a GitStore owns, searches it answers
    "search": {"store"},            # the read side of the git store
    "client": {"store", "search"},
    "api": {"client"},              # fluent API, artifacts/models/flavors, autologging, datasets
    "hooks": {"client"},
    "web": {"client", "api"},       # server/ and ui/: one web app (server/app.py), the UI its pages
    "cli": {"client", "api", "hooks", "web", "migrate"},
    "migrate": {"client"},          # migrate/: gitexp import/export of MLflow stores (readers, writers)
    "plugin": {"client", "web"},    # mlflow_plugin/: MLflow's stores over the web app's handlers
}
# Store and search modules and names that hold no store: formats, validation, the REST wire
# format, the interface's types and the git runner.  Any layer may use them.
PURE = {
    ("gitexp.store.layout", "*"),
    ("gitexp.store.rest_json", "*"),
    ("gitexp.store.interface", "*"),
    ("gitexp.store.artifacts", "validate_artifact_path"),
    ("gitexp.store.logged_models", "model_id_from_uri"),
    ("gitexp.store.repo", "path_from_uri"),
    ("gitexp.store.repo", "parse_gitexp_uri"),
    ("gitexp.search._filter", "quote_key"),
}
STORE_PRIVATES = {"_store", "_registry", "_logged_models", "_artifacts", "_remote"}


def layer(module: str) -> str:
    parts = module.split(".")
    top = parts[1] if len(parts) > 1 else "__init__"
    if top in FOUNDATION:
        return "foundation"
    if top in ("ui", "server"):
        return "web"
    if top == "mlflow_plugin":
        return "plugin"
    if top == "migrate":
        return "migrate"
    if top in ("store", "search", "client", "hooks", "cli"):
        return top
    if top == "__main__":
        return "cli"
    return "api"


def modules() -> list[tuple[str, Path]]:
    out = []
    for path in sorted(SRC.rglob("*.py")):
        parts = list(path.relative_to(SRC.parent).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts.pop()
        out.append((".".join(parts), path))
    return out


def imports(module: str, path: Path) -> list[tuple[str, str, int]]:
    """(module, name, line) of every gitexp import in the file, at any depth ("*" for a whole module)."""
    package = module if path.name == "__init__.py" else module.rsplit(".", 1)[0]
    out = []
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            out += [(a.name, "*", node.lineno) for a in node.names if a.name.split(".")[0] == "gitexp"]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")[: len(package.split(".")) - node.level + 1]
                target = ".".join(base + ([node.module] if node.module else []))
            else:
                target = node.module or ""
            if target.split(".")[0] != "gitexp":
                continue
            for alias in node.names:
                sub = f"{target}.{alias.name}"
                is_module = (SRC.parent / Path(*sub.split("."))).with_suffix(".py").exists() or \
                    (SRC.parent / Path(*sub.split(".")) / "__init__.py").exists()
                out.append((sub, "*", node.lineno) if is_module else (target, alias.name, node.lineno))
    return out


def allowed(importer: str, target: str, name: str) -> bool:
    if target == "gitexp" and name == "__version__":
        return True
    if (target, "*") in PURE or (target, name) in PURE:
        return True
    mine, theirs = layer(importer), layer(target)
    return theirs == mine or theirs == "foundation" or theirs in MAY_IMPORT[mine]


def test_every_import_follows_the_layer_map():
    wrong = [f"{path.relative_to(SRC.parent)}:{line}: {layer(module)} module {module} imports "
             f"{target}{'' if name == '*' else '.' + name} ({layer(target)})"
             for module, path in modules() for target, name, line in imports(module, path)
             if not allowed(module, target, name)]
    assert not wrong, "imports across the layers of docs/ARCHITECTURE.md:\n" + "\n".join(wrong)


def test_the_map_is_checked_against_real_layers():
    # A map that names no module would pass anything: every layer has modules, and a store
    # module importing the client (an upward import) is refused.
    present = {layer(module) for module, _path in modules()}
    assert present == set(MAY_IMPORT)
    assert not allowed("gitexp.store.tracking", "gitexp.client", "Client")
    assert not allowed("gitexp.server.app", "gitexp.store.tracking", "GitStore")
    assert not allowed("gitexp.ui.routes", "gitexp.search._index", "RunIndex")
    assert allowed("gitexp.server._tracking", "gitexp.store.rest_json", "*")


def test_only_client_py_touches_a_clients_store():
    wrong = []
    for module, path in modules():
        if module == "gitexp.client":
            continue
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.Attribute) and node.attr in STORE_PRIVATES and not (
                    isinstance(node.value, ast.Name) and node.value.id == "self"):
                wrong.append(f"{path.relative_to(SRC.parent)}:{node.lineno}: .{node.attr}")
            if isinstance(node, ast.Call) and getattr(node.func, "id", None) in ("getattr", "setattr", "hasattr") \
                    and len(node.args) > 1 and isinstance(node.args[1], ast.Constant) \
                    and node.args[1].value in STORE_PRIVATES | {"is_remote"}:
                where = f"{path.relative_to(SRC.parent)}:{node.lineno}"
                wrong.append(f"{where}: {node.func.id}(..., {node.args[1].value!r})")
    assert not wrong, "store privates used outside client.py (add a public Client method):\n" + "\n".join(wrong)


def test_no_caller_asks_which_kind_of_store_it_holds():
    found = [f"{path.relative_to(SRC.parent)}" for _module, path in modules() if "is_remote" in path.read_text()]
    assert not found


def test_both_stores_implement_the_interface(repo):
    from gitexp.store.rest import RestStore
    from gitexp.store.tracking import GitStore

    members = [name for name in dir(TrackingStore) if not name.startswith("_")]
    members += list(TrackingStore.__annotations__)
    assert {"search_runs", "registry", "artifacts", "logged_models", "repository_info"} <= set(members)
    git_store = gitexp.Client(str(repo))._store
    rest_store = RestStore("http://127.0.0.1:9")
    for store in (git_store, rest_store):
        missing = [name for name in members if not hasattr(store, name)]
        assert not missing, f"{type(store).__name__} lacks {missing}"
        assert isinstance(store, TrackingStore)
    assert isinstance(git_store, GitStore)


REPOSITORY_ONLY = {
    "repository_info": (), "tracking_tip": (), "ensure_branch": (), "diagnose": (),
    "pull": (None, False), "push": (None, False), "sync": (None, False),
    "checkout_code": ("0" * 32, "out"), "diff_run_code": ("0" * 32, "1" * 32),
    "link_runs_to_commit": ("HEAD", None), "tracking_history": (10, None),
    "tracking_commit": ("HEAD",), "run_keys": (["0"], 1), "put_runs": ([],),
}


@pytest.mark.parametrize("method", sorted(REPOSITORY_ONLY))
def test_a_server_store_names_what_it_cannot_do(method):
    from gitexp.store.rest import RestStore

    store = RestStore("http://127.0.0.1:9")  # nothing is sent: these fail before any request
    with pytest.raises(RepositoryRequired, match="needs the git repository itself") as raised:
        getattr(store, method)(*REPOSITORY_ONLY[method])
    assert raised.value.url == "http://127.0.0.1:9" and raised.value.operation in raised.value.message


def test_a_store_owns_its_parts_and_clients_share_it(repo, tmp_path):
    from gitexp.client import forget_stores

    (repo / "sub").mkdir()
    first, again, inside = gitexp.Client(str(repo)), gitexp.Client(str(repo)), gitexp.Client(str(repo / "sub"))
    store = first._store
    assert again._store is store and inside._store is store  # one store per repository and branch
    for part in ("registry", "logged_models", "artifacts", "search_index"):
        assert getattr(store, part) is getattr(store, part)
        assert getattr(store, part).store is store
    first.search_runs(["0"])
    forget_stores()
    fresh = gitexp.Client(str(repo))._store
    assert fresh is not store and fresh.registry is not store.registry
    assert "search_index" not in store.__dict__  # forget_stores closed the old store's index


def test_client_methods_cover_what_other_layers_needed(repo):
    client = gitexp.Client(str(repo))
    exp = client.create_experiment("layers")
    run = client.create_run(exp)
    run_id = run.info.run_id
    client.log_bytes(run_id, b"hello", "notes/a.txt")
    assert client.get_artifact_kind(run_id, "notes") == "dir"
    assert client.get_artifact_kind(run_id, "notes/a.txt") == "file"
    assert client.get_artifact_kind(run_id, "nothing") is None
    with open(client.get_artifact_local_copy(run_id, "notes/a.txt"), "rb") as fh:
        assert fh.read() == b"hello"
    client.set_terminated(run_id)
    client.flush()
    assert client.resolve_run_id(run_id[:8]) == run_id
    info = client.get_repository_info()
    assert (os.path.realpath(info.path), info.branch, info.ref) == (os.path.realpath(repo), "gitexp",
                                                                     "refs/heads/gitexp")
    assert client.get_tracking_tip() == client.create_tracking_branch()
    client.record_code(run_id, {"commit": "0" * 40, "branch": "main", "dirty": False})
    assert client.list_run_logged_models(run_id) == []
    report = client.diagnose()
    assert report.runs == 1 and report.recovered == [] and report.damaged == []
    assert inspect.signature(client.diagnose).parameters["recover_all"].default is False
