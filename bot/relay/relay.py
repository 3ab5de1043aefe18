"""The relay: thread → conversation → backend session, one run at a time per thread.

A run goes through these steps, each of which leaves a visible trace for the user:

1. the question is recorded and a placeholder is posted at once (saying so when it must wait
   for an earlier question in the same thread);
2. when its turn comes, the backend is asked; every update is folded into the Answer, charts are
   rendered to PNG, and the snapshot is offered to the sink (which coalesces edits);
3. the run ends exactly once — answered, stopped, failed or timed out — the final snapshot is
   stored with the run and delivered; errors carry the run id as their reference.

Stopping cancels the backend work (cooperatively for polled backends, by cancelling the
request for the others) and keeps whatever arrived. After a restart, runs of resumable backends
are re-attached to their reply; the others are closed with a visible "interrupted" notice.

Several backends can serve one relay: each question goes to a backend *profile*
(:mod:`bot.profiles`). A new conversation takes the profile its place routes to
(:meth:`Relay.route`, which platforms call before asking); the conversation stores it, and every
later question of the thread — and a run resumed after a restart — uses that stored profile,
whatever the routes say by then. A profile may bound its runs at once (the others wait, saying
so) and the length of one run.
"""

from __future__ import annotations

import asyncio
import enum
import logging
import time
from dataclasses import replace
from datetime import timedelta
from typing import Any, Callable

from adapters.answer import (
    Answer, ChartPart, ErrorPart, Finished, Outcome, PartUpsert, SessionAssigned, StatusPart,
    Update,
)
from adapters.base import AskRequest, Backend, BackendError
from bot.metrics import Metrics
from bot.profiles import Profile, Profiles
from bot.routing import Place
from bot.delivery.reply import Receipt
from bot.relay.drawings import ChartRendering, Drawings
from bot.relay.live import LiveRun, LiveRuns
from bot.relay.profile_choice import ProfileChoice, Routing
from bot.relay.sink import SinkFactory
from bot.relay.snapshot import answer_from_dict, answer_to_dict
from bot.relay.suggestions import with_suggestions
from bot.relay.thread import Question, ThreadRef
from bot.relay.leases import LeaseKeeper, new_replica_id
from storage.repository import Repository, RunRecord

log = logging.getLogger(__name__)

STATUS_ID = "status"
WORKING = "Working on it…"


class StopResult(str, enum.Enum):
    STOPPING = "stopping"
    NOT_ALLOWED = "not_allowed"
    ALREADY_FINISHED = "already_finished"
    ALREADY_STOPPING = "already_stopping"
    NOT_FOUND = "not_found"


class Relay:
    def __init__(self, repo: Repository, backends: Backend | Profiles, *,
                 charts: ChartRendering | None = None,
                 chart_wait: float = 0.3, run_timeout: float = 900.0, stop_grace: float = 30.0,
                 stop_poll_interval: float = 2.0, metrics: Metrics | None = None,
                 replica: str | None = None, lease: float = 30.0) -> None:
        self.repo = repo
        # one backend (no routing file) is one implicit profile
        self.profiles = backends if isinstance(backends, Profiles) else Profiles.single(backends)
        self.choice = ProfileChoice(repo, self.profiles)
        self.charts = charts
        self.chart_wait = chart_wait  # how long a finished answer waits for a chart being drawn
        self._after: set[asyncio.Task[None]] = set()  # late charts, then on_finish
        self.run_timeout = run_timeout
        self.stop_grace = stop_grace
        self.stop_poll_interval = stop_poll_interval
        self._stop_watcher: asyncio.Task[None] | None = None
        self.metrics = metrics or Metrics()
        self.live = LiveRuns()
        self._platforms: dict[str, SinkFactory] = {}
        self._closing = False
        # called after a run's final reply was delivered (tests and benchmarks wait on it)
        self.on_finish: list[Callable[[str, ThreadRef, Answer], None]] = []
        self.replica = replica or new_replica_id()
        self.leases = LeaseKeeper(repo, self.replica, lease,
                                  live_ids=lambda: [r.run_id for r in self.live.all()],
                                  platforms=lambda: list(self._platforms),
                                  on_claimed=self._resume_records, on_lost=self._give_up)

    def register_platform(self, name: str, factory: SinkFactory) -> None:
        self._platforms[name] = factory

    @property
    def backend(self) -> Backend:
        """The primary profile's backend (the only one without a routing file)."""
        return self.profiles.primary.backend

    # -- routing -------------------------------------------------------------------------
    async def route(self, ref: ThreadRef, place: Place) -> Routing:
        """Where a question asked at ``place`` in ``ref`` goes (see :mod:`bot.relay.profile_choice`)."""
        return await self.choice.route(ref, place)

    async def profile_here(self, ref: ThreadRef) -> str | None:
        """The profile the thread ``ref`` keeps, if it has started (for ``/insight-routes``)."""
        return await self.choice.kept(ref)

    # -- asking --------------------------------------------------------------------------
    async def ask(self, question: Question) -> str | None:
        """Record the question and start its run in the background; return the run id, or None
        when its event was handled before (a retry, or a redelivery to another replica).

        ``question.profile`` is what :meth:`route` chose; the thread's stored profile wins over
        it. Raises :class:`NoProfile`, having stored nothing, when no profile applies."""
        ref = question.ref
        profile = await self.choice.for_question(question)
        stored = None if self.profiles.implicit else profile.name
        if question.event_key is not None:
            recorded = await self.repo.record_question(
                question.event_key, ref.platform, ref.workspace, ref.channel, ref.thread,
                profile.kind, question.text, question.asker, owner=self.replica,
                lease=self.leases.lease, profile=stored)
            if recorded is None:
                return None
            conv, record = recorded
        else:
            conv = await self.repo.ensure_conversation(ref.platform, ref.workspace, ref.channel,
                                                       ref.thread, profile.kind, profile=stored)
            record = await self.repo.create_run(conv, question.text, question.asker,
                                                owner=self.replica, lease=self.leases.lease)
        if stored is not None and conv.profile not in (None, profile.name):
            # the thread started elsewhere meanwhile (another replica's first question): it keeps that
            profile = self.profiles.get(conv.profile) or profile
        # a question that opens the thread's conversation names it (Slack's agent session title)
        title = question.text if conv.session_id is None else ""
        sink = self._platforms[ref.platform].for_question(ref, question.asker, title=title)
        live = LiveRun(run_id=record.id, ref=ref, asker=question.asker, question=question.text,
                       sink=sink, profile=profile, language=question.language,
                       language_lookup=asyncio.create_task(question.language_lookup(),
                                                           name=f"language-{record.id}")
                       if question.language_lookup is not None else None)
        ahead = self.live.busy_ahead(ref)
        self.live.add(live)
        live.task = asyncio.create_task(self._run(live, ahead), name=f"run-{record.id}")
        self._watch_remote_stops()
        return record.id

    async def _run(self, live: LiveRun, ahead: int) -> None:
        waiting = ahead > 0
        live.answer = Answer(parts=(StatusPart(STATUS_ID, _queued_text(ahead) if waiting else WORKING),))
        try:
            await self._open_reply(live, queued_behind=ahead)
            turn = await self.live.turn(live.ref, live.stop_event)
            if turn is None:  # stopped while waiting
                await self._finish(live, live.answer.finish(Outcome.STOPPED,
                                                            stopped_by=live.stop_requested_by or ""))
                return
            try:
                await self._answer(live, resume=None)
            finally:
                turn.release()
        except asyncio.CancelledError:
            if not (self._closing or live.given_up):
                raise
            log.info("run %s left for %s", live.run_id,
                     "its new owner" if live.given_up else "resumption at the next start")
            await live.sink.detach()
        finally:
            self.live.remove(live.run_id)

    async def _open_reply(self, live: LiveRun, *, queued_behind: int = 0) -> None:
        """Queue the placeholder (the sink posts it when the channel's turn comes) and record
        where it lands in the background: the backend is asked without waiting for it."""
        try:
            await live.sink.open(live.answer, run_id=live.run_id, queued_behind=queued_behind)
        except Exception:  # no placeholder: keep going, close() posts the answer anew
            log.exception("run %s: could not open the reply", live.run_id)
            return
        live.placing = asyncio.create_task(self._record_placement(live),
                                           name=f"placement-{live.run_id}")

    async def _record_placement(self, live: LiveRun) -> None:
        receipt = await live.sink.placed()
        if receipt is not None:
            await self._remember_reply(live, receipt, "the placeholder")

    async def _remember_reply(self, live: LiveRun, receipt: Receipt, what: str) -> None:
        """Store where the run's reply is (buttons, history links and restarts look it up)."""
        try:
            await self.repo.update_run(live.run_id, reply_channel=receipt.channel,
                                       reply_ts=receipt.message_id)
        except Exception:
            log.exception("run %s: could not record where %s is", live.run_id, what)

    async def _answer(self, live: LiveRun, *, resume: RunRecord | None) -> None:
        """Wait for a free slot of the run's profile, then ask (or re-attach to) its backend
        and finish the run."""
        assert live.profile is not None
        if not await self._take_slot(live, live.profile):
            await self._finish(live, live.answer.finish(Outcome.STOPPED,
                                                        stopped_by=live.stop_requested_by or ""))
            return
        try:
            await self._answer_in_slot(live, live.profile, resume=resume)
        finally:
            if live.profile.slots is not None:
                live.profile.slots.release()

    async def _take_slot(self, live: LiveRun, profile: Profile) -> bool:
        """Wait until the profile runs fewer than its ``MAX_CONCURRENT_RUNS``; False if the run
        was stopped first. Waiting says so in the reply."""
        slots = profile.slots
        if slots is None:
            return True
        if not slots.locked():
            await slots.acquire()  # free: returns at once
            return True
        live.answer = live.answer.upsert(StatusPart(STATUS_ID, _slot_text(profile)))
        live.sink.show(live.answer)
        waiting = self.metrics.profile_runs_waiting.labels(profile.name)
        waiting.inc()
        acquire = asyncio.ensure_future(slots.acquire())
        stopped = asyncio.ensure_future(live.stop_event.wait())
        try:
            await asyncio.wait({acquire, stopped}, return_when=asyncio.FIRST_COMPLETED)
        except BaseException:
            stopped.cancel()
            _give_back(slots, acquire)
            raise
        finally:
            waiting.dec()
        stopped.cancel()
        if acquire.done() and not acquire.cancelled() and not live.stop_event.is_set():
            return True
        _give_back(slots, acquire)
        return False

    async def _answer_in_slot(self, live: LiveRun, profile: Profile, *,
                              resume: RunRecord | None) -> None:
        ref = live.ref
        backend = profile.backend
        run_timeout = profile.run_timeout or self.run_timeout
        if resume is None and not await self._claim_thread(live, run_timeout):
            await self._finish(live, live.answer.finish(Outcome.STOPPED,
                                                        stopped_by=live.stop_requested_by or ""))
            return
        # read after the claim: the run before this one may just have set the session
        conv = await self.repo.get_conversation(ref.platform, ref.workspace, ref.channel, ref.thread)
        session_id = conv.session_id if conv and conv.backend == backend.name else None
        live.started_at = time.monotonic()
        live.drawings = Drawings(self.charts, live.run_id, on_drawn=lambda: self._show_drawn(live))
        if resume is None:
            # the conversation's session is known before the backend confirms it: a stop
            # pressed right away can already cancel on the backend (TextQL v2)
            live.answer = replace(live.answer.upsert(StatusPart(STATUS_ID, WORKING)),
                                  session_id=session_id)
            live.sink.show(live.answer)
            updates = backend.ask(AskRequest(question=live.question, session_id=session_id,
                                             asker=live.asker, language=await live.asker_language()))
        else:
            assert resume.session_id and resume.backend_run_id
            updates = backend.resume(resume.session_id, resume.backend_run_id)
            live.answer = replace(live.answer, session_id=resume.session_id,
                                  run_id=resume.backend_run_id)
        self.metrics.runs_active.inc()
        active = self.metrics.profile_runs_active.labels(profile.name)
        active.inc()
        try:
            live.consumer = asyncio.create_task(self._consume(live, updates, conv.id if conv else None))
            done, _ = await asyncio.wait({live.consumer}, timeout=run_timeout)
            answer = live.answer
            if not done:
                await self._safe_backend_stop(live)
                live.consumer.cancel()
                await asyncio.gather(live.consumer, return_exceptions=True)
                answer = live.answer.finish(Outcome.FAILED, error=ErrorPart(
                    "error", f"The analysis took longer than {int(run_timeout)} s and was stopped.",
                    code="timeout"))
            elif live.consumer.cancelled():
                answer = live.answer.finish(Outcome.STOPPED, stopped_by=live.stop_requested_by or "")
            elif (exc := live.consumer.exception()) is not None:
                answer = self._failure(live, exc)
            elif not answer.outcome.finished:
                answer = answer.finish(Outcome.FAILED, error=ErrorPart(
                    "error", "The analysis ended without an answer.", code="incomplete"))
            if live.stop_requested_by and answer.outcome is Outcome.STOPPED:
                answer = replace(answer, stopped_by=live.stop_requested_by)
            await self._finish(live, answer)
        finally:
            self.metrics.runs_active.dec()
            active.dec()
            if live.consumer and not live.consumer.done():
                live.consumer.cancel()

    async def _claim_thread(self, live: LiveRun, run_timeout: float) -> bool:
        """Wait until no other replica runs a question in this thread; False if stopped first.

        Within one process the thread lock already orders questions; this is the same rule
        across replicas sharing a database.
        """
        said = False
        while True:
            if await self.repo.start_run(live.run_id, stale_after=timedelta(seconds=run_timeout)):
                return True
            if live.stop_event.is_set():
                return False
            record = await self.repo.get_run(live.run_id)
            if record is None or record.status != "queued":  # finished elsewhere meanwhile
                log.warning("run %s is %s, not queued: not starting it", live.run_id,
                            record.status if record else "gone")
                return False
            if not said:
                said = True
                live.answer = live.answer.upsert(StatusPart(STATUS_ID, _queued_text(1)))
                live.sink.show(live.answer)
            try:
                await asyncio.wait_for(live.stop_event.wait(), self.stop_poll_interval)
            except TimeoutError:
                pass

    async def _consume(self, live: LiveRun, updates: Any, conversation_id: int | None) -> None:
        try:
            async for update in updates:
                live.answer = await self._fold(live, live.answer, update, conversation_id)
                if live.drawings is not None:  # charts drawn while the fold awaited
                    live.answer = live.drawings.into(live.answer)
                if live.answer.outcome.finished:
                    break  # the final snapshot goes out through close(), not as a progress edit
                live.sink.show(live.answer)
        finally:
            aclose = getattr(updates, "aclose", None)
            if aclose is not None:
                try:
                    await aclose()
                except Exception:  # pragma: no cover - closing a broken generator
                    log.debug("run %s: closing the backend iterator failed", live.run_id, exc_info=True)

    async def _fold(self, live: LiveRun, answer: Answer, update: Update,
                    conversation_id: int | None) -> Answer:
        if isinstance(update, SessionAssigned):
            if conversation_id is not None and update.session_id != answer.session_id:
                await self.repo.set_session(conversation_id, update.session_id)
            await self.repo.update_run(live.run_id, session_id=update.session_id,
                                       backend_run_id=update.run_id)
        elif isinstance(update, PartUpsert) and isinstance(update.part, ChartPart):
            if live.drawings is not None:
                update = PartUpsert(live.drawings.submit(update.part))
        elif isinstance(update, Finished) and update.outcome is Outcome.DONE:
            answer = answer.upsert(StatusPart(STATUS_ID, ""))
        return answer.apply(update)

    def _failure(self, live: LiveRun, exc: BaseException) -> Answer:
        if isinstance(exc, BackendError):
            error = ErrorPart("error", exc.message, code=exc.code or str(exc.status or ""))
        else:
            log.error("run %s failed", live.run_id, exc_info=exc)
            error = ErrorPart("error", "Something went wrong on our side while running the analysis.",
                              code="internal")
        return live.answer.finish(Outcome.FAILED, error=error)

    async def _finish(self, live: LiveRun, answer: Answer) -> None:
        """Store and deliver the final answer exactly once; errors carry the run id."""
        live.finishing = True
        answer = replace(answer, parts=tuple(
            replace(p, reference=live.run_id) if isinstance(p, ErrorPart) and not p.reference else p
            for p in answer.parts))
        if answer.outcome is not Outcome.DONE:
            answer = answer.upsert(StatusPart(STATUS_ID, ""))
        answer = with_suggestions(answer.with_elapsed(live.elapsed()))
        if live.drawings is not None:  # a chart being drawn may make it, but not hold the answer
            await live.drawings.settle(self.chart_wait)
            answer = live.drawings.into(answer)
        error = "; ".join(e.message for e in answer.errors) or None
        try:
            stored = await self.repo.finish_run(live.run_id, answer.outcome.value, error=error,
                                                answer=answer_to_dict(answer),
                                                stopped_by=answer.stopped_by or None)
        except Exception:  # deliver it anyway: an answer not stored beats one not shown
            log.exception("run %s: could not store the final answer", live.run_id)
        else:
            if stored is None:  # another replica finished it (it took the run over): it answers
                log.warning("run %s was finished elsewhere; not delivering a second answer",
                            live.run_id)
                live.answer = answer
                return
        kind, name = (live.profile.kind, live.profile.name) if live.profile else ("", "")
        self.metrics.runs_finished.labels(kind, answer.outcome.value, name).inc()
        if live.started_at is not None:
            self.metrics.run_seconds.labels(kind, name).observe(live.elapsed())
        live.answer = answer
        receipt = await live.sink.close(answer)
        await self._record_final_place(live, receipt)
        await self._mark_delivered(live.run_id)
        if live.drawings is None:
            self._finished(live, answer)
            return
        live.drawings.mark_delivered(answer)
        task = asyncio.create_task(self._deliver_late_charts(live, answer),
                                   name=f"late-charts-{live.run_id}")
        self._after.add(task)
        task.add_done_callback(self._after.discard)

    async def _mark_delivered(self, run_id: str) -> None:
        try:
            await self.repo.mark_delivered(run_id)
        except Exception:  # it may be delivered again by whoever takes the lease: same reply
            log.warning("run %s: could not record that its answer was delivered", run_id,
                        exc_info=True)

    async def _redeliver(self, live: LiveRun, record: RunRecord) -> None:
        """Show a run's stored final answer: its replica stored it and died before the chat
        had it (or before recording that it had). Its reply is edited again — the same
        content when it did arrive — so the thread ends with exactly one answer."""
        answer = answer_from_dict(record.answer) if record.answer else Answer().finish(
            Outcome.FAILED, error=ErrorPart("error", "This analysis was interrupted by a restart "
                                            "of the bot. Please ask again.", code="interrupted",
                                            reference=record.id))
        live.answer = answer
        receipt = await live.sink.close(answer)
        await self._record_final_place(live, receipt)
        await self._mark_delivered(live.run_id)
        self._finished(live, answer)

    async def _deliver_late_charts(self, live: LiveRun, answer: Answer) -> None:
        """Charts drawn after the answer went out follow it into the thread; the run's turn in
        the thread is not held for them."""
        assert live.drawings is not None
        try:
            await live.sink.add_charts(await live.drawings.late())
        except Exception:
            log.exception("run %s: a chart drawn after the answer could not be delivered",
                          live.run_id)
        finally:
            self._finished(live, answer)

    def _finished(self, live: LiveRun, answer: Answer) -> None:
        for callback in self.on_finish:
            callback(live.run_id, live.ref, answer)

    def _show_drawn(self, live: LiveRun) -> None:
        """A chart finished drawing while the run is still going: show it with the progress."""
        if live.drawings is None or live.finishing or live.answer.outcome.finished:
            return
        drawn = live.drawings.into(live.answer)
        if drawn is not live.answer:
            live.answer = drawn
            live.sink.show(drawn)

    async def _record_final_place(self, live: LiveRun, receipt: Receipt | None) -> None:
        """Remember where the answer went when it is not in the placeholder (posted anew)."""
        if live.placing is not None:
            await asyncio.gather(live.placing, return_exceptions=True)
        if receipt is not None and receipt.moved:
            await self._remember_reply(live, receipt, "the answer")

    # -- stopping ------------------------------------------------------------------------
    async def stop(self, run_id: str, by: str, *, is_admin: bool = False) -> StopResult:
        live = self.live.get(run_id)
        if live is None:
            record = await self.repo.get_run(run_id)
            if record is None:
                return StopResult.NOT_FOUND
            if record.asker != by and not is_admin:
                return StopResult.NOT_ALLOWED
            if record.active:  # running on another replica: it polls for this and stops
                if record.stopped_by:
                    return StopResult.ALREADY_STOPPING
                await self.repo.update_run(run_id, stopped_by=by)
                return StopResult.STOPPING
            return StopResult.ALREADY_FINISHED
        if live.asker != by and not is_admin:
            return StopResult.NOT_ALLOWED
        if live.stop_requested_by:
            return StopResult.ALREADY_STOPPING
        live.stop_requested_by = by
        live.stop_event.set()
        if live.running:
            live.answer = live.answer.upsert(StatusPart(STATUS_ID, "Stopping…"))
            live.sink.show(live.answer)
            asyncio.create_task(self._stop_backend(live), name=f"stop-{run_id}")
        return StopResult.STOPPING

    async def _stop_backend(self, live: LiveRun) -> None:
        consumer = live.consumer
        if live.profile is not None and live.profile.backend.capabilities.cooperative_stop:
            await self._safe_backend_stop(live)
            if consumer is not None:
                _, pending = await asyncio.wait({consumer}, timeout=self.stop_grace)
                if pending:
                    consumer.cancel()
        else:
            if consumer is not None:
                consumer.cancel()
            await self._safe_backend_stop(live)

    async def _safe_backend_stop(self, live: LiveRun) -> None:
        if live.profile is None:  # (its profile is gone: nothing to stop it on)
            return
        try:
            await live.profile.backend.stop(live.answer.session_id, live.answer.run_id)
        except Exception:
            log.warning("run %s: the backend's stop call failed", live.run_id, exc_info=True)

    def _watch_remote_stops(self) -> None:
        if self._stop_watcher is None or self._stop_watcher.done():
            self._stop_watcher = asyncio.create_task(self._remote_stops(), name="remote-stops")

    async def _remote_stops(self) -> None:
        """Honour stops recorded by other replicas for the runs this one executes."""
        while not self._closing and self.live.all():
            await asyncio.sleep(self.stop_poll_interval)
            pending = [r.run_id for r in self.live.all() if not r.stop_requested_by]
            try:
                requests = await self.repo.stop_requests(pending)
            except Exception:
                log.warning("could not check for stop requests", exc_info=True)
                continue
            for run_id, by in requests.items():
                await self.stop(run_id, by, is_admin=True)

    def runs_in_thread(self, ref: ThreadRef) -> list[LiveRun]:
        return self.live.in_thread(ref)

    # -- restart -------------------------------------------------------------------------
    async def resume_unfinished(self) -> int:
        """Pick up the unfinished runs nobody holds (a previous process's, released at its
        shutdown or whose lease ran out — not those live replicas are executing), then keep
        this replica's leases and take over orphans as they appear; return how many were
        touched."""
        touched = await self._resume_records(await self.leases.claim())
        self.leases.start()
        return touched

    async def _give_up(self, run_ids: set[str]) -> None:
        """Runs another replica took over (this one's lease ran out): stop working on them
        without a final message — their new owner answers or closes them."""
        for run_id in run_ids:
            live = self.live.get(run_id)
            if live is None or live.finishing:
                continue
            log.warning("run %s: another replica took it over; leaving it to that one", run_id)
            live.given_up = True
            for task in (live.task, live.consumer):
                if task is not None:
                    task.cancel()

    async def _resume_records(self, records: list[RunRecord]) -> int:
        touched = 0
        for record in records:
            if self.live.get(record.id) or record.platform not in self._platforms:
                continue
            touched += 1
            ref = ThreadRef(record.platform, record.workspace, record.channel, record.thread)
            factory = self._platforms[record.platform]
            if record.reply_ts and record.reply_channel:
                sink = factory.for_existing_reply(ref, record.asker, record.reply_channel,
                                                  record.reply_ts, record.id)
            else:
                sink = factory.for_question(ref, record.asker)
            live = LiveRun(run_id=record.id, ref=ref, asker=record.asker, question=record.question,
                           sink=sink)
            self.live.add(live)
            live.task = asyncio.create_task(self._resume(live, record), name=f"resume-{record.id}")
        if touched:
            self._watch_remote_stops()
        return touched

    async def _resume(self, live: LiveRun, record: RunRecord) -> None:
        try:
            if not record.active:  # finished, stored, never marked delivered
                await self._redeliver(live, record)
                return
            live.profile = await self.choice.for_record(record)
            if not record.reply_ts:
                live.answer = Answer(parts=(StatusPart(STATUS_ID, WORKING),))
                await self._open_reply(live)
            turn = await self.live.turn(live.ref, live.stop_event)
            if turn is None:
                await self._finish(live, live.answer.finish(Outcome.STOPPED,
                                                            stopped_by=live.stop_requested_by or ""))
                return
            try:
                if record.stopped_by:  # stopped while no replica was running it
                    live.stop_requested_by = record.stopped_by
                    if record.session_id and record.backend_run_id:
                        live.answer = replace(live.answer, session_id=record.session_id,
                                              run_id=record.backend_run_id)
                        await self._safe_backend_stop(live)
                    await self._finish(live, live.answer.finish(Outcome.STOPPED,
                                                                stopped_by=record.stopped_by))
                elif live.profile is None:  # its profile left the routing file
                    await self._finish(live, live.answer.finish(Outcome.FAILED, error=ErrorPart(
                        "error", "This analysis was interrupted by a restart of the bot, and the "
                                 "backend profile of this thread is no longer configured. Please "
                                 "start a new thread.", code="interrupted")))
                elif record.status == "queued":
                    await self._answer(live, resume=None)  # never reached the backend: ask now
                elif (live.profile.backend.capabilities.resumable
                      and record.backend == live.profile.kind
                      and record.session_id and record.backend_run_id):
                    await self._answer(live, resume=record)
                else:
                    await self._finish(live, live.answer.finish(Outcome.FAILED, error=ErrorPart(
                        "error", "This analysis was interrupted by a restart of the bot. "
                                 "Please ask again.", code="interrupted")))
            finally:
                turn.release()
        except asyncio.CancelledError:
            if not (self._closing or live.given_up):
                raise
            await live.sink.detach()
        finally:
            self.live.remove(live.run_id)

    async def close(self) -> None:
        """Shut down: leave running runs as they are in storage, their leases released, so
        another replica (or the next start) continues them at once."""
        self._closing = True
        if self._stop_watcher is not None:
            self._stop_watcher.cancel()
        # answers already on their way out are let through (a deploy should not make a finished
        # analysis be delivered again by the next replica); the rest are left in storage
        delivering = [r.task for r in self.live.all() if r.finishing and r.task is not None]
        if delivering:
            await asyncio.wait(delivering, timeout=FINISH_GRACE)
        unfinished = [r.run_id for r in self.live.all()]
        runs = self.live.all()
        tasks = [r.task for r in runs if r.task is not None]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        consumers = [r.consumer for r in runs if r.consumer is not None]
        for consumer in consumers:
            consumer.cancel()
        await asyncio.gather(*consumers, return_exceptions=True)
        for run in runs:
            if run.drawings is not None:
                run.drawings.cancel()
        after = list(self._after)
        for task in after:
            task.cancel()
        await asyncio.gather(*after, return_exceptions=True)
        await self.leases.close(release=unfinished)  # (finished ones stay finished: claims skip them)


FINISH_GRACE = 10.0  # seconds a shutdown waits for answers being delivered


def _slot_text(profile: Profile) -> str:
    return (f"Waiting for a free slot: `{profile.name}` answers {profile.max_concurrent} "
            "questions at a time…")


def _give_back(slots: asyncio.Semaphore, acquire: asyncio.Future[Any]) -> None:
    """Undo a slot wait that lost to a stop: cancel it, or release what it got."""
    if acquire.done() and not acquire.cancelled() and acquire.exception() is None:
        slots.release()
    else:
        acquire.cancel()


def _queued_text(ahead: int) -> str:
    if ahead <= 1:
        return "Waiting for the previous question in this thread to finish…"
    return f"Waiting for {ahead} earlier questions in this thread to finish…"
