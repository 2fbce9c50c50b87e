"""The vectorized sampler: exactly `events_per_day` lines a day, 100k to 10M events in seconds (numpy + pyarrow).

Each session belongs to a uniformly random user (the per-user sampler's Poisson rate, pooled); a session's views,
funnel and timing follow the same rules as in `sessions`, drawn as arrays: a successor step needs the previous view,
so views are filled one session position at a time. Two simplifications against the exact sampler: a popularity
pick may repeat the previous item, and session ids are numbered per day (`s-YYYYMMDD-n`, anonymous or not).
Draws come from numpy's PCG64 seeded with (seed, purpose, day), so files are byte-identical on every machine.
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from recsys_tools.synthetic.day import EVENT_TYPES, SampledDay
from recsys_tools.synthetic.world import DAY_MS, MAX_RANK, SyntheticSpec, World, id_width

CHUNK = 1_000_000  # lines formatted per pyarrow pass (keeps string offsets in int32 and memory flat)


@dataclass(frozen=True)
class WorldArrays:
    """The world as arrays, items grouped for vectorized popularity picks."""

    item_group: np.ndarray
    next_item: np.ndarray
    group_order: np.ndarray  # items sorted by group
    group_start: np.ndarray  # offsets into group_order per group (len groups + 1)
    group_cum: np.ndarray  # cumulative popularity along group_order
    user_primary: np.ndarray
    user_secondary: np.ndarray  # -1: one group only
    user_anonymous: np.ndarray

    @classmethod
    def of(cls, world: World) -> WorldArrays:
        item_group = np.asarray(world.item_group, np.int64)
        group_order = np.lexsort((np.arange(item_group.size), item_group))
        groups = int(item_group.max()) + 1
        return cls(
            item_group=item_group,
            next_item=np.asarray(world.next_item, np.int64),
            group_order=group_order,
            group_start=np.searchsorted(item_group[group_order], np.arange(groups + 1)),
            group_cum=np.cumsum(np.asarray(world.popularity)[group_order]),
            user_primary=np.array([groups_[0] for groups_ in world.user_groups], np.int64),
            user_secondary=np.array([groups_[1] if len(groups_) > 1 else -1 for groups_ in world.user_groups]),
            user_anonymous=np.asarray(world.anonymous, bool),
        )

    def popularity_pick(self, groups: np.ndarray, u: np.ndarray) -> np.ndarray:
        """A popularity-weighted item of each group in `groups`, from uniforms `u`."""
        lo_index = self.group_start[groups]
        hi_index = self.group_start[groups + 1]
        lo = np.where(lo_index > 0, self.group_cum[np.maximum(lo_index - 1, 0)], 0.0)
        hi = self.group_cum[hi_index - 1]
        position = np.searchsorted(self.group_cum, lo + u * (hi - lo), side="right")
        return self.group_order[np.clip(position, lo_index, hi_index - 1)]


def day_columns(spec: SyntheticSpec, world: WorldArrays, day: dt.date) -> dict[str, np.ndarray]:
    """The day's events as arrays, in file order (sorted by ts): exactly spec.events_per_day rows."""
    assert spec.events_per_day is not None
    wanted = spec.events_per_day
    rng = np.random.default_rng([spec.seed, 2, day.toordinal()])
    per_exposure = 1 + spec.click_rate + spec.add_to_cart_rate + spec.purchase_rate
    sessions = int(wanted / (spec.mean_session_length * per_exposure) * 1.15) + 64
    lengths = np.minimum(rng.geometric(1.0 / spec.mean_session_length, sessions), spec.max_session_length)
    user = rng.integers(0, spec.users, sessions)
    n_views = int(lengths.sum())
    session_of = np.repeat(np.arange(sessions), lengths)
    starts = np.cumsum(lengths) - lengths
    position = np.arange(n_views) - np.repeat(starts, lengths)

    # The preferred group of every view.
    view_user = user[session_of]
    secondary = world.user_secondary[view_user]
    use_second = (secondary >= 0) & (rng.random(n_views) >= spec.primary_group_weight)
    group = np.where(use_second, secondary, world.user_primary[view_user])

    u_noise, u_next, u_pick = rng.random(n_views), rng.random(n_views), rng.random(n_views)
    uniform_item = rng.integers(0, spec.items, n_views)
    items = np.where(u_noise < spec.noise, uniform_item, world.popularity_pick(group, u_pick))
    # Successors depend on the previous view: one vectorized step per position in the session.
    by_position = np.argsort(position, kind="stable")
    bounds = np.searchsorted(position[by_position], np.arange(int(lengths.max()) + 1))
    for p in range(1, int(lengths.max())):
        at = by_position[bounds[p] : bounds[p + 1]]
        follow = (u_noise[at] >= spec.noise) & (u_next[at] < spec.next_item_prob)
        items[at[follow]] = world.next_item[items[at[follow] - 1]]
    rank = (rng.random(n_views) ** 2 * MAX_RANK).astype(np.int64)

    click = rng.random(n_views) < spec.click_rate
    cart = click & (rng.random(n_views) * spec.click_rate < spec.add_to_cart_rate)
    purchase = cart & (rng.random(n_views) * spec.add_to_cart_rate < spec.purchase_rate)
    per_view = 1 + click.astype(np.int64) + cart + purchase
    n_events = int(per_view.sum())
    view_of = np.repeat(np.arange(n_views), per_view)
    view_first = np.cumsum(per_view) - per_view
    step = np.arange(n_events) - np.repeat(view_first, per_view)  # 0 exposure, 1 click, 2 cart, 3 purchase

    # Offsets inside the session: exposure gaps 4-150 s (not before the first view), funnel gaps by step.
    low = np.array([4_000, 1_000, 5_000, 10_000])
    high = np.array([150_000, 20_000, 60_000, 120_000])
    gap = low[step] + (rng.random(n_events) * (high - low)[step]).astype(np.int64)
    gap[(step == 0) & (position[view_of] == 0)] = 0
    event_session = session_of[view_of]
    total = np.cumsum(gap)
    session_first_event = np.searchsorted(event_session, np.arange(sessions))
    offset = total - total[session_first_event[event_session]]
    duration = np.zeros(sessions, np.int64)
    np.maximum.at(duration, event_session, offset)
    session_start = (rng.random(sessions) * (DAY_MS - duration)).astype(np.int64)
    ts = session_start[event_session] + offset

    if n_events < wanted:
        raise RuntimeError(f"generated {n_events} events for {wanted}: raise the session estimate")
    keep = slice(0, wanted)  # cut at exactly `wanted` lines (in session order)
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


def _json(text: str) -> str:
    return json.dumps(text, ensure_ascii=False)


def padded(numbers: np.ndarray, prefix: str, width: int) -> pa.Array:
    text = pc.utf8_lpad(pc.cast(pa.array(numbers), pa.string()), width=width, padding="0")
    return pc.binary_join_element_wise(pa.scalar(prefix), text, "")


def format_lines(
    spec: SyntheticSpec, day: dt.date, columns: dict[str, np.ndarray], first_row: int, *, widths: dict[str, int]
) -> pa.Array:
    """JSONL lines (each ending in a newline) of one chunk, built column-wise by pyarrow."""
    compact = day.strftime("%Y%m%d")
    midnight = int(dt.datetime(day.year, day.month, day.day, tzinfo=dt.UTC).timestamp() * 1000)
    ts = pc.strftime(pa.array(midnight + columns["ts"], pa.timestamp("ms", tz="UTC")), "%Y-%m-%dT%H:%M:%S")
    users = columns["user"]
    user_text = padded(np.maximum(users, 0), '"user_id":"u', widths["user"])
    user_field = pc.if_else(
        pa.array(users < 0), pa.scalar(""), pc.binary_join_element_wise(user_text, pa.scalar('",'), "")
    )
    rows = len(users)
    parts = [
        pa.scalar('{"v":1,"ts":"'),
        ts,
        pa.scalar(f'Z","tenant":{_json(spec.tenant)},"surface":{_json(spec.surface)},'),
        user_field,
        padded(columns["session"], f'"session_id":"s-{compact}-', widths["session"]),
        padded(columns["request"], f'","request_id":"r-{compact}-', widths["request"]),
        padded(columns["item"], '","item_id":"i', widths["item"]),
        pa.scalar('","rank":'),
        pc.cast(pa.array(columns["rank"]), pa.string()),
        pa.scalar(',"event_type":"'),
        pc.take(pa.array(EVENT_TYPES), pa.array(columns["event_type"])),
        padded(np.arange(first_row + 1, first_row + rows + 1), f'","event_id":"e-{compact}-', widths["event"]),
        pa.scalar('"}\n'),
    ]
    return pc.binary_join_element_wise(*parts, "")


def sample_day(spec: SyntheticSpec, world: WorldArrays, day: dt.date) -> SampledDay:
    columns = day_columns(spec, world, day)
    events = len(columns["ts"])
    widths = {
        "user": id_width(spec.users),
        "item": id_width(spec.items),
        "session": max(7, len(str(int(columns["session"].max(initial=0))))),
        "request": max(8, len(str(int(columns["request"].max(initial=0))))),
        "event": max(8, len(str(events))),
    }

    def chunk(first: int, last: int) -> pa.Array:
        part = {name: values[first:last] for name, values in columns.items()}
        return format_lines(spec, day, part, first, widths=widths)

    def chunks() -> Iterator[pa.Array]:
        for first in range(0, events, CHUNK):
            yield chunk(first, min(first + CHUNK, events))

    users = columns["user"]
    sessions = columns["session"]
    return SampledDay(
        events=events,
        chunks=chunks,
        record=lambda index: json.loads(chunk(index, index + 1)[0].as_py()),
        event_types=dict(zip(EVENT_TYPES, np.bincount(columns["event_type"], minlength=4).tolist(), strict=True)),
        sessions=int(np.unique(sessions).size),
        anonymous_sessions=int(np.unique(sessions[users < 0]).size),
        users=np.unique(users[users >= 0]),
        items=np.unique(columns["item"]),
    )
