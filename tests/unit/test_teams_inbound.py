"""Reading Teams activities: thread mapping, mentions, commands, the event key."""

from __future__ import annotations

from typing import Any

from microsoft_agents.activity import Activity

from bot.relay import ThreadRef
from bot.teams.inbound import clean_text, command_of, event_key, parse_message, thread_ref

BOT = {"id": "28:bot-app-id", "name": "insightbot"}


def activity(text: str = "", *, conversation: str = "a:personal", kind: str = "personal",
             tenant: str | None = "tenant-1", entities: list[dict[str, Any]] | None = None,
             **extra: Any) -> Activity:
    conv: dict[str, Any] = {"id": conversation, "conversationType": kind}
    if tenant:
        conv["tenantId"] = tenant
    body = {"type": "message", "id": "1700000000001", "channelId": "msteams",
            "serviceUrl": "https://smba.trafficmanager.net/amer/", "text": text,
            "from": {"id": "29:ada", "name": "Ada", "aadObjectId": "aad-ada"}, "recipient": BOT,
            "conversation": conv, "entities": entities or [], **extra}
    return Activity.model_validate(body)


def test_personal_chat_is_one_thread() -> None:
    ref = thread_ref(activity(conversation="a:1pL6xyz"))
    assert ref == ThreadRef("teams", "tenant-1", "a:1pL6xyz", "a:1pL6xyz")


def test_channel_thread_keeps_the_root_message_in_the_thread_only() -> None:
    conv = "19:abc@thread.tacv2;messageid=1700000000000"
    ref = thread_ref(activity(conversation=conv, kind="channel"))
    assert ref.channel == "19:abc@thread.tacv2" and ref.thread == conv


def test_tenant_falls_back_to_channel_data() -> None:
    act = activity(tenant=None, channelData={"tenant": {"id": "tenant-from-data"}})
    assert thread_ref(act).workspace == "tenant-from-data"


def test_bot_mention_is_removed_and_other_mentions_become_names() -> None:
    entities = [
        {"type": "mention", "text": "<at>insightbot</at>", "mentioned": BOT},
        {"type": "mention", "text": "<at>Bob Babbage</at>",
         "mentioned": {"id": "29:bob", "name": "Bob Babbage"}},
    ]
    act = activity("<at>insightbot</at> what did <at>Bob Babbage</at> sell&nbsp;in Q1 &amp; Q2?",
                   entities=entities)
    assert clean_text(act) == "what did Bob Babbage sell in Q1 & Q2?"


def test_html_and_whitespace_are_normalised() -> None:
    act = activity("<p>Revenue   by\n<b>state</b></p>")
    assert clean_text(act) == "Revenue by state"
    assert clean_text(activity("is x &lt; 5 for 3 > 2?")) == "is x < 5 for 3 > 2?"


def test_commands() -> None:
    assert command_of("stop") == "stop" and command_of("Stop!") == "stop"
    assert command_of("/cancel") == "stop" and command_of("history") == "history"
    assert command_of("help") == "help" and command_of("?") == "help"
    assert command_of("stop the churn analysis") is None
    assert command_of("history of sales") is None


def test_card_submit_is_an_action_not_a_question() -> None:
    msg = parse_message(activity("", value={"action": "stop", "run_id": "abc"}, replyToId="99"))
    assert msg.action == {"action": "stop", "run_id": "abc"} and msg.command is None
    assert msg.user_id == "aad-ada" and msg.user_name == "Ada"


def test_user_without_entra_id_uses_the_teams_id() -> None:
    act = activity("hi", **{"from": {"id": "29:emulator-user", "name": "Emu"}})
    assert parse_message(act).user_id == "29:emulator-user"


def test_event_key_is_per_conversation() -> None:
    a = event_key(activity(conversation="19:a@thread.v2"))
    b = event_key(activity(conversation="19:b@thread.v2"))
    assert a and b and a != b and a == event_key(activity(conversation="19:a@thread.v2"))
    assert len(event_key(activity(conversation="19:" + "x" * 600))) <= 255
