"""Backend faults on every adapter (issue 12): each ends the run visibly in Slack, in bounded
time and memory.

Every backend (through its harness settings, base URL pointed at :class:`FaultServer`) meets
every fault of :mod:`tests.fakes.faults`. The run must end ``failed`` with an error that carries
the run id as its reference; the Slack reply must show it, with no Stop button and no "working"
line left; nothing users read may hold the backend's URL or key. Time is bounded by short
settings (0.5 s read/idle timeouts; ``wait_finished``'s 10 s), not by timed asserts. Memory: the
huge answer's server holds back its tail until the client hangs up, so a client that read it all
could not finish — the test sees the bot drop the connection part-way — and tracemalloc's peak over
the run stays under twice the cap (about 9 MiB for the 8 MiB cap; an uncapped read of the same
10 MB body peaks near 30 MiB).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import tracemalloc
from typing import Callable, Iterator

import pytest

from adapters.http import DEFAULT_MAX_RESPONSE_BYTES
from tests.fakes.faults import HUGE_BYTES, NO_REQUEST_ARRIVES, WIRES, Fault, FaultServer
from tests.integration.backends import BackendHarness
from tests.integration.conftest import CHANNEL, BotFactory, SlackBot, blocks_text

BASE_URL_SETTING = {"wren": "WREN_BASE_URL", "clickzetta": "CLICKZETTA_BASE_URL",
                    "textql": "TEXTQL_BASE_URL"}
SECRET_SETTINGS = ("WREN_API_KEY", "CLICKZETTA_APP_SECRET_KEY", "TEXTQL_API_KEY")
SHORT_TIMEOUTS = dict(WREN_TIMEOUT=0.5, CLICKZETTA_REQUEST_TIMEOUT=0.5,
                      TEXTQL_STREAM_IDLE_TIMEOUT=0.5)

# the error code each backend gives each fault (shown in Slack next to the reference)
CODES: dict[Fault, dict[str, str]] = {
    Fault.REFUSED: {"wren": "connect", "clickzetta": "network", "textql": "unreachable"},
    Fault.TLS_UNTRUSTED: {"wren": "tls", "clickzetta": "tls", "textql": "tls"},
    Fault.TLS_PLAIN_HTTP: {"wren": "tls", "clickzetta": "tls", "textql": "tls"},
    Fault.SLOW_LORIS: {"wren": "timeout", "clickzetta": "timeout", "textql": "timeout"},
    Fault.HUGE_BODY: {"wren": "too_large", "clickzetta": "too_large", "textql": "too_large"},
    Fault.WRONG_CONTENT_TYPE: {"wren": "bad_response", "clickzetta": "bad_response",
                               "textql": "bad_response"},
    Fault.JSON_NOT_SSE: {"wren": "bad_response", "clickzetta": "bad_response",
                         "textql": "bad_response"},
}
# words of the message a user can act on, where the code alone says little
WORDS = {Fault.TLS_UNTRUSTED: "TLS", Fault.TLS_PLAIN_HTTP: "TLS", Fault.HUGE_BODY: "larger than"}
SHOWS_HOST: set[tuple[str, Fault]] = set()  # no reply may name the backend's host:port


@pytest.mark.parametrize("fault", list(Fault), ids=[f.value for f in Fault])
async def test_fault_ends_the_run_visibly(start_bot, backend: BackendHarness, fault: Fault) -> None:
    """Each backend as its harness configures it (Wren streaming, TextQL v2, ClickZetta)."""
    await _fault_ends_the_run_visibly(start_bot, backend, fault, backend.name, {})


# The same faults through each backend's other wire: Wren's one-shot /ask, TextQL's legacy stream.
OTHER_WIRES = [pytest.param("wren", "wren:ask", {"WREN_STREAM": False}, id="wren-ask"),
               pytest.param("textql", "textql:legacy", {"TEXTQL_MODE": "legacy"}, id="textql-legacy")]


@pytest.mark.parametrize("fault", list(Fault), ids=[f.value for f in Fault])
@pytest.mark.parametrize("backend, wire, mode", OTHER_WIRES, indirect=["backend"])
async def test_fault_on_the_other_wire(start_bot, backend: BackendHarness, wire: str,
                                       mode: dict[str, object], fault: Fault) -> None:
    await _fault_ends_the_run_visibly(start_bot, backend, fault, wire, mode)


@pytest.mark.parametrize("backend", ["textql"], indirect=True)
async def test_huge_stream_of_junk_lines(start_bot, backend: BackendHarness) -> None:
    """10 MB of one-line junk events (``data: x``): skipped and capped, read in linear time (a
    parser that re-read the pending lines on each new one never got to the cap). Memory is not
    traced here: tracing a million small strings takes seconds, and the bound is the same."""
    await _fault_ends_the_run_visibly(start_bot, backend, Fault.HUGE_BODY, "textql:junk-lines",
                                      {"TEXTQL_MODE": "v2"}, trace_memory=False)


async def _fault_ends_the_run_visibly(start_bot: BotFactory, backend: BackendHarness, fault: Fault,
                                      wire: str, mode: dict[str, object], *,
                                      trace_memory: bool = True) -> None:
    assert DEFAULT_MAX_RESPONSE_BYTES < HUGE_BYTES
    hold_after = DEFAULT_MAX_RESPONSE_BYTES + 256 * 1024 if fault is Fault.HUGE_BODY else None
    async with FaultServer(fault, WIRES[wire], hold_after=hold_after) as server:
        settings = {**backend.settings(), **mode, **SHORT_TIMEOUTS,
                    BASE_URL_SETTING[backend.name]: server.base_url}
        bot = await start_bot(**settings)
        with _peak_memory_growth(enabled=trace_memory and fault is Fault.HUGE_BODY) as growth:
            event = await bot.mention("Which region grew fastest last quarter?")
            [answer] = await bot.wait_finished(event["ts"])
        await bot.settled()

        assert answer.outcome.value == "failed", answer
        [(run_id, _, _)] = bot.finished.items
        [error] = answer.errors
        assert error.reference == run_id
        assert error.code == CODES[fault][backend.name], error
        assert WORDS.get(fault, "") in error.message
        _assert_reply_shows_the_end(bot, event["ts"], run_id, error.message)
        secrets = [settings[k] for k in SECRET_SETTINGS if k in settings]
        _assert_nothing_leaks(bot, server.base_url, secrets,
                              host_allowed=(backend.name, fault) in SHOWS_HOST)
        [run] = await bot.service.repo.list_runs("slack", "T1", channel=CHANNEL)
        assert run.status == "failed"

        if fault in NO_REQUEST_ARRIVES:
            assert server.requests == []  # refused, or the TLS handshake failed: no HTTP at all
        else:
            assert server.faulted >= 1
        if fault is Fault.HUGE_BODY:
            # the bot hung up part-way; the tail was never sent, so nothing past the cap was read
            await asyncio.wait_for(server.abandoned.wait(), 5.0)
            assert server.completed == 0
            assert server.faulted == 1  # too large is final: not asked again
            # what the whole bot allocated at its peak, the cap's worth of body included (0 if
            # not traced)
            assert growth() < 2 * DEFAULT_MAX_RESPONSE_BYTES, f"{growth() / 2**20:.1f} MiB"


@contextlib.contextmanager
def _peak_memory_growth(enabled: bool) -> Iterator[Callable[[], int]]:
    """Peak bytes allocated (tracemalloc) above the start, over the block — Python allocations,
    which is where a buffered body would live. Only where asked: tracing slows everything."""
    if not enabled or tracemalloc.is_tracing():
        yield lambda: 0
        return
    tracemalloc.start()
    base = tracemalloc.get_traced_memory()[0]
    peak = base
    try:
        yield lambda: peak - base
    finally:
        peak = tracemalloc.get_traced_memory()[1]
        tracemalloc.stop()


def _assert_reply_shows_the_end(bot: SlackBot, thread_ts: str, run_id: str, message: str) -> None:
    replies = bot.bot_replies(thread_ts)
    assert replies, "no reply in the thread"
    shown = "\n".join(blocks_text(m.blocks) + "\n" + m.text for m in replies)
    assert run_id in shown, shown  # the reference support can look up
    assert message.split(":")[0][:40] in shown, shown
    assert all("stop_run" not in json.dumps(m.blocks or []) for m in replies)  # no live Stop button
    assert "Working on it" not in shown
    assert bot.slack.status(CHANNEL, thread_ts) == ""  # no thread status left spinning


def _assert_nothing_leaks(bot: SlackBot, base_url: str, secrets: list[str], *,
                          host_allowed: bool = False) -> None:
    """Everything the bot sent to Slack, not only the final reply: no URL, no host, no key."""
    sent = json.dumps([call.args for call in bot.slack.calls])
    assert base_url not in sent
    host = base_url.split("://", 1)[1].split("/", 1)[0]
    assert host_allowed or host not in sent
    for secret in secrets:
        assert secret not in sent
