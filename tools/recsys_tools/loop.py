"""`make loop`: the feedback loop on a laptop, in one command.

1. The API (in process, the same service `recsys serve` runs) answers a recommendation for every user of the bundled
   sample and logs each served list to a local raw location (RECSYS_EXPOSURE_LOG).
2. Users react: each shown item is clicked with a probability that depends on whether it belongs to one of the
   user's planted taste groups (the sample's generator knows them), and the clicks are written as outcome events
   carrying the request id of the list they follow.
3. The daily pipeline (`recsys run`, the real state machine) ingests today's served lists and outcomes.
4. The signals moved: today's popularity ranks what users clicked; and the log-based evaluation of the served lists
   (CTR, NDCG of the logged lists) is printed when available.

Usage: python -m recsys_tools.loop [--store file://.out/demo] [--out .out/loop] [--seed 7]
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import random
import subprocess
import sys
from pathlib import Path

from recsys.publish.service import read_pointer
from recsys.serve.auth import Caller
from recsys.serve.models import RecommendRequest
from recsys.serve.observability import logger as api_logger
from recsys.serve.service import RecommendService
from recsys.serve.settings import ServeSettings
from recsys.store import open_store
from recsys.tables import from_parquet
from recsys_tools.synthetic import SyntheticSpec, build_world

# The bundled sample's generator settings (examples/sample/README.md): its users, items and taste groups.
SAMPLE = SyntheticSpec(seed=7, start=dt.date(2026, 1, 1), days=7, users=150, items=120, taste_groups=6)
CLICK_IN_TASTE, CLICK_OTHERWISE = 0.30, 0.03


def serve_and_log(store: str, raw: Path, k: int) -> dict[str, list[str]]:
    """Every sample user's list, served by the API service with the exposure log on; {request_id: items}."""
    settings = ServeSettings(RECSYS_STORE=store, RECSYS_EXPOSURE_LOG=raw.resolve().as_uri())
    service = RecommendService.from_settings(settings)
    caller = Caller(tenant="demo", roles=frozenset({"viewer"}), user_id="loop-demo", source="dev")
    world = build_world(SAMPLE)
    served = {}
    for user in world.user_ids:
        request_id = f"loop-{user}"
        request = RecommendRequest.model_validate({"surface": "home", "k": k, "user": {"user_id": user}})
        response = service.recommend(caller, request, request_id)
        served[request_id] = [item.item_id for item in response.items]
    assert service.exposures is not None and service.exposures.flush()
    return served


def react(served: dict[str, list[str]], raw: Path, day: dt.date, seed: int) -> int:
    """Clicks on the served lists, more often on items of the user's taste groups; returns how many."""
    world = build_world(SAMPLE)
    rng = random.Random(seed)
    lines = []
    for request_id, items in served.items():
        user = request_id.removeprefix("loop-")
        for rank, item in enumerate(items):
            liked = world.group_of(item) in world.preferred_groups(user)
            if rng.random() < (CLICK_IN_TASTE if liked else CLICK_OTHERWISE):
                lines.append({"v": 1, "ts": f"{day}T23:00:0{min(rank, 9)}Z", "tenant": "demo", "surface": "home",
                              "user_id": user, "session_id": f"s-{user}", "request_id": request_id, "item_id": item,
                              "event_type": "click", "event_id": f"{request_id}:click:{rank}"})  # fmt: skip
    path = raw / "demo" / "home" / f"dt={day}" / "outcomes.jsonl"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(json.dumps(line) + "\n" for line in lines))
    return len(lines)


def top_popularity(store: str, n: int = 5) -> list[tuple[str, float]]:
    opened = open_store(store)
    pointer = read_pointer(opened, "demo", "home")
    assert pointer is not None
    table = from_parquet(opened.get(opened.key_of(pointer.manifest.current["popularity"])).data)
    rows = sorted(zip(table.column("item_id").to_pylist(), table.column("score").to_pylist(), strict=True),
                  key=lambda row: -row[1])  # fmt: skip
    return [(item, round(score, 3)) for item, score in rows[:n]]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--store", default="file://.out/demo", help="the store `make demo` published (served from)")
    parser.add_argument("--out", type=Path, default=Path(".out/loop"), help="raw location and the next run's store")
    parser.add_argument("--k", type=int, default=5)
    parser.add_argument("--seed", type=int, default=7)
    args = parser.parse_args(argv)
    api_logger.setLevel("WARNING")  # the API's INFO lines (manifest loaded, ...) are not this demo's output
    today = dt.datetime.now(dt.UTC).date()
    raw, next_store = args.out / "raw", f"file://{args.out / 'store'}"

    served = serve_and_log(args.store, raw, args.k)
    shown = sum(len(items) for items in served.values())
    print(f"1. served {len(served)} lists ({shown} items) from {args.store}; logged to {raw}/demo/home/dt={today}/")
    clicks = react(served, raw, today, args.seed)
    print(f"2. users clicked {clicks} of them (CTR per shown item {clicks / max(shown, 1):.3f})")
    run = [sys.executable, "-m", "recsys_tools.cli", "run", "--tenant", "demo", "--surface", "home",
           "--start", str(today), "--end", str(today), "--raw", str(raw / "{tenant}" / "{surface}"),
           "--store", next_store, "--kinds", "popularity,cooc,implicit", "--quiet"]  # fmt: skip
    subprocess.run(run, check=True, stdout=subprocess.DEVNULL)
    print(f"3. `recsys run` ingested today's lists and clicks into {next_store}")
    print("4. popularity before (the week served):", top_popularity(args.store))
    print("   popularity after (what was served and clicked today):", top_popularity(next_store))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
