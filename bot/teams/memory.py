"""What the Teams side remembers in memory: how to reach a thread, users' display names, and
which run each answer message belongs to.

The relay asks the sink factory for a sink by thread only (``for_question(ref, asker)``), but a
Teams reply needs the conversation reference of the activity being answered. The handler puts
that reference in a context variable around ``relay.ask`` — race-free when two questions reach
the same thread at once — and the latest reference per thread is also kept as a fallback. A
question asked by clicking a suggestion also carries its intro ("Ada asked: …") that way.

A feedback vote names only the message it is on. The run stores where its answer starts
(``reply_ts``); an answer packed into several messages has more, and :class:`AnswerPages`
remembers them all, so a vote on any message of an answer counts for its run. (In memory: after
a restart, or on another replica, only the first message is found — see the integration notes.)

Display names make "Stopped by Ada" readable; Teams sends the name on every activity, and an
unknown name (after a restart) just leaves it out. Both maps are bounded LRUs.
"""

from __future__ import annotations

import contextvars
from collections import OrderedDict
from contextlib import contextmanager
from typing import Generic, Iterator, TypeVar

from bot.relay.thread import ThreadRef
from bot.teams.target import ReplyTarget, base_conversation_id

K = TypeVar("K")
V = TypeVar("V")

_current: contextvars.ContextVar[tuple[str, ReplyTarget, str] | None] = contextvars.ContextVar(
    "teams_reply_target", default=None)


class _Lru(Generic[K, V]):
    def __init__(self, limit: int) -> None:
        self._items: OrderedDict[K, V] = OrderedDict()
        self._limit = limit

    def put(self, key: K, value: V) -> None:
        self._items[key] = value
        self._items.move_to_end(key)
        while len(self._items) > self._limit:
            self._items.popitem(last=False)

    def get(self, key: K) -> V | None:
        value = self._items.get(key)
        if value is not None:
            self._items.move_to_end(key)
        return value


class TargetBook:
    def __init__(self, limit: int = 10_000) -> None:
        self._latest: _Lru[str, ReplyTarget] = _Lru(limit)

    @contextmanager
    def answering(self, ref: ThreadRef, target: ReplyTarget, *, intro: str = "") -> Iterator[None]:
        """Within this block, sinks created for ``ref`` reply through ``target`` (and open their
        reply with ``intro``)."""
        self._latest.put(ref.key, target)
        token = _current.set((ref.key, target, intro))
        try:
            yield
        finally:
            _current.reset(token)

    def lookup(self, ref: ThreadRef) -> ReplyTarget | None:
        current = _current.get()
        if current is not None and current[0] == ref.key:
            return current[1]
        return self._latest.get(ref.key)

    def intro(self, ref: ThreadRef) -> str:
        current = _current.get()
        return current[2] if current is not None and current[0] == ref.key else ""


class NameBook:
    def __init__(self, limit: int = 10_000) -> None:
        self._names: _Lru[str, str] = _Lru(limit)

    def remember(self, user_id: str, name: str) -> None:
        if user_id and name:
            self._names.put(user_id, name)

    def __call__(self, user_id: str) -> str:
        return self._names.get(user_id) or ""


class AnswerPages:
    """Message id → run id for every message of a final answer (bounded LRU)."""

    def __init__(self, limit: int = 50_000) -> None:
        self._runs: _Lru[tuple[str, str], str] = _Lru(limit)

    def remember(self, conversation_id: str, message_id: str, run_id: str) -> None:
        self._runs.put((base_conversation_id(conversation_id), message_id), run_id)

    def run_of(self, conversation_id: str, message_id: str) -> str | None:
        return self._runs.get((base_conversation_id(conversation_id), message_id))
