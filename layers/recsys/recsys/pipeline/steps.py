"""One function per state of the pipeline: request model in, result model out. Handlers and tests call these."""

from __future__ import annotations

from recsys.compute.service import ComputeResult, compute_kind
from recsys.days import Window, iter_days, yesterday
from recsys.errors import ConfigError
from recsys.events.parse import DayScope
from recsys.ingest.service import IngestReport, ingest_day
from recsys.pipeline.models import (
    ComputeRequest,
    IngestRequest,
    Plan,
    PlanRequest,
    PublishRequest,
    RollbackRequest,
    ValidateRequest,
)
from recsys.publish.service import PublishResult, RollbackResult, publish, rollback
from recsys.settings import Settings
from recsys.store import open_store
from recsys.validate.service import ValidationResult, validate_window


def plan(planned: PlanRequest, settings: Settings) -> Plan:
    request = planned.input
    start, end = (request.start, request.end) if request.start else (yesterday(), yesterday())
    window = Window(start=start, end=end)
    days = list(iter_days(window.start, window.end))
    if len(days) > settings.max_days_per_run:
        raise ConfigError(f"window {window} has {len(days)} days; the limit is {settings.max_days_per_run}")
    raw = request.raw or settings.raw_uri
    if not raw:
        raise ConfigError("no raw events location: set RECSYS_RAW_URI or pass raw")
    return Plan(
        tenant=request.tenant,
        surface=request.surface,
        run_id=planned.run_id,
        start=window.start,
        end=window.end,
        days=days,
        kinds=request.kinds or settings.kinds,
        promote=request.promote,
        raw=raw.format(tenant=request.tenant, surface=request.surface),
        catalog=request.catalog or settings.catalog_uri,
    )


def ingest(request: IngestRequest, settings: Settings) -> IngestReport:
    raw = request.raw or settings.raw_uri
    if not raw:
        raise ConfigError("no raw events location: set RECSYS_RAW_URI or pass raw")
    scope = DayScope(request.tenant, request.surface, request.day, frozenset(settings.event_types))
    return ingest_day(open_store(settings.store), raw.format(tenant=request.tenant, surface=request.surface), scope)


def validate(request: ValidateRequest, settings: Settings) -> ValidationResult:
    window = Window(start=request.start, end=request.end)
    result = validate_window(open_store(settings.store), request.tenant, request.surface, window, settings.gates)
    result.raise_for_failures()
    return result


def compute(request: ComputeRequest, settings: Settings) -> ComputeResult:
    window = Window(start=request.start, end=request.end)
    return compute_kind(
        open_store(settings.store), request.kind, request.tenant, request.surface, window, settings, request.catalog
    )


def publish_run(request: PublishRequest, settings: Settings) -> PublishResult:
    window = Window(start=request.start, end=request.end)
    return publish(
        open_store(settings.store),
        request.tenant,
        request.surface,
        window,
        request.artifacts,
        promote=request.promote,
        run_id=request.run_id,
    )


def rollback_pointer(request: RollbackRequest, settings: Settings) -> RollbackResult:
    return rollback(open_store(settings.store), request.tenant, request.surface, request.to)
