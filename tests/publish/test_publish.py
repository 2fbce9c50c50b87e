"""publish and rollback: verification, the immutable manifest version, and every pointer decision."""

from __future__ import annotations

import datetime as dt
import json

import pytest

from recsys import paths
from recsys.days import Window
from recsys.errors import ArtifactInvalid, ManifestNotFound, PointerConflict, PublishRefused
from recsys.publish.service import Decision, history, publish, read_pointer, rollback
from recsys.store import FileSystemStore
from tests.conftest import run_steps

JAN = Window(start=dt.date(2026, 1, 1), end=dt.date(2026, 1, 7))
EARLY = Window(start=dt.date(2026, 1, 1), end=dt.date(2026, 1, 3))


@pytest.fixture
def full(store, sample_settings):
    return run_steps(sample_settings, "2026-01-01", "2026-01-07")


@pytest.fixture
def early(store, sample_settings):
    return run_steps(sample_settings, "2026-01-01", "2026-01-03")


def test_first_publish_creates_the_pointer_with_seed_v1_fields(store: FileSystemStore, full) -> None:
    result = publish(store, "demo", "home", JAN, full, run_id="r1")
    assert (result.decision, result.pointer_before, result.pointer_after) == (
        Decision.MOVED,
        None,
        result.manifest_version,
    )
    current = json.loads(store.get(paths.current_manifest("demo", "home")).data)
    assert current["v"] == 1 and (current["tenant"], current["surface"]) == ("demo", "home")
    assert set(current["current"]) == {"popularity", "cooc", "implicit", "content_sim", "session_seq", "item_knn"}
    assert current["current"]["popularity"].startswith(store.uri + "/artifacts/demo/home/popularity/")
    assert current["updated_at"].endswith("Z") and current["run_id"] == "r1"
    assert current["artifacts"]["popularity"]["rows"] == 120 and current["window"] == {
        "start": "2026-01-01",
        "end": "2026-01-07",
    }
    # the pointer is a byte copy of the immutable version
    assert (
        store.get(paths.manifest_version("demo", "home", result.manifest_version)).data
        == store.get(paths.current_manifest("demo", "home")).data
    )


def test_republishing_the_same_artifacts_rewrites_nothing(store: FileSystemStore, full) -> None:
    first = publish(store, "demo", "home", JAN, full)
    before = {key: store.get(key).data for key in store.list("registry/")}
    again = publish(store, "demo", "home", JAN, full)
    assert again.decision == Decision.UNCHANGED and again.manifest_version == first.manifest_version
    assert {key: store.get(key).data for key in store.list("registry/")} == before


def test_backfill_of_an_older_window_keeps_current_unless_promoted(store: FileSystemStore, full, early) -> None:
    newer = publish(store, "demo", "home", JAN, full)
    backfill = publish(store, "demo", "home", EARLY, early)
    assert backfill.decision == Decision.KEPT_NEWER and backfill.pointer_after == newer.manifest_version
    assert store.exists(paths.manifest_version("demo", "home", backfill.manifest_version))
    promoted = publish(store, "demo", "home", EARLY, early, promote=True)
    assert promoted.decision == Decision.MOVED and promoted.pointer_after == backfill.manifest_version
    assert read_pointer(store, "demo", "home").manifest.previous_manifest_version == newer.manifest_version


def test_tampered_or_missing_artifacts_are_refused_before_the_pointer_moves(store: FileSystemStore, full) -> None:
    popularity = next(a for a in full if a.kind == "popularity")
    other = next(a for a in full if a.kind == "cooc")
    forged = popularity.model_copy(update={"uri": other.uri})
    with pytest.raises(ArtifactInvalid, match="columns"):
        publish(store, "demo", "home", JAN, [forged])
    with pytest.raises(ArtifactInvalid, match="hashes to"):
        publish(store, "demo", "home", JAN, [popularity.model_copy(update={"version": "0" * 64})])
    with pytest.raises(ArtifactInvalid, match="rows"):
        publish(store, "demo", "home", JAN, [popularity.model_copy(update={"rows": 1})])
    store.delete(store.key_of(popularity.uri))
    with pytest.raises(ArtifactInvalid, match="does not exist"):
        publish(store, "demo", "home", JAN, [popularity])
    assert read_pointer(store, "demo", "home") is None


def test_empty_artifacts_never_replace_good_ones(store: FileSystemStore, full) -> None:
    publish(store, "demo", "home", JAN, full)
    empty_implicit = next(a for a in full if a.kind == "implicit").model_copy(update={"rows": 0})
    with pytest.raises(PublishRefused, match="implicit would go from 1642 rows to 0"):
        publish(store, "demo", "home", JAN, [empty_implicit])


class RacingStore(FileSystemStore):
    """Moves the pointer (as a concurrent publisher would) right before our first conditional write."""

    def __init__(self, root, race) -> None:
        super().__init__(root)
        self.race = race

    def put(self, key, data, **kwargs):
        if key.startswith("registry/current/") and self.race:
            race, self.race = self.race, None
            race()
        return super().put(key, data, **kwargs)


def test_a_lost_race_rereads_and_decides(store: FileSystemStore, full, early) -> None:
    publish(store, "demo", "home", EARLY, [a for a in early if a.kind == "popularity"])
    # Someone else publishes the newer window between our read of the pointer and our CAS ...
    racing = RacingStore(store.root, lambda: publish(store, "demo", "home", JAN, full))
    result = publish(racing, "demo", "home", EARLY, early, run_id="late")
    # ... so our older window must not overwrite it: we re-read, see a newer window, and keep it.
    assert racing.race is None and result.decision == Decision.KEPT_NEWER
    assert read_pointer(store, "demo", "home").manifest.window == JAN


def test_a_lost_race_against_an_older_window_retries_and_moves(store: FileSystemStore, full, early) -> None:
    publish(store, "demo", "home", EARLY, [a for a in early if a.kind == "popularity"])
    racing = RacingStore(store.root, lambda: publish(store, "demo", "home", EARLY, early))
    result = publish(racing, "demo", "home", JAN, full)
    assert racing.race is None and result.decision == Decision.MOVED
    assert read_pointer(store, "demo", "home").manifest.window == JAN


def test_after_a_lost_race_the_pointer_names_the_version_it_replaced(store: FileSystemStore, full, early) -> None:
    first = publish(store, "demo", "home", EARLY, [a for a in early if a.kind == "popularity"])
    rival = {}
    racing = RacingStore(store.root, lambda: rival.setdefault("result", publish(store, "demo", "home", EARLY, early)))
    # We read `first`, store our version with it as previous, lose the CAS to the rival, re-read and win.
    winner = publish(racing, "demo", "home", JAN, full)
    replaced = rival["result"].manifest_version
    assert winner.decision == Decision.MOVED and replaced != first.manifest_version
    assert winner.pointer_before == replaced
    assert read_pointer(store, "demo", "home").manifest.previous_manifest_version == replaced
    # The stored version keeps what was current when it was first stored; only the pointer records the swap.
    stored = json.loads(store.get(paths.manifest_version("demo", "home", winner.manifest_version)).data)
    assert stored["previous_manifest_version"] == first.manifest_version
    # So a plain rollback undoes exactly the winner's write, not the rival's too.
    assert rollback(store, "demo", "home").rolled_back_to == replaced


def test_a_lost_race_on_the_first_publish_is_a_precondition_not_an_overwrite(
    store: FileSystemStore, full, early
) -> None:
    racing = RacingStore(store.root, lambda: publish(store, "demo", "home", JAN, full))
    result = publish(racing, "demo", "home", EARLY, early)
    assert result.decision == Decision.KEPT_NEWER and read_pointer(store, "demo", "home").manifest.window == JAN


def test_rollback_moves_to_the_previous_version_and_refuses_bad_targets(store: FileSystemStore, full, early) -> None:
    with pytest.raises(ManifestNotFound):
        rollback(store, "demo", "home")
    first = publish(store, "demo", "home", EARLY, early)
    with pytest.raises(ManifestNotFound, match="no previous version"):
        rollback(store, "demo", "home")
    second = publish(store, "demo", "home", JAN, full)
    result = rollback(store, "demo", "home")
    assert (result.rolled_back_from, result.rolled_back_to) == (second.manifest_version, first.manifest_version)
    assert read_pointer(store, "demo", "home").manifest.manifest_version == first.manifest_version
    with pytest.raises(ManifestNotFound):
        rollback(store, "demo", "home", to="f" * 64)
    # roll forward again explicitly, after deleting one of its artifacts: refused
    cooc = next(a for a in full if a.kind == "cooc")
    store.delete(store.key_of(cooc.uri))
    with pytest.raises(ArtifactInvalid, match="missing artifacts"):
        rollback(store, "demo", "home", to=second.manifest_version)


def test_rollback_never_overwrites_a_concurrent_move(store: FileSystemStore, full, early) -> None:
    publish(store, "demo", "home", EARLY, early)
    publish(store, "demo", "home", JAN, full)
    racing = RacingStore(
        store.root,
        lambda: store.put(
            paths.current_manifest("demo", "home"), store.get(paths.current_manifest("demo", "home")).data + b" "
        ),
    )
    with pytest.raises(PointerConflict):
        rollback(racing, "demo", "home")


def test_history_is_newest_first(store: FileSystemStore, full, early) -> None:
    t0 = dt.datetime(2026, 1, 8, tzinfo=dt.UTC)
    first = publish(store, "demo", "home", EARLY, early, now=t0)
    second = publish(store, "demo", "home", JAN, full, now=t0 + dt.timedelta(hours=1))
    assert [m.manifest_version for m in history(store, "demo", "home")] == [
        second.manifest_version,
        first.manifest_version,
    ]


def test_a_partial_run_carries_the_other_kinds_over(store: FileSystemStore, full, sample_settings) -> None:
    publish(store, "demo", "home", JAN, full)
    popularity_only = run_steps(sample_settings, "2026-01-02", "2026-01-07", kinds=["popularity"])
    window = Window(start=dt.date(2026, 1, 2), end=dt.date(2026, 1, 7))
    result = publish(store, "demo", "home", window, popularity_only)
    manifest = read_pointer(store, "demo", "home").manifest
    assert result.decision == Decision.MOVED and set(manifest.current) == {a.kind for a in full}
    assert manifest.artifacts["popularity"].window == window and manifest.artifacts["cooc"].window == JAN
    cooc = next(a for a in full if a.kind == "cooc")
    store.delete(store.key_of(cooc.uri))
    with pytest.raises(ArtifactInvalid, match="build those kinds too"):
        publish(store, "demo", "home", JAN, popularity_only)


def test_rollback_accepts_a_unique_version_prefix(store: FileSystemStore, full, early) -> None:
    first = publish(store, "demo", "home", EARLY, early)
    publish(store, "demo", "home", JAN, full)
    assert rollback(store, "demo", "home", to=first.manifest_version[:10]).rolled_back_to == first.manifest_version
    with pytest.raises(ManifestNotFound, match="too short"):
        rollback(store, "demo", "home", to="abc")
    with pytest.raises(ManifestNotFound, match="no manifest versions starting with"):
        rollback(store, "demo", "home", to="00000000000")
