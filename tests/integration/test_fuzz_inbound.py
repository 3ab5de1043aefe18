"""Hostile and broken input on every inbound surface (issue 12): 0 HTTP 500s, 0 crashes, 0 stuck runs.

Every Slack request is correctly signed, so it gets past the signature check and reaches our
code. Each surface is fuzzed two ways: structure-aware (valid-looking envelopes whose fields are
mutated, dropped or replaced by values of the wrong type) and random (arbitrary JSON, arbitrary
bytes). An example passes when the answer is not a 5xx, nothing was logged at ERROR or with a
traceback, and the work it started has ended; each test then checks no run is left unfinished.

Example counts are modest (``FUZZ_EXAMPLES``, 60 by default, derandomized): see
tests/integration/fuzz_support.py.
"""

from __future__ import annotations

import asyncio
import os
import uuid
from dataclasses import dataclass, field
from typing import Any, Iterator

import pytest

from aiohttp.test_utils import TestClient, TestServer
from hypothesis import given
from hypothesis import strategies as st

from bot.service import Service
from tests.fakes.slack import FakeSlack
from tests.fakes.teams_connector import FakeConnector
from tests.fakes.wren import FakeWren
from tests.integration.conftest import SIGNING_SECRET, TIME_SCALE, fast_settings
from tests.integration.fuzz_support import (
    FUZZ, RAW_CONTENT_TYPES, ErrorLog, LoopThread, any_json, command_fields, event_envelope,
    form, interactivity_payload, raw_body, settle, signed_headers, teams_activity, to_json,
    url_verification,
)
from tests.integration.teams.conftest import teams_settings

pytestmark = pytest.mark.timeout(300)
COLLECT = bool(os.environ.get("FUZZ_COLLECT"))
COLLECTED: dict[str, str] = {}


@dataclass
class Target:
    """One running service, on the fuzz loop, and what each example is checked against."""

    loop: LoopThread
    client: TestClient
    service: Service
    errors: ErrorLog
    slack: FakeSlack | None = None
    connector: FakeConnector | None = None
    baseline: set[Any] = field(default_factory=set)
    statuses: dict[int, int] = field(default_factory=dict)
    count: int = 0

    last: Any = None

    def check(self, send: Any, example: Any = None) -> int | None:
        """Run one example: send it, wait for the work it started, check the log."""
        self.last = example
        mark = self.errors.mark()
        status = self.loop.run(self._send_and_settle(send))
        self.count += 1
        if status is not None:
            self.statuses[status] = self.statuses.get(status, 0) + 1
        new = self.errors.since(mark)
        if COLLECT:  # FUZZ_COLLECT=1: list every distinct failure instead of stopping at one
            for problem in new + ([f"HTTP {status}"] if status is not None and status >= 500 else []):
                COLLECTED.setdefault(problem[:300], repr(self.last)[:400])
            self.errors.records[mark:] = []
            return status
        assert status is None or status < 500, f"HTTP {status}"
        assert not new, new
        return status

    async def _send_and_settle(self, send: Any) -> int | None:
        status = await send()
        await settle(self.baseline)
        return status

    async def post(self, path: str, body: bytes, headers: dict[str, str]) -> int:
        resp = await self.client.post(path, data=body, headers=headers)
        await resp.read()
        return resp.status

    async def post_slack(self, body: bytes, content_type: str) -> int:
        return await self.post("/slack/events", body,
                               signed_headers(SIGNING_SECRET, body, content_type))

    async def unfinished(self) -> list[Any]:
        assert self.service.repo is not None and self.service.relay is not None
        return [*await self.service.repo.running_runs(), *self.service.relay.live.all()]


def _serve(loop: LoopThread, errors: ErrorLog, make: Any) -> Target:
    async def start() -> Target:
        target = await make()
        await target.client.start_server()
        return target

    return loop.run(start())


@pytest.fixture(scope="module")
def loop() -> Iterator[LoopThread]:
    thread = LoopThread()
    yield thread
    thread.close()


@pytest.fixture(scope="module")
def slack_target(loop: LoopThread, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Target]:
    """The real service with Slack over HTTP *and* Socket Mode, against fake Slack and Wren."""
    errors = ErrorLog()
    fakes: list[Any] = []

    async def make() -> Target:
        slack = FakeSlack(window_seconds=60 * TIME_SCALE, post_message_per_second=1 / TIME_SCALE)
        wren = FakeWren()
        await slack.start()
        await wren.start()
        fakes.extend([wren, slack])
        settings = fast_settings(tmp_path_factory.mktemp("fuzz-slack"), slack.base_url,
                                 BACKEND="wren", WREN_BASE_URL=wren.base_url,
                                 WREN_API_KEY=wren.api_key, SLACK_APP_TOKEN="xapp-1-fuzz")
        service = Service(settings)
        return Target(loop=loop, client=TestClient(TestServer(service.web_app())),
                      service=service, errors=errors, slack=slack)

    with errors:
        target = _serve(loop, errors, make)
        loop.run(_prime_slack(target))
        yield target
        loop.run(_close(target, fakes))
    assert not errors.since(0), errors.since(0)


async def _prime_slack(target: Target) -> None:
    """One valid event and one socket envelope first, so the long-lived tasks (intake workers,
    the socket's reader) exist before the baseline is taken."""
    assert target.slack is not None
    await target.slack.wait_for(lambda: bool(target.slack.sockets))
    await target.post_slack(to_json({"type": "event_callback", "team_id": "T1", "event_id": "Ev0",
                                     "event": {"type": "reaction_added", "user": "U1"}}).encode(),
                            "application/json")
    await target.slack.push_envelope("events_api", {"type": "event_callback", "team_id": "T1",
                                                    "event": {"type": "reaction_added"}},
                                     envelope_id="prime")
    await target.slack.wait_for(lambda: "prime" in target.slack.socket_acks)
    await asyncio.sleep(0.3)
    target.baseline = set(asyncio.all_tasks())


async def _close(target: Target, fakes: list[Any]) -> None:
    await target.client.close()
    for fake in fakes:
        await fake.close()


def _report(target: Target, surface: str) -> None:
    print(f"\nfuzz {surface}: {target.count} inputs, statuses {dict(sorted(target.statuses.items()))}")
    for problem, example in COLLECTED.items():
        print(f"  PROBLEM {problem}\n     from {example}")
    COLLECTED.clear()
    target.statuses.clear()
    target.count = 0


def _no_stuck_runs(target: Target) -> None:
    assert target.loop.run(target.unfinished()) == []


# -- Slack over HTTP -------------------------------------------------------------------------------
def test_fuzz_slack_events(slack_target: Target) -> None:
    @FUZZ
    @given(st.one_of(event_envelope(), event_envelope(), any_json, url_verification))
    def one(envelope: Any) -> None:
        slack_target.check(lambda: slack_target.post_slack(to_json(envelope).encode(),
                                                           "application/json"), envelope)

    one()
    assert slack_target.count > 0
    _report(slack_target, "events")
    _no_stuck_runs(slack_target)


def test_fuzz_slack_slash_commands(slack_target: Target) -> None:
    assert slack_target.slack is not None
    respond = slack_target.slack.base_url.rsplit("/api/", 1)[0] + "/respond/U0ASKER01"

    @FUZZ
    @given(st.one_of(command_fields(respond), command_fields(respond),
                     st.dictionaries(st.text(max_size=8), st.text(max_size=20), max_size=4)))
    def one(fields: dict[str, Any]) -> None:
        slack_target.check(lambda: slack_target.post_slack(
            form(fields).encode(), "application/x-www-form-urlencoded"), fields)

    one()
    _report(slack_target, "slash commands")
    _no_stuck_runs(slack_target)


def test_fuzz_slack_interactivity(slack_target: Target) -> None:
    assert slack_target.slack is not None
    respond = slack_target.slack.base_url.rsplit("/api/", 1)[0] + "/respond/U0ASKER01"

    @FUZZ
    @given(st.one_of(interactivity_payload(respond), interactivity_payload(respond),
                     interactivity_payload(respond), any_json))
    def one(payload: Any) -> None:
        slack_target.check(lambda: slack_target.post_slack(
            form({"payload": to_json(payload)}).encode(), "application/x-www-form-urlencoded"),
            payload)

    one()
    _report(slack_target, "interactivity")
    _no_stuck_runs(slack_target)


def test_fuzz_slack_raw_bytes(slack_target: Target) -> None:
    @FUZZ
    @given(raw_body(), RAW_CONTENT_TYPES)
    def one(body: bytes, content_type: str) -> None:
        slack_target.check(lambda: slack_target.post_slack(body, content_type), (body, content_type))

    one()
    _report(slack_target, "raw bytes")
    _no_stuck_runs(slack_target)


# -- Slack over Socket Mode -----------------------------------------------------------------------
def test_fuzz_socket_mode_envelopes(slack_target: Target) -> None:
    slack = slack_target.slack
    assert slack is not None
    respond = slack.base_url.rsplit("/api/", 1)[0] + "/respond/U0ASKER01"
    envelopes = st.one_of(
        st.tuples(st.just("events_api"), st.one_of(event_envelope(), junk_dicts())),
        st.tuples(st.just("interactive"), st.one_of(interactivity_payload(respond), junk_dicts())),
        st.tuples(st.just("slash_commands"), st.one_of(command_fields(respond), junk_dicts())),
        st.tuples(st.sampled_from(["events_api", "interactive", "slash_commands",
                                   "hello", "whatever"]), any_json),
    )
    frames = st.one_of(st.binary(max_size=60).map(lambda b: b.decode("latin-1")),
                       any_json.map(to_json))

    @FUZZ
    @given(st.one_of(envelopes, envelopes, envelopes, frames))
    def one(item: Any) -> None:
        async def push() -> None:
            if isinstance(item, str):  # a frame that is not an envelope at all
                await slack.sockets[-1].send_str(item)
                await asyncio.sleep(0.02)
                return None
            kind, payload = item
            envelope_id = uuid.uuid4().hex
            await slack.sockets[-1].send_str(to_json(
                {"envelope_id": envelope_id, "type": kind, "payload": payload,
                 "accepts_response_payload": kind != "events_api", "retry_attempt": 0}))
            if kind in ("events_api", "interactive", "slash_commands"):
                await slack.wait_for(lambda: envelope_id in slack.socket_acks, timeout=10)
            return None

        slack_target.check(push, item)

    sockets = len(slack.sockets)
    one()
    _report(slack_target, "socket mode")
    assert len(slack.sockets) == sockets, "the socket was dropped and reconnected"
    assert not slack.sockets[-1].closed
    _no_stuck_runs(slack_target)


def junk_dicts() -> st.SearchStrategy[dict[str, Any]]:
    return st.dictionaries(st.sampled_from(["type", "event", "actions", "user", "command",
                                            "view", "team", "channel_id"]), any_json, max_size=4)


# -- Teams --------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def teams_target(loop: LoopThread, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Target]:
    errors = ErrorLog()
    fakes: list[Any] = []

    async def make() -> Target:
        connector = FakeConnector(prefix="/teams/amer/", time_scale=TIME_SCALE)
        wren = FakeWren()
        await connector.start()
        await wren.start()
        fakes.extend([wren, connector])
        settings = teams_settings(tmp_path_factory.mktemp("fuzz-teams"), BACKEND="wren",
                                  WREN_BASE_URL=wren.base_url, WREN_API_KEY=wren.api_key)
        service = Service(settings)
        return Target(loop=loop, client=TestClient(TestServer(service.web_app())),
                      service=service, errors=errors, connector=connector)

    with errors:
        target = _serve(loop, errors, make)

        async def baseline() -> None:
            await asyncio.sleep(0.3)
            target.baseline = set(asyncio.all_tasks())

        loop.run(baseline())
        yield target
        loop.run(_close(target, fakes))
    assert not errors.since(0), errors.since(0)


def test_fuzz_teams_activities(teams_target: Target) -> None:
    assert teams_target.connector is not None
    service_url = teams_target.connector.service_url

    @FUZZ
    @given(st.one_of(teams_activity(service_url), teams_activity(service_url),
                     teams_activity(service_url), any_json))
    def one(activity: Any) -> None:
        teams_target.check(lambda: teams_target.post(
            "/api/messages", to_json(activity).encode(), {"Content-Type": "application/json"}),
            activity)

    one()
    _report(teams_target, "teams activities")
    _no_stuck_runs(teams_target)


def test_fuzz_teams_raw_bytes(teams_target: Target) -> None:
    @FUZZ
    @given(raw_body(), RAW_CONTENT_TYPES)
    def one(body: bytes, content_type: str) -> None:
        teams_target.check(lambda: teams_target.post("/api/messages", body,
                                                     {"Content-Type": content_type}),
                            (body, content_type))

    one()
    _report(teams_target, "teams raw bytes")
    _no_stuck_runs(teams_target)
