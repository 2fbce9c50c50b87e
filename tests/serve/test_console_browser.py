"""The console in a real browser: headless Chromium (Debian's package) driven by Playwright against the API app under
uvicorn on loopback. An operator signs in, sees the overview, runs a recommendation and rolls back; a viewer is
refused the rollback. Each page is captured; with RECSYS_CONSOLE_SCREENSHOTS=DIR the captures are written there too
(`make console-screenshots` renews docs/images/console/ this way, so the docs show what the test saw).

Where Chromium or Playwright is missing the test skips, saying so; under CI=true it fails instead (.ci/run installs
both)."""

from __future__ import annotations

import os
import shutil
import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import uvicorn

from recsys.publish.service import read_pointer
from recsys.serve.app import create_app
from recsys.serve.auth import AuthSettings
from recsys.serve.console import overview as views
from recsys.serve.settings import ServeSettings
from recsys.store import FileSystemStore
from recsys_tools import cli
from tests.conftest import SAMPLE_CATALOG, SAMPLE_RAW

pytestmark = pytest.mark.slow

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
# Chromium as the machine probe starts it: no sandbox (root), and none of its background traffic (a closed network).
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


def _browser_or_skip():
    in_ci = os.environ.get("CI", "").lower() in ("1", "true", "yes")
    try:
        from playwright.sync_api import sync_playwright
    except ImportError as err:
        reason = f"playwright is not installed: {err}"
    else:
        if Path(CHROMIUM).exists():
            return sync_playwright
        reason = f"no Chromium at {CHROMIUM} (Debian: apt-get install chromium)"
    if in_ci:
        pytest.fail(f"CI needs the console's browser test: {reason}")
    pytest.skip(f"SKIPPED: the console's browser test: {reason}")


@pytest.fixture
def server(store: FileSystemStore, published: list[str]) -> Iterator[str]:
    """The API app with the console over `store`, under uvicorn on a free loopback port: its base URL."""
    app = create_app(ServeSettings(RECSYS_STORE=store.uri, RECSYS_CONSOLE=True), AuthSettings(DEV_AUTH_ENABLED=True))
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    running = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=running.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 20
    while not running.started:
        assert time.monotonic() < deadline, "uvicorn did not start"
        time.sleep(0.05)
    yield f"http://127.0.0.1:{port}"
    running.should_exit = True
    thread.join(timeout=10)


@pytest.fixture
def capture(tmp_path: Path):
    """page -> name: a full-page screenshot in tmp_path, and in RECSYS_CONSOLE_SCREENSHOTS when set."""
    extra = os.environ.get("RECSYS_CONSOLE_SCREENSHOTS")

    def shoot(page, name: str) -> None:
        data = page.screenshot(full_page=True)
        (tmp_path / f"{name}.png").write_bytes(data)
        if extra:
            Path(extra).mkdir(parents=True, exist_ok=True)
            (Path(extra) / f"{name}.png").write_bytes(data)

    return shoot


def sign_in(page, base: str, role: str) -> None:
    page.goto(f"{base}/console/")
    assert page.url.endswith("/console/login")
    page.get_by_label("Tenant").fill("demo")
    page.get_by_label("User").fill(f"{role}@example.com")
    page.get_by_label("Role").select_option(role)
    page.get_by_role("button", name="Sign in").click()
    page.wait_for_url(f"{base}/console/")


def test_an_operator_and_a_viewer_in_a_browser(
    server: str, store: FileSystemStore, published: list[str], capture, tmp_path: Path
) -> None:
    older, newer = published
    sync_playwright = _browser_or_skip()
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            operator = browser.new_context(viewport={"width": 1280, "height": 800}).new_page()
            operator.goto(f"{server}/console/")
            capture(operator, "login")
            sign_in(operator, server, "operator")
            operator.get_by_role("link", name="overview").click()
            assert operator.locator("#current-version").inner_text() == newer[:16]
            assert operator.get_by_role("heading", name="Ingested days of the current window").is_visible()
            capture(operator, "overview")

            # A recommendation, through the form (keyboard: the labels name the fields).
            operator.get_by_role("link", name="Try a recommendation").click()
            operator.get_by_label("User id").fill("u00008")
            operator.get_by_label("How many (k)").fill("5")
            operator.get_by_label("How many (k)").press("Enter")
            rows = operator.locator("#results tbody tr")
            rows.first.wait_for()
            assert rows.count() == 5
            capture(operator, "try")

            # The sample's offline evaluation, kept with `recsys eval --report-store`, charted.
            evaluation = ["eval", "--raw", str(SAMPLE_RAW), "--catalog", str(SAMPLE_CATALOG),
                          "--store", f"file://{tmp_path / 'eval'}", "--out", str(tmp_path / "report"),
                          "--report-store", store.uri]  # fmt: skip
            assert cli.main(evaluation) == 0
            (name,) = views.reports(store, "demo", "home")
            recommenders = len(views.report(store, "demo", "home", name).results)
            operator.goto(f"{server}/console/demo/home")
            operator.get_by_role("link", name="evaluation reports").click()
            operator.get_by_role("link", name=name).click()
            assert recommenders >= 3 and operator.locator("#report-chart rect").count() == recommenders
            capture(operator, "report")

            # Roll back to the older version, confirmed, and see the pointer move.
            operator.goto(f"{server}/console/demo/home")
            operator.locator(f'a[href$="rollback?to={older}"]').click()
            assert operator.get_by_role("heading", name="Roll back demo/home?").is_visible()
            capture(operator, "rollback")
            operator.get_by_role("button", name=f"Roll back to {older[:12]}").click()
            operator.wait_for_url(f"{server}/console/demo/home?done=*")
            assert operator.get_by_role("status").inner_text().startswith("Done: rolled back to")
            assert operator.locator("#current-version").inner_text() == older[:16]
            assert read_pointer(store, "demo", "home").manifest.manifest_version == older

            # A viewer sees the same overview without the action, and is refused it by URL.
            viewer = browser.new_context(viewport={"width": 1280, "height": 800}).new_page()
            sign_in(viewer, server, "viewer")
            viewer.goto(f"{server}/console/demo/home")
            assert viewer.locator("#current-version").inner_text() == older[:16]
            assert viewer.locator('a[href*="/rollback?to="]').count() == 0
            response = viewer.goto(f"{server}/console/demo/home/rollback?to={newer}")
            assert response.status == 403
            assert "RECSYS_FORBIDDEN" in viewer.get_by_role("heading").first.inner_text()
            capture(viewer, "viewer-refused")
            assert read_pointer(store, "demo", "home").manifest.manifest_version == older
        finally:
            browser.close()
