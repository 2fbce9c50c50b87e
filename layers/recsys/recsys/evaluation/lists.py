"""Top-K lists for offline evaluation and the quality gate, without the API: one manifest's signals ranked by
`recsys.ranking` with the tenant's config and rules, exactly as POST /v1/recommend ranks them (segment "default",
no candidates or constraints, reasons and explain off)."""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from recsys import ranking
from recsys.contract.manifest import Manifest
from recsys.publish.service import read_pointer
from recsys.ranking.rules import Rule
from recsys.ranking.types import RecommendQuery, Scope
from recsys.serve.ranking import diversity, exploration, knobs
from recsys.serve.reader import ArtifactCache, ArtifactSignals
from recsys.serve.rules import parse_rules
from recsys.serve.tenant_config import EffectiveConfig, TenantConfig
from recsys.serve.tenant_store import TenantDocuments
from recsys.store import ObjectStore


@dataclass
class ManifestRanker:
    """Ranks requests over one manifest with the tenant config and rules read when it was opened."""

    signals: ArtifactSignals
    config: EffectiveConfig
    rules: list[Rule]
    surface: str

    @classmethod
    def open(cls, store: ObjectStore, tenant: str, surface: str, manifest: Manifest | None = None) -> ManifestRanker:
        """Over `manifest`, or the one the current pointer names (ManifestNotFound-like ValueError without one)."""
        if manifest is None:
            pointer = read_pointer(store, tenant, surface)
            if pointer is None:
                raise ValueError(f"{tenant}/{surface} has no current manifest to rank with")
            manifest = pointer.manifest
        documents = TenantDocuments(store)
        config_doc, rules_doc = documents.get(tenant, "config"), documents.get(tenant, "rules")
        return cls(
            signals=ArtifactSignals(manifest, ArtifactCache(), store),
            config=TenantConfig.parse(config_doc.data if config_doc else None).for_surface(surface),
            rules=parse_rules(rules_doc.data) if rules_doc else [],
            surface=surface,
        )

    def top(
        self,
        subject: str,
        k: int,
        now: dt.datetime,
        *,
        anchors: Sequence[str] = (),
        weights: Mapping[str, float] | None = None,
    ) -> list[str]:
        """The top-k item ids for `subject` (a user or session id), most recent anchors first. The config's algo mode
        and diversity apply as in the API; exploration, if configured, is seeded by the subject."""
        query = RecommendQuery(
            subject=subject,
            k=k,
            weights=self.config.weights_for(weights),
            knobs=knobs(self.config),
            scope=Scope(surface=self.surface, segment="default", now=now),
            anchors=tuple(anchors),
            popularity_fallback=self.config.single_signal,
            diversity=diversity(self.config),
            exploration=exploration(self.config, subject),
        )
        return [item.item_id for item in ranking.rank(query, self.signals.arrays(), self.rules).items]
