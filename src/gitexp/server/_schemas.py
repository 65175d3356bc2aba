"""Request and response bodies of MLflow's REST API 2.0, as pydantic models.

Field names, types and which fields are required follow MLflow's protos
(``service.proto``, ``model_registry.proto``, ``mlflow_artifacts.proto``).
Requests accept int64 fields as numbers or numeric strings (protobuf JSON does)
and ignore unknown fields.  Responses are built by ``_convert`` and only
*declared* here, so /openapi.json describes them; a metric value may be the
string ``"NaN"``, ``"Infinity"`` or ``"-Infinity"``, as MLflow sends it.
"""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field

INT64 = Annotated[int, Field(ge=-(2**63), le=2**63 - 1)]
INT32 = Annotated[int, Field(ge=-(2**31), le=2**31 - 1)]
Double = float | Literal["NaN", "Infinity", "-Infinity"]
RunStatusName = Literal["RUNNING", "SCHEDULED", "FINISHED", "FAILED", "KILLED"]
ViewTypeName = Literal["ACTIVE_ONLY", "DELETED_ONLY", "ALL"]
LoggedModelStatusName = Literal["LOGGED_MODEL_STATUS_UNSPECIFIED", "LOGGED_MODEL_PENDING", "LOGGED_MODEL_READY",
                                "LOGGED_MODEL_UPLOAD_FAILED"]


class Request(BaseModel):
    model_config = ConfigDict(extra="ignore")


class Response(BaseModel):
    model_config = ConfigDict(extra="allow")


# -- shared pieces ---------------------------------------------------------------------------
class KeyValue(Request):
    key: str
    value: str


class KeyValueOut(Response):
    key: str
    value: str


class MetricIn(Request):
    key: str
    value: Double
    timestamp: INT64
    step: INT64 = 0
    model_id: str | None = None
    dataset_name: str | None = None
    dataset_digest: str | None = None


class MetricOut(Response):
    key: str
    value: Double
    timestamp: int
    step: int = 0
    run_id: str | None = None
    model_id: str | None = None
    dataset_name: str | None = None
    dataset_digest: str | None = None


class RunInfoOut(Response):
    run_id: str
    run_uuid: str
    run_name: str | None = None
    experiment_id: str
    user_id: str | None = None
    status: RunStatusName
    start_time: int | None = None
    end_time: int | None = None
    artifact_uri: str
    lifecycle_stage: str


class RunDataOut(Response):
    metrics: list[MetricOut] = []
    params: list[KeyValueOut] = []
    tags: list[KeyValueOut] = []


class DatasetIO(Request):
    name: str
    digest: str
    source_type: str
    source: str
    schema_: str | None = Field(None, alias="schema")
    profile: str | None = None


class DatasetInputIO(Request):
    tags: list[KeyValue] = []
    dataset: DatasetIO


class ModelIO(Request):
    model_id: str


class ModelOutputIO(Request):
    model_id: str
    step: INT64 = 0


class RunInputsOut(Response):
    dataset_inputs: list[DatasetInputIO] = []
    model_inputs: list[ModelIO] = []


class RunOutputsOut(Response):
    model_outputs: list[ModelOutputIO] = []


class RunOut(Response):
    info: RunInfoOut
    data: RunDataOut
    inputs: RunInputsOut | None = None
    outputs: RunOutputsOut | None = None


class ExperimentOut(Response):
    experiment_id: str
    name: str
    artifact_location: str
    lifecycle_stage: str
    last_update_time: int | None = None
    creation_time: int | None = None
    tags: list[KeyValueOut] = []


class Empty(Response):
    pass


class Error(Response):
    error_code: str
    message: str


# -- experiments -----------------------------------------------------------------------------
class CreateExperiment(Request):
    name: str
    artifact_location: str | None = None
    tags: list[KeyValue] = []


class CreateExperimentResponse(Response):
    experiment_id: str


class ExperimentIdQuery(Request):
    experiment_id: str


class ExperimentResponse(Response):
    experiment: ExperimentOut


class ExperimentByNameQuery(Request):
    experiment_name: str


class SearchExperiments(Request):
    max_results: INT64 | None = None
    page_token: str | None = None
    filter: str | None = None
    order_by: list[str] = []
    view_type: ViewTypeName | None = None


class SearchExperimentsResponse(Response):
    experiments: list[ExperimentOut] = []
    next_page_token: str | None = None


class ExperimentIdBody(Request):
    experiment_id: str


class UpdateExperiment(Request):
    experiment_id: str
    new_name: str | None = None


class SetExperimentTag(Request):
    experiment_id: str
    key: str
    value: str


class DeleteExperimentTag(Request):
    experiment_id: str
    key: str


# -- runs ------------------------------------------------------------------------------------
class CreateRun(Request):
    experiment_id: str | None = None
    user_id: str | None = None
    run_name: str | None = None
    start_time: INT64 | None = None
    tags: list[KeyValue] = []


class RunResponse(Response):
    run: RunOut


class RunIdQuery(Request):
    run_id: str | None = None
    run_uuid: str | None = None


class UpdateRun(Request):
    run_id: str | None = None
    run_uuid: str | None = None
    status: RunStatusName | None = None
    end_time: INT64 | None = None
    run_name: str | None = None


class UpdateRunResponse(Response):
    run_info: RunInfoOut


class RunIdBody(Request):
    run_id: str


class LogMetric(Request):
    run_id: str | None = None
    run_uuid: str | None = None
    key: str
    value: Double
    timestamp: INT64
    step: INT64 | None = None
    model_id: str | None = None
    dataset_name: str | None = None
    dataset_digest: str | None = None


class LogParam(Request):
    run_id: str | None = None
    run_uuid: str | None = None
    key: str
    value: str


class SetTag(Request):
    run_id: str | None = None
    run_uuid: str | None = None
    key: str
    value: str


class DeleteTag(Request):
    run_id: str
    key: str


class LogBatch(Request):
    run_id: str
    metrics: list[MetricIn] = []
    params: list[KeyValue] = []
    tags: list[KeyValue] = []


class LogModel(Request):
    run_id: str
    model_json: str


class LogInputs(Request):
    run_id: str
    datasets: list[DatasetInputIO] = []
    models: list[ModelIO] = []


class LogOutputs(Request):
    run_id: str
    models: list[ModelOutputIO] = []


class SearchRuns(Request):
    experiment_ids: list[str] = []
    filter: str | None = None
    run_view_type: ViewTypeName | None = None
    max_results: INT32 | None = None
    order_by: list[str] = []
    page_token: str | None = None
    as_of: str | None = Field(None, description="gitexp extension: search the store as it was at a commit-ish "
                                                   "or an ISO date.")


class SearchRunsResponse(Response):
    runs: list[RunOut] = []
    next_page_token: str | None = None


class GetMetricHistoryQuery(Request):
    run_id: str | None = None
    run_uuid: str | None = None
    metric_key: str
    page_token: str | None = None
    max_results: INT32 | None = None


class GetMetricHistoryBulkIntervalQuery(Request):
    run_ids: list[str]
    metric_key: str
    start_step: int | None = None
    end_step: int | None = None
    max_results: INT32 | None = None


class MetricsResponse(Response):
    metrics: list[MetricOut] = []
    next_page_token: str | None = None


class ListArtifactsQuery(Request):
    run_id: str | None = None
    run_uuid: str | None = None
    path: str | None = None
    page_token: str | None = None


class FileInfoOut(Response):
    path: str
    is_dir: bool
    file_size: int | None = None


class ListArtifactsResponse(Response):
    root_uri: str | None = None
    files: list[FileInfoOut] = []
    next_page_token: str | None = None


class ArtifactListQuery(Request):
    path: str | None = None


class ArtifactListResponse(Response):
    files: list[FileInfoOut] = []


# -- logged models ---------------------------------------------------------------------------
class CreateLoggedModel(Request):
    experiment_id: str
    name: str | None = None
    model_type: str | None = None
    source_run_id: str | None = None
    params: list[KeyValue] = []
    tags: list[KeyValue] = []


class LoggedModelInfoOut(Response):
    model_id: str
    experiment_id: str
    name: str
    creation_timestamp_ms: int | None = None
    last_updated_timestamp_ms: int | None = None
    artifact_uri: str
    status: LoggedModelStatusName
    model_type: str | None = None
    source_run_id: str | None = None
    status_message: str | None = None
    tags: list[KeyValueOut] = []


class LoggedModelDataOut(Response):
    params: list[KeyValueOut] = []
    metrics: list[MetricOut] = []


class LoggedModelOut(Response):
    info: LoggedModelInfoOut
    data: LoggedModelDataOut


class LoggedModelResponse(Response):
    model: LoggedModelOut


class FinalizeLoggedModel(Request):
    model_id: str | None = None
    status: LoggedModelStatusName


class GetLoggedModelQuery(Request):
    allow_deleted: bool | None = None


class DatasetFilter(Request):
    dataset_name: str
    dataset_digest: str | None = None


class LoggedModelOrderBy(Request):
    field_name: str
    ascending: bool = True
    dataset_name: str | None = None
    dataset_digest: str | None = None


class SearchLoggedModels(Request):
    experiment_ids: list[str] = []
    filter: str | None = None
    datasets: list[DatasetFilter] = []
    max_results: INT32 | None = None
    order_by: list[LoggedModelOrderBy] = []
    page_token: str | None = None


class SearchLoggedModelsResponse(Response):
    models: list[LoggedModelOut] = []
    next_page_token: str | None = None


class SetLoggedModelTags(Request):
    model_id: str | None = None
    tags: list[KeyValue] = []


class LogLoggedModelParams(Request):
    model_id: str | None = None
    params: list[KeyValue] = []


class ListLoggedModelArtifactsQuery(Request):
    artifact_directory_path: str | None = None
    page_token: str | None = None


# -- model registry --------------------------------------------------------------------------
class ModelVersionOut(Response):
    name: str
    version: str
    creation_timestamp: int | None = None
    last_updated_timestamp: int | None = None
    user_id: str | None = None
    current_stage: str | None = None
    description: str | None = None
    source: str | None = None
    run_id: str | None = None
    status: Literal["PENDING_REGISTRATION", "FAILED_REGISTRATION", "READY"] = "READY"
    status_message: str | None = None
    tags: list[KeyValueOut] = []
    run_link: str | None = None
    aliases: list[str] = []
    model_id: str | None = None


class AliasOut(Response):
    alias: str
    version: str


class RegisteredModelOut(Response):
    name: str
    creation_timestamp: int | None = None
    last_updated_timestamp: int | None = None
    user_id: str | None = None
    description: str | None = None
    latest_versions: list[ModelVersionOut] = []
    tags: list[KeyValueOut] = []
    aliases: list[AliasOut] = []


class RegisteredModelResponse(Response):
    registered_model: RegisteredModelOut


class ModelVersionResponse(Response):
    model_version: ModelVersionOut


class ModelVersionsResponse(Response):
    model_versions: list[ModelVersionOut] = []
    next_page_token: str | None = None


class RegisteredModelsResponse(Response):
    registered_models: list[RegisteredModelOut] = []
    next_page_token: str | None = None


class CreateRegisteredModel(Request):
    name: str
    tags: list[KeyValue] = []
    description: str | None = None
    deployment_job_id: str | None = None


class RenameRegisteredModel(Request):
    name: str
    new_name: str


class UpdateRegisteredModel(Request):
    name: str
    description: str | None = None
    deployment_job_id: str | None = None


class ModelName(Request):
    name: str


class SearchRegistryQuery(Request):
    filter: str | None = None
    max_results: INT64 | None = None
    order_by: list[str] = []
    page_token: str | None = None


class GetLatestVersions(Request):
    name: str
    stages: list[str] = []


class CreateModelVersion(Request):
    name: str
    source: str
    run_id: str | None = None
    tags: list[KeyValue] = []
    run_link: str | None = None
    description: str | None = None
    model_id: str | None = None


class ModelVersionRef(Request):
    name: str
    version: str


class UpdateModelVersion(Request):
    name: str
    version: str
    description: str | None = None


class TransitionStage(Request):
    name: str
    version: str
    stage: str
    archive_existing_versions: bool


class DownloadUriResponse(Response):
    artifact_uri: str


class SetRegisteredModelTag(Request):
    name: str
    key: str
    value: str


class SetModelVersionTag(Request):
    name: str
    version: str
    key: str
    value: str


class DeleteRegisteredModelTag(Request):
    name: str
    key: str


class DeleteModelVersionTag(Request):
    name: str
    version: str
    key: str


class SetAlias(Request):
    name: str
    alias: str
    version: str


class AliasRef(Request):
    name: str
    alias: str


class ServerInfo(Response):
    store_type: str | None = None
    workspaces_enabled: bool = False
    multipart_uploads_enabled: bool = False
    multipart_downloads_enabled: bool = False
