"""What a person in each thread saw, and when, read back from the fake Slack's call log.

For every question the driver sent, :func:`timelines` finds in the fake Slack's calls (stamped
with ``time.monotonic()`` when the fake read the request, in the same process as the driver and
the fake backend):

* ``first_seen``: the first sign of life in the thread — the placeholder post, or a status line
  (``assistant.threads.setStatus``) when the placeholder had to wait for the channel;
* ``final_seen``: the first successful call that put the finished answer in the thread — the
  edit of the placeholder or a new message, whichever carries the answer's feedback buttons;
* ``answer_seen``: the first call that put the answer's text in the thread for good — a post,
  edit or ``stopStream`` with the answer's ``markdown`` and no Stop button left. Since answers
  show their tables (issue #10) the feedback buttons come in a last message *after* the chart
  and CSV uploads, so ``final_seen`` is "everything, charts included" and ``answer_seen`` "the
  answer readable"; under load the two differ by Slack's ``files.*`` budget;
* ``files_seen``: the last ``files.completeUploadExternal`` of the thread (its charts and CSVs);
* ``edits``: successful ``chat.update`` calls on the thread's messages (progress + final +
  retiring the placeholder, when that is an edit).

With native streaming (issue #11) a reply's message is opened by ``chat.startStream`` instead of
``chat.postMessage``; its first sign of life is that call (or a status line before it), and its
``final_seen`` the first call carrying the feedback buttons: ``chat.stopStream`` (the answer's
blocks ending the stream), the ``chat.update`` of the same message, or a new message;
``final_via`` names the method. Also, per question:

* ``first_step``: the first call that shows the user one of the agent's steps — a stream call
  (``startStream``/``appendStream``, or ``stopStream`` if that is the first) carrying a
  ``task_update`` chunk, or on the placeholder path a post or edit whose blocks hold a ``plan``
  block with a task; ``step_via`` names the method;
* ``first_token``: the first call that shows answer text — a stream call carrying a
  ``markdown_text`` chunk, or a post or edit whose blocks hold a ``markdown`` block (how the
  answer's text is rendered, in progress and final); ``token_via`` names the method;
* ``streamed``: the reply was opened by ``chat.startStream`` (else it took the placeholder path);
* ``calls``: successful calls per method that belong to the thread (by its ``thread_ts``, or by
  the ``ts`` of one of its messages), and ``limited``: its 429s per method.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

from tests.fakes.slack import FakeSlack


@dataclass
class Asked:
    channel: str
    thread: str
    question: str
    sent: float
    acked: float
    status: int


@dataclass
class Timeline:
    asked: Asked
    first_seen: float | None = None
    final_seen: float | None = None
    answer_seen: float | None = None
    files_seen: float | None = None
    backend_done: float | None = None
    edits: int = 0
    messages: set[str] = field(default_factory=set)
    first_step: float | None = None
    step_via: str = ""
    first_token: float | None = None
    token_via: str = ""
    final_via: str = ""
    streamed: bool = False
    opened: float | None = None  # the reply's first message: placeholder post or startStream
    stream_stopped: float | None = None
    calls: dict[str, int] = field(default_factory=dict)
    limited: dict[str, int] = field(default_factory=dict)

    @property
    def final_lag(self) -> float | None:
        if self.final_seen is None or self.backend_done is None:
            return None
        return self.final_seen - self.backend_done

    @property
    def answer_lag(self) -> float | None:
        if self.answer_seen is None or self.backend_done is None:
            return None
        return self.answer_seen - self.backend_done


def is_final(call: Any) -> bool:
    """The finished answer carries the feedback buttons (a failed run would not: counted apart)."""
    return "feedback" in str(call.args.get("blocks"))


def shows_answer(call: Any, blocks: list[dict[str, Any]]) -> bool:
    """The answer's text, with no Stop button left: the answer, not progress."""
    return (any(b.get("type") == "markdown" for b in blocks)
            and "stop_run" not in json.dumps(blocks))


THREAD_ARG = {"chat.postMessage": "thread_ts", "chat.startStream": "thread_ts",
              "assistant.threads.setStatus": "thread_ts", "agents.sessions.setStatus": "thread_ts",
              "files.completeUploadExternal": "thread_ts", "chat.postEphemeral": "thread_ts"}
MESSAGE_ARG = {"chat.update": "ts", "chat.delete": "ts", "chat.appendStream": "ts",
               "chat.stopStream": "ts"}
STREAM_METHODS = ("chat.startStream", "chat.appendStream", "chat.stopStream")


def timelines(slack: FakeSlack, asked: list[Asked]) -> dict[str, Timeline]:
    lines = {a.thread: Timeline(a) for a in asked}
    message_thread: dict[str, str] = {}
    for call in slack.calls:
        if call.method in THREAD_ARG:
            thread = str(call.args.get(THREAD_ARG[call.method]) or "")
        elif call.method in MESSAGE_ARG:
            thread = message_thread.get(str(call.args.get(MESSAGE_ARG[call.method])), "")
        else:
            continue
        line = lines.get(thread)
        if line is None:
            continue
        if call.status == 429:
            line.limited[call.method] = line.limited.get(call.method, 0) + 1
        if call.status != 200 or not call.response.get("ok"):
            continue
        line.calls[call.method] = line.calls.get(call.method, 0) + 1
        if call.method in ("chat.postMessage", "chat.startStream"):
            message_thread[str(call.response.get("ts"))] = thread
            line.messages.add(str(call.response.get("ts")))
            _first(line, "first_seen", call.at)
            _first(line, "opened", call.at)
            if call.method == "chat.startStream":
                line.streamed = True
        if call.method == "assistant.threads.setStatus":
            if call.args.get("status"):
                _first(line, "first_seen", call.at)
            continue
        if call.method == "chat.update":
            line.edits += 1
        if call.method == "chat.stopStream":
            _first(line, "stream_stopped", call.at)
        if call.method in STREAM_METHODS:
            kinds = {c.get("type") for c in _chunks(call) if isinstance(c, dict)}
            if "task_update" in kinds:
                _first(line, "first_step", call.at, via=call.method)
            if "markdown_text" in kinds or call.args.get("markdown_text"):
                _first(line, "first_token", call.at, via=call.method)
            if call.method == "chat.stopStream" and is_final(call):  # the answer ends its stream
                _first(line, "final_seen", call.at, via=call.method)
            if call.method == "chat.stopStream":
                _first(line, "answer_seen", call.at)
        elif call.method in ("chat.postMessage", "chat.update"):
            blocks = _blocks(call)
            if any(b.get("type") == "plan" and b.get("tasks") for b in blocks):
                _first(line, "first_step", call.at, via=call.method)
            if any(b.get("type") == "markdown" for b in blocks):
                _first(line, "first_token", call.at, via=call.method)
            if is_final(call):
                _first(line, "final_seen", call.at, via=call.method)
            if shows_answer(call, blocks):
                _first(line, "answer_seen", call.at)
        elif call.method == "files.completeUploadExternal":
            line.files_seen = call.at
    return lines


def _chunks(call: Any) -> list[Any]:
    chunks = call.args.get("chunks")
    if isinstance(chunks, str):
        try:
            chunks = json.loads(chunks)
        except ValueError:
            return []
    return chunks if isinstance(chunks, list) else []


def _blocks(call: Any) -> list[dict[str, Any]]:
    blocks = call.args.get("blocks")
    if isinstance(blocks, str):
        try:
            blocks = json.loads(blocks)
        except ValueError:
            return []
    return [b for b in blocks if isinstance(b, dict)] if isinstance(blocks, list) else []


def still_working(slack: FakeSlack, lines: dict[str, Timeline]) -> int:
    """Messages that still show "Working on it…" or a Stop button now, or are still streaming."""
    left = 0
    for line in lines.values():
        for ts in line.messages:
            message = slack.message(line.asked.channel, ts)
            if message is not None and (message.streaming or "stop_run" in str(message.blocks)
                                        or "Working on it" in message.text):
                left += 1
    return left


def _first(line: Timeline, attr: str, at: float, *, via: str = "") -> None:
    if getattr(line, attr) is None:
        setattr(line, attr, at)
        if via:
            setattr(line, {"first_step": "step_via", "first_token": "token_via",
                           "final_seen": "final_via"}[attr], via)
