"""Reading a Teams message activity: which thread, who, what they typed, which command.

Thread mapping (the relay's :class:`~bot.relay.ThreadRef`):

* ``platform`` = ``"teams"`` — Slack and Teams ids can never collide in storage;
* ``workspace`` = the tenant id (``conversation.tenantId``, else ``channelData.tenant.id``);
* ``channel`` = the conversation id without ``;messageid=…`` — the personal chat, the group chat,
  or the team channel; ``history`` lists runs per channel;
* ``thread`` = the full conversation id. In a channel it carries ``;messageid=<root post>``, so
  each reply chain is its own backend session; in personal and group chats it equals
  ``channel`` (those chats have no threads, so the whole chat is one session).

Users are identified by their Entra object id (``from.aadObjectId``) when Teams sends it — it
is stable across chats and is what an admin recognises — and by the bot-scoped ``29:…`` id
otherwise (emulators).
"""

from __future__ import annotations

import hashlib
import html
import re
from dataclasses import dataclass
from typing import Any

from microsoft_agents.activity import Activity

from bot.relay.thread import ThreadRef
from bot.routing import Place
from bot.teams.target import base_conversation_id

PLATFORM = "teams"

_AT = re.compile(r"<at(?:\s[^>]*)?>(.*?)</at>", re.IGNORECASE | re.DOTALL)
_TAG = re.compile(r"</?[a-zA-Z][a-zA-Z0-9]*(?:\s[^<>]*)?/?>")
_STOP = {"stop", "cancel", "abort", "stop it"}
_COMMANDS = {"history": "history", "help": "help", "?": "help", "routes": "routes"}


@dataclass(frozen=True)
class Inbound:
    ref: ThreadRef
    user_id: str
    user_name: str
    text: str  # mentions removed, HTML gone, whitespace collapsed
    command: str | None  # "stop", "history", "help", "routes" or None for a question
    action: dict[str, Any] | None  # the data of an Adaptive Card Action.Submit
    conversation_type: str
    event_key: str | None
    locale: str | None = None  # the sender's Teams language (BCP 47, "pt-BR"), when Teams says
    place: Place | None = None  # where it comes from, as the routes see it


def tenant_of(activity: Activity) -> str:
    tenant = activity.conversation.tenant_id if activity.conversation else None
    if not tenant and isinstance(activity.channel_data, dict):
        tenant = (activity.channel_data.get("tenant") or {}).get("id")
    return tenant or ""


def thread_ref(activity: Activity) -> ThreadRef:
    conversation_id = activity.conversation.id
    return ThreadRef(PLATFORM, tenant_of(activity), base_conversation_id(conversation_id),
                     conversation_id)


def place_of(activity: Activity) -> Place:
    """Where a Teams question comes from, as the routes see it (bot/routing.py): the tenant,
    the conversation (a team channel's id, or the chat's), personal chat or not, and the ids
    of the team a channel belongs to (``channelData.team``: its id and Entra group id)."""
    data = activity.channel_data if isinstance(activity.channel_data, dict) else {}
    team = data.get("team") if isinstance(data.get("team"), dict) else {}
    kind = ((activity.conversation.conversation_type if activity.conversation else None)
            or "personal").lower()
    return Place(PLATFORM, tenant_of(activity), base_conversation_id(activity.conversation.id),
                 dm=kind == "personal",
                 teams=tuple(team[k] for k in ("id", "aadGroupId") if isinstance(team.get(k), str)))


def user_of(activity: Activity) -> tuple[str, str]:
    sender = activity.from_property
    if sender is None:
        return "", ""
    return sender.aad_object_id or sender.id or "", sender.name or ""


def clean_text(activity: Activity) -> str:
    """The question as the user meant it: no bot mention, other mentions as plain names."""
    text = activity.text or ""
    bot = activity.recipient.id if activity.recipient else None
    for mention in activity.get_mentions():
        if mention.mentioned and mention.mentioned.id == bot and mention.text:
            text = text.replace(mention.text, " ")
    text = _AT.sub(lambda m: m.group(1), text)  # another person or the bot under an unknown id
    text = _TAG.sub(" ", text)
    return " ".join(html.unescape(text).replace("\u00a0", " ").split())


def command_of(text: str) -> str | None:
    word = text.strip().lower().lstrip("/").rstrip(".!")
    if word in _STOP:
        return "stop"
    return _COMMANDS.get(word)


def event_key(activity: Activity) -> str | None:
    """Teams message ids are timestamps, unique only within a conversation: key on both."""
    if not activity.id or not activity.conversation:
        return None
    digest = hashlib.sha256(activity.conversation.id.encode()).hexdigest()[:24]
    return f"teams:activity:{digest}:{activity.id}"[:255]


def locale_of(activity: Activity) -> str | None:
    """The sender's language: ``activity.locale``, else the ``clientInfo`` entity's."""
    if activity.locale and activity.locale.strip():
        return activity.locale.strip()
    for entity in activity.entities or []:
        if getattr(entity, "type", None) == "clientInfo":
            locale = (entity.model_extra or {}).get("locale") if entity.model_extra else None
            if isinstance(locale, str) and locale.strip():
                return locale.strip()
    return None


def parse_message(activity: Activity) -> Inbound:
    user_id, user_name = user_of(activity)
    text = clean_text(activity)
    value = activity.value if isinstance(activity.value, dict) else None
    action = value if value and isinstance(value.get("action"), str) else None
    return Inbound(ref=thread_ref(activity), user_id=user_id, user_name=user_name, text=text,
                   command=None if action else command_of(text), action=action,
                   conversation_type=(activity.conversation.conversation_type or "personal"),
                   event_key=event_key(activity), locale=locale_of(activity),
                   place=place_of(activity))
