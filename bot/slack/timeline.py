"""The agent's task timeline (``bot/delivery/timeline.py``) in Slack's two forms.

* **Blocks** — a ``plan`` block of ``task_card`` blocks, for messages made with
  ``chat.postMessage``/``chat.update`` (no stream: too many streams live, streaming off, or a
  stream that expired). Same timeline, same states, so no surface falls back to emoji lines.
* **Chunks** — ``task_update`` chunks for ``chat.startStream``/``appendStream``/``stopStream``
  with ``task_display_mode="plan"``. A task's ``details`` and ``output`` are *appended* by Slack
  on every update with the same id (Slack's agent-progress guidance), so :class:`ChunkDiff`
  sends each only once, and a task again only when its status changed.

Chunks and blocks are built with slack_sdk's own models so their shape is the SDK's.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from slack_sdk.models.blocks import PlanBlock, RichTextBlock, RichTextSectionElement, TaskCardBlock
from slack_sdk.models.blocks.block_elements import RichTextElementParts
from slack_sdk.models.messages.chunk import PlanUpdateChunk, TaskUpdateChunk

from bot.delivery.timeline import COMPLETE, ERROR, Task

PLAN_TITLE = "Analysis"
Block = dict[str, Any]


def plan_title(tasks: list[Task], *, stopped: bool = False) -> str:
    if stopped:
        return "Stopped"
    if tasks and all(t.status == COMPLETE for t in tasks):
        return "Analysis complete"
    if any(t.status == ERROR for t in tasks):
        return "Analysis ended"
    return PLAN_TITLE + "…"


def plan_block(tasks: list[Task], title: str) -> Block:
    """A ``plan`` block: the whole timeline in one block (Slack: at most 50 task cards)."""
    cards = [TaskCardBlock(task_id=t.id, title=t.title, status=t.status,
                           details=_rich(t.details), output=_rich(t.output)) for t in tasks]
    return PlanBlock(title=title, tasks=cards).to_dict()


def _rich(text: str) -> RichTextBlock | None:
    if not text:
        return None
    return RichTextBlock(elements=[RichTextSectionElement(
        elements=[RichTextElementParts.Text(text=text)])])


@dataclass
class ChunkDiff:
    """What one stream has shown, so each call sends only what changed."""

    sent: dict[str, str] = field(default_factory=dict)  # task id → status shown
    detailed: set[str] = field(default_factory=set)  # tasks whose details went out
    output: set[str] = field(default_factory=set)  # tasks whose output went out
    title: str = ""

    def chunks(self, tasks: list[Task], title: str) -> list[dict[str, Any]]:
        out: list[dict[str, Any]] = []
        if title != self.title:
            out.append(PlanUpdateChunk(title=title).to_dict())
            self.title = title
        for task in tasks:
            details = task.details if task.details and task.id not in self.detailed else None
            output = task.output if task.output and task.id not in self.output else None
            if self.sent.get(task.id) == task.status and details is None and output is None:
                continue
            out.append(TaskUpdateChunk(id=task.id, title=task.title, status=task.status,
                                       details=details, output=output).to_dict())
            self.sent[task.id] = task.status
            if details is not None:
                self.detailed.add(task.id)
            if output is not None:
                self.output.add(task.id)
        return out


_ICONS = {"complete": ":white_check_mark:", "error": ":x:", "pending": ":white_circle:"}


def timeline_line(tasks: list[Task], title: str) -> str:
    """The timeline as one mrkdwn line, for a workspace that refused ``plan`` blocks."""
    shown = tasks[-10:]
    more = f"{len(tasks) - len(shown)} earlier · " if len(tasks) > len(shown) else ""
    steps = " · ".join(f"{_ICONS.get(t.status, ':hourglass_flowing_sand:')} {_escape(t.title)}"
                       for t in shown)
    return f"*{_escape(title)}* {more}{steps}"[:2900]  # a context element holds 3,000


def _escape(text: str) -> str:
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
