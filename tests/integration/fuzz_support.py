"""Harness and strategies for fuzzing every inbound surface (tests/integration/test_fuzz_inbound.py).

Hypothesis drives synchronous test functions, so the service under test runs on an event loop of
its own in a background thread (:class:`LoopThread`); each example is one coroutine submitted to
it. One service per surface serves all of that surface's examples, as a real deployment would.

:class:`ErrorLog` records every log record at ERROR or above, and every record that carries a
traceback, from any logger (aiohttp's "Error handling request", Bolt's "Failed to run listener
function", asyncio's "Task exception was never retrieved", our own ``log.exception``): a fuzz
example passes only when it added none.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
import logging
import os
import threading
import time
from typing import Any, Awaitable, Callable, TypeVar
from urllib.parse import urlencode

from hypothesis import HealthCheck, settings
from hypothesis import strategies as st

T = TypeVar("T")

# Modest example counts: the whole suite must stay fast on two cores. FUZZ_EXAMPLES raises them
# for a longer local hunt (e.g. FUZZ_EXAMPLES=2000). The CI profile is derandomized: the same
# inputs every run, so a red build is reproducible.
EXAMPLES = int(os.environ.get("FUZZ_EXAMPLES", "60"))
settings.register_profile(
    "fuzz-ci", max_examples=EXAMPLES, deadline=None, derandomize=True, database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large,
                           HealthCheck.function_scoped_fixture],
)
settings.register_profile(
    "fuzz-dev", max_examples=EXAMPLES, deadline=None, derandomize=False, database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large,
                           HealthCheck.function_scoped_fixture],
)
FUZZ = settings.get_profile(os.environ.get("FUZZ_PROFILE", "fuzz-ci"))


# -- the service's own event loop -----------------------------------------------------------------
class LoopThread:
    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self.loop.run_forever, name="fuzz-loop", daemon=True)
        self._thread.start()

    def run(self, coro: Awaitable[T], timeout: float = 60.0) -> T:
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(timeout)  # type: ignore[arg-type]

    def close(self) -> None:
        self.loop.call_soon_threadsafe(self.loop.stop)
        self._thread.join(10)
        self.loop.close()


class ErrorLog(logging.Handler):
    """Every record at ERROR or above, or with a traceback, from any logger."""

    def __init__(self) -> None:
        super().__init__(level=logging.DEBUG)
        self.records: list[logging.LogRecord] = []
        self._lock2 = threading.Lock()

    def emit(self, record: logging.LogRecord) -> None:
        if record.levelno >= logging.ERROR or record.exc_info:
            with self._lock2:
                self.records.append(record)

    def mark(self) -> int:
        return len(self.records)

    def since(self, mark: int) -> list[str]:
        out = []
        for record in self.records[mark:]:
            text = f"{record.name}: {record.getMessage()}"
            if record.exc_info and record.exc_info[1] is not None:
                text += f" [{type(record.exc_info[1]).__name__}: {record.exc_info[1]}]"
            out.append(text)
        return out

    def __enter__(self) -> ErrorLog:
        logging.getLogger().addHandler(self)
        return self

    def __exit__(self, *_: Any) -> None:
        logging.getLogger().removeHandler(self)


async def settle(baseline: set[asyncio.Task[Any]], timeout: float = 15.0) -> None:
    """Wait until the work an example started is over: every task that did not exist before the
    fuzzing began (listeners Bolt runs after its ack, runs, deliveries) has finished. Tasks of
    keep-alive connections are not work."""
    me = asyncio.current_task()
    deadline = time.monotonic() + timeout
    while True:
        busy = [t for t in asyncio.all_tasks() if t is not me and t not in baseline
                and not t.done() and not _is_connection_task(t)]
        if not busy:
            return
        if time.monotonic() > deadline:
            raise AssertionError(f"work still running after {timeout}s: {busy!r}")
        await asyncio.sleep(0.01)


def _is_connection_task(task: asyncio.Task[Any]) -> bool:
    name = getattr(task.get_coro(), "__qualname__", "")
    return name.startswith(("RequestHandler.", "WebSocketResponse.", "ClientWebSocketResponse."))


def slack_signature(secret: str, timestamp: str, body: bytes) -> str:
    base = b"v0:" + timestamp.encode() + b":" + body
    return "v0=" + hmac.new(secret.encode(), base, hashlib.sha256).hexdigest()


def signed_headers(secret: str, body: bytes, content_type: str, *,
                   timestamp: str | None = None) -> dict[str, str]:
    ts = timestamp or str(int(time.time()))
    return {"Content-Type": content_type, "X-Slack-Request-Timestamp": ts,
            "X-Slack-Signature": slack_signature(secret, ts, body)}


# -- strategies ------------------------------------------------------------------------------------
# Text as hostile as Slack could relay it: lone surrogates (json.dumps writes them as \udXXX
# escapes), NULs, right-to-left marks, very long runs.
surrogate = st.characters(min_codepoint=0xD800, max_codepoint=0xDFFF)
hostile_char = st.one_of(st.characters(), surrogate, st.sampled_from("\x00\u202e\ufeff<>&@:`*"))
hostile_text = st.one_of(
    st.text(hostile_char, max_size=40),
    st.sampled_from(["", " ", "stop", "help", "<@UBOT>", "<@UBOT> stop", "good:run", "bad:",
                     "x" * 3000, "\ud800", "a\udfffb", "\x00", "1.2", "-1", "99999999999999999999"]),
)
scalar = st.one_of(st.none(), st.booleans(), st.integers(), st.floats(allow_nan=False),
                   hostile_text)
junk = st.recursive(scalar, lambda inner: st.one_of(
    st.lists(inner, max_size=3), st.dictionaries(hostile_text, inner, max_size=3)), max_leaves=8)


def maybe(value: st.SearchStrategy[Any]) -> st.SearchStrategy[Any]:
    """A field as the platform sends it, or (about one time in seven) anything else: an
    envelope has many fields, so most examples still get a few of them wrong."""
    return st.sampled_from([True] * 6 + [False]).flatmap(lambda keep: value if keep else junk)


slack_id = st.one_of(st.sampled_from(["C0123456789", "D0123456789", "U0ASKER01", "T1", "UBOT"]),
                     st.from_regex(r"[A-Z][A-Z0-9]{2,11}", fullmatch=True))
slack_ts = st.one_of(st.sampled_from(["1800000000.000100", "1800000001.000200"]),
                     st.from_regex(r"1[0-9]{9}\.[0-9]{6}", fullmatch=True))


@st.composite
def slack_event(draw: st.DrawFn) -> dict[str, Any]:
    kind = draw(st.one_of(st.sampled_from(["app_mention", "message", "app_home_opened",
                                           "agent_session_stopped", "reaction_added",
                                           "member_joined_channel"]), junk))
    event: dict[str, Any] = {"type": kind}
    fields = {
        "user": maybe(slack_id), "channel": maybe(slack_id), "ts": maybe(slack_ts),
        "event_ts": maybe(slack_ts), "thread_ts": maybe(slack_ts), "team": maybe(slack_id),
        "text": maybe(st.one_of(hostile_text, hostile_text.map(lambda t: f"<@UBOT> {t}"))),
        "subtype": maybe(st.sampled_from(["file_share", "thread_broadcast", "bot_message",
                                          "message_changed"])),
        "channel_type": maybe(st.sampled_from(["im", "channel", "group", "mpim"])),
        "tab": maybe(st.sampled_from(["home", "messages", "about"])),
        "bot_id": maybe(slack_id), "blocks": junk, "files": junk,
    }
    for name in draw(st.lists(st.sampled_from(sorted(fields)), unique=True, max_size=len(fields))):
        event[name] = draw(fields[name])
    return event


@st.composite
def event_envelope(draw: st.DrawFn) -> Any:
    """An Events API envelope, valid-looking, with any field mutated or missing."""
    envelope: dict[str, Any] = {
        "token": "legacy", "team_id": draw(maybe(slack_id)), "api_app_id": "A1",
        "type": draw(maybe(st.just("event_callback"))),
        "event_id": draw(maybe(st.from_regex(r"Ev[A-Z0-9]{8}", fullmatch=True))),
        "event_time": draw(maybe(st.integers(0, 2**40))),
        "event": draw(st.one_of(slack_event(), slack_event(), junk)),
    }
    if draw(st.booleans()):
        envelope["authorizations"] = draw(maybe(st.just(
            [{"team_id": "T1", "user_id": "UBOT", "is_bot": True, "enterprise_id": None}])))
    if draw(st.booleans()):
        envelope["enterprise_id"] = draw(junk)
        envelope["is_ext_shared_channel"] = draw(junk)
    for name in draw(st.lists(st.sampled_from(sorted(envelope)), unique=True, max_size=2)):
        del envelope[name]
    return envelope


any_json = st.one_of(junk, st.dictionaries(st.sampled_from(
    ["type", "event", "challenge", "token", "team_id", "payload", "actions", "user"]), junk,
    max_size=5))

url_verification = st.fixed_dictionaries(
    {"type": st.just("url_verification"), "token": maybe(st.just("legacy")),
     "challenge": maybe(st.text(max_size=60))})

ACTION_IDS = ["stop_run", "feedback", "ask_suggestion:0", "history_more", "view_sql"]


@st.composite
def action_item(draw: st.DrawFn) -> Any:
    action: dict[str, Any] = {
        "action_id": draw(maybe(st.sampled_from(ACTION_IDS))), "block_id": draw(maybe(st.just("b"))),
        "type": draw(maybe(st.just("button"))), "action_ts": "1800000000.1",
        "value": draw(maybe(st.one_of(
            hostile_text, st.sampled_from(["good:r1", "bad:r1", "meh:r1", "C1:3", "C1:x", "C1:-5",
                                           "r1:p1", ":", "r" * 40])))),
    }
    for name in draw(st.lists(st.sampled_from(sorted(action)), unique=True, max_size=2)):
        del action[name]
    return action


@st.composite
def interactivity_payload(draw: st.DrawFn, response_url: str = "") -> Any:
    kind = draw(maybe(st.sampled_from(["block_actions", "view_submission", "view_closed",
                                       "shortcut", "message_action", "block_suggestion"])))
    payload: dict[str, Any] = {
        "type": kind, "team": draw(maybe(st.fixed_dictionaries({"id": maybe(slack_id)}))),
        "user": draw(maybe(st.fixed_dictionaries({"id": maybe(slack_id)}))),
        "api_app_id": "A1", "token": "legacy", "trigger_id": draw(maybe(st.just("1.2.3"))),
        "container": draw(maybe(st.fixed_dictionaries(
            {"type": st.just("message"), "message_ts": maybe(slack_ts),
             "channel_id": maybe(slack_id), "thread_ts": maybe(slack_ts)}))),
        "channel": draw(maybe(st.fixed_dictionaries({"id": maybe(slack_id)}))),
        "message": draw(maybe(st.fixed_dictionaries({"ts": maybe(slack_ts),
                                                     "thread_ts": maybe(slack_ts)}))),
        "response_url": draw(maybe(st.just(response_url))),
        "actions": draw(st.one_of(st.just([]), st.lists(action_item(), min_size=1, max_size=2),
                                  junk)),
        "view": draw(maybe(st.fixed_dictionaries(
            {"id": maybe(st.just("V1")), "callback_id": maybe(st.text(max_size=10)),
             "type": maybe(st.just("modal")), "state": junk, "private_metadata": junk}))),
        "callback_id": draw(maybe(st.text(max_size=10))),
    }
    for name in draw(st.lists(st.sampled_from(sorted(payload)), unique=True, max_size=3)):
        del payload[name]
    return payload


def form(fields: dict[str, Any]) -> str:
    """A form body; a lone surrogate is %-escaped as the invalid UTF-8 it would be."""
    return urlencode({k: v if isinstance(v, str) else json.dumps(v) for k, v in fields.items()},
                     errors="surrogatepass")


@st.composite
def command_fields(draw: st.DrawFn, response_url: str = "") -> dict[str, Any]:
    fields: dict[str, Any] = {
        "token": "legacy", "team_id": draw(maybe(slack_id)), "team_domain": "fake",
        "channel_id": draw(maybe(slack_id)), "channel_name": "general",
        "user_id": draw(maybe(slack_id)), "user_name": "asker",
        "command": draw(maybe(st.sampled_from(["/insight-stop", "/insight-history", "/other"]))),
        "text": draw(hostile_text), "api_app_id": "A1",
        "is_enterprise_install": draw(maybe(st.sampled_from(["false", "true"]))),
        "response_url": draw(maybe(st.just(response_url))), "trigger_id": "1.2.3",
        "enterprise_id": draw(junk),
    }
    for name in draw(st.lists(st.sampled_from(sorted(fields)), unique=True, max_size=3)):
        del fields[name]
    return fields


def to_json(value: Any) -> str:
    """json.dumps as Slack would send it; lone surrogates become \\udXXX escapes."""
    return json.dumps(value, ensure_ascii=True)


@st.composite
def raw_body(draw: st.DrawFn) -> bytes:
    """Bytes that are not what any endpoint takes: invalid UTF-8, escaped lone surrogates,
    truncated JSON, binary."""
    valid = to_json(draw(event_envelope())).encode()
    choice = draw(st.integers(0, 5))
    if choice == 0:
        return draw(st.binary(max_size=200))
    if choice == 1:  # invalid UTF-8 inside an otherwise valid envelope
        at = draw(st.integers(0, len(valid)))
        return valid[:at] + draw(st.sampled_from([b"\xff", b"\xc3", b"\xed\xa0\x80", b"\x80\x80",
                                                  b"\xf4\x90\x80\x80"])) + valid[at:]
    if choice == 2:  # a lone surrogate escape in a string
        return (b'{"type":"event_callback","team_id":"T1","event_id":"Ev1","event":{"type":'
                b'"app_mention","user":"U1","channel":"C1","ts":"1800000000.000100","text":"'
                + draw(st.sampled_from([b"\\ud800", b"\\udfff x", b"a\\udc80b", b"\\ud83d"]))
                + b'"}}')
    if choice == 3:  # truncated
        return valid[:draw(st.integers(0, max(0, len(valid) - 1)))]
    if choice == 4:
        return b"payload=" + draw(st.binary(max_size=80))
    return b"payload=%7B%22type%22%3A%22block_actions%22%2C%22actions%22%3A%5B%5D%2C%22user%22%3A" \
        + draw(st.sampled_from([b"%22x%22", b"%5B%5D", b"null", b"%7B%7D"])) + b"%7D"


RAW_CONTENT_TYPES = st.sampled_from(["application/json", "application/x-www-form-urlencoded",
                                     "text/plain", "application/octet-stream", "",
                                     "application/json; charset=latin-1"])


@st.composite
def teams_activity(draw: st.DrawFn, service_url: str) -> Any:
    """A Bot Connector activity, valid-looking, with any field mutated or missing."""
    conv_id = draw(maybe(st.sampled_from(["a:1pL6-personal-chat-with-ada", "19:g@thread.v2",
                                          "19:c@thread.tacv2;messageid=1700000000001"])))
    activity: dict[str, Any] = {
        "type": draw(maybe(st.sampled_from(["message", "invoke", "conversationUpdate",
                                            "messageReaction", "installationUpdate", "typing"]))),
        "id": draw(maybe(st.from_regex(r"1[0-9]{12}", fullmatch=True))),
        "channelId": draw(maybe(st.just("msteams"))),
        "serviceUrl": draw(st.one_of(st.just(service_url), st.just(service_url), junk)),
        "timestamp": draw(maybe(st.just("2026-09-01T10:00:00.000Z"))),
        "text": draw(maybe(st.one_of(hostile_text, st.sampled_from(
            ["stop", "history", "help", "<at>insightbot</at> hi", "<at>x"])))),
        "locale": draw(maybe(st.sampled_from(["en-US", "pt-BR", ""]))),
        "from": draw(maybe(st.fixed_dictionaries(
            {"id": maybe(st.just("29:1ada")), "name": maybe(hostile_text),
             "aadObjectId": maybe(st.just("aad-ada"))}))),
        "recipient": draw(maybe(st.just({"id": "28:bot", "name": "insightbot"}))),
        "conversation": draw(maybe(st.fixed_dictionaries(
            {"id": st.just(conv_id), "conversationType": maybe(st.sampled_from(["personal", "channel",
                                                                       "groupChat"])),
             "tenantId": maybe(st.just("tenant-1"))}))),
        "channelData": draw(maybe(st.fixed_dictionaries({"tenant": maybe(st.fixed_dictionaries(
            {"id": maybe(st.just("tenant-1"))}))}))),
        "entities": draw(maybe(st.lists(maybe(st.fixed_dictionaries(
            {"type": maybe(st.sampled_from(["mention", "clientInfo"])), "text": maybe(hostile_text),
             "mentioned": maybe(st.just({"id": "28:bot"})), "locale": junk})), max_size=2))),
        "value": draw(st.one_of(junk, st.fixed_dictionaries(
            {"action": maybe(st.sampled_from(["stop", "ask", "page", "other"])),
             "run_id": maybe(st.text(max_size=40)), "question": maybe(hostile_text),
             "actionName": maybe(st.just("feedback")),
             "actionValue": junk}))),
        "name": draw(maybe(st.sampled_from(["message/submitAction", "fileConsent/invoke",
                                            "adaptiveCard/action"]))),
        "replyToId": draw(maybe(st.just("1700000000001"))),
        "membersAdded": draw(maybe(st.just([{"id": "28:bot"}]))),
    }
    for name in draw(st.lists(st.sampled_from(sorted(activity)), unique=True, max_size=3)):
        del activity[name]
    return activity


Check = Callable[[int], bool]
