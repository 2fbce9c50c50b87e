"""The synthetic generator: determinism, layout, malformed lines, the planted structure, the catalog, the sample."""

from __future__ import annotations

import contextlib
import csv
import datetime as dt
import gzip
import json
import re
import shlex
from collections import Counter, defaultdict
from pathlib import Path

import pytest
from pydantic import ValidationError

from recsys.events.contract import RawEvent, parse_timestamp
from recsys_tools.synthetic import (
    GenerationSummary,
    MalformedKind,
    SyntheticSpec,
    build_world,
    generate,
    main,
    write_catalog,
)

REPO = Path(__file__).resolve().parents[1]
SAMPLE = REPO / "examples" / "sample"
SMALL = SyntheticSpec(
    seed=11, days=3, users=60, items=48, taste_groups=4, sessions_per_user_per_day=1.0, malformed_lines=5
)
STRUCTURE = SyntheticSpec(seed=3, days=5, users=200, items=100, taste_groups=5, sessions_per_user_per_day=1.0)
# The same world through the vectorized sampler: exactly N lines a day.
BULK = SyntheticSpec(**{**STRUCTURE.model_dump(), "events_per_day": 7_000, "malformed_lines": 6, "gzip": True})


def _files(root: Path) -> dict[str, bytes]:
    return {path.relative_to(root).as_posix(): path.read_bytes() for path in sorted(root.rglob("*")) if path.is_file()}


def _lines(path: Path) -> list[str]:
    data = gzip.decompress(path.read_bytes()) if path.suffix == ".gz" else path.read_bytes()
    text = data.decode("utf-8")
    assert text.endswith("\n")
    return text.splitlines()


def _good_events(root: Path) -> list[tuple[str, RawEvent]]:
    """(folder day, event) of every line that satisfies the contract, in file order."""
    events = []
    for path in sorted(root.glob("dt=*/events.jsonl*")):
        for line in _lines(path):
            with contextlib.suppress(ValidationError):
                events.append((path.parent.name.removeprefix("dt="), RawEvent.model_validate_json(line)))
    return events


@pytest.fixture(scope="module")
def small(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, GenerationSummary]:
    out = tmp_path_factory.mktemp("small")
    return out, generate(SMALL, out)


@pytest.fixture(scope="module")
def bulk(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, GenerationSummary]:
    out = tmp_path_factory.mktemp("bulk")
    return out, generate(BULK, out)


@pytest.fixture(scope="module", params=["sessions", "bulk"])
def structure(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> list[RawEvent]:
    """The planted structure's events from either sampler (both draw from build_world(STRUCTURE))."""
    if request.param == "bulk":
        out, _ = request.getfixturevalue("bulk")
    else:
        out = tmp_path_factory.mktemp("structure")
        generate(STRUCTURE, out)
    return [event for _, event in _good_events(out)]


def test_same_spec_gives_identical_bytes(tmp_path: Path, small: tuple[Path, GenerationSummary]) -> None:
    first, summary = small
    again = generate(SMALL, tmp_path / "again")
    assert _files(tmp_path / "again") == _files(first)
    assert again == summary
    write_catalog(SMALL, tmp_path / "a.csv")
    write_catalog(SMALL, tmp_path / "b.csv")
    assert (tmp_path / "a.csv").read_bytes() == (tmp_path / "b.csv").read_bytes()


def test_other_seed_gives_other_data(tmp_path: Path, small: tuple[Path, GenerationSummary]) -> None:
    generate(SMALL.model_copy(update={"seed": 12}), tmp_path)
    assert _files(tmp_path) != _files(small[0])


def test_gzip_is_deterministic_and_holds_the_same_lines(tmp_path: Path, small: tuple[Path, GenerationSummary]) -> None:
    spec = SMALL.model_copy(update={"gzip": True})
    generate(spec, tmp_path / "a")
    generate(spec, tmp_path / "b")
    assert _files(tmp_path / "a") == _files(tmp_path / "b")
    for day in SMALL.day_list:
        folder = f"dt={day.isoformat()}"
        assert _lines(tmp_path / "a" / folder / "events.jsonl.gz") == _lines(small[0] / folder / "events.jsonl")
        assert not (tmp_path / "a" / folder / "events.jsonl").exists()


def test_layout_and_day_boundaries(small: tuple[Path, GenerationSummary]) -> None:
    out, summary = small
    expected = [f"dt={(SMALL.start + dt.timedelta(days=n)).isoformat()}/events.jsonl" for n in range(SMALL.days)]
    assert summary.files == expected
    assert sorted(path.relative_to(out).as_posix() for path in out.rglob("*") if path.is_file()) == expected

    events = _good_events(out)
    assert len(events) == summary.events_total
    per_day: Counter[str] = Counter()
    for folder_day, event in events:
        assert parse_timestamp(event.ts).date().isoformat() == folder_day
        assert (event.tenant, event.surface, event.v) == ("demo", "home", 1)
        per_day[folder_day] += 1
    assert dict(per_day) == summary.events_per_day
    assert all(count > 0 for count in per_day.values())


def test_sessions_are_unique_ordered_and_within_their_day(small: tuple[Path, GenerationSummary]) -> None:
    out, summary = small
    by_session: dict[str, list[tuple[str, RawEvent]]] = defaultdict(list)
    for folder_day, event in _good_events(out):
        by_session[event.session_id].append((folder_day, event))
    assert len(by_session) == summary.sessions_total
    anonymous = 0
    for session, rows in by_session.items():
        days = {folder_day for folder_day, _ in rows}
        assert len(days) == 1, session
        compact = days.pop().replace("-", "")
        users = {event.user_id for _, event in rows}
        assert len(users) == 1
        (user,) = users
        if user is None:
            anonymous += 1
            assert re.fullmatch(rf"s-anon-{compact}-\d+", session)
        else:
            assert re.fullmatch(rf"s-{user}-{compact}-\d+", session)
        times = [parse_timestamp(event.ts) for _, event in rows]
        assert times == sorted(times) and len(set(times)) == len(times)
        assert rows[0][1].event_type == "exposure"
        for _, event in rows:
            assert re.fullmatch(r"i\d{5}", event.item_id)
            assert event.rank is not None and 0 <= event.rank < 10
    assert anonymous == summary.anonymous_sessions > 0
    ids = [event.event_id for _, event in _good_events(out)]
    assert len(set(ids)) == len(ids)


def test_malformed_lines_are_injected_and_counted(small: tuple[Path, GenerationSummary]) -> None:
    out, summary = small
    kinds: Counter[str] = Counter()
    per_day: Counter[str] = Counter()
    for path in sorted(out.glob("dt=*/events.jsonl")):
        for line in _lines(path):
            try:
                RawEvent.model_validate_json(line)
                continue
            except ValidationError:
                per_day[path.parent.name.removeprefix("dt=")] += 1
            try:
                record = json.loads(line)
            except json.JSONDecodeError:
                kinds[MalformedKind.BROKEN_JSON] += 1
                continue
            if "item_id" not in record:
                kinds[MalformedKind.MISSING_ITEM_ID] += 1
            elif record["v"] != 1:
                kinds[MalformedKind.UNSUPPORTED_VERSION] += 1
            else:
                assert not record["ts"].endswith("Z")
                kinds[MalformedKind.TS_WITHOUT_ZONE] += 1
    assert sum(per_day.values()) == summary.malformed_lines == SMALL.malformed_lines == 5
    assert {day: count for day, count in summary.malformed_per_day.items() if count} == dict(per_day)
    assert len(per_day) == SMALL.days  # spread over the files
    assert kinds == {
        MalformedKind.BROKEN_JSON: 2,
        MalformedKind.MISSING_ITEM_ID: 1,
        MalformedKind.TS_WITHOUT_ZONE: 1,
        MalformedKind.UNSUPPORTED_VERSION: 1,
    }
    assert summary.malformed_kinds == {kind.value: count for kind, count in kinds.items()}


def test_no_malformed_lines_by_default(tmp_path: Path) -> None:
    summary = generate(SMALL.model_copy(update={"malformed_lines": 0, "days": 1}), tmp_path)
    lines = _lines(tmp_path / summary.files[0])
    assert len(lines) == summary.events_total
    for line in lines:
        RawEvent.model_validate_json(line)


def test_users_concentrate_in_their_preferred_groups(structure: list[RawEvent]) -> None:
    world = build_world(STRUCTURE)
    inside: Counter[str] = Counter()
    total: Counter[str] = Counter()
    for event in structure:
        if event.user_id is None or event.event_type != "exposure":
            continue
        total[event.user_id] += 1
        inside[event.user_id] += world.group_of(event.item_id) in world.preferred_groups(event.user_id)
    assert sum(inside.values()) / sum(total.values()) > 0.8
    concentrated = [user for user in total if total[user] >= 20 and inside[user] / total[user] > 0.6]
    assert len(concentrated) >= 0.9 * len([user for user in total if total[user] >= 20])


def test_planted_next_item_is_the_most_frequent_successor(structure: list[RawEvent]) -> None:
    world = build_world(STRUCTURE)
    sessions: dict[str, list[str]] = defaultdict(list)
    for event in structure:
        if event.event_type == "exposure":
            sessions[event.session_id].append(event.item_id)
    successors: dict[str, Counter[str]] = defaultdict(Counter)
    for items in sessions.values():
        for current, following in zip(items, items[1:], strict=False):
            if current != following:
                successors[current][following] += 1
    observed = [item for item, counts in successors.items() if sum(counts.values()) >= 10]
    assert len(observed) >= 0.8 * STRUCTURE.items
    hits = [item for item in observed if successors[item].most_common(1)[0][0] == world.planted_next(item)]
    assert len(hits) >= 0.9 * len(observed)
    for item in world.item_ids:  # successors stay inside the item's taste group
        assert world.group_of(world.planted_next(item)) == world.group_of(item) and world.planted_next(item) != item


def test_popularity_has_a_long_tail(structure: list[RawEvent]) -> None:
    counts = sorted(Counter(e.item_id for e in structure if e.event_type == "exposure").values(), reverse=True)
    assert counts[0] >= 4 * counts[len(counts) // 2]
    assert sum(counts[: len(counts) // 10]) >= 0.25 * sum(counts)


def test_funnel_rates_and_event_types(structure: list[RawEvent]) -> None:
    types = Counter(event.event_type for event in structure)
    exposures = types["exposure"]
    assert set(types) == {"exposure", "click", "add_to_cart", "purchase"}
    assert types["click"] / exposures == pytest.approx(STRUCTURE.click_rate, abs=0.02)
    assert types["add_to_cart"] / exposures == pytest.approx(STRUCTURE.add_to_cart_rate, abs=0.01)
    assert types["purchase"] / exposures == pytest.approx(STRUCTURE.purchase_rate, abs=0.008)
    assert types["exposure"] > types["click"] > types["add_to_cart"] > types["purchase"] > 0


def test_catalog_covers_every_event_item_with_group_tags(tmp_path: Path, small: tuple[Path, GenerationSummary]) -> None:
    path = tmp_path / "catalog.csv"
    assert write_catalog(SMALL, path) == SMALL.items
    with path.open(newline="", encoding="utf-8") as handle:
        reader = csv.DictReader(handle)
        assert reader.fieldnames == ["item_id", "namespace", "tags", "title"]
        rows = list(reader)
    assert len(rows) == len({row["item_id"] for row in rows}) == SMALL.items
    world = build_world(SMALL)
    categories: dict[int, set[str]] = defaultdict(set)
    for row in rows:
        tags = dict(tag.split(":", 1) for tag in row["tags"].split("|"))
        assert set(tags) == {"category", "brand", "style"} and row["title"] and row["namespace"] == "home"
        categories[world.group_of(row["item_id"])].add(tags["category"])
    assert all(len(names) == 1 for names in categories.values())
    assert len(set().union(*categories.values())) == SMALL.taste_groups
    catalog_items = {row["item_id"] for row in rows}
    assert {event.item_id for _, event in _good_events(small[0])} <= catalog_items


def test_spec_rejects_an_inconsistent_funnel_and_too_few_items() -> None:
    with pytest.raises(ValidationError):
        SyntheticSpec(click_rate=0.05, add_to_cart_rate=0.1)
    with pytest.raises(ValidationError):
        SyntheticSpec(items=5, taste_groups=3)


def test_cli_prints_the_summary(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    argv = [
        "--out",
        str(tmp_path / "raw"),
        "--days",
        "2",
        "--users",
        "20",
        "--items",
        "30",
        "--seed",
        "7",
        "--catalog",
        str(tmp_path / "catalog.csv"),
        "--malformed",
        "2",
        "--gzip",
    ]
    assert main(argv) == 0
    summary = GenerationSummary.model_validate_json(capsys.readouterr().out)
    assert summary.files == ["dt=2026-01-01/events.jsonl.gz", "dt=2026-01-02/events.jsonl.gz"]
    assert summary.malformed_lines == 2 and summary.catalog_items == 30
    assert (tmp_path / "catalog.csv").is_file()


def test_bundled_sample_is_reproduced_byte_for_byte(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    readme = (SAMPLE / "README.md").read_text(encoding="utf-8")
    (command,) = [line for line in readme.splitlines() if "-m recsys_tools.synthetic" in line]
    argv = shlex.split(command)
    argv = argv[argv.index("recsys_tools.synthetic") + 1 :]
    for flag, target in (("--out", "raw"), ("--catalog", "catalog.csv")):
        assert argv[argv.index(flag) + 1] == f"examples/sample/{target}"
        argv[argv.index(flag) + 1] = str(tmp_path / target)
    assert main(argv) == 0
    summary = GenerationSummary.model_validate_json(capsys.readouterr().out)
    generated = _files(tmp_path)
    bundled = {name: data for name, data in _files(SAMPLE).items() if name != "README.md"}
    assert generated == bundled
    assert summary.malformed_kinds == {"broken_json": 1, "missing_item_id": 1, "ts_without_zone": 1}
    assert 2000 <= summary.events_total <= 6000 and summary.anonymous_sessions > 0
    assert sum(len(data) for data in _files(REPO / "examples").values()) < 1_500_000


def test_bulk_writes_exactly_the_asked_lines_in_order_and_deterministically(
    tmp_path: Path, bulk: tuple[Path, GenerationSummary]
) -> None:
    out, summary = bulk
    good = _good_events(out)
    assert summary.events_per_day == {day.isoformat(): BULK.events_per_day for day in BULK.day_list}
    assert summary.events_total == len(good) == BULK.days * BULK.events_per_day
    assert sum(summary.event_types.values()) == summary.events_total
    assert summary.event_types == dict(Counter(event.event_type for _, event in good))
    assert summary.active_users == len({event.user_id for _, event in good if event.user_id})
    assert summary.distinct_items == len({event.item_id for _, event in good})
    by_day: dict[str, list[RawEvent]] = defaultdict(list)
    for day, event in good:
        assert parse_timestamp(event.ts).date().isoformat() == day
        by_day[day].append(event)
    for day, events in by_day.items():
        stamps = [parse_timestamp(e.ts) for e in events]
        assert stamps == sorted(stamps)
        compact = day.replace("-", "")
        assert [e.event_id for e in events] == [f"e-{compact}-{n:08d}" for n in range(1, len(events) + 1)]
    again = tmp_path / "again"
    assert generate(BULK, again) == summary
    assert _files(again) == _files(out)


def test_bulk_injects_the_malformed_lines_like_the_exact_sampler(bulk: tuple[Path, GenerationSummary]) -> None:
    out, summary = bulk
    bad = []
    for path in sorted(out.glob("dt=*/events.jsonl.gz")):
        for line in _lines(path):
            try:
                RawEvent.model_validate_json(line)
            except ValidationError:
                bad.append(line)
    assert len(bad) == summary.malformed_lines == BULK.malformed_lines
    assert sum(summary.malformed_per_day.values()) == BULK.malformed_lines
    assert summary.malformed_kinds == {"broken_json": 2, "missing_item_id": 2, "ts_without_zone": 1,
                                       "unsupported_version": 1}  # fmt: skip
    assert all(line.count('-bad"') == 1 or not line.endswith("}") for line in bad)
