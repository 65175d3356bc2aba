"""Request and response bodies of MLflow's REST API 2.0, as pydantic models.

Field names, types and which fields are required follow MLflow's protos
(``service.proto``, ``model_registry.proto``, ``mlflow_artifacts.proto``).
Requests accept int64 fields as numbers or numeric strings (protobuf JSON does)
and ignore unknown fields.  Responses are built by ``_convert`` and only
*declared* here, so /openapi.json describes them; a metric value may be the
string ``"NaN"``, ``"Infinity"`` or ``"-Infinity"``, as MLflow sends it.
"""

from __future__ import annotations

from typing import Annotated, Literal, Optional, Union

from pydantic import BaseModel, ConfigDict, Field

INT64 = Annotated[int, Field(ge=-(2**63), le=2**63 - 1)]
INT32 = Annotated[int, Field(ge=-(2**31), le=2**31 - 1)]
Double = Union[float, Literal["NaN", "Infinity", "-Infinity"]]
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


class MetricOut(Response):
    key: str
    value: Double
    timestamp: int
    step: int = 0
    run_id: Optional[str] = None


class RunInfoOut(Response):
    run_id: str
    run_uuid: str
    run_name: Optional[str] = None
    experiment_id: str
    user_id: Optional[str] = None
    status: RunStatusName
    start_time: Optional[int] = None
    end_time: Optional[int] = None
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
    schema_: Optional[str] = Field(None, alias="schema")
    profile: Optional[str] = None


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
    inputs: Optional[RunInputsOut] = None
    outputs: Optional[RunOutputsOut] = None


class ExperimentOut(Response):
    experiment_id: str
    name: str
    artifact_location: str
    lifecycle_stage: str
    last_update_time: Optional[int] = None
    creation_time: Optional[int] = None
    tags: list[KeyValueOut] = []


class Empty(Response):
    pass


class Error(Response):
    error_code: str
    message: str


# -- experiments -----------------------------------------------------------------------------
class CreateExperiment(Request):
    name: str
    artifact_location: Optional[str] = None
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
    max_results: Optional[INT64] = None
    page_token: Optional[str] = None
    filter: Optional[str] = None
    order_by: list[str] = []
    view_type: Optional[ViewTypeName] = None


class SearchExperimentsResponse(Response):
    experiments: list[ExperimentOut] = []
    next_page_token: Optional[str] = None


class ExperimentIdBody(Request):
    experiment_id: str


class UpdateExperiment(Request):
    experiment_id: str
    new_name: Optional[str] = None


class SetExperimentTag(Request):
    experiment_id: str
    key: str
    value: str


class DeleteExperimentTag(Request):
    experiment_id: str
    key: str


# -- runs ------------------------------------------------------------------------------------
class CreateRun(Request):
    experiment_id: Optional[str] = None
    user_id: Optional[str] = None
    run_name: Optional[str] = None
    start_time: Optional[INT64] = None
    tags: list[KeyValue] = []


class RunResponse(Response):
    run: RunOut


class RunIdQuery(Request):
    run_id: Optional[str] = None
    run_uuid: Optional[str] = None


class UpdateRun(Request):
    run_id: Optional[str] = None
    run_uuid: Optional[str] = None
    status: Optional[RunStatusName] = None
    end_time: Optional[INT64] = None
    run_name: Optional[str] = None


class UpdateRunResponse(Response):
    run_info: RunInfoOut


class RunIdBody(Request):
    run_id: str


class LogMetric(Request):
    run_id: Optional[str] = None
    run_uuid: Optional[str] = None
    key: str
    value: Double
    timestamp: INT64
    step: Optional[INT64] = None
    model_id: Optional[str] = None
    dataset_name: Optional[str] = None
    dataset_digest: Optional[str] = None


class LogParam(Request):
    run_id: Optional[str] = None
    run_uuid: Optional[str] = None
    key: str
    value: str


class SetTag(Request):
    run_id: Optional[str] = None
    run_uuid: Optional[str] = None
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
    filter: Optional[str] = None
    run_view_type: Optional[ViewTypeName] = None
    max_results: Optional[INT32] = None
    order_by: list[str] = []
    page_token: Optional[str] = None
    as_of: Optional[str] = Field(None, description="gitexp extension: search the store as it was at a commit-ish "
                                                   "or an ISO date.")


class SearchRunsResponse(Response):
    runs: list[RunOut] = []
    next_page_token: Optional[str] = None


class GetMetricHistoryQuery(Request):
    run_id: Optional[str] = None
    run_uuid: Optional[str] = None
    metric_key: str
    page_token: Optional[str] = None
    max_results: Optional[INT32] = None


class GetMetricHistoryBulkIntervalQuery(Request):
    run_ids: list[str]
    metric_key: str
    start_step: Optional[int] = None
    end_step: Optional[int] = None
    max_results: Optional[INT32] = None


class MetricsResponse(Response):
    metrics: list[MetricOut] = []
    next_page_token: Optional[str] = None


class ListArtifactsQuery(Request):
    run_id: Optional[str] = None
    run_uuid: Optional[str] = None
    path: Optional[str] = None
    page_token: Optional[str] = None


class FileInfoOut(Response):
    path: str
    is_dir: bool
    file_size: Optional[int] = None


class ListArtifactsResponse(Response):
    root_uri: Optional[str] = None
    files: list[FileInfoOut] = []
    next_page_token: Optional[str] = None


class ArtifactListQuery(Request):
    path: Optional[str] = None


class ArtifactListResponse(Response):
    files: list[FileInfoOut] = []


# -- logged models ---------------------------------------------------------------------------
class CreateLoggedModel(Request):
    experiment_id: str
    name: Optional[str] = None
    model_type: Optional[str] = None
    source_run_id: Optional[str] = None
    params: list[KeyValue] = []
    tags: list[KeyValue] = []


class LoggedModelInfoOut(Response):
    model_id: str
    experiment_id: str
    name: str
    creation_timestamp_ms: Optional[int] = None
    last_updated_timestamp_ms: Optional[int] = None
    artifact_uri: str
    status: LoggedModelStatusName
    model_type: Optional[str] = None
    source_run_id: Optional[str] = None
    status_message: Optional[str] = None
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
    model_id: Optional[str] = None
    status: LoggedModelStatusName


class GetLoggedModelQuery(Request):
    allow_deleted: Optional[bool] = None


class DatasetFilter(Request):
    dataset_name: str
    dataset_digest: Optional[str] = None


class LoggedModelOrderBy(Request):
    field_name: str
    ascending: bool = True
    dataset_name: Optional[str] = None
    dataset_digest: Optional[str] = None


class SearchLoggedModels(Request):
    experiment_ids: list[str] = []
    filter: Optional[str] = None
    datasets: list[DatasetFilter] = []
    max_results: Optional[INT32] = None
    order_by: list[LoggedModelOrderBy] = []
    page_token: Optional[str] = None


class SearchLoggedModelsResponse(Response):
    models: list[LoggedModelOut] = []
    next_page_token: Optional[str] = None


class SetLoggedModelTags(Request):
    model_id: Optional[str] = None
    tags: list[KeyValue] = []


class LogLoggedModelParams(Request):
    model_id: Optional[str] = None
    params: list[KeyValue] = []


class ListLoggedModelArtifactsQuery(Request):
    artifact_directory_path: Optional[str] = None
    page_token: Optional[str] = None


# -- model registry --------------------------------------------------------------------------
class ModelVersionOut(Response):
    name: str
    version: str
    creation_timestamp: Optional[int] = None
    last_updated_timestamp: Optional[int] = None
    user_id: Optional[str] = None
    current_stage: Optional[str] = None
    description: Optional[str] = None
    source: Optional[str] = None
    run_id: Optional[str] = None
    status: Literal["PENDING_REGISTRATION", "FAILED_REGISTRATION", "READY"] = "READY"
    status_message: Optional[str] = None
    tags: list[KeyValueOut] = []
    run_link: Optional[str] = None
    aliases: list[str] = []
    model_id: Optional[str] = None


class AliasOut(Response):
    alias: str
    version: str


class RegisteredModelOut(Response):
    name: str
    creation_timestamp: Optional[int] = None
    last_updated_timestamp: Optional[int] = None
    user_id: Optional[str] = None
    description: Optional[str] = None
    latest_versions: list[ModelVersionOut] = []
    tags: list[KeyValueOut] = []
    aliases: list[AliasOut] = []


class RegisteredModelResponse(Response):
    registered_model: RegisteredModelOut


class ModelVersionResponse(Response):
    model_version: ModelVersionOut


class ModelVersionsResponse(Response):
    model_versions: list[ModelVersionOut] = []
    next_page_token: Optional[str] = None


class RegisteredModelsResponse(Response):
    registered_models: list[RegisteredModelOut] = []
    next_page_token: Optional[str] = None


class CreateRegisteredModel(Request):
    name: str
    tags: list[KeyValue] = []
    description: Optional[str] = None
    deployment_job_id: Optional[str] = None


class RenameRegisteredModel(Request):
    name: str
    new_name: str


class UpdateRegisteredModel(Request):
    name: str
    description: Optional[str] = None
    deployment_job_id: Optional[str] = None


class ModelName(Request):
    name: str


class SearchRegistryQuery(Request):
    filter: Optional[str] = None
    max_results: Optional[INT64] = None
    order_by: list[str] = []
    page_token: Optional[str] = None


class GetLatestVersions(Request):
    name: str
    stages: list[str] = []


class CreateModelVersion(Request):
    name: str
    source: str
    run_id: Optional[str] = None
    tags: list[KeyValue] = []
    run_link: Optional[str] = None
    description: Optional[str] = None
    model_id: Optional[str] = None


class ModelVersionRef(Request):
    name: str
    version: str


class UpdateModelVersion(Request):
    name: str
    version: str
    description: Optional[str] = None


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
    store_type: Optional[str] = None
    workspaces_enabled: bool = False
    multipart_uploads_enabled: bool = False
    multipart_downloads_enabled: bool = False
