"""The operator console (/console): the overview of a surface, comparing and rolling back versions with the admin
API's roles and tenant scope, and the recommendation playground, through the app's HTTP interface."""

from __future__ import annotations

import datetime as dt
import re

from fastapi.testclient import TestClient

from recsys import paths
from recsys.contract.quality import QualityResult
from recsys.contract.report import Report
from recsys.days import Window
from recsys.publish.service import publish, read_pointer, rollback
from recsys.serve.app import create_app
from recsys.serve.auth import AuthSettings, Caller
from recsys.serve.console import overview as views
from recsys.serve.models import RecommendRequest
from recsys.serve.settings import ServeSettings
from recsys.store import FileSystemStore
from tests.conftest import run_steps
from tests.serve.conftest import CONSOLE_KINDS as KINDS


def console(store: FileSystemStore, *, on: bool = True, dev: bool = True) -> TestClient:
    app = create_app(ServeSettings(RECSYS_STORE=store.uri, RECSYS_CONSOLE=on), AuthSettings(DEV_AUTH_ENABLED=dev))
    return TestClient(app)


def sign_in(client: TestClient, role: str, tenant: str = "demo") -> None:
    response = client.post(
        "/console/login", data={"tenant": tenant, "user": f"{role}@example.com", "role": role}, follow_redirects=False
    )
    assert response.status_code == 303 and response.headers["location"] == "/console/"


def csrf_of(page: str) -> str:
    return re.search(r'name="csrf" value="([^"]+)"', page).group(1)


def test_the_console_is_off_unless_asked(store: FileSystemStore, published: list[str]) -> None:
    assert console(store, on=False).get("/console/").status_code == 404


def test_a_viewer_sees_the_overview_but_may_not_roll_back(store: FileSystemStore, published: list[str]) -> None:
    older, newer = published
    client = console(store)
    assert client.get("/console/", follow_redirects=False).headers["location"] == "/console/login"
    sign_in(client, "viewer")
    home = client.get("/console/")
    assert home.status_code == 200 and 'href="/console/demo/home"' in home.text

    page = client.get("/console/demo/home")
    assert page.status_code == 200
    assert f'<code id="current-version">{newer[:16]}</code>' in page.text
    assert "2026-01-02 .. 2026-01-04" in page.text  # the current window
    for kind in KINDS:
        assert f"<td>{kind}</td>" in page.text
    assert "Versions (2 stored)" in page.text
    assert f"compare?before={older}&amp;after={newer}" in page.text
    assert "roll back to this" not in page.text  # a viewer is not offered the action
    assert page.text.count("<td>2026-01-0") >= 3  # the window's ingest reports

    refused = client.get(f"/console/demo/home/rollback?to={older}")
    assert refused.status_code == 403 and "RECSYS_FORBIDDEN" in refused.text
    posted = client.post("/console/demo/home/rollback", data={"to": older, "from": newer, "csrf": "x"})
    assert posted.status_code == 403
    assert read_pointer(store, "demo", "home").manifest.manifest_version == newer


def test_an_operator_rolls_back_after_confirming_and_the_pointer_moves(
    store: FileSystemStore, published: list[str]
) -> None:
    older, newer = published
    client = console(store)

    def served() -> str:
        body = {"surface": "home", "k": 3, "user": {"user_id": "u1"}}
        return client.post("/v1/recommend", json=body, headers={"X-Dev-Org-Id": "demo"}).json()["meta"][
            "manifest_version"
        ]

    assert served() == newer  # and cached, for the manifest TTL
    sign_in(client, "operator")
    assert f"/console/demo/home/rollback?to={older}" in client.get("/console/demo/home").text
    confirm = client.get(f"/console/demo/home/rollback?to={older}")
    assert confirm.status_code == 200 and "Roll back demo/home?" in confirm.text
    assert f'name="from" value="{newer}"' in confirm.text

    # A form without the cookie's token is not the console's.
    stale = client.post("/console/demo/home/rollback", data={"to": older, "from": newer, "csrf": "forged"})
    assert stale.status_code == 403 and "RECSYS_CONSOLE_CSRF" in stale.text

    done = client.post(
        "/console/demo/home/rollback",
        data={"to": older, "from": newer, "csrf": csrf_of(confirm.text)},
        follow_redirects=False,
    )
    assert done.status_code == 303 and done.headers["location"].startswith("/console/demo/home?done=")
    assert read_pointer(store, "demo", "home").manifest.manifest_version == older
    page = client.get(done.headers["location"]).text
    assert f'<code id="current-version">{older[:16]}</code>' in page and "Done: rolled back to" in page
    assert served() == older  # at once: this instance dropped its cached manifest
    # Audited, with who and from what to what.
    audit = client.get("/v1/admin/tenants/demo/audit", headers={"X-Dev-Org-Id": "demo", "X-Dev-Roles": "operator"})
    (entry,) = [e for e in audit.json()["entries"] if e["action"] == "manifest.rollback"]
    assert entry["actor_sub"] == "operator@example.com"
    assert (entry["before_state"]["manifest_version"], entry["after_state"]["manifest_version"]) == (newer, older)

    # Confirmed against a version that is no longer current: nothing moves.
    again = client.post("/console/demo/home/rollback", data={"to": newer, "from": newer, "csrf": csrf_of(confirm.text)})
    assert again.status_code == 409 and "RECSYS_POINTER_CONFLICT" in again.text
    assert read_pointer(store, "demo", "home").manifest.manifest_version == older


def test_tenants_see_only_their_own(store: FileSystemStore, published: list[str]) -> None:
    client = console(store)
    sign_in(client, "admin", tenant="other")
    assert "No surface of other has a current manifest" in client.get("/console/").text
    for path in ("/console/demo/home", f"/console/demo/home/rollback?to={published[0]}", "/console/demo/home/try"):
        response = client.get(path)
        assert response.status_code == 403 and "RECSYS_TENANT_SCOPE_MISMATCH" in response.text, path
    posted = client.post("/console/demo/home/rollback", data={"to": published[0], "from": published[1]})
    assert posted.status_code == 403
    assert read_pointer(store, "demo", "home").manifest.manifest_version == published[1]


def test_compare_lists_the_kinds_that_changed(store: FileSystemStore, published: list[str]) -> None:
    older, newer = published
    client = console(store)
    sign_in(client, "viewer")
    page = client.get(f"/console/demo/home/compare?before={older}&after={newer}")
    assert page.status_code == 200
    assert page.text.count("<td>yes</td>") == len(KINDS)  # a new window: every artifact differs
    assert client.get(f"/console/demo/home/compare?before={older}&after={'0' * 64}").status_code == 404


def test_the_playground_ranks_with_the_api_service(store: FileSystemStore, published: list[str]) -> None:
    client = console(store)
    sign_in(client, "viewer")
    empty = client.get("/console/demo/home/try")
    assert empty.status_code == 200 and 'id="results"' not in empty.text
    page = client.get("/console/demo/home/try", params={"user_id": "u1", "k": "4", "weights": "pop=1"})
    assert page.status_code == 200 and 'id="results"' in page.text
    assert page.text.count('<td class="num">', page.text.index('id="results"')) >= 4 * 2  # rank and score cells
    api = client.post(
        "/v1/recommend",
        json={"surface": "home", "k": 4, "user": {"user_id": "u1"}, "weights": {"pop": 1}},
        headers={"X-Dev-Org-Id": "demo"},
    ).json()
    for item in api["items"]:
        assert f"<code>{item['item_id']}</code>" in page.text
    wrong = client.get("/console/demo/home/try", params={"k": "many"})
    assert wrong.status_code == 200 and "k must be a whole number" in wrong.text


def test_without_dev_auth_the_console_takes_the_api_identity(store: FileSystemStore, published: list[str]) -> None:
    client = console(store, dev=False)
    assert "Dev sign-in is off" in client.get("/console/login").text
    assert client.post("/console/login", data={"tenant": "demo", "user": "x", "role": "admin"}).status_code == 404
    response = client.get("/console/demo/home")
    assert response.status_code == 401 and "RECSYS_AUTH_REQUIRED" in response.text


def test_an_operator_edits_the_config_after_seeing_the_diff(store: FileSystemStore, published: list[str]) -> None:
    client = console(store)
    sign_in(client, "operator")
    form = client.get("/console/demo/documents/config")
    assert form.status_code == 200 and "None stored yet" in form.text
    token = csrf_of(form.text)

    bad = client.post("/console/demo/documents/config/preview", data={"csrf": token, "text": "{nope", "version": ""})
    assert bad.status_code == 400 and "not JSON" in bad.text

    text = '{"weights": {"pop": 0.5}}'
    preview = client.post("/console/demo/documents/config/preview", data={"csrf": token, "text": text, "version": ""})
    assert preview.status_code == 200 and "+  &#34;weights&#34;: {" in preview.text
    assert "changed since you opened it" not in preview.text
    saved = client.post(
        "/console/demo/documents/config", data={"csrf": token, "text": text, "version": ""}, follow_redirects=False
    )
    assert saved.status_code == 303 and "config+saved+as" in saved.headers["location"]
    admin = {"X-Dev-Org-Id": "demo", "X-Dev-Roles": "operator"}
    stored = client.get("/v1/admin/tenants/demo/config", headers=admin)
    assert stored.json()["config"] == {"weights": {"pop": 0.5}}
    version = stored.json()["config_version"]
    assert f'<code id="document-version">{version[:12]}</code>' in client.get(saved.headers["location"]).text

    # Someone else saves meanwhile: the preview warns, and the save is refused, never overwriting theirs.
    client.put("/v1/admin/tenants/demo/config", json={"weights": {"pop": 2.0}}, headers=admin)
    later = '{"weights": {"pop": 1.0}}'
    stale = {"csrf": token, "text": later, "version": version}
    assert "changed since you opened it" in client.post("/console/demo/documents/config/preview", data=stale).text
    refused = client.post("/console/demo/documents/config", data=stale)
    assert refused.status_code == 409 and "RECSYS_VERSION_MISMATCH" in refused.text
    assert client.get("/v1/admin/tenants/demo/config", headers=admin).json()["config"] == {"weights": {"pop": 2.0}}
    actions = [e["action"] for e in client.get("/v1/admin/tenants/demo/audit", headers=admin).json()["entries"]]
    assert actions.count("config.update") == 2


def test_a_viewer_reads_documents_but_cannot_change_them_or_drop_caches(
    store: FileSystemStore, published: list[str]
) -> None:
    client = console(store)
    sign_in(client, "viewer")
    page = client.get("/console/demo/documents/rules")
    assert page.status_code == 200 and "<textarea" not in page.text and "<pre><code>[]</code></pre>" in page.text
    assert "Drop the chosen caches" not in client.get("/console/demo/home").text
    for path, data in (
        ("/console/demo/documents/rules/preview", {"text": "[]"}),
        ("/console/demo/documents/rules", {"text": "[]"}),
        ("/console/demo/home/invalidate", {"target": "manifest"}),
    ):
        assert client.post(path, data=data).status_code == 403, path
    assert client.get("/console/demo/documents/other").status_code == 404


def test_dropping_the_manifest_cache_serves_a_pointer_moved_elsewhere(
    store: FileSystemStore, published: list[str]
) -> None:
    older, newer = published
    client = console(store)
    body = {"surface": "home", "k": 3, "user": {"user_id": "u1"}}

    def served() -> str:
        return client.post("/v1/recommend", json=body, headers={"X-Dev-Org-Id": "demo"}).json()["meta"][
            "manifest_version"
        ]

    assert served() == newer
    rollback(store, "demo", "home", older)  # e.g. `recsys rollback` from a laptop
    assert served() == newer  # this instance still holds the manifest it read (RECSYS_ARTIFACT_MANIFEST_TTL)
    sign_in(client, "operator")
    token = csrf_of(client.get("/console/demo/home").text)
    done = client.post(
        "/console/demo/home/invalidate", data={"csrf": token, "target": "manifest"}, follow_redirects=False
    )
    assert done.status_code == 303 and "caches+dropped" in done.headers["location"]
    assert served() == older


def test_the_playground_ranks_two_versions_or_weights_side_by_side(
    store: FileSystemStore, published: list[str]
) -> None:
    older, newer = published
    client = console(store)
    sign_in(client, "viewer")

    def api(weights: dict, manifest: str | None = None) -> list[str]:
        """What the service ranks, asked directly (with a stored version through the service, as the console)."""
        body = {"surface": "home", "k": 5, "user": {"user_id": "u00008"}, "weights": weights}
        service = client.app.state.service
        caller = Caller(tenant="demo", roles=frozenset({"viewer"}), user_id="t", source="dev")
        version = views.manifest_version(store, "demo", "home", manifest) if manifest else None
        answer = service.recommend(caller, RecommendRequest.model_validate(body), "t", manifest=version)
        return [item.item_id for item in answer.items]

    query = {"user_id": "u00008", "k": "5", "weights": "pop=1", "version_b": older}
    page = client.get("/console/demo/home/try", params=query).text
    a, b = page.index('id="results"'), page.index('id="results-b"')
    assert f"manifest <code>{newer[:12]}</code>" in page[a:b] and f"manifest <code>{older[:12]}</code>" in page[b:]
    for item in api({"pop": 1}):
        assert f"<code>{item}</code>" in page[a:b]
    for item in api({"pop": 1}, older):
        assert f"<code>{item}</code>" in page[b:]
    # The current manifest is still what the API serves: ranking with a stored version leaves no trace.
    served = client.post(
        "/v1/recommend", json={"surface": "home", "k": 1, "user": {"user_id": "u1"}}, headers={"X-Dev-Org-Id": "demo"}
    )
    assert served.json()["meta"]["manifest_version"] == newer

    # Other weights on the same version: B's column says where each item was in A ("new" when it was not).
    other = client.get("/console/demo/home/try", params={**query, "version_b": "", "weights_b": "cooc=1"}).text
    b = other.index('id="results-b"')
    first_b = api({"cooc": 1})[0]
    rank_a = api({"pop": 1}).index(first_b) + 1 if first_b in api({"pop": 1}) else "new"
    row = other[other.index(f"<code>{first_b}</code>", b) - 120 : other.index(f"<code>{first_b}</code>", b)]
    assert f'<td class="num">{rank_a}</td>' in row
    assert (
        "no such manifest version" in client.get("/console/demo/home/try", params={**query, "version_b": "0" * 64}).text
    )


def test_the_quality_gate_verdicts_are_charted(store: FileSystemStore, sample_settings) -> None:
    judged = [(0.1200, 0.1100, True), (0.0800, 0.1200, False)]  # the second was refused: it dropped too much
    versions = []
    for hours, (candidate, current, passed) in enumerate(judged):
        start, end = f"2026-01-0{1 + hours}", f"2026-01-0{3 + hours}"
        window = Window(start=dt.date.fromisoformat(start), end=dt.date.fromisoformat(end))
        quality = QualityResult(
            enabled=True, passed=passed, reason="ok" if passed else "ndcg@10 dropped", metric="ndcg@10",
            day=window.end, users=40, candidate=candidate, current=current, max_drop=0.02,
        )  # fmt: skip
        now = dt.datetime.now(dt.UTC) - dt.timedelta(hours=2 - hours)
        refs = run_steps(sample_settings, start, end, ["popularity"])
        versions.append(publish(store, "demo", "home", window, refs, quality=quality, now=now).manifest_version)
    client = console(store)
    sign_in(client, "viewer")
    page = client.get("/console/demo/home").text
    chart = page[page.index('<svg id="quality-chart"') : page.index("</svg>")]
    assert chart.count("<circle") == 4  # candidate and served, for each judged version
    for version, (candidate, current, _) in zip(versions, judged, strict=True):
        assert f"{version[:8]} candidate {candidate:.4f}" in chart and f"{version[:8]} current {current:.4f}" in chart
    table = page[page.index('id="quality-table"') :]
    assert "passed: ok" in table and "FAILED: ndcg@10 dropped" in table
    assert table.index(versions[0][:12]) < table.index(versions[1][:12])  # oldest first, as the chart


def test_without_verdicts_the_quality_section_says_why(store: FileSystemStore, published: list[str]) -> None:
    client = console(store)
    sign_in(client, "viewer")
    page = client.get("/console/demo/home").text
    assert "quality-chart" not in page and "RECSYS_QUALITY__METRIC" in page


def test_evaluation_reports_are_listed_and_charted(store: FileSystemStore, published: list[str]) -> None:
    report = Report(
        title="Offline evaluation",
        split={"train": ["2026-01-01", "2026-01-05"], "test": ["2026-01-06", "2026-01-06"]},
        dataset={"test_users": 70},
        ks=[5, 10],
        results={
            "recsys (blend)": {"overall": {"ndcg@10": 0.31, "recall@10": 0.5, "users": 70}},
            "popularity": {"overall": {"ndcg@10": 0.12, "recall@10": 0.25, "users": 70}},
        },
        comparisons=[{"first": "recsys (blend)", "second": "popularity", "metric": "ndcg@10", "difference": 0.19,
                      "low": 0.12, "high": 0.25, "verdict": "ahead"}],
    )  # fmt: skip
    for name in ("20261201T000000Z-temporal", "20261202T000000Z-logs"):
        store.put(paths.evaluation_report("demo", "home", name), report.model_dump_json().encode())
    client = console(store)
    sign_in(client, "viewer")
    listing = client.get("/console/demo/home/reports").text
    assert listing.index("20261202T000000Z-logs") < listing.index("20261201T000000Z-temporal")  # newest first

    page = client.get("/console/demo/home/reports/20261201T000000Z-temporal").text
    chart = page[page.index('<svg id="report-chart"') : page.index("</svg>")]
    assert chart.count("<rect") == 2 and "recsys (blend) 0.3100" in chart and "popularity 0.1200" in chart
    assert "ndcg@10 of each recommender" in chart  # the default metric
    recall = client.get("/console/demo/home/reports/20261201T000000Z-temporal", params={"metric": "recall@10"}).text
    assert "recsys (blend) 0.5000" in recall
    assert "<td>ahead</td>" in page and "+0.1200 .. +0.2500" in page

    assert client.get("/console/demo/home/reports/nope").status_code == 404
    other = console(store)
    sign_in(other, "admin", tenant="other")
    assert other.get("/console/demo/home/reports/20261201T000000Z-temporal").status_code == 403


def test_the_dev_sign_in_offers_the_deployment_s_role_names(store: FileSystemStore, published: list[str]) -> None:
    app = create_app(
        ServeSettings(RECSYS_STORE=store.uri, RECSYS_CONSOLE=True),
        AuthSettings(DEV_AUTH_ENABLED=True, AUTH_VIEWER_ROLE="reader", AUTH_OPERATOR_ROLE="sre", AUTH_ADMIN_ROLE=""),
    )
    client = TestClient(app)
    form = client.get("/console/login").text
    assert '<option value="reader">' in form and '<option value="sre" selected>' in form and "admin" not in form
    client.post("/console/login", data={"tenant": "demo", "user": "u", "role": "admin"})  # not a role here
    assert client.get("/console/demo/home").status_code == 403
    client.post("/console/login", data={"tenant": "demo", "user": "u", "role": "sre"})
    assert "roll back to this" in client.get("/console/demo/home").text
