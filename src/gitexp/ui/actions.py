"""The UI's actions: POST forms, each one Client call, each a commit with the user's git identity.

Every action first checks that the request comes from this server's own pages
(`check_same_origin`), then answers with a 303 redirect to the page to show
next.  Run edits (tags, names, notes, deletes) are flushed at once, so they are
commits on the tracking branch when the next page loads, like registry changes.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any
from urllib.parse import urlencode, urlsplit

from fastapi import APIRouter, Request
from fastapi.responses import RedirectResponse, Response

from ..client import Client
from ..exceptions import GitexpError, InvalidParameterValue, ResourceAlreadyExists
from ._web import Renderer, Urls, check_same_origin, route_name

NOTE_TAG = "mlflow.note.content"

Form = dict[str, Any]  # a submitted form: a field's value, or a list of them for a repeated field
Done = tuple[str, str]  # (the path to go to next, the flash message's key)


def _safe_next(value: str | None, fallback: str) -> str:
    """A local path to go to next: never another site (open redirect) or a scheme."""
    if not value:
        return fallback
    parts = urlsplit(value)
    if parts.scheme or parts.netloc or not value.startswith("/") or value.startswith("//") or "\\" in value:
        return fallback
    return value


def _with_flash(path: str, flash: str) -> str:
    base, _, query = path.partition("?")
    kept = "&".join(p for p in query.split("&") if p and not p.startswith("flash="))
    return f"{base}?{kept + '&' if kept else ''}{urlencode({'flash': flash})}"


class Actions:
    def __init__(self, client: Client, renderer: Renderer) -> None:
        self.client = client
        self.render = renderer

    async def _form(self, request: Request) -> Form:
        form = await request.form()
        out: dict[str, Any] = {}
        for key, value in form.multi_items():
            if isinstance(value, str):
                if key in out:
                    existing = out[key]
                    out[key] = (existing if isinstance(existing, list) else [existing]) + [value]
                else:
                    out[key] = value
        return out

    def _handler(self, do: Callable[[Request, Form, Urls], Done]) -> Callable[[Request], Awaitable[Response]]:
        async def handle(request: Request) -> Response:
            try:
                check_same_origin(request)
                form = await self._form(request)
                urls = Urls(request)
                # Client calls block on git: run them off the event loop.
                from starlette.concurrency import run_in_threadpool

                target, flash = await run_in_threadpool(do, request, form, urls)
            except GitexpError as exc:
                return self.render.error(request, exc)
            return RedirectResponse(_with_flash(_safe_next(form.get("next"), target), flash), status_code=303)
        return handle

    # -- helpers --------------------------------------------------------------------------------
    @staticmethod
    def _required(form: Form, name: str, what: str | None = None) -> str:
        value = form.get(name)
        if isinstance(value, list):
            value = value[0]
        if value is None or not str(value).strip():
            raise InvalidParameterValue(f"{what or name} is required: fill in the field and submit again")
        return str(value)

    @staticmethod
    def _list(form: Form, name: str) -> list[str]:
        value = form.get(name, [])
        return [v for v in (value if isinstance(value, list) else [value]) if v]

    def _flush(self, run_id: str) -> None:
        self.client.flush(run_id)

    # -- experiments ----------------------------------------------------------------------------
    def create_experiment(self, request: Request, form: Form, url: Urls) -> Done:
        experiment_id = self.client.create_experiment(self._required(form, "name", "An experiment name"))
        return url("experiment", experiment_id=experiment_id), "created"

    def rename_experiment(self, request: Request, form: Form, url: Urls, experiment_id: str) -> Done:
        self.client.rename_experiment(experiment_id, self._required(form, "name", "The new name"))
        return url("experiment", experiment_id=experiment_id), "renamed"

    def delete_experiment(self, request: Request, form: Form, url: Urls, experiment_id: str) -> Done:
        self.client.delete_experiment(experiment_id)
        return url("experiments"), "deleted"

    def restore_experiment(self, request: Request, form: Form, url: Urls, experiment_id: str) -> Done:
        self.client.restore_experiment(experiment_id)
        return url("experiment", experiment_id=experiment_id), "restored"

    def experiment_note(self, request: Request, form: Form, url: Urls, experiment_id: str) -> Done:
        self.client.set_experiment_tag(experiment_id, NOTE_TAG, form.get("note", ""))
        return url("experiment", experiment_id=experiment_id), "saved"

    def experiment_tag(self, request: Request, form: Form, url: Urls, experiment_id: str) -> Done:
        self.client.set_experiment_tag(experiment_id, self._required(form, "key", "A tag key"), form.get("value", ""))
        return url("experiment", experiment_id=experiment_id), "tag-set"

    def experiment_tag_delete(self, request: Request, form: Form, url: Urls, experiment_id: str) -> Done:
        self.client.delete_experiment_tag(experiment_id, self._required(form, "key", "A tag key"))
        return url("experiment", experiment_id=experiment_id), "tag-deleted"

    # -- runs -----------------------------------------------------------------------------------
    def delete_runs(self, request: Request, form: Form, url: Urls) -> Done:
        ids = self._list(form, "run_ids")
        if not ids:
            raise InvalidParameterValue("Select at least one run to delete")
        for run_id in ids:
            self.client.delete_run(run_id)
            self._flush(run_id)
        return url("experiments"), "deleted"

    def restore_runs(self, request: Request, form: Form, url: Urls) -> Done:
        ids = self._list(form, "run_ids")
        if not ids:
            raise InvalidParameterValue("Select at least one run to restore")
        for run_id in ids:
            self.client.restore_run(run_id)
            self._flush(run_id)
        return url("experiments"), "restored"

    def rename_run(self, request: Request, form: Form, url: Urls, run_id: str) -> Done:
        self.client.update_run(run_id, name=self._required(form, "name", "The new run name"))
        self._flush(run_id)
        return url("run", run_id=run_id), "renamed"

    def run_note(self, request: Request, form: Form, url: Urls, run_id: str) -> Done:
        self.client.set_tag(run_id, NOTE_TAG, form.get("note", ""))
        self._flush(run_id)
        return url("run", run_id=run_id), "saved"

    def run_tag(self, request: Request, form: Form, url: Urls, run_id: str) -> Done:
        self.client.set_tag(run_id, self._required(form, "key", "A tag key"), form.get("value", ""))
        self._flush(run_id)
        return url("run", run_id=run_id), "tag-set"

    def run_tag_delete(self, request: Request, form: Form, url: Urls, run_id: str) -> Done:
        self.client.delete_tag(run_id, self._required(form, "key", "A tag key"))
        self._flush(run_id)
        return url("run", run_id=run_id), "tag-deleted"

    # -- registry -------------------------------------------------------------------------------
    def register(self, request: Request, form: Form, url: Urls) -> Done:
        run_id = self._required(form, "run_id", "The run")
        path = form.get("path", "").strip("/")
        name = self._required(form, "name", "A model name")
        self.client.get_run(run_id)
        if path:
            files = self.client.list_artifacts(run_id, path)
        else:
            files = self.client.list_artifacts(run_id)
        if not any(f.path.rsplit("/", 1)[-1] == "MLmodel" for f in files):
            raise InvalidParameterValue(
                f"Artifact directory {path or '(root)'!r} of run {run_id} holds no MLmodel file: "
                "register a directory written by log_model", run_id=run_id, path=path)
        try:
            self.client.create_registered_model(name)
        except ResourceAlreadyExists:
            pass
        source = f"runs:/{run_id}/{path}" if path else f"runs:/{run_id}"
        mv = self.client.create_model_version(name, source, run_id=run_id,
                                              description=form.get("description") or None)
        return url("model_version", name=name, version=mv.version), "registered"

    def model_description(self, request: Request, form: Form, url: Urls, name: str) -> Done:
        self.client.update_registered_model(name, description=form.get("description", ""))
        return url("model", name=name), "saved"

    def model_tag(self, request: Request, form: Form, url: Urls, name: str) -> Done:
        self.client.set_registered_model_tag(name, self._required(form, "key", "A tag key"), form.get("value", ""))
        return url("model", name=name), "tag-set"

    def model_tag_delete(self, request: Request, form: Form, url: Urls, name: str) -> Done:
        self.client.delete_registered_model_tag(name, self._required(form, "key", "A tag key"))
        return url("model", name=name), "tag-deleted"

    def model_alias(self, request: Request, form: Form, url: Urls, name: str) -> Done:
        alias = self._required(form, "alias", "An alias")
        version = self._required(form, "version", "A version")
        self.client.set_registered_model_alias(name, alias, version)
        return url("model", name=name), "alias-set"

    def model_alias_delete(self, request: Request, form: Form, url: Urls, name: str) -> Done:
        self.client.delete_registered_model_alias(name, self._required(form, "alias", "An alias"))
        return url("model", name=name), "alias-deleted"

    def version_stage(self, request: Request, form: Form, url: Urls, name: str, version: str) -> Done:
        archive = form.get("archive_existing_versions") in ("on", "true", "1")
        self.client.transition_model_version_stage(name, version, self._required(form, "stage", "A stage"),
                                                   archive_existing_versions=archive)
        return url("model_version", name=name, version=version), "stage"

    def version_description(self, request: Request, form: Form, url: Urls, name: str, version: str) -> Done:
        self.client.update_model_version(name, version, description=form.get("description", ""))
        return url("model_version", name=name, version=version), "saved"

    def version_tag(self, request: Request, form: Form, url: Urls, name: str, version: str) -> Done:
        self.client.set_model_version_tag(name, version, self._required(form, "key", "A tag key"),
                                          form.get("value", ""))
        return url("model_version", name=name, version=version), "tag-set"

    def version_tag_delete(self, request: Request, form: Form, url: Urls, name: str, version: str) -> Done:
        self.client.delete_model_version_tag(name, version, self._required(form, "key", "A tag key"))
        return url("model_version", name=name, version=version), "tag-deleted"

    # -- wiring ---------------------------------------------------------------------------------
    def routes(self, router: APIRouter) -> None:
        def post(path: str, name: str, method: Callable[..., Done], *params: str) -> None:
            def do(request: Request, form: Form, url: Urls) -> Done:
                return method(request, form, url, *[request.path_params[p] for p in params])
            router.post(path, name=route_name(name), include_in_schema=False, response_model=None)(
                self._handler(do))

        post("/actions/experiments", "action_create_experiment", self.create_experiment)
        e = "/actions/experiments/{experiment_id}"
        post(f"{e}/rename", "action_rename_experiment", self.rename_experiment, "experiment_id")
        post(f"{e}/delete", "action_delete_experiment", self.delete_experiment, "experiment_id")
        post(f"{e}/restore", "action_restore_experiment", self.restore_experiment, "experiment_id")
        post(f"{e}/note", "action_experiment_note", self.experiment_note, "experiment_id")
        post(f"{e}/tags", "action_experiment_tag", self.experiment_tag, "experiment_id")
        post(f"{e}/tags/delete", "action_experiment_tag_delete", self.experiment_tag_delete, "experiment_id")
        post("/actions/runs/delete", "action_delete_runs", self.delete_runs)
        post("/actions/runs/restore", "action_restore_runs", self.restore_runs)
        r = "/actions/runs/{run_id}"
        post(f"{r}/rename", "action_rename_run", self.rename_run, "run_id")
        post(f"{r}/note", "action_run_note", self.run_note, "run_id")
        post(f"{r}/tags", "action_run_tag", self.run_tag, "run_id")
        post(f"{r}/tags/delete", "action_run_tag_delete", self.run_tag_delete, "run_id")
        post("/actions/register", "action_register", self.register)
        m = "/actions/models/{name}"
        post(f"{m}/description", "action_model_description", self.model_description, "name")
        post(f"{m}/tags", "action_model_tag", self.model_tag, "name")
        post(f"{m}/tags/delete", "action_model_tag_delete", self.model_tag_delete, "name")
        post(f"{m}/aliases", "action_model_alias", self.model_alias, "name")
        post(f"{m}/aliases/delete", "action_model_alias_delete", self.model_alias_delete, "name")
        v = "/actions/models/{name}/versions/{version}"
        post(f"{v}/stage", "action_version_stage", self.version_stage, "name", "version")
        post(f"{v}/description", "action_version_description", self.version_description, "name", "version")
        post(f"{v}/tags", "action_version_tag", self.version_tag, "name", "version")
        post(f"{v}/tags/delete", "action_version_tag_delete", self.version_tag_delete, "name", "version")
