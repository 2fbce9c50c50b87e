"""The evaluation report: a `Report` model and `write_report`, which writes three files to a folder:

- report.json: the model, sorted keys, indent 2, trailing newline: byte-stable for the same report.
- report.md: per segment (overall, warm, cold, then any other), a table with one row per recommender (in the
  order of `results`) and the columns recall/ndcg/map/precision/hit_rate @K for each K, mrr, coverage@K*,
  novelty@K*, users; K* is 10 when 10 is one of the ks, else the largest K. Numbers have 4 decimals; a metric the
  results do not have (e.g. a segment without users) shows as "–".
- report.png: a grid with one row per segment that has users and one column per metric family, each plotting the
  metric against K with one line per recommender. Drawn with matplotlib's Agg canvas (no pyplot, no global
  backend switch) and written without the "Software" metadata, so the same report gives the same bytes with the
  same matplotlib and fonts.

A report may override the table columns (`columns`; a value with `<metric>_low` and `<metric>_high` beside it
shows as `value (low .. high)`), the segments' and the Differences table's sentences, and add `tables` (sections
after Differences): `recsys eval --protocol logs` does. Left empty, they are left out of report.json.

matplotlib is imported only when the PNG is written: it is not a dependency of the Lambda layer.
"""

from __future__ import annotations

import json
from pathlib import Path

from pydantic import JsonValue

from recsys.contract.report import Metrics, Report
from recsys.evaluation.metrics import FAMILIES

# Fields a report may leave out; left out of report.json when empty, so that reports without them keep their bytes.
_OPTIONAL = ("columns", "segment_help", "comparisons_help", "tables")
SEGMENT_HELP = {
    "overall": "all test users with at least one relevant item",
    "warm": "test users with training history",
    "cold": "test users without training history",
}
FAMILY_TITLES = {"recall": "Recall", "ndcg": "NDCG", "map": "MAP", "precision": "Precision", "hit_rate": "Hit rate"}
MISSING = "–"


def write_report(report: Report, out_dir: Path | str) -> list[Path]:
    """Write report.json, report.md and report.png into out_dir (created if needed); returns the three paths."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    json_path, md_path, png_path = out / "report.json", out / "report.md", out / "report.png"
    json_path.write_text(to_json(report), encoding="utf-8")
    md_path.write_text(to_markdown(report), encoding="utf-8")
    write_png(report, png_path)
    return [json_path, md_path, png_path]


def to_json(report: Report) -> str:
    data = report.model_dump(mode="json", exclude={name for name in _OPTIONAL if not getattr(report, name)})
    return json.dumps(data, sort_keys=True, indent=2, ensure_ascii=False) + "\n"


def read_report(path: Path | str) -> Report:
    return Report.model_validate_json(Path(path).read_text(encoding="utf-8"))


def columns(report: Report) -> list[str]:
    """The metric columns of the Markdown tables, in order."""
    if report.columns:
        return list(report.columns)
    ks = sorted(set(report.ks))
    beyond = report.beyond_k()
    per_k = [f"{family}@{k}" for k in ks for family in FAMILIES]
    return [*per_k, "mrr", f"coverage@{beyond}", f"novelty@{beyond}", "users"]


def _cell(metrics: Metrics, column: str) -> str:
    value = metrics.get(column)
    if value is None:
        return MISSING
    if column in ("users", "lists"):
        return str(int(value))
    low, high = metrics.get(f"{column}_low"), metrics.get(f"{column}_high")
    if low is not None and high is not None:  # a mean with its interval
        return f"{value:.4f} ({low:.4f} .. {high:.4f})"
    return f"{value:.4f}"


def _escape(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def _format_value(value: JsonValue) -> str:
    if isinstance(value, list):
        return " – ".join(str(v) for v in value)
    if isinstance(value, dict):
        return json.dumps(value, sort_keys=True)
    return "–" if value is None else str(value)


def to_markdown(report: Report) -> str:
    lines = [f"# {report.title}", ""]
    for heading, fields in (("Dataset", report.dataset), ("Split", report.split)):
        if fields:
            lines += [f"## {heading}", ""]
            lines += [f"- {_escape(key)}: {_escape(_format_value(value))}" for key, value in fields.items()]
            lines.append("")
    lines += [f"K: {', '.join(str(k) for k in sorted(set(report.ks)))}", ""]
    header = columns(report)
    for segment in report.segments():
        lines.append(f"## {segment}")
        lines.append("")
        help_text = report.segment_help.get(segment) or SEGMENT_HELP.get(segment)
        if help_text:
            lines += [help_text + ".", ""]
        lines.append("| recommender | " + " | ".join(header) + " |")
        lines.append("|---|" + "---:|" * len(header))
        for name, result in report.results.items():
            metrics = result.get(segment, {})
            lines.append(f"| {_escape(name)} | " + " | ".join(_cell(metrics, c) for c in header) + " |")
        lines.append("")
    if report.comparisons:
        lines += ["## Differences", ""]
        paired = "Per test user, metric(first) - metric(second); the interval is a paired bootstrap of the mean."
        lines += [report.comparisons_help or paired, ""]
        lines.append(
            "| recommender | against | metric | difference | interval | better / worse / level users | verdict |"
        )
        lines.append("|---|---|---|---:|---|---:|---|")
        for c in report.comparisons:
            if "difference" in c:
                cells = [
                    f"{c['difference']:+.4f}",
                    f"{c['confidence']:.0%}: {c['low']:+.4f} .. {c['high']:+.4f}",
                    f"{c['better']} / {c['worse']} / {c['level']}" if "better" in c else MISSING,
                    str(c["verdict"]),
                ]
            else:  # no test user with a relevant item: nothing to compare
                cells = [MISSING] * 4
            names = f"| {_escape(str(c.get('first')))} | {_escape(str(c.get('second')))} | {c.get('metric')} | "
            lines.append(names + " | ".join(cells) + " |")
        lines.append("")
    for table in report.tables:
        lines += [f"## {table.title}", ""]
        lines += [table.text, ""] if table.text else []
        lines.append("| " + " | ".join(_escape(h) for h in table.header) + " |")
        lines.append("|" + "---|" * len(table.header))
        lines += ["| " + " | ".join(_escape(_format_value(cell)) for cell in row) + " |" for row in table.rows]
        lines.append("")
    if report.notes:
        lines += ["## Notes", ""]
        lines += [f"- {_escape(note)}" for note in report.notes]
        lines.append("")
    return "\n".join(lines)


def _plotted_segments(report: Report) -> list[str]:
    """Segments with at least one evaluated user for some recommender."""
    return [
        s for s in report.segments() if any(r.get(s, {}).get("users", 0) for r in report.results.values())
    ] or report.segments()[:1]


def write_png(report: Report, path: Path | str) -> Path:
    from matplotlib import rc_context
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    ks = sorted(set(report.ks))
    segments = _plotted_segments(report)
    rows = max(len(segments), 1)
    style = {"font.family": "DejaVu Sans", "font.size": 9, "axes.titlesize": 10}
    with rc_context(style):
        figure = Figure(figsize=(3.2 * len(FAMILIES), 2.8 * rows + 0.9), dpi=100, layout="constrained")
        FigureCanvasAgg(figure)
        axes = figure.subplots(rows, len(FAMILIES), squeeze=False)
        for row, segment in enumerate(segments):
            for col, family in enumerate(FAMILIES):
                ax = axes[row][col]
                for name, result in report.results.items():
                    metrics = result.get(segment, {})
                    points = [(k, metrics[f"{family}@{k}"]) for k in ks if f"{family}@{k}" in metrics]
                    if points:
                        xs, ys = zip(*points, strict=True)
                        ax.plot(xs, ys, marker="o", label=name)
                    else:  # keeps colours aligned with the legend
                        ax.plot([], [], marker="o", label=name)
                ax.set_title(f"{FAMILY_TITLES[family]} ({segment})")
                ax.set_xticks(ks)
                ax.set_xlabel("K")
                ax.set_ylim(bottom=0)
                ax.grid(True, alpha=0.3)
        handles, labels = axes[0][0].get_legend_handles_labels()
        if handles:
            figure.legend(handles, labels, loc="outside lower center", ncols=min(len(labels), 5))
        figure.suptitle(report.title)
        out = Path(path)
        figure.savefig(out, format="png", metadata={"Software": None})
    return out
