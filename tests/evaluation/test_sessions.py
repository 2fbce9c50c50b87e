"""The session next-item protocol: conversion to raw events, splits, replay positions, anchors, metrics, and one
small run through the real pipeline and ranking on a generated TSV."""

from __future__ import annotations

import datetime as dt
import gzip
import json
from pathlib import Path

import numpy as np
import pytest

from recsys.serve.models import MAX_ANCHORS
from recsys_tools.evaluation.report import to_markdown
from recsys_tools.evaluation.sessions import (
    OURS,
    Position,
    Replay,
    SessionEvalOptions,
    anchors,
    check_raw,
    comparisons,
    convert_sessions,
    per_position,
    positions,
    prepare_yoochoose,
    ranks,
    read_clicks,
    rfc3339,
    run_sessions,
    score,
    split_clicks,
)

DAY1 = 1396310400  # 2014-04-01T00:00:00Z


def write_tsv(path: Path, rows: list[tuple[int, str, str]]) -> Path:
    text = "SessionId\tItemId\tTime\n" + "".join(f"{s}\t{i}\t{t}\n" for s, i, t in rows)
    path.write_bytes(gzip.compress(text.encode(), mtime=0))
    return path


def test_timestamps_are_exact_rfc3339_utc_with_microseconds(tmp_path: Path) -> None:
    clicks = read_clicks(write_tsv(tmp_path / "t.tsv.gz", [(3, "9", f"{DAY1}.94"), (3, "8", f"{DAY1 + 61}.123")]))
    assert clicks.ts_us.tolist() == [DAY1 * 1_000_000 + 940_000, (DAY1 + 61) * 1_000_000 + 123_000]
    assert rfc3339(int(clicks.ts_us[1])) == "2014-04-01T00:01:01.123000Z"


def test_read_clicks_sorts_by_numeric_session_then_time(tmp_path: Path) -> None:
    rows = [(10, "a", f"{DAY1 + 5}"), (9, "b", f"{DAY1 + 9}"), (9, "c", f"{DAY1 + 1}"), (10, "d", f"{DAY1 + 1}")]
    clicks = read_clicks(write_tsv(tmp_path / "t.tsv.gz", rows))
    assert clicks.session.tolist() == ["9", "9", "10", "10"]  # 9 < 10 as numbers
    assert clicks.item.tolist() == ["c", "b", "d", "a"]


def test_convert_writes_one_click_event_per_row_by_utc_day(tmp_path: Path) -> None:
    rows = [(1, "100", f"{DAY1 + 86399}.5"), (1, "101", f"{DAY1 + 86400}.25"), (2, "100", f"{DAY1 + 10}")]
    tsv = write_tsv(tmp_path / "train.tsv.gz", rows)
    counts = convert_sessions(tsv, tmp_path / "raw", "demo", "home", exclude_sessions=[])
    assert counts == {"2014-04-01": 2, "2014-04-02": 1}
    day1 = [json.loads(line) for line in (tmp_path / "raw/dt=2014-04-01/events.jsonl").read_text().splitlines()]
    assert day1 == [  # by time within the day; anonymous (no user_id)
        {"v": 1, "ts": "2014-04-01T00:00:10.000000Z", "tenant": "demo", "surface": "home", "session_id": "s2",
         "item_id": "100", "event_type": "click"},
        {"v": 1, "ts": "2014-04-01T23:59:59.500000Z", "tenant": "demo", "surface": "home", "session_id": "s1",
         "item_id": "100", "event_type": "click"},
    ]  # fmt: skip
    assert check_raw(tmp_path / "raw", "demo", "home") == 3  # the ingest's parser accepts every line
    first = (tmp_path / "raw/dt=2014-04-02/events.jsonl").read_bytes()
    assert convert_sessions(tsv, tmp_path / "raw", "demo", "home", exclude_sessions=["2"]) == {
        "2014-04-01": 1,
        "2014-04-02": 1,
    }
    assert (tmp_path / "raw/dt=2014-04-02/events.jsonl").read_bytes() == first  # deterministic


def test_check_raw_refuses_a_line_the_parser_rejects(tmp_path: Path) -> None:
    convert_sessions(write_tsv(tmp_path / "t.tsv.gz", [(1, "5", f"{DAY1}")]), tmp_path / "raw", "demo", "home")
    assert check_raw(tmp_path / "raw", "demo", "home") == 1
    with pytest.raises(ValueError, match="tenant_mismatch"):
        check_raw(tmp_path / "raw", "other", "home")


def test_the_validation_split_holds_out_the_sessions_starting_on_the_last_day(tmp_path: Path) -> None:
    # Train's last click is on day 3 (00:10), so the validation day is day 2. Session 1 starts on day 1 and runs
    # into day 2: it stays in train. Sessions 2 (day 2) and 3 (day 3) are held out.
    day = 86400
    rows = [
        (1, "a", DAY1 + day - 5),
        (1, "b", DAY1 + day + 5),
        (2, "c", DAY1 + day + 60),
        (3, "d", DAY1 + 2 * day + 600),
    ]
    train = read_clicks(write_tsv(tmp_path / "t.tsv.gz", [(s, i, str(t)) for s, i, t in rows]))
    valid = read_clicks(write_tsv(tmp_path / "v.tsv.gz", [(9, "a", str(DAY1 + 3 * day))]))
    kept, held, note = split_clicks(train, valid, "validation")
    assert kept.session.tolist() == ["1", "1"]
    assert held.session.tolist() == ["2", "3"]
    assert "2014-04-02" in note
    kept, held, _ = split_clicks(train, valid, "test")
    assert len(kept) == 4 and held.session.tolist() == ["9"]
    with pytest.raises(ValueError):
        split_clicks(train, valid, "other")  # type: ignore[arg-type]


def test_positions_skip_unknown_targets_and_flag_new_targets(tmp_path: Path) -> None:
    rows = [(7, item, str(DAY1 + n)) for n, item in enumerate(["a", "b", "a", "z", "c"])] + [(8, "a", str(DAY1))]
    test = read_clicks(write_tsv(tmp_path / "v.tsv.gz", rows))
    found = positions(test, known_items={"a", "b", "c"})
    assert [(p.index, p.seen, p.target, p.new_target) for p in found] == [
        (0, ("a",), "b", True),
        (1, ("a", "b"), "a", False),  # a was seen: not a new target
        (3, ("a", "b", "a", "z"), "c", True),  # z (position 2's target) is unknown to train: skipped
    ]  # session 8 has one click: no position
    assert found[2].ts_us == (DAY1 + 3) * 1_000_000


def test_anchors_are_most_recent_first_deduplicated_and_capped() -> None:
    assert anchors(["a", "b", "a", "c"]) == ["c", "a", "b"]
    many = [f"i{n}" for n in range(MAX_ANCHORS + 10)]
    assert anchors(many) == [f"i{n}" for n in range(MAX_ANCHORS + 9, 9, -1)]


def _replay() -> Replay:
    found = [
        Position("1", 0, ("a",), "b", 0),
        Position("1", 1, ("a", "b"), "a", 0),  # not a new target
        Position("2", 0, ("c",), "d", 0),
    ]
    lists = {
        OURS: {"1:0": ["x", "b"], "1:1": ["a"], "2:0": ["d"]},
        "other": {"1:0": ["b"], "1:1": [], "2:0": ["x", "y", "z", "d"]},
    }
    return Replay(found, {name: ranks(lists[name], found) for name in lists}, {})


def test_ranks_and_per_position_metrics() -> None:
    replay = _replay()
    assert replay.ranks[OURS].tolist() == [2, 1, 1]
    assert replay.ranks["other"].tolist() == [1, 0, 4]
    assert per_position(replay.ranks["other"], "mrr@20").tolist() == [1.0, 0.0, 0.25]
    assert per_position(replay.ranks["other"], "hit_rate@20").tolist() == [1.0, 0.0, 1.0]
    with pytest.raises(ValueError):
        per_position(replay.ranks["other"], "ndcg@10")


def test_score_averages_over_positions_per_segment() -> None:
    results = score(_replay())
    ours, other = results[OURS], results["other"]
    assert ours["all"]["users"] == 3 and ours["new-target"]["users"] == 2
    assert ours["all"]["mrr@20"] == pytest.approx((0.5 + 1 + 1) / 3)
    assert ours["new-target"]["mrr@20"] == pytest.approx((0.5 + 1) / 2)
    assert other["all"]["hit_rate@20"] == pytest.approx(2 / 3)
    assert other["new-target"]["mrr@20"] == pytest.approx((1 + 0.25) / 2)  # rank 4, not moved up by fillers
    assert other["new-target"]["ndcg@20"] == pytest.approx((1 + 1 / np.log2(5)) / 2)


def test_comparisons_are_paired_per_new_target_position() -> None:
    found = comparisons(_replay())
    assert [(c["second"], c["metric"]) for c in found] == [("other", "mrr@20"), ("other", "hit_rate@20")]
    mrr = found[0]
    assert mrr["users"] == 2 and mrr["difference"] == pytest.approx(((0.5 - 1) + (1 - 0.25)) / 2)
    assert (mrr["better"], mrr["worse"], mrr["level"]) == (1, 1, 0)
    assert found[1]["difference"] == 0.0 and found[1]["verdict"] == "level"


def _chain_sessions(first_session: int, start: int, sessions: int) -> list[tuple[int, str, str]]:
    """Sessions walking a ring of 12 items, two steps at a time from a rotating start: a learnable next item."""
    rows = []
    for n in range(sessions):
        for step in range(4):
            rows.append((first_session + n, f"{100 + (n + 2 * step) % 12}", f"{start + n * 600 + step * 30}.5"))
    return rows


@pytest.fixture
def tiny_data(tmp_path: Path) -> Path:
    data = tmp_path / "data"
    data.mkdir()
    day = 86400
    write_tsv(data / "train.tsv.gz", [r for d in range(3) for r in _chain_sessions(1000 * d, DAY1 + d * day, 40)])
    write_tsv(data / "valid.tsv.gz", _chain_sessions(5000, DAY1 + 3 * day, 10))
    return data


def test_run_sessions_end_to_end_through_the_pipeline(tiny_data: Path, tmp_path: Path) -> None:
    options = SessionEvalOptions(data=str(tiny_data), work=str(tmp_path / "work"), split="test", tenant="demo")
    report = run_sessions(options)
    assert list(report.results) == [OURS, "popularity", "AR", "SR", "session-kNN", "V-STAN"]
    ours = report.results[OURS]
    assert set(ours) == {"all", "new-target"}
    assert ours["all"]["users"] == report.dataset["positions"] == 30  # 10 sessions x 3 targets, all known
    assert ours["new-target"]["users"] == 30
    # Each next item follows its predecessor in every train session that has it: ours and SR learn it.
    assert ours["all"]["hit_rate@20"] == 1.0
    assert ours["all"]["mrr@20"] > 0.5
    assert report.results["SR"]["all"]["mrr@20"] == 1.0
    assert [c["metric"] for c in report.comparisons] == ["mrr@20", "hit_rate@20"] * 5
    markdown = to_markdown(report)
    assert "## all" in markdown and "## new-target" in markdown
    assert (tmp_path / "work/test/store").is_dir() and not (tiny_data / "store").exists()

    validation = run_sessions(options.model_copy(update={"split": "validation"}))
    # Train's last click is on day 3, so the validation day is the day before (2014-04-02): the sessions of
    # days 2 and 3 are held out, and train is day 1.
    assert validation.split["train"] == ["2014-04-01", "2014-04-01"]
    assert validation.dataset["test_sessions"] == 80


def test_validation_day_can_be_given(tiny_data: Path, tmp_path: Path) -> None:
    options = SessionEvalOptions(
        data=str(tiny_data), work=str(tmp_path / "work"), split="validation", validation_day=dt.date(2014, 4, 3)
    )
    prepared = prepare_yoochoose(options.data, options.work, "validation", validation_day=options.validation_day)
    assert len(set(prepared.test.session.tolist())) == 40
    assert str(prepared.window.end) == "2014-04-02"
    assert sorted(p.name for p in prepared.raw.iterdir()) == ["dt=2014-04-01", "dt=2014-04-02"]
