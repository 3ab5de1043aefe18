"""Getting answers onto Teams under its rules: throttling, lost placeholders, size, and auth."""

from __future__ import annotations

import pytest

import base64
import json

from bot.teams.images import png_size
from tests.integration.backends import BackendHarness
from tests.integration.quiet import quiet
from tests.integration.teams.conftest import (
    PERSONAL, StartTeams, TeamsBot, actions_of, card_text, stop_buttons,
)


async def test_throttled_updates_are_retried_after_retry_after(teams_bot: TeamsBot) -> None:
    release = teams_bot.backend.hold()
    await teams_bot.personal("Which states pay the most?")
    await teams_bot.backend.wait_asked()
    await teams_bot.wait_replies(PERSONAL)
    connector = teams_bot.connector
    connector.fail_next("PUT", 429, retry_after=0.2, times=2)
    release.set()
    [answer] = await teams_bot.wait_finished(PERSONAL)
    assert answer.outcome.value == "done"
    [reply] = teams_bot.replies(PERSONAL)
    assert "Answered in" in card_text(reply.card)  # the final card got through
    puts = connector.calls_to("PUT")
    throttled = [i for i, c in enumerate(puts) if c.status == 429]
    assert len(throttled) == 2
    for i in throttled:  # the next PUT waited for Retry-After
        assert puts[i + 1].at - puts[i].at >= 0.19


async def test_placeholder_deleted_by_the_user_gets_a_new_message(teams_bot: TeamsBot) -> None:
    release = teams_bot.backend.hold()
    await teams_bot.personal("Revenue by state")
    await teams_bot.backend.wait_asked()
    [placeholder] = await teams_bot.wait_replies(PERSONAL)
    placeholder.deleted = True  # the user deleted it: PUT now answers 404
    release.set()
    await teams_bot.wait_finished(PERSONAL)
    replies = teams_bot.replies(PERSONAL)
    assert len(replies) == 2
    assert "Answered in" in card_text(replies[1].card)


async def test_final_update_failing_every_time_is_posted_anew_and_the_placeholder_retired(
        teams_bot: TeamsBot) -> None:
    release = teams_bot.backend.hold()
    await teams_bot.personal("Revenue by state")
    await teams_bot.backend.wait_asked()
    [placeholder] = await teams_bot.wait_replies(PERSONAL)
    teams_bot.connector.fail_next("PUT", 503, times=10_000)  # no update gets through any more
    release.set()
    [answer] = await teams_bot.wait_finished(PERSONAL)
    await teams_bot.service.teams.sink_factory().tasks.wait()
    assert answer.outcome.value == "done"
    assert placeholder.deleted  # retired: no "working…" card with a Stop button stays behind
    [reply] = [m for m in teams_bot.replies(PERSONAL) if not m.deleted]
    assert "Answered in" in card_text(reply.card)
    run = await teams_bot.service.repo.find_run_by_reply("teams", teams_bot.connector.service_url,
                                                         reply.id)
    assert run is not None and run.status == "done"  # the run records where its answer went


async def test_questions_at_once_in_one_chat_stay_under_teams_limits(teams_bot: TeamsBot) -> None:
    for i in range(8):  # eight placeholders at once, then each run's progress and answer
        await teams_bot.personal(f"question {i}")
    await teams_bot.finished.wait_for(lambda: len(teams_bot.finished.items) == 8, timeout=30)
    await teams_bot.service.teams.sink_factory().tasks.wait()
    assert all(a.outcome.value == "done" for _, _, a in teams_bot.finished.items)
    assert not [c for c in teams_bot.connector.calls if c.status == 429]
    live = [m for m in teams_bot.connector.messages.values() if not m.deleted]
    assert sum("Answered in" in card_text(m.card) for m in live) == 8
    assert not any("Working on it" in card_text(m.card) for m in live)


async def test_answer_refused_as_too_large_degrades_instead_of_vanishing(teams_bot: TeamsBot) -> None:
    if not teams_bot.backend.draws_charts:
        pytest.skip("this backend's default answer has no chart to drop")
    # the final card with the image, then the one without: both "too big"
    teams_bot.connector.fail_next("PUT", 413, times=2, matching="Answered in")
    await teams_bot.personal("Revenue by state")
    await teams_bot.wait_finished(PERSONAL)
    [reply] = teams_bot.replies(PERSONAL)
    assert reply.text and not reply.cards  # Markdown text as the last resort
    assert "SELECT" in reply.text and "reference" in reply.text
    refused = [c for c in teams_bot.connector.calls_to("PUT") if c.status == 413]
    assert "data:image/png" in json.dumps(refused[0].body)
    assert "data:image/png" not in json.dumps(refused[1].body)  # second try: without the chart


async def test_progress_edits_are_paced_per_message(start_teams: StartTeams,
                                                     backend: BackendHarness) -> None:
    bot = await start_teams(backend, TEAMS_UPDATE_INTERVAL=0.3)
    release = backend.hold()
    await bot.personal("Which states pay the most?")
    await backend.wait_asked()
    await bot.wait_replies(PERSONAL, predicate=lambda found: found[0].edits >= 1)
    release.set()
    await bot.wait_finished(PERSONAL)
    calls = [c for c in bot.connector.calls if c.method in ("POST", "PUT")]
    progress = calls[:-1]  # the final update is not paced: it goes once pacing has drained
    gaps = [b.at - a.at for a, b in zip(progress, progress[1:])]
    assert all(gap >= 0.28 for gap in gaps), gaps


async def test_production_mode_rejects_activities_without_a_valid_token(
        start_teams: StartTeams, backend: BackendHarness) -> None:
    bot = await start_teams(backend, TEAMS_ALLOW_ANONYMOUS=False,
                            TEAMS_APP_ID="00000000-0000-0000-0000-0000000b0701",
                            TEAMS_APP_PASSWORD="not-a-real-secret",
                            TEAMS_TENANT_ID="72f988bf-0000-4000-8000-000000000001")
    activity = bot.activity("Revenue by state", PERSONAL, "personal")
    resp = await bot.send(activity, expect=401)
    assert "Authorization" in (await resp.json())["error"]
    resp = await bot.send(activity, expect=401, headers={"Authorization": "Bearer not.a.jwt"})
    assert await resp.json() == {"error": "Invalid token or authentication failed."}
    await bot.send(activity, expect=401, headers={"Authorization": "Basic abc"})
    assert backend.questions() == [] and bot.connector.calls == []


async def test_anonymous_mode_still_checks_a_token_when_one_is_sent(teams_bot: TeamsBot) -> None:
    activity = teams_bot.activity("Revenue by state", PERSONAL, "personal")
    await teams_bot.send(activity, expect=401, headers={"Authorization": "Bearer not.a.jwt"})
    assert teams_bot.backend.questions() == []


async def test_malformed_activities_are_refused(teams_bot: TeamsBot) -> None:
    resp = await teams_bot.client.post("/api/messages", data=b"{not json",
                                       headers={"Content-Type": "application/json"})
    assert resp.status == 400
    resp = await teams_bot.client.post("/api/messages", json={"type": "message"})
    assert resp.status == 400
    bad = json.dumps({"type": "message", "conversation": {"id": 5}})
    resp = await teams_bot.client.post("/api/messages", data=bad,
                                       headers={"Content-Type": "application/json"})
    assert resp.status == 400
    assert teams_bot.connector.calls == []


async def test_a_redelivered_stop_press_stops_once(teams_bot: TeamsBot) -> None:
    """Teams redelivers card actions it thinks were slow; the second copy is ignored."""
    teams_bot.backend.hold()
    await teams_bot.personal("slow question")
    await teams_bot.backend.wait_asked()
    [placeholder] = await teams_bot.wait_replies(PERSONAL)
    [stop] = stop_buttons(placeholder.card)
    press = teams_bot.activity("", PERSONAL, "personal", value=stop["data"], reply_to_id=placeholder.id)
    await teams_bot.send(press)
    await teams_bot.send(press)  # the same activity again: ignored
    [answer] = await teams_bot.wait_finished(PERSONAL)
    assert answer.outcome.value == "stopped"
    await quiet(teams_bot.service)  # the work that could still send
    assert len(teams_bot.replies(PERSONAL)) == 1


async def test_after_a_restart_the_interrupted_reply_is_closed_in_place(
        start_teams: StartTeams, backend: BackendHarness) -> None:
    first = await start_teams(backend)
    release = backend.hold()
    await first.personal("slow question")
    await backend.wait_asked()
    [placeholder] = await first.wait_replies(PERSONAL)
    await first.client.close()  # the process goes away mid-run
    release.set()  # the backend goes on with its work meanwhile

    second = await start_teams(backend)  # same database: picks the run up at start
    if backend.resumable:
        await second.wait_finished(PERSONAL)
    await second.connector.wait_for(lambda: "Reference" in card_text(placeholder.card)
                                    or "Answered in" in card_text(placeholder.card))
    text = card_text(placeholder.card)
    if not backend.resumable:
        assert "interrupted by a restart" in text  # closed visibly, not left "working"
    assert not stop_buttons(placeholder.card)
    assert len(second.replies(PERSONAL)) == 1  # updated in place, via the stored serviceUrl


async def test_activities_from_another_tenant_are_ignored(start_teams: StartTeams,
                                                          backend: BackendHarness) -> None:
    bot = await start_teams(backend, TEAMS_TENANT_ID="11111111-0000-4000-8000-00000000ffff")
    await bot.personal("Revenue by state")  # the harness's tenant is not this one
    await quiet(bot.service)  # the work that could still send
    assert backend.questions() == [] and bot.connector.calls == []


async def test_charts_drawn_at_2x_are_scaled_down_for_teams(start_teams: StartTeams,
                                                             backend: BackendHarness) -> None:
    if not backend.renders_vega:
        pytest.skip("only charts we render ourselves (Vega-Lite) are drawn at CHART_SCALE")
    bot = await start_teams(backend, CHART_SCALE=2.0, CHART_WIDTH=720, CHART_HEIGHT=420)
    await bot.personal("Which states pay the most?")
    await bot.wait_finished(PERSONAL)
    [reply] = bot.replies(PERSONAL)
    [image] = actions_of(reply.card, "Image")
    png = base64.b64decode(image["url"].split(",", 1)[1])
    width, height = png_size(png)
    assert max(width, height) <= 1024 and len(png) <= 150_000
    assert width > 1000  # shrunk to fit, not to a thumbnail
