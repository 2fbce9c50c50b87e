"""The spec and the planted world: taste groups, popularity, successors, user preferences, and the catalog.

Both samplers (`sessions`, `bulk`) draw their events from the same `World`, so they plant the same structure.
"""

from __future__ import annotations

import bisect
import csv
import datetime as dt
import random
from collections.abc import Sequence
from dataclasses import dataclass
from itertools import accumulate
from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field, NonNegativeInt, PositiveInt, model_validator

CATEGORIES = (
    "shoes",
    "outdoor",
    "kitchen",
    "books",
    "toys",
    "beauty",
    "electronics",
    "garden",
    "sports",
    "music",
    "home",
    "pets",
)
BRANDS_PER_GROUP = 3
STYLES_PER_GROUP = 2
MAX_RANK = 10
DAY_MS = 86_400_000
MAX_IDS = 9_999_999


class SyntheticSpec(BaseModel):
    """Everything that determines a synthetic data set; the same spec always gives the same bytes."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    seed: int = 0
    tenant: str = Field("demo", min_length=1)
    surface: str = Field("home", min_length=1)
    start: dt.date = dt.date(2026, 1, 1)
    days: PositiveInt = 7
    users: PositiveInt = 200
    items: PositiveInt = 300
    taste_groups: PositiveInt = 6
    events_per_day: PositiveInt | None = Field(
        None,
        description="exactly this many lines per day from the vectorized sampler (sessions of uniformly random "
        "users); unset: sessions_per_user_per_day sessions per user from the exact pure-Python sampler",
    )
    sessions_per_user_per_day: float = Field(0.5, ge=0, le=50, description="Poisson mean")
    mean_session_length: float = Field(6.0, ge=1, description="mean viewed items per session (geometric)")
    max_session_length: int = Field(50, ge=1, le=200, description="cap on viewed items (keeps a session in its day)")
    zipf_exponent: float = Field(1.1, ge=0, le=5)
    noise: float = Field(0.1, ge=0, le=1, description="probability that a step is a uniformly random item")
    next_item_prob: float = Field(0.6, ge=0, le=1, description="probability (after noise) of the planted successor")
    second_group_prob: float = Field(0.5, ge=0, le=1, description="probability that a user has two preferred groups")
    primary_group_weight: float = Field(0.7, ge=0, le=1, description="share of the primary group for two-group users")
    click_rate: float = Field(0.12, ge=0, le=1, description="P(click | exposure)")
    add_to_cart_rate: float = Field(0.04, ge=0, le=1, description="P(add_to_cart | exposure)")
    purchase_rate: float = Field(0.015, ge=0, le=1, description="P(purchase | exposure)")
    anonymous_fraction: float = Field(0.15, ge=0, le=1, description="share of users that never send a user_id")
    malformed_lines: NonNegativeInt = 0
    gzip: bool = False
    catalog_namespace: str | None = Field(None, description="catalog namespace column; default: the surface")

    @model_validator(mode="after")
    def _consistent(self) -> SyntheticSpec:
        if self.items < 2 * self.taste_groups:
            raise ValueError(f"items ({self.items}) must be at least 2 * taste_groups ({self.taste_groups})")
        if self.add_to_cart_rate > self.click_rate:
            raise ValueError("add_to_cart_rate must not exceed click_rate (the funnel is exposure > click > cart)")
        if self.purchase_rate > self.add_to_cart_rate:
            raise ValueError("purchase_rate must not exceed add_to_cart_rate (the funnel is cart > purchase)")
        if self.users > MAX_IDS or self.items > MAX_IDS:
            raise ValueError(f"users and items must be at most {MAX_IDS:,}")
        return self

    @property
    def day_list(self) -> list[dt.date]:
        return [self.start + dt.timedelta(days=offset) for offset in range(self.days)]


def id_width(count: int) -> int:
    """Digits of the ids of `count` users or items: 5 up to 100,000 (u00000..u99999), wider beyond."""
    return max(5, len(str(count - 1)))


@dataclass(frozen=True)
class World:
    """The planted ground truth: item groups, popularity, successors and user preferences (indices, not ids)."""

    item_ids: list[str]
    item_group: list[int]
    item_brand: list[int]
    item_style: list[int]
    popularity: list[float]
    next_item: list[int]
    group_items: list[list[int]]
    group_cumweights: list[list[float]]
    user_ids: list[str]
    user_groups: list[tuple[int, ...]]
    anonymous: list[bool]

    def planted_next(self, item_id: str) -> str:
        return self.item_ids[self.next_item[item_index(item_id)]]

    def group_of(self, item_id: str) -> int:
        return self.item_group[item_index(item_id)]

    def preferred_groups(self, user_id: str) -> tuple[int, ...]:
        return self.user_groups[int(user_id[1:])]


def item_index(item: str) -> int:
    return int(item[1:])


def group_category(group: int) -> str:
    return CATEGORIES[group] if group < len(CATEGORIES) else f"cat{group}"


def rng_for(spec: SyntheticSpec, purpose: str) -> random.Random:
    return random.Random(f"recsys-synthetic:{spec.seed}:{purpose}")


def below(rng: random.Random, n: int) -> int:
    """Uniform int in [0, n) from `random()` only (stable across Python versions)."""
    return min(int(rng.random() * n), n - 1)


def _shuffle(rng: random.Random, values: list[int]) -> None:
    for i in range(len(values) - 1, 0, -1):
        j = below(rng, i + 1)
        values[i], values[j] = values[j], values[i]


def weighted(rng: random.Random, values: Sequence[int], cumweights: Sequence[float]) -> int:
    index = bisect.bisect_right(cumweights, rng.random() * cumweights[-1])
    return values[min(index, len(values) - 1)]


def build_world(spec: SyntheticSpec) -> World:
    """The planted structure of `spec` (depends on seed, items, users and taste_groups plus the structure knobs)."""
    rng = rng_for(spec, "world")
    n_items, n_groups = spec.items, spec.taste_groups

    order = list(range(n_items))
    _shuffle(rng, order)
    item_group = [0] * n_items
    for position, item in enumerate(order):
        item_group[item] = position % n_groups

    ranking = list(range(n_items))
    _shuffle(rng, ranking)
    popularity = [0.0] * n_items
    for rank, item in enumerate(ranking):
        popularity[item] = 1.0 / float(rank + 1) ** spec.zipf_exponent

    group_items: list[list[int]] = [[] for _ in range(n_groups)]
    for item in range(n_items):  # ascending within each group
        group_items[item_group[item]].append(item)
    group_cumweights = [list(accumulate(popularity[item] for item in items)) for items in group_items]

    next_item = [0] * n_items
    for items in group_items:
        cycle = list(items)
        _shuffle(rng, cycle)
        for position, item in enumerate(cycle):
            next_item[item] = cycle[(position + 1) % len(cycle)]

    item_brand = [item_group[item] * BRANDS_PER_GROUP + below(rng, BRANDS_PER_GROUP) for item in range(n_items)]
    item_style = [item_group[item] * STYLES_PER_GROUP + below(rng, STYLES_PER_GROUP) for item in range(n_items)]

    user_groups: list[tuple[int, ...]] = []
    anonymous: list[bool] = []
    for _ in range(spec.users):
        primary = below(rng, n_groups)
        if n_groups > 1 and rng.random() < spec.second_group_prob:
            secondary = (primary + 1 + below(rng, n_groups - 1)) % n_groups
            user_groups.append((primary, secondary))
        else:
            user_groups.append((primary,))
        anonymous.append(rng.random() < spec.anonymous_fraction)

    item_digits, user_digits = id_width(n_items), id_width(spec.users)
    return World(
        item_ids=[f"i{item:0{item_digits}d}" for item in range(n_items)],
        item_group=item_group,
        item_brand=item_brand,
        item_style=item_style,
        popularity=popularity,
        next_item=next_item,
        group_items=group_items,
        group_cumweights=group_cumweights,
        user_ids=[f"u{user:0{user_digits}d}" for user in range(spec.users)],
        user_groups=user_groups,
        anonymous=anonymous,
    )


def write_catalog(spec: SyntheticSpec, path: Path, world: World | None = None) -> int:
    """Write the catalog CSV (item_id,namespace,tags,title) of every item of `spec`; return the number of rows."""
    world = world or build_world(spec)
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", encoding="utf-8", newline="") as handle:
        writer = csv.writer(handle, lineterminator="\n")
        writer.writerow(["item_id", "namespace", "tags", "title"])
        for item, identifier in enumerate(world.item_ids):
            category = group_category(world.item_group[item])
            brand, style = world.item_brand[item], world.item_style[item]
            tags = f"category:{category}|brand:b{brand}|style:s{style}"
            title = f"{category.capitalize()} B{brand} S{style} no. {item}"
            writer.writerow([identifier, spec.catalog_namespace or spec.surface, tags, title])
    return len(world.item_ids)
