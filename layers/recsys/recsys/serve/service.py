"""The recommend API's operations, independent of HTTP: the FastAPI routes, the Lambda and the CLI call these.

Every operation takes the resolved `Caller` (its tenant scopes everything it reads) and returns plain models.
"""

from __future__ import annotations

import datetime as dt
import logging
import os
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from aws_lambda_powertools.metrics import EphemeralMetrics, MetricUnit

from recsys.paths import Scope
from recsys.serve import ranking
from recsys.serve.auth import ApiKeysLike, Caller
from recsys.serve.models import (
    Meta,
    NormalizedRecommend,
    RecommendRequest,
    RecommendResponse,
    SimilarRequest,
    ValidateResponse,
    Warning_,
    normalize_recommend,
    normalize_similar,
)
from recsys.serve.problems import Problem
from recsys.serve.reader import ArtifactIncompatible, ArtifactReader, LoadedManifest, ManifestIncompatible
from recsys.serve.rules import Rule, parse_rules
from recsys.serve.settings import ServeSettings
from recsys.serve.tenant_config import TenantConfig
from recsys.serve.tenant_store import Document, TenantDocuments, VersionMismatch
from recsys.serve.ttl_cache import TtlCache
from recsys.store import ObjectStore, StoreError, open_store

logger = logging.getLogger("recsys.serve")

CACHE_TARGETS = ("config", "rules", "manifest", "artifacts", "popularity")
CONFIG_RETRY_SECONDS = 5.0


def report_stale_manifest(tenant: str, surface: str, error: Exception) -> None:
    """A manifest refresh failed and the last good one is served: log it and count it as a CloudWatch metric."""
    logger.warning("manifest refresh failed for %s/%s, serving the last good one: %s", tenant, surface, error)
    # EphemeralMetrics, not single_metric: single_metric prints its EMF line even with POWERTOOLS_METRICS_DISABLED,
    # and a Metrics instance would share its pending metrics with the pipeline's handlers in one process.
    # POWERTOOLS_METRICS_NAMESPACE is Powertools' own variable, read here only to give it the handlers' default.
    metrics = EphemeralMetrics(namespace=os.environ.get("POWERTOOLS_METRICS_NAMESPACE", "Recsys"))
    metrics.add_dimension(name="tenant", value=tenant)
    metrics.add_metric(name="ManifestRefreshFailures", unit=MetricUnit.Count, value=1)
    metrics.flush_metrics()


@dataclass(frozen=True)
class _TenantState:
    """The tenant's config and rules as last read."""

    config: Document | None
    rules: Document | None
    parsed_config: TenantConfig
    parsed_rules: list[Rule]


@dataclass
class RecommendService:
    settings: ServeSettings
    store: ObjectStore
    reader: ArtifactReader
    documents: TenantDocuments
    api_keys: ApiKeysLike | None = None
    clock: Callable[[], float] = time.monotonic
    on_stale: Callable[[str, str, Exception], None] | None = None
    _tenants: TtlCache[str, _TenantState] = field(init=False)

    def __post_init__(self) -> None:
        self._tenants = TtlCache(clock=self.clock)  # one entry per tenant that made a request

    @classmethod
    def from_settings(cls, settings: ServeSettings, **kwargs: Any) -> RecommendService:
        store = open_store(settings.store)
        reader = ArtifactReader(
            store,
            template=settings.manifest_template,
            manifest_ttl=settings.manifest_ttl,
            cache_bytes=settings.artifact_cache_bytes,
            on_stale=report_stale_manifest,
        )
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
        state = _TenantState(config=config, rules=rules, parsed_config=parsed_config, parsed_rules=parsed_rules)
        return state, self.settings.config_cache_ttl

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
    ) -> Meta:
        return Meta(
            tenant_id=caller.tenant,
            surface=surface,
            segment=segment,
            algo_version=self.settings.algo_version,
            config_version=state.config.version if state.config else None,
            rules_version=state.rules.version if state.rules else None,
            manifest_version=loaded.manifest.manifest_version if loaded else None,
            request_id=request_id,
            counts={"returned": returned} if returned else None,
        )

    # --- operations --------------------------------------------------------------------------------------------

    def recommend(
        self, caller: Caller, request: RecommendRequest, request_id: str, now: dt.datetime | None = None
    ) -> RecommendResponse:
        normalized, warnings = normalize_recommend(request, explain_max_items=self.settings.explain_max_items)
        self._check_explain(caller, normalized)
        return self.recommend_normalized(caller, normalized, warnings, request_id, now)

    def recommend_normalized(
        self,
        caller: Caller,
        normalized: NormalizedRecommend,
        warnings: list[Warning_],
        request_id: str,
        now: dt.datetime | None = None,
    ) -> RecommendResponse:
        state = self._tenant(caller.tenant)
        loaded = self._signals(caller.tenant, normalized.surface)
        if loaded is None:
            warnings.append(
                Warning_(code="SIGNAL_UNAVAILABLE", detail=f"no manifest for {caller.tenant}/{normalized.surface}")
            )
            items = []
        else:
            warnings.extend(self._stale_warning(loaded))
            ranked = ranking.rank(
                normalized,
                loaded.signals,
                state.parsed_config.for_surface(normalized.surface),
                state.parsed_rules,
                now or normalized.now or dt.datetime.now(dt.UTC),
            )
            items, warnings = ranked.items, warnings + ranked.warnings
        meta = self._meta(caller, normalized.surface, normalized.segment, request_id, state, loaded, len(items))
        return RecommendResponse(items=items, meta=meta, warnings=warnings or None)

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

    def put_document(self, caller: Caller, tenant: str, kind: str, data: Any, if_match: str | None) -> Document:
        try:
            if kind == "config":
                if not isinstance(data, dict):
                    raise ValueError("config must be a JSON object")
                TenantConfig.parse(data)
            else:
                if not isinstance(data, list | dict):
                    raise ValueError("rules must be a JSON array or object")
                parse_rules(data)
        except ValueError as exc:
            code = "RECSYS_INVALID_CONFIG" if kind == "config" else "RECSYS_INVALID_RULES"
            raise Problem(422, code, " ".join(str(exc).split())) from None
        try:
            document = self.documents.put(tenant, kind, data, if_match=if_match, actor=caller.user_id)
        except VersionMismatch as exc:
            raise Problem(409, "RECSYS_VERSION_MISMATCH", str(exc)) from None
        self.invalidate(tenant, ["config" if kind == "config" else "rules"], None)
        return document

    def invalidate(
        self, tenant: str, targets: list[str], surface: str | None, *, all_tenants_artifacts: bool = False
    ) -> dict[str, int]:
        """Drop cached state for `tenant` (this process only; other instances follow within their TTLs).

        `artifacts` drops the artifacts the tenant's manifests name; with `all_tenants_artifacts` (platform admins)
        every tenant's loaded artifacts."""
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
        return counts

    def ready(self) -> tuple[bool, str]:
        """Ready = configuration valid (it parsed) and the store reachable."""
        try:
            self.store.ping()
        except Exception as exc:  # any failure to reach the store means not ready
            return False, f"store {self.store.uri} unreachable: {' '.join(str(exc).split())}"
        return True, f"store {self.store.uri} reachable"
