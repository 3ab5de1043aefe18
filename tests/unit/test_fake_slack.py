"""The loopback Slack fake, driven by the real slack_sdk AsyncWebClient."""

from __future__ import annotations

import asyncio
import json
import types

import aiohttp
import pytest
from slack_sdk.errors import SlackApiError
from slack_sdk.http_retry import builtin_async_handlers
from slack_sdk.http_retry.builtin_async_handlers import AsyncRateLimitErrorRetryHandler
from slack_sdk.web.async_client import AsyncWebClient

from tests.fakes.slack import FakeSlack

CH = "C0123456789"
CH2 = "C0987654321"


class Clock:
    """A hand-driven clock for rate-limit windows: no sleeping in tests."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
async def fake():
    async with FakeSlack() as f:
        yield f


@pytest.fixture
def client(fake: FakeSlack) -> AsyncWebClient:
    return AsyncWebClient(token="xoxb-test", base_url=fake.base_url)


async def error_of(coro) -> SlackApiError:
    with pytest.raises(SlackApiError) as info:
        await coro
    return info.value


# --------------------------------------------------------------------------- basics


async def test_auth_test_and_call_recording(fake: FakeSlack, client: AsyncWebClient) -> None:
    assert fake.base_url.startswith("http://127.0.0.1:") and fake.base_url.endswith("/api/")
    resp = await client.auth_test()
    assert (resp["team_id"], resp["user_id"], resp["bot_id"]) == ("T1", "UBOT", "BBOT")
    [call] = fake.calls_to("auth.test")
    assert call.headers["Authorization"] == "Bearer xoxb-test"
    assert call.status == 200 and call.at > 0


async def test_auth_is_configurable() -> None:
    async with FakeSlack(team_id="T9", user_id="U9", bot_id="B9") as fake:
        resp = await AsyncWebClient(token="xoxb-x", base_url=fake.base_url).auth_test()
    assert (resp["team_id"], resp["user_id"], resp["bot_id"]) == ("T9", "U9", "B9")


async def test_bad_or_missing_token(fake: FakeSlack) -> None:
    err = await error_of(AsyncWebClient(token="xoxp-user", base_url=fake.base_url).auth_test())
    assert err.response.status_code == 200 and err.response["error"] == "invalid_auth"
    err = await error_of(AsyncWebClient(base_url=fake.base_url).api_call("auth.test"))
    assert err.response["error"] == "not_authed"


async def test_unknown_method(client: AsyncWebClient) -> None:
    err = await error_of(client.api_call("nope.nothing"))
    assert err.response.status_code == 200
    assert err.response.data == {"ok": False, "error": "unknown_method"}


async def test_reads_query_form_and_json_arguments(fake: FakeSlack) -> None:
    auth = {"Authorization": "Bearer xoxb-test"}
    blocks = [{"type": "section", "text": {"type": "mrkdwn", "text": "hi"}}]
    async with aiohttp.ClientSession(headers=auth) as http:
        await http.post(fake.base_url + "chat.postMessage?channel=" + CH, data={"text": "form"})
        await http.post(fake.base_url + "chat.postMessage",
                        data={"channel": CH, "text": "f2", "blocks": json.dumps(blocks)})
        await http.post(fake.base_url + "chat.postMessage",
                        json={"channel": CH, "text": "json", "blocks": blocks})
    texts = [(m.text, m.blocks) for m in fake.messages(CH)]
    assert texts == [("form", None), ("f2", blocks), ("json", blocks)]


# --------------------------------------------------------------------------- chat


async def test_post_and_update(fake: FakeSlack, client: AsyncWebClient) -> None:
    first = await client.chat_postMessage(channel=CH, text="Working…")
    second = await client.chat_postMessage(channel=CH, text="reply", thread_ts=first["ts"])
    assert first["ts"] == "1700000000.000100"
    assert float(second["ts"]) > float(first["ts"])
    assert first["message"]["user"] == "UBOT" and first["message"]["bot_id"] == "BBOT"
    assert fake.calls_to("chat.postMessage")[0].headers["Content-Type"].startswith(
        "application/json")

    blocks = [{"type": "section", "text": {"type": "mrkdwn", "text": "*Done*"}}]
    upd = await client.chat_update(channel=CH, ts=first["ts"], text="v1")
    assert upd["ts"] == first["ts"]
    await client.chat_update(channel=CH, ts=first["ts"], text="Done", blocks=blocks)

    msg = fake.message(CH, first["ts"])
    assert msg is not None and (msg.text, msg.blocks) == ("Done", blocks)
    assert fake.edits(CH, first["ts"]) == [("v1", None), ("Done", blocks)]
    assert [m.text for m in fake.messages(CH)] == ["Done", "reply"]
    assert [m.text for m in fake.messages(CH, thread_ts=first["ts"])] == ["Done", "reply"]

    err = await error_of(client.chat_update(channel=CH, ts="1.000000", text="x"))
    assert err.response["error"] == "message_not_found"
    user_msg = fake.post_user_message(CH, "question")
    err = await error_of(client.chat_update(channel=CH, ts=user_msg.ts, text="x"))
    assert err.response["error"] == "cant_update_message"


async def test_delete_ephemeral_permalink_reactions(fake: FakeSlack, client: AsyncWebClient) -> None:
    posted = await client.chat_postMessage(channel=CH, text="bye")
    await client.chat_delete(channel=CH, ts=posted["ts"])
    assert fake.messages(CH) == [] and fake.message(CH, posted["ts"]) is None
    err = await error_of(client.chat_delete(channel=CH, ts=posted["ts"]))
    assert err.response["error"] == "message_not_found"

    resp = await client.chat_postEphemeral(channel=CH, user="U1", text="only you")
    assert resp["message_ts"]
    assert [(e.user, e.text) for e in fake.ephemerals] == [("U1", "only you")]

    link = await client.chat_getPermalink(channel=CH, message_ts="1700000000.000100")
    assert link["permalink"] == f"https://fake.slack.test/archives/{CH}/p1700000000000100"

    await client.reactions_add(channel=CH, timestamp="1700000000.000100", name="eyes")
    err = await error_of(client.reactions_add(channel=CH, timestamp="1700000000.000100",
                                              name="eyes"))
    assert err.response["error"] == "already_reacted"
    assert fake.reactions[(CH, "1700000000.000100")] == ["eyes"]


async def test_status_sessions_home_and_dm(fake: FakeSlack, client: AsyncWebClient) -> None:
    root = fake.post_user_message(CH, "<@UBOT> revenue?")
    await client.assistant_threads_setStatus(channel_id=CH, thread_ts=root.ts,
                                             status="is thinking…")
    assert fake.status(CH, root.ts) == "is thinking…"
    await client.chat_postMessage(channel=CH, thread_ts=root.ts, text="answer")
    assert fake.status(CH, root.ts) == ""  # a reply clears it

    await client.agents_sessions_setStatus(channel_id=CH, thread_ts=root.ts, status="processing")
    await client.agents_sessions_setStatus(channel_id=CH, thread_ts=root.ts, status="active")
    assert [s["status"] for s in fake.agent_sessions[(CH, root.ts)]] == ["processing", "active"]

    view = {"type": "home", "blocks": [{"type": "section",
                                        "text": {"type": "mrkdwn", "text": "Hi"}}]}
    await client.views_publish(user_id="U1", view=view)
    assert fake.home_views["U1"]["blocks"] == view["blocks"]

    dm = await client.conversations_open(users="U1")
    again = await client.conversations_open(users="U1")
    assert dm["channel"]["id"].startswith("D") and dm["channel"]["id"] == again["channel"]["id"]

    replies = await client.conversations_replies(channel=CH, ts=root.ts)
    assert [m["text"] for m in replies["messages"]] == ["<@UBOT> revenue?", "answer"]


# --------------------------------------------------------------------------- files


async def test_files_upload_v2_into_thread(fake: FakeSlack, client: AsyncWebClient) -> None:
    root = await client.chat_postMessage(channel=CH, text="Working…")
    png = b"\x89PNG\r\n\x1a\n" + bytes(range(256)) * 40
    resp = await client.files_upload_v2(
        channel=CH, thread_ts=root["ts"], file=png, filename="chart.png",
        title="Revenue by week", alt_txt="Bar chart of revenue", initial_comment="Here it is")
    file_id = resp["file"]["id"]
    assert file_id.startswith("F") and resp["file"]["title"] == "Revenue by week"

    stored = fake.files[file_id]
    assert stored.data == png and stored.title == "Revenue by week"
    assert (stored.channel, stored.thread_ts, stored.alt_txt) == (
        CH, root["ts"], "Bar chart of revenue")
    get_url = fake.calls_to("files.getUploadURLExternal")[0]
    assert get_url.args["filename"] == "chart.png" and get_url.args["length"] == str(len(png))

    share = fake.messages(CH, thread_ts=root["ts"])[-1]
    assert share.subtype == "file_share" and share.text == "Here it is"
    assert share.thread_ts == root["ts"] and share.files[0]["id"] == file_id

    info = await client.files_info(file=file_id)
    assert info["file"]["mimetype"] == "image/png" and info["file"]["size"] == len(png)
    assert info["file"]["shares"]["public"][CH][0]["thread_ts"] == root["ts"]


async def test_files_upload_rejects_user_id_channel(fake: FakeSlack, client: AsyncWebClient) -> None:
    err = await error_of(client.files_upload_v2(channel="U0123456789", content="x",
                                                filename="a.txt"))
    assert err.response["error"] == "invalid_arguments"
    assert fake.messages("U0123456789") == []


# --------------------------------------------------------------------------- limits


async def test_msg_too_long(fake: FakeSlack, client: AsyncWebClient) -> None:
    await client.chat_postMessage(channel=CH, text="x" * 4000)
    err = await error_of(client.chat_postMessage(channel=CH, text="x" * 4001))
    assert err.response.data == {"ok": False, "error": "msg_too_long"}
    posted = fake.messages(CH)[0]
    err = await error_of(client.chat_update(channel=CH, ts=posted.ts, text="y" * 4001))
    assert err.response["error"] == "msg_too_long"
    assert fake.edits(CH, posted.ts) == []


def section(text: str) -> dict:
    return {"type": "section", "text": {"type": "mrkdwn", "text": text}}


@pytest.mark.parametrize("blocks, pointer", [
    ([section("x" * 3001)], "/blocks/0/text/text"),
    ([section("ok")] * 51, "/blocks"),
    ([{"type": "header", "text": {"type": "plain_text", "text": "h" * 151}}], "/blocks/0/text/text"),
    ([{"type": "context", "elements": [{"type": "mrkdwn", "text": "c"}] * 11}], "/blocks/0/elements"),
    ([section("a"), {"type": "actions", "elements": [
        {"type": "button", "text": {"type": "plain_text", "text": "b"}}] * 26}],
     "/blocks/1/elements"),
    ([{"type": "image", "image_url": "https://x.test/a.png", "alt_text": "a" * 2001}],
     "/blocks/0/alt_text"),
    ([{"type": "nonsense"}], "/blocks/0/type"),
])
async def test_invalid_blocks(client: AsyncWebClient, blocks: list, pointer: str) -> None:
    err = await error_of(client.chat_postMessage(channel=CH, text="t", blocks=blocks))
    assert err.response["error"] == "invalid_blocks"
    assert any(e.endswith(f"[json-pointer:{pointer}]") for e in err.response["errors"])


async def test_limits_are_inclusive(fake: FakeSlack, client: AsyncWebClient) -> None:
    blocks = [section("x" * 3000)] + [section("ok")] * 49
    await client.chat_postMessage(channel=CH, text="t", blocks=blocks)
    assert len(fake.messages(CH)[0].blocks or []) == 50


async def test_markdown_blocks_cumulative_budget(client: AsyncWebClient) -> None:
    ok = [{"type": "markdown", "text": "a" * 6000}, {"type": "markdown", "text": "b" * 6000}]
    await client.chat_postMessage(channel=CH, text="t", blocks=ok)
    over = ok + [{"type": "markdown", "text": "c"}]
    err = await error_of(client.chat_postMessage(channel=CH, text="t", blocks=over))
    assert err.response["error"] == "msg_blocks_too_long"


async def test_injected_429_is_retried_by_sdk_handler(
        fake: FakeSlack, client: AsyncWebClient, monkeypatch: pytest.MonkeyPatch) -> None:
    # The handler sleeps Retry-After + random(); pin the jitter so the retry is immediate.
    monkeypatch.setattr(builtin_async_handlers, "random", types.SimpleNamespace(random=lambda: 0.0))
    client.retry_handlers.append(AsyncRateLimitErrorRetryHandler(max_retry_count=1))
    fake.fail_next("chat.postMessage", "ratelimited", status=429, retry_after=0)

    resp = await client.chat_postMessage(channel=CH, text="hello")
    assert resp["ok"]
    first, second = fake.calls_to("chat.postMessage")
    assert first.status == 429 and first.response == {"ok": False, "error": "ratelimited"}
    assert second.status == 200
    assert [m.text for m in fake.messages(CH)] == ["hello"]


async def test_injected_fault_without_retry_handler(fake: FakeSlack, client: AsyncWebClient) -> None:
    fake.fail_next("chat.update", "ratelimited", status=429, retry_after=7)
    fake.fail_next("chat.postMessage", "internal_error", times=2)
    err = await error_of(client.chat_update(channel=CH, ts="1.0", text="x"))
    assert err.response.status_code == 429 and err.response.headers["Retry-After"] == "7"
    for _ in range(2):
        err = await error_of(client.chat_postMessage(channel=CH, text="x"))
        assert err.response["error"] == "internal_error"
    await client.chat_postMessage(channel=CH, text="x")  # the fault is used up


async def test_chat_update_sliding_window() -> None:
    clock = Clock()
    async with FakeSlack(limits={"chat.update": 3}, window_seconds=10, clock=clock) as fake:
        client = AsyncWebClient(token="xoxb-test", base_url=fake.base_url)
        ts = (await client.chat_postMessage(channel=CH, text="0"))["ts"]
        for i in range(3):
            clock.now += 1
            await client.chat_update(channel=CH, ts=ts, text=str(i))
        err = await error_of(client.chat_update(channel=CH, ts=ts, text="over"))
        assert err.response.status_code == 429
        assert err.response.data == {"ok": False, "error": "ratelimited"}
        assert err.response.headers["Retry-After"] == "8"  # oldest call leaves the window in 8 s
        clock.now += 8
        await client.chat_update(channel=CH, ts=ts, text="later")
        assert fake.message(CH, ts).text == "later"  # type: ignore[union-attr]


async def test_post_message_per_channel_bucket() -> None:
    clock = Clock()
    async with FakeSlack(post_message_burst=2, clock=clock) as fake:
        client = AsyncWebClient(token="xoxb-test", base_url=fake.base_url)
        await client.chat_postMessage(channel=CH, text="1")
        await client.chat_postMessage(channel=CH, text="2")
        err = await error_of(client.chat_postMessage(channel=CH, text="3"))
        assert err.response.status_code == 429 and err.response.headers["Retry-After"] == "1"
        await client.chat_postMessage(channel=CH2, text="other channel")  # own bucket
        clock.now += 1.0
        await client.chat_postMessage(channel=CH, text="3")
        assert [m.text for m in fake.messages(CH)] == ["1", "2", "3"]


# --------------------------------------------------------------------------- streaming


async def test_native_stream_and_expiry() -> None:
    clock = Clock()
    async with FakeSlack(stream_ttl=300, clock=clock) as fake:
        client = AsyncWebClient(token="xoxb-test", base_url=fake.base_url)
        root = fake.post_user_message(CH, "question")
        stream = await client.chat_stream(channel=CH, thread_ts=root.ts, buffer_size=5,
                                          recipient_team_id="T1", recipient_user_id="U1")
        await stream.append(markdown_text="Hello ")
        await stream.append(markdown_text="world")
        await stream.stop(blocks=[section("feedback")])
        [msg] = [m for m in fake.messages(CH, root.ts) if m.user == "UBOT"]
        assert msg.text == "Hello world" and not msg.streaming
        assert msg.blocks == [section("feedback")]
        err = await error_of(client.chat_appendStream(channel=CH, ts=msg.ts, markdown_text="x"))
        assert err.response["error"] == "message_not_in_streaming_state"

        started = await client.chat_startStream(channel=CH, thread_ts=root.ts,
                                                recipient_team_id="T1", recipient_user_id="U1")
        clock.now += 301
        err = await error_of(client.chat_appendStream(channel=CH, ts=started["ts"],
                                                      markdown_text="late"))
        assert err.response["error"] == "message_not_in_streaming_state"

        err = await error_of(client.chat_startStream(channel=CH, thread_ts=root.ts))
        assert err.response["error"] == "missing_recipient_user_id"


async def test_stream_chunks_are_validated_and_tasks_kept_as_slack_shows_them(
        fake: FakeSlack, client: AsyncWebClient) -> None:
    root = fake.post_user_message(CH, "question")
    started = await client.chat_startStream(
        channel=CH, thread_ts=root.ts, recipient_team_id="T1", recipient_user_id="U1",
        task_display_mode="plan", chunks=[{"type": "plan_update", "title": "Analysis"},
                                          {"type": "task_update", "id": "a", "title": "Search",
                                           "status": "in_progress", "details": "x"}])
    ts = started["ts"]
    await client.chat_appendStream(channel=CH, ts=ts, chunks=[
        {"type": "task_update", "id": "a", "title": "Search", "status": "complete", "details": "y"}])
    msg = fake.message(CH, ts)
    assert msg.plan_title == "Analysis" and msg.task_display_mode == "plan"
    assert msg.tasks == {"a": {"title": "Search", "status": "complete", "details": "xy", "output": ""}}
    bad = [[{"type": "task_update", "id": "b", "title": "t", "status": "done"}],  # unknown status
           [{"type": "task_update", "id": "b", "title": "t" * 257, "status": "complete"}],
           [{"type": "task_update", "title": "t", "status": "complete"}],  # no id
           [{"type": "sparkles"}],
           [{"type": "task_update", "id": f"n{i}", "title": "t", "status": "complete"}
            for i in range(50)]]  # 51 tasks in all
    for chunks in bad:
        err = await error_of(client.chat_appendStream(channel=CH, ts=ts, chunks=chunks))
        assert err.response["error"] == "invalid_chunks", chunks
    err = await error_of(client.chat_appendStream(channel=CH, ts=ts, markdown_text="m" * 6001,
                                                  chunks=[{"type": "markdown_text", "text": "m" * 6000}]))
    assert err.response["error"] == "msg_too_long"  # 12,000 characters of markdown per call
    assert msg.text == ""  # nothing of a refused call shows
    # a live stream is not edited; once stopped it is
    err = await error_of(client.chat_update(channel=CH, ts=ts, text="answer"))
    assert err.response["error"] == "message_is_streaming"
    await client.chat_stopStream(channel=CH, ts=ts)
    await client.chat_update(channel=CH, ts=ts, text="answer")


async def test_plan_blocks_are_validated(fake: FakeSlack, client: AsyncWebClient) -> None:
    card = {"type": "task_card", "task_id": "a", "title": "Search", "status": "complete"}
    await client.chat_postMessage(channel=CH, text="x", blocks=[
        {"type": "plan", "title": "Analysis", "tasks": [card]}])
    for plan in ({"type": "plan", "title": "Analysis", "tasks": [card, card]},  # repeated id
                 {"type": "plan", "tasks": [card]},
                 {"type": "plan", "title": "A", "tasks": [{**card, "status": "done"}]},
                 {"type": "plan", "title": "A", "tasks": [{**card, "details": "plain"}]}):
        err = await error_of(client.chat_postMessage(channel=CH, text="x", blocks=[plan]))
        assert err.response["error"] == "invalid_blocks", plan


# --------------------------------------------------------------------------- waiting


async def test_wait_for_is_event_driven(fake: FakeSlack, client: AsyncWebClient) -> None:
    task = asyncio.create_task(client.chat_postMessage(channel=CH, text="later"))
    await fake.wait_for(lambda: bool(fake.messages(CH)), timeout=5)
    assert fake.messages(CH)[0].text == "later"
    await task


async def test_wait_for_timeout_explains(fake: FakeSlack, client: AsyncWebClient) -> None:
    await client.chat_postMessage(channel=CH, text="something")
    with pytest.raises(AssertionError, match="chat.postMessage") as info:
        await fake.wait_for(lambda: False, timeout=0.05)
    assert "xoxb" not in str(info.value)


# --------------------------------------------------------------------------- element rules


def button(text: str = "Go", value: str | None = "v", action_id: str = "a", **extra) -> dict:
    out = {"type": "button", "action_id": action_id, "text": {"type": "plain_text", "text": text},
           **extra}
    if value is not None:
        out["value"] = value
    return out


def select(value: str) -> dict:
    return {"type": "static_select", "action_id": "pick",
            "placeholder": {"type": "plain_text", "text": "Pick"},
            "options": [{"text": {"type": "plain_text", "text": "One"}, "value": value}]}


def feedback(value: str) -> dict:
    return {"type": "context_actions", "elements": [{
        "type": "feedback_buttons", "action_id": "fb",
        "positive_button": {"text": {"type": "plain_text", "text": "Good"}, "value": value},
        "negative_button": {"text": {"type": "plain_text", "text": "Bad"}, "value": "bad"}}]}


@pytest.mark.parametrize("blocks, pointer", [
    ([{"type": "actions", "elements": [button("b" * 76)]}], "/blocks/0/elements/0/text/text"),
    ([{"type": "actions", "elements": [button(value="v" * 2001)]}], "/blocks/0/elements/0/value"),
    ([section("s") | {"accessory": button(value="v" * 2001)}], "/blocks/0/accessory/value"),
    ([{"type": "actions", "elements": [button(style="red")]}], "/blocks/0/elements/0/style"),
    ([{"type": "actions", "elements": [button(action_id="a" * 256)]}],
     "/blocks/0/elements/0/action_id"),
    ([{"type": "actions", "elements": [select("o" * 151)]}],
     "/blocks/0/elements/0/options/0/value"),
    ([feedback("g" * 2001)], "/blocks/0/elements/0/positive_button/value"),
    ([{"type": "actions", "elements": [button(action_id="x"), button(action_id="x")]}],
     "/blocks/0/elements/1/action_id"),
    ([section("a") | {"block_id": "b1"}, section("b") | {"block_id": "b1"}], "/blocks/1/block_id"),
    ([section("")], "/blocks/0/text/text"),
    ([{"type": "context", "elements": [{"type": "mrkdwn", "text": ""}]}],
     "/blocks/0/elements/0/text"),
    ([{"type": "header", "text": {"type": "mrkdwn", "text": "h"}}], "/blocks/0/text/type"),
    ([{"type": "section"}], "/blocks/0"),
])
async def test_element_rules(client: AsyncWebClient, blocks: list, pointer: str) -> None:
    err = await error_of(client.chat_postMessage(channel=CH, text="t", blocks=blocks))
    assert err.response["error"] == "invalid_blocks"
    assert any(e.endswith(f"[json-pointer:{pointer}]") for e in err.response["errors"])
    messages = err.response["response_metadata"]["messages"]
    assert messages and all(m.startswith("[ERROR] ") for m in messages)
    assert any(m.endswith(f"[json-pointer:{pointer}]") for m in messages)


async def test_element_limits_are_inclusive(fake: FakeSlack, client: AsyncWebClient) -> None:
    blocks = [{"type": "actions", "block_id": "one", "elements": [
                  button("b" * 75, "v" * 2000, action_id="x"), select("o" * 150)]},
              # the same action_id in another block is fine: Slack wants it unique per block
              {"type": "actions", "block_id": "two", "elements": [button(action_id="x")]},
              section("s") | {"accessory": button(action_id="x")},
              feedback("g" * 2000)]
    await client.chat_postMessage(channel=CH, text="t", blocks=blocks)
    assert fake.messages(CH)[0].blocks == blocks


@pytest.mark.filterwarnings("ignore:The top-level `text` argument is missing")
async def test_no_text(fake: FakeSlack, client: AsyncWebClient) -> None:
    err = await error_of(client.chat_postMessage(channel=CH, text=""))
    assert err.response["error"] == "no_text"
    ts = (await client.chat_postMessage(channel=CH, text="x"))["ts"]
    err = await error_of(client.chat_update(channel=CH, ts=ts, text="", blocks=[]))
    assert err.response["error"] == "no_text"
    await client.chat_update(channel=CH, ts=ts, text="", blocks=[section("only blocks")])
    assert fake.message(CH, ts).blocks == [section("only blocks")]  # type: ignore[union-attr]


# --------------------------------------------------------------------------- views


def pointer_messages(err: SlackApiError) -> list[str]:
    assert err.response["error"] == "invalid_arguments"
    return err.response["response_metadata"]["messages"]


async def test_views_publish_is_checked(fake: FakeSlack, client: AsyncWebClient) -> None:
    ok = {"type": "home", "blocks": [section("Hi"), {"type": "actions",
                                                      "elements": [button("Older")]}]}
    await client.views_publish(user_id="U1", view=ok)
    assert fake.home_views["U1"]["blocks"] == ok["blocks"]
    for view, pointer in [
        ({"type": "modal", "blocks": [section("x")]}, "/view/type"),
        ({"type": "home", "blocks": []}, "/view/blocks"),
        ({"type": "home", "blocks": [section("x")] * 101}, "/view/blocks"),
        ({"type": "home", "blocks": [{"type": "actions", "elements": [button("b" * 76)]}]},
         "/view/blocks/0/elements/0/text/text"),
        ({"type": "home", "blocks": [section("x" * 3001)]}, "/view/blocks/0/text/text"),
        ({"type": "home", "blocks": [section("a") | {"block_id": "k"},
                                     section("b") | {"block_id": "k"}]}, "/view/blocks/1/block_id"),
    ]:
        messages = pointer_messages(await error_of(client.views_publish(user_id="U2", view=view)))
        assert any(m.endswith(f"[json-pointer:{pointer}]") for m in messages), (pointer, messages)
    assert "U2" not in fake.home_views
    # a home tab takes 100 blocks and no message text budget
    await client.views_publish(user_id="U3", view={"type": "home",
                                                   "blocks": [section("y" * 3000)] * 100})


async def test_views_open_is_checked(fake: FakeSlack, client: AsyncWebClient) -> None:
    title = {"type": "plain_text", "text": "SQL"}
    ok = {"type": "modal", "title": title, "close": {"type": "plain_text", "text": "Close"},
          "blocks": [section("select 1")]}
    await client.views_open(trigger_id="1.2", view=ok)
    assert fake.opened_views[0]["blocks"] == ok["blocks"]
    text_input = {"type": "input", "label": {"type": "plain_text", "text": "Q"},
                  "element": {"type": "plain_text_input", "action_id": "q"}}
    for view, pointer in [
        ({**ok, "title": {"type": "plain_text", "text": "t" * 25}}, "/view/title/text"),
        ({**ok, "title": {"type": "plain_text", "text": ""}}, "/view/title/text"),
        ({**ok, "close": {"type": "plain_text", "text": "c" * 25}}, "/view/close/text"),
        ({**ok, "type": "home"}, "/view/type"),
        ({**ok, "blocks": [text_input]}, "/view/submit"),
        ({**ok, "blocks": [section("")]}, "/view/blocks/0/text/text"),
    ]:
        messages = pointer_messages(await error_of(client.views_open(trigger_id="1.2", view=view)))
        assert any(m.endswith(f"[json-pointer:{pointer}]") for m in messages), (pointer, messages)
    assert len(fake.opened_views) == 1


# --------------------------------------------------------------------------- response_url


async def test_response_url_bodies_are_checked(fake: FakeSlack) -> None:
    from slack_sdk.webhook.async_client import AsyncWebhookClient  # what Bolt's respond uses

    hook = AsyncWebhookClient(fake.base_url.rsplit("/api/", 1)[0] + "/respond/U1")
    ok = await hook.send(text="fallback", response_type="ephemeral",
                         blocks=[section("hi"), {"type": "actions", "elements": [button()]}])
    assert (ok.status_code, ok.body) == (200, "ok")
    assert await hook.send_dict({"delete_original": True}) is not None
    for body, error in [
        ({"response_type": "ephemeral", "text": "t",
          "blocks": [{"type": "actions", "elements": [button("b" * 76)]}]}, "invalid_blocks"),
        ({"text": "t", "blocks": [section("ok")] * 51}, "invalid_blocks"),
        ({"text": "t", "blocks": [section("a") | {"block_id": "k"},
                                  section("b") | {"block_id": "k"}]}, "invalid_blocks"),
        ({"response_type": "ephemeral"}, "no_text"),
        ({"response_type": "ephemeral", "text": "", "blocks": []}, "no_text"),
        ({"response_type": "private", "text": "t"}, "invalid_payload"),
        ({"text": "t", "replace_original": "true"}, "invalid_payload"),
        ({"text": "x" * 4001}, "msg_too_long"),
    ]:
        resp = await hook.send_dict(body)
        assert (resp.status_code, resp.body) == (400, error), body
    assert [who for who, _ in fake.responses] == ["U1", "U1"]
    assert len(fake.refused_responses) == 8
    refused = [c for c in fake.calls_to("respond") if c.status == 400]
    assert len(refused) == 8 and refused[0].response["errors"]  # pointers kept for a test's eyes
