"""manifest.yml is a valid Slack app manifest and matches what the code listens to."""

import json
from pathlib import Path

import jsonschema
import yaml

ROOT = Path(__file__).resolve().parents[2]
# Slack's manifest schema (MIT, tests/schemas/slack-manifest.LICENSE), vendored so that a clone
# anywhere validates the manifest instead of skipping the check
SCHEMA = ROOT / "tests" / "schemas" / "slack-manifest.schema.1.0.0.json"


def _manifest() -> dict:
    return yaml.safe_load((ROOT / "manifest.yml").read_text())


def test_manifest_validates_against_slacks_schema() -> None:
    schema = json.loads(SCHEMA.read_text())
    errors = sorted(jsonschema.Draft7Validator(schema).iter_errors(_manifest()), key=str)
    assert not errors, [e.message for e in errors]


def test_manifest_covers_the_contract() -> None:
    m = _manifest()
    events = set(m["settings"]["event_subscriptions"]["bot_events"])
    assert {"app_mention", "message.im", "message.channels", "app_home_opened",
            "agent_session_stopped"} <= events
    commands = {c["command"] for c in m["features"]["slash_commands"]}
    assert commands == {"/insight-stop", "/insight-history", "/insight-routes"}
    assert m["settings"]["interactivity"]["is_enabled"] is True
    assert "agent_view" in m["features"]
    scopes = set(m["oauth_config"]["scopes"]["bot"])
    assert {"app_mentions:read", "chat:write", "files:write", "im:history", "commands",
            "channels:history"} <= scopes
    for url in [m["settings"]["event_subscriptions"]["request_url"],
                m["settings"]["interactivity"]["request_url"],
                *[c["url"] for c in m["features"]["slash_commands"]]]:
        assert url.endswith("/slack/events")


def test_the_oauth_install_asks_for_the_manifests_bot_scopes() -> None:
    """The distributed app's install asks Slack for exactly the manifest's bot scopes (the
    manifest is not shipped with the package, so the code holds its own copy)."""
    from bot.slack.installations import BOT_SCOPES

    m = _manifest()
    assert list(BOT_SCOPES) == m["oauth_config"]["scopes"]["bot"]
    assert [u.rsplit("/", 2)[-2:] for u in m["oauth_config"]["redirect_urls"]] == [
        ["slack", "oauth_redirect"]]
    # uninstalling (and revoking) must reach the bot, which then deletes the installation
    assert {"app_uninstalled", "tokens_revoked"} <= set(m["settings"]["event_subscriptions"]["bot_events"])
