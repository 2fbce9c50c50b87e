"""Report files: JSON (stable, round-trips), Markdown tables, a PNG chart."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from pydantic import ValidationError

from recsys.contract.report import Report
from recsys.evaluation.metrics import compare, evaluate_lists
from recsys_tools.evaluation.report import columns, read_report, to_json, to_markdown, write_report

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def _report() -> Report:
    lists = {"u1": ["a", "b", "c", "d"], "u2": ["x", "y"], "u3": ["a"]}
    relevant = {"u1": {"b", "d", "x"}, "u2": {"y"}, "u3": {"q"}}
    ours = evaluate_lists(lists, relevant, ks=(5, 10, 20), catalog_size=10, item_popularity={"a": 0.5})
    popular = evaluate_lists({"u1": ["a"]}, relevant, ks=(5, 10, 20), catalog_size=10, item_popularity={"a": 0.5})
    return Report(
        dataset={"raw": "examples/sample/raw", "catalog": None, "train_users": 3},
        split={"train": ["2026-01-01", "2026-01-06"], "test": ["2026-01-07", "2026-01-07"]},
        ks=[5, 10, 20],
        results={
            "recsys (blend)": {"overall": ours, "warm": ours, "cold": {"users": 0}},
            "popularity": {"overall": popular, "warm": popular, "cold": {"users": 0}},
        },
        comparisons=[{"first": "recsys (blend)", "second": "popularity", **compare(lists, {"u1": ["a"]}, relevant)}],
        notes=["tuned weights: defaults"],
    )


@pytest.fixture(scope="module")
def written(tmp_path_factory: pytest.TempPathFactory) -> list[Path]:
    """The report written once for the module (drawing the PNG takes about a second)."""
    return write_report(_report(), tmp_path_factory.mktemp("report") / "out")


def test_writes_the_three_files(written: list[Path]) -> None:
    assert [p.name for p in written] == ["report.json", "report.md", "report.png"]
    assert all(p.is_file() and p.parent.name == "out" for p in written)


def test_json_is_sorted_indented_and_round_trips(written: list[Path], tmp_path: Path) -> None:
    report = _report()
    json_path = written[0]
    text = json_path.read_text()
    assert text.startswith('{\n  "comparisons": [\n    {\n      "better": 2,')  # sorted keys, indent 2
    assert text.endswith("}\n")
    assert read_report(json_path) == report
    assert json.loads(text)["results"]["recsys (blend)"]["overall"]["users"] == 3  # an int, not 3.0
    # stable: the re-read report serialises to the same bytes
    again = tmp_path / "again.json"
    again.write_text(to_json(read_report(json_path)))
    assert again.read_bytes() == json_path.read_bytes()


def test_markdown_has_a_table_per_segment_with_a_row_per_recommender(written: list[Path]) -> None:
    report = _report()
    md = written[1].read_text()
    assert md.count("| recommender | recall@5 |") == 3
    assert [line for line in md.splitlines() if line.startswith("## ")] == [
        "## Dataset",
        "## Split",
        "## overall",
        "## warm",
        "## cold",
        "## Differences",
        "## Notes",
    ]
    header = next(line for line in md.splitlines() if line.startswith("| recommender |"))
    cells = [c.strip() for c in header.strip("|").split("|")]
    assert cells[:6] == ["recommender", "recall@5", "ndcg@5", "map@5", "precision@5", "hit_rate@5"]
    assert cells[-4:] == ["mrr", "coverage@10", "novelty@10", "users"]
    assert len(cells) == 1 + 5 * 3 + 4

    overall = md.split("## overall")[1].split("## warm")[0]
    row = next(line for line in overall.splitlines() if line.startswith("| recsys (blend) |"))
    values = dict(zip(cells, [c.strip() for c in row.strip("|").split("|")], strict=True))
    ours = report.results["recsys (blend)"]["overall"]
    assert values["recall@10"] == f"{ours['recall@10']:.4f}"
    assert values["mrr"] == "0.3333"  # (1/2 + 1/2 + 0) / 3
    assert values["users"] == "3"
    assert "| popularity |" in overall
    cold = md.split("## cold")[1]
    assert "| recsys (blend) | – |" in cold  # no cold user: no value, not 0
    assert cold.split("| recsys (blend) |")[1].splitlines()[0].rstrip().endswith("| 0 |")
    assert "- train: 2026-01-01 – 2026-01-06" in md
    assert "- tuned weights: defaults" in md
    # u1: ours hits b (rank 2) and d (rank 4), popularity nothing; u2: ours hits y at rank 2; u3: both miss
    differences = md.split("## Differences")[1].split("## Notes")[0]
    row = next(line for line in differences.splitlines() if line.startswith("| recsys (blend) |"))
    cells = [c.strip() for c in row.strip("|").split("|")]
    assert cells[:3] == ["recsys (blend)", "popularity", "ndcg@10"]
    assert cells[5:] == ["2 / 0 / 1", "level"]  # three users cannot tell them apart


def test_a_comparison_without_users_shows_no_numbers() -> None:
    nobody = {"first": "recsys (blend)", "second": "popularity", **compare({}, {}, {"u": set()})}
    md = to_markdown(_report().model_copy(update={"comparisons": [nobody]}))
    row = next(line for line in md.split("## Differences")[1].splitlines() if line.startswith("| recsys"))
    assert [c.strip() for c in row.strip("|").split("|")][3:] == ["–"] * 4


def test_markdown_coverage_column_without_k_10() -> None:
    report = _report().model_copy(update={"ks": [5, 20]})
    assert columns(report)[-4:] == ["mrr", "coverage@20", "novelty@20", "users"]
    assert "recall@10" not in to_markdown(report)


def test_png_is_a_valid_png(written: list[Path]) -> None:
    data = written[2].read_bytes()
    assert data[:8] == PNG_SIGNATURE
    assert len(data) > 1024
    width, height = int.from_bytes(data[16:20], "big"), int.from_bytes(data[20:24], "big")  # IHDR
    assert width > 1000 and height > 300
    assert b"Software" not in data


def test_outputs_are_byte_identical_across_runs(written: list[Path], tmp_path: Path) -> None:
    again = write_report(_report(), tmp_path)
    for a, b in zip(written, again, strict=True):
        assert a.read_bytes() == b.read_bytes(), a.name


def test_report_rejects_nan_and_unknown_fields() -> None:
    with pytest.raises(ValidationError):
        Report(ks=[10], results={"x": {"overall": {"recall@10": float("nan")}}})
    with pytest.raises(ValidationError):
        Report(ks=[10], results={}, generated_at="now")
