"""Backend profiles and routes in Teams: a team's channels and personal chats each answered by
their routed profile, an unrouted group chat refused with nothing asked, and ``routes``."""

from __future__ import annotations

from tests.fakes.clickzetta import FakeClickZetta
from tests.fakes.wren import FakeWren
from tests.integration.backends import ClickZettaHarness, WrenHarness
from tests.integration.teams.conftest import GROUP, PERSONAL, TEAM, TENANT, card_text


def write_routes(tmp_path, wren: FakeWren, cz: FakeClickZetta) -> str:
    ident = cz.identity()
    path = tmp_path / "routes.toml"
    path.write_text(f"""\
[profiles.sales]
backend = "wren"
WREN_BASE_URL = "{wren.base_url}"
WREN_API_KEY = "${{TEST_SALES_WREN_KEY}}"
WREN_PROJECT_ID = "7"

[profiles.ops]
backend = "clickzetta"
CLICKZETTA_BASE_URL = "{ident['base_url']}"
CLICKZETTA_APP_SECRET_KEY = "${{TEST_OPS_CZ_SECRET}}"
CLICKZETTA_TENANT_ID = "{ident['tenant_id']}"
CLICKZETTA_USER_ID = "{ident['user_id']}"
CLICKZETTA_DOMAIN_ID = "{ident['domain_id']}"
CLICKZETTA_POLL_INTERVAL = 0.01

[[routes]]
teams_team = "{TEAM}"
profile = "ops"

[[routes]]
dm = true
profile = "sales"
""")
    return str(path)


async def test_teams_chats_go_to_their_routed_profiles(start_teams, tmp_path, monkeypatch,
                                                       fake_wren, fake_clickzetta) -> None:
    monkeypatch.setenv("TEST_SALES_WREN_KEY", fake_wren.api_key)
    monkeypatch.setenv("TEST_OPS_CZ_SECRET", fake_clickzetta.identity()["app_secret_key"])
    wren, cz = WrenHarness(fake_wren), ClickZettaHarness(fake_clickzetta)
    bot = await start_teams(ROUTES_FILE=write_routes(tmp_path, fake_wren, fake_clickzetta))

    personal = await bot.personal("Which states pay the most?")
    post = await bot.channel("Transaction amount by district?")
    await bot.wait_finished(personal["conversation"]["id"])
    await bot.wait_finished(post["conversation"]["id"])
    assert wren.questions() == ["Which states pay the most?"]
    assert cz.questions() == ["Transaction amount by district?"]

    await bot.group("anything?")  # a group chat: no route, no default
    [refusal] = await bot.wait_replies(GROUP)
    assert "no analytics agent is set up" in refusal.text and "`ops` — ClickZetta" in refusal.text
    assert wren.questions() == ["Which states pay the most?"] and len(cz.questions()) == 1
    repo = bot.service.repo
    assert repo is not None and await repo.count_runs("teams", TENANT, channel=GROUP) == 0

    await bot.personal("routes")
    await bot.wait_replies(PERSONAL, predicate=lambda found: any(
        "Routes (the first" in (m.text or "") + card_text(m.card) for m in found))
    listing = next(m.text for m in bot.replies(PERSONAL) if "Routes (the first" in (m.text or ""))
    assert f"1. Teams team `{TEAM}` → `ops`" in listing and "2. direct messages → `sales`" in listing
    assert "This conversation: `sales`." in listing
    assert fake_wren.api_key not in listing and fake_wren.base_url not in listing
    assert wren.questions() == ["Which states pay the most?"]  # "routes" was not a question
