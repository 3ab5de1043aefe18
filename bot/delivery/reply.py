"""The reply lifecycle every chat platform shares: placeholder, progress, final — never lost.

One run's reply goes through three phases, each with a guarantee that does not depend on the
platform:

* **Placeholder.** ``open`` queues the placeholder for the channel's next posting slot and
  returns at once, so the backend is asked without waiting for it. What the post carries is
  decided only when its slot comes: if the answer is already there by then, the answer is posted
  instead and no placeholder ever exists.
* **Progress.** Snapshots go through a :class:`~bot.delivery.coalescer.Coalescer` (latest wins)
  whose interval grows with the number of live replies sharing the budget; an edit is made only
  when the budget has a slot *for progress* (see ``Limiter.try_progress``) and is otherwise
  dropped.
* **Final.** Never held hostage by an edit: the answer replaces the placeholder only if that
  edit can happen within about a second. When the budget is spent, the placeholder is gone or
  the edit fails, the answer is posted as a new message (with retries, under the posting limit)
  and the placeholder is retired afterwards in the background, so no "working…" reply with a live
  Stop button stays behind. Content the platform refuses is sent again in a plainer rendering.
  ``close`` reports where the answer went (:class:`Receipt`) and never raises.

Platforms implement the primitives (post, edit, retire, renderings) and a few hooks.
"""

from __future__ import annotations

import abc
import asyncio
import logging
from dataclasses import dataclass
from typing import Generic, TypeVar

from adapters.answer import Answer, ChartPart, SqlPart
from bot.delivery.coalescer import Coalescer
from bot.delivery.errors import DeliveryError, Gone, Refused, Rejected, Unavailable
from bot.delivery.limiter import SlotTimeout
from bot.delivery.priority import Priority
from bot.delivery.scheduler import Scheduler, Scope
from bot.delivery.sqlformat import format_ahead
from bot.delivery.tasks import BackgroundTasks

log = logging.getLogger(__name__)

M = TypeVar("M")
RETIRE_ATTEMPTS = 8  # with the doubling backoff: a few minutes of trying


@dataclass(frozen=True)
class Receipt:
    """Where a reply ended up. ``moved``: the answer is a new message, not the placeholder."""

    channel: str
    message_id: str
    moved: bool = False


@dataclass(frozen=True)
class Timing:
    """The lifecycle's knobs (settings; tests shorten them)."""

    progress_interval: float = 1.5  # minimum seconds between progress edits of one message
    final_edit_wait: float = 1.0  # longest wait for an edit slot before the answer is posted anew
    final_edit_timeout: float = 3.0  # longest an edit request may take before it counts as failed
    final_attempts: int = 5  # tries to post an answer through server errors and network trouble
    retry_backoff: float = 0.5  # first pause between those tries; doubles


class ReplyLifecycle(abc.ABC, Generic[M]):
    #: the platform methods whose budgets pace posting and editing (keys of the scheduler's rules)
    POST_METHOD: str
    EDIT_METHOD: str

    def __init__(self, *, scheduler: Scheduler, scope: Scope, tasks: BackgroundTasks,
                 timing: Timing, reply_id: str | None = None, run_id: str = "") -> None:
        self.run_id = run_id
        self.reply_id = reply_id
        self.scope = scope
        self._scheduler = scheduler
        self._tasks = tasks
        self._timing = timing
        self._coalescer: Coalescer[Answer] = Coalescer(self._progress, interval=self._interval,
                                                       retry=self._retry_interval)
        self._placing: asyncio.Task[None] | None = None
        self._final_first: M | None = None
        self._placed_final = False
        self._place_error: BaseException | None = None
        self._latest: Answer | None = None
        self._sql_ready: set[str] = set()  # SQL already formatted (off the loop) for rendering
        self._live = True
        scheduler.enter(scope.workspace)

    # -- the ReplySink protocol --------------------------------------------------------------
    async def open(self, answer: Answer, *, run_id: str, queued_behind: int = 0) -> None:
        """Queue the placeholder; returns at once (see :meth:`placed`)."""
        self.run_id = run_id
        self._latest = answer
        self._placing = asyncio.create_task(self._place(), name=f"placeholder-{run_id}")
        self._on_open(answer, waiting=self._must_wait_to_post())

    async def placed(self) -> Receipt | None:
        """Where the placeholder landed, once it did (None if it never did)."""
        if self._placing is not None:
            await asyncio.shield(self._placing)
        return Receipt(self.channel, self.reply_id) if self.reply_id else None

    def show(self, answer: Answer) -> None:
        self._latest = answer
        self._coalescer.offer(answer)
        self._on_progress(answer)

    async def close(self, answer: Answer) -> Receipt | None:
        await self._coalescer.drain()
        self._latest = answer
        receipt: Receipt | None = None
        try:
            receipt = await self._deliver(answer)
        except Exception:
            log.exception("run %s: the final reply could not be delivered", self.run_id)
            receipt = await self._last_resort()
        try:
            await self._after_final(answer, receipt)
        except Exception:
            log.warning("run %s: bookkeeping after the final reply failed", self.run_id, exc_info=True)
        self._leave()
        return receipt

    async def _last_resort(self) -> Receipt | None:
        """The answer could not be shown at all: say so, with the reference, rather than leave
        "working…" behind. Must not raise."""
        notice = self._notice(f"Sorry — this answer could not be shown here. "
                              f"Reference: {self.run_id}")
        if notice is None:
            return None
        try:
            if self.reply_id is not None:
                try:
                    await self._edit(self.reply_id, notice, priority=Priority.FINAL,
                                     wait=self._timing.final_edit_wait, retries=1)
                    return Receipt(self.channel, self.reply_id)
                except (DeliveryError, SlotTimeout):
                    pass
            return Receipt(self.channel, await self._post_durably(notice), moved=True)
        except Exception:
            log.exception("run %s: not even a notice could be shown", self.run_id)
            return None

    def _notice(self, text: str) -> M | None:
        """A one-line plain message (the platform's simplest form), or None if it has none."""
        return None

    async def add_charts(self, charts: list[ChartPart]) -> None:
        try:
            await self._deliver_charts(charts)
        except Exception:
            log.exception("run %s: a chart drawn after the answer could not be shown", self.run_id)

    async def detach(self) -> None:
        await self._coalescer.drain()
        if self._placing is not None and not self._placing.done():
            self._placing.cancel()
            await asyncio.gather(self._placing, return_exceptions=True)
        self._leave()

    # -- primitives and hooks the platform provides ------------------------------------------
    @property
    @abc.abstractmethod
    def channel(self) -> str:
        """Where replies go (what the relay stores as the reply's channel)."""

    @abc.abstractmethod
    async def _post(self, message: M, *, priority: Priority, grant: float | None = None) -> str:
        """Post a new message in the thread; return its id. ``grant``: the slot the caller took
        already (see ``Limiter.acquire``). Raises DeliveryError/SlotTimeout."""

    @abc.abstractmethod
    async def _edit(self, message_id: str, message: M, *, priority: Priority,
                    wait: float | None = None, retries: int = 3, grant: float | None = None) -> None:
        """Replace a message. Raises DeliveryError (Gone when it no longer exists)/SlotTimeout."""

    @abc.abstractmethod
    async def _retire(self, message_id: str) -> None:
        """Take a placeholder whose answer was posted anew out of the way (delete it, or turn it
        into a one-line pointer) under the housekeeping priority."""

    @abc.abstractmethod
    def _progress_message(self, answer: Answer) -> M:
        """The placeholder as it should look for this snapshot."""

    @abc.abstractmethod
    async def _final_variants(self, answer: Answer) -> list[list[M]]:
        """Renderings of the final answer, richest first; each is one or more messages."""

    async def _post_placeholder(self, answer: Answer, *, grant: float | None) -> str:
        """Post the reply that shows progress (a platform may stream it natively instead)."""
        return await self._post(self._progress_message(answer), priority=Priority.PLACEHOLDER,
                                grant=grant)

    def _on_open(self, answer: Answer, *, waiting: bool) -> None:
        """The placeholder was queued; ``waiting``: it cannot be posted at once."""

    def _on_progress(self, answer: Answer) -> None:
        """A new snapshot was offered (the platform may show it some other way too)."""

    def _chose_variant(self, index: int) -> None:
        """The rendering ``index`` of :meth:`_final_variants` was accepted."""

    async def _deliver_extras(self, answer: Answer) -> None:
        """After the answer's messages: anything else that belongs to it (uploads)."""

    async def _after_final(self, answer: Answer, receipt: Receipt | None) -> None:
        """Bookkeeping once the final reply is out (best effort)."""

    @abc.abstractmethod
    async def _deliver_charts(self, charts: list[ChartPart]) -> None:
        """Show charts drawn after the answer went out, below it."""

    # -- placeholder -----------------------------------------------------------------------
    def _must_wait_to_post(self) -> bool:
        limiter = self._scheduler.limiter(self.POST_METHOD, self.scope)
        return limiter is not None and not limiter.ready()

    async def _place(self) -> None:
        """Post the placeholder when the channel's turn comes — or the answer, if it is ready."""
        try:
            limiter = self._scheduler.limiter(self.POST_METHOD, self.scope)
            grant = None
            if limiter is not None:
                grant = await limiter.acquire(Priority.PLACEHOLDER)
            final = self._final_first
            if final is None:
                await self._format_sql(self._latest or Answer())
            if final is not None:
                self.reply_id = await self._post(final, priority=Priority.PLACEHOLDER, grant=grant)
            else:
                self.reply_id = await self._post_placeholder(self._latest or Answer(), grant=grant)
            self._placed_final = final is not None
            self._coalescer.mark_sent()
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # the final delivery posts anew when there is no placeholder
            self._place_error = exc
            log.warning("run %s: could not post the placeholder: %s", self.run_id, exc)

    # -- progress --------------------------------------------------------------------------
    def _interval(self) -> float:
        return self._scheduler.progress_interval(self.EDIT_METHOD, self.scope,
                                                 self._timing.progress_interval)

    def _retry_interval(self) -> float:
        limiter = self._scheduler.limiter(self.EDIT_METHOD, self.scope)
        spacing = limiter.progress_spacing if limiter is not None else self._timing.progress_interval
        return min(self._interval(), spacing)

    async def _progress(self, answer: Answer) -> bool:
        if self._placing is not None and not self._placing.done():
            return True  # the pending placeholder post will carry the newest snapshot
        if self.reply_id is None:
            return True
        limiter = self._scheduler.limiter(self.EDIT_METHOD, self.scope)
        grant = limiter.try_progress() if limiter is not None else None
        if limiter is not None and grant is None:
            return False
        try:
            await self._format_sql(answer)
            message = self._progress_message(answer)
        except BaseException:
            if limiter is not None and grant is not None:
                limiter.completed(grant)  # the slot goes back unused
            raise
        await self._edit(self.reply_id, message, priority=Priority.PROGRESS, retries=0, grant=grant)
        return True

    async def _format_sql(self, answer: Answer) -> None:
        """Format the answer's new SQL in a thread, so rendering it does not hold the loop."""
        queries = {p.sql for p in answer.parts if isinstance(p, (SqlPart, ChartPart)) and p.sql}
        new = queries - self._sql_ready
        if new:
            await format_ahead(new)
            self._sql_ready |= new

    # -- final -----------------------------------------------------------------------------
    async def _deliver(self, answer: Answer) -> Receipt:
        last: Rejected | None = None
        await self._format_sql(answer)
        variants = await self._final_variants(answer)
        for i, variant in enumerate(variants):
            try:
                receipt = await self._deliver_first(variant[0], plainest=i == len(variants) - 1)
            except Rejected as exc:
                log.warning("run %s: the platform refused the answer (%s); sending it plainer",
                            self.run_id, exc.code or exc)
                last = exc
                continue
            self._chose_variant(i)
            for message in variant[1:]:
                try:
                    await self._post_durably(message)
                except DeliveryError as exc:  # keep going: the rest of the answer still matters
                    log.error("run %s: part of the answer could not be posted: %s", self.run_id,
                              _describe(exc))
            await self._deliver_extras(answer)
            return receipt
        raise last or Rejected("no rendering of the answer was accepted")

    async def _deliver_first(self, message: M, *, plainest: bool = False) -> Receipt:
        """Put the answer's first message where the user looks: in place of the placeholder if
        that works within about a second, else as a new message (the placeholder is retired).
        ``plainest``: no simpler rendering is left, so a refused edit is posted anew as well."""
        if self._placing is not None and not self._placing.done():
            self._final_first = message  # the queued placeholder post carries the answer instead
            await asyncio.shield(self._placing)
            self._final_first = None
            if self._placed_final:
                self._placed_final = False
                return Receipt(self.channel, self.reply_id or "")
            error, self._place_error = self._place_error, None
            if isinstance(error, Rejected):
                raise error
        stale: str | None = None
        if self.reply_id is not None:
            try:
                await asyncio.wait_for(
                    self._edit(self.reply_id, message, priority=Priority.FINAL,
                               wait=self._timing.final_edit_wait, retries=2),
                    self._timing.final_edit_wait + self._timing.final_edit_timeout)
                return Receipt(self.channel, self.reply_id)
            except Rejected as exc:
                if not plainest:
                    raise
                log.info("run %s: the placeholder refuses even the plain answer (%s); posting it "
                         "as a new message", self.run_id, _describe(exc))
                stale = self.reply_id
            except Gone:
                log.info("run %s: the placeholder is gone; posting the answer anew", self.run_id)
            except (SlotTimeout, TimeoutError, DeliveryError) as exc:
                log.info("run %s: the answer cannot replace the placeholder now (%s); posting it "
                         "as a new message", self.run_id, _describe(exc))
                stale = self.reply_id
        self.reply_id = await self._post_durably(message)
        if stale is not None:
            self._tasks.spawn(self._retire_safely(stale), name=f"retire-{self.run_id}")
        return Receipt(self.channel, self.reply_id, moved=True)

    async def _post_durably(self, message: M) -> str:
        """Post under the final priority, through server errors and network trouble."""
        delay = self._timing.retry_backoff
        for attempt in range(1, self._timing.final_attempts + 1):
            try:
                return await self._post(message, priority=Priority.FINAL)
            except (Rejected, Refused):
                raise
            except (Unavailable, SlotTimeout) as exc:
                if attempt == self._timing.final_attempts:
                    raise
                log.info("run %s: posting the answer failed (%s); retrying in %.1f s",
                         self.run_id, _describe(exc), delay)
                await asyncio.sleep(delay)
                delay *= 2
        raise AssertionError("unreachable")

    async def _retire_safely(self, message_id: str) -> None:
        """Retire an old placeholder, trying again through transient failures: a "working…"
        message with a live Stop button must not stay behind."""
        delay = self._timing.retry_backoff
        for attempt in range(1, RETIRE_ATTEMPTS + 1):
            try:
                await self._retire(message_id)
                return
            except (Unavailable, SlotTimeout) as exc:
                if attempt == RETIRE_ATTEMPTS:
                    log.warning("run %s: the old placeholder %s could not be retired: %s",
                                self.run_id, message_id, _describe(exc))
                    return
                await asyncio.sleep(delay)
                delay = min(delay * 2, 60.0)
            except Exception as exc:
                log.warning("run %s: the old placeholder %s could not be retired: %s", self.run_id,
                            message_id, _describe(exc))
                return

    def _leave(self) -> None:
        if self._live:
            self._live = False
            self._scheduler.leave(self.scope.workspace)


def _describe(exc: BaseException) -> str:
    code = getattr(exc, "code", "")
    return f"{type(exc).__name__}{f' {code}' if code else ''}: {exc}".strip()

