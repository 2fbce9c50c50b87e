"""Behaviour snapshot for refactors: the artifacts the pipeline builds and the API's answers to recorded requests.

    python benchmarks/equivalence.py record .out/equivalence   # before the change: inputs, artifacts, answers
    python benchmarks/equivalence.py check .out/equivalence    # after it: the same, byte for byte

`record` writes the inputs once (the bundled sample, and a 30-day synthetic window generated with a fixed seed), so
`check` needs only the two user-facing entry points, which a refactor keeps: `recsys run` and `recsys serve` over
HTTP. It compares the SHA-256 of every artifact file each run publishes, the manifest versions, and the status and
body of every request (5,000 by default: recommend with known and unknown users, sessions, anchors, constraints,
explain and invalid bodies; similar; validate), with the per-request fields (`request_id`, timings) left out.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import random
import shutil
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
RECSYS = [sys.executable, "-m", "recsys_tools.cli"]
SAMPLE = {"tenant": "demo", "surface": "home", "start": "2026-01-01", "end": "2026-01-07"}
SYNTHETIC = {"tenant": "synth", "surface": "home", "start": "2026-02-01", "end": "2026-03-02"}
VOLATILE = ("request_id", "took_ms", "latency_ms", "generated_at", "served_at", "timings")


def _generate_inputs(inputs: Path) -> None:
    shutil.copytree(ROOT / "examples" / "sample", inputs / "sample")
    subprocess.run(
        [
            sys.executable,
            "-m",
            "recsys_tools.synthetic",
            "--out",
            str(inputs / "synthetic" / "raw"),
            "--catalog",
            str(inputs / "synthetic" / "catalog.csv"),
            "--seed",
            "7",
            "--tenant",
            SYNTHETIC["tenant"],
            "--surface",
            SYNTHETIC["surface"],
            "--start",
            SYNTHETIC["start"],
            "--days",
            "30",
            "--users",
            "2000",
            "--items",
            "1500",
            "--malformed",
            "20",
        ],  # fmt: skip
        check=True,
        cwd=ROOT,
        stdout=subprocess.DEVNULL,
    )


def _run(store: Path, raw: Path, catalog: Path, window: dict) -> dict:
    completed = subprocess.run(
        [
            *RECSYS,
            "run",
            "--tenant",
            window["tenant"],
            "--surface",
            window["surface"],
            "--start",
            window["start"],
            "--end",
            window["end"],
            "--raw",
            str(raw),
            "--catalog",
            str(catalog),
            "--store",
            str(store),
            "--quiet",
            "--json",
        ],  # fmt: skip
        check=True,
        cwd=ROOT,
        capture_output=True,
        text=True,
    )
    output = json.loads(completed.stdout)
    artifacts = {}
    for computed in output["computed"]:
        ref = computed["artifact"]
        path = Path(ref["uri"].removeprefix("file://"))
        artifacts[ref["kind"]] = {"version": ref["version"], "sha256": hashlib.sha256(path.read_bytes()).hexdigest()}
    return {"manifest_version": output["published"]["manifest_version"], "artifacts": artifacts}


def _requests(count: int, seed: int) -> list[dict]:
    """Requests over both tenants; user and item ids as the sample (u00001, i00001) and the generator name them."""
    rng = random.Random(seed)
    requests = []
    for n in range(count):
        tenant, users, items = rng.choice([("demo", 60, 120), ("synth", 2000, 1500)])
        user = f"u{rng.randrange(int(users * 1.1)):05d}"  # some unknown
        anchors = [f"i{rng.randrange(items):05d}" for _ in range(rng.choice([0, 0, 1, 3]))]
        kind = rng.random()
        if kind < 0.70:
            body: dict = {"surface": "home", "k": rng.choice([5, 10, 20, 50]), "user": {}}
            who = rng.random()
            if who < 0.6:
                body["user"]["user_id"] = user
            elif who < 0.8:
                body["user"]["session_id"] = f"s-{rng.randrange(5000)}"
            else:
                body["user"]["anonymous_id"] = f"a-{rng.randrange(5000)}"
            if anchors:
                body["anchors"] = {"item_ids": anchors}
            if rng.random() < 0.15:
                body["candidates"] = {"exclude_ids": [f"i{rng.randrange(items):05d}" for _ in range(5)]}
            if rng.random() < 0.1:
                body["constraints"] = {"max_per_tag": {"category:toys": 2}, "forbidden_tags": ["category:kitchen"]}
            if rng.random() < 0.1:
                body["options"] = {"include_reasons": True}
            if rng.random() < 0.2:
                body["options"] = {"explain": rng.choice(["summary", "full", "none"])}
            if rng.random() < 0.1:
                body["context"] = {"now": "2026-03-03T12:00:00Z"}
            if rng.random() < 0.05:
                body["weights"] = {"pop": rng.random(), "cooc": rng.random(), "knn": rng.random()}
            path = "/v1/recommend" if rng.random() < 0.95 else "/v1/recommend/validate"
        elif kind < 0.90:
            body = {"surface": "home", "item_id": f"i{rng.randrange(items):05d}", "k": rng.choice([5, 10])}
            path = "/v1/similar"
        else:  # invalid on purpose: problems must stay the same too
            body = rng.choice([{"surface": "home"}, {"surface": "../x", "user": {"user_id": user}}, {"k": 0}])
            path = "/v1/recommend"
        requests.append({"n": n, "tenant": tenant, "path": path, "body": body})
    return requests


def _scrub(value):
    if isinstance(value, dict):
        return {key: _scrub(item) for key, item in value.items() if key not in VOLATILE}
    if isinstance(value, list):
        return [_scrub(item) for item in value]
    return value


def _serve(store: Path) -> tuple[subprocess.Popen, str]:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    server = subprocess.Popen(
        [*RECSYS, "serve", "--store", str(store), "--port", str(port)],
        cwd=ROOT,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    base = f"http://127.0.0.1:{port}"
    for _ in range(200):
        try:
            urllib.request.urlopen(f"{base}/healthz", timeout=1).read()
            return server, base
        except (urllib.error.URLError, ConnectionError):
            time.sleep(0.1)
    server.kill()
    raise RuntimeError("recsys serve did not start")


def _answers(store: Path, requests: list[dict]) -> list[dict]:
    server, base = _serve(store)
    try:
        answers = []
        for request in requests:
            http = urllib.request.Request(
                base + request["path"],
                data=json.dumps(request["body"]).encode(),
                headers={"Content-Type": "application/json", "X-Dev-Org-Id": request["tenant"]},
                method="POST",
            )
            try:
                with urllib.request.urlopen(http, timeout=30) as response:
                    status, body = response.status, response.read()
            except urllib.error.HTTPError as error:
                status, body = error.code, error.read()
            answers.append({"n": request["n"], "status": status, "body": _scrub(json.loads(body))})
        return answers
    finally:
        server.terminate()
        server.wait(timeout=30)


def snapshot(folder: Path, count: int) -> dict:
    inputs = folder / "inputs"
    if not inputs.exists():
        _generate_inputs(inputs)
    work = folder / "work"
    shutil.rmtree(work, ignore_errors=True)
    store = work / "store"  # one store, both tenants: the server answers for both
    runs = {
        "sample": _run(store, inputs / "sample" / "raw", inputs / "sample" / "catalog.csv", SAMPLE),
        "synthetic": _run(store, inputs / "synthetic" / "raw", inputs / "synthetic" / "catalog.csv", SYNTHETIC),
    }
    requests = _requests(count, seed=20261204)
    return {"runs": runs, "requests": requests, "answers": _answers(store, requests)}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("action", choices=["record", "check"])
    parser.add_argument("folder", type=Path)
    parser.add_argument("--requests", type=int, default=5000)
    args = parser.parse_args()
    args.folder.mkdir(parents=True, exist_ok=True)
    baseline_path = args.folder / "baseline.json"
    if args.action == "record":
        shutil.rmtree(args.folder / "inputs", ignore_errors=True)
    now = snapshot(args.folder, args.requests)
    if args.action == "record":
        baseline_path.write_text(json.dumps(now, indent=1, sort_keys=True))
        print(f"recorded {len(now['answers'])} answers and {len(now['runs'])} runs in {baseline_path}")
        return 0
    baseline = json.loads(baseline_path.read_text())
    problems = [
        f"{name}: {baseline['runs'][name]} != {run}"
        for name, run in now["runs"].items()
        if run != baseline["runs"][name]
    ]
    differing = [(old, new) for old, new in zip(baseline["answers"], now["answers"], strict=True) if old != new]
    for old, new in differing[:5]:
        request = baseline["requests"][old["n"]]
        problems.append(f"request {old['n']} {request}:\n  before {old}\n  now    {new}")
    statuses: dict[int, int] = {}
    for answer in now["answers"]:
        statuses[answer["status"]] = statuses.get(answer["status"], 0) + 1
    print(f"{len(now['answers'])} answers (by status {dict(sorted(statuses.items()))}), "
          f"{len(differing)} differ; runs {'identical' if not problems[: len(now['runs'])] else 'DIFFER'}")  # fmt: skip
    for problem in problems:
        print(problem)
    return 1 if problems else 0


if __name__ == "__main__":
    raise SystemExit(main())
