"""Exploration: epsilon-greedy over the top of the order, with the propensity of every shown item.

Slot by slot (pins keep their slots, propensity 1), with m items of the pool not shown yet:
  with probability 1 - ε the slot shows the best of them (the next in the order), with probability ε one of the m
  drawn uniformly; so the best is shown with probability (1 - ε) + ε/m and each other with ε/m (they sum to 1).
The recorded propensity is that probability for the item shown, given the slots before it: what inverse
propensity estimators of a slot's reward need. The draws come from a generator seeded by the caller (the API:
from the request id), so the same request is explored the same way.
"""

from __future__ import annotations

import random
from collections.abc import Sequence


def slot_probabilities(m: int, epsilon: float) -> list[float]:
    """The probability of each of the m remaining items (in order) for the next slot."""
    if m <= 0:
        return []
    share = epsilon / m
    return [1 - epsilon + share] + [share] * (m - 1)


def explore(pool: Sequence[str], fixed: int, k: int, epsilon: float, seed: int) -> tuple[list[str], list[float]]:
    """Up to k items of `pool` (its first `fixed` pinned) and the propensity of each (module docstring)."""
    rng = random.Random(seed)
    shown = list(pool[:fixed][:k])
    propensities = [1.0] * len(shown)
    remaining = list(pool[fixed:])
    while len(shown) < k and remaining:
        m = len(remaining)
        at = rng.randrange(m) if rng.random() < epsilon else 0
        propensities.append(slot_probabilities(m, epsilon)[at])
        shown.append(remaining.pop(at))
    return shown, propensities
