"""Writing a data set: one file per UTC day (plain or gzip), deliberately bad lines, the summary."""

from __future__ import annotations

import datetime as dt
import gzip
import random
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from enum import StrEnum
from pathlib import Path
from typing import BinaryIO

import numpy as np
from pydantic import BaseModel

from recsys_tools.synthetic import bulk, sessions
from recsys_tools.synthetic.day import EVENT_TYPES, SampledDay, array_bytes
from recsys_tools.synthetic.world import DAY_MS, SyntheticSpec, World, below, build_world, rng_for


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


def day_file(out_dir: Path, day: dt.date, compress: bool = False) -> Path:
    return out_dir / f"dt={day.isoformat()}" / ("events.jsonl.gz" if compress else "events.jsonl")


def _malformed_line(kind: MalformedKind, template: dict[str, object]) -> str:
    bad = dict(template)
    bad["event_id"] = f"{template['event_id']}-bad"
    if kind is MalformedKind.BROKEN_JSON:
        text = sessions.dumps(bad)
        return text[: len(text) // 2]
    if kind is MalformedKind.MISSING_ITEM_ID:
        del bad["item_id"]
    elif kind is MalformedKind.TS_WITHOUT_ZONE:
        bad["ts"] = str(bad["ts"]).removesuffix("Z")
    else:
        bad["v"] = 2
    return sessions.dumps(bad)


def _malformed_plan(spec: SyntheticSpec) -> dict[int, list[MalformedKind]]:
    """Which day (index) receives which bad lines: spread evenly over the days, kinds cycling."""
    plan: dict[int, list[MalformedKind]] = {}
    for number in range(spec.malformed_lines):
        plan.setdefault(number * spec.days // spec.malformed_lines, []).append(
            MALFORMED_CYCLE[number % len(MALFORMED_CYCLE)]
        )
    return plan


def _fallback_template(spec: SyntheticSpec, world: World, day: dt.date) -> dict[str, object]:
    """A bad line's template on a day without events."""
    compact = day.strftime("%Y%m%d")
    uid = world.user_ids[0]
    return {
        "v": 1,
        "ts": sessions.format_ts(day, DAY_MS // 2),
        "tenant": spec.tenant,
        "surface": spec.surface,
        "user_id": uid,
        "session_id": f"s-{uid}-{compact}-x",
        "request_id": f"r-{compact}-x",
        "item_id": world.item_ids[0],
        "rank": 0,
        "event_type": "exposure",
        "event_id": f"e-{compact}-x",
    }


def _place_malformed(
    kinds: list[MalformedKind], events: int, template: Callable[[int], dict[str, object]], placement: random.Random
) -> list[tuple[int, str]]:
    """(number of good lines before it, text) of each bad line, in file order.

    Each bad line goes to a uniformly random position of the lines so far (good and bad) and copies the event at that
    index, so that it looks like its neighbours.
    """
    placed: list[tuple[int, str]] = []  # (final position among all lines, text)
    for kind in kinds:
        position = below(placement, events + len(placed) + 1)
        text = _malformed_line(kind, template(min(position, events - 1)))
        placed = [(at + 1 if at >= position else at, line) for at, line in placed]
        placed.append((position, text))
    placed.sort()
    return [(at - number, text) for number, (at, text) in enumerate(placed)]


@contextmanager
def _day_writer(path: Path, compress: bool) -> Iterator[BinaryIO]:
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("wb") as handle:
        if compress:  # no name and mtime 0 in the header: the same bytes on every run
            with gzip.GzipFile(filename="", mode="wb", fileobj=handle, compresslevel=6, mtime=0) as zipped:
                yield zipped
        else:
            yield handle


def _write_day(path: Path, day: SampledDay, bad: list[tuple[int, str]], compress: bool) -> None:
    pending = iter(bad)
    next_bad = next(pending, None)
    with _day_writer(path, compress) as out:
        first = 0
        for lines in day.chunks():
            last = first + len(lines)
            start = first
            while next_bad is not None and next_bad[0] < last:
                out.write(array_bytes(lines.slice(start - first, next_bad[0] - start)))
                out.write(f"{next_bad[1]}\n".encode())
                start = next_bad[0]
                next_bad = next(pending, None)
            out.write(array_bytes(lines.slice(start - first, last - start)))
            first = last
        while next_bad is not None:  # after the last good line
            out.write(f"{next_bad[1]}\n".encode())
            next_bad = next(pending, None)


def generate(spec: SyntheticSpec, out_dir: Path, world: World | None = None) -> GenerationSummary:
    """Write one raw JSONL file per UTC day under `out_dir` (dt=YYYY-MM-DD/events.jsonl[.gz]); return a summary."""
    world = world or build_world(spec)
    arrays = bulk.WorldArrays.of(world) if spec.events_per_day is not None else None
    plan = _malformed_plan(spec)
    placement = rng_for(spec, "malformed")
    files: list[str] = []
    per_day: dict[str, int] = {}
    bad_per_day: dict[str, int] = {}
    kinds: Counter[str] = Counter()
    types: Counter[str] = Counter()
    items = users = np.empty(0, np.int64)
    session_count = anonymous_sessions = 0

    for index, day in enumerate(spec.day_list):
        sampled = sessions.sample_day(spec, world, day) if arrays is None else bulk.sample_day(spec, arrays, day)
        fallback = _fallback_template(spec, world, day)
        template = sampled.record if sampled.events else lambda _, fallback=fallback: fallback
        bad = _place_malformed(plan.get(index, []), sampled.events, template, placement)
        kinds.update(kind.value for kind in plan.get(index, []))

        path = day_file(out_dir, day, spec.gzip)
        day_file(out_dir, day, not spec.gzip).unlink(missing_ok=True)
        _write_day(path, sampled, bad, spec.gzip)

        files.append(path.relative_to(out_dir).as_posix())
        per_day[day.isoformat()] = sampled.events
        bad_per_day[day.isoformat()] = len(bad)
        types.update(sampled.event_types)
        items = np.union1d(items, sampled.items)
        users = np.union1d(users, sampled.users)
        session_count += sampled.sessions
        anonymous_sessions += sampled.anonymous_sessions

    return GenerationSummary(
        tenant=spec.tenant,
        surface=spec.surface,
        seed=spec.seed,
        start=spec.start,
        end=spec.day_list[-1],
        files=files,
        events_total=sum(per_day.values()),
        events_per_day=per_day,
        event_types={name: types[name] for name in EVENT_TYPES},
        sessions_total=session_count,
        anonymous_sessions=anonymous_sessions,
        active_users=int(users.size),
        distinct_items=int(items.size),
        malformed_lines=spec.malformed_lines,
        malformed_per_day=bad_per_day,
        malformed_kinds=dict(sorted(kinds.items())),
    )
