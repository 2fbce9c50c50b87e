"""Configuration: every knob, validated once with pydantic, read from RECSYS_* environment variables.

Nested models use "__" in the variable name, e.g. RECSYS_GATES__MAX_ERROR_RATE=0.1 or
RECSYS_COMPUTE__COOC_TOP_K=20. docs/reference/configuration.md lists them all.
"""

from __future__ import annotations

import json
import os
from functools import cached_property
from typing import Annotated

from pydantic import BaseModel, Field, PositiveFloat, PositiveInt, field_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

from recsys.contract.kinds import BUILTIN_KINDS, KINDS
from recsys.database.settings import DatabaseSettings
from recsys.paths import Scope, parse_targets

ARTIFACT_KINDS = BUILTIN_KINDS  # the built-in kinds, in canonical order: the default RECSYS_KINDS

DEFAULT_STORE = "file://.out"  # RECSYS_STORE's default, for the pipeline, the API and the CLI alike

DEFAULT_EVENT_WEIGHTS = {"exposure": 1.0, "click": 3.0, "add_to_cart": 5.0, "purchase": 10.0}


class GateLimits(BaseModel):
    """Validate-stage gates. Per-day limits apply to each day of the window separately."""

    max_error_rate: float = Field(0.05, ge=0, le=1, description="quarantined / read lines, per day")
    min_events: int = Field(1, ge=0, description="accepted events over the whole window")
    max_events_per_day: PositiveInt = 20_000_000
    max_distinct_items_per_day: PositiveInt = 2_000_000
    max_distinct_sessions_per_day: PositiveInt = 5_000_000
    max_distinct_users_per_day: PositiveInt = 5_000_000
    anomaly_trailing_days: PositiveInt = Field(7, description="days before each day used as its volume baseline")
    anomaly_min_history: int = Field(3, ge=1, description="baseline days needed before the anomaly gate applies")
    anomaly_min_ratio: float = Field(0.2, ge=0, description="day volume / trailing median must be at least this")
    anomaly_max_ratio: PositiveFloat = Field(5.0, description="day volume / trailing median must be at most this")


class ComputeParams(BaseModel):
    """Algorithm knobs of the artifact kinds (see docs/reference/artifacts.md)."""

    @field_validator("popularity_half_life_days", "implicit_half_life_days", mode="before")
    @classmethod
    def _no_decay(cls, value: object) -> object:
        """ "", "none" or "null" (e.g. RECSYS_COMPUTE__POPULARITY_HALF_LIFE_DAYS=none) mean no decay."""
        return None if isinstance(value, str) and value.strip().lower() in ("", "none", "null") else value

    popularity_top_n: PositiveInt = 1000
    popularity_half_life_days: PositiveFloat | None = 7.0
    cooc_min_support: PositiveInt = 1
    cooc_top_k: PositiveInt = 50
    cooc_shrink: Annotated[float, Field(ge=0, allow_inf_nan=False)] = 5.0
    cooc_max_items_per_session: PositiveInt = 200
    implicit_half_life_days: PositiveFloat | None = 30.0
    session_seq_top_k: PositiveInt = 50
    content_sim_top_k: PositiveInt = 50
    # An item's tags draw its candidates from the rarest up, while the items they bring stay within this (the rarest
    # always does): bounds content_sim's work per item whatever the catalog (compute/content_sim.py).
    content_sim_max_tag_items: PositiveInt = 300
    item_knn_top_k: PositiveInt = 50
    item_knn_min_support: PositiveInt = 2
    item_knn_shrink: Annotated[float, Field(ge=0, allow_inf_nan=False)] = 10.0
    item_knn_max_items_per_user: PositiveInt = 200


class QualityGate(BaseModel):
    """Publish's quality gate: refuse to move the pointer when the candidate is worse than what is served."""

    metric: str | None = Field(None, description="e.g. ndcg@10 (recall, precision, ndcg, map, hit_rate); empty = off")
    max_drop: float = Field(0.02, ge=0, description="allowed drop of the metric against the current manifest")
    min_users: PositiveInt = Field(20, description="held-out users needed before the gate judges at all")

    @field_validator("metric", mode="before")
    @classmethod
    def _metric(cls, value: object) -> object:
        if value is None or (isinstance(value, str) and not value.strip()):
            return None
        name, _, k = str(value).strip().lower().partition("@")
        if name not in ("recall", "precision", "ndcg", "map", "hit_rate") or not k.isdigit() or int(k) < 1:
            raise ValueError(f"quality metric {value!r}: use recall|precision|ndcg|map|hit_rate@K, e.g. ndcg@10")
        return f"{name}@{int(k)}"


class Retention(BaseModel):
    """What `recsys gc` and the GC function delete (docs/how-to/retention.md). Kept manifests: the current one and
    the `keep_manifests` newest stored versions; their artifacts are never deleted."""

    keep_manifests: int = Field(10, ge=0, description="newest stored manifest versions kept for rollback")
    artifact_min_age_days: int = Field(
        7, ge=0, description="an artifact no kept manifest names is deleted once it is older than this"
    )
    partial_min_age_days: int = Field(
        7, ge=0, description="partials of days before the daily window, and stale build records, older than this"
    )
    canonical_days: PositiveInt | None = Field(
        None, description="canonical days (partition, report, quarantine) kept, counted back from today; none: all"
    )
    quarantine_days: PositiveInt | None = Field(
        90, description="quarantine files kept, counted back from today by their day; none: all"
    )

    @field_validator("canonical_days", "quarantine_days", mode="before")
    @classmethod
    def _forever(cls, value: object) -> object:
        """ "", "none" or "null" (e.g. RECSYS_RETENTION__CANONICAL_DAYS=none) mean keep forever."""
        return None if isinstance(value, str) and value.strip().lower() in ("", "none", "null") else value


class StoreSettings(BaseSettings):
    """RECSYS_STORE alone: what the CLI's --store defaults to, without validating every other variable."""

    model_config = SettingsConfigDict(env_prefix="RECSYS_", extra="ignore")

    store: str = Field(DEFAULT_STORE, description="where canonical data, artifacts and manifests live")


class Settings(StoreSettings):
    """Everything a Lambda, the local runner or the CLI needs, from RECSYS_* variables."""

    model_config = SettingsConfigDict(env_prefix="RECSYS_", env_nested_delimiter="__", extra="ignore")

    raw_uri: str | None = Field(
        None,
        description="raw events: local dir, s3://bucket/prefix or postgresql://host/db?table=exposure_events; may "
        "contain {tenant} and {surface}",
    )
    catalog_uri: str | None = Field(None, description="catalog CSV/JSONL (local path or s3://); may contain {tenant}")
    # NoDecode: RECSYS_KINDS is a comma-separated list (JSON lists work too), see _split_kinds.
    kinds: Annotated[list[str], NoDecode] = Field(default_factory=lambda: list(ARTIFACT_KINDS))
    event_weights: dict[str, float] = Field(default_factory=lambda: dict(DEFAULT_EVENT_WEIGHTS))
    window_days: PositiveInt = Field(
        30, description="days a scheduled run's artifacts cover (ending yesterday); only new days are ingested"
    )
    max_days_per_run: PositiveInt = 366
    run_lease_seconds: PositiveInt = Field(
        3600,
        description="a run's lease on its tenant/surface lasts this long past its latest step (keep it above twice "
        "the longest step); a run that died without releasing it blocks the next one until then",
    )
    # NoDecode: RECSYS_TARGETS is "tenant/surface,tenant/surface" (paths.parse_targets).
    targets: Annotated[list[Scope], NoDecode] = Field(
        default_factory=list,
        description="the (tenant, surface) pairs the daily run covers; the freshness check reports each of them "
        "(and every pair with a current manifest), published or not",
    )
    freshness_slo_hours: PositiveFloat = Field(
        36, description="a served manifest older than this breaks the freshness SLO (the daily run missed a day)"
    )
    local_concurrency: PositiveInt | None = Field(
        None,
        description="local runs only: Lambda invocations executed at once in-process (default: the CPU count)",
    )
    gates: GateLimits = Field(default_factory=GateLimits)
    compute: ComputeParams = Field(default_factory=ComputeParams)
    quality: QualityGate = Field(default_factory=QualityGate)
    retention: Retention = Field(default_factory=Retention)
    database: DatabaseSettings = Field(default_factory=DatabaseSettings)

    @field_validator("raw_uri", "catalog_uri", mode="before")
    @classmethod
    def _blank_is_unset(cls, value: object) -> object:
        return None if isinstance(value, str) and not value.strip() else value

    @field_validator("targets", mode="before")
    @classmethod
    def _parse_targets(cls, value: object) -> object:
        return parse_targets(value) if isinstance(value, str) else value

    @field_validator("kinds", mode="before")
    @classmethod
    def _split_kinds(cls, value: object) -> object:
        if isinstance(value, str):
            if value.lstrip().startswith("["):
                return json.loads(value)
            return [part.strip() for part in value.split(",") if part.strip()]
        return value

    @field_validator("kinds")
    @classmethod
    def _known_kinds(cls, value: list[str]) -> list[str]:
        known = KINDS.names()  # the built-in kinds, then any other registered kind
        unknown = sorted(set(value) - set(known))
        if unknown:
            raise ValueError(f"unknown artifact kind(s) {unknown}; known: {list(known)}")
        if not value:
            raise ValueError("at least one artifact kind must be enabled")
        return [kind for kind in known if kind in value]

    @field_validator("event_weights")
    @classmethod
    def _weights(cls, value: dict[str, float]) -> dict[str, float]:
        if "exposure" not in value:
            raise ValueError("event_weights must define 'exposure' (the default event_type)")
        bad = {name: weight for name, weight in value.items() if weight < 0}
        if bad:
            raise ValueError(f"event weights must be >= 0: {bad}")
        return value

    @cached_property
    def event_types(self) -> list[str]:
        return sorted(self.event_weights)


def fill_scope(location: str | None, tenant: str, surface: str) -> str | None:
    """A raw or catalog location with {tenant} and {surface} filled in (None stays None). Plan fills the run's
    locations once; a step run on its own without them fills RECSYS_RAW_URI or RECSYS_CATALOG_URI with it."""
    return location.format(tenant=tenant, surface=surface) if location else None


def load_settings(**overrides: object) -> Settings:
    """Settings from the environment, with explicit overrides (CLI flags) winning."""
    return Settings(**{key: value for key, value in overrides.items() if value is not None})


DEFAULT_METRICS_NAMESPACE = "Recsys"


def powertools_service(default: str) -> str:
    """POWERTOOLS_SERVICE_NAME if set, else `default`. Powertools lets an explicit `service=` beat its variable, so
    code that names its service reads the variable itself for the deployment's value to win."""
    return os.environ.get("POWERTOOLS_SERVICE_NAME") or default


def metrics_namespace() -> str:
    """POWERTOOLS_METRICS_NAMESPACE if set, else "Recsys" (the same precedence as `powertools_service`)."""
    return os.environ.get("POWERTOOLS_METRICS_NAMESPACE") or DEFAULT_METRICS_NAMESPACE
