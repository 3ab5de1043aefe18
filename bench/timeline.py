"""What a person in each thread saw, and when, read back from the fake Slack's call log.

For every question the driver sent, :func:`timelines` finds in the fake Slack's calls (stamped
with ``time.monotonic()`` when the fake read the request, in the same process as the driver and
the fake backend):

* ``first_seen``: the first sign of life in the thread — the placeholder post, or a status line
  (``assistant.threads.setStatus``) when the placeholder had to wait for the channel;
* ``final_seen``: the first successful call that put the finished answer in the thread — the
  edit of the placeholder or a new message, whichever carries the answer's feedback buttons;
* ``edits``: successful ``chat.update`` calls on the thread's messages (progress + final +
  retiring the placeholder, when that is an edit).
"""

from __future__ import annotations

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
    backend_done: float | None = None
    edits: int = 0
    messages: set[str] = field(default_factory=set)

    @property
    def final_lag(self) -> float | None:
        if self.final_seen is None or self.backend_done is None:
            return None
        return self.final_seen - self.backend_done


def is_final(call: Any) -> bool:
    """The finished answer carries the feedback buttons (a failed run would not: counted apart)."""
    return "feedback" in str(call.args.get("blocks"))


def timelines(slack: FakeSlack, asked: list[Asked]) -> dict[str, Timeline]:
    lines = {a.thread: Timeline(a) for a in asked}
    message_thread: dict[str, str] = {}
    for call in slack.calls:
        if call.status != 200 or not call.response.get("ok"):
            continue
        if call.method == "chat.postMessage":
            thread = str(call.args.get("thread_ts") or "")
            line = lines.get(thread)
            if line is None:
                continue
            message_thread[str(call.response.get("ts"))] = thread
            line.messages.add(str(call.response.get("ts")))
            _first(line, "first_seen", call.at)
            if is_final(call):
                _first(line, "final_seen", call.at)
        elif call.method == "assistant.threads.setStatus" and call.args.get("status"):
            line = lines.get(str(call.args.get("thread_ts") or ""))
            if line is not None:
                _first(line, "first_seen", call.at)
        elif call.method == "chat.update":
            line = lines.get(message_thread.get(str(call.args.get("ts")), ""))
            if line is None:
                continue
            line.edits += 1
            if is_final(call):
                _first(line, "final_seen", call.at)
    return lines


def still_working(slack: FakeSlack, lines: dict[str, Timeline]) -> int:
    """Messages that still show "Working on it…" or a Stop button now."""
    left = 0
    for line in lines.values():
        for ts in line.messages:
            message = slack.message(line.asked.channel, ts)
            if message is not None and ("stop_run" in str(message.blocks)
                                        or "Working on it" in message.text):
                left += 1
    return left


def _first(line: Timeline, attr: str, at: float) -> None:
    if getattr(line, attr) is None:
        setattr(line, attr, at)
