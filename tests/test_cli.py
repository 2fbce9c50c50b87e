"""`recsys` end to end as a user runs it: a subprocess, real files, exit codes, one-line errors."""

from __future__ import annotations

import datetime as dt
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from recsys_tools import cli
from tests.conftest import ROOT, SAMPLE_CATALOG, SAMPLE_RAW, event, jsonl

pytestmark = pytest.mark.slow  # `recsys` as a subprocess, end to end: in `make test`, not in `make unit`


def recsys(*args: str, cwd: Path = ROOT) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "recsys_tools.cli", *args], cwd=cwd, capture_output=True, text=True, timeout=300
    )


def scoped(store: str, *args: str) -> list[str]:
    return [*args, "--tenant", "demo", "--surface", "home", "--store", store]


def run_sample(store: str, start: str, end: str, *extra: str) -> subprocess.CompletedProcess:
    """`recsys run` over the bundled sample data."""
    return recsys(
        *scoped(
            store,
            "run",
            "--start",
            start,
            "--end",
            end,
            "--raw",
            str(SAMPLE_RAW),
            "--catalog",
            str(SAMPLE_CATALOG),
            *extra,
        )
    )


def test_run_show_history_rollback(tmp_path: Path) -> None:
    store = f"file://{tmp_path / 'store'}"
    first = run_sample(store, "2026-01-01", "2026-01-03")
    assert first.returncode == 0, first.stderr
    assert "ingest 2026-01-01: 492 accepted, 0 duplicates, 1 quarantined (malformed_json 1)" in first.stderr
    assert "manifest " in first.stdout and "pointer moved" in first.stdout
    for kind in ("popularity", "cooc", "implicit", "content_sim", "session_seq", "item_knn"):
        assert kind in first.stdout

    second = run_sample(store, "2026-01-01", "2026-01-07", "--quiet", "--json")
    assert second.returncode == 0 and second.stderr == ""
    assert json.loads(second.stdout)["published"]["decision"] == "moved"

    shown = recsys(*scoped(store, "manifest", "show"))
    manifest = json.loads(shown.stdout)
    assert manifest["v"] == 1 and manifest["window"] == {"start": "2026-01-01", "end": "2026-01-07"}

    listed = recsys(*scoped(store, "manifest", "history"))
    lines = listed.stdout.splitlines()
    assert len(lines) == 3 and lines[1].endswith("<- current") and "2026-01-01..2026-01-07" in lines[1]

    rolled = recsys(*scoped(store, "rollback"))
    assert rolled.returncode == 0 and "rolled back demo/home" in rolled.stdout
    assert json.loads(recsys(*scoped(store, "manifest", "show")).stdout)["window"]["end"] == "2026-01-03"


def test_exit_codes_and_one_line_errors(tmp_path: Path) -> None:
    store = f"file://{tmp_path / 'store'}"
    usage = recsys("run", "--tenant", "demo")
    assert usage.returncode == 2 and usage.stderr.count("\n") == 1 and "required" in usage.stderr
    bad_day = recsys(*scoped(store, "run", "--start", "2026-02-30", "--end", "2026-03-01"))
    assert bad_day.returncode == 2 and "invalid day '2026-02-30'" in bad_day.stderr
    one_sided = recsys(*scoped(store, "run", "--start", "2026-01-01", "--raw", str(SAMPLE_RAW)))
    assert one_sided.returncode == 2 and "give both start and end" in one_sided.stderr
    missing = recsys(*scoped(store, "manifest", "show"))
    assert missing.returncode == 1 and missing.stderr.startswith("recsys: no current manifest for demo/home")

    raw = tmp_path / "raw" / "dt=2026-01-01" / "events.jsonl"
    raw.parent.mkdir(parents=True)
    raw.write_bytes(jsonl(event(), *["{broken"] * 3))
    failed = recsys(
        *scoped(
            store,
            "run",
            "--start",
            "2026-01-01",
            "--end",
            "2026-01-01",
            "--raw",
            str(tmp_path / "raw"),
            "--kinds",
            "popularity",
            "--quiet",
        )
    )
    assert failed.returncode == 1
    assert failed.stderr.startswith(
        "recsys: run failed: GateFailed: 1 gate(s) failed: error_budget: 2026-01-01: quarantined 3 of 4 lines (75.00%)"
    )
    assert "Traceback" not in failed.stderr and failed.stderr.count("\n") == 1


def test_recommend_similar_batch_and_serve(tmp_path: Path) -> None:
    import socket
    import time
    import urllib.error
    import urllib.request

    store = f"file://{tmp_path / 'store'}"
    built = run_sample(store, "2026-01-01", "2026-01-07", "--quiet")
    assert built.returncode == 0, built.stderr
    one = recsys(*scoped(store, "recommend", "--user", "u00008", "--k", "3"))
    single = json.loads(one.stdout)
    assert one.returncode == 0 and len(single["items"]) == 3 and single["meta"]["tenant_id"] == "demo"
    similar = json.loads(recsys(*scoped(store, "similar", "--item", "i00042", "--k", "2")).stdout)
    assert len(similar["items"]) == 2
    (tmp_path / "users.txt").write_text("u00008\nnobody\n")
    batch = recsys(
        *scoped(
            store, "recommend", "--users", str(tmp_path / "users.txt"), "--out", str(tmp_path / "out.jsonl"), "--k", "3"
        )
    )
    lines = [json.loads(line) for line in (tmp_path / "out.jsonl").read_text().splitlines()]
    assert batch.returncode == 0 and [line["user_id"] for line in lines] == ["u00008", "nobody"]
    assert lines[0]["items"] == single["items"]
    bad = recsys(*scoped(store, "recommend", "--user", "u", "--k", "500"))
    assert bad.returncode == 2 and "k must be between 1 and 200" in bad.stderr

    with socket.socket() as probe:  # a free loopback port
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    server = subprocess.Popen(
        [sys.executable, "-m", "recsys_tools.cli", "serve", "--store", store, "--port", str(port)],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=1) as response:
                    assert json.load(response) == {"status": "healthy"}
                    break
            except OSError:
                assert time.monotonic() < deadline, "recsys serve did not start"
                time.sleep(0.2)
        request = urllib.request.Request(
            f"http://127.0.0.1:{port}/v1/recommend",
            method="POST",
            data=json.dumps({"surface": "home", "k": 3, "user": {"user_id": "u00008"}}).encode(),
            headers={"Content-Type": "application/json", "X-Dev-Org-Id": "demo"},
        )
        with urllib.request.urlopen(request, timeout=10) as response:
            assert json.load(response)["items"] == single["items"]
        admin = urllib.request.Request(  # dev callers hold no role: admin routes need role checks blanked
            f"http://127.0.0.1:{port}/v1/admin/tenants/demo/config",
            method="PUT",
            data=json.dumps({"weights": {"pop": 1}}).encode(),
            headers={"Content-Type": "application/json", "X-Dev-Org-Id": "demo"},
        )
        with pytest.raises(urllib.error.HTTPError) as refused:
            urllib.request.urlopen(admin, timeout=10)
        assert refused.value.code == 403 and json.load(refused.value)["code"] == "RECSYS_FORBIDDEN"
    finally:
        server.terminate()
        server.wait(timeout=10)


def test_a_reader_that_leaves_early_is_not_an_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    # `recsys manifest history --json | head -1`: the pipe closes before recsys is done writing.
    read_end, write_end = os.pipe()
    os.close(read_end)
    closed = os.fdopen(write_end, "w", buffering=1)
    monkeypatch.setattr(sys, "stdout", closed)
    try:
        code = cli.main(scoped(f"file://{tmp_path}", "manifest", "history", "--json"))
    finally:
        monkeypatch.undo()
        closed.close()
    assert code == 0
    assert capsys.readouterr().err == ""


def test_eval_on_a_real_session_dataset_and_its_usage_errors(tmp_path: Path) -> None:
    import gzip

    data = tmp_path / "sessions"
    data.mkdir()
    # two items that always follow each other in train; the test sessions replay a -> b
    day = 1_396_310_400  # 2014-04-01 00:00 UTC
    train = [f"{s}\t{item}\t{day + 3600 * (s % 20) + n}" for s in range(1, 40) for n, item in enumerate(("a", "b"))]
    test = [
        f"{s}\t{item}\t{day + 86_400 * 2 + s * 10 + n}" for s in range(100, 105) for n, item in enumerate(("a", "b"))
    ]
    for name, rows in (("train.tsv.gz", train), ("valid.tsv.gz", test)):
        with gzip.open(data / name, "wt") as out:
            out.write("SessionId\tItemId\tTime\n" + "\n".join(rows) + "\n")
    work, out = tmp_path / "work", tmp_path / "report"
    done = recsys(
        "eval", "--protocol", "sessions", "--data", str(data), "--split", "test", "--work", str(work), "--out", str(out)
    )
    assert done.returncode == 0, done.stderr
    report = json.loads((out / "report.json").read_text())
    assert report["results"]["recsys (blend)"]["new-target"]["hit_rate@20"] == 1.0  # b always follows a
    assert report["dataset"]["positions"] == 5

    no_raw = recsys("eval")
    assert no_raw.returncode == 2 and "--raw is required" in no_raw.stderr
    no_data = recsys("eval", "--protocol", "holdout")
    assert no_data.returncode == 2 and "--data is required" in no_data.stderr


def test_freshness_reports_each_target_and_fails_on_a_missing_one(tmp_path, capsys) -> None:
    from recsys.days import Window
    from recsys.publish.service import publish
    from recsys.settings import Settings
    from recsys.store import FileSystemStore
    from recsys_tools.cli import main
    from tests.conftest import run_steps

    store = FileSystemStore(tmp_path / "store")
    settings = Settings(store=store.uri, raw_uri=str(SAMPLE_RAW), catalog_uri=str(SAMPLE_CATALOG))
    window = Window(start=dt.date(2026, 1, 1), end=dt.date(2026, 1, 3))
    publish(store, "demo", "home", window, run_steps(settings, "2026-01-01", "2026-01-03", ["popularity"]))
    assert main(["freshness", "--store", store.uri, "--targets", "demo/home"]) == 0
    assert "demo/home" in capsys.readouterr().out
    assert main(["freshness", "--store", store.uri, "--targets", "demo/home,acme/shop", "--json"]) == 1
    result = json.loads(capsys.readouterr().out)
    assert (result["missing"], result["stale"]) == (1, 0)
    assert main(["freshness", "--store", store.uri, "--slo-hours", "0.000001"]) == 1  # everything is stale
    assert "1 stale" in capsys.readouterr().out
    assert main(["freshness", "--store", store.uri, "--targets", "nope"]) == 2


ROLE_NAMES = ("AUTH_VIEWER_ROLE", "AUTH_OPERATOR_ROLE", "AUTH_ADMIN_ROLE")


@pytest.mark.parametrize(
    ("environment", "status"),
    [({}, 403), ({"AUTH_OPERATOR_ROLE": "operator"}, 403), (dict.fromkeys(ROLE_NAMES, ""), 200)],
)
def test_serve_dev_callers_need_an_explicit_grant_for_admin_routes(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, environment: dict[str, str], status: int
) -> None:
    """As serve-locally.md says: the dev identity holds no role; only blanking the role names opens the admin routes."""
    import uvicorn
    from fastapi.testclient import TestClient

    for name in ROLE_NAMES:
        monkeypatch.delenv(name, raising=False)
    for name, value in environment.items():
        monkeypatch.setenv(name, value)
    served: list = []
    monkeypatch.setattr(uvicorn, "run", lambda app, **_: served.append(app))
    assert cli.main(["serve", "--store", f"file://{tmp_path / 'store'}"]) == 0
    client = TestClient(served[0])
    put = client.put("/v1/admin/tenants/demo/config", json={"weights": {"pop": 1}}, headers={"X-Dev-Org-Id": "demo"})
    assert put.status_code == status, put.text
