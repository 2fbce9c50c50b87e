"""The quality gate: before the pointer moves, compare the candidate with what is served on a held-out day.

The candidate is rebuilt on the run's window minus its last day (partials are reused, so this is cheap), it and a
reference (the served manifest, or its recorded score when it has seen that day) rank every user active on that
last day with the same ranking code as the API, and the chosen metric (e.g. ndcg@10) of the two is compared. A
drop larger than `max_drop` refuses the promotion: publish stores the manifest version with the gate's result but
leaves the pointer where it is.
"""

from __future__ import annotations

import datetime as dt
from typing import Literal

from pydantic import BaseModel, Field

from recsys.compute.service import compute_kind
from recsys.contract.manifest import Manifest
from recsys.contract.quality import QualityResult
from recsys.days import Window, day_start
from recsys.evaluation.lists import ManifestRanker
from recsys.evaluation.metrics import evaluate_lists
from recsys.evaluation.split import interactions, relevant_items  # the same split rules as `recsys eval`
from recsys.publish.manifest import build_manifest
from recsys.publish.service import Pointer, carried_over, history, read_pointer
from recsys.settings import QualityGate, Settings
from recsys.store import ObjectStore


class _Holdout(BaseModel):
    train: Window
    day: dt.date
    relevant: dict[str, set[str]] = Field(default_factory=dict)


def _holdout(store: ObjectStore, tenant: str, surface: str, window: Window) -> _Holdout:
    train = Window(start=window.start, end=window.end - dt.timedelta(days=1))
    day = Window(start=window.end, end=window.end)
    relevant = relevant_items(interactions(store, tenant, surface, train), interactions(store, tenant, surface, day))
    return _Holdout(train=train, day=window.end, relevant=relevant)


def _score(
    manifest: Manifest, store: ObjectStore, tenant: str, surface: str, holdout: _Holdout, metric: str, k: int
) -> float:
    ranker = ManifestRanker.open(store, tenant, surface, manifest)
    now = day_start(holdout.day)
    lists = {user: ranker.top(user, k, now) for user in sorted(holdout.relevant)}
    return evaluate_lists(lists, holdout.relevant, ks=(k,)).get(metric, 0.0)


class _Reference(BaseModel):
    """What the candidate is compared with: a score on the held-out day, and where it comes from."""

    score: float
    manifest_version: str
    compared_with: Literal["current", "recorded", "baseline"]  # see QualityResult.compared_with
    label: str  # for the reason line


def _reference(
    store: ObjectStore, tenant: str, surface: str, pointer: Pointer | None, holdout: _Holdout, metric: str, k: int
) -> _Reference | None:
    """The fairest comparison for a candidate that has not seen the held-out day, or None if nothing is comparable.

    1. The served manifest, when it has not seen that day either (the daily case).
    2. The served manifest has seen it (a rerun of the served window, or a promoted backfill): its own score on that
       day, recorded by this gate when it was published, if it was judged on the same day and metric.
    3. Otherwise the newest stored manifest that has not seen the day and was not refused by this gate: what was
       served before that day, with the same information as the candidate.
    """
    if pointer is None:
        return None
    current = pointer.manifest
    if current.window.end < holdout.day:
        score = _score(current, store, tenant, surface, holdout, metric, k)
        return _Reference(
            score=score, manifest_version=current.manifest_version, compared_with="current", label="current"
        )
    recorded = current.quality
    if recorded and recorded.metric == metric and recorded.day == holdout.day and recorded.candidate is not None:
        return _Reference(
            score=recorded.candidate,
            manifest_version=current.manifest_version,
            compared_with="recorded",
            label="the current manifest's recorded score",
        )
    older = [
        manifest
        for manifest in history(store, tenant, surface)
        if manifest.window.end < holdout.day and (manifest.quality is None or manifest.quality.passed)
    ]
    if not older:
        return None
    baseline = max(older, key=lambda m: (m.window.end, m.updated_at))
    score = _score(baseline, store, tenant, surface, holdout, metric, k)
    return _Reference(
        score=score,
        manifest_version=baseline.manifest_version,
        compared_with="baseline",
        label=f"manifest {baseline.manifest_version[:12]} (window {baseline.window}, the newest that has not seen it)",
    )


def quality_gate(
    store: ObjectStore,
    tenant: str,
    surface: str,
    window: Window,
    kinds: list[str],
    settings: Settings,
    catalog: str | None = None,
) -> QualityResult:
    """Judge every publish that could move the pointer: the candidate, rebuilt without the window's last day,
    against the fairest reference for that day (`_reference`). The candidate's score is recorded even when nothing
    is comparable, so that a later rerun of this window can be judged against it."""
    gate: QualityGate = settings.quality
    if not gate.metric:
        return QualityResult(enabled=False, passed=True, reason="quality gate disabled (RECSYS_QUALITY__METRIC)")
    base = {"enabled": True, "metric": gate.metric, "day": window.end, "max_drop": gate.max_drop}
    if window.start == window.end:
        return QualityResult(**base, passed=True, reason="a one-day window has no day to hold out")
    holdout = _holdout(store, tenant, surface, window)
    if len(holdout.relevant) < gate.min_users:
        return QualityResult(
            **base,
            passed=True,
            users=len(holdout.relevant),
            reason=f"{len(holdout.relevant)} users on {window.end} (< {gate.min_users}): not judged",
        )
    pointer = read_pointer(store, tenant, surface)
    refs = [compute_kind(store, kind, tenant, surface, holdout.train, settings, catalog).artifact for kind in kinds]
    # Publish carries the kinds this run does not build over from the current manifest: judge that same mix.
    refs += carried_over(store, refs, pointer.manifest if pointer else None)
    candidate = build_manifest(tenant, surface, holdout.train, refs, previous=None, run_id="quality-gate")
    k = int(gate.metric.split("@")[1])
    candidate_score = _score(candidate, store, tenant, surface, holdout, gate.metric, k)
    judged = {**base, "users": len(holdout.relevant), "candidate": round(candidate_score, 6)}
    reference = _reference(store, tenant, surface, pointer, holdout, gate.metric, k)
    if reference is None:
        served = "no current manifest" if pointer is None else "no stored manifest that has not seen it"
        return QualityResult(
            **judged,
            passed=True,
            current_manifest_version=pointer.manifest.manifest_version if pointer else None,
            reason=(
                f"{gate.metric} {candidate_score:.4f} on {window.end} ({len(holdout.relevant)} users); "
                f"{served} to compare with: passed, and recorded for later reruns of this window"
            ),
        )
    passed = candidate_score >= reference.score - gate.max_drop
    verdict = "kept within" if passed else "dropped more than"
    return QualityResult(
        **judged,
        passed=passed,
        current=round(reference.score, 6),
        current_manifest_version=reference.manifest_version,
        compared_with=reference.compared_with,
        reason=(
            f"{gate.metric} {candidate_score:.4f} vs {reference.label} {reference.score:.4f} on {window.end} "
            f"({len(holdout.relevant)} users): {verdict} the allowed drop {gate.max_drop}"
        ),
    )
