"""The user top-N holdout protocol: reading and splitting sequences, the raw events it writes, the seen share, and
one small run end to end through the real pipeline and ranking."""

from __future__ import annotations

import datetime as dt
import gzip
import json
from pathlib import Path

import pytest

from recsys import paths
from recsys.evaluation.metrics import seen_share
from recsys.events.parse import DayScope, parse_events
from recsys.settings import DEFAULT_EVENT_WEIGHTS, Settings
from recsys.store import open_store
from recsys_tools.evaluation.holdout import (
    DAY,
    EASE,
    RECENCY_EASE,
    HoldoutOptions,
    event_lines,
    prepare_holdout,
    read_sequences,
    run_holdout,
    split_sequences,
    targets_in_train,
)
from recsys_tools.evaluation.run import OURS

# u1: 5 interactions, u2: exactly 3, u3: 2 (train only, never evaluated); u1's lines are not contiguous
LINES = "1 10\n1 11\n2 20\n1 12\n\n2 21\n3 30\n2 22\n3 31\n1 13\n1 11\n"
SEQUENCES = {
    "u1": ["i10", "i11", "i12", "i13", "i11"],
    "u2": ["i20", "i21", "i22"],
    "u3": ["i30", "i31"],
}


def test_read_sequences_keeps_each_users_order(tmp_path: Path) -> None:
    plain, packed = tmp_path / "s.txt", tmp_path / "s.txt.gz"
    plain.write_text(LINES)
    packed.write_bytes(gzip.compress(LINES.encode()))
    assert read_sequences(plain) == SEQUENCES
    assert read_sequences(packed) == SEQUENCES
    plain.write_text("1 10\n1 11 12\n")
    with pytest.raises(ValueError, match=r"s.txt:2: expected `user_id item_id`"):
        read_sequences(plain)


def test_validation_holds_out_the_second_to_last_and_test_the_last() -> None:
    validation = split_sequences(SEQUENCES, "validation")
    assert validation.targets == {"u1": "i13", "u2": "i21"}
    assert validation.train == {"u1": ["i10", "i11", "i12"], "u2": ["i20"], "u3": ["i30", "i31"]}
    test = split_sequences(SEQUENCES, "test")
    assert test.targets == {"u1": "i11", "u2": "i22"}  # u1 buys i11 again: still its target
    assert test.train == {"u1": ["i10", "i11", "i12", "i13"], "u2": ["i20", "i21"], "u3": ["i30", "i31"]}
    assert test.users() == ["u1", "u2"] and test.relevant() == {"u1": {"i11"}, "u2": {"i22"}}
    assert targets_in_train(test) == 1 and targets_in_train(validation) == 0
    with pytest.raises(ValueError, match="split must be one of"):
        split_sequences(SEQUENCES, "train")


def test_events_keep_each_users_order_on_one_day_and_parse() -> None:
    lines = list(event_lines({"u2": ["i20", "i21"], "u3": ["i30"]}, "demo", "home"))
    assert json.loads(lines[1]) == {
        "v": 1,
        "ts": "2020-01-01T00:00:01.000000Z",
        "tenant": "demo",
        "surface": "home",
        "user_id": "u2",
        "session_id": "u2",
        "item_id": "i21",
        "event_type": "purchase",
    }
    assert [json.loads(line)["ts"][11:19] for line in lines] == ["00:00:00", "00:00:01", "00:00:00"]
    scope = DayScope(tenant="demo", surface="home", day=DAY, event_types=frozenset(DEFAULT_EVENT_WEIGHTS))
    parsed = parse_events(("\n".join(lines) + "\n").encode(), source="t", scope=scope, dated=True)
    assert parsed.rejections == [] and parsed.events.num_rows == 3
    with pytest.raises(ValueError, match="more than the seconds of one day"):
        list(event_lines({"u1": ["i1"] * 86_401}, "demo", "home"))


def test_prepare_writes_each_split_under_its_own_dated_folder(tmp_path: Path) -> None:
    (tmp_path / "s.txt").write_text(LINES)
    splits = prepare_holdout(tmp_path / "s.txt", tmp_path / "work")
    assert set(splits) == {"validation", "test"}
    for split, train_rows in (("validation", 6), ("test", 8)):
        path = tmp_path / "work" / "raw" / split / "dt=2020-01-01" / "events.jsonl"
        events = [json.loads(line) for line in path.read_text().splitlines()]
        assert len(events) == train_rows == sum(len(items) for items in splits[split].train.values())
        assert [e["item_id"] for e in events if e["user_id"] == "u1"] == splits[split].train["u1"]


def test_seen_share_counts_slots_of_the_users_own_items() -> None:
    train = {"u1": ["a", "b"], "u2": ["c"]}
    assert seen_share({"u1": ["a", "c", "d", "e"], "u2": ["a", "b"]}, train) == pytest.approx(1 / 6)
    assert seen_share({"u1": [], "u2": []}, train) == 0.0
    assert seen_share({"u3": ["a"]}, train) == 0.0  # a user without train items has seen nothing


def _chains(path: Path, users: int = 96, items: int = 24) -> None:
    """Users walk the item cycle (the next item is always the current one + 1) from every start, 3 to 6 steps long:
    every transition a target needs is in both splits' train."""
    lines = []
    for user in range(users):
        start, steps = user % items, 3 + (user // items) % 4
        lines += [f"{user + 1} {(start + step) % items + 1}" for step in range(steps)]
    lines.append(f"{users + 1} 1")  # one user with a single interaction: train only
    path.write_text("\n".join(lines) + "\n")


@pytest.mark.parametrize("split", ["validation", "test"])
def test_holdout_end_to_end_through_the_pipeline(tmp_path: Path, split: str) -> None:
    _chains(tmp_path / "seq.txt")
    options = HoldoutOptions(
        sequences=str(tmp_path / "seq.txt"),
        work_dir=str(tmp_path / "work"),
        split=split,
        ease_lambdas=(1.0, 10.0),
        recency_decays=(0.5, 1.0),
    )
    report = run_holdout(options, Settings())
    assert list(report.results) == [OURS, "popularity", "item-kNN", EASE, RECENCY_EASE]
    overall = {name: result["overall"] for name, result in report.results.items()}
    assert {r["users"] for r in overall.values()} == {96}
    assert {"hit_rate@10", "ndcg@10", "recall@20", "mrr", "seen_share"} <= set(overall[OURS])
    assert {r["seen_share"] for r in overall.values()} == {0.0}
    # the ingest accepted every line: one event per train interaction
    store = open_store(f"file://{tmp_path / 'work' / 'store' / split}")
    ingested = json.loads(store.get(paths.ingest_report("demo", "home", DAY)).data)
    assert ingested["quarantined"] == 0 and ingested["accepted"] == report.dataset["train_interactions"]
    # the walk is learnable from the users' sequences: far above popularity, as is EASE with recency
    assert overall[OURS]["hit_rate@10"] > 0.9
    assert overall[OURS]["ndcg@10"] > 2 * overall["popularity"]["ndcg@10"]
    assert overall[RECENCY_EASE]["ndcg@10"] >= overall[EASE]["ndcg@10"]
    assert [c["second"] for c in report.comparisons] == ["popularity", "item-kNN", EASE, RECENCY_EASE]
    assert next(c for c in report.comparisons if c["second"] == "popularity")["verdict"] == "ahead"
    assert any(note.startswith("EASE lambda ") for note in report.notes)
    assert report.dataset["targets_in_train"] == 0 and report.split["split"] == split
    assert dt.date.fromisoformat(report.split["events_day"]) == DAY
