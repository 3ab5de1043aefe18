"""The Teams app package: manifest valid against the vendored schema 1.29, icons, and the zip."""

from __future__ import annotations

import json
import zipfile
from pathlib import Path
from typing import Any

import pytest
from jsonschema import Draft4Validator
from PIL import Image
from referencing import Registry, Resource
from referencing.exceptions import NoSuchResource

ROOT = Path(__file__).resolve().parents[2]
TEAMS = ROOT / "teams"
# Microsoft's manifest schema (MIT, tests/schemas/teams-manifest.LICENSE), vendored so that a
# clone anywhere validates the manifest
SCHEMA = ROOT / "tests" / "schemas" / "teams-manifest.schema.1.29.json"


def _offline(uri: str) -> Resource[Any]:
    """CI has no internet: any remote $ref is an error, not a download."""
    raise NoSuchResource(ref=uri)


@pytest.fixture(scope="module")
def manifest() -> dict[str, Any]:
    return json.loads((TEAMS / "manifest.json").read_text(encoding="utf-8"))


@pytest.mark.skipif(not SCHEMA.exists(), reason="the Teams manifest schema is not available")
def test_manifest_is_valid_against_schema_1_29_offline(manifest: dict[str, Any]) -> None:
    schema = json.loads(SCHEMA.read_text(encoding="utf-8"))
    assert "draft-04" in schema["$schema"]
    # (no check_schema: the schema uses \p{L} patterns Python's re cannot compile; they sit
    # under parts of the manifest we do not use, and patterns are only compiled when reached)
    validator = Draft4Validator(schema, registry=Registry(retrieve=_offline))
    errors = sorted(validator.iter_errors(manifest), key=lambda e: list(e.path))
    assert not errors, "\n".join(f"{list(e.path)}: {e.message}" for e in errors)
    assert manifest["manifestVersion"] == "1.29"
    assert "/v1.29/" in manifest["$schema"]


def test_bot_scopes_and_commands(manifest: dict[str, Any]) -> None:
    [bot] = manifest["bots"]
    assert set(bot["scopes"]) == {"personal", "team", "groupChat"}
    covered: set[str] = set()
    for commands in bot["commandLists"]:
        assert {c["title"] for c in commands["commands"]} == {"stop", "history", "help"}
        covered.update(commands["scopes"])
    assert covered == {"personal", "team", "groupChat"}


def test_the_bot_may_send_files_for_the_csv_of_a_cut_result(manifest: dict[str, Any]) -> None:
    """Without ``supportsFiles`` Teams does not run the file consent flow (bots-filesv4)."""
    [bot] = manifest["bots"]
    assert bot["supportsFiles"] is True


def test_icons_have_the_sizes_teams_requires(manifest: dict[str, Any]) -> None:
    with Image.open(TEAMS / manifest["icons"]["color"]) as color:
        assert color.format == "PNG" and color.size == (192, 192)
    with Image.open(TEAMS / manifest["icons"]["outline"]) as outline:
        assert outline.format == "PNG" and outline.size == (32, 32)
        pixels = list(outline.convert("RGBA").getdata())
    assert any(a == 0 for *_, a in pixels), "the outline icon must have a transparent background"
    assert all((r, g, b) == (255, 255, 255) for r, g, b, a in pixels if a > 0), "white only"


def test_package_has_manifest_and_icons_at_the_root(tmp_path: Path) -> None:
    from bot.teams.package import build

    bot_id = "11111111-2222-4333-8444-555555555555"
    out = build(TEAMS, tmp_path / "dist" / "insightbot-teams.zip", bot_id=bot_id)
    with zipfile.ZipFile(out) as package:
        assert sorted(package.namelist()) == ["color.png", "manifest.json", "outline.png"]
        packaged = json.loads(package.read("manifest.json"))
    assert packaged["bots"][0]["botId"] == bot_id
    with pytest.raises(ValueError):
        build(TEAMS, tmp_path / "x.zip", bot_id="not-a-guid")
