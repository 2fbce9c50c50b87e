"""Deterministic synthetic raw exposure events with planted structure (the bundled sample, tests, evaluation, benches).

Planted structure (all of it derived from `SyntheticSpec.seed`, see `build_world`):

* Taste groups. Every item belongs to exactly one of `taste_groups` groups (assigned by a seeded shuffle, so ids
  do not reveal the group). The catalog derives each item's tags from its group: `category:<group category>`, a
  `brand:` drawn from the group's own brands and a `style:` drawn from the group's styles, so content similarity
  (shared tags) is meaningful and mostly within a group.
* Popularity. Items get Zipf weights `1 / rank ** zipf_exponent` over a seeded random ranking; every popularity
  pick is weighted by them, so global exposure counts have a long tail.
* Users. Each user prefers one taste group, or two with probability `second_group_prob` (the first one is
  primary and is picked with probability `primary_group_weight`). A fraction `anonymous_fraction` of users never
  sends a user_id: their sessions are `s-anon-<YYYYMMDD>-<n>` and carry no user_id.
* Sessions. Per user and day the number of sessions is Poisson(`sessions_per_user_per_day`); a session's length is
  geometric with mean `mean_session_length` (capped at `max_session_length`). The first item is a popularity pick
  from a preferred group. Each following item is, with probability `noise`, a uniformly random item of the whole
  catalog; otherwise, with probability `next_item_prob`, the planted successor of the previous item (`next_item`:
  one random cycle through each group's items, so the successor is always in the same group); otherwise another
  popularity pick from a preferred group. The planted successor is therefore the most frequent next item.
* Funnel. Each viewed item is one `exposure` (own request_id, rank 0-9 skewed to the top); it is followed by a
  `click` with probability `click_rate`, which is followed by an `add_to_cart` and that by a `purchase`, so that
  P(add_to_cart | exposure) = `add_to_cart_rate` and P(purchase | exposure) = `purchase_rate`.
* Time. Events of a session are seconds to minutes apart, strictly increasing, and the whole session lies inside
  its UTC day. Each day is written to `dt=YYYY-MM-DD/events.jsonl` (or `.jsonl.gz`), sorted by ts, with event_ids
  `e-<YYYYMMDD>-<n>` numbered in file order.
* Malformed lines. `malformed_lines` extra bad lines are spread over the days, cycling through: truncated JSON,
  a missing item_id, a ts without a zone, and `"v": 2`.

Determinism: every random draw comes from `random.Random` seeded with a string (SHA-512 seeding) and uses only
`random()`, so the same spec gives byte-identical files (gzip output is written with mtime 0 and no file name).

Usage: python -m recsys.synthetic --out DIR --days 7 --users 200 --items 300 --seed 7 [--catalog PATH]
[--malformed 3] [--gzip]
"""

from __future__ import annotations

import argparse
import bisect
import csv
import datetime as dt
import gzip
import json
import math
import random
import sys
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from enum import StrEnum
from itertools import accumulate
from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field, NonNegativeInt, PositiveInt, ValidationError, model_validator

from recsys.days import parse_day

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
        if self.users > 99_999 or self.items > 99_999:
            raise ValueError("users and items must be at most 99999 (ids are u00000..u99999, i00000..i99999)")
        return self

    @property
    def day_list(self) -> list[dt.date]:
        return [self.start + dt.timedelta(days=offset) for offset in range(self.days)]


class MalformedKind(StrEnum):
    """The kinds of deliberately bad lines, injected in this order (cycling)."""

    BROKEN_JSON = "broken_json"
    MISSING_ITEM_ID = "missing_item_id"
    TS_WITHOUT_ZONE = "ts_without_zone"
    UNSUPPORTED_VERSION = "unsupported_version"


MALFORMED_CYCLE = tuple(MalformedKind)


class GenerationSummary(BaseModel):
    """What `generate` wrote (paths are relative to the output directory)."""

    tenant: str
    surface: str
    seed: int
    start: dt.date
    end: dt.date
    files: list[str]
    events_total: int
    events_per_day: dict[str, int]
    event_types: dict[str, int]
    sessions_total: int
    anonymous_sessions: int
    active_users: int
    distinct_items: int
    malformed_lines: int
    malformed_per_day: dict[str, int]
    malformed_kinds: dict[str, int]
    catalog: str | None = None
    catalog_items: int | None = None


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


def item_id(index: int) -> str:
    return f"i{index:05d}"


def user_id(index: int) -> str:
    return f"u{index:05d}"


def item_index(item: str) -> int:
    return int(item[1:])


def group_category(group: int) -> str:
    return CATEGORIES[group] if group < len(CATEGORIES) else f"cat{group}"


def _rng(spec: SyntheticSpec, purpose: str) -> random.Random:
    return random.Random(f"recsys-synthetic:{spec.seed}:{purpose}")


def _below(rng: random.Random, n: int) -> int:
    """Uniform int in [0, n) from `random()` only (stable across Python versions)."""
    return min(int(rng.random() * n), n - 1)


def _shuffle(rng: random.Random, values: list[int]) -> None:
    for i in range(len(values) - 1, 0, -1):
        j = _below(rng, i + 1)
        values[i], values[j] = values[j], values[i]


def _weighted(rng: random.Random, values: Sequence[int], cumweights: Sequence[float]) -> int:
    index = bisect.bisect_right(cumweights, rng.random() * cumweights[-1])
    return values[min(index, len(values) - 1)]


def build_world(spec: SyntheticSpec) -> World:
    """The planted structure of `spec` (depends on seed, items, users and taste_groups plus the structure knobs)."""
    rng = _rng(spec, "world")
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

    group_items = [[item for item in range(n_items) if item_group[item] == group] for group in range(n_groups)]
    group_cumweights = [list(accumulate(popularity[item] for item in items)) for items in group_items]

    next_item = [0] * n_items
    for items in group_items:
        cycle = list(items)
        _shuffle(rng, cycle)
        for position, item in enumerate(cycle):
            next_item[item] = cycle[(position + 1) % len(cycle)]

    item_brand = [item_group[item] * BRANDS_PER_GROUP + _below(rng, BRANDS_PER_GROUP) for item in range(n_items)]
    item_style = [item_group[item] * STYLES_PER_GROUP + _below(rng, STYLES_PER_GROUP) for item in range(n_items)]

    user_groups: list[tuple[int, ...]] = []
    anonymous: list[bool] = []
    for _ in range(spec.users):
        primary = _below(rng, n_groups)
        if n_groups > 1 and rng.random() < spec.second_group_prob:
            secondary = (primary + 1 + _below(rng, n_groups - 1)) % n_groups
            user_groups.append((primary, secondary))
        else:
            user_groups.append((primary,))
        anonymous.append(rng.random() < spec.anonymous_fraction)

    return World(
        item_ids=[item_id(item) for item in range(n_items)],
        item_group=item_group,
        item_brand=item_brand,
        item_style=item_style,
        popularity=popularity,
        next_item=next_item,
        group_items=group_items,
        group_cumweights=group_cumweights,
        user_ids=[user_id(user) for user in range(spec.users)],
        user_groups=user_groups,
        anonymous=anonymous,
    )


@dataclass(frozen=True)
class _Event:
    ts_ms: int
    order: int
    user: str | None
    session: str
    request: str
    item: int
    rank: int
    event_type: str


class _DayGenerator:
    """Sessions of one UTC day; its own random stream, so a day does not depend on the other days."""

    def __init__(self, spec: SyntheticSpec, world: World, day: dt.date) -> None:
        self.spec = spec
        self.world = world
        self.day = day
        self.compact = day.strftime("%Y%m%d")
        self.rng = _rng(spec, f"day:{day.isoformat()}")
        self.exp_neg_mean = math.exp(-spec.sessions_per_user_per_day)
        self.continue_prob = 1.0 - 1.0 / spec.mean_session_length
        self.events: list[_Event] = []
        self.requests = 0
        self.sessions = 0
        self.anonymous_sessions = 0
        self.active_users: set[int] = set()

    def _poisson(self) -> int:
        count, product = 0, self.rng.random()
        while product > self.exp_neg_mean and count < 1000:
            count += 1
            product *= self.rng.random()
        return count

    def _session_length(self) -> int:
        length = 1
        while length < self.spec.max_session_length and self.rng.random() < self.continue_prob:
            length += 1
        return length

    def _preferred_pick(self, groups: tuple[int, ...]) -> int:
        group = groups[0]
        if len(groups) > 1 and self.rng.random() >= self.spec.primary_group_weight:
            group = groups[1]
        return _weighted(self.rng, self.world.group_items[group], self.world.group_cumweights[group])

    def _next_view(self, groups: tuple[int, ...], previous: int | None) -> int:
        rng, spec = self.rng, self.spec
        if previous is not None:
            if rng.random() < spec.noise:
                return _below(rng, spec.items)
            if rng.random() < spec.next_item_prob:
                return self.world.next_item[previous]
        elif rng.random() < spec.noise:
            return _below(rng, spec.items)
        item = self._preferred_pick(groups)
        for _ in range(3):
            if item != previous:
                break
            item = self._preferred_pick(groups)
        return item

    def _gap_ms(self, low_s: int, high_s: int) -> int:
        return low_s * 1000 + _below(self.rng, (high_s - low_s) * 1000)

    def generate(self) -> list[_Event]:
        for user in range(self.spec.users):
            for number in range(self._poisson()):
                self._session(user, number)
        self.events.sort(key=lambda event: (event.ts_ms, event.order))
        return self.events

    def _session(self, user: int, number: int) -> None:
        world, rng, spec = self.world, self.rng, self.spec
        if world.anonymous[user]:
            uid = None
            session = f"s-anon-{self.compact}-{self.anonymous_sessions}"
            self.anonymous_sessions += 1
        else:
            uid = world.user_ids[user]
            session = f"s-{uid}-{self.compact}-{number}"
            self.active_users.add(user)
        self.sessions += 1

        steps: list[tuple[int, int, int, str]] = []  # (offset_ms, item, rank, event_type); an exposure = a request
        offset, previous = 0, None
        views: list[tuple[int, int]] = []  # (item, rank)
        for _ in range(self._session_length()):
            item = self._next_view(world.user_groups[user], previous)
            rank = int(rng.random() ** 2 * MAX_RANK)
            views.append((item, rank))
            previous = item
        for view, (item, rank) in enumerate(views):
            if view:
                offset += self._gap_ms(4, 150)
            steps.append((offset, item, rank, "exposure"))
            if rng.random() < spec.click_rate:
                offset += self._gap_ms(1, 20)
                steps.append((offset, item, rank, "click"))
                if rng.random() * spec.click_rate < spec.add_to_cart_rate:
                    offset += self._gap_ms(5, 60)
                    steps.append((offset, item, rank, "add_to_cart"))
                    if rng.random() * spec.add_to_cart_rate < spec.purchase_rate:
                        offset += self._gap_ms(10, 120)
                        steps.append((offset, item, rank, "purchase"))

        start = _below(rng, DAY_MS - offset)  # offset < 200 * 350 s, so the session ends inside the day
        request = ""
        for offset_ms, item, rank, event_type in steps:
            if event_type == "exposure":
                self.requests += 1
                request = f"r-{self.compact}-{self.requests:06d}"
            self.events.append(
                _Event(
                    ts_ms=start + offset_ms,
                    order=len(self.events),
                    user=uid,
                    session=session,
                    request=request,
                    item=item,
                    rank=rank,
                    event_type=event_type,
                )
            )


def _format_ts(day: dt.date, ts_ms: int, zone: str = "Z") -> str:
    seconds, millis = divmod(ts_ms, 1000)
    minutes, second = divmod(seconds, 60)
    hour, minute = divmod(minutes, 60)
    return f"{day.isoformat()}T{hour:02d}:{minute:02d}:{second:02d}.{millis:03d}{zone}"


def _record(spec: SyntheticSpec, world: World, day: dt.date, event: _Event, event_id: str) -> dict[str, object]:
    record: dict[str, object] = {
        "v": 1,
        "ts": _format_ts(day, event.ts_ms),
        "tenant": spec.tenant,
        "surface": spec.surface,
    }
    if event.user is not None:
        record["user_id"] = event.user
    record.update(
        session_id=event.session,
        request_id=event.request,
        item_id=world.item_ids[event.item],
        rank=event.rank,
        event_type=event.event_type,
        event_id=event_id,
    )
    return record


def _dumps(record: dict[str, object]) -> str:
    return json.dumps(record, separators=(",", ":"), ensure_ascii=False)


def _malformed_line(kind: MalformedKind, template: dict[str, object]) -> str:
    bad = dict(template)
    bad["event_id"] = f"{template['event_id']}-bad"
    if kind is MalformedKind.BROKEN_JSON:
        text = _dumps(bad)
        return text[: len(text) // 2]
    if kind is MalformedKind.MISSING_ITEM_ID:
        del bad["item_id"]
    elif kind is MalformedKind.TS_WITHOUT_ZONE:
        bad["ts"] = str(bad["ts"]).removesuffix("Z")
    else:
        bad["v"] = 2
    return _dumps(bad)


def _malformed_plan(spec: SyntheticSpec) -> dict[int, list[MalformedKind]]:
    """Which day (index) receives which bad lines: spread evenly over the days, kinds cycling."""
    plan: dict[int, list[MalformedKind]] = {}
    for number in range(spec.malformed_lines):
        plan.setdefault(number * spec.days // spec.malformed_lines, []).append(
            MALFORMED_CYCLE[number % len(MALFORMED_CYCLE)]
        )
    return plan


def _fallback_template(spec: SyntheticSpec, world: World, day: dt.date) -> dict[str, object]:
    compact = day.strftime("%Y%m%d")
    uid = world.user_ids[0]
    event = _Event(
        ts_ms=DAY_MS // 2,
        order=0,
        user=uid,
        session=f"s-{uid}-{compact}-x",
        request=f"r-{compact}-x",
        item=0,
        rank=0,
        event_type="exposure",
    )
    return _record(spec, world, day, event, f"e-{compact}-x")


def _write_lines(path: Path, lines: list[str], compress: bool) -> None:
    data = "".join(f"{line}\n" for line in lines).encode("utf-8")
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("wb") as handle:
        if compress:
            with gzip.GzipFile(filename="", mode="wb", fileobj=handle, compresslevel=6, mtime=0) as zipped:
                zipped.write(data)
        else:
            handle.write(data)


def day_file(out_dir: Path, day: dt.date, compress: bool = False) -> Path:
    return out_dir / f"dt={day.isoformat()}" / ("events.jsonl.gz" if compress else "events.jsonl")


def generate(spec: SyntheticSpec, out_dir: Path) -> GenerationSummary:
    """Write one raw JSONL file per UTC day under `out_dir` (dt=YYYY-MM-DD/events.jsonl[.gz]); return a summary."""
    world = build_world(spec)
    plan = _malformed_plan(spec)
    placement = _rng(spec, "malformed")
    files: list[str] = []
    per_day: dict[str, int] = {}
    bad_per_day: dict[str, int] = {}
    kinds: Counter[str] = Counter()
    types: Counter[str] = Counter()
    items: set[int] = set()
    users: set[int] = set()
    sessions = anonymous_sessions = 0

    for index, day in enumerate(spec.day_list):
        generator = _DayGenerator(spec, world, day)
        events = generator.generate()
        compact = day.strftime("%Y%m%d")
        records = [
            _record(spec, world, day, event, f"e-{compact}-{number:06d}") for number, event in enumerate(events, 1)
        ]
        lines = [_dumps(record) for record in records]
        for kind in plan.get(index, []):
            position = _below(placement, len(lines) + 1)
            template = records[min(position, len(records) - 1)] if records else _fallback_template(spec, world, day)
            lines.insert(position, _malformed_line(kind, template))
            kinds[kind.value] += 1

        path = day_file(out_dir, day, spec.gzip)
        day_file(out_dir, day, not spec.gzip).unlink(missing_ok=True)
        _write_lines(path, lines, spec.gzip)

        files.append(path.relative_to(out_dir).as_posix())
        per_day[day.isoformat()] = len(events)
        bad_per_day[day.isoformat()] = len(plan.get(index, []))
        types.update(event.event_type for event in events)
        items.update(event.item for event in events)
        users.update(generator.active_users)
        sessions += generator.sessions
        anonymous_sessions += generator.anonymous_sessions

    return GenerationSummary(
        tenant=spec.tenant,
        surface=spec.surface,
        seed=spec.seed,
        start=spec.start,
        end=spec.day_list[-1],
        files=files,
        events_total=sum(per_day.values()),
        events_per_day=per_day,
        event_types={name: types[name] for name in ("exposure", "click", "add_to_cart", "purchase")},
        sessions_total=sessions,
        anonymous_sessions=anonymous_sessions,
        active_users=len(users),
        distinct_items=len(items),
        malformed_lines=spec.malformed_lines,
        malformed_per_day=bad_per_day,
        malformed_kinds=dict(sorted(kinds.items())),
    )


def write_catalog(spec: SyntheticSpec, path: Path) -> int:
    """Write the catalog CSV (item_id,namespace,tags,title) of every item of `spec`; return the number of rows."""
    world = build_world(spec)
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


def _parser() -> argparse.ArgumentParser:
    defaults = SyntheticSpec()
    parser = argparse.ArgumentParser(prog="python -m recsys.synthetic", description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, required=True, help="output directory (gets dt=YYYY-MM-DD/ folders)")
    parser.add_argument("--catalog", type=Path, help="also write the catalog CSV to this path")
    parser.add_argument("--seed", type=int, default=defaults.seed)
    parser.add_argument("--tenant", default=defaults.tenant)
    parser.add_argument("--surface", default=defaults.surface)
    parser.add_argument("--start", type=parse_day, default=defaults.start, help="first UTC day, YYYY-MM-DD")
    parser.add_argument("--days", type=int, default=defaults.days)
    parser.add_argument("--users", type=int, default=defaults.users)
    parser.add_argument("--items", type=int, default=defaults.items)
    parser.add_argument("--groups", type=int, default=defaults.taste_groups, help="taste groups")
    parser.add_argument(
        "--sessions-per-day",
        type=float,
        default=defaults.sessions_per_user_per_day,
        help="mean sessions per user per day",
    )
    parser.add_argument(
        "--session-length", type=float, default=defaults.mean_session_length, help="mean viewed items per session"
    )
    parser.add_argument("--zipf", type=float, default=defaults.zipf_exponent, help="popularity Zipf exponent")
    parser.add_argument("--noise", type=float, default=defaults.noise)
    parser.add_argument(
        "--anonymous", type=float, default=defaults.anonymous_fraction, help="fraction of users without user_id"
    )
    parser.add_argument("--malformed", type=int, default=defaults.malformed_lines, help="bad lines to inject")
    parser.add_argument("--gzip", action="store_true", help="write events.jsonl.gz")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = _parser()
    args = parser.parse_args(argv)
    try:
        spec = SyntheticSpec(
            seed=args.seed,
            tenant=args.tenant,
            surface=args.surface,
            start=args.start,
            days=args.days,
            users=args.users,
            items=args.items,
            taste_groups=args.groups,
            sessions_per_user_per_day=args.sessions_per_day,
            mean_session_length=args.session_length,
            zipf_exponent=args.zipf,
            noise=args.noise,
            anonymous_fraction=args.anonymous,
            malformed_lines=args.malformed,
            gzip=args.gzip,
        )
    except ValidationError as error:
        parser.error(str(error))
    summary = generate(spec, args.out)
    if args.catalog is not None:
        rows = write_catalog(spec, args.catalog)
        summary = summary.model_copy(update={"catalog": str(args.catalog), "catalog_items": rows})
    sys.stdout.write(summary.model_dump_json(indent=2) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
