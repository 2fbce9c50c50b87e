"""Off-policy estimates (the seed's OPE): the value a candidate (target) policy would have had, from what a
randomized logging policy showed and what users did with it.

Pure: numpy arrays in, numbers out. One row per shown slot (an item at a 0-based position of a logged list):
the reward r (1 for a click, say), the logging propensity p (the probability the logging policy showed that item
there), the target propensity q (the probability the candidate would have), optionally a reward model's estimate
r̂ of that item's reward there and its expected reward under the target at that slot (Σ over items of q · r̂).

The value estimated is the mean discounted reward per shown slot under the target, d(k) · r with the seed's
position discount d(k) = 1 / log2(k + 2) (1 at the top, `discount=False` for none). With w = min(q / max(p,
min_propensity), clip):

  IPS    Σ w · d · r / n
  SNIPS  Σ w · d · r / Σ w                       (self-normalised: less variance, a small bias)
  DR     Σ d · (r̂_target + w · (r − r̂)) / n      (doubly robust: right if the propensities or the model are)

Without a model, DR uses the mean logged reward at each position as r̂ for every item there (a model that does not
depend on the item, so r̂_target = r̂). Each estimate has a percentile bootstrap interval over the groups (the
logged lists: slots of one list are resampled together), with a fixed seed.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from recsys.evaluation.metrics import BOOTSTRAP_RESAMPLES, BOOTSTRAP_SEED

DEFAULT_CLIP = 10.0
DEFAULT_MIN_PROPENSITY = 1e-3
ESTIMATORS = ("ips", "snips", "dr")


@dataclass(frozen=True)
class Estimate:
    estimator: str
    value: float
    low: float
    high: float
    confidence: float

    def to_json(self) -> dict[str, float | str]:
        return {"estimator": self.estimator, "value": self.value, "low": self.low, "high": self.high}


@dataclass(frozen=True)
class Slots:
    """Logged slots, one entry per shown item; every array has one value per slot."""

    reward: np.ndarray
    logging_propensity: np.ndarray
    target_propensity: np.ndarray
    position: np.ndarray  # 0-based
    group: np.ndarray | None = None  # the list each slot belongs to (resampled together); default: each its own
    reward_estimate: np.ndarray | None = None  # r̂ of the logged item at its slot
    target_estimate: np.ndarray | None = None  # Σ_items q · r̂ at the slot; default r̂ (an item-free model)

    def __post_init__(self) -> None:
        n = len(self.reward)
        for name in ("logging_propensity", "target_propensity", "position", "group", "reward_estimate"):
            value = getattr(self, name)
            if value is not None and len(value) != n:
                raise ValueError(f"{name} has {len(value)} values for {n} slots")
        if self.target_estimate is not None and len(self.target_estimate) != n:
            raise ValueError(f"target_estimate has {len(self.target_estimate)} values for {n} slots")
        if n and (np.min(self.logging_propensity) <= 0 or np.max(self.logging_propensity) > 1):
            raise ValueError("logging propensities must be in (0, 1]")
        if n and (np.min(self.target_propensity) < 0 or np.max(self.target_propensity) > 1):
            raise ValueError("target propensities must be in [0, 1]")


def position_discount(position: np.ndarray) -> np.ndarray:
    """1 / log2(k + 2) for 0-based positions k: 1, 0.63, 0.5, ..."""
    return 1.0 / np.log2(np.asarray(position, dtype=np.float64) + 2.0)


def weights(slots: Slots, clip: float = DEFAULT_CLIP, min_propensity: float = DEFAULT_MIN_PROPENSITY) -> np.ndarray:
    """Importance weights q / max(p, min_propensity), clipped at `clip`."""
    if clip <= 0 or not 0 < min_propensity <= 1:
        raise ValueError("clip must be > 0 and min_propensity in (0, 1]")
    logging = np.maximum(np.asarray(slots.logging_propensity, dtype=np.float64), min_propensity)
    return np.minimum(np.asarray(slots.target_propensity, dtype=np.float64) / logging, clip)


def _position_means(reward: np.ndarray, position: np.ndarray) -> np.ndarray:
    """Per slot, the mean logged reward at its position: the item-free reward model DR falls back on."""
    positions, inverse = np.unique(position, return_inverse=True)
    sums = np.bincount(inverse, weights=reward, minlength=len(positions))
    counts = np.bincount(inverse, minlength=len(positions))
    return (sums / counts)[inverse]


def estimate(
    slots: Slots,
    *,
    clip: float = DEFAULT_CLIP,
    min_propensity: float = DEFAULT_MIN_PROPENSITY,
    discount: bool = True,
    confidence: float = 0.95,
    resamples: int = BOOTSTRAP_RESAMPLES,
    seed: int = BOOTSTRAP_SEED,
) -> dict[str, Estimate]:
    """IPS, SNIPS and DR estimates of the target's mean discounted reward per slot, each with its interval.

    Empty slots give {} (nothing to estimate from)."""
    if not 0 < confidence < 1:
        raise ValueError(f"confidence must be in (0, 1), got {confidence}")
    reward = np.asarray(slots.reward, dtype=np.float64)
    if not len(reward):
        return {}
    position = np.asarray(slots.position)
    w = weights(slots, clip, min_propensity)
    d = position_discount(position) if discount else np.ones_like(reward)
    model = (
        np.asarray(slots.reward_estimate, dtype=np.float64)
        if slots.reward_estimate is not None
        else _position_means(reward, position)
    )
    model_target = np.asarray(slots.target_estimate, dtype=np.float64) if slots.target_estimate is not None else model
    # Per-group sums: each estimator is a ratio of sums, so a bootstrap resample is a weighted sum over groups.
    terms = np.column_stack([w * d * reward, w, np.ones_like(reward), d * (model_target + w * (reward - model))])
    group = np.arange(len(reward)) if slots.group is None else np.unique(slots.group, return_inverse=True)[1]
    n_groups = int(group.max()) + 1
    sums = np.column_stack([np.bincount(group, weights=terms[:, j], minlength=n_groups) for j in range(4)])

    def values(totals: np.ndarray) -> np.ndarray:  # totals: (..., 4) -> (..., 3): ips, snips, dr
        ips_num, weight, count, dr_num = (totals[..., j] for j in range(4))
        with np.errstate(invalid="ignore", divide="ignore"):
            snips = np.where(weight > 0, ips_num / weight, 0.0)
        return np.stack([ips_num / count, snips, dr_num / count], axis=-1)

    point = values(sums.sum(axis=0))
    rng = np.random.default_rng(seed)
    resampled = np.empty((resamples, 3))
    chunk = max(1, min(resamples, 2_000_000 // max(n_groups, 1)))
    for start in range(0, resamples, chunk):
        size = min(chunk, resamples - start)
        picks = rng.integers(0, n_groups, size=(size, n_groups))
        counts = np.bincount((picks + np.arange(size)[:, None] * n_groups).ravel(), minlength=size * n_groups).reshape(
            size, n_groups
        )  # (size, groups)
        resampled[start : start + size] = values(counts @ sums)
    tail = (1 - confidence) / 2 * 100
    low, high = np.percentile(resampled, [tail, 100 - tail], axis=0)
    return {
        name: Estimate(name, float(point[j]), float(low[j]), float(high[j]), confidence)
        for j, name in enumerate(ESTIMATORS)
    }
