"""The quality gate: before the pointer moves, compare the candidate with what is served now on a held-out day.

The candidate is rebuilt on the run's window minus its last day (partials are reused, so this is cheap), both it
and the current manifest rank every user active on that last day with the same ranking code as the API, and the
chosen metric (e.g. ndcg@10) of the two is compared. A drop larger than `max_drop` refuses the promotion: publish
stores the manifest version with the gate's result but leaves the pointer where it is.
"""

from __future__ import annotations

import datetime as dt

from pydantic import BaseModel, Field

from recsys.compute.service import compute_kind
from recsys.days import Window, day_start
from recsys.evaluation.metrics import evaluate_lists
from recsys.evaluation.quality import QualityResult
from recsys.publish.manifest import Manifest, build_manifest
from recsys.publish.service import carried_over, read_pointer
from recsys.serve import ranking
from recsys.serve.artifacts import ArtifactCache, ArtifactSignals, StoreResolver
from recsys.serve.models import NormalizedRecommend, Options, User
from recsys.serve.rules import parse_rules
from recsys.serve.tenant_config import TenantConfig
from recsys.serve.tenant_store import TenantDocuments
from recsys.settings import QualityGate, Settings
from recsys.store import ObjectStore


class _Holdout(BaseModel):
    train: Window
    day: dt.date
    relevant: dict[str, set[str]] = Field(default_factory=dict)


def _holdout(store: ObjectStore, tenant: str, surface: str, window: Window) -> _Holdout:
    from recsys.evaluation.run import interactions, relevant_items  # the same split rules as `recsys eval`

    train = Window(start=window.start, end=window.end - dt.timedelta(days=1))
    day = Window(start=window.end, end=window.end)
    relevant = relevant_items(interactions(store, tenant, surface, train), interactions(store, tenant, surface, day))
    return _Holdout(train=train, day=window.end, relevant=relevant)


def _score(
    manifest: Manifest, store: ObjectStore, tenant: str, surface: str, holdout: _Holdout, metric: str, k: int
) -> float:
    documents = TenantDocuments(store)
    config_doc, rules_doc = documents.get(tenant, "config"), documents.get(tenant, "rules")
    config = TenantConfig.parse(config_doc.data if config_doc else None).for_surface(surface)
    rules = parse_rules(rules_doc.data) if rules_doc else []
    signals = ArtifactSignals(manifest, ArtifactCache(), StoreResolver(store.uri))
    now = day_start(holdout.day)
    lists = {}
    for user in sorted(holdout.relevant):
        request = NormalizedRecommend(
            surface=surface, segment="default", k=k, user=User(user_id=user), options=Options()
        )
        lists[user] = [item.item_id for item in ranking.rank(request, signals, config, rules, now).items]
    return evaluate_lists(lists, holdout.relevant, ks=(k,)).get(metric, 0.0)


def quality_gate(
    store: ObjectStore,
    tenant: str,
    surface: str,
    window: Window,
    kinds: list[str],
    settings: Settings,
    catalog: str | None = None,
) -> QualityResult:
    gate: QualityGate = settings.quality
    if not gate.metric:
        return QualityResult(enabled=False, passed=True, reason="quality gate disabled (RECSYS_QUALITY__METRIC)")
    base = {"enabled": True, "metric": gate.metric, "day": window.end, "max_drop": gate.max_drop}
    pointer = read_pointer(store, tenant, surface)
    if pointer is None:
        return QualityResult(**base, passed=True, reason="no current manifest to compare with")
    if window.start == window.end:
        return QualityResult(**base, passed=True, reason="a one-day window has no day to hold out")
    if pointer.manifest.window.end >= window.end:
        # The served manifest has seen the held-out day (a rerun or a backfill): its users' test items count as
        # already seen for it, so the comparison would be meaningless.
        return QualityResult(
            **base,
            passed=True,
            current_manifest_version=pointer.manifest.manifest_version,
            reason=f"the current manifest already covers {window.end}: not comparable, not judged",
        )
    holdout = _holdout(store, tenant, surface, window)
    if len(holdout.relevant) < gate.min_users:
        return QualityResult(
            **base,
            passed=True,
            users=len(holdout.relevant),
            reason=f"{len(holdout.relevant)} users on {window.end} (< {gate.min_users}): not judged",
        )
    refs = [compute_kind(store, kind, tenant, surface, holdout.train, settings, catalog).artifact for kind in kinds]
    # Publish carries the kinds this run does not build over from the current manifest: judge that same mix.
    refs += carried_over(store, refs, pointer.manifest)
    candidate = build_manifest(tenant, surface, holdout.train, refs, previous=None, run_id="quality-gate")
    k = int(gate.metric.split("@")[1])
    candidate_score = _score(candidate, store, tenant, surface, holdout, gate.metric, k)
    current_score = _score(pointer.manifest, store, tenant, surface, holdout, gate.metric, k)
    passed = candidate_score >= current_score - gate.max_drop
    verdict = "kept within" if passed else "dropped more than"
    return QualityResult(
        **base,
        passed=passed,
        users=len(holdout.relevant),
        candidate=round(candidate_score, 6),
        current=round(current_score, 6),
        current_manifest_version=pointer.manifest.manifest_version,
        reason=(
            f"{gate.metric} {candidate_score:.4f} vs current {current_score:.4f} on {window.end} "
            f"({len(holdout.relevant)} users): {verdict} the allowed drop {gate.max_drop}"
        ),
    )
