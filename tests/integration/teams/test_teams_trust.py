"""Answers an analyst can read and trust, in Teams: the AI label, Teams' own feedback controls
(and the votes they send), suggested follow-ups, the asker's language, result tables with their
CSV where Teams allows one, citations, and text in any script arriving whole."""

from __future__ import annotations

import asyncio
import csv
import io
import json
from typing import Any

import pytest

from adapters.wren.language import wren_language
from tests.fakes.teams_connector import TeamsMessage
from tests.fakes.wren import ASK, MULTILINGUAL_SUMMARY_TEXT, FakeWren
from tests.integration.backends import ClickZettaHarness, WrenHarness
from tests.integration.teams.conftest import (
    ADA, BOB, GROUP, PERSONAL, TENANT, StartTeams, TeamsBot, card_text, stop_buttons,
    suggestion_buttons, walk,
)

CONSENT = "application/vnd.microsoft.teams.card.file.consent"
FILE_INFO = "application/vnd.microsoft.teams.card.file.info"
AI_LABEL = {"@type": "Message", "@context": "https://schema.org", "@id": "",
            "type": "https://schema.org/Message", "additionalType": ["AIGeneratedContent"]}


def ai_entities(activity: dict[str, Any]) -> list[dict[str, Any]]:
    return [e for e in activity.get("entities") or [] if e.get("@type") == "Message"]


def labelled(activity: dict[str, Any]) -> bool:
    [entity] = ai_entities(activity)  # Teams refuses a second root message entity
    return all(entity.get(k) == v for k, v in AI_LABEL.items())


def feedback_on(activity: dict[str, Any]) -> bool:
    data = activity.get("channelData") or {}
    assert "feedbackLoopEnabled" not in data  # never both: Teams refuses that
    return data.get("feedbackLoop") == {"type": "default"}


def attachment_of(message: TeamsMessage) -> dict[str, Any]:
    [attachment] = message.activity.get("attachments") or [{}]
    return attachment


@pytest.fixture
async def wren_teams(start_teams: StartTeams, fake_wren: FakeWren) -> TeamsBot:
    return await start_teams(WrenHarness(fake_wren))


def wide_result(rows: int) -> list[dict[str, Any]]:
    return [{"customer_state": f"S{i:03d}", "total_payment_value": i * 1234.5} for i in range(rows)]


# -- AI label and feedback controls ----------------------------------------------------------
async def test_answers_are_labelled_ai_generated_and_carry_teams_feedback(teams_bot: TeamsBot) -> None:
    release = teams_bot.backend.hold()
    await teams_bot.personal("Which states pay the most?")
    await teams_bot.backend.wait_asked()
    [reply] = await teams_bot.wait_replies(PERSONAL)
    placeholder = reply.versions[0]
    assert not feedback_on(placeholder)  # nothing to vote on while it works
    assert not ai_entities(placeholder)  # "Working on it…" is ours, not the agent's
    release.set()
    await teams_bot.wait_finished(PERSONAL)
    [reply] = teams_bot.replies(PERSONAL)
    final = reply.activity
    assert labelled(final) and feedback_on(final)
    assert not stop_buttons(reply.card)
    for version in reply.versions[1:-1]:  # progress that showed the agent's work is labelled too
        if ai_entities(version):
            assert labelled(version) and not feedback_on(version)


async def test_every_message_of_a_long_answer_is_labelled_with_feedback(teams_bot: TeamsBot) -> None:
    teams_bot.backend.answer_next("\n\n".join(f"Paragraph {i}: " + "revenue grew " * 60 for i in range(90)))
    await teams_bot.personal("Explain everything")
    await teams_bot.wait_finished(PERSONAL)
    replies = teams_bot.replies(PERSONAL)
    assert len(replies) >= 3
    assert all(labelled(r.activity) and feedback_on(r.activity) for r in replies)


async def test_a_failed_run_gets_neither_label_nor_feedback(teams_bot: TeamsBot) -> None:
    teams_bot.backend.fail_next()
    await teams_bot.personal("What is the churn of unicorns?")
    await teams_bot.wait_finished(PERSONAL)
    [reply] = teams_bot.replies(PERSONAL)
    assert not feedback_on(reply.activity) and not ai_entities(reply.activity)


# -- feedback votes (message/submitAction) ---------------------------------------------------
async def test_a_feedback_vote_is_stored_and_answered_200_with_an_empty_body(teams_bot: TeamsBot) -> None:
    await teams_bot.group("Which states pay the most?")
    await teams_bot.wait_finished(GROUP)
    [reply] = teams_bot.replies(GROUP)
    [run] = await teams_bot.service.repo.list_runs("teams", TENANT, channel=GROUP)

    body = await teams_bot.vote(reply, "like", user=BOB, text="Exactly what I needed")
    assert body == b""  # Teams shows an error for anything but an empty 200
    run = await teams_bot.service.repo.get_run(run.id)
    assert (run.feedback, run.feedback_by) == ("good", BOB.aad)

    assert await teams_bot.vote(reply, "dislike", user=ADA) == b""
    run = await teams_bot.service.repo.get_run(run.id)
    assert (run.feedback, run.feedback_by) == ("bad", ADA.aad)  # the latest vote wins
    assert teams_bot.replies(GROUP) == [reply]  # Teams thanks the user itself: nothing is sent
    assert len(teams_bot.connector.calls_to("POST")) == 1


async def test_a_vote_on_any_message_of_a_long_answer_counts_for_its_run(teams_bot: TeamsBot) -> None:
    teams_bot.backend.answer_next("\n\n".join(f"Paragraph {i}: " + "revenue grew " * 60 for i in range(90)))
    await teams_bot.personal("Explain everything")
    await teams_bot.wait_finished(PERSONAL)
    first, second, *rest = teams_bot.replies(PERSONAL)
    [run] = await teams_bot.service.repo.list_runs("teams", TENANT, channel=PERSONAL)
    assert run.reply_ts == first.id  # the run stores only where its answer starts
    await teams_bot.vote(rest[-1] if rest else second, "dislike")
    assert (await teams_bot.service.repo.get_run(run.id)).feedback == "bad"
    await teams_bot.vote(second, "like")
    assert (await teams_bot.service.repo.get_run(run.id)).feedback == "good"


async def test_a_vote_that_cannot_be_stored_is_not_acknowledged(teams_bot: TeamsBot) -> None:
    await teams_bot.personal("Which states pay the most?")
    await teams_bot.wait_finished(PERSONAL)
    [reply] = teams_bot.replies(PERSONAL)

    async def broken(*args: Any) -> bool:
        raise RuntimeError("database is down")

    teams_bot.service.repo.set_feedback = broken  # type: ignore[method-assign]
    await teams_bot.vote(reply, "like", expect=500)  # Teams tells the user it did not go through


async def test_votes_that_match_no_run_of_this_conversation_store_nothing(teams_bot: TeamsBot) -> None:
    await teams_bot.personal("Which states pay the most?")
    await teams_bot.wait_finished(PERSONAL)
    [reply] = teams_bot.replies(PERSONAL)
    [run] = await teams_bot.service.repo.list_runs("teams", TENANT, channel=PERSONAL)
    # Teams message ids are unique within a conversation only: the same id elsewhere is not ours
    elsewhere = TeamsMessage(reply.id, GROUP, None, [{}])
    assert await teams_bot.vote(elsewhere, "like") == b""
    unknown = TeamsMessage("1799999999999", PERSONAL, None, [{}])
    assert await teams_bot.vote(unknown, "like") == b""
    _, body = await teams_bot.invoke("message/submitAction", {"actionName": "other"}, reply)
    assert body == b""
    assert (await teams_bot.service.repo.get_run(run.id)).feedback is None


async def test_after_a_restart_a_vote_on_the_answer_still_counts(start_teams: StartTeams,
                                                                 fake_wren: FakeWren) -> None:
    first = await start_teams(WrenHarness(fake_wren))
    await first.personal("Which states pay the most?")
    await first.wait_finished(PERSONAL)
    [reply] = first.replies(PERSONAL)
    await first.client.close()
    second = await start_teams(WrenHarness(fake_wren))  # same database, nothing in memory
    assert await second.vote(reply, "like") == b""
    [run] = await second.service.repo.list_runs("teams", TENANT, channel=PERSONAL)
    assert run.feedback == "good"  # found from the stored serviceUrl and message id


# -- suggested follow-ups --------------------------------------------------------------------
async def test_a_suggestion_asks_its_question_as_whoever_clicked_and_says_so(wren_teams: TeamsBot) -> None:
    bot = wren_teams
    await bot.group("Which states pay the most?")
    [first] = await bot.wait_finished(GROUP)
    [answer] = bot.replies(GROUP)
    buttons = suggestion_buttons(answer.card)
    assert 1 <= len(buttons) <= 3
    question = buttons[0]["data"]["question"]
    click = await bot.press(answer, buttons[0]["data"], user=BOB)

    await bot.wait_finished(GROUP, count=2)
    assert bot.backend.questions() == ["Which states pay the most?", question]
    assert bot.backend.sessions_sent()[1] == first.session_id  # the same conversation goes on
    runs = await bot.service.repo.list_runs("teams", TENANT, channel=GROUP)
    assert runs[0].question == question and runs[0].asker == BOB.aad
    follow_up = bot.replies(GROUP)[1]
    assert follow_up.reply_to_id == click["id"]
    assert follow_up.card["body"][0]["text"] == f"💬 Bob Babbage asked: {question}"
    assert f"💬 Bob Babbage asked: {question}" in card_text(follow_up.versions[0]["attachments"][0]["content"])

    await bot.send(click)  # Teams redelivers a slow click: asked once
    await bot.client.get("/healthz")
    assert len(bot.backend.questions()) == 2


# -- the asker's language ----------------------------------------------------------------------
async def test_the_askers_teams_language_goes_to_the_backend(wren_teams: TeamsBot) -> None:
    bot = wren_teams
    await bot.send(bot.activity("Quais estados pagam mais?", PERSONAL, "personal", locale="pt-BR"))
    await bot.wait_finished(PERSONAL)
    [answer] = bot.replies(PERSONAL)
    [button, *_] = suggestion_buttons(answer.card)
    press = bot.activity("", PERSONAL, "personal", value=button["data"], reply_to_id=answer.id,
                         locale="ja-JP")
    await bot.send(press)
    await bot.wait_finished(PERSONAL, count=2)
    sent = [r.json.get("language") for r in bot.backend.fake.requests_to(ASK)]
    assert sent == [wren_language("pt-BR"), wren_language("ja-JP")] == ["Portuguese", "Japanese"]


# -- result tables and their CSV ---------------------------------------------------------------
async def test_a_cut_result_is_offered_as_csv_in_a_personal_chat(wren_teams: TeamsBot) -> None:
    bot = wren_teams
    bot.backend.fake.script_run_sql(records=wide_result(150))
    await bot.personal("Payments by state")
    await bot.wait_finished(PERSONAL)
    replies = await bot.wait_replies(PERSONAL, predicate=lambda found: any(
        attachment_of(m).get("contentType") == CONSENT for m in found))
    answers = [m for m in replies if m.cards]
    text = "\n".join(card_text(m.card) for m in answers)
    assert "Showing 100 of 150 rows" in text and "All 150 rows are offered as a CSV file below" in text
    shown = [n for m in answers for n in walk(m.card) if n.get("type") == "Table"]
    assert sum(len(t["rows"]) - 1 for t in shown) == 100
    assert shown[0]["columns"][1]["horizontalCellContentAlignment"] == "Right"
    assert shown[0]["rows"][2]["cells"][1]["items"][0]["text"] == "1,234.50"
    [offer] = [m for m in replies if attachment_of(m).get("contentType") == CONSENT]
    assert replies[-1] is offer  # below the answer
    consent = attachment_of(offer)
    assert consent["name"].endswith(".csv") and consent["content"]["sizeInBytes"] > 0
    assert not feedback_on(offer.activity)

    info = {"contentUrl": f"https://contoso.sharepoint.com/personal/ada/Documents/{consent['name']}",
            "name": consent["name"], "uploadUrl": bot.connector.upload_url(consent["name"]),
            "uniqueId": "1150D938-8870-4044-9F2C-5BBDEBA70C8C", "fileType": "csv"}
    allow = {"type": "fileUpload", "action": "accept", "context": consent["content"]["acceptContext"],
             "uploadInfo": info}
    (_, body), _ = await asyncio.gather(bot.invoke("fileConsent/invoke", allow, offer),
                                        bot.invoke("fileConsent/invoke", allow, offer))  # pressed twice
    assert body == b""
    await bot.connector.wait_for(lambda: offer.deleted and any(
        attachment_of(m).get("contentType") == FILE_INFO for m in bot.replies(PERSONAL)))
    await bot.invoke("fileConsent/invoke", allow, offer)  # and once more, after it went through
    await bot.client.get("/healthz")
    assert len([c for c in bot.connector.calls if "/upload/" in c.path]) == 1  # one upload
    assert not [m for m in bot.replies(PERSONAL) if "no longer available" in m.text]
    data = bot.connector.uploads[consent["name"]]
    rows = list(csv.reader(io.StringIO(data.decode("utf-8-sig"))))
    assert rows[0] == ["customer_state", "total_payment_value"] and len(rows) == 151
    assert rows[150][0] == "S149"  # all of them, not the hundred shown
    [card] = [attachment_of(m) for m in bot.replies(PERSONAL) if attachment_of(m).get("contentType") == FILE_INFO]
    assert card["contentUrl"] == info["contentUrl"] and card["content"]["uniqueId"] == info["uniqueId"]
    assert card["name"] == consent["name"]


async def test_a_declined_or_expired_csv_offer(wren_teams: TeamsBot) -> None:
    bot = wren_teams
    bot.backend.fake.script_run_sql(records=wide_result(120))
    await bot.personal("Payments by state")
    await bot.wait_finished(PERSONAL)
    await bot.wait_replies(PERSONAL, predicate=lambda found: any(
        attachment_of(m).get("contentType") == CONSENT for m in found))
    [offer] = [m for m in bot.replies(PERSONAL) if attachment_of(m).get("contentType") == CONSENT]
    context = attachment_of(offer)["content"]["declineContext"]
    _, body = await bot.invoke("fileConsent/invoke", {"type": "fileUpload", "action": "decline",
                                                      "context": context}, offer)
    assert body == b""
    await bot.connector.wait_for(lambda: offer.deleted)
    # a late Allow on the same (forgotten) offer says so instead of failing silently
    await bot.invoke("fileConsent/invoke", {"type": "fileUpload", "action": "accept", "context": context,
                                            "uploadInfo": {"uploadUrl": bot.connector.upload_url("x.csv"),
                                                           "name": "x.csv"}}, offer)
    await bot.connector.wait_for(lambda: any("no longer available" in m.text for m in bot.replies(PERSONAL)))
    assert bot.connector.uploads == {}


async def test_a_failed_upload_is_reported_with_the_reference(wren_teams: TeamsBot) -> None:
    bot = wren_teams
    bot.backend.fake.script_run_sql(records=wide_result(120))
    await bot.personal("Payments by state")
    [answer] = await bot.wait_finished(PERSONAL)
    await bot.wait_replies(PERSONAL, predicate=lambda found: any(
        attachment_of(m).get("contentType") == CONSENT for m in found))
    [offer] = [m for m in bot.replies(PERSONAL) if attachment_of(m).get("contentType") == CONSENT]
    consent = attachment_of(offer)
    bot.connector.fail_uploads = 1
    await bot.invoke("fileConsent/invoke", {"type": "fileUpload", "action": "accept",
                                            "context": consent["content"]["acceptContext"],
                                            "uploadInfo": {"uploadUrl": bot.connector.upload_url("r.csv"),
                                                           "name": "r.csv"}}, offer)
    [run] = await bot.service.repo.list_runs("teams", TENANT, channel=PERSONAL)
    await bot.connector.wait_for(lambda: any("could not be saved" in m.text and run.id in m.text
                                             for m in bot.replies(PERSONAL)))
    assert not offer.deleted  # the user can press Allow again


async def test_in_a_group_chat_the_cut_is_shown_and_no_file_is_pretended(wren_teams: TeamsBot) -> None:
    bot = wren_teams
    bot.backend.fake.script_run_sql(records=wide_result(150))
    await bot.group("Payments by state")
    await bot.wait_finished(GROUP)
    await bot.service.teams.sink_factory().tasks.wait()
    replies = bot.replies(GROUP)
    text = "\n".join(card_text(m.card) for m in replies)
    assert "Showing 100 of 150 rows" in text
    assert "Teams lets bots send files only in personal chats" in text
    assert not [m for m in replies if attachment_of(m).get("contentType") == CONSENT]


# -- citations ----------------------------------------------------------------------------------
async def test_when_only_text_gets_through_what_was_consulted_is_cited(start_teams: StartTeams,
                                                                       fake_clickzetta: Any) -> None:
    bot = await start_teams(ClickZettaHarness(fake_clickzetta))
    bot.connector.fail_next("POST", 413, matching="application/vnd.microsoft.card.adaptive", times=20)
    bot.connector.fail_next("PUT", 413, matching="application/vnd.microsoft.card.adaptive", times=20)
    await bot.personal("Transaction amount by district")
    await bot.wait_finished(PERSONAL)
    texts = [m for m in bot.replies(PERSONAL) if m.text and not m.deleted and "Consulted" in m.text]
    [message] = texts
    assert "📚 Consulted: Beijing Second-hand Housing 10-year Transaction Data [1]" in message.text
    [entity] = ai_entities(message.activity)
    assert entity["additionalType"] == ["AIGeneratedContent"]
    [citation] = entity["citation"]
    assert citation == {"@type": "Claim", "position": 1, "appearance": {
        "@type": "DigitalDocument", "name": "Beijing Second-hand Housing 10-year Transaction Data",
        **({"abstract": citation["appearance"]["abstract"]} if "abstract" in citation["appearance"] else {})}}
    assert feedback_on(message.activity)


# -- any script, whole --------------------------------------------------------------------------
async def test_emoji_cjk_and_rtl_text_arrive_whole(wren_teams: TeamsBot) -> None:
    bot = wren_teams
    bot.backend.fake.script_ask_multilingual()  # escaped as Wren sends it: "\ud83d\udcc8 S\u00e3o …"
    await bot.personal("Sales by language")
    await bot.wait_finished(PERSONAL)
    [reply] = bot.replies(PERSONAL)
    shown = card_text(reply.card)
    assert MULTILINGUAL_SUMMARY_TEXT in shown
    assert "\ufffd" not in json.dumps(reply.activity, ensure_ascii=False)
    assert "\\u" not in shown and "\\n" not in shown  # no escapes left for the reader
    for piece in ("📈", "👍🏽", "👨‍👩‍👧‍👦", "🇧🇷🇯🇵", "北京", "𠀀", "المبيعات ارتفعت ١٢٪", "המכירות עלו"):
        assert piece in shown
    assert reply.activity["summary"].startswith("📈 São Paulo leads 👍🏽")
    for call in bot.connector.calls_to("PUT") + bot.connector.calls_to("POST"):
        assert call.body is not None  # every request was valid UTF-8 JSON
