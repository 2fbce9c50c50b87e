"""Serving configuration, with the seed service's variable names where they exist (docs/reference/configuration.md)."""

from __future__ import annotations

import re
from typing import Literal

from pydantic import Field, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from recsys import __version__
from recsys.settings import DEFAULT_STORE

DEFAULT_MANIFEST_TEMPLATE = "{store}/registry/current/{tenant}/{surface}/manifest.json"
DEFAULT_MANIFEST_TTL = 60.0  # seconds
DEFAULT_CONFIG_CACHE_TTL = 60.0  # seconds
DEFAULT_HEALTH_CACHE_DURATION = 60.0  # seconds (the seed's HEALTH_CACHE_DURATION)

_DURATION = re.compile(r"^(?:(\d+(?:\.\d+)?)h)?(?:(\d+(?:\.\d+)?)m(?!s))?(?:(\d+(?:\.\d+)?)s)?(?:(\d+)ms)?$")


def parse_duration(value: object) -> float:
    """Seconds from a number or a Go-style duration ("1m", "30s", "1m30s", "250ms") as the seed's variables use."""
    if isinstance(value, int | float):
        return float(value)
    text = str(value).strip()
    try:
        return float(text)
    except ValueError:
        pass
    match = _DURATION.match(text)
    if not text or not match:
        raise ValueError(f"invalid duration {value!r}: use seconds or e.g. 1m, 30s, 1m30s, 250ms")
    hours, minutes, seconds, millis = (float(part) if part else 0.0 for part in match.groups())
    return hours * 3600 + minutes * 60 + seconds + millis / 1000


class ServeSettings(BaseSettings):
    # An empty variable is an unset one (every field's empty value is its default or invalid): `sam local` passes
    # the template's values that it cannot resolve (RECSYS_SERVE_FROM's Fn::If) as empty strings.
    model_config = SettingsConfigDict(extra="ignore", populate_by_name=True, env_ignore_empty=True)

    store: str = Field(DEFAULT_STORE, alias="RECSYS_STORE")
    manifest_template: str = Field(DEFAULT_MANIFEST_TEMPLATE, alias="RECSYS_ARTIFACT_MANIFEST_TEMPLATE")
    # Where manifests and signals come from: the artifact store (default), or the Postgres signal store that
    # publish writes with RECSYS_DATABASE__SIGNALS (connection: RECSYS_DATABASE__URL / __SECRET_ARN).
    serve_from: Literal["artifacts", "database"] = Field("artifacts", alias="RECSYS_SERVE_FROM")
    manifest_ttl: float = Field(DEFAULT_MANIFEST_TTL, alias="RECSYS_ARTIFACT_MANIFEST_TTL", ge=0)
    artifact_cache_bytes: int = Field(512 * 2**20, alias="RECSYS_ARTIFACT_CACHE_BYTES", gt=0)
    config_cache_ttl: float = Field(DEFAULT_CONFIG_CACHE_TTL, alias="RECSYS_CONFIG_CACHE_TTL", ge=0)
    algo_version: str = Field(f"recsys-serverless@{__version__}", alias="RECSYS_ALGO_VERSION")
    explain_max_items: int = Field(50, alias="RECSYS_EXPLAIN_MAX_ITEMS", ge=1)
    explain_require_admin: bool = Field(True, alias="RECSYS_EXPLAIN_REQUIRE_ADMIN")
    max_body_bytes: int = Field(1 << 20, alias="RECSYS_MAX_BODY_BYTES", gt=0)
    # The operator console (/console): off by default; `recsys serve` turns it on.
    console: bool = Field(False, alias="RECSYS_CONSOLE")
    # Its overview marks a current manifest older than this stale (the pipeline's RECSYS_FRESHNESS_SLO_HOURS).
    freshness_slo_hours: float = Field(36.0, alias="RECSYS_FRESHNESS_SLO_HOURS", gt=0)
    build_commit: str = Field("unknown", alias="RECSYS_BUILD_COMMIT")
    build_date: str = Field("unknown", alias="RECSYS_BUILD_DATE")
    # Rate limits (recsys.serve.rate_limit), per API instance. The tenant limit is the default for tenants whose
    # config has no `rate_limit`; off by default (the seed's is on at 60/30): one Lambda instance serves one request
    # at a time, so the seed's per-process 30/s would cap an instance at a few percent of what it can serve.
    tenant_rate_limit_enabled: bool = Field(False, alias="TENANT_RATE_LIMIT_ENABLED")
    tenant_rate_limit_capacity: int = Field(60, alias="TENANT_RATE_LIMIT_CAPACITY", ge=1)
    tenant_rate_limit_refill_rate: float = Field(30.0, alias="TENANT_RATE_LIMIT_REFILL_RATE", gt=0, allow_inf_nan=False)
    # Per source IP on the paths outside /v1 (health, version, docs): the seed's global per-IP bucket (30, 15/s).
    client_rate_limit_enabled: bool = Field(True, alias="RECSYS_CLIENT_RATE_LIMIT_ENABLED")
    client_rate_limit_capacity: int = Field(30, alias="RECSYS_CLIENT_RATE_LIMIT_CAPACITY", ge=1)
    client_rate_limit_refill_rate: float = Field(
        15.0, alias="RECSYS_CLIENT_RATE_LIMIT_REFILL_RATE", gt=0, allow_inf_nan=False
    )
    # How long /readyz and /health reuse a successful store check (a failed one is retried after 5 s at most).
    health_cache_duration: float = Field(DEFAULT_HEALTH_CACHE_DURATION, alias="HEALTH_CACHE_DURATION", ge=0)
    # Exposure logging (recsys.serve.exposure): where served lists go. Empty: not logged. "firehose://STREAM" (AWS),
    # or a store URI whose {tenant}/{surface}/dt=DAY/ folders ingest reads as raw events (e.g. file://.out/raw).
    exposure_log: str = Field("", alias="RECSYS_EXPOSURE_LOG")
    exposure_log_capacity: int = Field(10_000, alias="RECSYS_EXPOSURE_LOG_CAPACITY", ge=1)
    exposure_log_flush_seconds: float = Field(
        1.0, alias="RECSYS_EXPOSURE_LOG_FLUSH_SECONDS", gt=0, le=900, allow_inf_nan=False
    )

    # Experiments (recsys.serve.experiments): the HMAC key of variant assignment (the seed's names). Changing the
    # salt reshuffles every subject's variant; set one per deployment (empty works, but anyone can then predict it).
    experiment_assignment_enabled: bool = Field(True, alias="EXPERIMENT_ASSIGNMENT_ENABLED")
    experiment_assignment_salt: str = Field("", alias="EXPERIMENT_ASSIGNMENT_SALT", repr=False)

    @field_validator("manifest_ttl", "config_cache_ttl", "health_cache_duration", mode="before")
    @classmethod
    def _duration(cls, value: object) -> float:
        return parse_duration(value)
