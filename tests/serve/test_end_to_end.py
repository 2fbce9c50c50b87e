"""Raw events -> the real state machine -> the API: a known user gets the items the data plants for them."""

from __future__ import annotations

from pathlib import Path

from fastapi.testclient import TestClient

from recsys.serve.app import create_app
from recsys.serve.auth import AuthSettings
from recsys.serve.settings import ServeSettings
from recsys.store import FileSystemStore
from recsys_tools.local.runner import LocalPipeline
from tests.conftest import event, jsonl


def session(user: str, sid: str, *items: str, hour: int = 8) -> list[dict]:
    return [
        event(tenant="shop", ts=f"2026-02-01T{hour:02d}:{n:02d}:00Z", session_id=sid, user_id=user, item_id=item)
        for n, item in enumerate(items)
    ]


def serve(events: list[dict], tmp_path: Path) -> tuple[TestClient, dict]:
    """One day of `events` through the real state machine (every kind but content_sim), then the API over it;
    with the run's output."""
    raw = tmp_path / "raw" / "dt=2026-02-01" / "events.jsonl"
    raw.parent.mkdir(parents=True)
    raw.write_bytes(jsonl(*events))
    store = FileSystemStore(tmp_path / "store")
    with LocalPipeline({"RECSYS_STORE": store.uri}) as pipeline:
        run = pipeline.run(
            {
                "tenant": "shop",
                "surface": "home",
                "start": "2026-02-01",
                "end": "2026-02-01",
                "raw": str(tmp_path / "raw"),
                "kinds": ["popularity", "cooc", "implicit", "session_seq", "item_knn"],
            }
        )
    assert run.status == "SUCCEEDED", run.message
    app = create_app(ServeSettings(RECSYS_STORE=store.uri), AuthSettings(DEV_AUTH_ENABLED=True))
    return TestClient(app), run.output


def test_pipeline_output_serves_the_planted_recommendations(tmp_path: Path) -> None:
    events = []
    for n in range(4):  # shoe is followed by sock in 4 sessions ...
        events += session(f"u{n}", f"a{n}", "shoe", "sock")
    for n in range(2):  # ... and by lace in 2
        events += session(f"v{n}", f"b{n}", "shoe", "lace")
    for n in range(10):  # hat is the most popular item, always alone
        events += session(f"w{n}", f"c{n}", "hat", hour=9)
    events += session("alice", "z1", "shoe", hour=10)
    client, output = serve(events, tmp_path)
    headers = {"X-Dev-Org-Id": "shop"}
    alice = client.post(
        "/v1/recommend",
        headers=headers,
        json={"surface": "home", "k": 3, "user": {"user_id": "alice"}, "options": {"include_reasons": True}},
    ).json()
    # alice saw shoe. Default weights pop .002, cooc .125, session .125, knn 1 (one anchor: the means are its values);
    # cooc is a shrunk cosine, count / (sqrt(sessions * sessions) + 5):
    #   sock: pop 4/10, cooc 4/(sqrt(7*4)+5) = .3887, next share 4/6, knn 4/(sqrt(7*4)+10) = .2616 -> 1 (the top)
    #         = .0008 + .0486 + .0833 + 1 = 1.133
    #   lace: pop 2/10, cooc 2/(sqrt(7*2)+5) = .2288, next share 2/6, knn 2/(sqrt(7*2)+10) = .1455 -> .556
    #         = .0004 + .0286 + .0417 + .556 = .627
    #   hat:  popularity only, 1 x .002 = .002; shoe itself is excluded as already seen.
    assert [item["item_id"] for item in alice["items"]] == ["sock", "lace", "hat"]
    assert [round(item["score"], 3) for item in alice["items"]] == [1.133, 0.627, 0.002]
    assert alice["items"][0]["reasons"] == [
        "recent_popularity",
        "co_visitation",
        "session_sequence",
        "collaborative_similarity",
    ]
    assert alice["meta"]["manifest_version"] == output["published"]["manifest_version"]
    cold = client.post(
        "/v1/recommend", headers=headers, json={"surface": "home", "k": 1, "user": {"user_id": "new"}}
    ).json()
    assert [item["item_id"] for item in cold["items"]] == ["hat"]
    similar = client.post("/v1/similar", headers=headers, json={"surface": "home", "item_id": "shoe", "k": 2}).json()
    assert [item["item_id"] for item in similar["items"]] == ["sock", "lace"]


def test_a_1000_item_history_gets_no_item_back_it_already_saw(tmp_path: Path) -> None:
    # bob saw 1,000 items (every one also seen by others, so each has neighbours and popularity); the recommend
    # API must exclude all of them, whatever the length of the history (the implicit row is the seen set).
    events = []
    for n in range(1000):
        events.append(
            event(
                tenant="shop",
                ts=f"2026-02-01T{n // 60 % 24:02d}:{n % 60:02d}:00Z",
                session_id="bob-day",
                user_id="bob",
                item_id=f"i{n:04d}",
            )
        )
    for n in range(0, 1000, 10):  # other users pair some seen items with new ones, each new item the most popular
        for copy in range(3):
            events += session(f"o{n}-{copy}", f"o{n}-{copy}", f"i{n:04d}", f"new{n}", hour=20)
    client, _ = serve(events, tmp_path)
    body = {"surface": "home", "k": 100, "user": {"user_id": "bob"}}
    response = client.post("/v1/recommend", headers={"X-Dev-Org-Id": "shop"}, json=body).json()
    items = [item["item_id"] for item in response["items"]]
    assert len(items) == 100 and all(item.startswith("new") for item in items), response
