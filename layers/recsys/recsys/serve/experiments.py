"""Experiment assignment: which variant of a tenant's experiment a request gets, as the seed assigns it.

Only a request with `experiment.id` and no `experiment.variant` is assigned (a given variant is kept as it is).
The subject is user_id, else session_id, else anonymous_id. With `salt` = EXPERIMENT_ASSIGNMENT_SALT and
BE64(b) = the first 8 bytes of b as a big-endian unsigned integer:

  in traffic  BE64(HMAC-SHA256(salt, "traffic:" + id + ":" + subject)) % 10000 < traffic_percent * 100
  variant     variants[BE64(HMAC-SHA256(salt, id + ":" + subject)) % len(variants)]      (equal weights: the seed)
              weighted: bucket = BE64(...) % 10000 over the same hash, the first variant whose cumulative share of
              the weights (in basis points, rounded) is above the bucket                   (unequal weights: ours)

An unknown experiment, a disabled one, one outside its [starts_at, ends_at) window or for another surface, and a
subject outside the traffic share get no variant. The same subject always gets the same variant (sticky) as long
as the salt, the experiment id and its variants stay the same.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import hmac
from dataclasses import dataclass

from recsys.serve.tenant_config import ExperimentConfig, Variant

BASIS_POINTS = 10_000


def be64(salt: bytes, message: str) -> int:
    """The first 8 bytes of HMAC-SHA256(salt, message) as a big-endian unsigned integer."""
    return int.from_bytes(hmac.new(salt, message.encode(), hashlib.sha256).digest()[:8], "big")


def in_traffic(salt: bytes, experiment_id: str, subject: str, traffic_percent: float) -> bool:
    return be64(salt, f"traffic:{experiment_id}:{subject}") % BASIS_POINTS < traffic_percent * 100


def pick(salt: bytes, experiment_id: str, subject: str, variants: list[Variant]) -> Variant:
    """The subject's variant: the seed's modulo when the weights are equal, else a weighted choice (module doc)."""
    value = be64(salt, f"{experiment_id}:{subject}")
    weights = [variant.weight for variant in variants]
    if len(set(weights)) == 1:
        return variants[value % len(variants)]
    bucket, total, cumulative = value % BASIS_POINTS, sum(weights), 0.0
    for variant in variants:
        cumulative += variant.weight
        if bucket < round(BASIS_POINTS * cumulative / total):
            return variant
    return next(variant for variant in reversed(variants) if variant.weight > 0)  # rounding: the last with weight


def active(experiment: ExperimentConfig, surface: str, now: dt.datetime) -> bool:
    """Enabled, for this surface (when it names one; case-insensitive) and within [starts_at, ends_at)."""
    if not experiment.enabled:
        return False
    if experiment.surface and experiment.surface.strip().lower() != surface.strip().lower():
        return False
    if experiment.starts_at is not None and now < experiment.starts_at:
        return False
    return experiment.ends_at is None or now < experiment.ends_at


@dataclass(frozen=True)
class Assignment:
    """The request's experiment after assignment: its id, its variant (None: not assigned), and the variant of the
    tenant's config to apply (None: nothing to apply, e.g. a given variant the config does not define)."""

    experiment_id: str
    variant: str | None
    applied: Variant | None


def assign(
    experiment: ExperimentConfig | None,
    experiment_id: str,
    given_variant: str | None,
    subject: str | None,
    surface: str,
    now: dt.datetime,
    salt: bytes,
    *,
    assigning: bool = True,
) -> Assignment:
    """The request's variant and what it applies. A given variant is kept (and applied while the experiment is
    active); otherwise one is assigned when `assigning`, the experiment is active and the subject is in traffic."""
    given = (given_variant or "").strip()
    if given:
        applied = experiment.variant(given) if experiment is not None and active(experiment, surface, now) else None
        return Assignment(experiment_id, given_variant, applied)
    if not assigning or experiment is None or not subject or not active(experiment, surface, now):
        return Assignment(experiment_id, None, None)
    if not in_traffic(salt, experiment.id, subject, experiment.traffic_percent):
        return Assignment(experiment_id, None, None)
    variant = pick(salt, experiment.id, subject, experiment.variants)
    return Assignment(experiment_id, variant.name, variant)
