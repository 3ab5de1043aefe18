"""Coalescing and text splitting: latest state wins, final goes last, nothing is cut."""

import asyncio

from bot.delivery import Coalescer
from bot.delivery.textsplit import split_text


async def test_coalescer_skips_intermediate_states_and_keeps_latest() -> None:
    sent: list[int] = []
    gate = asyncio.Event()

    async def send(state: int) -> None:
        sent.append(state)
        await gate.wait()

    c: Coalescer[int] = Coalescer(send, interval=0)
    c.offer(1)
    await asyncio.sleep(0.01)  # the first edit is on the wire, blocked on the gate
    for i in range(2, 50):
        c.offer(i)
    gate.set()
    for _ in range(20):
        await asyncio.sleep(0.005)
        if sent[-1] == 49:
            break
    assert sent[0] == 1 and sent[-1] == 49 and len(sent) <= 3
    await c.drain()
    c.offer(100)
    await asyncio.sleep(0.01)
    assert 100 not in sent  # nothing is sent after drain


async def test_drain_waits_for_the_edit_in_flight() -> None:
    order: list[str] = []
    release = asyncio.Event()

    async def send(state: str) -> None:
        order.append(f"start {state}")
        await release.wait()
        order.append(f"end {state}")

    c: Coalescer[str] = Coalescer(send, interval=0)
    c.offer("progress")
    await asyncio.sleep(0.01)
    drained = asyncio.create_task(c.drain())
    await asyncio.sleep(0.01)
    assert not drained.done()
    release.set()
    await drained
    order.append("final")
    assert order == ["start progress", "end progress", "final"]


def test_split_text_respects_limit_and_code_fences() -> None:
    text = "intro\n\n```\n" + "\n".join(f"line {i}" for i in range(400)) + "\n```\n\noutro"
    chunks = split_text(text, 500)
    assert all(len(c) <= 500 for c in chunks)
    assert all(c.count("```") % 2 == 0 for c in chunks)
    rebuilt = "".join(chunks)
    for i in range(400):
        assert f"line {i}" in rebuilt
    assert split_text("short", 500) == ["short"]


async def test_coalescer_keeps_the_newest_state_when_the_platform_has_no_slot() -> None:
    sent: list[int] = []
    answers = iter([False, False, True])  # no slot twice, then a slot
    tried = asyncio.Event()

    async def send(state: int) -> bool:
        went = next(answers)
        if went:
            sent.append(state)
            tried.set()
        return went

    c: Coalescer[int] = Coalescer(send, interval=0, retry=0.01)
    c.offer(1)
    await asyncio.sleep(0)
    c.offer(2)  # arrives while the first attempt was refused
    await asyncio.wait_for(tried.wait(), 2)
    assert sent == [2] and c.refused == 2  # refused attempts were dropped, not queued
    await c.drain()
