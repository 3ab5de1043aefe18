"""What the relay needs from a chat platform to show one run's reply."""

from __future__ import annotations

from typing import Protocol

from adapters.answer import Answer, ChartPart
from bot.delivery.reply import Receipt
from bot.relay.thread import ThreadRef


class ReplySink(Protocol):
    """Shows one run's answer in one chat thread.

    The relay calls ``open`` once (or not at all when re-attaching after a restart), ``show``
    for every new snapshot — the sink coalesces them, latest wins — and ``close`` once with the
    final snapshot, which the sink must deliver whatever happened before.
    """

    async def open(self, answer: Answer, *, run_id: str, queued_behind: int = 0) -> None:
        """Queue the placeholder and return at once: the backend is asked without waiting for
        the channel's posting slot. ``placed`` tells where it landed."""
        ...

    async def placed(self) -> Receipt | None:
        """Where the placeholder landed, once it did (None when it could not be posted)."""
        ...

    def show(self, answer: Answer) -> None:
        """Offer a new snapshot (non-blocking; intermediate snapshots may be skipped)."""
        ...

    async def close(self, answer: Answer) -> Receipt | None:
        """Deliver the final snapshot (answer, SQL, charts, notices); say where it went.
        Must not raise."""
        ...

    async def add_charts(self, charts: list[ChartPart]) -> None:
        """Charts drawn after the answer went out: show them in the thread, below the answer.
        Called once, after the final answer of a run that had charts drawing, with those drawn
        since (maybe none) — so a sink may hold back what must come after the charts (Slack's
        follow-ups and feedback row) until then. Must not raise."""
        ...

    async def detach(self) -> None:
        """Stop pacing without a final message: the service is shutting down and the reply
        will be completed (or marked interrupted) after the restart. Must not raise."""
        ...


class SinkFactory(Protocol):
    """Builds sinks for one platform (registered with the relay under the platform name)."""

    def for_question(self, ref: ThreadRef, asker: str, *, title: str = "") -> ReplySink:
        """A sink for a new run. ``title``: the question, when it opens the thread's
        conversation (a platform may name the thread after it); empty for follow-ups."""
        ...

    def for_existing_reply(self, ref: ThreadRef, asker: str, reply_channel: str,
                           reply_id: str, run_id: str) -> ReplySink:
        """Re-attach to a reply posted before a restart."""
        ...
