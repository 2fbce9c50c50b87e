"""Ranking metrics: per user (precision, recall, NDCG, AP, hit rate @K, reciprocal rank) and per dataset
(catalog coverage, novelty), and `evaluate_lists`, which averages them over the users of a split.

Conventions, shared by every function here:
- `recommended` is ranked, best first. A repeated item counts once, at its first position (the list is de-duplicated
  before it is cut at K), so a recommender cannot score twice with the same item.
- K is a cut-off, not the list length: a list shorter than K counts its missing slots as misses
  (precision@K divides by K), and K larger than the list is allowed.
- Gains are binary: an item is relevant or not.
- A user with no relevant items has no defined recall/NDCG/AP: the per-user functions return 0.0 for them and
  `evaluate_lists` leaves such users out.

Definitions, for the top-K list with hits at 1-based ranks r:
  precision@K  hits / K
  recall@K     hits / |relevant|
  ndcg@K       DCG / IDCG, DCG = sum over hits of 1 / log2(r + 1), IDCG = the DCG of min(|relevant|, K) hits at
               ranks 1..min(|relevant|, K)
  ap@K         sum over hits of precision@r, divided by min(|relevant|, K)   (its mean over users is MAP@K)
  hit_rate@K   1 if any hit, else 0
  rr           1 / rank of the first hit anywhere in the list (no cut-off), 0 without a hit (its mean is MRR)
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Mapping, Sequence

import numpy as np

# Accuracy metric families computed at every K, in report order.
FAMILIES = ("recall", "ndcg", "map", "precision", "hit_rate")
DEFAULT_KS = (5, 10, 20)


def _check_k(k: int) -> None:
    if k < 1:
        raise ValueError(f"k must be >= 1, got {k}")


def _dedupe(recommended: Iterable[str]) -> list[str]:
    """Order-preserving de-duplication: a repeated item keeps its first position."""
    return list(dict.fromkeys(recommended))


def _top_k(recommended: Sequence[str], k: int) -> list[str]:
    _check_k(k)
    return _dedupe(recommended)[:k]


def _hits(recommended: Sequence[str], relevant: set[str], k: int) -> list[bool]:
    return [item in relevant for item in _top_k(recommended, k)]


def precision_at_k(recommended: Sequence[str], relevant: set[str], k: int) -> float:
    """Hits in the top K / K."""
    return sum(_hits(recommended, relevant, k)) / k


def recall_at_k(recommended: Sequence[str], relevant: set[str], k: int) -> float:
    """Hits in the top K / |relevant| (0.0 when nothing is relevant)."""
    if not relevant:
        _check_k(k)
        return 0.0
    return sum(_hits(recommended, relevant, k)) / len(relevant)


def _idcg(n_relevant: int, k: int) -> float:
    return sum(1.0 / math.log2(rank + 1) for rank in range(1, min(n_relevant, k) + 1))


def ndcg_at_k(recommended: Sequence[str], relevant: set[str], k: int) -> float:
    """Binary-gain NDCG@K: DCG = sum of 1 / log2(rank + 1) over hits; IDCG over min(|relevant|, K) hits."""
    hits = _hits(recommended, relevant, k)
    if not relevant:
        return 0.0
    dcg = sum(1.0 / math.log2(rank + 1) for rank, hit in enumerate(hits, start=1) if hit)
    return dcg / _idcg(len(relevant), k)


def average_precision_at_k(recommended: Sequence[str], relevant: set[str], k: int) -> float:
    """AP@K: sum of precision@r over the hit ranks r <= K, divided by min(|relevant|, K)."""
    hits = _hits(recommended, relevant, k)
    if not relevant:
        return 0.0
    total, found = 0.0, 0
    for rank, hit in enumerate(hits, start=1):
        if hit:
            found += 1
            total += found / rank
    return total / min(len(relevant), k)


def hit_rate_at_k(recommended: Sequence[str], relevant: set[str], k: int) -> float:
    """1.0 if any of the top K is relevant, else 0.0."""
    return 1.0 if any(_hits(recommended, relevant, k)) else 0.0


def reciprocal_rank(recommended: Sequence[str], relevant: set[str]) -> float:
    """1 / (1-based rank of the first relevant item in the whole list), 0.0 if there is none."""
    for rank, item in enumerate(_dedupe(recommended), start=1):
        if item in relevant:
            return 1.0 / rank
    return 0.0


def _lists(lists: Mapping[str, Sequence[str]] | Iterable[Sequence[str]]) -> list[Sequence[str]]:
    return list(lists.values()) if isinstance(lists, Mapping) else list(lists)


def catalog_coverage(lists: Mapping[str, Sequence[str]] | Iterable[Sequence[str]], catalog_size: int, k: int) -> float:
    """Distinct items over all top-K lists / catalog_size.

    `lists` is {user: ranked items} or an iterable of ranked lists. Items outside the catalog are counted too, so
    the value exceeds 1 only if the lists recommend items the catalog does not have.
    """
    _check_k(k)
    if catalog_size < 1:
        raise ValueError(f"catalog_size must be >= 1, got {catalog_size}")
    distinct: set[str] = set()
    for recommended in _lists(lists):
        distinct.update(_top_k(recommended, k))
    return len(distinct) / catalog_size


def novelty(
    lists: Mapping[str, Sequence[str]] | Iterable[Sequence[str]],
    item_popularity: Mapping[str, float],
    k: int,
    n_users: int | None = None,
) -> float:
    """Mean self-information -log2 p(item) over every recommended slot of the top-K lists (0.0 with no slot).

    `item_popularity` maps an item to p(item), the probability that a user interacted with it (e.g. the share of
    training users who did, see `baselines.item_probabilities`). An item with p = 0 or absent from the mapping would
    have infinite self-information; it gets p = 1 / (n_users + 1) instead, as if one more user than the population
    had seen it once. `n_users` is the number of users p was estimated over; it defaults to the number of lists.
    """
    _check_k(k)
    all_lists = _lists(lists)
    users = len(all_lists) if n_users is None else n_users
    if users < 0:
        raise ValueError(f"n_users must be >= 0, got {users}")
    floor = 1.0 / (users + 1)
    total, slots = 0.0, 0
    for recommended in all_lists:
        for item in _top_k(recommended, k):
            p = item_popularity.get(item, 0.0)
            total += -math.log2(p if p > 0 else floor)
            slots += 1
    return total / slots if slots else 0.0


def evaluate_lists(
    lists: Mapping[str, Sequence[str]],
    relevant: Mapping[str, set[str]],
    ks: Sequence[int] = DEFAULT_KS,
    catalog_size: int | None = None,
    item_popularity: Mapping[str, float] | None = None,
    n_users: int | None = None,
) -> dict[str, float]:
    """Mean per-user metrics over the users of `relevant` with a non-empty relevant set.

    A user of `relevant` absent from `lists` was recommended nothing (all zeros); users of `lists` absent from
    `relevant` (or with an empty set) are not evaluated. Pass the lists cut to the length you want MRR over
    (reciprocal rank has no cut-off), e.g. max(ks).

    Returns, for each K in ks: "recall@K", "ndcg@K", "map@K", "precision@K", "hit_rate@K"; "mrr"; "users" (the
    number of evaluated users, an int); with `catalog_size`, "coverage@K" (catalog_coverage over the evaluated
    users' lists); with `item_popularity`, "novelty@K" (novelty over the same lists; `n_users` as in `novelty`).
    With no evaluated user only {"users": 0} is returned: an average over nobody is undefined, not 0.
    """
    ks = sorted(set(ks))
    if not ks:
        raise ValueError("ks must not be empty")
    for k in ks:
        _check_k(k)
    users = [user for user, items in relevant.items() if items]
    out: dict[str, float] = {}
    if not users:
        return {"users": 0}

    k_max = ks[-1]
    n = len(users)
    hit_matrix = np.zeros((n, k_max), dtype=bool)
    n_relevant = np.empty(n, dtype=np.int64)
    rr = np.zeros(n, dtype=np.float64)
    evaluated: list[list[str]] = []
    for row, user in enumerate(users):
        rel = relevant[user]
        ranked = _dedupe(lists.get(user, ()))
        evaluated.append(ranked)
        n_relevant[row] = len(rel)
        flags = [item in rel for item in ranked]
        hit_matrix[row, : min(len(flags), k_max)] = flags[:k_max]
        first = next((rank for rank, hit in enumerate(flags, start=1) if hit), 0)
        rr[row] = 1.0 / first if first else 0.0

    ranks = np.arange(1, k_max + 1, dtype=np.float64)
    discounts = 1.0 / np.log2(ranks + 1.0)
    ideal = np.cumsum(discounts)  # ideal[m - 1] = IDCG with m relevant items in the top
    cum_hits = np.cumsum(hit_matrix, axis=1)
    precision_at_rank = np.where(hit_matrix, cum_hits / ranks, 0.0)  # precision@r at the hit ranks r
    gains = hit_matrix * discounts
    for k in ks:
        hits = cum_hits[:, k - 1]
        denom = np.minimum(n_relevant, k)
        out[f"recall@{k}"] = float(np.mean(hits / n_relevant))
        out[f"ndcg@{k}"] = float(np.mean(gains[:, :k].sum(axis=1) / ideal[denom - 1]))
        out[f"map@{k}"] = float(np.mean(precision_at_rank[:, :k].sum(axis=1) / denom))
        out[f"precision@{k}"] = float(np.mean(hits / k))
        out[f"hit_rate@{k}"] = float(np.mean(hits > 0))
    out["mrr"] = float(np.mean(rr))
    for k in ks:
        if catalog_size is not None:
            out[f"coverage@{k}"] = catalog_coverage(evaluated, catalog_size, k)
        if item_popularity is not None:
            out[f"novelty@{k}"] = novelty(evaluated, item_popularity, k, n_users=n_users)
    out["users"] = n
    return out


def seen_share(lists: Mapping[str, Sequence[str]], seen: Mapping[str, Iterable[str]]) -> float:
    """Recommended slots holding an item the user had already seen / all recommended slots (0.0 if none): must be 0
    for a recommender that excludes seen items."""
    slots = sum(len(items) for items in lists.values())
    repeated = 0
    for user, items in lists.items():
        known = set(seen.get(user, ()))
        repeated += sum(item in known for item in items)
    return repeated / slots if slots else 0.0


# Paired bootstrap of a difference between two recommenders (`compare`): resamples and seed are fixed so the
# same lists always give the same interval.
BOOTSTRAP_RESAMPLES = 2000
BOOTSTRAP_SEED = 0
_PER_USER = {
    "recall": recall_at_k,
    "ndcg": ndcg_at_k,
    "map": average_precision_at_k,
    "precision": precision_at_k,
    "hit_rate": hit_rate_at_k,
}


def compare(
    lists_a: Mapping[str, Sequence[str]],
    lists_b: Mapping[str, Sequence[str]],
    relevant: Mapping[str, set[str]],
    metric: str = "ndcg@10",
    confidence: float = 0.95,
    resamples: int = BOOTSTRAP_RESAMPLES,
    seed: int = BOOTSTRAP_SEED,
) -> dict[str, float | int | str]:
    """How much better A is than B on `metric` ("<family>@K"), over the users of `relevant` with relevant items.

    Per user d = metric(A) - metric(B) (a missing list scores 0). Returns difference = mean d, low / high = the
    `confidence` percentile interval of the mean over `resamples` bootstrap resamples of the users (paired: a
    resampled user brings both lists), better / worse / level = users with d > 0, d < 0, d == 0, users, and a
    verdict: "ahead" (low > 0), "behind" (high < 0) or "level" (the interval contains 0: the test users cannot tell
    A and B apart). A small test set gives a wide interval.
    """
    family, _, k_text = metric.partition("@")
    if family not in _PER_USER or not k_text.isdigit():
        raise ValueError(f"metric {metric!r}: use recall|ndcg|map|precision|hit_rate@K")
    if not 0 < confidence < 1:
        raise ValueError(f"confidence must be in (0, 1), got {confidence}")
    k = int(k_text)
    _check_k(k)
    per_user = _PER_USER[family]
    users = [user for user, items in relevant.items() if items]
    if not users:
        return {"metric": metric, "users": 0}
    values_a = [per_user(lists_a.get(u, ()), relevant[u], k) for u in users]
    values_b = [per_user(lists_b.get(u, ()), relevant[u], k) for u in users]
    return paired_bootstrap(values_a, values_b, metric, confidence, resamples, seed)


def paired_bootstrap(
    values_a: Sequence[float] | np.ndarray,
    values_b: Sequence[float] | np.ndarray,
    metric: str,
    confidence: float = 0.95,
    resamples: int = BOOTSTRAP_RESAMPLES,
    seed: int = BOOTSTRAP_SEED,
    chunk: int = 100,
) -> dict[str, float | int | str]:
    """`compare` for per-unit metric values already computed (units: users, session positions, ...).

    values_a[i] and values_b[i] are the metric of A and B on unit i; `metric` only labels the result. Same keys,
    resampling and verdict as `compare` ("users" = the number of units), and the same interval for the same
    values: the resamples are drawn from the same generator in the same order, `chunk` rows at a time so that
    memory stays bounded on many units.
    """
    if not 0 < confidence < 1:
        raise ValueError(f"confidence must be in (0, 1), got {confidence}")
    a, b = np.asarray(values_a, dtype=np.float64), np.asarray(values_b, dtype=np.float64)
    if a.shape != b.shape or a.ndim != 1:
        raise ValueError("values_a and values_b must be 1-d and of the same length")
    if not len(a):
        return {"metric": metric, "users": 0}
    diffs = a - b
    rng = np.random.default_rng(seed)
    means = np.concatenate(
        [
            diffs[rng.integers(0, len(diffs), size=(min(chunk, resamples - start), len(diffs)))].mean(axis=1)
            for start in range(0, resamples, chunk)
        ]
    )
    tail = (1 - confidence) / 2 * 100
    low, high = (float(v) for v in np.percentile(means, [tail, 100 - tail]))
    return {
        "metric": metric,
        "difference": float(diffs.mean()),
        "low": low,
        "high": high,
        "confidence": confidence,
        "better": int((diffs > 0).sum()),
        "worse": int((diffs < 0).sum()),
        "level": int((diffs == 0).sum()),
        "users": len(diffs),
        "verdict": "ahead" if low > 0 else "behind" if high < 0 else "level",
    }


def aggregate_diversity(lists: Mapping[str, Sequence[str]] | Iterable[Sequence[str]], k: int) -> float:
    """The seed's diversity@K: the normalised entropy of how often each item fills a top-K slot over all lists,
    -Σ p(i) log p(i) / log(distinct items), p(i) = i's slots / all slots. 1 when every recommended item fills as
    many slots as any other, near 0 when a few items fill most slots; 0.0 with fewer than two distinct items."""
    _check_k(k)
    counts: dict[str, int] = {}
    for recommended in _lists(lists):
        for item in _top_k(recommended, k):
            counts[item] = counts.get(item, 0) + 1
    if len(counts) < 2:
        return 0.0
    p = np.array(list(counts.values()), dtype=np.float64)
    p /= p.sum()
    return float(-(p * np.log(p)).sum() / math.log(len(counts)))


def intra_list_diversity(
    lists: Mapping[str, Sequence[str]] | Iterable[Sequence[str]],
    tags: Callable[[str], Iterable[str]],
    k: int,
) -> float:
    """Intra-list diversity@K: the mean over the lists with at least two items of the mean over their top-K pairs
    of 1 - Jaccard(tags(a), tags(b)) (two untagged items count as unlike: 1). 0.0 without such a list."""
    _check_k(k)
    per_list = []
    for recommended in _lists(lists):
        top = [set(tags(item)) for item in _top_k(recommended, k)]
        if len(top) < 2:
            continue
        distances = []
        for a in range(len(top)):
            for b in range(a + 1, len(top)):
                union = len(top[a] | top[b])
                distances.append(1.0 - len(top[a] & top[b]) / union if union else 1.0)
        per_list.append(sum(distances) / len(distances))
    return sum(per_list) / len(per_list) if per_list else 0.0
