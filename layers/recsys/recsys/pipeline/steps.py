"""One function per state of the pipeline: request model in, result model out. Handlers and tests call these."""

from __future__ import annotations

import datetime as dt
import uuid
from typing import TYPE_CHECKING

from recsys import paths
from recsys.compute import content_sim
from recsys.compute.service import ComputeResult, PartialResult, build_partial, compute_kind
from recsys.contract.kinds import KINDS
from recsys.contract.quality import QualityResult
from recsys.days import Window, yesterday
from recsys.errors import ConfigError, RunInProgress
from recsys.events.parse import DayScope
from recsys.ingest.service import IngestReport, ingest_day
from recsys.paths import Scope
from recsys.pipeline import lease
from recsys.pipeline.models import (
    ComputeRequest,
    ForgetUserRequest,
    FreshnessRequest,
    GcRequest,
    GcResult,
    IngestRequest,
    PartialItem,
    PartialRequest,
    Plan,
    PlanRequest,
    PublishRequest,
    QualityRequest,
    ReleaseRequest,
    ReleaseResult,
    RollbackRequest,
    ValidateRequest,
)
from recsys.publish.freshness import Freshness, check_freshness
from recsys.publish.service import PublishResult, RollbackResult, publish, rollback, signal_store
from recsys.retention import gc
from recsys.retention.forget import ForgetReport, forget_user
from recsys.settings import Settings, fill_scope
from recsys.store import ObjectStore, open_store
from recsys.validate.service import ValidationResult, validate_window

if TYPE_CHECKING:  # the signal store needs the Postgres driver: imported only where a database is used
    pass


def plan(planned: PlanRequest, settings: Settings) -> Plan:
    """Resolve the run: its artifact window, the days to ingest, the kinds to build.

    An explicit window (a backfill) re-ingests every day of it. Without one (the daily schedule) the window is the
    `window_days` days ending yesterday, and only yesterday plus days never ingested are ingested: the other days'
    partitions and partials are reused. Last, the run takes the tenant/surface's run lease (RunInProgress while
    another run holds it), which its last state releases.
    """
    request = planned.input
    store = open_store(settings.store)
    if request.start and request.end:
        window = Window(start=request.start, end=request.end)
        days = window.days
    else:
        end = yesterday()
        window = Window(start=end - dt.timedelta(days=settings.window_days - 1), end=end)
        ingested = {
            day for day in window.days if store.exists(paths.ingest_report(request.tenant, request.surface, day))
        }
        days = [day for day in window.days if day == end or day not in ingested]
    if len(window.days) > settings.max_days_per_run:
        raise ConfigError(f"window {window} has {len(window.days)} days; the limit is {settings.max_days_per_run}")
    raw = fill_scope(request.raw or settings.raw_uri, request.tenant, request.surface)
    if not raw:
        raise ConfigError("no raw events location: set RECSYS_RAW_URI or pass raw")
    catalog = fill_scope(request.catalog or settings.catalog_uri, request.tenant, request.surface)
    kinds = request.kinds or settings.kinds
    skipped: dict[str, str] = {}
    if content_sim.KIND in kinds and not catalog:
        if request.kinds:  # asked for by name: say so before anything runs
            raise ConfigError("content_sim needs a catalog: set RECSYS_CATALOG_URI or pass catalog")
        kinds = [kind for kind in kinds if kind != content_sim.KIND]
        skipped[content_sim.KIND] = "no catalog configured (RECSYS_CATALOG_URI)"
    lease.acquire(store, request.tenant, request.surface, planned.run_id, _lease_ttl(settings))
    event_kinds = [kind for kind in kinds if KINDS.get(kind).source == "events"]
    return Plan(
        tenant=request.tenant,
        surface=request.surface,
        run_id=planned.run_id,
        start=window.start,
        end=window.end,
        days=days,
        kinds=kinds,
        partials=[PartialItem(day=day, kind=kind) for day in days for kind in event_kinds],
        skipped=skipped,
        promote=request.promote,
        raw=raw,
        catalog=catalog,
    )


def _lease_ttl(settings: Settings) -> dt.timedelta:
    return dt.timedelta(seconds=settings.run_lease_seconds)


def _leased_store(
    request: IngestRequest | ValidateRequest | PartialRequest | ComputeRequest | QualityRequest | PublishRequest,
    settings: Settings,
) -> ObjectStore:
    """The store, once this step's run is known to still hold the tenant/surface lease (renewed)."""
    store = open_store(settings.store)
    lease.hold(store, request.tenant, request.surface, request.run_id, _lease_ttl(settings))
    return store


def ingest(request: IngestRequest, settings: Settings) -> IngestReport:
    raw = request.raw or fill_scope(settings.raw_uri, request.tenant, request.surface)  # Plan's raw is filled in
    if not raw:
        raise ConfigError("no raw events location: set RECSYS_RAW_URI or pass raw")
    scope = DayScope(request.tenant, request.surface, request.day, frozenset(settings.event_types))
    store = _leased_store(request, settings)
    return ingest_day(store, raw, scope, settings.database)


def validate(request: ValidateRequest, settings: Settings) -> ValidationResult:
    window = Window(start=request.start, end=request.end)
    store = _leased_store(request, settings)
    result = validate_window(store, request.tenant, request.surface, window, settings.gates, judge=request.days)
    result.raise_for_failures()
    return result


def partial(request: PartialRequest, settings: Settings) -> PartialResult:
    """One day's partial of one event kind (BuildPartials fans them out before the kinds are computed)."""
    store = _leased_store(request, settings)
    return build_partial(store, request.kind, request.tenant, request.surface, request.day, settings)


def compute(request: ComputeRequest, settings: Settings) -> ComputeResult:
    window = Window(start=request.start, end=request.end)
    store = _leased_store(request, settings)
    return compute_kind(store, request.kind, request.tenant, request.surface, window, settings, request.catalog)


def quality(request: QualityRequest, settings: Settings) -> QualityResult:
    from recsys.evaluation.gate import quality_gate  # ranking and metrics: only this step needs them

    window = Window(start=request.start, end=request.end)
    store = _leased_store(request, settings)
    return quality_gate(store, request.tenant, request.surface, window, request.kinds, settings, request.catalog)


def publish_run(request: PublishRequest, settings: Settings) -> PublishResult:
    window = Window(start=request.start, end=request.end)
    with signal_store(settings) as signals:
        return publish(
            _leased_store(request, settings),
            request.tenant,
            request.surface,
            window,
            request.artifacts,
            promote=request.promote,
            run_id=request.run_id,
            quality=request.quality,
            signals=signals,
        )


def release_run(request: ReleaseRequest, settings: Settings) -> ReleaseResult:
    """The run's last state, after success or failure: give the tenant/surface lease back."""
    released = lease.release(open_store(settings.store), request.tenant, request.surface, request.run_id)
    return ReleaseResult(released=released)


def rollback_pointer(request: RollbackRequest, settings: Settings) -> RollbackResult:
    with signal_store(settings) as signals:
        return rollback(open_store(settings.store), request.tenant, request.surface, request.to, signals)


def freshness(request: FreshnessRequest, settings: Settings, now: dt.datetime | None = None) -> Freshness:
    """The scheduled freshness check: each target's current manifest age against the SLO (read only)."""
    targets = paths.parse_targets(",".join(request.targets)) if request.targets is not None else settings.targets
    slo = dt.timedelta(hours=settings.freshness_slo_hours)
    return check_freshness(open_store(settings.store), targets, slo, now or dt.datetime.now(dt.UTC))


def collect_garbage(request: GcRequest, settings: Settings, *, now: dt.datetime | None = None) -> GcResult:
    """The GC function and `recsys gc`: collect each (tenant, surface) under its run lease (retention/gc.py).

    A tenant/surface whose lease a run holds is skipped (reported in `skipped`), not waited for: the next
    collection catches up. A dry run only reads, so it takes no lease.
    """
    store = open_store(settings.store)
    targets = [Scope(request.tenant, request.surface)] if request.tenant and request.surface else gc.scopes(store)
    holder = f"gc-{uuid.uuid4().hex[:12]}"
    reports, skipped = [], {}
    for scope in targets:
        collect = {"now": now, "dry_run": request.dry_run}
        if request.dry_run:
            reports.append(gc.collect(store, scope, settings.retention, settings.window_days, **collect))
            continue
        try:
            lease.acquire(store, scope.tenant, scope.surface, holder, _lease_ttl(settings))
        except RunInProgress as exc:
            skipped[f"{scope.tenant}/{scope.surface}"] = str(exc)
            continue
        try:
            reports.append(gc.collect(store, scope, settings.retention, settings.window_days, **collect))
        finally:
            lease.release(store, scope.tenant, scope.surface, holder)
    return GcResult(reports=reports, skipped=skipped)


def forget_user_events(request: ForgetUserRequest, settings: Settings) -> ForgetReport:
    """`recsys forget-user`: remove one user's canonical events under the run lease (RunInProgress while a run
    holds it: try again when it has ended)."""
    store = open_store(settings.store)
    scope = Scope(request.tenant, request.surface)
    if request.dry_run:
        return forget_user(store, scope, request.user_id, dry_run=True)
    holder = f"forget-user-{uuid.uuid4().hex[:12]}"
    lease.acquire(store, scope.tenant, scope.surface, holder, _lease_ttl(settings))
    try:
        return forget_user(store, scope, request.user_id)
    finally:
        lease.release(store, scope.tenant, scope.surface, holder)
