"""The recommend API's operations, independent of HTTP: the FastAPI routes, the Lambda and the CLI call these.

Every operation takes the resolved `Caller` (its tenant scopes everything it reads) and returns plain models.
"""

from __future__ import annotations

import datetime as dt
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from recsys.errors import ArtifactInvalid, ConfigError, ManifestNotFound, PointerConflict, PublishRefused
from recsys.paths import Scope
from recsys.serve import ranking
from recsys.serve.audit import AuditLog, RequestInfo
from recsys.serve.auth import ApiKeysLike, Caller
from recsys.serve.experiments import assign
from recsys.serve.exposure import ExposureLog, ServedItem, ServedList, exposure_log
from recsys.serve.models import (
    Experiment,
    Item,
    Meta,
    MetaExperiment,
    NormalizedRecommend,
    RecommendRequest,
    RecommendResponse,
    SimilarRequest,
    ValidateResponse,
    Warning_,
    normalize_recommend,
    normalize_similar,
)
from recsys.serve.observability import count, logger
from recsys.serve.problems import Problem, rate_limited
from recsys.serve.rate_limit import Limit, RateLimiter, retry_after
from recsys.serve.reader import ArtifactIncompatible, ArtifactReader, LoadedManifest, ManifestIncompatible
from recsys.serve.rules import Rule, parse_rules
from recsys.serve.settings import ServeSettings
from recsys.serve.tenant_config import EffectiveConfig, TenantConfig
from recsys.serve.tenant_store import Document, TenantDocuments, VersionMismatch
from recsys.serve.ttl_cache import TtlCache
from recsys.store import ObjectStore, StoreError, open_store

if TYPE_CHECKING:
    from recsys.contract.manifest import Manifest
    from recsys.publish.service import RollbackResult

CACHE_TARGETS = ("config", "rules", "manifest", "artifacts", "popularity")
CONFIG_RETRY_SECONDS = 5.0
READINESS_RETRY_SECONDS = 5.0
AUDIT_ACTIONS = {"config": ("config.update", "tenant_config"), "rules": ("rules.update", "tenant_rules")}


def report_stale_manifest(tenant: str, surface: str, error: Exception) -> None:
    """A manifest refresh failed and the last good one is served: log it and count it as a CloudWatch metric."""
    logger.warning("manifest refresh failed for %s/%s, serving the last good one: %s", tenant, surface, error)
    count("ManifestRefreshFailures", tenant)


@dataclass(frozen=True)
class Readiness:
    """The last store check: whether it answered, and when (UTC)."""

    ready: bool
    checked_at: dt.datetime


@dataclass(frozen=True)
class _TenantState:
    """The tenant's config and rules as last read."""

    config: Document | None
    rules: Document | None
    parsed_config: TenantConfig
    parsed_rules: list[Rule]
    rate_limit: Limit | None  # None: unlimited


@dataclass
class RecommendService:
    settings: ServeSettings
    store: ObjectStore
    reader: ArtifactReader
    documents: TenantDocuments
    api_keys: ApiKeysLike | None = None
    clock: Callable[[], float] = time.monotonic
    on_stale: Callable[[str, str, Exception], None] | None = None
    limiter: RateLimiter = field(default_factory=RateLimiter)
    audit: AuditLog | None = None  # None: AuditLog(store)
    exposures: ExposureLog | None = None  # every served list (RECSYS_EXPOSURE_LOG); None: not logged
    _tenants: TtlCache[str, _TenantState] = field(init=False)
    _readiness: TtlCache[str, Readiness] = field(init=False)

    def __post_init__(self) -> None:
        self._tenants = TtlCache(clock=self.clock)  # one entry per tenant that made a request
        self._readiness = TtlCache(clock=self.clock)
        if self.audit is None:
            self.audit = AuditLog(self.store)

    @classmethod
    def from_settings(cls, settings: ServeSettings, **kwargs: Any) -> RecommendService:
        store = open_store(settings.store)
        options = dict(
            template=settings.manifest_template,
            manifest_ttl=settings.manifest_ttl,
            cache_bytes=settings.artifact_cache_bytes,
            on_stale=report_stale_manifest,
        )
        if settings.serve_from == "database":
            from recsys.database.connection import SharedConnection  # the driver: only in database mode
            from recsys.database.settings import DatabaseEnvironment
            from recsys.serve.reader.database import DatabaseReader

            database = DatabaseEnvironment().database
            if not database.configured:
                raise ConfigError(
                    "RECSYS_SERVE_FROM=database needs RECSYS_DATABASE__URL or RECSYS_DATABASE__SECRET_ARN"
                )
            reader: ArtifactReader = DatabaseReader(store, SharedConnection(database), **options)
        else:
            reader = ArtifactReader(store, **options)
        kwargs.setdefault("exposures", exposure_log(settings))
        return cls(settings=settings, store=store, reader=reader, documents=TenantDocuments(store), **kwargs)

    # --- tenant config and rules -------------------------------------------------------------------------------

    def _tenant(self, tenant: str) -> _TenantState:
        return self._tenants.get(tenant, lambda previous: self._load_tenant(tenant, previous))

    def _load_tenant(self, tenant: str, previous: _TenantState | None) -> tuple[_TenantState, float]:
        try:
            config = self.documents.get(tenant, "config")
            rules = self.documents.get(tenant, "rules")
        except StoreError as exc:
            if previous is None:
                raise
            # Like manifests: keep serving what was last read, and look again in a few seconds.
            logger.warning("tenant %s config/rules refresh failed, serving the last read: %s", tenant, exc)
            return previous, CONFIG_RETRY_SECONDS
        try:
            parsed_config = TenantConfig.parse(config.data if config else None)
            parsed_rules = parse_rules(rules.data) if rules else []
        except ValueError as exc:  # validated on PUT, so only a hand-edited object gets here
            raise Problem(500, "RECSYS_INVALID_CONFIG", f"stored tenant config or rules are invalid: {exc}") from None
        state = _TenantState(
            config=config,
            rules=rules,
            parsed_config=parsed_config,
            parsed_rules=parsed_rules,
            rate_limit=self._rate_limit(parsed_config),
        )
        return state, self.settings.config_cache_ttl

    # --- rate limit ----------------------------------------------------------------------------------------------

    def _rate_limit(self, config: TenantConfig | None) -> Limit | None:
        """The tenant's own `rate_limit` over the TENANT_RATE_LIMIT_* defaults; None = unlimited."""
        own, settings = (config.rate_limit if config else None), self.settings
        if (own is None and not settings.tenant_rate_limit_enabled) or (own is not None and not own.enabled):
            return None
        rate = own.rate if own is not None and own.rate is not None else settings.tenant_rate_limit_refill_rate
        burst = own.burst if own is not None and own.burst is not None else settings.tenant_rate_limit_capacity
        return Limit(rate=rate, burst=burst)

    def admit(self, caller: Caller) -> None:
        """Take a token from the caller's tenant bucket, or raise 429 RECSYS_RATE_LIMIT_EXCEEDED with Retry-After.
        Without the tenant's config (the store failing on a first request) the defaults apply."""
        try:
            limit = self._tenant(caller.tenant).rate_limit
        except (StoreError, Problem):
            limit = self._rate_limit(None)
        if limit is None:
            return
        wait = self.limiter.acquire(("tenant", caller.tenant), limit)
        if wait:
            logger.info("tenant rate limit exceeded", extra={"retry_after_seconds": wait})
            raise rate_limited("tenant rate limit exceeded", retry_after(wait))

    def _signals(self, tenant: str, surface: str) -> LoadedManifest | None:
        """The (tenant, surface)'s signals: the one place the request's tenant and surface become a checked Scope."""
        try:
            return self.reader.signals(Scope(tenant, surface))
        except (ManifestIncompatible, ArtifactIncompatible) as exc:
            raise Problem(422, "RECSYS_ARTIFACT_INCOMPATIBLE", f"artifact incompatible: {exc}") from None

    def _meta(
        self,
        caller: Caller,
        surface: str,
        segment: str,
        request_id: str,
        state: _TenantState,
        loaded: LoadedManifest | None,
        returned: int,
        algo: str | None = None,
        experiment: Experiment | None = None,
    ) -> Meta:
        return Meta(
            tenant_id=caller.tenant,
            surface=surface,
            segment=segment,
            # The seed's: "<version>:<algo>" when the config (here also a variant) sets the algo mode.
            algo_version=f"{self.settings.algo_version}:{algo}" if algo else self.settings.algo_version,
            config_version=state.config.version if state.config else None,
            rules_version=state.rules.version if state.rules else None,
            manifest_version=loaded.manifest.manifest_version if loaded else None,
            request_id=request_id,
            counts={"returned": returned} if returned else None,
            experiment=MetaExperiment(id=experiment.id, variant=experiment.variant or None)
            if experiment is not None and experiment.id
            else None,
        )

    # --- operations --------------------------------------------------------------------------------------------

    def recommend(
        self,
        caller: Caller,
        request: RecommendRequest,
        request_id: str,
        now: dt.datetime | None = None,
        *,
        manifest: Manifest | None = None,
    ) -> RecommendResponse:
        """`manifest`: rank with this stored version instead of the surface's current one (the console's
        side-by-side; the API always serves the current one)."""
        normalized, warnings = normalize_recommend(request, explain_max_items=self.settings.explain_max_items)
        self._check_explain(caller, normalized)
        return self.recommend_normalized(caller, normalized, warnings, request_id, now, manifest=manifest)

    def recommend_normalized(
        self,
        caller: Caller,
        normalized: NormalizedRecommend,
        warnings: list[Warning_],
        request_id: str,
        now: dt.datetime | None = None,
        *,
        manifest: Manifest | None = None,
    ) -> RecommendResponse:
        state = self._tenant(caller.tenant)
        if manifest is None:
            loaded = self._signals(caller.tenant, normalized.surface)
        else:
            loaded = self.reader.signals_of(manifest)
        now = now or normalized.now or dt.datetime.now(dt.UTC)
        config = state.parsed_config.for_surface(normalized.surface)
        if normalized.experiment is not None and (normalized.experiment.id or "").strip():
            normalized, config = self._experiment(state.parsed_config, normalized, config, now)
        propensities = None
        if loaded is None:
            warnings.append(
                Warning_(code="SIGNAL_UNAVAILABLE", detail=f"no manifest for {caller.tenant}/{normalized.surface}")
            )
            items = []
        else:
            warnings.extend(self._stale_warning(loaded))
            ranked = ranking.rank(normalized, loaded.signals, config, state.parsed_rules, now, request_id)
            items, warnings, propensities = ranked.items, warnings + ranked.warnings, ranked.propensities
        meta = self._meta(
            caller,
            normalized.surface,
            normalized.segment,
            request_id,
            state,
            loaded,
            len(items),
            config.algo,
            normalized.experiment,
        )
        if self.exposures is not None and items:
            self.exposures.record(self._served(normalized, meta, items, propensities))
        return RecommendResponse(items=items, meta=meta, warnings=warnings or None)

    def _experiment(
        self, tenant: TenantConfig, normalized: NormalizedRecommend, config: EffectiveConfig, now: dt.datetime
    ) -> tuple[NormalizedRecommend, EffectiveConfig]:
        """Assign the request's experiment variant (recsys.serve.experiments) and apply it: the request then carries
        the variant (so the meta and the exposure record do) and the config the variant's overrides."""
        requested = normalized.experiment
        if requested is None or not requested.id:
            return normalized, config
        assignment = assign(
            tenant.experiment(requested.id),
            requested.id,
            requested.variant,
            normalized.subject,
            normalized.surface,
            now,
            self.settings.experiment_assignment_salt.encode(),
            assigning=self.settings.experiment_assignment_enabled,
        )
        if assignment.variant != requested.variant:
            experiment = Experiment(id=requested.id, variant=assignment.variant)
            normalized = normalized.model_copy(update={"experiment": experiment})
        if assignment.applied is not None:
            config = config.with_variant(assignment.applied)
        return normalized, config

    def _served(
        self,
        normalized: NormalizedRecommend,
        meta: Meta,
        items: list[Item],
        propensities: list[float] | None = None,
    ) -> ServedList:
        experiment = normalized.experiment
        if propensities is None:
            served = [ServedItem(item.item_id, item.rank - 1, item.score) for item in items]
        else:  # exploration chose them: each with its propensity
            served = [
                ServedItem(item.item_id, item.rank - 1, item.score, propensity)
                for item, propensity in zip(items, propensities, strict=True)
            ]
        return ServedList(
            request_id=meta.request_id,
            tenant=meta.tenant_id,
            surface=meta.surface,
            segment=meta.segment,
            served_at=dt.datetime.now(dt.UTC),
            items=served,
            user_id=normalized.user.user_id,
            session_id=normalized.user.session_id,
            anonymous_id=normalized.user.anonymous_id,
            manifest_version=meta.manifest_version,
            algo_version=meta.algo_version,
            experiment_id=experiment.id if experiment else None,
            experiment_variant=experiment.variant if experiment else None,
        )

    def validate(self, caller: Caller, request: RecommendRequest, request_id: str) -> ValidateResponse:
        normalized, warnings = normalize_recommend(request, explain_max_items=10**9)
        meta = Meta(
            tenant_id=caller.tenant,
            surface=normalized.surface,
            segment=normalized.segment,
            algo_version=self.settings.algo_version,
            request_id=request_id,
        )
        return ValidateResponse(normalized_request=normalized.as_seed_json(), warnings=warnings or None, meta=meta)

    def similar(self, caller: Caller, request: SimilarRequest, request_id: str) -> RecommendResponse:
        normalized, warnings = normalize_similar(request)
        state = self._tenant(caller.tenant)
        loaded = self._signals(caller.tenant, normalized.surface)
        if loaded is None:
            warnings.append(Warning_(code="SIGNAL_UNAVAILABLE", detail="similarity signals unavailable"))
            items = []
        else:
            warnings.extend(self._stale_warning(loaded))
            ranked = ranking.similar(normalized, loaded.signals, state.parsed_config.for_surface(normalized.surface))
            items, warnings = ranked.items, warnings + ranked.warnings
        meta = self._meta(caller, normalized.surface, normalized.segment, request_id, state, loaded, len(items))
        return RecommendResponse(items=items, meta=meta, warnings=warnings or None)

    def _check_explain(self, caller: Caller, normalized: NormalizedRecommend) -> None:
        wants_admin = normalized.options.explain == "full" or normalized.options.include_trace
        if wants_admin and self.settings.explain_require_admin and not caller.is_admin:
            raise Problem(403, "RECSYS_FORBIDDEN", "insufficient scope")

    @staticmethod
    def _stale_warning(loaded: LoadedManifest) -> list[Warning_]:
        if not loaded.stale:
            return []
        return [
            Warning_(code="MANIFEST_STALE", detail="serving the last good manifest: refreshing it failed (see logs)")
        ]

    # --- admin -------------------------------------------------------------------------------------------------

    def get_document(self, tenant: str, kind: str) -> Document:
        document = self.documents.get(tenant, kind)
        if document is None:
            code = "RECSYS_CONFIG_NOT_FOUND" if kind == "config" else "RECSYS_RULES_NOT_FOUND"
            raise Problem(404, code, f"{kind} not found")
        return document

    def put_document(
        self,
        caller: Caller,
        tenant: str,
        kind: str,
        data: Any,
        if_match: str | None,
        request: RequestInfo | None = None,
    ) -> Document:
        """Validate and store the tenant's config or rules; a change (not a rewrite of the same document) is audited
        with both versions and contents."""
        try:
            if kind == "config":
                if not isinstance(data, dict):
                    raise ValueError("config must be a JSON object")
                TenantConfig.parse(data)
            else:
                if not isinstance(data, list | dict):
                    raise ValueError("rules must be a JSON array or object")
                # Stricter than the seed's code, as its AdminRulesPayload schema says: an array holds objects only
                # (the seed stores other items and skips them when ranking; GET would then break its own schema).
                if isinstance(data, list) and not all(isinstance(item, dict) for item in data):
                    raise ValueError("rules array items must be JSON objects")
                parse_rules(data)
        except ValueError as exc:
            code = "RECSYS_INVALID_CONFIG" if kind == "config" else "RECSYS_INVALID_RULES"
            raise Problem(422, code, " ".join(str(exc).split())) from None
        try:
            document = self.documents.put(tenant, kind, data, if_match=if_match, actor=caller.user_id)
        except VersionMismatch as exc:
            raise Problem(409, "RECSYS_VERSION_MISMATCH", str(exc)) from None
        self.invalidate(tenant, ["config" if kind == "config" else "rules"], None)
        if document.changed:
            before = self.documents.get_version(tenant, kind, document.previous) if document.previous else None
            action, entity_type = AUDIT_ACTIONS[kind]
            self._audit(
                caller,
                tenant,
                request,
                action=action,
                entity_type=entity_type,
                before_state={"etag": before.version, kind: before.data} if before else None,
                after_state={"etag": document.version, kind: document.data},
            )
        return document

    def invalidate(
        self,
        tenant: str,
        targets: list[str],
        surface: str | None,
        *,
        all_tenants_artifacts: bool = False,
        caller: Caller | None = None,
        request: RequestInfo | None = None,
    ) -> dict[str, int]:
        """Drop cached state for `tenant` (this process only; other instances follow within their TTLs).

        `artifacts` drops the artifacts the tenant's manifests name; with `all_tenants_artifacts` (platform admins)
        every tenant's loaded artifacts. With a `caller` (the admin route) the invalidation is audited."""
        unknown = sorted(set(targets) - set(CACHE_TARGETS))
        if unknown:
            raise Problem(
                422, "RECSYS_INVALID_TARGETS", f"unknown cache targets {unknown}; known: {list(CACHE_TARGETS)}"
            )
        counts: dict[str, int] = {}
        if {"config", "rules"} & set(targets):
            dropped = 1 if self._tenants.discard(tenant) else 0
            for target in {"config", "rules"} & set(targets):
                counts[target] = dropped
        if {"manifest", "artifacts", "popularity"} & set(targets):
            artifacts = "artifacts" in targets
            dropped = 0
            if artifacts and not all_tenants_artifacts:  # before `invalidate` forgets which artifacts are the tenant's
                dropped = self.reader.invalidate_tenant_artifacts(tenant, surface)
            dropped += self.reader.invalidate(tenant, surface, artifacts=artifacts and all_tenants_artifacts)
            for target in {"manifest", "artifacts", "popularity"} & set(targets):
                counts[target] = dropped
        if caller is not None:
            self._audit(
                caller,
                tenant,
                request,
                action="cache.invalidate",
                entity_type="cache_invalidation",
                after_state={"targets": targets, "surface": surface, "status": "applied", "invalidated": counts},
            )
        return counts

    def rollback_manifest(
        self, caller: Caller, tenant: str, surface: str, to: str, expected: str, request: RequestInfo | None = None
    ) -> RollbackResult:
        """Point `tenant`/`surface` back at the stored version `to` while `expected` is still current (what the
        operator confirmed), by the pipeline's own conditional write (the signal store too, when on); then this
        instance serves it at once (others follow within their manifest TTL), and the change is audited."""
        from recsys.publish.service import rollback, signal_store  # the console's action: not on the serving path
        from recsys.settings import load_settings

        settings = load_settings(store=self.settings.store)
        try:
            with signal_store(settings) as signals:
                result = rollback(self.store, tenant, surface, to, signals, expected=expected)
        except ManifestNotFound as exc:
            raise Problem(404, "RECSYS_MANIFEST_NOT_FOUND", str(exc)) from None
        except (PointerConflict, PublishRefused) as exc:
            raise Problem(409, "RECSYS_POINTER_CONFLICT", str(exc)) from None
        except ArtifactInvalid as exc:
            raise Problem(422, "RECSYS_ARTIFACT_INVALID", str(exc)) from None
        self.reader.invalidate(tenant, surface)
        self._audit(
            caller,
            tenant,
            request,
            action="manifest.rollback",
            entity_type="manifest_pointer",
            before_state={"surface": surface, "manifest_version": result.rolled_back_from},
            after_state={"surface": surface, "manifest_version": result.rolled_back_to},
        )
        return result

    def _audit(self, caller: Caller, tenant: str, request: RequestInfo | None, **fields: Any) -> None:
        """Record an admin change. The change is made by then: if the store refuses the entry, the entry goes to the
        log in full (with an AuditWriteFailures metric) rather than failing a request whose change happened."""
        extra = {"auth_source": caller.source, "roles": sorted(caller.roles)}
        request = request or RequestInfo(request_id="")
        entry = {
            "actor_sub": caller.user_id,
            "actor_type": "api_key" if caller.source == "api_key" else "user",
            "entity_id": tenant,
            "request_id": request.request_id or None,
            "ip": request.ip,
            "user_agent": request.user_agent,
            "extra": extra,
            **fields,
        }
        try:
            self.audit.record(tenant, **entry)
        except StoreError as exc:
            logger.error("audit entry not written", extra={"audit_entry": entry, "error": str(exc)})
            count("AuditWriteFailures", tenant)

    # --- health --------------------------------------------------------------------------------------------------

    def readiness(self) -> Readiness:
        """Whether the store answered its `ping`, asked at most once per HEALTH_CACHE_DURATION (a failure is asked
        again after 5 s): probes cost no store request, and what the store said stays in the log."""
        return self._readiness.get("store", self._check_store)

    def _check_store(self, _previous: Readiness | None) -> tuple[Readiness, float]:
        checked_at = dt.datetime.now(dt.UTC)
        try:
            self.store.ping()
        except Exception as exc:  # any failure to reach the store means not ready; the reason goes to the log only
            logger.warning("readiness check failed: the store did not answer", extra={"error": str(exc)})
            return Readiness(False, checked_at), min(READINESS_RETRY_SECONDS, self.settings.health_cache_duration)
        return Readiness(True, checked_at), self.settings.health_cache_duration
