"""The reference docs stay honest: every setting (the quality gate's included), CLI option (`recsys eval`'s included),
quarantine reason, artifact column, API route, error code and warning code is documented,
docs/reference/openapi.json is what the app serves, docs/evaluation.md reports on the three recommenders
`recsys eval` compares, and every relative link (and #anchor) and image in README.md and docs/ resolves.

docs/reference/openapi.json is regenerated from `recsys.serve.app.create_app`; refresh it with
`RECSYS_REGENERATE_DOCS=1 .venv/bin/pytest tests/test_docs.py`."""

from __future__ import annotations

import argparse
import json
import os
import re
from collections.abc import Iterator
from pathlib import Path

import pytest
from pydantic import BaseModel

from recsys.compute import EVENT_KINDS, content_sim
from recsys.events.contract import Reason
from recsys.serve.app import create_app
from recsys.serve.auth import AuthSettings
from recsys.serve.settings import ServeSettings
from recsys.settings import QualityGate, Settings
from recsys.store import FileSystemStore
from recsys_tools.cli import build_parser
from recsys_tools.evaluation.run import OURS

ROOT = Path(__file__).resolve().parents[1]
DOCS = ROOT / "docs"
REFERENCE = DOCS / "reference"
MARKDOWN = sorted([ROOT / "README.md", *DOCS.rglob("*.md")])
SERVE = ROOT / "layers" / "recsys" / "recsys" / "serve"
OPENAPI = REFERENCE / "openapi.json"
REGENERATE = "RECSYS_REGENERATE_DOCS=1 .venv/bin/pytest tests/test_docs.py"

_FENCE = re.compile(r"^(```|~~~).*?^\1[ \t]*$", re.MULTILINE | re.DOTALL)
_LINK = re.compile(r"(?<!!)\[[^\]]*\]\(([^)\s]+)(?:\s+\"[^\"]*\")?\)")
_IMAGE = re.compile(r"!\[[^\]]*\]\(([^)\s]+)(?:\s+\"[^\"]*\")?\)")
_HEADING = re.compile(r"^#{1,6}[ \t]+(.+?)[ \t]*#*[ \t]*$", re.MULTILINE)
_CODE_SPAN = re.compile(r"(`+)(?!`).*?(?<!`)\1(?!`)", re.DOTALL)


def _prose(path: Path) -> str:
    """The Markdown text without fenced code blocks (their '#' lines are not headings, their brackets not links)."""
    return _FENCE.sub("", path.read_text(encoding="utf-8"))


def _env_names(model: type[BaseModel], prefix: str, delimiter: str) -> Iterator[str]:
    for name, field in model.model_fields.items():
        annotation = field.annotation
        if isinstance(annotation, type) and issubclass(annotation, BaseModel):
            yield from _env_names(annotation, f"{prefix}{name.upper()}{delimiter}", delimiter)
        else:
            yield f"{prefix}{name.upper()}"


def _commands(parser: argparse.ArgumentParser, path: tuple[str, ...] = ()) -> Iterator[tuple[tuple[str, ...], str]]:
    """(command path, long option) for every option of the parser and its subcommands, recursively."""
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, sub in action.choices.items():
                yield (*path, name), ""
                yield from _commands(sub, (*path, name))
        else:
            for option in action.option_strings:
                if option.startswith("--"):
                    yield path, option


def _section(text: str, heading: str) -> str:
    """The text under the level-2 heading `## {heading}` up to the next level-2 heading."""
    match = re.search(rf"^## {re.escape(heading)}[ \t]*$(.*?)(?=^## |\Z)", text, re.MULTILINE | re.DOTALL)
    assert match, f"no '## {heading}' section"
    return match.group(1)


def _slugs(path: Path) -> set[str]:
    """GitHub-style anchors of the file's headings (duplicates get -1, -2, ...)."""
    seen: dict[str, int] = {}
    slugs = set()
    for title in _HEADING.findall(_prose(path)):
        text = re.sub(r"\[([^\]]*)\]\([^)]*\)", r"\1", title)  # a linked heading keeps its text
        slug = re.sub(r"[^\w\- ]", "", text.replace("`", "").strip().lower()).replace(" ", "-")
        count = seen.get(slug, 0)
        seen[slug] = count + 1
        slugs.add(slug if count == 0 else f"{slug}-{count}")
    return slugs


def _app(tmp_path: Path):
    """The recommend API as deployed, over an empty FileSystemStore (building it reads nothing)."""
    store = FileSystemStore(tmp_path / "store")
    return create_app(ServeSettings(RECSYS_STORE=store.uri), AuthSettings())


def _literals(pattern: str) -> set[str]:
    """Every match of `pattern`'s group 1 in the serve package's source."""
    return {match for path in sorted(SERVE.glob("*.py")) for match in re.findall(pattern, path.read_text("utf-8"))}


def test_every_setting_is_in_the_configuration_reference() -> None:
    text = (REFERENCE / "configuration.md").read_text(encoding="utf-8")
    config = Settings.model_config
    names = list(_env_names(Settings, config["env_prefix"], config["env_nested_delimiter"]))
    assert "RECSYS_GATES__MAX_ERROR_RATE" in names and "RECSYS_COMPUTE__COOC_TOP_K" in names
    assert "RECSYS_QUALITY__METRIC" in names and "RECSYS_COMPUTE__ITEM_KNN_SHRINK" in names
    missing = [name for name in names if f"`{name}`" not in text]
    assert not missing, f"docs/reference/configuration.md does not document {missing}"


def test_every_quality_gate_variable_is_in_its_configuration_section() -> None:
    text = (REFERENCE / "configuration.md").read_text(encoding="utf-8")
    section = _section(text, "Quality gate: `RECSYS_QUALITY__*`")
    config = Settings.model_config
    prefix, delimiter = config["env_prefix"], config["env_nested_delimiter"]
    names = list(_env_names(QualityGate, f"{prefix}QUALITY{delimiter}", delimiter))
    assert "RECSYS_QUALITY__METRIC" in names and len(names) == len(QualityGate.model_fields)
    missing = [name for name in names if f"| `{name}` |" not in section]
    assert not missing, f"the quality gate section of docs/reference/configuration.md has no row for {missing}"


def test_every_serving_and_auth_variable_is_in_the_configuration_reference() -> None:
    text = (REFERENCE / "configuration.md").read_text(encoding="utf-8")
    names = [field.alias for field in ServeSettings.model_fields.values()]
    prefix = AuthSettings.model_config.get("env_prefix", "")
    names += [f"{prefix}{name}".upper() for name in AuthSettings.model_fields]
    assert "RECSYS_ARTIFACT_MANIFEST_TTL" in names and "AUTH_TENANT_CLAIMS" in names
    missing = [name for name in names if f"`{name}`" not in text]
    assert not missing, f"docs/reference/configuration.md does not document {missing}"


def test_every_cli_command_and_option_is_in_the_cli_reference() -> None:
    text = (REFERENCE / "cli.md").read_text(encoding="utf-8")
    commands = list(_commands(build_parser()))
    evaluate = {option for path, option in commands if path == ("eval",)}
    assert {"--raw", "--train-days", "--test-days", "--k", "--tune", "--trials", "--seed"} <= evaluate
    missing = []
    for path, option in commands:
        if not option:
            if f"recsys {' '.join(path)}" not in text:
                missing.append(f"recsys {' '.join(path)}")
        elif not re.search(rf"(?<![\w-]){re.escape(option)}(?![\w-])", text):
            missing.append(f"recsys {' '.join(path)} {option}".replace("  ", " "))
    assert not missing, f"docs/reference/cli.md does not document {missing}"


def test_every_quarantine_reason_is_in_the_raw_events_reference() -> None:
    text = (REFERENCE / "raw-events.md").read_text(encoding="utf-8")
    missing = [reason.value for reason in Reason if f"`{reason.value}`" not in text]
    assert not missing, f"docs/reference/raw-events.md does not document {missing}"


def test_openapi_json_is_what_the_app_serves(tmp_path: Path) -> None:
    spec = json.dumps(_app(tmp_path).openapi(), indent=2, ensure_ascii=False) + "\n"
    if os.environ.get("RECSYS_REGENERATE_DOCS") == "1":
        OPENAPI.write_text(spec, encoding="utf-8")
    committed = OPENAPI.read_text(encoding="utf-8") if OPENAPI.exists() else ""
    assert committed == spec, f"docs/reference/openapi.json differs from create_app().openapi(); run {REGENERATE}"


def test_every_api_route_is_in_the_api_reference(tmp_path: Path) -> None:
    text = (REFERENCE / "api.md").read_text(encoding="utf-8")
    app = _app(tmp_path)
    routes = {(method.upper(), path) for path, item in app.openapi()["paths"].items() for method in item}
    for route in app.routes:  # also /docs, /redoc, /openapi.json, which the spec leaves out
        routes |= {(method, route.path) for method in getattr(route, "methods", None) or () if method != "HEAD"}
    assert ("POST", "/v1/recommend") in routes and ("GET", "/docs") in routes
    missing = sorted(f"{method} {path}" for method, path in routes if f"`{method} {path}`" not in text)
    assert not missing, f"docs/reference/api.md does not document the routes {missing}"


def test_every_error_code_is_in_the_api_reference() -> None:
    errors = _section((REFERENCE / "api.md").read_text(encoding="utf-8"), "Errors")
    settings = {field.alias for field in ServeSettings.model_fields.values()}
    codes = _literals(r"[\"'](RECSYS_[A-Z_]+)[\"']") - settings
    assert {"RECSYS_INVALID_REQUEST", "RECSYS_VERSION_MISMATCH", "RECSYS_INTERNAL"} <= codes
    missing = sorted(code for code in codes if f"`{code}`" not in errors)
    assert not missing, f"the 'Errors' section of docs/reference/api.md does not document {missing}"


def test_every_warning_code_is_in_the_api_reference() -> None:
    warnings = _section((REFERENCE / "api.md").read_text(encoding="utf-8"), "Warnings")
    codes = _literals(r"code=[\"']([A-Z][A-Z_]+)[\"']")
    assert {"DEFAULT_APPLIED", "SIGNAL_UNAVAILABLE", "MANIFEST_STALE"} <= codes
    missing = sorted(code for code in codes if f"`{code}`" not in warnings)
    assert not missing, f"the 'Warnings' section of docs/reference/api.md does not document {missing}"


@pytest.mark.parametrize("kind", [*EVENT_KINDS, content_sim.KIND])
def test_every_artifact_column_is_in_the_artifacts_reference(kind: str) -> None:
    schema = content_sim.SCHEMA if kind == content_sim.KIND else EVENT_KINDS[kind].SCHEMA
    section = _section((REFERENCE / "artifacts.md").read_text(encoding="utf-8"), kind)
    missing = [name for name in schema.names if f"| `{name}` |" not in section]
    assert not missing, f"the '{kind}' section of docs/reference/artifacts.md has no column row for {missing}"


def test_the_evaluation_page_reports_the_three_recommenders() -> None:
    page = DOCS / "evaluation.md"
    assert page.exists(), "docs/evaluation.md (the latest `recsys eval` report) is missing"
    text = page.read_text(encoding="utf-8")
    recommenders = [OURS, "popularity", "item-kNN"]  # the names `recsys eval` gives its three result rows
    missing = [name for name in recommenders if f"| {name} |" not in text]
    assert not missing, f"docs/evaluation.md has no result row for {missing}"
    assert "MovieLens is reserved for independent verification" in text


@pytest.mark.parametrize("path", MARKDOWN, ids=lambda p: str(p.relative_to(ROOT)))
def test_images_exist(path: Path) -> None:
    missing = [
        target
        for target in _IMAGE.findall(_CODE_SPAN.sub("", _prose(path)))
        if not re.match(r"^[a-z][a-z0-9+.-]*:", target) and not (path.parent / target).resolve().exists()
    ]
    assert not missing, f"{path.relative_to(ROOT)} shows missing images: {missing}"


@pytest.mark.parametrize("path", MARKDOWN, ids=lambda p: str(p.relative_to(ROOT)))
def test_relative_links_resolve(path: Path) -> None:
    broken = []
    for target in _LINK.findall(_CODE_SPAN.sub("", _prose(path))):  # brackets inside `code` are not links
        if re.match(r"^[a-z][a-z0-9+.-]*:", target):  # http:, https:, mailto:
            continue
        file_part, _, anchor = target.partition("#")
        resolved = (path.parent / file_part).resolve() if file_part else path
        if not resolved.exists():
            broken.append(target)
        elif anchor and resolved.suffix == ".md" and anchor not in _slugs(resolved):
            broken.append(f"{target} (no such heading)")
    assert not broken, f"{path.relative_to(ROOT)} has broken links: {broken}"


def test_the_docs_index_links_every_page() -> None:
    index = (DOCS / "index.md").read_text(encoding="utf-8")
    pages = [p.relative_to(DOCS).as_posix() for p in DOCS.rglob("*.md") if p.name != "index.md"]
    missing = [page for page in pages if f"]({page})" not in index]
    assert not missing, f"docs/index.md does not link {missing}"
