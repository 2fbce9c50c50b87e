"""The exact sampler: per user and day, Poisson(sessions_per_user_per_day) sessions, in pure Python.

Every draw is `random.Random.random()` seeded with a string, so files are byte-identical on every machine and Python
version (the bundled sample is reproduced by it); meant for small data (about 50k events a second).
"""

from __future__ import annotations

import datetime as dt
import json
import math
from collections import Counter
from dataclasses import dataclass

import numpy as np
import pyarrow as pa

from recsys_tools.synthetic.day import EVENT_TYPES, SampledDay
from recsys_tools.synthetic.world import DAY_MS, MAX_RANK, SyntheticSpec, World, below, rng_for, weighted


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
        self.rng = rng_for(spec, f"day:{day.isoformat()}")
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
        return weighted(self.rng, self.world.group_items[group], self.world.group_cumweights[group])

    def _next_view(self, groups: tuple[int, ...], previous: int | None) -> int:
        rng, spec = self.rng, self.spec
        if previous is not None:
            if rng.random() < spec.noise:
                return below(rng, spec.items)
            if rng.random() < spec.next_item_prob:
                return self.world.next_item[previous]
        elif rng.random() < spec.noise:
            return below(rng, spec.items)
        item = self._preferred_pick(groups)
        for _ in range(3):
            if item != previous:
                break
            item = self._preferred_pick(groups)
        return item

    def _gap_ms(self, low_s: int, high_s: int) -> int:
        return low_s * 1000 + below(self.rng, (high_s - low_s) * 1000)

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

        start = below(rng, DAY_MS - offset)  # offset < 200 * 350 s, so the session ends inside the day
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


def format_ts(day: dt.date, ts_ms: int, zone: str = "Z") -> str:
    seconds, millis = divmod(ts_ms, 1000)
    minutes, second = divmod(seconds, 60)
    hour, minute = divmod(minutes, 60)
    return f"{day.isoformat()}T{hour:02d}:{minute:02d}:{second:02d}.{millis:03d}{zone}"


def _record(spec: SyntheticSpec, world: World, day: dt.date, event: _Event, event_id: str) -> dict[str, object]:
    record: dict[str, object] = {
        "v": 1,
        "ts": format_ts(day, event.ts_ms),
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


def dumps(record: dict[str, object]) -> str:
    return json.dumps(record, separators=(",", ":"), ensure_ascii=False)


def sample_day(spec: SyntheticSpec, world: World, day: dt.date) -> SampledDay:
    generator = _DayGenerator(spec, world, day)
    events = generator.generate()
    compact = day.strftime("%Y%m%d")
    records = [_record(spec, world, day, event, f"e-{compact}-{number:06d}") for number, event in enumerate(events, 1)]
    lines = pa.array([dumps(record) + "\n" for record in records], pa.string())
    types = Counter(event.event_type for event in events)
    return SampledDay(
        events=len(events),
        chunks=lambda: iter([lines]),
        record=records.__getitem__,
        event_types={name: types[name] for name in EVENT_TYPES},
        sessions=generator.sessions,
        anonymous_sessions=generator.anonymous_sessions,
        users=np.array(sorted(generator.active_users), np.int64),
        items=np.unique(np.array([event.item for event in events], np.int64)),
    )
