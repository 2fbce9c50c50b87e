"""A new artifact kind is one module plus one registry entry: a toy kind, defined and registered here only, is
computed over the bundled sample, published in a manifest and read back through the API's reader."""

from __future__ import annotations

import datetime as dt
import types
from collections.abc import Iterator, Sequence

import pyarrow as pa
import pyarrow.compute as pc
import pytest
from pydantic import ValidationError

from recsys import paths
from recsys.compute.service import compute_kind
from recsys.contract.kinds import KINDS, ArtifactKind
from recsys.days import Window
from recsys.paths import Scope
from recsys.pipeline.models import RunRequest
from recsys.publish.service import Decision, publish, read_pointer
from recsys.serve.reader import ArtifactReader
from recsys.settings import Settings
from recsys.store import FileSystemStore
from recsys.tables import from_parquet
from tests.conftest import run_steps

JAN = Window(start=dt.date(2026, 1, 1), end=dt.date(2026, 1, 7))


def _toy_module() -> types.ModuleType:
    """What a kind module in recsys/compute/ would hold: distinct sessions per item over the window."""
    toy = types.ModuleType("toy_sessions")
    toy.KIND = "toy_sessions"
    toy.PARTIAL_SCHEMA = pa.schema([pa.field("item_id", pa.string(), nullable=False), pa.field("sessions", pa.int64())])
    toy.SCHEMA = toy.PARTIAL_SCHEMA
    toy.EVENT_COLUMNS = ["item_id", "session_id"]

    def partial_params(params: object, event_weights: object) -> dict:
        return {"algorithm": 1}

    def partial(events: pa.Table, params: object, event_weights: object) -> pa.Table:
        pairs = events.group_by(["item_id", "session_id"], use_threads=False).aggregate([])
        counted = pairs.group_by("item_id", use_threads=False).aggregate([([], "count_all")])
        table = pa.table({"item_id": counted["item_id"], "sessions": counted["count_all"]})
        return table.sort_by("item_id").cast(toy.PARTIAL_SCHEMA)

    def build(partials: Sequence[tuple[dt.date, pa.Table]], window: Window, params: object) -> pa.Table:
        stacked = pa.concat_tables([table.cast(toy.PARTIAL_SCHEMA) for _, table in partials])
        summed = stacked.group_by("item_id", use_threads=False).aggregate([("sessions", "sum")])
        table = pa.table({"item_id": summed["item_id"], "sessions": summed["sessions_sum"]})
        return table.sort_by("item_id").cast(toy.SCHEMA)

    toy.partial_params, toy.partial, toy.build = partial_params, partial, build
    return toy


@pytest.fixture
def toy() -> Iterator[types.ModuleType]:
    module = _toy_module()
    KINDS.register(ArtifactKind.from_module(module))  # the reader's generic "table" form, no ranking signal
    try:
        yield module
    finally:
        KINDS.unregister(module.KIND)


def test_a_registered_toy_kind_is_computed_published_and_read_back(
    store: FileSystemStore, sample_settings: Settings, toy: types.ModuleType
) -> None:
    (popularity,) = run_steps(sample_settings, "2026-01-01", "2026-01-07", kinds=["popularity"])  # ingests the days

    result = compute_kind(store, toy.KIND, "demo", "home", JAN, sample_settings)
    ref = result.artifact
    assert (ref.kind, result.written, result.partials_built, result.partials_reused) == (toy.KIND, True, 7, 0)
    again = compute_kind(store, toy.KIND, "demo", "home", JAN, sample_settings)
    assert (again.artifact, again.written, again.partials_reused) == (ref, False, 7)

    events = pa.concat_tables(
        from_parquet(store.get(paths.canonical_events("demo", "home", day)).data, columns=["item_id", "session_id"])
        for day in JAN.days
    )
    sessions = (
        events.group_by(["item_id", "session_id"]).aggregate([]).group_by("item_id").aggregate([([], "count_all")])
    )
    expected = {row["item_id"]: row["count_all"] for row in sessions.to_pylist()}
    assert (ref.rows, ref.keys) == (len(expected), len(expected))

    outcome = publish(store, "demo", "home", JAN, [popularity, ref])
    assert outcome.decision == Decision.MOVED
    pointer = read_pointer(store, "demo", "home")
    assert pointer is not None and pointer.manifest.current[toy.KIND] == ref.uri

    loaded = ArtifactReader(store).signals(Scope("demo", "home"))
    assert loaded is not None and loaded.signals.available == {"popularity", toy.KIND}
    table = loaded.signals.loaded(toy.KIND)
    assert isinstance(table, pa.Table) and table.schema.equals(toy.SCHEMA)
    assert dict(zip(table["item_id"].to_pylist(), table["sessions"].to_pylist(), strict=True)) == expected
    assert pc.sum(table["sessions"]).as_py() == sum(expected.values())
    assert loaded.signals.popular(1)  # the built-in kinds serve beside it


def test_settings_accept_a_kind_while_it_is_registered(store: FileSystemStore, toy: types.ModuleType) -> None:
    assert Settings(store=store.uri, kinds=[toy.KIND, "popularity"]).kinds == ["popularity", toy.KIND]
    KINDS.unregister(toy.KIND)
    with pytest.raises(ValidationError, match="unknown artifact kind"):
        Settings(store=store.uri, kinds=[toy.KIND])


def test_a_run_request_accepts_a_kind_while_it_is_registered(toy: types.ModuleType) -> None:
    assert RunRequest(tenant="demo", surface="home", kinds=[toy.KIND]).kinds == [toy.KIND]
    KINDS.unregister(toy.KIND)
    with pytest.raises(ValidationError, match="unknown artifact kind"):
        RunRequest(tenant="demo", surface="home", kinds=[toy.KIND])


def test_an_entry_must_carry_the_hooks_of_its_source() -> None:
    schema = pa.schema([pa.field("item_id", pa.string(), nullable=False)])
    with pytest.raises(ValueError, match="needs"):
        ArtifactKind(name="half_done", schema=schema, source="events")
    with pytest.raises(ValueError, match="not in its schema"):
        ArtifactKind(
            name="bad_key",
            schema=schema,
            source="catalog",
            key_column="user_id",
            build_params=dict,
            build_from_catalog=lambda table, params: table,
        )
    with pytest.raises(ValueError, match="already registered"):
        KINDS.register(
            ArtifactKind(
                name="popularity",
                schema=schema,
                source="catalog",
                build_params=dict,
                build_from_catalog=lambda table, params: table,
            )
        )
    with pytest.raises(ValueError, match="built-in"):
        KINDS.unregister("popularity")
