"""Payloads between the state machine's states. They stay small: URIs and counts, never data."""

from __future__ import annotations

import datetime as dt

from pydantic import BaseModel, ConfigDict, Field, computed_field, field_validator, model_validator

from recsys.contract.kinds import KINDS
from recsys.contract.manifest import ArtifactRef
from recsys.contract.quality import QualityResult
from recsys.days import Window
from recsys.paths import parse_targets, safe_segment
from recsys.retention.gc import GcReport


class _Step(BaseModel):
    model_config = ConfigDict(extra="forbid")

    tenant: str
    surface: str
    run_id: str | None = None

    @field_validator("tenant", "surface")
    @classmethod
    def _segment(cls, value: str, info) -> str:
        return safe_segment(value, info.field_name)


class RunRequest(_Step):
    """The state machine input. With no window (the daily schedule) the run covers yesterday, UTC."""

    start: dt.date | None = None
    end: dt.date | None = None
    promote: bool = Field(False, description="move the pointer even if the window is older than the current one")
    raw: str | None = Field(None, description="raw events location; default RECSYS_RAW_URI")
    catalog: str | None = Field(None, description="catalog file; default RECSYS_CATALOG_URI")
    kinds: list[str] | None = Field(None, description="artifact kinds to build; default RECSYS_KINDS")

    @model_validator(mode="after")
    def _window(self) -> RunRequest:
        if (self.start is None) != (self.end is None):
            raise ValueError("give both start and end, or neither (the daily run: the window ending yesterday)")
        if self.start and self.end and self.end < self.start:
            raise ValueError(f"end {self.end} is before start {self.start}")
        return self

    @field_validator("kinds")
    @classmethod
    def _kinds(cls, value: list[str] | None) -> list[str] | None:
        known = KINDS.names()  # the built-in kinds, then any other registered kind (as RECSYS_KINDS)
        if value is not None and (unknown := sorted(set(value) - set(known))):
            raise ValueError(f"unknown artifact kind(s) {unknown}; known: {list(known)}")
        return value


class PlanRequest(BaseModel):
    """What the Plan state receives: the execution input as given, and the execution name as run id."""

    input: RunRequest
    run_id: str


class PartialItem(BaseModel):
    """One per-day partial to build before the kinds are computed."""

    day: dt.date
    kind: str


class Plan(_Step):
    """The resolved run: what every later state reads from `$.plan`."""

    start: dt.date  # the artifact window
    end: dt.date
    days: list[dt.date]  # the days to (re-)ingest
    kinds: list[str]
    # The (day, kind) partials of the days this run ingests, for every event kind: built in parallel (BuildPartials)
    partials: list[PartialItem] = Field(default_factory=list)
    skipped: dict[str, str] = Field(default_factory=dict)  # kind -> why it is not built in this run
    promote: bool
    raw: str | None
    catalog: str | None

    @property
    def window(self) -> Window:
        return Window(start=self.start, end=self.end)


class IngestRequest(_Step):
    day: dt.date
    raw: str | None = None


class ValidateRequest(_Step):
    start: dt.date
    end: dt.date
    days: list[dt.date] | None = Field(None, description="days to judge (the ones this run ingested); default all")


class PartialRequest(_Step):
    day: dt.date
    kind: str


class ComputeRequest(_Step):
    start: dt.date
    end: dt.date
    kind: str
    catalog: str | None = None


class QualityRequest(_Step):
    start: dt.date
    end: dt.date
    kinds: list[str]
    catalog: str | None = None


class PublishRequest(_Step):
    start: dt.date
    end: dt.date
    promote: bool = False
    artifacts: list[ArtifactRef]
    quality: QualityResult | None = None


class ReleaseRequest(_Step):
    run_id: str


class ReleaseResult(BaseModel):
    released: bool = Field(description="False: the run did not hold the lease (it never took it, or lost it)")


class RollbackRequest(_Step):
    to: str | None = Field(None, description="manifest version; default the current manifest's previous version")


class FreshnessRequest(BaseModel):
    """The scheduled freshness check's input: usually empty (the targets come from RECSYS_TARGETS)."""

    model_config = ConfigDict(extra="forbid")

    targets: list[str] | None = Field(None, description="tenant/surface pairs; default RECSYS_TARGETS")

    @field_validator("targets")
    @classmethod
    def _targets(cls, value: list[str] | None) -> list[str] | None:
        if value is not None:
            parse_targets(",".join(value))
        return value


class GcRequest(BaseModel):
    """The GC function's event (and `recsys gc`): one (tenant, surface), or every one in the store."""

    model_config = ConfigDict(extra="forbid")

    tenant: str | None = None
    surface: str | None = None
    dry_run: bool = Field(False, description="list what would be deleted, with bytes, and delete nothing")

    @field_validator("tenant", "surface")
    @classmethod
    def _segment(cls, value: str | None, info) -> str | None:
        return None if value is None else safe_segment(value, info.field_name)

    @model_validator(mode="after")
    def _both(self) -> GcRequest:
        if (self.tenant is None) != (self.surface is None):
            raise ValueError("give both tenant and surface, or neither (every tenant/surface in the store)")
        return self


class GcResult(BaseModel):
    reports: list[GcReport]
    skipped: dict[str, str] = Field(default_factory=dict, description="tenant/surface -> why (a run holds it)")

    @computed_field
    @property
    def objects(self) -> int:
        return sum(report.objects for report in self.reports)

    @computed_field
    @property
    def bytes(self) -> int:
        return sum(report.bytes for report in self.reports)


class ForgetUserRequest(_Step):
    user_id: str = Field(min_length=1)
    dry_run: bool = False
