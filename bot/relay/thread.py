"""Identity of a chat thread and of one question asked in it."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass


@dataclass(frozen=True)
class ThreadRef:
    """A chat thread: the unit that maps to one backend conversation.

    ``platform`` keeps Slack and Teams apart so their ids can never collide; ``thread`` is the
    Slack thread root ``ts`` or the Teams conversation id (with ``;messageid=`` for channels).
    """

    platform: str
    workspace: str
    channel: str
    thread: str

    @property
    def key(self) -> str:
        return f"{self.platform}:{self.workspace}:{self.channel}:{self.thread}"


@dataclass(frozen=True)
class Question:
    ref: ThreadRef
    text: str
    asker: str  # platform user id
    is_admin: bool = False
    language: str | None = None  # the asker's language (BCP 47, e.g. "pt-BR"), when the platform says
    # when the platform must look the language up (Slack's users.info), the lookup: the relay
    # runs it beside posting the placeholder and awaits it only before asking the backend, so
    # the first sign in the thread never waits for it
    language_lookup: Callable[[], Awaitable[str | None]] | None = None
    # the inbound event's key in the event ledger: claimed in the same transaction that records
    # the question, so a duplicate delivery writes nothing and starts nothing
    event_key: str | None = None
    # the backend profile Relay.route chose (the thread's stored profile wins over it); None:
    # the thread's own, else the default
    profile: str | None = None
