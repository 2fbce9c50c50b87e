"""The statistics of an online experiment read from logs (the seed's experiment mode): per-variant means with a
bootstrap interval, the difference of each variant against the control with its interval and verdict, and the
sample-ratio-mismatch check.

Variants are independent samples (different subjects), so the bootstrap is not paired: each variant is resampled
on its own, by subject (a user, or a session without one), the unit experiments assign: the lists of a resampled
subject come with it, and a mean is the sum over the resampled lists / their number. The difference's interval is
the percentile interval of the difference of the two resampled means; the verdict reads it as `recsys eval`'s
Differences table does (`recsys.evaluation.metrics.paired_bootstrap`): ahead if it lies above 0, behind if below,
else level.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence

import numpy as np

from recsys.evaluation.metrics import BOOTSTRAP_RESAMPLES, BOOTSTRAP_SEED

SRM_ALPHA = 0.001  # a sample ratio this unlikely under the expected split is a mismatch (the usual threshold)


def verdict(low: float, high: float) -> str:
    """ahead / behind / level, as `paired_bootstrap` decides it from an interval of a difference."""
    return "ahead" if low > 0 else "behind" if high < 0 else "level"


def bootstrap_means(
    values: np.ndarray,
    subjects: Sequence[str] | np.ndarray,
    resamples: int = BOOTSTRAP_RESAMPLES,
    seed: int | Sequence[int] = BOOTSTRAP_SEED,
) -> np.ndarray:
    """Bootstrap means of each column of `values` (lists x metrics), resampling subjects with their lists.

    Returns (resamples, metrics). The same values, subjects and seed give the same resamples."""
    values = np.asarray(values, dtype=np.float64)
    if values.ndim != 2 or len(values) != len(subjects):
        raise ValueError("values must be (lists, metrics) with one subject per list")
    _, cluster = np.unique(np.asarray(subjects, dtype=object).astype(str), return_inverse=True)
    n = int(cluster.max()) + 1 if len(cluster) else 0
    out = np.zeros((resamples, values.shape[1]))
    if not n:
        return out
    sums = np.stack([np.bincount(cluster, weights=values[:, j], minlength=n) for j in range(values.shape[1])], axis=1)
    lists = np.bincount(cluster, minlength=n).astype(np.float64)
    rng = np.random.default_rng(seed)
    chunk = max(1, min(resamples, 2_000_000 // n))
    for start in range(0, resamples, chunk):
        size = min(chunk, resamples - start)
        picks = rng.integers(0, n, size=(size, n))
        counts = (
            np.bincount((picks + np.arange(size)[:, None] * n).ravel(), minlength=size * n)
            .reshape(size, n)
            .astype(np.float64)
        )
        out[start : start + size] = (counts @ sums) / (counts @ lists)[:, None]
    return out


def percentile_interval(samples: np.ndarray, confidence: float = 0.95) -> tuple[np.ndarray, np.ndarray]:
    """Per column, the `confidence` percentile interval of bootstrap samples."""
    if not 0 < confidence < 1:
        raise ValueError(f"confidence must be in (0, 1), got {confidence}")
    tail = (1 - confidence) / 2 * 100
    low, high = np.percentile(samples, [tail, 100 - tail], axis=0)
    return low, high


def differences(
    metrics: Sequence[str],
    point_first: np.ndarray,
    samples_first: np.ndarray,
    point_second: np.ndarray,
    samples_second: np.ndarray,
    confidence: float = 0.95,
) -> list[dict[str, float | str]]:
    """Per metric, first - second with the interval of the resampled differences and a verdict."""
    low, high = percentile_interval(samples_first - samples_second, confidence)
    return [
        {
            "metric": metric,
            "difference": float(point_first[j] - point_second[j]),
            "low": float(low[j]),
            "high": float(high[j]),
            "confidence": confidence,
            "verdict": verdict(float(low[j]), float(high[j])),
        }
        for j, metric in enumerate(metrics)
    ]


def chi2_sf(statistic: float, df: int) -> float:
    """P(X >= statistic) for X chi-square with `df` degrees of freedom (the regularised upper incomplete gamma
    Q(df / 2, statistic / 2), by its series or its continued fraction)."""
    if df < 1:
        raise ValueError(f"df must be >= 1, got {df}")
    if statistic <= 0:
        return 1.0
    a, x = df / 2, statistic / 2
    log_front = a * math.log(x) - x - math.lgamma(a)
    if x < a + 1:  # series for the lower P(a, x)
        term = total = 1.0 / a
        n = a
        while abs(term) > abs(total) * 1e-15:
            n += 1
            term *= x / n
            total += term
        return max(0.0, 1.0 - total * math.exp(log_front))
    # Lentz's continued fraction for Q(a, x)
    tiny = 1e-300
    b = x + 1 - a
    c, d = 1 / tiny, 1 / b
    h = d
    for i in range(1, 10_000):
        an = -i * (i - a)
        b += 2
        d = an * d + b
        d = tiny if abs(d) < tiny else d
        c = b + an / c
        c = tiny if abs(c) < tiny else c
        d = 1 / d
        delta = d * c
        h *= delta
        if abs(delta - 1) < 1e-15:
            break
    return min(1.0, math.exp(log_front) * h)


def sample_ratio(
    observed: Mapping[str, int], expected: Mapping[str, float] | None = None, alpha: float = SRM_ALPHA
) -> dict[str, object]:
    """The sample-ratio-mismatch check: a chi-square goodness-of-fit test of the subjects per variant against the
    expected split (equal shares by default; `expected` maps every variant to its weight, any scale)."""
    variants = sorted(observed)
    total = sum(observed.values())
    if expected is None:
        shares = {v: 1 / len(variants) for v in variants} if variants else {}
    else:
        missing = [v for v in variants if v not in expected]
        if missing:
            raise ValueError(f"the expected split names no weight for variants {missing}")
        weight = sum(expected[v] for v in variants)
        if weight <= 0 or any(expected[v] < 0 for v in variants):
            raise ValueError("the expected split's weights must be >= 0 and not all 0")
        shares = {v: expected[v] / weight for v in variants}
    statistic = 0.0
    for v in variants:
        want = total * shares[v]
        if want > 0:
            statistic += (observed[v] - want) ** 2 / want
        elif observed[v]:
            statistic = math.inf  # subjects in a variant expected to get none
    p = chi2_sf(statistic, len(variants) - 1) if len(variants) > 1 and math.isfinite(statistic) else 0.0
    if len(variants) < 2:
        p = 1.0
    return {
        "observed": {v: int(observed[v]) for v in variants},
        "expected_share": {v: round(shares[v], 6) for v in variants},
        "chi2": round(statistic, 6) if math.isfinite(statistic) else None,
        "p_value": p,
        "mismatch": p < alpha,
    }
