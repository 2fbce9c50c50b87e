"""Every function event of events/ through its function, in the order events/README.md gives, after a pipeline run
of the sample: each answer summarised in one line, any error (or an API answer other than 200) a failure.

`call(function, event)` is how the function runs: Lambda's Invoke API of `sam local start-lambda` (smoke.py).
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

Call = Callable[[str, dict], tuple[Any, bool]]


def _short(version: str | None) -> str:
    return (version or "-")[:16]


def _api(payload: dict) -> str:
    body = payload.get("body") or ""
    return f"HTTP {payload.get('statusCode')} {body[:80]}"


class _Walk:
    def __init__(self, call: Call, events: Path, record: Callable[[dict], None]) -> None:
        self.call, self.events, self.record = call, events, record
        self.results: list[dict] = []

    def __call__(self, name: str, function: str, summarise: Callable[[Any], str], **changes: Any) -> Any:
        """Invoke `function` with events/`name` (its fields in `changes` replaced); record, and raise on failure."""
        event = json.loads((self.events / name).read_text()) | changes
        label = name + "".join(f" {k}={v}" if isinstance(v, str) else f" ({k} changed)" for k, v in changes.items())
        started = time.perf_counter()
        payload, failed = self.call(function, event)
        result = {"event": label, "function": function, "seconds": round(time.perf_counter() - started, 2)}
        if failed:
            result |= {"ok": False, "summary": f"{payload.get('errorType')}: {payload.get('errorMessage')}"}
        elif function == "RecommendFunction" and payload.get("statusCode") != 200:
            result |= {"ok": False, "summary": _api(payload)}
        else:
            try:
                result |= {"ok": True, "summary": summarise(payload), "answer": payload}
            except (KeyError, TypeError, IndexError):  # not the answer this function gives
                result |= {"ok": False, "summary": f"unexpected answer: {json.dumps(payload)[:300]}"}
        self.record(result)
        self.results.append(result)
        if not result["ok"]:
            raise RuntimeError(f"{label} through {function}: {result['summary']}")
        return payload


def walk(call: Call, events: Path, record: Callable[[dict], None]) -> list[dict]:
    """On empty buckets holding the sample, as tests/test_events.py runs the handlers in-process: plan, each day
    ingested, validate, a partial, each kind computed, the quality gate, publish (first with its first artifact
    only, so that rollback.json has a version to go back to), release, the API, rollback, freshness and gc."""
    run = _Walk(call, events, record)
    plan = run("plan.json", "PlanFunction", lambda r: f"run {r['run_id']}, days {r['days'][0]}..{r['days'][-1]}")
    for day in plan["days"]:
        run(
            "ingest.json",
            "IngestFunction",
            lambda r: f"{r['accepted']} accepted, {r['quarantined']} quarantined {r['reasons']}",
            day=day,
        )
    run("validate.json", "ValidateFunction", lambda r: f"passed {r['passed']}")
    run("partials.json", "PartialsFunction", lambda r: f"{r['kind']} {r['day']}: built {r['built']}")
    quality = json.loads((events / "quality.json").read_text())
    for kind in quality["kinds"]:
        run(
            "compute.json",
            "ComputeFunction",
            lambda r: f"{_short(r['artifact']['version'])}, {r['artifact']['rows']} rows",
            kind=kind,
        )
    run("quality.json", "QualityGateFunction", lambda r: f"passed {r.get('passed')}: {r.get('reason', '')}"[:100])
    publish = json.loads((events / "publish.json").read_text())
    published = lambda r: f"{r['decision']} {_short(r['manifest_version'])}"  # noqa: E731
    run("publish.json", "PublishFunction", published, artifacts=publish["artifacts"][:1])
    run("publish.json", "PublishFunction", published)
    run("release.json", "ReleaseFunction", lambda r: f"released {r['released']}")
    for name in ("api-healthz.json", "api-recommend.json", "api-similar.json", "api-admin-config.json"):
        run(name, "RecommendFunction", _api)
    run(
        "rollback.json",
        "RollbackFunction",
        lambda r: f"{_short(r['rolled_back_from'])} -> {_short(r['rolled_back_to'])}",
    )
    run(
        "freshness.json",
        "FreshnessFunction",
        lambda r: f"{len(r['targets'])} target(s): {r['stale']} stale, {r['missing']} missing",
    )
    run("gc.json", "GcFunction", lambda r: f"{sum(len(x['deleted']) for x in r['reports'])} objects deleted")
    return run.results
