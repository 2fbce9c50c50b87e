"""Merchandising rule evaluation (the seed's evaluate.go) over scored candidates; parsing is the API's (serve/rules.py).

`apply_rules`: the rules active for (surface, segment, now), by priority desc (stable), in one pass:
  BLOCK  removes the item; if it was pinned, its pin slot is freed; blocked items are never pinned nor boosted.
  PIN    takes up to `max_pins` slots in total (and the rule's own max_pins), skipping blocked/already pinned
         items; ITEM pins work for items that are not candidates ("external" pins, score 0).
  BOOST  delta = score * boost (if that is 0, delta = boost); score += delta; boosts compound; a missing ITEM
         target is injected with score = boost (only for a positive boost: a demotion injects nothing).
TAG targets match only the current candidates (best score first, then item_id).
Reason tokens: rule.pin[<id>], rule.block[<id>], rule.boost:+0.50[<id>] (delta, %+.2f), sorted per item.
"""

from __future__ import annotations

import datetime as dt
import math
import sys
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Literal

BLOCK, PIN, BOOST = "BLOCK", "PIN", "BOOST"
ITEM, TAG = "ITEM", "TAG"


@dataclass(frozen=True)
class Rule:
    """One merchandising rule. Tags and scope values are lowercased; `tags` match if any is carried."""

    rule_id: str
    action: Literal["BLOCK", "PIN", "BOOST"]
    target_type: Literal["ITEM", "TAG"]
    item_ids: tuple[str, ...] = ()
    tags: tuple[str, ...] = ()
    surface: str | None = None
    segment: str | None = None
    namespace: str | None = None
    enabled: bool = True
    valid_from: dt.datetime | None = None
    valid_until: dt.datetime | None = None
    priority: int = 0
    boost_value: float | None = None
    max_pins: int | None = None

    def applies(self, *, surface: str, segment: str, now: dt.datetime) -> bool:
        """Enabled, in scope (case-insensitive) and inside its time window at `now`."""
        if not self.enabled:
            return False
        surface, segment = surface.strip().lower(), segment.strip().lower()
        if self.surface is not None and self.surface != surface:
            return False
        if self.namespace is not None and self.namespace != surface:
            return False
        if self.segment is not None and self.segment != segment:
            return False
        now = aware_utc(now)
        if self.valid_from is not None and now < self.valid_from:
            return False
        return self.valid_until is None or now < self.valid_until


@dataclass
class RuleOutcome:
    """What rules did to the candidates.

    scores   every surviving item (not blocked) with its score after boosts, including pinned candidates and
             boost-injected items; external pins are not in it
    pinned   pinned item ids in pin order (may include items that are not in `scores`)
    reasons  rule reason tokens per affected item (sorted), blocked items included
    blocked  items removed by BLOCK rules
    """

    scores: dict[str, float]
    pinned: list[str] = field(default_factory=list)
    reasons: dict[str, list[str]] = field(default_factory=dict)
    blocked: frozenset[str] = frozenset()


def aware_utc(value: dt.datetime) -> dt.datetime:
    """`value`, a naive time read as UTC."""
    return value.replace(tzinfo=dt.UTC) if value.tzinfo is None else value


def apply_rules(
    candidates: Mapping[str, float],
    tags: Callable[[str], tuple[str, ...]],
    rules: Iterable[Rule],
    *,
    surface: str,
    segment: str,
    now: dt.datetime,
    max_pins: int,
) -> RuleOutcome:
    """Apply the rules active for (surface, segment, now) to `candidates` (item -> score) with the seed's semantics.

    `tags(item)` gives an item's normalized tags (TAG targets); it is called once per candidate at most.
    """
    scores = dict(candidates)
    active = sorted((r for r in rules if r.applies(surface=surface, segment=segment, now=now)), key=_neg_priority)
    if not active:
        return RuleOutcome(scores=scores)
    tag_cache: dict[str, frozenset[str]] = {}
    blocked: dict[str, list[str]] = {}
    pinned: dict[str, list[str]] = {}  # insertion order = pin order
    boosts: dict[str, list[tuple[str, float]]] = {}

    for rule in active:
        is_item = rule.target_type == ITEM
        matched = list(rule.item_ids) if is_item else _match_tags(rule.tags, scores, tags, tag_cache)
        if not matched:
            continue
        if rule.action == BLOCK:
            for item in matched:
                pinned.pop(item, None)
                scores.pop(item, None)
                rules_of = blocked.setdefault(item, [])
                if rule.rule_id not in rules_of:
                    rules_of.append(rule.rule_id)
        elif rule.action == PIN:
            limit = max_pins if rule.max_pins is None or rule.max_pins < 0 else min(max_pins, rule.max_pins)
            taken = 0
            for item in matched:
                if len(pinned) >= max_pins or taken >= limit:
                    break
                if item in blocked or item in pinned:
                    continue
                pinned[item] = [rule.rule_id]
                taken += 1
        elif rule.boost_value:  # BOOST; a missing or zero boost does nothing
            boost = rule.boost_value
            for item in matched:
                if item in blocked:
                    continue
                if item not in scores:
                    if boost <= 0:
                        continue
                    scores[item] = 0.0
                delta = _saturated(scores[item] * boost)
                if delta == 0:
                    delta = boost
                scores[item] = _saturated(scores[item] + delta)
                boosts.setdefault(item, []).append((rule.rule_id, delta))

    reasons: dict[str, list[str]] = {}
    for item, rule_ids in blocked.items():
        reasons.setdefault(item, []).extend(f"rule.block[{rid}]" for rid in rule_ids)
    for item, rule_ids in pinned.items():
        reasons.setdefault(item, []).extend(f"rule.pin[{rid}]" for rid in rule_ids)
    for item, details in boosts.items():
        reasons.setdefault(item, []).extend(f"rule.boost:{delta:+.2f}[{rid}]" for rid, delta in details)
    reasons = {item: sorted(set(tokens)) for item, tokens in reasons.items()}
    return RuleOutcome(scores=scores, pinned=list(pinned), reasons=reasons, blocked=frozenset(blocked))


def _saturated(score: float) -> float:
    """`score` within a double's finite range: huge boosts compound to the largest score, never to an infinity (which
    has no JSON form) or, later, to NaN."""
    return score if math.isfinite(score) else math.copysign(sys.float_info.max, score)


def _neg_priority(rule: Rule) -> int:
    return -rule.priority


def _match_tags(
    wanted: tuple[str, ...],
    scores: Mapping[str, float],
    tags: Callable[[str], tuple[str, ...]],
    cache: dict[str, frozenset[str]],
) -> list[str]:
    matched = []
    for item in scores:
        carried = cache.get(item)
        if carried is None:
            carried = cache[item] = frozenset(tags(item))  # catalog tags are already normalized (lowercase)
        if not carried.isdisjoint(wanted):
            matched.append(item)
    matched.sort(key=lambda item: (-scores[item], item))
    return matched
