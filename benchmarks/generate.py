"""Deterministic, vectorized (numpy + pyarrow) raw events for the benchmarks: 100k to 10M events per day in seconds.

The same planted shape as recsys_tools.synthetic (which is pure Python and meant for small data), scaled up:

* Items: `items` ids i00000.., each in one of `groups` taste groups (a seeded shuffle), Zipf popularity
  1 / rank ** zipf over a seeded ranking, a planted successor (a random cycle through each group's items), and
  catalog tags `category:<group>|brand:b<n>|style:s<n>` (3 brands and 2 styles per group).
* Users: `users` ids u000000.., one preferred taste group (a second one with probability 0.5, chosen 30% of the
  time); 15% of users are anonymous (their events carry no user_id).
* Sessions: a uniformly random user each; the number of viewed items is geometric with mean `session_length`
  (capped at 50). The first view is a popularity pick in a preferred group; each next one is a uniformly random
  item with probability 0.1, else the planted successor of the previous item with probability 0.6, else another
  popularity pick in a preferred group.
* Funnel: each view is an `exposure` (own request_id, rank 0-9 skewed to the top), followed by a `click` with
  probability 0.12, an `add_to_cart` (0.04 of exposures) and a `purchase` (0.015 of exposures).
* Time: events of a session are seconds to minutes apart inside the UTC day; the file is sorted by ts and
  event_ids are numbered in file order.

Exactly `events` lines are written per day (the last session is cut). Every random draw comes from numpy's PCG64
seeded with (seed, purpose), so the same parameters give byte-identical files on every machine.

Generated data is cached under `.out/bench-data/<key>/` where the key hashes every parameter (and the generator's
version): a rerun finds `raw/dt=YYYY-MM-DD/events.jsonl` and `catalog.csv` there and skips the work.

Usage: .venv/bin/python benchmarks/generate.py --events 1000000 --days 1 --start 2026-01-01 [--out DIR]
"""

from __future__ import annotations

import argparse
import datetime as dt
import hashlib
import json
import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

GENERATOR_VERSION = 1
ROOT = Path(__file__).resolve().parents[1]
CACHE = ROOT / ".out" / "bench-data"
DAY_MS = 86_400_000
MAX_SESSION_LENGTH = 50
MAX_RANK = 10
CLICK, CART, PURCHASE = 0.12, 0.04, 0.015
NOISE, NEXT_ITEM = 0.1, 0.6
SECOND_GROUP, PRIMARY_WEIGHT, ANONYMOUS = 0.5, 0.7, 0.15
EVENT_TYPES = ("exposure", "click", "add_to_cart", "purchase")
CATEGORIES = ("shoes", "outdoor", "kitchen", "books", "toys", "beauty", "electronics", "garden", "sports", "music")
CHUNK = 1_000_000  # lines formatted per pyarrow pass (keeps string offsets in int32 and memory flat)


@dataclass(frozen=True)
class DataSpec:
    events: int = 1_000_000  # lines per day
    days: int = 1
    start: str = "2026-01-01"
    items: int = 50_000
    users: int = 100_000
    groups: int = 50
    session_length: float = 6.0
    zipf: float = 1.1
    seed: int = 7
    tenant: str = "bench"
    surface: str = "home"

    @property
    def day_list(self) -> list[dt.date]:
        first = dt.date.fromisoformat(self.start)
        return [first + dt.timedelta(days=n) for n in range(self.days)]

    def key(self) -> str:
        text = json.dumps({"v": GENERATOR_VERSION, **asdict(self)}, sort_keys=True)
        label = f"{self.events // 1000}k-x{self.days}-{self.start}"
        return f"{label}-{hashlib.sha256(text.encode()).hexdigest()[:10]}"


def _rng(spec: DataSpec, *purpose: int) -> np.random.Generator:
    return np.random.default_rng([spec.seed, *purpose])


@dataclass(frozen=True)
class World:
    item_group: np.ndarray
    popularity: np.ndarray
    next_item: np.ndarray
    brand: np.ndarray
    style: np.ndarray
    group_order: np.ndarray  # items sorted by group
    group_start: np.ndarray  # offsets into group_order per group (len groups + 1)
    group_cum: np.ndarray  # cumulative popularity along group_order
    user_primary: np.ndarray
    user_secondary: np.ndarray  # -1: one group only
    user_anonymous: np.ndarray


def build_world(spec: DataSpec) -> World:
    rng = _rng(spec, 1)
    n, g = spec.items, spec.groups
    item_group = (rng.permutation(n) % g).astype(np.int32)
    popularity = np.empty(n)
    popularity[rng.permutation(n)] = 1.0 / np.arange(1, n + 1) ** spec.zipf
    group_order = np.lexsort((np.arange(n), item_group))
    group_start = np.searchsorted(item_group[group_order], np.arange(g + 1))
    group_cum = np.cumsum(popularity[group_order])
    # Planted successor: one random cycle through each group's items.
    cycle = np.lexsort((rng.random(n), item_group))
    cycle_group = item_group[cycle]
    nxt = np.roll(cycle, -1)
    last = np.append(cycle_group[1:] != cycle_group[:-1], True)
    first_of_group = cycle[np.searchsorted(cycle_group, cycle_group)]
    nxt[last] = first_of_group[last]
    next_item = np.empty(n, np.int64)
    next_item[cycle] = nxt
    brand = item_group * 3 + rng.integers(0, 3, n)
    style = item_group * 2 + rng.integers(0, 2, n)
    primary = rng.integers(0, g, spec.users)
    secondary = (primary + 1 + rng.integers(0, max(g - 1, 1), spec.users)) % g
    secondary = np.where(rng.random(spec.users) < SECOND_GROUP, secondary, -1)
    anonymous = rng.random(spec.users) < ANONYMOUS
    return World(
        item_group,
        popularity,
        next_item,
        brand,
        style,
        group_order,
        group_start,
        group_cum,
        primary,
        secondary,
        anonymous,
    )


def _popularity_pick(world: World, groups: np.ndarray, u: np.ndarray) -> np.ndarray:
    """A popularity-weighted item of each group in `groups`, from uniforms `u`."""
    lo_index = world.group_start[groups]
    hi_index = world.group_start[groups + 1]
    lo = np.where(lo_index > 0, world.group_cum[np.maximum(lo_index - 1, 0)], 0.0)
    hi = world.group_cum[hi_index - 1]
    position = np.searchsorted(world.group_cum, lo + u * (hi - lo), side="right")
    position = np.clip(position, lo_index, hi_index - 1)
    return world.group_order[position]


def day_columns(spec: DataSpec, world: World, day: dt.date) -> dict[str, np.ndarray]:
    """The day's events as arrays, in file order (sorted by ts): exactly spec.events rows."""
    rng = _rng(spec, 2, day.toordinal())
    per_exposure = 1 + CLICK + CART + PURCHASE
    sessions = int(spec.events / (spec.session_length * per_exposure) * 1.15) + 64
    lengths = np.minimum(rng.geometric(1.0 / spec.session_length, sessions), MAX_SESSION_LENGTH)
    user = rng.integers(0, spec.users, sessions)
    n_views = int(lengths.sum())
    session_of = np.repeat(np.arange(sessions), lengths)
    starts = np.cumsum(lengths) - lengths
    position = np.arange(n_views) - np.repeat(starts, lengths)

    # The preferred group of every view.
    view_user = user[session_of]
    secondary = world.user_secondary[view_user]
    use_second = (secondary >= 0) & (rng.random(n_views) >= PRIMARY_WEIGHT)
    group = np.where(use_second, secondary, world.user_primary[view_user])

    u_noise, u_next, u_pick = rng.random(n_views), rng.random(n_views), rng.random(n_views)
    uniform_item = rng.integers(0, spec.items, n_views)
    picked = _popularity_pick(world, group, u_pick)
    items = np.where(u_noise < NOISE, uniform_item, picked)
    # Successors depend on the previous view: one vectorized step per position in the session.
    by_position = np.argsort(position, kind="stable")
    bounds = np.searchsorted(position[by_position], np.arange(int(lengths.max()) + 1))
    for p in range(1, int(lengths.max())):
        at = by_position[bounds[p] : bounds[p + 1]]
        follow = (u_noise[at] >= NOISE) & (u_next[at] < NEXT_ITEM)
        items[at[follow]] = world.next_item[items[at[follow] - 1]]
    rank = (rng.random(n_views) ** 2 * MAX_RANK).astype(np.int64)

    click = rng.random(n_views) < CLICK
    cart = click & (rng.random(n_views) < CART / CLICK)
    purchase = cart & (rng.random(n_views) < PURCHASE / CART)
    per_view = 1 + click.astype(np.int64) + cart + purchase
    n_events = int(per_view.sum())
    view_of = np.repeat(np.arange(n_views), per_view)
    view_first = np.cumsum(per_view) - per_view
    step = np.arange(n_events) - np.repeat(view_first, per_view)  # 0 exposure, 1 click, 2 cart, 3 purchase

    # Offsets inside the session: exposure gaps 4-150 s (not before the first view), funnel gaps by step.
    low = np.array([4_000, 1_000, 5_000, 10_000])
    high = np.array([150_000, 20_000, 60_000, 120_000])
    gap = low[step] + (rng.random(n_events) * (high - low)[step]).astype(np.int64)
    first_event = (step == 0) & (position[view_of] == 0)
    gap[first_event] = 0
    event_session = session_of[view_of]
    total = np.cumsum(gap)
    session_first_event = np.searchsorted(event_session, np.arange(sessions))
    offset = total - total[session_first_event[event_session]]
    duration = np.zeros(sessions, np.int64)
    np.maximum.at(duration, event_session, offset)
    session_start = (rng.random(sessions) * (DAY_MS - duration)).astype(np.int64)
    ts = session_start[event_session] + offset

    keep = slice(0, spec.events)  # cut at exactly spec.events lines (in session order)
    if n_events < spec.events:
        raise RuntimeError(f"generated {n_events} events for {spec.events}: raise the session estimate")
    ts, view_of, step = ts[keep], view_of[keep], step[keep]
    order = np.argsort(ts, kind="stable")
    view = view_of[order]
    session = session_of[view]
    uid = user[session]
    return {
        "ts": ts[order],
        "user": np.where(world.user_anonymous[uid], -1, uid),
        "session": session,
        "request": view,
        "item": items[view],
        "rank": rank[view],
        "event_type": step[order],
    }


def _padded(numbers: np.ndarray, prefix: str, width: int) -> pa.Array:
    text = pc.utf8_lpad(pc.cast(pa.array(numbers), pa.string()), width=width, padding="0")
    return pc.binary_join_element_wise(pa.scalar(prefix), text, "")


def format_lines(spec: DataSpec, day: dt.date, columns: dict[str, np.ndarray], first_row: int) -> pa.Array:
    """JSONL lines (each ending in a newline) of one chunk, built column-wise by pyarrow."""
    compact = day.strftime("%Y%m%d")
    midnight = int(dt.datetime(day.year, day.month, day.day, tzinfo=dt.UTC).timestamp() * 1000)
    ts = pc.strftime(pa.array(midnight + columns["ts"], pa.timestamp("ms", tz="UTC")), "%Y-%m-%dT%H:%M:%S")
    users = columns["user"]
    user_text = _padded(np.maximum(users, 0), '"user_id":"u', 6)
    user_field = pc.if_else(
        pa.array(users < 0), pa.scalar(""), pc.binary_join_element_wise(user_text, pa.scalar('",'), "")
    )
    types = pc.take(pa.array(EVENT_TYPES), pa.array(columns["event_type"]))
    rows = len(users)
    parts = [
        pa.scalar('{"v":1,"ts":"'),
        ts,
        pa.scalar(f'Z","tenant":"{spec.tenant}","surface":"{spec.surface}",'),
        user_field,
        _padded(columns["session"], f'"session_id":"s-{compact}-', 7),
        _padded(columns["request"], f'","request_id":"r-{compact}-', 8),
        _padded(columns["item"], '","item_id":"i', 5),
        pa.scalar('","rank":'),
        pc.cast(pa.array(columns["rank"]), pa.string()),
        pa.scalar(',"event_type":"'),
        types,
        _padded(np.arange(first_row + 1, first_row + rows + 1), f'","event_id":"e-{compact}-', 8),
        pa.scalar('"}\n'),
    ]
    return pc.binary_join_element_wise(*parts, "")


def write_day(spec: DataSpec, world: World, day: dt.date, path: Path) -> dict[str, int]:
    columns = day_columns(spec, world, day)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    size = 0
    with tmp.open("wb") as out:
        for first in range(0, spec.events, CHUNK):
            chunk = {name: values[first : first + CHUNK] for name, values in columns.items()}
            lines = format_lines(spec, day, chunk, first)
            offsets = lines.buffers()[1]
            end = int(np.frombuffer(offsets, np.int32)[lines.offset + len(lines)])
            start = int(np.frombuffer(offsets, np.int32)[lines.offset])
            data = lines.buffers()[2][start:end]
            out.write(data)
            size += end - start
    tmp.rename(path)
    types = np.bincount(columns["event_type"], minlength=4)
    return {
        "bytes": size,
        "events": spec.events,
        **{name: int(types[n]) for n, name in enumerate(EVENT_TYPES)},
        "sessions": int(np.unique(columns["session"]).size),
        "users": int(np.unique(columns["user"][columns["user"] >= 0]).size),
        "items": int(np.unique(columns["item"]).size),
    }


def write_catalog(spec: DataSpec, world: World, path: Path) -> int:
    n = spec.items
    ids = _padded(np.arange(n), "i", 5)
    names = [CATEGORIES[g] if g < len(CATEGORIES) else f"cat{g}" for g in range(spec.groups)]
    category = pc.take(pa.array(names), pa.array(world.item_group))
    tags = pc.binary_join_element_wise(
        pa.scalar("category:"),
        category,
        pa.scalar("|brand:b"),
        pc.cast(pa.array(world.brand), pa.string()),
        pa.scalar("|style:s"),
        pc.cast(pa.array(world.style), pa.string()),
        "",
    )
    lines = pc.binary_join_element_wise(ids, pa.scalar(f",{spec.surface},"), tags, pa.scalar(",Item "), ids, "")
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("item_id,namespace,tags,title\n" + "\n".join(lines.to_pylist()) + "\n")
    return n


@dataclass(frozen=True)
class Dataset:
    spec: DataSpec
    root: Path

    @property
    def raw(self) -> Path:
        return self.root / "raw"

    @property
    def catalog(self) -> Path:
        return self.root / "catalog.csv"

    def day_file(self, day: dt.date) -> Path:
        return self.raw / f"dt={day.isoformat()}" / "events.jsonl"

    @property
    def summary(self) -> dict:
        return json.loads((self.root / "summary.json").read_text())


def ensure(spec: DataSpec, cache: Path = CACHE, log=None) -> Dataset:
    """The data set of `spec`, generated into the cache unless it is there already."""
    root = cache / spec.key()
    dataset = Dataset(spec, root)
    if (root / "summary.json").is_file():
        return dataset
    started = time.perf_counter()
    world = build_world(spec)
    per_day = {}
    for day in spec.day_list:
        per_day[day.isoformat()] = write_day(spec, world, day, dataset.day_file(day))
    write_catalog(spec, world, dataset.catalog)
    summary = {
        "spec": asdict(spec),
        "generator_version": GENERATOR_VERSION,
        "seconds": round(time.perf_counter() - started, 2),
        "days": per_day,
        "bytes": sum(d["bytes"] for d in per_day.values()),
    }
    (root / "summary.json").write_text(json.dumps(summary, indent=2))
    if log:
        log(
            f"generated {spec.days} x {spec.events:,} events ({summary['bytes'] / 1e6:.0f} MB) in "
            f"{summary['seconds']:.1f}s -> {root}"
        )
    return dataset


def main(argv: list[str] | None = None) -> int:
    defaults = DataSpec()
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=defaults.events, help="lines per day")
    parser.add_argument("--days", type=int, default=defaults.days)
    parser.add_argument("--start", default=defaults.start)
    parser.add_argument("--items", type=int, default=defaults.items)
    parser.add_argument("--users", type=int, default=defaults.users)
    parser.add_argument("--groups", type=int, default=defaults.groups)
    parser.add_argument("--seed", type=int, default=defaults.seed)
    parser.add_argument("--out", type=Path, default=CACHE, help="cache directory (a folder per parameter set)")
    args = parser.parse_args(argv)
    spec = DataSpec(
        events=args.events,
        days=args.days,
        start=args.start,
        items=args.items,
        users=args.users,
        groups=args.groups,
        seed=args.seed,
    )
    dataset = ensure(spec, args.out, log=lambda line: print(line, file=sys.stderr))
    print(json.dumps({"root": str(dataset.root), **dataset.summary}, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
