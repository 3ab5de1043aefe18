"""The delivery scheduler's limiter: windows, priorities, progress headroom, holds."""

from __future__ import annotations

import asyncio
import random

import pytest

from bot.delivery.limiter import Limiter, SlotTimeout, Window
from bot.delivery.priority import Priority
from bot.delivery.scheduler import Per, Rule, Scheduler, Scope, first_slot


def call(limiter: Limiter) -> float:
    """A call made and answered at once (what acquire() plus the platform client do)."""
    stamp = limiter._grant()
    limiter.completed(stamp)
    return stamp


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_never_more_than_the_limit_in_any_window() -> None:
    clock = Clock()
    limiter = Limiter([Window(5, 10.0)], clock=clock)
    rng = random.Random(7)
    granted: list[float] = []
    for _ in range(400):
        clock.now += rng.choice([0.0, 0.1, 0.5, 1.0, 3.0])
        if rng.random() < 0.3:
            stamp = limiter.try_progress()
            if stamp is not None:
                limiter.completed(stamp)
                granted.append(clock.now)
        elif limiter.free_at() <= clock.now:
            call(limiter)
            granted.append(clock.now)
    assert granted
    for t in granted:  # every 10-second window, wherever it starts
        assert sum(1 for g in granted if t <= g < t + 10.0) <= 5


def test_room_counts_what_every_window_still_admits() -> None:
    clock = Clock()
    limiter = Limiter([Window(3, 60.0), Window(2, 1.0)], clock=clock)
    assert limiter.room() == 2
    call(limiter)
    assert limiter.room() == 1
    clock.now += 2.0
    assert limiter.room() == 2  # the one-second window emptied; the minute has 2 left
    limiter.hold(5.0)
    assert limiter.room() == 0  # a 429 holds the method


def test_full_window_frees_when_its_oldest_grant_leaves() -> None:
    clock = Clock()
    limiter = Limiter([Window(3, 10.0)], clock=clock)
    for step in range(3):
        clock.now = 100.0 + step
        assert limiter.free_at() == clock.now
        call(limiter)
    assert limiter.free_at() == 110.0  # 100 + 10: the first of the three leaves the window


def test_several_windows_all_hold() -> None:
    clock = Clock()
    limiter = Limiter([Window(2, 1.0), Window(3, 30.0)], clock=clock)  # Teams-like
    call(limiter)
    call(limiter)
    assert limiter.free_at() == 101.0  # the per-second window
    clock.now = 101.0
    call(limiter)
    assert limiter.free_at() == 130.0  # now the 30-second window is full


def test_progress_is_spread_out() -> None:
    clock = Clock()
    limiter = Limiter([Window(9, 60.0)], progress_share=2 / 3, clock=clock)
    assert limiter.progress_spacing == 10.0  # 6 progress grants per 60 s, evenly
    assert limiter.try_progress() is not None
    assert limiter.try_progress() is None  # too soon after the last one
    clock.now += 9.9
    assert limiter.try_progress() is None
    clock.now += 0.1
    assert limiter.try_progress() is not None


def test_progress_leaves_headroom_for_finals() -> None:
    clock = Clock()
    limiter = Limiter([Window(9, 60.0)], progress_share=2 / 3, clock=clock)
    for _ in range(6):
        call(limiter)  # six finals went out this minute
    assert limiter.try_progress() is None  # progress may not use the last third of the window
    assert limiter.free_at() == clock.now  # ...which is still there for finals


async def test_waiters_are_served_by_priority_then_arrival() -> None:
    limiter = Limiter([Window(1, 0.05)])
    limiter.completed(await limiter.acquire(Priority.ACK))  # the window is now full
    order: list[str] = []

    async def ask(name: str, priority: Priority) -> None:
        stamp = await limiter.acquire(priority)
        order.append(name)
        limiter.completed(stamp)

    tasks = [asyncio.create_task(ask(n, p)) for n, p in
             [("final-1", Priority.FINAL), ("housekeeping", Priority.HOUSEKEEPING),
              ("final-2", Priority.FINAL), ("placeholder", Priority.PLACEHOLDER)]]
    await asyncio.sleep(0)
    assert limiter.try_progress() is None  # progress never jumps the queue, nor joins it
    await asyncio.wait_for(asyncio.gather(*tasks), 2)
    assert order == ["placeholder", "final-1", "final-2", "housekeeping"]


async def test_progress_never_queues() -> None:
    with pytest.raises(ValueError):
        await Limiter([Window(1, 1.0)]).acquire(Priority.PROGRESS)


async def test_a_wait_that_cannot_be_met_fails_without_blocking_others() -> None:
    limiter = Limiter([Window(1, 0.3)])
    limiter.completed(await limiter.acquire(Priority.ACK))
    with pytest.raises(SlotTimeout):
        await limiter.acquire(Priority.FINAL, timeout=0.05)  # certain at once: fails fast
    limiter.hold(0.0)
    waiter = asyncio.create_task(limiter.acquire(Priority.FINAL, timeout=1.0))
    await asyncio.wait_for(waiter, 2)  # granted when the window frees, not blocked by the failed one


def test_hold_stops_every_grant_for_retry_after() -> None:
    clock = Clock()
    limiter = Limiter([Window(50, 60.0)], clock=clock)
    limiter.hold(7.0)
    assert limiter.free_at() == 107.0
    assert limiter.try_progress() is None
    clock.now = 107.0
    assert limiter.try_progress() is not None


def test_scheduler_keys_budgets_per_workspace_channel_or_thread() -> None:
    scheduler = Scheduler({
        "chat.update": Rule((Window(45, 60),)),
        "chat.postMessage": Rule((Window(1, 1.1),), per=Per.CHANNEL),
        "post": Rule((Window(7, 1),), budget="send"),
        "put": Rule((Window(7, 1),), budget="send"),
    })
    a, b = Scope("T1", "C1", "1.0"), Scope("T1", "C2", "2.0")
    assert scheduler.limiter("chat.update", a) is scheduler.limiter("chat.update", b)
    assert scheduler.limiter("chat.postMessage", a) is not scheduler.limiter("chat.postMessage", b)
    assert scheduler.limiter("post", a) is scheduler.limiter("put", a)  # one shared budget
    assert scheduler.limiter("users.info", a) is None  # no rule: not limited here


def test_progress_interval_grows_with_live_replies() -> None:
    scheduler = Scheduler({"chat.update": Rule((Window(45, 60),))}, progress_share=2 / 3)
    scope = Scope("T1")
    scheduler.enter("T1")
    assert scheduler.progress_interval("chat.update", scope, 1.5) == 2.0  # 30 per minute
    for _ in range(29):
        scheduler.enter("T1")
    # thirty live replies: each may edit once a minute, together thirty edits a minute
    assert scheduler.progress_interval("chat.update", scope, 1.5) == 60.0
    assert scheduler.progress_interval("chat.update", Scope("T2"), 1.5) == 1.5


async def test_first_slot_takes_whichever_budget_frees_first() -> None:
    scheduler = Scheduler({"chat.delete": Rule((Window(1, 5.0),)),
                           "chat.update": Rule((Window(1, 5.0),))})
    scope = Scope("T1")
    deletes = scheduler.limiter("chat.delete", scope)
    deletes.completed(await deletes.acquire(Priority.ACK))  # deletes are spent
    method, grant = await first_slot(scheduler, ["chat.delete", "chat.update"], scope,
                                     Priority.HOUSEKEEPING)
    assert method == "chat.update" and grant is not None
    assert scheduler.limiter("chat.delete", scope).waiting == 0  # the losing wait was withdrawn


def test_a_slot_counts_from_when_its_call_was_answered() -> None:
    clock = Clock()
    limiter = Limiter([Window(1, 1.1)], clock=clock)  # chat.postMessage in one channel
    stamp = limiter._grant()
    clock.now += 0.3  # the request left late, or Slack took its time to answer
    assert limiter.free_at() == clock.now + 1.1  # in flight: as if it went out just now
    limiter.completed(stamp)
    assert limiter.free_at() == 100.3 + 1.1  # not 100 + 1.1: the next post cannot arrive early


def test_a_grant_nobody_reports_is_released_in_the_end() -> None:
    clock = Clock()
    limiter = Limiter([Window(1, 1.0)], clock=clock)
    limiter._grant()  # granted, then the caller vanished without a call
    clock.now += 29.0
    assert limiter.free_at() > clock.now
    clock.now += 2.0
    assert limiter.free_at() == clock.now


def test_a_stream_starts_only_while_both_tier2_budgets_keep_their_reserve() -> None:
    from bot.slack.stream_budget import StreamBudget

    clock = Clock()
    scheduler = Scheduler({"chat.startStream": Rule((Window(100, 60.0),)),
                           "chat.stopStream": Rule((Window(5, 60.0),))}, clock=clock)
    budget = StreamBudget(scheduler, reserve=2)
    scope = Scope("T1", "C1", "1.0")
    entered = 0
    while budget.try_enter(scope):
        entered += 1
        call(scheduler.limiter("chat.startStream", scope))
    # stops: 5 a minute, 2 kept back: 3 live streams, each with its stop still to come
    assert entered == 3 and budget.live("T1") == 3
    budget.leave("T1")
    call(scheduler.limiter("chat.stopStream", scope))  # that stream's stop
    assert not budget.try_enter(scope)  # 4 left, 2 live streams, 2 kept back
    clock.now += 61
    assert budget.try_enter(scope)

    starts = Scheduler({"chat.startStream": Rule((Window(3, 60.0),))}, clock=clock)
    budget = StreamBudget(starts, reserve=1)
    assert budget.try_enter(scope)
    call(starts.limiter("chat.startStream", scope))
    call(starts.limiter("chat.startStream", scope))
    assert not budget.try_enter(scope)  # the start budget is down to its reserve
