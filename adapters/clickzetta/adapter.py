"""ClickZettaBackend: the ClickZetta Analytics Agent Open API behind the Backend protocol.

Flow: (create a session) → ``text2insight/query`` → poll ``safe_question_poll`` until the last
item is terminal. What this class adds on top of the poll loop:

* sessions: ``AskRequest.session_id`` ``None`` → a new session; questions in one session run
  one at a time (the vendor warns that concurrent questions corrupt context). A session that
  refuses a question (``success:false`` — a session expired or deleted on the server reads
  "Session does not exist"; the client has already retried once with a renewed token) is tried
  once more in a fresh session, at the first refusal. Only if the fresh session takes the
  question does the thread move to it, with a notice that earlier context is gone; a refusal
  the fresh session shares (a model outage, a wrong setting) fails the run and the thread keeps
  its session and its context;
* run bookkeeping for ``stop`` (cooperative: the poll loop keeps going until the backend says
  ``finish_stop``, so partial results stay) and ``resume`` (re-attach after a restart).
"""

from __future__ import annotations

import asyncio
import logging
import time
import weakref
from collections import OrderedDict
from typing import AsyncIterator, Callable

import httpx

from adapters.answer import PartUpsert, SessionAssigned, TextPart, Update
from adapters.base import AskRequest, Capabilities
from adapters.clickzetta.auth import TokenProvider
from adapters.clickzetta.charts import ChartMaker
from adapters.clickzetta.client import (
    ApiFailure, ClickZettaClient, ClickZettaError, Submitted,
)
from adapters.clickzetta.poller import QuestionFollower, RunControl, failed
from adapters.clickzetta.settings import ClickZettaSettings
from adapters.clickzetta.warehouse import Warehouse
from adapters.http import size_cap_hook

log = logging.getLogger(__name__)

CONTEXT_RESET_PART_ID = "cz-context-reset"
CONTEXT_RESET_NOTICE = ("_ClickZetta no longer accepted this conversation, so I started a new one. "
                        "Earlier questions are not part of its context any more._")
_MAX_REMEMBERED = 10_000


def _canonical_id(raw: str | None) -> str | None:
    """The canonical form of a stored session or question id (a positive integer as text):
    ``""`` when it cannot be used, ``None`` when absent."""
    if raw is None or not str(raw).strip():
        return None
    try:
        number = int(str(raw).strip())
    except ValueError:
        return ""
    return str(number) if number > 0 else ""


def _counts_against_session(exc: ClickZettaError) -> bool:
    """Failures a fresh session might cure: a refusal (``success:false``), the documented answer
    to a session that does not exist. Credentials, the network, HTTP errors (408 on slow
    validation, gateway 5xx) and malformed answers are not the session's fault."""
    return isinstance(exc, ApiFailure)


class ClickZettaBackend:
    name = "clickzetta"
    capabilities = Capabilities(cooperative_stop=True, resumable=True, keeps_context=True)

    def __init__(self, settings: ClickZettaSettings, *, http: httpx.AsyncClient | None = None,
                 warehouse: Warehouse | None = None, clock: Callable[[], float] = time.monotonic) -> None:
        self.settings = settings
        self._owns_http = http is None
        self._http = http or httpx.AsyncClient(
            timeout=settings.request_timeout,
            event_hooks={"response": [size_cap_hook(settings.max_response_bytes)]})
        self.tokens = TokenProvider(self._http, settings.base_url, settings.app_secret_key,
                                    refresh_margin=settings.token_refresh_margin,
                                    request_timeout=settings.request_timeout)
        self.client = ClickZettaClient(settings, self._http, self.tokens)
        if warehouse is None and settings.warehouse_url:
            warehouse = Warehouse(settings.warehouse_url, row_cap=settings.warehouse_row_cap,
                                  timeout=settings.warehouse_timeout)
        self.charts = ChartMaker(warehouse)
        self._clock = clock
        self._follower = QuestionFollower(settings, self.client, self.charts, clock=clock)
        self._locks: weakref.WeakValueDictionary[str, asyncio.Lock] = weakref.WeakValueDictionary()
        self._failures: OrderedDict[str, int] = OrderedDict()
        self._runs: dict[str, RunControl] = {}
        self._stop_sent: OrderedDict[str, None] = OrderedDict()  # runs stopped that we do not follow

    def __repr__(self) -> str:
        return f"ClickZettaBackend(base_url={self.settings.base_url!r})"

    # -- sessions ---------------------------------------------------------------------------
    def _lock_for(self, session_id: str) -> asyncio.Lock:
        lock = self._locks.get(session_id)
        if lock is None:
            lock = asyncio.Lock()
            self._locks[session_id] = lock
        return lock

    def _record_failure(self, session_id: str) -> int:
        count = self._failures.pop(session_id, 0) + 1
        self._failures[session_id] = count
        while len(self._failures) > _MAX_REMEMBERED:
            self._failures.popitem(last=False)
        return count

    @staticmethod
    def _title(question: str) -> str:
        return " ".join(question.split())[:80]

    # -- ask --------------------------------------------------------------------------------
    async def ask(self, request: AskRequest) -> AsyncIterator[Update]:
        session_id = _canonical_id(request.session_id)
        title = self._title(request.question)
        model = request.extra.get("model_name") or self.settings.model_name
        reset = session_id == ""
        if reset:
            log.warning("stored ClickZetta session id %r is unusable; starting a new session",
                        request.session_id)
        if not session_id:
            try:
                session_id = await self.client.new_session(title)
            except ClickZettaError as exc:
                yield failed(exc, "Could not start a ClickZetta conversation")
                return
            yield SessionAssigned(session_id)
            if reset:
                yield PartUpsert(TextPart(id=CONTEXT_RESET_PART_ID, markdown=CONTEXT_RESET_NOTICE))

        async with self._lock_for(session_id):
            submitted: Submitted | None = None
            try:
                submitted = await self.client.submit(session_id, request.question, model)
                self._failures.pop(session_id, None)
            except ClickZettaError as exc:
                count = self._record_failure(session_id) if _counts_against_session(exc) else 0
                if not count or count < self.settings.session_failure_limit:
                    yield failed(exc, "Could not submit the question to ClickZetta")
                    return
                self._failures.pop(session_id, None)
                log.warning("ClickZetta session %s refused %d submission(s) in a row (%s); trying the "
                            "question in a fresh session", session_id, count, exc.code or exc.message)
                try:
                    fresh = await self.client.new_session(title)
                    submitted = await self.client.submit(fresh, request.question, model)
                except ClickZettaError as again:
                    log.info("a fresh ClickZetta session was refused too (%s); the thread keeps "
                             "session %s", again.code or again.message, session_id)
                    yield failed(exc, "Could not submit the question to ClickZetta")
                    return
                yield SessionAssigned(fresh)
                yield PartUpsert(TextPart(id=CONTEXT_RESET_PART_ID, markdown=CONTEXT_RESET_NOTICE))
            async for update in self._follow(submitted.session_id, submitted.question_id):
                yield update

    # -- follow / resume -------------------------------------------------------------------
    async def _follow(self, session_id: str | None, question_id: str) -> AsyncIterator[Update]:
        control = RunControl(session_id=session_id, question_id=question_id)
        if question_id in self._stop_sent:  # stop arrived before we started following
            control.stop_requested_at = self._clock()
        self._runs[question_id] = control
        try:
            if session_id is not None:  # the relay stores the run id to resume after a restart
                yield SessionAssigned(session_id, run_id=question_id)
            async for update in self._follower.follow(control):
                yield update
        finally:
            if self._runs.get(question_id) is control:
                del self._runs[question_id]

    async def resume(self, session_id: str, run_id: str) -> AsyncIterator[Update]:
        """Re-attach to a question in flight before a restart: poll only, never re-submit."""
        session = _canonical_id(session_id) or None
        question = _canonical_id(run_id)
        if not question:
            yield failed(ClickZettaError(f"Not a usable ClickZetta question id: {run_id!r}", code="bad_id"),
                         "Could not resume the analysis")
            return
        if session is None:
            async for update in self._follow(None, question):
                yield update
            return
        async with self._lock_for(session):
            async for update in self._follow(session, question):
                yield update

    # -- stop -------------------------------------------------------------------------------
    async def stop(self, session_id: str | None, run_id: str | None) -> None:
        """Ask ClickZetta to stop; the running ``ask`` ends when the backend confirms (or after
        the grace). Idempotent, and quiet for runs that already finished."""
        question = _canonical_id(run_id) if run_id is not None else None
        if question:
            controls = [self._runs[question]] if question in self._runs else []
        elif run_id is None and session_id:
            controls = [c for c in self._runs.values() if c.session_id == _canonical_id(session_id)]
        else:
            return
        targets: list[tuple[str | None, str]] = []
        for control in controls:
            if not control.stop_requested:
                control.stop_requested_at = self._clock()
                targets.append((control.session_id, control.question_id))
        if not controls and question and question not in self._stop_sent:
            self._stop_sent[question] = None  # not followed here (or finished): tell the backend once
            while len(self._stop_sent) > _MAX_REMEMBERED:
                self._stop_sent.popitem(last=False)
            targets.append((_canonical_id(session_id) or None, question))
        for session, question_id in targets:
            try:
                await self.client.stop(session, question_id)
            except ClickZettaError as exc:  # e.g. "question already completed"
                log.info("ClickZetta did not accept the stop of question %s: %s", question_id, exc.message)
            except Exception:  # stop must never raise; the grace guard ends the run anyway
                log.exception("stopping ClickZetta question %s failed", question_id)

    async def aclose(self) -> None:
        await self.charts.aclose()
        if self._owns_http:
            await self._http.aclose()
