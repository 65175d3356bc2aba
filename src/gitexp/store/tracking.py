"""GitStore: experiments and runs in a git repository.

This is the storage API the Client sits on (store/interface.py's TrackingStore);
nothing above the store reads or writes the tracking branch.  Reads fold the
branch (cached by object id) and overlay this process's pending changes, so a
value logged a microsecond ago is visible.  The store owns its registry, logged
models, artifacts and search index (attributes built on first use).
"""

from __future__ import annotations

import atexit
import hashlib
import logging
import os
import threading
import time
import uuid
import weakref
from collections.abc import Callable, Iterable, Sequence
from typing import TYPE_CHECKING, Any, TypeVar, cast

from .. import _validation as valid
from .._names import random_run_name
from ..entities import (
    Experiment,
    LifecycleStage,
    Metric,
    MetricHistory,
    Run,
    RunInputs,
    RunOutputs,
    RunStatus,
    ViewType,
)
from ..exceptions import (
    BranchCheckedOut,
    InvalidParameterValue,
    RefLocked,
    ResourceAlreadyExists,
    ResourceDoesNotExist,
)
from . import histories, layout
from .branch import TrackingBranch
from .interface import RepositoryInfo, RunRecord, lazy_attribute
from .journal import (
    EDITOR,
    LIVE,
    OWNER,
    Session,
    SessionClosed,
    _once,
    find_dead_journals,
    list_journals,
    orphaned_live_runs,
    publish_dead_owner,
    recover_journal,
    session_changes,
    sweep_temporaries,
)
from .protection import Swept, sweep
from .repo import Repository
from .state import TERMINAL, ExperimentState, RunState

if TYPE_CHECKING:
    import pandas as pd

    from ..code_version import CodeCheckout, CodeDiff
    from ..entities import PagedList
    from ..search._index import RunIndex
    from .artifacts import RunArtifacts
    from .diagnosis import Diagnosis
    from .history import BranchCommit, CommitDetail
    from .logged_models import LoggedModels
    from .registry import ModelRegistry, RegistryState
    from .sync import PullResult, PushResult, SyncResult

_log = logging.getLogger("gitexp")
_T = TypeVar("_T")


# -- sessions of this process, across every store and client ---------------------------------------
class _Sessions:
    def __init__(self) -> None:
        self.lock = threading.RLock()
        self.by_run: dict[tuple[str, str], Session] = {}
        self.thread: threading.Thread | None = None
        self.wake = threading.Event()
        self.stores: weakref.WeakSet[GitStore] = weakref.WeakSet()

    def get(self, repo: Repository, run_id: str) -> Session | None:
        return self.by_run.get((repo.common_dir, run_id))

    def add(self, repo: Repository, session: Session) -> None:
        with self.lock:
            self.by_run[(repo.common_dir, session.run_id)] = session
            if self.thread is None or not self.thread.is_alive():
                self.thread = threading.Thread(target=self._checkpoint_loop, name="gitexp-checkpoint", daemon=True)
                self.thread.start()

    def remove(self, repo: Repository, session: Session) -> None:
        with self.lock:
            if self.by_run.get((repo.common_dir, session.run_id)) is session:
                del self.by_run[(repo.common_dir, session.run_id)]

    def live_paths(self) -> set[str]:
        return {s.path for s in list(self.by_run.values())}

    def _checkpoint_loop(self) -> None:
        while True:
            interval = min((s.branch.repo.checkpoint_seconds for s in list(self.by_run.values())), default=5.0)
            self.wake.wait(min(interval, 1.0))
            self.wake.clear()
            now = time.monotonic()
            for session in list(self.by_run.values()):
                since = session.dirty_since
                if since is not None and now - since >= session.branch.repo.checkpoint_seconds:
                    try:
                        finish_session(session)
                    except Exception as exc:  # keep the journal; try again next time
                        if type(exc) is not getattr(session, "last_failure", None):  # say it once, not every second
                            _log.warning("gitexp: checkpoint of run %s failed (%s); will retry", session.run_id, exc)
                        session.last_failure = type(exc)

    def flush_all(self) -> None:
        for session in list(self.by_run.values()):
            try:
                session.commit(publish=True)
                session.close()
            except Exception as exc:
                _log.warning("gitexp: could not commit run %s at exit (%s); its journal is kept "
                             "and `gitexp doctor` will recover it", session.run_id, exc)
            self.remove(session.branch.repo, session)

    def after_fork(self) -> None:
        # The child owns none of its parent's sessions: it gets its own journals, and lets go
        # of its copies of the parent's (so a parent that dies first is seen dead).
        inherited = list(self.by_run.values())
        self.lock = threading.RLock()
        self.by_run = {}
        for session in inherited:
            session.abandon()
        self.thread = None
        self.wake = threading.Event()


SESSIONS = _Sessions()
atexit.register(SESSIONS.flush_all)
if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=SESSIONS.after_fork)


def finish_session(session: Session, publish: bool | None = None) -> None:
    """Commit a session (a checkpoint, or publish=True: onto the branch) and close it if
    its run needs nothing more."""
    session.join_waiters()  # before locking: the waiters need the lock to record
    with session.lock:
        session.commit(publish=True if session.finished else publish)
        if session.finished:
            session.close()
            SESSIONS.remove(session.branch.repo, session)


def _experiment_id_for(name: str, experiments: dict[str, ExperimentState]) -> str:
    # Derived from the name, so two clones creating the same experiment independently
    # produce one experiment when their branches merge.
    salt = 0
    while True:
        seed = name if salt == 0 else f"{name}\0{salt}"
        digest = hashlib.sha256(seed.encode()).digest()
        candidate = str(int.from_bytes(digest[:8], "big") % 10**18)
        if candidate != layout.DEFAULT_EXPERIMENT_ID and candidate not in experiments:
            return candidate
        salt += 1


class GitStore:
    """Experiments and runs on the tracking branch of one repository."""

    def __init__(self, repo: Repository) -> None:
        self.repo = repo
        self._common_dir = repo.common_dir  # the key of this repository's sessions (SESSIONS.by_run)
        self.branch = TrackingBranch(repo)
        self.journal_dir = os.path.join(repo.state_dir, "journal")
        self._recovery_checked = 0.0
        self.last_sweep: Swept | None = None  # what the last recovery removed (store/protection.py)
        SESSIONS.stores.add(self)

    @property
    def uri(self) -> str:
        return self.repo.work_tree or self.repo.common_dir

    # -- the parts this store owns, built on first use ------------------------------------------------
    @lazy_attribute
    def registry(self) -> ModelRegistry:
        """The model registry on this branch (store/registry/)."""
        from .registry import ModelRegistry

        return ModelRegistry(self)

    @lazy_attribute
    def logged_models(self) -> LoggedModels:
        """MLflow 3's logged models on this branch (store/logged_models.py)."""
        from .logged_models import LoggedModels

        return LoggedModels(self)

    @lazy_attribute
    def artifacts(self) -> RunArtifacts:
        """The runs' artifacts (store/artifacts.py)."""
        from .artifacts import RunArtifacts

        return RunArtifacts(self)

    @lazy_attribute
    def search_index(self) -> RunIndex:
        """The SQLite search index of this branch (search/_index.py), derived from the branch."""
        from ..search._index import RunIndex

        return RunIndex(self)

    def close(self) -> None:
        """Let go of the search index's connections (tests, `forget_stores`)."""
        index = self.__dict__.pop("search_index", None)
        if index is not None:
            index.close()

    # -- the repository -----------------------------------------------------------------------------
    def repository_info(self) -> RepositoryInfo:
        return RepositoryInfo(self.uri, self.repo.common_dir, self.repo.branch, self.repo.ref)

    def tracking_tip(self) -> str | None:
        """The tracking branch's commit id (None before the first commit); reading it never
        creates the branch (from a remote's, as the first write does)."""
        return self.branch.refs.read(self.branch.ref)

    def ensure_branch(self) -> str:
        """Create the tracking branch if it does not exist yet; its tip."""
        return self.branch.ensure()

    def diagnose(self, recover_all: bool = False, progress: Callable[..., Any] | None = None) -> Diagnosis:
        """What `gitexp doctor` reports, after clearing stale locks and recovering dead journals."""
        from .diagnosis import diagnose

        return diagnose(self, recover_all, progress)

    def pull(self, remote: str | None, progress: bool | None) -> PullResult:
        from . import sync

        return sync.pull(self, remote, progress)

    def push(self, remote: str | None, progress: bool | None, no_verify: bool = False) -> PushResult:
        from . import sync

        return sync.push(self, remote, progress, no_verify=no_verify)

    def sync(self, remote: str | None, progress: bool | None) -> SyncResult:
        from . import sync

        return sync.sync(self, remote, progress)

    def checkout_code(self, run_id: str, directory: str) -> CodeCheckout:
        from .. import code_version

        state = self.run_state(run_id)
        return code_version.checkout(self.repo, run_id, state.code, self.code_patch(run_id), directory)

    def diff_run_code(self, run_id: str, other_run_id: str) -> CodeDiff:
        from .. import code_version

        sides = []
        for rid in (run_id, other_run_id):
            state = self.run_state(rid)
            sides.append((rid, state.code, self.code_patch(rid) if state.code else b""))
        return code_version.diff_runs(self.repo, sides[0], sides[1])

    def link_runs_to_commit(self, commit: str, repository: str | None) -> list[str]:
        from . import code_links

        return code_links.link_runs_to_commit(self, commit, repository)

    def tracking_history(self, max_results: int, page_token: str | None, run_id: str | None = None,
                         experiment_id: str | None = None,
                         model_name: str | None = None) -> tuple[list[BranchCommit], str | None]:
        """(commits, next page token) of the branch, newest first, of one run, experiment or
        registered model (now or formerly so named) if given."""
        from . import history

        reg = self.registry.state()
        directory = None
        if model_name is not None:
            directory = reg.by_name.get(model_name) or next(
                (d for d, m in reg.models.items() if m.name == model_name), None)
            if directory is None:
                raise ResourceDoesNotExist(
                    f"No registered model named {model_name!r}, now or in the past; see `gitexp models list`",
                    name=model_name)
        return history.log(self, max_results, page_token, history.path_for(run_id, experiment_id, directory),
                           self._model_names(reg))

    def tracking_commit(self, commit: str) -> CommitDetail:
        from . import history

        return history.commit_detail(self, commit, self._model_names(self.registry.state()))

    @staticmethod
    def _model_names(reg: RegistryState) -> dict[str, str]:
        """Registered model directory -> the name to show."""
        return {d: reg.display.get(d, m.name or d) for d, m in reg.models.items()}

    # -- searching (the search package is this store's read side) -------------------------------------
    def search_runs(self, experiment_ids: Any, filter_string: str | None = "",
                    run_view_type: int = ViewType.ACTIVE_ONLY, max_results: int | None = 1000,
                    order_by: list[str] | None = None, page_token: str | None = None,
                    as_of: Any = None) -> PagedList[Run]:
        from ..search import search_runs

        return search_runs(self, experiment_ids, filter_string, run_view_type, max_results, order_by,
                           page_token, as_of)

    def search_runs_frame(self, experiment_ids: Any, filter_string: str | None = "",
                          run_view_type: int = ViewType.ACTIVE_ONLY, max_results: int | None = None,
                          order_by: list[str] | None = None, as_of: Any = None) -> pd.DataFrame:
        from ..search import search_runs_frame

        return search_runs_frame(self, experiment_ids, filter_string, run_view_type, max_results, order_by, as_of)

    def run_keys(self, experiment_ids: Any, run_view_type: int = ViewType.ACTIVE_ONLY) -> dict[str, list[str]]:
        from ..search import run_keys

        return run_keys(self, experiment_ids, run_view_type)

    def metric_histories(self, run_ids: list[str], keys: list[str] | None) -> list[tuple[str, str, int, int, float]]:
        from ..search import local_metric_histories

        return local_metric_histories(self, run_ids, keys)

    def has_session(self, run_id: str) -> bool:
        """Whether this process writes the run now (its pending changes overlay the branch)."""
        return SESSIONS.get(self.repo, run_id) is not None

    def pending_run_ids(self) -> list[str]:
        """The runs with changes this process has not committed yet."""
        common = self.repo.common_dir
        return [run_id for (where, run_id), session in list(SESSIONS.by_run.items())
                if where == common and session.pending]

    def session_run_ids(self) -> list[str]:
        """The runs this process writes in this repository now."""
        return [run_id for (common, run_id) in list(SESSIONS.by_run) if common == self.repo.common_dir]

    # -- recovery -----------------------------------------------------------------------------
    def recover_dead_journals(self, force: bool = False,
                              progress: Callable[[list[str]], Iterable[str]] = iter,
                              include_unknown: bool = False) -> list[str]:
        """Commit journals whose process died (status KILLED for runs they were running).

        include_unknown also takes journals whose writer cannot be proven dead (another
        machine's, see journal.journal_status); never one whose lock is held."""
        now = time.monotonic()
        if not force and now - self._recovery_checked < 2.0:
            return []
        self._recovery_checked = now
        recovered: list[str] = []
        odb = self.branch.odb
        sweep_temporaries(self.journal_dir)
        dead = find_dead_journals(self.journal_dir, SESSIONS.live_paths(), include_unknown=include_unknown)
        for path in progress(dead):
            try:
                with odb.protected():
                    run_id = recover_journal(self.branch, path)
            except (RefLocked, BranchCheckedOut) as exc:
                # The branch cannot be updated now: hand the journal back (nothing of it was
                # committed) and stop instead of waiting on the same lock once per journal.
                # A stale lock is the caller's problem too (fail fast); a checked-out branch
                # only delays recovery (the caller's own changes wait in its journal).
                _unclaim(path)
                if isinstance(exc, RefLocked):
                    raise
                return recovered
            except Exception as exc:
                _log.warning("gitexp: could not recover journal %s (%s)", path, exc)
                continue
            if run_id:
                recovered.append(run_id)
        for run_id in orphaned_live_runs(self.branch, self.journal_dir):
            if self._session(run_id) is not None:
                continue
            try:
                with odb.protected():
                    publish_dead_owner(self.branch, run_id, [], layout.now_ms(), "live checkpoint of a dead process")
            except RefLocked:
                raise
            except BranchCheckedOut:
                return recovered
            except Exception as exc:
                _log.warning("gitexp: could not recover the live checkpoint of run %s (%s)", run_id, exc)
                continue
            recovered.append(run_id)
        # Only now: what dead sessions kept from `git gc` is on the branch (or was garbage).
        try:
            self.last_sweep = sweep(self.branch, self.journal_dir)
        except OSError as exc:  # a leftover stays until the next sweep; never fail the caller for it
            _log.warning("gitexp: could not remove what dead processes left (%s)", exc)
        return recovered

    def live_journals(self) -> list[tuple[str, int]]:
        """(run id, pid) of journals whose process is still running."""
        return [(header["run_id"], int(header["pid"])) for _path, status, header in self.journals()
                if status == LIVE and header]

    def journals(self) -> list[tuple[str, str, dict[str, Any] | None]]:
        """(path, LIVE | DEAD | UNKNOWN, header) of the journals of other processes."""
        return list_journals(self.journal_dir, SESSIONS.live_paths())

    def damaged(self) -> list[tuple[str, str, str]]:
        """(kind, id, where) of each run and experiment folded around a file that cannot be
        read (see TrackingBranch.read_own_files): where is "<file> line <n>: <problem>; ..."."""
        from ..entities import ViewType
        from ..search import search_runs
        from .state import DAMAGED_TAG

        experiments = self._experiments()
        out = [("experiment", e.experiment_id, e.tags[DAMAGED_TAG])
               for e in experiments.values() if DAMAGED_TAG in e.tags]
        runs = search_runs(self, sorted(experiments), f"tags.`{DAMAGED_TAG}` LIKE '%'", ViewType.ALL, None)
        out += [("run", run.info.run_id, run.data.tags[DAMAGED_TAG]) for run in runs]
        return out

    # -- experiments ------------------------------------------------------------------------------
    def _experiments(self) -> dict[str, ExperimentState]:
        return self.branch.experiments()

    def _experiment_state(self, experiment_id: str) -> ExperimentState:
        experiment_id = valid.experiment_id(experiment_id)
        state = self._experiments().get(experiment_id)
        if state is None or state.name is None:
            raise ResourceDoesNotExist(
                f"No experiment with id {experiment_id!r} exists; "
                "list experiments with `gitexp experiments list`",
                experiment_id=experiment_id,
            )
        return state

    def create_experiment(self, name: str, artifact_location: str | None = None,
                          tags: dict[str, str] | None = None) -> str:
        name = valid.experiment_name(name)
        tag_dict = {valid.validate_key("Tag", k): valid.experiment_tag_value(k, v) for k, v in (tags or {}).items()}
        artifact_location = valid.artifact_location(artifact_location)
        self.recover_dead_journals()
        created: dict[str, str] = {}
        user = self.repo.identity()[0]

        def build(tree: str | None) -> dict[str, Any]:
            experiments = self.branch.experiments(tree)
            for state in experiments.values():
                if state.name == name:
                    where = "in the deleted state " if state.lifecycle_stage == LifecycleStage.DELETED else ""
                    raise ResourceAlreadyExists(
                        f"Experiment {name!r} already exists {where}(id {state.experiment_id}). "
                        + ("Restore it with `gitexp experiments restore` or choose another name."
                           if where else "Use set_experiment to log to it, or choose another name."),
                        name=name,
                    )
            experiment_id = _experiment_id_for(name, experiments)
            created["id"] = experiment_id
            op: dict[str, Any] = {"op": "create", "name": name}
            if artifact_location:
                op["artifact_location"] = artifact_location
            if tag_dict:
                op["tags"] = tag_dict
            ns = layout.event_time_ns()
            doc = {"time": ns // 1_000_000, "user": user, "ops": [op]}
            blob = self.branch.odb.write_blob(layout.dump_yaml(doc))
            from .objects import MODE_BLOB

            return {f"{layout.experiment_dir(experiment_id)}/events/{layout.event_name(ns)}": (MODE_BLOB, blob)}

        self.branch.commit(build, f"experiment {name!r}: create")
        return created["id"]

    def get_experiment(self, experiment_id: str) -> Experiment:
        return self._experiment_state(experiment_id).to_experiment()

    def get_experiment_by_name(self, name: str) -> Experiment | None:
        for state in self._experiments().values():
            if state.name == name:
                return state.to_experiment()
        return None

    def list_experiments(self, view_type: int = ViewType.ACTIVE_ONLY) -> list[Experiment]:
        stages = LifecycleStage.view_type_to_stages(view_type)
        return [s.to_experiment() for s in self._experiments().values()
                if s.name is not None and s.lifecycle_stage in stages]

    def _experiment_event(self, experiment_id: str, ops: list[dict[str, Any]], message: str) -> None:
        self.branch.write_event(layout.experiment_dir(experiment_id), ops, message)

    def rename_experiment(self, experiment_id: str, new_name: str) -> None:
        state = self._experiment_state(experiment_id)
        new_name = valid.experiment_name(new_name)
        if state.lifecycle_stage != LifecycleStage.ACTIVE:
            raise InvalidParameterValue(
                f"Cannot rename experiment {experiment_id} ({state.name!r}): it is deleted. "
                "Restore it first with `gitexp experiments restore`.",
            )
        if new_name == state.name:
            return
        other = self.get_experiment_by_name(new_name)
        if other is not None:
            raise ResourceAlreadyExists(
                f"Cannot rename experiment {state.name!r} to {new_name!r}: experiment "
                f"{other.experiment_id} already has that name",
                name=new_name,
            )
        self._experiment_event(experiment_id, [{"op": "rename", "name": new_name}],
                               f"experiment {state.name!r}: rename to {new_name!r}")

    def delete_experiment(self, experiment_id: str) -> None:
        state = self._experiment_state(experiment_id)
        if state.experiment_id == layout.DEFAULT_EXPERIMENT_ID:
            raise InvalidParameterValue(
                "Cannot delete the default experiment '0': every store keeps it. "
                "Delete its runs instead."
            )
        if state.lifecycle_stage == LifecycleStage.DELETED:
            raise InvalidParameterValue(f"Experiment {experiment_id} ({state.name!r}) is already deleted")
        self._experiment_event(experiment_id, [{"op": "lifecycle", "stage": LifecycleStage.DELETED}],
                               f"experiment {state.name!r}: delete")

    def restore_experiment(self, experiment_id: str) -> None:
        state = self._experiment_state(experiment_id)
        if state.lifecycle_stage == LifecycleStage.ACTIVE:
            raise InvalidParameterValue(f"Experiment {experiment_id} ({state.name!r}) is not deleted")
        self._experiment_event(experiment_id, [{"op": "lifecycle", "stage": LifecycleStage.ACTIVE}],
                               f"experiment {state.name!r}: restore")

    def set_experiment_tags(self, experiment_id: str, tags: dict[str, Any]) -> None:
        state = self._experiment_state(experiment_id)
        if state.lifecycle_stage != LifecycleStage.ACTIVE:
            raise InvalidParameterValue(
                f"Cannot set tags on experiment {experiment_id} ({state.name!r}): it is deleted"
            )
        ops = [{"op": "tag", "key": valid.validate_key("Tag", k), "value": valid.experiment_tag_value(k, v)}
               for k, v in tags.items()]
        if ops:
            self._experiment_event(experiment_id, ops, f"experiment {state.name!r}: set {len(ops)} tag(s)")

    def delete_experiment_tag(self, experiment_id: str, key: str) -> None:
        state = self._experiment_state(experiment_id)
        if key not in state.tags:
            raise ResourceDoesNotExist(f"No tag {key!r} on experiment {experiment_id} ({state.name!r})", key=key)
        self._experiment_event(experiment_id, [{"op": "delete_tag", "key": key}],
                               f"experiment {state.name!r}: delete tag {key!r}")

    # -- runs: reading --------------------------------------------------------------------------
    def _session(self, run_id: str) -> Session | None:
        return SESSIONS.get(self.repo, run_id)

    def run_state(self, run_id: str) -> RunState:
        """The run as committed plus this process's pending changes (shared; do not modify)."""
        valid.run_id(run_id)
        session = self._session(run_id)
        if session is not None:
            with session.lock:
                state = self.branch.read_run(run_id)
                if state is not None or session.pending:
                    state = session.overlay(state if state is not None else RunState(run_id))
        else:
            state = self.branch.read_run(run_id)
        if state is None:
            raise ResourceDoesNotExist(
                f"Run {run_id!r} not found in {self.uri} (branch {self.repo.branch}). "
                "Check the id with `gitexp runs list`; if a colleague logged it, `gitexp pull` first.",
                run_id=run_id,
            )
        return state

    def _lifecycle(self, state: RunState) -> str:
        if state.lifecycle_stage == LifecycleStage.DELETED:
            return LifecycleStage.DELETED
        experiment = self._experiments().get(state.experiment_id)
        if experiment is not None and experiment.lifecycle_stage == LifecycleStage.DELETED:
            return LifecycleStage.DELETED
        return LifecycleStage.ACTIVE

    def to_run(self, state: RunState) -> Run:
        run = state.to_run()
        stage = self._lifecycle(state)
        if stage != run.info.lifecycle_stage:
            run.info._lifecycle_stage = stage
        return run

    def get_run(self, run_id: str) -> Run:
        run = self.to_run(self.run_state(run_id))
        model_inputs, model_outputs = self.logged_models.run_links(run_id)
        if not model_inputs and not model_outputs:
            return run  # the entity a search returns, too
        return Run(run.info, run.data, RunInputs(run.inputs.dataset_inputs, model_inputs), RunOutputs(model_outputs))

    def get_metric_history(self, run_id: str, key: str) -> MetricHistory:
        return MetricHistory(key, run_id, *self.metric_history_arrays(run_id, key))

    def metric_history_arrays(self, run_id: str, key: str, state: RunState | None = None) -> tuple[Any, ...]:
        """(steps, timestamps, values) numpy arrays of a metric's whole history, by step then
        time, exact duplicates dropped: the run's own files (its live checkpoint if running)
        plus points from events and this process's pending ops.  Never a Python object a point."""
        state = state if state is not None else self.run_state(run_id)
        own = self.branch.own_tree(run_id)
        with_points = state.points.get(key)
        parts = [self.branch.own_history(own, key, run_id)]
        if with_points:
            parts.append(histories.arrays(with_points))
        return histories.combine(parts)

    def resolve_run_id(self, ref: str) -> str:
        """A full run id from itself or a unique prefix of at least 4 characters."""
        ref = ref.strip()
        known = set(self.branch.run_trees())
        known.update(self.session_run_ids())
        known.update(self.branch.live_commits())  # runs whose first checkpoints are not on the branch yet
        if ref in known:
            return ref
        matches = sorted(r for r in known if r.startswith(ref)) if len(ref) >= 4 else []
        if len(matches) == 1:
            return matches[0]
        if len(matches) > 1:
            raise InvalidParameterValue(
                f"Run id prefix {ref!r} is ambiguous: it matches {', '.join(m[:12] for m in matches[:5])}"
                f"{'...' if len(matches) > 5 else ''}; give more characters", run_id=ref)
        raise ResourceDoesNotExist(
            f"Run {ref!r} not found in {self.uri} (branch {self.repo.branch}). "
            "Check the id with `gitexp runs list`; if a colleague logged it, `gitexp pull` first.",
            run_id=ref,
        )

    # -- runs: writing ----------------------------------------------------------------------------
    def _writable_session(self, run_id: str) -> Session:
        """This process's session for a run, opening an editor session if needed.

        One session per run per process: threads that write to a run at the same time
        share it (opening is serialized), so every acknowledged write is committed."""
        valid.run_id(run_id)
        session = self._session(run_id)
        if session is not None and not session.closed:
            return session
        state = self.run_state(run_id)
        self._check_active(run_id, state)
        self.recover_dead_journals()
        return self._open_editor(run_id)

    def _with_session(self, run_id: str, write: Callable[[Session], _T], check: bool = True) -> _T:
        """`write(session)` under the session's lock, on this process's session for the run.

        The session a writer picks can be committed and closed (by the checkpoint thread,
        or another thread ending or flushing the run) before the writer records into it;
        then the write goes to a fresh session instead, so every write that returns is
        journaled in a session that commits it.  check=False skips the checks that the
        run exists and is active (delete and restore)."""
        for _attempt in range(10000):
            if check:
                session = self._writable_session(run_id)
            else:
                found = self._session(run_id)
                session = found if found is not None and not found.closed else self._open_editor(run_id)
            try:
                with session.lock:
                    if not session.closed:
                        return write(session)
            except SessionClosed:
                pass
        raise RuntimeError(f"could not record to run {run_id}: its sessions kept closing")

    def _open_editor(self, run_id: str) -> Session:
        with SESSIONS.lock:
            session = self._session(run_id)
            if session is None or session.closed:
                session = Session(self.branch, run_id, EDITOR, self.journal_dir)
                SESSIONS.add(self.repo, session)
            return session

    def _check_active(self, run_id: str, state: RunState) -> None:
        if self._lifecycle(state) != LifecycleStage.ACTIVE:
            raise InvalidParameterValue(
                f"Run {run_id!r} is deleted; restore it (`gitexp runs restore {run_id}`) before logging to it",
                run_id=run_id,
            )

    def create_run(self, experiment_id: str | None, user_id: str | None = None,
                   start_time: int | None = None, tags: dict[str, str] | list[Any] | None = None,
                   run_name: str | None = None) -> Run:
        experiment_id = valid.experiment_id(experiment_id or layout.DEFAULT_EXPERIMENT_ID)
        experiment = self._experiment_state(experiment_id)
        if experiment.lifecycle_stage != LifecycleStage.ACTIVE:
            raise InvalidParameterValue(
                f"Cannot create a run in experiment {experiment_id} ({experiment.name!r}): it is deleted. "
                "Restore it with `gitexp experiments restore` or use another experiment.",
                experiment_id=experiment_id,
            )
        run_id = uuid.uuid4().hex
        ops = self._create_ops(run_id, experiment_id, user_id, start_time, tags, run_name)
        self.branch.check_writable()  # refuse before anything is accepted, not at the first commit
        self.recover_dead_journals()
        state = RunState(run_id)
        session = Session(self.branch, run_id, OWNER, self.journal_dir, state)
        session.record(ops)
        SESSIONS.add(self.repo, session)
        return self.to_run(state)

    def _create_ops(self, run_id: str, experiment_id: str, user_id: str | None, start_time: int | None,
                    tags: dict[str, str] | list[Any] | None, run_name: str | None) -> list[dict[str, Any]]:
        """The ops that start a run: validated, defaults filled in.  The one way a run begins,
        for create_run (a new id, now) and put_runs (another store's id, user and times)."""
        tag_dict = _as_dict(tags)
        for k, v in list(tag_dict.items()):
            tag_dict[valid.validate_key("Tag", k)] = valid.tag_value(k, v)
        valid.run_fields(start_time=start_time, run_name=run_name, user_id=user_id)
        name_tag = tag_dict.get("mlflow.runName")
        if run_name and name_tag and run_name != name_tag:
            raise InvalidParameterValue(
                f"Both run_name={run_name!r} and tag mlflow.runName={name_tag!r} were given; "
                "pass only one, or the same value"
            )
        run_name = run_name or name_tag or random_run_name()
        if user_id is None:
            user_id = tag_dict.get("mlflow.user") or self.repo.identity()[0]
        start_time = int(start_time if start_time is not None else layout.now_ms())
        ops: list[dict[str, Any]] = [{
            "op": "create", "experiment_id": experiment_id, "user_id": user_id,
            "start_time": start_time, "status": "RUNNING", "run_name": run_name,
        }]
        ops += [{"op": "tag", "key": k, "value": v} for k, v in tag_dict.items() if k != "mlflow.runName"]
        return ops

    def put_runs(self, records: Sequence[RunRecord]) -> dict[str, str]:
        """Write whole runs of another store (gitexp import) with their own ids, users, names and
        times, all in ONE commit of the branch.  Returns run id -> "created", "updated" or
        "unchanged".

        A run not on the branch gets the own files a session would have committed for it: the
        ops begin with `_create_ops` (as create_run's) and `own_changes` (as every owner
        checkpoint's) writes them; a deletion is an event, as delete_run's.  A run already on
        the branch gets one event holding the ops that bring it up to the record: new tags and
        params, new metric points, status and end, name, lifecycle, inputs and changed artifacts
        (what MLflow cannot change -- a param's value, a start time -- is left, and nothing the
        record lacks is deleted).  So importing again writes only what is new."""
        from .artifacts import ArtifactView

        experiments = self._experiments()
        for record in records:
            valid.run_id(record.run_id)
            if record.experiment_id not in experiments or experiments[record.experiment_id].name is None:
                raise ResourceDoesNotExist(f"No experiment with id {record.experiment_id!r} for run "
                                           f"{record.run_id}", experiment_id=record.experiment_id)
        self.branch.check_writable()
        self.recover_dead_journals()
        outcome: dict[str, str] = {}
        threshold = self.artifacts.threshold()
        external: list[Any] = []

        def artifact_ops(record: RunRecord) -> list[dict[str, Any]]:
            from .artifacts import validate_artifact_path

            return [self.artifacts.stage_bytes(validate_artifact_path(path, "artifact path", allow_root=False),
                                               read(), threshold, external)
                    for path, read in sorted(record.artifacts.items())]

        def new_run(record: RunRecord) -> dict[str, tuple[bytes, str] | None]:
            ops = self._create_ops(record.run_id, record.experiment_id, record.user_id, record.start_time,
                                   record.tags, record.run_name)
            ops += self._record_ops(record, RunState(record.run_id), {}, new=True)
            ops += artifact_ops(record)
            state = RunState(record.run_id, keep_points=False)
            state.apply_all(ops)
            return session_changes(self.branch, record.run_id, OWNER, state, ops)

        def changed_run(record: RunRecord, state: RunState) -> dict[str, tuple[bytes, str] | None]:
            points = {key: self.metric_history_arrays(record.run_id, key, state) for key in record.metrics}
            ops = self._record_ops(record, state, points)
            if record.artifacts:
                view = ArtifactView(self.branch.odb, self.branch.subtree(self.branch.own_tree(record.run_id),
                                                                         "artifacts"), state.artifacts)
                have = {path: f.sha for path, f in view.files("").items()}
                for op in artifact_ops(record):
                    if have.get(op["path"]) != op["sha"]:
                        ops.append(op)
            return session_changes(self.branch, record.run_id, EDITOR, None, ops) if ops else {}

        def build() -> dict[str, Any]:
            changes: dict[str, Any] = {}
            known = self.branch.run_trees()
            for record in records:
                if record.run_id in known:
                    found = changed_run(record, self.run_state(record.run_id))
                    outcome[record.run_id] = "updated" if found else "unchanged"
                else:
                    found = new_run(record)
                    outcome[record.run_id] = "created"
                changes.update(found)
            return changes

        known = self.branch.run_trees()
        created = sum(1 for r in records if r.run_id not in known)
        self.branch.commit(_once(build), f"import {len(records)} run(s) ({created} new)\n")
        return outcome

    @staticmethod
    def _record_ops(record: RunRecord, state: RunState, points: dict[str, tuple[Any, ...]],
                    new: bool = False) -> list[dict[str, Any]]:
        """The ops that bring `state` (a new run's after its create ops, or a committed run's with
        `points` its metric histories as arrays) up to `record`."""
        ops: list[dict[str, Any]] = []
        if not new and record.run_name and record.run_name != state.run_name:
            ops.append({"op": "name", "run_name": valid.tag_value("mlflow.runName", record.run_name)})
        if not new:  # a new run's tags are in its create ops
            for key, value in record.tags.items():
                if key != "mlflow.runName" and state.tags.get(key) != value:
                    ops.append({"op": "tag", "key": valid.validate_key("Tag", key),
                                "value": valid.tag_value(key, value)})
        for key, value in record.params.items():
            if key not in state.params:
                ops.append({"op": "param", "key": valid.validate_key("Param", key),
                            "value": valid.param_value(key, value)})
        for key, history in record.metrics.items():
            valid.validate_key("Metric", key)
            have: set[tuple[int, int, str]] = set()
            if key in points:
                steps, times, values = points[key]
                have = {(int(s), int(t), histories.number(float(v)))
                        for s, t, v in zip(steps, times, values, strict=True)}
            for step, timestamp, point_value in history:
                if (int(step), int(timestamp), histories.number(float(point_value))) not in have:
                    ops.append({"op": "metric", "key": key, "value": float(point_value),
                                "timestamp": int(timestamp), "step": int(step)})
        for dataset, tags in record.inputs:
            ident = (dataset.get("name"), dataset.get("digest"), tags.get("mlflow.data.context"))
            if not any((i["dataset"].get("name"), i["dataset"].get("digest"),
                        i["tags"].get("mlflow.data.context")) == ident for i in state.inputs):
                ops.append({"op": "input", "dataset": dict(dataset), "tags": dict(tags)})
        status = record.status if record.status in TERMINAL or record.status != state.status else None
        end_time = record.end_time if status in TERMINAL else None
        if status is not None and (status != state.status or end_time != state.end_time):
            RunStatus.from_string(status)
            ops.append({"op": "status", "status": status, "end_time": end_time})
        if record.lifecycle_stage != state.lifecycle_stage:
            if not LifecycleStage.is_valid(record.lifecycle_stage):
                raise InvalidParameterValue(f"Run {record.run_id}: unknown lifecycle stage "
                                            f"{record.lifecycle_stage!r}", run_id=record.run_id)
            ops.append({"op": "lifecycle", "stage": record.lifecycle_stage})
        return ops

    def log_batch(self, run_id: str, metrics: Iterable[Metric] = (), params: Iterable[Any] = (),
                  tags: Iterable[Any] = ()) -> None:
        ops: list[dict[str, Any]] = []
        new_params: dict[str, str] = {}
        for p in params:
            key = valid.validate_key("Param", p.key)
            value = valid.param_value(key, p.value)
            if key in new_params and new_params[key] != value:
                raise InvalidParameterValue(
                    f"Param {key!r} appears twice in one batch with different values "
                    f"({new_params[key]!r} and {value!r})", key=key)
            new_params[key] = value
        linked: list[Metric] = []  # points logged with model_id: the logged model's record too
        for m in metrics:
            key = valid.validate_key("Metric", m.key)
            ops.append({"op": "metric", "key": key, "value": valid.metric_value(key, m.value),
                        "timestamp": valid.metric_timestamp(key, m.timestamp), "step": valid.metric_step(key, m.step)})
            if getattr(m, "model_id", None):
                op = ops[-1]
                linked.append(Metric(key, op["value"], op["timestamp"], op["step"], m.model_id,
                                     m.dataset_name, m.dataset_digest))
        if linked:
            for model_id in {m.model_id for m in linked}:
                self.logged_models.get(cast(str, model_id))  # an unknown model fails before anything is logged
        for t in tags:
            key = valid.validate_key("Tag", t.key)
            ops.append({"op": "tag", "key": key, "value": valid.tag_value(key, t.value)})
            if key == "mlflow.runName":
                ops[-1] = {"op": "name", "run_name": ops[-1]["value"]}

        def write(session: Session) -> None:
            batch = list(ops)  # a retry on a fresh session starts again from here
            if new_params:
                current = self.run_state(run_id).params
                for key, value in new_params.items():
                    old = current.get(key)
                    if old is not None and old != value:
                        raise InvalidParameterValue(
                            f"Changing param values is not allowed. Param {key!r} was already logged "
                            f"with value {old!r} for run {run_id}; attempted value {value!r}. "
                            "Log it under another key or in a new (nested) run.",
                            key=key, old_value=old, new_value=value,
                        )
                    if old is None:
                        batch.append({"op": "param", "key": key, "value": value})
            if batch:
                session.record(batch)

        self._with_session(run_id, write)
        if linked:
            self.logged_models.log_metrics(run_id, linked)

    def log_metric(self, run_id: str, key: str, value: Any, timestamp: int | None, step: int | None) -> None:
        """The hot path: validate, journal one line, done."""
        key = valid.validate_key("Metric", key)
        value = valid.metric_value(key, value)
        # time_ns() // 10**6 is layout.now_ms() without a call: this path is measured in ns.
        timestamp = time.time_ns() // 1_000_000 if timestamp is None else valid.metric_timestamp(key, timestamp)
        step = valid.metric_step(key, step)
        session = SESSIONS.by_run.get((self._common_dir, run_id)) or self._writable_session(run_id)
        try:
            session.record_metric(key, value, timestamp, step)
        except SessionClosed:
            self._with_session(run_id, lambda s: s.record_metric(key, value, timestamp, step))

    def set_tag(self, run_id: str, key: str, value: Any) -> None:
        key = valid.validate_key("Tag", key)
        value = valid.tag_value(key, value)
        op = {"op": "name", "run_name": value} if key == "mlflow.runName" else {"op": "tag", "key": key, "value": value}
        self._with_session(run_id, lambda s: s.record([op]))

    def delete_tag(self, run_id: str, key: str) -> None:
        state = self.run_state(run_id)
        self._check_active(run_id, state)
        if key not in state.tags:
            raise ResourceDoesNotExist(f"No tag {key!r} on run {run_id}", run_id=run_id, key=key)
        self._with_session(run_id, lambda s: s.record([{"op": "delete_tag", "key": key}]))

    def log_inputs(self, run_id: str, inputs: list[tuple[dict[str, Any], dict[str, Any]]]) -> None:
        ops = [{"op": "input", "dataset": d, "tags": t} for d, t in inputs]
        if ops:
            self._with_session(run_id, lambda s: s.record(ops))

    def record_code(self, run_id: str, code: dict[str, Any], tags: dict[str, str]) -> None:
        ops: list[dict[str, Any]] = [{"op": "code", "code": code}]
        ops += [{"op": "tag", "key": k, "value": v} for k, v in tags.items()]
        self._with_session(run_id, lambda s: s.record(ops))

    def update_run_info(self, run_id: str, status: str | int | None = None, end_time: int | None = None,
                        run_name: str | None = None) -> None:
        valid.run_fields(end_time=end_time)
        ops: list[dict[str, Any]] = []
        if run_name:
            ops.append({"op": "name", "run_name": valid.tag_value("mlflow.runName", run_name)})
        if status is not None:
            status = RunStatus.to_string(status) if isinstance(status, int) else str(status)
            RunStatus.from_string(status)
            if status in TERMINAL:
                end_time = int(end_time if end_time is not None else layout.now_ms())
            ops.append({"op": "status", "status": status, "end_time": end_time if status in TERMINAL else None})
        def write(session: Session) -> Session:
            if status is not None and status not in TERMINAL and session.mode == EDITOR:
                session.resume()  # a resumed run: batch its logging until it ends
            if ops:
                session.record(ops)
            if status in TERMINAL:
                session.keep_open = False
            return session

        session = self._with_session(run_id, write)
        if status in TERMINAL:
            finish_session(session)

    def _lifecycle_change(self, run_id: str, stage: str) -> None:
        state = self.run_state(run_id)
        if state.lifecycle_stage == stage:
            verb = "deleted" if stage == LifecycleStage.DELETED else "active"
            raise InvalidParameterValue(f"Run {run_id} is already {verb}", run_id=run_id)
        def record(s: Session) -> Session:
            s.record([{"op": "lifecycle", "stage": stage}])
            return s

        session = self._with_session(run_id, record, check=False)
        finish_session(session)

    def delete_run(self, run_id: str) -> None:
        self._lifecycle_change(run_id, LifecycleStage.DELETED)

    def restore_run(self, run_id: str) -> None:
        self._lifecycle_change(run_id, LifecycleStage.ACTIVE)

    def flush(self, run_id: str | None = None) -> None:
        """Commit pending changes now (of one run, or of every run of this repository)."""
        sessions = [self._session(run_id)] if run_id else [
            s for (common, _), s in list(SESSIONS.by_run.items()) if common == self.repo.common_dir
        ]
        for session in sessions:
            if session is not None:
                finish_session(session, publish=True)

    def checkpoint(self, run_id: str) -> None:
        """What the checkpoint thread does for a run, now: commit its pending changes to its
        live ref, or to the branch at every `gitexp.publishEvery`-th checkpoint."""
        session = self._session(run_id)
        if session is not None:
            finish_session(session)

    def capture_code(self, run_id: str, capture: Callable[[], None]) -> None:
        """Run `capture` (which records the code version) in a thread; the run's session
        waits for it before it ends, so a short run still gets its code version."""
        thread = threading.Thread(target=capture, name="gitexp-code-capture", daemon=True)
        session = self._session(run_id)
        thread.start()
        if session is not None:
            session.wait_for(thread)

    def code_patch(self, run_id: str) -> bytes:
        self.run_state(run_id)
        self.flush(run_id)
        return self.branch.code_patch(run_id) or b""


def _unclaim(path: str) -> None:
    """Rename a journal this process claimed for recovery (journal.recover_journal) back."""
    claimed = f"{path.split('.recovering.')[0]}.recovering.{os.getpid()}"
    try:
        os.rename(claimed, path if ".recovering." not in path else path.split(".recovering.")[0])
    except FileNotFoundError:
        pass


def _as_dict(tags: dict[str, Any] | list[Any] | None) -> dict[str, str]:
    if tags is None:
        return {}
    if isinstance(tags, dict):
        return dict(tags)
    return {t.key: t.value for t in tags}

