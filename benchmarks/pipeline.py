"""Pipeline benchmarks: `recsys run` (the real state machine under moto, real handlers) and the read floor.

Every run is a fresh `recsys run ... --json` subprocess (progress lines on stderr are kept: they carry each step's
duration) over a fresh file:// store; wall time from the process, peak RSS its own VmHWM (benchmarks/common.py).
Per-stage times: each progress line reports the step's duration and arrives when the step ends, so a step ran over
[arrival - duration, arrival]; a stage's wall time is the span of its steps (compute kinds run in parallel).
The floor is `pyarrow.json.read_json` of the same raw files in a fresh subprocess.
"""

from __future__ import annotations

import datetime as dt
import re
from pathlib import Path

from common import PYTHON, RECSYS, SURFACE, TENANT, Measured, fresh_dir, run_measured
from datasets import Dataset, dataset_key

STAGES = ("plan", "ingest", "validate", "compute", "quality", "publish")
_PROGRESS = re.compile(r"^\s*\[\s*([\d.]+)s\] ([a-z_]+)(?: ([^:]+?))?: (.*)$")

FLOOR_CODE = """
import json, sys, time
t0 = time.perf_counter()
import pyarrow.json as pj
t1 = time.perf_counter()
rows = 0
for path in sys.argv[1:]:
    rows += pj.read_json(path).num_rows
t2 = time.perf_counter()
print(json.dumps({"import_s": t1 - t0, "read_s": t2 - t1, "rows": rows}))
"""


def floor(files: list[Path], repeat: int = 3, address_space_limit: int | None = None) -> dict:
    """pyarrow.json.read_json of `files` (default options: threads, type inference), each time in a fresh process;
    the floor is the best of `repeat` runs (each figure's minimum: read time, process wall, peak RSS)."""
    runs = []
    for _ in range(repeat):
        measured = run_measured(
            [PYTHON, "-c", FLOOR_CODE, *map(str, files)], address_space_limit=address_space_limit
        ).check()
        runs.append((measured, measured.json()))
    return {
        "read_s": min(r["read_s"] for _, r in runs),
        "import_s": min(r["import_s"] for _, r in runs),
        "rows": runs[0][1]["rows"],
        "wall_s": min(m.wall for m, _ in runs),
        "peak_rss_mb": min(m.peak_rss_mb for m, _ in runs),
        "read_s_all": [r["read_s"] for _, r in runs],
        "peak_rss_mb_all": [m.peak_rss_mb for m, _ in runs],
        "bytes": sum(f.stat().st_size for f in files),
    }


def parse_progress(measured: Measured) -> dict:
    """Steps from the progress lines: [{function, label, seconds, start, end}] and per-stage spans."""
    steps = []
    for arrived, line in measured.stderr_lines:
        match = _PROGRESS.match(line)
        if not match:
            continue
        seconds, function, label, text = float(match.group(1)), match.group(2), match.group(3) or "", match.group(4)
        if text.startswith("failed") or label.endswith("failed"):
            continue
        steps.append(
            {"function": function, "label": label, "seconds": seconds, "start": arrived - seconds, "end": arrived}
        )
    stages = {}
    for stage in STAGES:
        mine = [s for s in steps if s["function"] == stage]
        if mine:
            stages[stage] = {
                "wall": max(s["end"] for s in mine) - min(s["start"] for s in mine),
                "sum": sum(s["seconds"] for s in mine),
                "steps": len(mine),
                "start": min(s["start"] for s in mine),
                "end": max(s["end"] for s in mine),
            }
    return {"steps": steps, "stages": stages}


def run_pipeline(
    dataset: Dataset,
    store: Path,
    start: dt.date | None,
    end: dt.date | None,
    *,
    fresh: bool = True,
    extra_env: dict[str, str] | None = None,
    kinds: list[str] | None = None,
    address_space_limit: int | None = None,
) -> dict:
    """`recsys run` over `dataset` into `store` (emptied first when `fresh`); measured and parsed."""
    if fresh:
        fresh_dir(store)
    argv = [
        RECSYS,
        "run",
        "--tenant",
        TENANT,
        "--surface",
        SURFACE,
        "--raw",
        str(dataset.raw),
        "--catalog",
        str(dataset.catalog),
        "--store",
        f"file://{store}",
        "--json",
    ]
    if start and end:
        argv += ["--start", start.isoformat(), "--end", end.isoformat()]
    if kinds:
        argv += ["--kinds", ",".join(kinds)]
    measured = run_measured(argv, env=extra_env, address_space_limit=address_space_limit).check()
    output = measured.json()
    progress = parse_progress(measured)
    stages = progress["stages"]
    events = output["validation"]["events"]
    ingested = sum(day["accepted"] for day in output["ingested"])
    spans = sum(stage["wall"] for stage in stages.values())
    first = min((s["start"] for s in stages.values()), default=0.0)
    last = max((s["end"] for s in stages.values()), default=measured.wall)
    return {
        "wall_s": measured.wall,
        "peak_rss_mb": measured.peak_rss_mb,
        "cpu_s": measured.user_cpu + measured.sys_cpu,
        "user_s": measured.user_cpu,
        "sys_s": measured.sys_cpu,
        "kinds": list(output["plan"]["kinds"]),
        "window_events": events,
        "ingested_events": ingested,
        "ingested_days": len(output["ingested"]),
        "window": f"{output['plan']['start']}..{output['plan']['end']}",
        "events_per_s": ingested / measured.wall if measured.wall else 0.0,
        "startup_s": first,  # process start -> first step begins (imports, moto deploy, plan dispatch)
        "teardown_s": measured.wall - last,  # last step ends -> process exits
        "orchestration_s": (last - first) - spans,  # between steps: the interpreter, polling
        "stages": {name: {k: v for k, v in s.items() if k in ("wall", "sum", "steps")} for name, s in stages.items()},
        "compute_kinds": {s["label"]: s["seconds"] for s in progress["steps"] if s["function"] == "compute"},
        "ingest_days": [s["seconds"] for s in progress["steps"] if s["function"] == "ingest"],
        "artifacts": {
            c["artifact"]["kind"]: {
                "rows": c["artifact"]["rows"],
                "bytes": c["artifact"]["bytes"],
                "written": c["written"],
                "partials_built": c["partials_built"],
                "partials_reused": c["partials_reused"],
                "window_sum": c.get("window_sum", ""),
            }
            for c in output["computed"]
        },
        "decision": output["published"]["decision"],
    }


def bench_size(dataset: Dataset, runs_dir: Path, address_space_limit: int | None = None) -> dict:
    """One day of `dataset`: the floor, then the full pipeline on a fresh store."""
    day = dataset.spec.day_list[0]
    files = [dataset.day_file(day)]
    read_floor = floor(files, address_space_limit=address_space_limit)
    try:
        run = run_pipeline(
            dataset,
            runs_dir / f"pipeline-{dataset_key(dataset.spec)}",
            day,
            day,
            address_space_limit=address_space_limit,
        )
    except RuntimeError as error:  # e.g. MemoryError under the address-space cap: report it with the floor
        return {
            "events": dataset.spec.events_per_day,
            "raw_mb": read_floor["bytes"] / 1e6,
            "floor": read_floor,
            "error": " ".join(str(error).split())[-600:],
            "limit_bytes": address_space_limit,
        }
    return {
        "events": dataset.spec.events_per_day,
        "raw_mb": read_floor["bytes"] / 1e6,
        "floor": read_floor,
        "run": run,
        "ratio_wall_to_read": run["wall_s"] / read_floor["read_s"],
        "ratio_wall_to_floor_process": run["wall_s"] / read_floor["wall_s"],
        "ratio_rss": run["peak_rss_mb"] / read_floor["peak_rss_mb"],
    }
