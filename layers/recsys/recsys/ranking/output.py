"""What ranking returns: ranked items with their reasons and explain, and the SIGNAL_UNAVAILABLE warnings.

Reasons (`Detail.reasons`): the names of the signals with a positive contribution, in signal order, then the item's
rule tokens. Explain (`Detail.explain`): summary = {"signals": {s: w_s · s(c)}, "rules": [rule tokens]}; full adds
"raw": {s: s(c)} and "anchors": [the anchors used]. Scores and explain values are rounded to 6 decimals.
"""

from __future__ import annotations

from collections.abc import Mapping

from recsys.ranking.selection import round6
from recsys.ranking.types import KIND, REASON, SIGNAL_UNAVAILABLE, SIGNALS, Detail, RankedItem, RankingWarning

WARNING_NAME = {
    "pop": "popularity",
    "cooc": "cooc",
    "implicit": "collaborative",
    "session": "session",
    "content": "content",
    "knn": "item_knn",
}
"""The seed's signal names in SIGNAL_UNAVAILABLE details."""

ZERO = dict.fromkeys(SIGNALS, 0.0)


def unavailable(name: str, unreadable: frozenset[str] = frozenset()) -> RankingWarning:
    reason = "artifact unreadable" if KIND[name] in unreadable else "not in manifest"
    return RankingWarning(SIGNAL_UNAVAILABLE, f"{WARNING_NAME[name]} unavailable: {reason}")


def ranked_items(
    kept: list[str],
    scores: Mapping[str, float],
    values: Mapping[str, Mapping[str, float]],
    weights: Mapping[str, float],
    rule_reasons: Mapping[str, list[str]],
    detail: Detail,
    anchors: list[str],
) -> list[RankedItem]:
    """The kept items, rank 1..n, with reasons and explain as `detail` asks (`values`: each item's raw signals)."""
    rows = []
    explaining = detail.reasons or detail.explain in ("summary", "full")
    weight_of = [(name, weights.get(name, 0.0)) for name in SIGNALS]
    for position, item_id in enumerate(kept, start=1):
        score = round6(scores.get(item_id, 0.0))
        if not explaining:
            rows.append(RankedItem(item_id, position, score))
            continue
        raw = values.get(item_id, ZERO)
        contributions = {name: weight * raw[name] for name, weight in weight_of}
        tokens = list(rule_reasons.get(item_id, ()))
        reasons = None
        if detail.reasons:
            reasons = [REASON[name] for name in SIGNALS if contributions[name] > 0] + tokens
        explain = None
        if detail.explain in ("summary", "full"):
            explain = {"signals": {name: round6(value) for name, value in contributions.items()}, "rules": tokens}
            if detail.explain == "full":
                explain["raw"] = {name: round6(raw[name]) for name in SIGNALS}
                explain["anchors"] = list(anchors)
        rows.append(RankedItem(item_id, position, score, reasons, explain))
    return rows
