"""The evaluation report's schema: what `recsys eval` writes as report.json and stores with --report-store, and what
the operator console reads back (recsys.serve.console). The writers (Markdown, PNG) are the tooling's
(recsys_tools.evaluation.report); only the model is shared.
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field, JsonValue

SEGMENTS = ("overall", "warm", "cold")
Metrics = dict[str, int | float]


class Table(BaseModel):
    """An extra Markdown section: a title, a sentence, a table."""

    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)

    title: str
    text: str = ""
    header: list[str]
    rows: list[list[JsonValue]]


class Report(BaseModel):
    """An evaluation run. results: {recommender: {segment: {metric: value}}}, segments as in SEGMENTS."""

    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)  # NaN is not JSON

    title: str = "Offline evaluation"
    dataset: dict[str, JsonValue] = Field(default_factory=dict, description="where the data came from, its size")
    split: dict[str, JsonValue] = Field(default_factory=dict, description="train / test windows")
    ks: list[int]
    results: dict[str, dict[str, Metrics]]
    comparisons: list[dict[str, JsonValue]] = Field(
        default_factory=list, description="`metrics.compare` of one recommender against another, overall users"
    )
    notes: list[str] = Field(default_factory=list)
    columns: list[str] = Field(
        default_factory=list, description="the Markdown tables' metric columns (default: `columns(report)`)"
    )
    segment_help: dict[str, str] = Field(
        default_factory=dict, description="a segment's sentence (default SEGMENT_HELP)"
    )
    comparisons_help: str = Field("", description="the Differences table's sentence (default: a paired bootstrap's)")
    tables: list[Table] = Field(default_factory=list, description="sections after Differences")

    def segments(self) -> list[str]:
        """SEGMENTS first, then any other segment name in the results, in first-seen order."""
        seen = [s for s in SEGMENTS if any(s in r for r in self.results.values())]
        for result in self.results.values():
            seen.extend(s for s in result if s not in seen)
        return seen

    def beyond_k(self) -> int:
        """The K of the coverage and novelty columns: 10 if evaluated, else the largest K."""
        return 10 if 10 in self.ks or not self.ks else max(self.ks)
