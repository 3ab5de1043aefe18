"""Follow one ClickZetta question by polling until it ends.

Shared by ``ask`` (after submitting) and ``resume`` (after a restart, with a question id the
relay stored): both just poll. The poll answer is cumulative, so every poll is translated in
full and only parts that changed since the last poll are yielded.

Ending rules, in order of precedence:

1. the last item is ``finish`` / ``finish_stop`` / ``error`` → DONE / STOPPED / FAILED;
2. a stop was requested and the backend has not confirmed within the grace (polls or seconds)
   → STOPPED anyway, so a lost stop never leaves the chat spinning;
3. the overall time limit passed → ask the backend to stop, then FAILED "took longer than N s".

A refusal (``success:false``) while polling is final (unknown question, no permission), and so is
an answer past the size cap (a cumulative answer only grows); network trouble, 5xx, non-JSON and
malformed answers are retried up to ``poll_error_limit`` polls in a row.
"""

from __future__ import annotations

import asyncio
import logging
import time
from dataclasses import dataclass
from typing import AsyncIterator, Awaitable, Callable

from adapters.answer import (
    ChartPart, ErrorPart, Finished, Outcome, Part, PartUpsert, TextPart, Update,
)
from adapters.clickzetta.charts import ChartMaker, table_id
from adapters.clickzetta.client import (
    ApiFailure, AuthError, ClickZettaClient, ClickZettaError, OversizedResponse,
)
from adapters.clickzetta.items import translate
from adapters.clickzetta.settings import ClickZettaSettings

log = logging.getLogger(__name__)

ERROR_PART_ID = "cz-error"


def error_part(exc: ClickZettaError, context: str) -> ErrorPart:
    return ErrorPart(id=ERROR_PART_ID, message=f"{context}: {exc.message}", code=exc.code)


def failed(exc: ClickZettaError, context: str) -> Finished:
    return Finished(Outcome.FAILED, error_part(exc, context))


@dataclass
class RunControl:
    """What ``stop`` and the poll loop share about one question in flight."""

    session_id: str | None
    question_id: str
    stop_requested_at: float | None = None
    polls_since_stop: int = 0

    @property
    def stop_requested(self) -> bool:
        return self.stop_requested_at is not None


class QuestionFollower:
    def __init__(self, settings: ClickZettaSettings, client: ClickZettaClient, charts: ChartMaker, *,
                 clock: Callable[[], float] = time.monotonic,
                 sleep: Callable[[float], Awaitable[None]] = asyncio.sleep) -> None:
        self._settings = settings
        self._client = client
        self._charts = charts
        self._clock = clock
        self._sleep = sleep

    async def follow(self, control: RunControl) -> AsyncIterator[Update]:
        settings = self._settings
        deadline = self._clock() + settings.overall_timeout
        shown: dict[str, Part] = {}
        errors = 0
        while True:
            items = None
            try:
                items = await self._client.poll(control.question_id)
                errors = 0
            except (ApiFailure, AuthError, OversizedResponse) as exc:
                yield failed(exc, "Could not fetch the analysis results")
                return
            except ClickZettaError as exc:
                errors += 1
                log.warning("ClickZetta poll %d/%d for question %s failed: %s",
                            errors, settings.poll_error_limit, control.question_id, exc.message)
                if errors >= settings.poll_error_limit:
                    yield failed(exc, "Could not fetch the analysis results")
                    return
            if items is not None:
                view = translate(items)
                for part in self._withdrawals(view.withdrawn, shown):
                    shown[part.id] = part
                    yield PartUpsert(part)
                for part in await self._complete(view.parts):
                    if shown.get(part.id) != part:
                        shown[part.id] = part
                        yield PartUpsert(part)
                if view.finished is not None:
                    yield view.finished
                    return
            if control.stop_requested_at is not None:
                control.polls_since_stop += 1
                waited = self._clock() - control.stop_requested_at
                if control.polls_since_stop >= settings.stop_grace_polls or waited >= settings.stop_grace_seconds:
                    log.info("ClickZetta did not confirm the stop of question %s; ending it here",
                             control.question_id)
                    yield Finished(Outcome.STOPPED)
                    return
            if self._clock() >= deadline:
                yield await self._time_out(control)
                return
            await self._sleep(settings.poll_interval)

    async def _complete(self, parts: tuple[Part, ...]) -> list[Part]:
        """Charts drawn from the warehouse, each followed by its result table."""
        out: list[Part] = []
        for part in parts:
            if isinstance(part, ChartPart):
                chart, table = await self._charts.make(part)
                out.append(chart)
                if table is not None:
                    out.append(table)
            else:
                out.append(part)
        return out

    @staticmethod
    def _withdrawals(withdrawn: tuple[str, ...], shown: dict[str, Part]) -> list[Part]:
        """Empty text in place of shown parts that left the answer (and the tables of withdrawn
        charts): the answer model has no removal, and an empty text part is shown nowhere."""
        out: list[Part] = []
        for part_id in withdrawn:
            for pid in (part_id, table_id(part_id)):
                if pid in shown and shown[pid] != TextPart(pid, ""):
                    out.append(TextPart(pid, ""))
        return out

    async def _time_out(self, control: RunControl) -> Finished:
        limit = self._settings.overall_timeout
        log.warning("ClickZetta question %s took longer than %g s; stopping it", control.question_id, limit)
        try:
            await self._client.stop(control.session_id, control.question_id)
        except ClickZettaError as exc:
            log.info("could not stop ClickZetta question %s: %s", control.question_id, exc.message)
        return Finished(Outcome.FAILED, ErrorPart(
            id=ERROR_PART_ID, code="timeout",
            message=f"ClickZetta took longer than {limit:g} s, so the analysis was stopped."))
