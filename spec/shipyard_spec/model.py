"""The pipeline spec: one YAML file per pipeline, validated by these models.

This module is the single source of truth for the spec. It is installed into the
Airflow environment (DAG factory, rollout controller) and into the pipeline image
(step CLIs), so both read the same fields with the same defaults. It imports only
pydantic and the standard library, so DAG parsing stays fast.
"""

from __future__ import annotations

from datetime import date
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, PrivateAttr, field_validator, model_validator

from shipyard_spec.contract import Alias, Step

Fraction = Annotated[float, Field(gt=0, lt=1)]
Identifier = Annotated[str, Field(pattern=r"^[A-Za-z_][A-Za-z0-9_]*$")]


class StrictModel(BaseModel):
    """Rejects unknown keys so a typo in the YAML is an error, not a silent default."""

    model_config = ConfigDict(extra="forbid", frozen=True)


class Schedule(StrictModel):
    """When the training DAG runs; each run owns [data_interval_start, data_interval_end)."""

    cron: str = "0 3 * * 1"
    timezone: str = "UTC"
    start_date: date


class SqlSource(StrictModel):
    """Rows read through SQLAlchemy. `${VAR}` in the URL is expanded from the environment (keep
    credentials there). The pipeline image reads `sqlite:///path` and
    `postgresql://user:password@host:port/database` (psycopg 3; `postgresql+psycopg://` alike)."""

    kind: Literal["sql"]
    url: str
    table: Identifier | None = None
    query: str | None = None
    # Rows ingest reads at a time (database order, server-side cursor where the driver has one):
    # ingest's memory grows with this, not with the interval.
    chunk_rows: Annotated[int, Field(ge=1)] = 100_000

    @model_validator(mode="after")
    def _table_or_query(self) -> SqlSource:
        if (self.table is None) == (self.query is None):
            raise ValueError("give exactly one of 'table' or 'query'")
        return self


class FileSource(StrictModel):
    """Parquet or CSV files read through fsspec (local paths, s3://, gs://, ...)."""

    kind: Literal["files"]
    paths: list[str] = Field(min_length=1)
    format: Literal["parquet", "csv"] = "parquet"


class Columns(StrictModel):
    """The roles of the special columns in the source table."""

    event_time: str | None = None
    id: str
    target: str
    positive_label: str | int = 1

    @field_validator("positive_label", mode="before")
    @classmethod
    def _not_a_yaml_boolean(cls, value: object) -> object:
        if isinstance(value, bool):
            raise ValueError(
                f"is the YAML boolean {value}: unquoted yes/no/true/false/on/off are booleans in YAML; "
                'quote the label exactly as the data spells it, e.g. positive_label: "Yes"'
            )
        return value


class Features(StrictModel):
    """Feature columns, listed explicitly or inferred from the source (minus `exclude`)."""

    numeric: list[str] = []
    categorical: list[str] = []
    infer: bool = False
    exclude: list[str] = []

    @model_validator(mode="after")
    def _explicit_or_inferred(self) -> Features:
        if not self.infer and not (self.numeric or self.categorical):
            raise ValueError("list 'numeric' and/or 'categorical' features, or set 'infer: true'")
        overlap = set(self.numeric) & set(self.categorical)
        if overlap:
            raise ValueError(f"columns both numeric and categorical: {sorted(overlap)}")
        return self


class Bounds(StrictModel):
    """An inclusive range; either end may be open."""

    min: float | None = None
    max: float | None = None

    @model_validator(mode="after")
    def _ordered(self) -> Bounds:
        if self.min is not None and self.max is not None and self.min > self.max:
            raise ValueError(f"min {self.min} is greater than max {self.max}")
        return self


class Expectations(StrictModel):
    """Data expectations; schema checks (columns present, types) are inferred from the spec."""

    row_count: Bounds = Bounds(min=1)
    target_rate: Bounds | None = None
    not_null: list[str] = []
    max_null_fraction: Annotated[float, Field(ge=0, le=1)] = 0.05
    ranges: dict[str, Bounds] = {}
    allowed_values: dict[str, list[str | int | float | bool]] = {}
    unique: list[str] = []


class Split(StrictModel):
    """How the training window is split. `time` is the default and the only choice with event times."""

    policy: Literal["time", "random"] = "time"
    validation_fraction: Fraction = 0.15
    test_fraction: Fraction = 0.15
    seed: int = 42

    @model_validator(mode="after")
    def _leaves_training_rows(self) -> Split:
        if self.validation_fraction + self.test_fraction >= 0.9:
            raise ValueError("validation_fraction + test_fraction must leave at least 10% to train on")
        return self


class Tuning(StrictModel):
    """A bounded hyper-parameter search on the validation split (never the test split)."""

    enabled: bool = False
    max_trials: Annotated[int, Field(ge=1, le=500)] = 20
    timeout_seconds: Annotated[int, Field(ge=1)] = 300


class ModelConfig(StrictModel):
    """The estimator after the shared preprocessing; params go to the XGBoost classifier."""

    type: Literal["xgboost"] = "xgboost"
    params: dict[str, float | int | str | bool] = {}
    early_stopping_rounds: Annotated[int, Field(ge=1)] | None = 50
    tuning: Tuning = Tuning()


class Training(StrictModel):
    """The training window: the snapshots of the last N intervals up to the run's interval end."""

    window_intervals: Annotated[int, Field(ge=1)] = 26


class Evaluation(StrictModel):
    """Test-set evaluation: the decision threshold and the slices to report."""

    threshold: Annotated[float, Field(gt=0, lt=1)] = 0.5
    slices: list[str] = []
    min_slice_size: Annotated[int, Field(ge=1)] = 50


class Gates(StrictModel):
    """A challenger must pass all of these before it is registered."""

    min_roc_auc: Annotated[float, Field(ge=0, le=1)] = 0.5
    max_baseline_shortfall: Annotated[float, Field(ge=0, le=1)] = 0.02
    max_champion_regression: Annotated[float, Field(ge=0, le=1)] = 0.01


class MlflowConfig(StrictModel):
    """Where runs and model versions go in MLflow."""

    experiment: str
    registered_model: Annotated[str, Field(pattern=r"^[A-Za-z0-9_.-]+$")]
    # Airflow connection of the MLflow server the rollout reads and moves aliases in (Airflow side;
    # the steps read MLFLOW_TRACKING_URI). Undefined connection: MLFLOW_TRACKING_URI as well.
    conn_id: str = "mlflow_default"


class StepResources(StrictModel):
    """Kubernetes container resources for one step's pod."""

    cpu: str = "500m"
    memory: str = "1Gi"
    cpu_limit: str | None = None
    memory_limit: str | None = "2Gi"
    gpu: Annotated[int, Field(ge=0)] = 0


# Pod resources used when the spec does not name a step; training gets more room.
DEFAULT_STEP_RESOURCES: dict[Step, StepResources] = {
    Step.TRAIN: StepResources(cpu="1", memory="2Gi", memory_limit="4Gi"),
}


class Metrics(StrictModel):
    """Where canary metrics come from: a Prometheus server, or a direct scrape of /metrics."""

    # `haproxy` reads the local backend's load balancer (HAProxy's Prometheus exporter and its
    # request log: every request as clients saw it; the embedded default); `scrape` reads the
    # predictors' own /metrics (time inside the model only); `prometheus` runs PromQL.
    provider: Literal["haproxy", "prometheus", "scrape"] = "haproxy"
    # Base URL of the Prometheus HTTP API (required with provider `prometheus`).
    prometheus_url: str | None = None
    # Metric names: `shipyard` (our predictor), `knative-legacy` (queue-proxy, Knative <= 1.18),
    # `knative-otel` (Knative >= 1.21 OpenTelemetry names).
    preset: Literal["shipyard", "knative-legacy", "knative-otel"] = "shipyard"
    # PromQL range window; default: the analysis interval. Must cover >= 2 scrapes.
    window_seconds: Annotated[float, Field(gt=0)] | None = None
    # Seconds before a query or scrape counts as "provider unreachable" (an error verdict).
    timeout_seconds: Annotated[float, Field(gt=0)] = 5

    @model_validator(mode="after")
    def _prometheus_needs_url(self) -> Metrics:
        if self.provider == "prometheus" and not self.prometheus_url:
            raise ValueError("provider 'prometheus' needs 'prometheus_url'")
        return self


class KServeTarget(StrictModel):
    """The InferenceService that the kserve backend drives."""

    namespace: str = "shipyard"
    # InferenceService name; default: the pipeline name with `_` turned into `-`.
    name: str | None = None
    # `knative`: spec.predictor.canaryTrafficPercent; `standard`: spec.canary[] (KServe >= 0.20).
    mode: Literal["knative", "standard"] = "knative"
    # The ServingRuntime that serves the model (the chart's shipyard-predictor).
    runtime: str = "shipyard-predictor"
    # Airflow connection of the cluster (cncf.kubernetes KubernetesHook).
    kubernetes_conn_id: str = "kubernetes_default"


class LocalServing(StrictModel):
    """The local backend's load balancer (HAProxy) in front of the predictor processes."""

    # Active health check (`GET /v2/health/ready`) period; a predictor whose check fails (no
    # answer within `health_check_timeout_seconds`, or not 200) gets no new request: a hung
    # predictor leaves within interval + timeout. A refused connection from real traffic takes
    # it out at once; it is back after two good checks.
    health_check_interval_seconds: Annotated[float, Field(gt=0, le=60)] = 1
    # How long a health check may take: longer than a busy predictor's readiness answer (0.5 s
    # measured on a loaded 2-core machine), short enough that a hung one leaves fast.
    health_check_timeout_seconds: Annotated[float, Field(gt=0, le=60)] = 1
    # A predictor that has not answered within this time is given up on; the request is sent
    # again to another predictor (predictions are idempotent) or answered 504.
    server_timeout_seconds: Annotated[float, Field(gt=0, le=600)] = 5
    # How many times a request that got no answer (refused, reset, timed out) is sent again.
    retries: Annotated[int, Field(ge=0, le=10)] = 2
    # HAProxy's request log (the p99 of the haproxy provider) is a ring of this many bytes in
    # HAProxy's memory, ~60 bytes a request: 4 MiB keeps the last ~70,000 requests; older lines
    # are overwritten, nothing is written to disk.
    request_log_bytes: Annotated[int, Field(ge=16_384, le=1 << 30)] = 4 << 20


class Shadow(StrictModel):
    """Prediction comparison of the challenger with the champion before any live traffic moves.

    Replay (always, both backends): the challenger scores a sample of the champion's logged
    production requests; live (optional, `live_seconds`): the stable predictor mirrors a copy
    of its live requests to the challenger for that long (answers discarded). Both compare the
    pairs: decisions flipped at `evaluation.threshold`, |score difference| (mean, p99), PSI of
    the two score distributions and, where labels arrived (`drift.labels`), both AUCs. Fewer
    than `min_rows` pairs is inconclusive, never a pass. Defaults are the safe ones.
    """

    # Logged requests of the champion replayed to the challenger (the newest first).
    sample_rows: Annotated[int, Field(ge=1)] = 2000
    # How far back the champion's prediction log is read, days.
    lookback_days: Annotated[int, Field(ge=1)] = 7
    # Fewer pairs than this: inconclusive (no logs yet is inconclusive, never a pass).
    min_rows: Annotated[int, Field(ge=1)] = 200
    # Largest share of rows whose decision (score >= evaluation.threshold) flips.
    max_decision_flip_ratio: Annotated[float, Field(ge=0, le=1)] = 0.05
    # Largest mean and 99th-percentile |challenger score - champion score|.
    max_mean_abs_diff: Annotated[float, Field(ge=0, le=1)] = 0.05
    max_p99_abs_diff: Annotated[float, Field(ge=0, le=1)] = 0.25
    # Largest PSI between the two score distributions (10 bins on the champion's quantiles).
    max_score_psi: Annotated[float, Field(gt=0)] = 0.2
    # With labels: largest drop of the challenger's AUC below the champion's on the same rows.
    max_auc_drop: Annotated[float, Field(ge=0, le=1)] = 0.02
    min_labelled_rows: Annotated[int, Field(ge=1)] = 100
    # True: while the champion has no logged request yet (its first days), the canary goes on
    # to live traffic with the shadow verdict recorded as inconclusive. False: it waits for logs
    # up to `no_data_deadline_seconds` and is then rolled back.
    skip_without_logs: bool = False
    # Rows per replay request, and how long the challenger may take to answer one.
    batch_size: Annotated[int, Field(ge=1, le=1000)] = 100
    request_timeout_seconds: Annotated[float, Field(gt=0)] = 10
    # Live shadow (local backend): seconds the stable predictor mirrors its requests to the
    # challenger before the first traffic step; None = replay only.
    live_seconds: Annotated[float, Field(gt=0)] | None = None
    # Share of live requests mirrored, and the mirror queue (a full queue drops the copy).
    live_sample_rate: Annotated[float, Field(gt=0, le=1)] = 1.0
    live_queue_size: Annotated[int, Field(ge=1)] = 256


class Rollout(StrictModel):
    """Canary policy in Flagger / Argo Rollouts terms. Defaults are the safe ones.

    A check passes, fails, is inconclusive (fewer than `min_requests`, no data) or is an error
    (metrics provider unreachable). Inconclusive and error never count as a pass: after
    `no_data_deadline_seconds` without a conclusive check the canary is rolled back.
    """

    # `local`: predictor processes behind a local splitter (embedded); `kserve`: an InferenceService.
    backend: Literal["local", "kserve"] = "local"
    # Canary traffic percentages, strictly rising, ending at 100 (promotion).
    steps: list[Annotated[int, Field(ge=1, le=100)]] = [10, 25, 50, 100]
    # Seconds between checks; each check judges the traffic of the interval before it.
    interval_seconds: Annotated[float, Field(gt=0)] = 60
    # Passing checks needed at each step before traffic moves on.
    checks_per_step: Annotated[int, Field(ge=1)] = 1
    # Failed checks that trigger a rollback (Flagger's `threshold`): 1 = the first failure.
    failure_limit: Annotated[int, Field(ge=1)] = 1
    # Fewer canary requests than this in a check's window: inconclusive, not a pass.
    min_requests: Annotated[int, Field(ge=1)] = 20
    # Maximum canary server-error rate (5xx / requests) per check.
    max_error_rate: Annotated[float, Field(ge=0, le=1)] = 0.01
    # Maximum canary p99 latency per check, milliseconds.
    max_p99_latency_ms: Annotated[float, Field(gt=0)] = 250
    # Maximum canary client-error share (4xx / requests) above the stable version's in the same
    # window: a version that rejects what clients send fails even though it "works".
    max_client_error_rate_increase: Annotated[float, Field(ge=0, le=1)] = 0.05
    # Optional: maximum canary error rate as a multiple of the stable version's (floored at 1/requests).
    max_error_rate_ratio: Annotated[float, Field(gt=0)] | None = None
    # How long checks may stay inconclusive/error before the canary counts as failed.
    no_data_deadline_seconds: Annotated[float, Field(gt=0)] = 600
    # How long the canary may take to become ready before it is rolled back.
    progress_deadline_seconds: Annotated[float, Field(gt=0)] = 600
    # Wait before 100% until the model version carries the tag `shipyard.rollout.confirm=true`.
    manual_confirmation: bool = False
    # Roll out a version whose signature rejects requests the champion accepts (a removed or
    # retyped input, a new required one). False: such a version is stopped before traffic moves.
    allow_breaking_schema: bool = False
    # Logged requests (the champion's newest prediction-log rows) replayed against the challenger,
    # with the champion's input example, before any traffic moves; 0 replays the example only.
    replay_logged_requests: Annotated[int, Field(ge=0, le=10_000)] = 100
    # Shadow comparison before the first traffic step (None: no shadow step).
    shadow: Shadow | None = None
    metrics: Metrics = Metrics()
    kserve: KServeTarget = KServeTarget()
    local: LocalServing = LocalServing()

    @model_validator(mode="after")
    def _steps_rise_to_100(self) -> Rollout:
        if any(b <= a for a, b in zip(self.steps, self.steps[1:], strict=False)):
            raise ValueError(f"steps must strictly increase, got {self.steps}")
        if not self.steps or self.steps[-1] != 100:
            raise ValueError(f"the last step must be 100, got {self.steps}")
        if self.backend == "kserve" and self.shadow and self.shadow.live_seconds:
            raise ValueError(
                "shadow.live_seconds needs the local backend: on KServe the stable predictor's mirroring "
                "would need a new stable revision (use the replay shadow; see docs/architecture.md)"
            )
        return self


class LabelsSource(StrictModel):
    """Ground truth that arrives later, joined to prediction logs by the id column."""

    url: str
    table: Identifier
    id_column: str
    label_column: str
    auc_tolerance: Annotated[float, Field(ge=0, le=1)] = 0.05


class Drift(StrictModel):
    """Daily drift check of the champion's prediction logs against its reference profile."""

    cron: str = "0 4 * * *"
    bins: Annotated[int, Field(ge=2, le=100)] = 10
    psi_threshold: Annotated[float, Field(gt=0)] = 0.2
    score_psi_threshold: Annotated[float, Field(gt=0)] = 0.2
    key_features: list[str] = []
    min_rows: Annotated[int, Field(ge=1)] = 100
    labels: LabelsSource | None = None


class Scoring(StrictModel):
    """Batch scoring: a DAG that scores each interval's snapshot with a registered version."""

    # The registry alias whose version scores (the version the predictor serves is `champion`).
    alias: str = Alias.CHAMPION.value
    # Rows scored at a time: the step's memory grows with this, not with the interval.
    batch_rows: Annotated[int, Field(ge=1)] = 100_000


class PipelineSpec(StrictModel):
    """One pipeline: data source, features, training, gates, registry names, rollout and drift."""

    name: Identifier
    description: str = ""
    owner: str = "shipyard"
    tags: list[str] = []
    schedule: Schedule
    source: Annotated[SqlSource | FileSource, Field(discriminator="kind")]
    # What fits the model (train) and scores snapshots (score): pandas in the step process, or Spark
    # (`make spark`; master from SHIPYARD_SPARK_MASTER, docs/architecture.md "Engines"). Ingest,
    # validate and evaluate run on pandas on both. Either way the registered model is the same artifact.
    engine: Literal["pandas", "spark"] = "pandas"
    columns: Columns
    features: Features
    expectations: Expectations = Expectations()
    split: Split = Split()
    training: Training = Training()
    model: ModelConfig = ModelConfig()
    evaluation: Evaluation = Evaluation()
    gates: Gates = Gates()
    mlflow: MlflowConfig
    resources: dict[Step, StepResources] = {}
    rollout: Rollout = Rollout()
    drift: Drift = Drift()
    scoring: Scoring | None = None  # no batch-scoring DAG unless set
    # The YAML text this spec was parsed from (`load_spec`, `loads_spec`); None when it was built
    # from a mapping. The Airflow side hands exactly this text to every step.
    _source_text: str | None = PrivateAttr(default=None)

    @property
    def source_text(self) -> str | None:
        return self._source_text

    @model_validator(mode="after")
    def _coherent(self) -> PipelineSpec:
        if self.split.policy == "random" and self.columns.event_time:
            raise ValueError(
                "split.policy 'random' is not allowed when columns.event_time is set: "
                "a random split leaks the future into training"
            )
        special = {self.columns.id, self.columns.target, self.columns.event_time}
        leaked = special & (set(self.features.numeric) | set(self.features.categorical))
        if leaked:
            raise ValueError(f"features must not include the id/target/event-time columns: {sorted(leaked)}")
        if self.engine == "spark" and self.model.tuning.enabled:
            raise ValueError("model.tuning runs on the pandas engine only: disable it or use engine: pandas")
        return self

    def resources_for(self, step: Step) -> StepResources:
        """Pod resources for one step: the spec's entry, else the step's default."""
        return self.resources.get(step) or DEFAULT_STEP_RESOURCES.get(step, StepResources())
