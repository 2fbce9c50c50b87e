"""Serving configuration, with the seed service's variable names where they exist (docs/reference/configuration.md)."""

from __future__ import annotations

import re

from pydantic import Field, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from recsys import __version__
from recsys.settings import DEFAULT_STORE

DEFAULT_MANIFEST_TEMPLATE = "{store}/registry/current/{tenant}/{surface}/manifest.json"
DEFAULT_MANIFEST_TTL = 60.0  # seconds
DEFAULT_CONFIG_CACHE_TTL = 60.0  # seconds

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
    model_config = SettingsConfigDict(extra="ignore", populate_by_name=True)

    store: str = Field(DEFAULT_STORE, alias="RECSYS_STORE")
    manifest_template: str = Field(DEFAULT_MANIFEST_TEMPLATE, alias="RECSYS_ARTIFACT_MANIFEST_TEMPLATE")
    manifest_ttl: float = Field(DEFAULT_MANIFEST_TTL, alias="RECSYS_ARTIFACT_MANIFEST_TTL", ge=0)
    artifact_cache_bytes: int = Field(512 * 2**20, alias="RECSYS_ARTIFACT_CACHE_BYTES", gt=0)
    config_cache_ttl: float = Field(DEFAULT_CONFIG_CACHE_TTL, alias="RECSYS_CONFIG_CACHE_TTL", ge=0)
    algo_version: str = Field(f"recsys-serverless@{__version__}", alias="RECSYS_ALGO_VERSION")
    explain_max_items: int = Field(50, alias="RECSYS_EXPLAIN_MAX_ITEMS", ge=1)
    explain_require_admin: bool = Field(True, alias="RECSYS_EXPLAIN_REQUIRE_ADMIN")
    max_body_bytes: int = Field(1 << 20, alias="RECSYS_MAX_BODY_BYTES", gt=0)
    build_commit: str = Field("unknown", alias="RECSYS_BUILD_COMMIT")
    build_date: str = Field("unknown", alias="RECSYS_BUILD_DATE")

    @field_validator("manifest_ttl", "config_cache_ttl", mode="before")
    @classmethod
    def _duration(cls, value: object) -> float:
        return parse_duration(value)
