"""Answer → Adaptive Cards for Teams.

The running reply is one card (status, steps, partial text, a Stop button) that is replaced in
place. The finished reply is the same message turned into the full answer: text, tables,
the chart as an inline PNG ``Image`` (a data URI — a message with text *and* an image attachment
is split by Teams into two messages it cannot update), the SQL behind a "Show SQL" toggle, what
the backend consulted, errors with their reference, and how the run ended.

Teams rejects messages over roughly 28 KB (inline images are counted apart), so the finished
answer is laid out as blocks and packed into as many cards as needed — the first replaces the
placeholder, the others follow — rather than cut. Each card carries at most one image.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any, Callable

from microsoft_agents.activity import Activity, Attachment

from adapters.answer import (
    Answer, ChartPart, CodePart, ErrorPart, KnowledgePart, MetricPart, Outcome, PartKind, SqlPart,
    StepPart, StepState, TablePart, TextPart,
)
from bot.delivery.sqlformat import readable_sql
from bot.delivery.textsplit import shorten, split_text
from bot.teams.markdown import (
    Element, code_block, code_chunks, markdown_elements, table, text_block,
)

CARD_CONTENT_TYPE = "application/vnd.microsoft.card.adaptive"
CARD_VERSION = "1.5"
CARD_BUDGET = 24_000  # bytes of card JSON per message (Teams: ~28 KB, images not counted)
PROGRESS_TEXT = 2_500
TABLE_PREVIEW_ROWS = 15
SQL_CHUNK = 8_000  # a CodeBlock and its fallback double the bytes
CODE_LINES = 40
STOP_ACTION = "stop"

Names = Callable[[str], str]

_STEP_ICONS = {StepState.DONE: "✅", StepState.ERROR: "❌", StepState.PENDING: "⚪"}


@dataclass
class Block:
    """Elements that must stay together in one card (a toggle and what it shows)."""

    elements: list[Element]
    image: bool = False
    size: int = field(init=False)

    def __post_init__(self) -> None:
        self.size = _size(self.elements)


# -- building blocks ---------------------------------------------------------------------------
def adaptive_card(body: list[Element], actions: list[Element] | None = None) -> dict[str, Any]:
    card: dict[str, Any] = {"type": "AdaptiveCard",
                            "$schema": "http://adaptivecards.io/schemas/adaptive-card.json",
                            "version": CARD_VERSION, "msteams": {"width": "Full"}, "body": body}
    if actions:
        card["actions"] = actions
    return card


def card_activity(card: dict[str, Any], summary: str = "") -> Activity:
    """A message with one card and no text, so Teams keeps it one updatable message."""
    activity = Activity(type="message", attachments=[
        Attachment(content_type=CARD_CONTENT_TYPE, content=card)])
    if summary:
        activity.summary = shorten(summary, 200)
    return activity


def text_activity(text: str) -> Activity:
    return Activity(type="message", text=text, text_format="markdown")


def _subtle(text: str) -> Element:
    return text_block(text, isSubtle=True, size="Small", spacing="Small")


def _size(elements: list[Element]) -> int:
    """JSON bytes of ``elements`` with inline images counted as nothing (Teams does the same)."""

    def strip(node: Any) -> Any:
        if isinstance(node, dict):
            return {k: ("" if k == "url" and isinstance(v, str) and v.startswith("data:") else strip(v))
                    for k, v in node.items()}
        if isinstance(node, list):
            return [strip(v) for v in node]
        return node

    return len(json.dumps(strip(elements), ensure_ascii=False).encode())


def _steps_block(answer: Answer) -> list[Element]:
    steps = [p for p in answer.parts if isinstance(p, StepPart)]
    if not steps:
        return []
    lines = [f"{_STEP_ICONS.get(s.state, '⏳')} {s.title}" for s in steps[-10:]]
    return [_subtle("\n\n".join(lines))]


def _knowledge(part: KnowledgePart) -> list[Element]:
    names = ", ".join(e.title for e in part.entries[:8])
    more = f" (+{len(part.entries) - 8} more)" if len(part.entries) > 8 else ""
    return [_subtle(f"📚 Consulted: {names}{more}")]


def _metric(part: MetricPart) -> list[Element]:
    desc = f" — {part.description}" if part.description else ""
    return [_subtle(f"📏 Metric: **{part.name}**{desc}")]


def _table(part: TablePart) -> list[Element]:
    headers = [c.name for c in part.columns]
    shown = min(len(part.rows), TABLE_PREVIEW_ROWS)
    total = part.total if part.total is not None else len(part.rows)
    elements: list[Element] = []
    if part.title:
        elements.append(text_block(part.title, weight="Bolder"))
    elements.append(table(headers, [list(r) for r in part.rows], max_rows=TABLE_PREVIEW_ROWS))
    extra = f" · {len(headers) - 8} more columns" if len(headers) > 8 else ""
    elements.append(_subtle(f"Showing {shown} of {total} rows{extra}"))
    return elements


def _code(part: CodePart, *, running: bool) -> list[Element]:
    lines = part.source.strip().splitlines()
    keep = 8 if running else CODE_LINES
    shown = "\n".join(lines[:keep]) + (f"\n… ({len(lines) - keep} more lines)" if len(lines) > keep else "")
    elements = [text_block(f"**Code** ({part.language}, {len(lines)} lines)")]
    elements += code_block(shown, "python" if part.language.lower() == "python" else "plaintext")
    if part.output.strip():
        elements.append(text_block("**Output**"))
        elements += code_block(part.output.strip()[: 800 if running else 3000])
    return elements


def _chart(part: ChartPart, image: str | None) -> Block:
    title = part.title or "Chart"
    if part.png is not None and image:
        return Block([text_block(f"📊 {title}", weight="Bolder"),
                      {"type": "Image", "url": image, "altText": title, "size": "Stretch"}], image=True)
    if part.png is not None:
        return Block([_subtle(f"📊 {title}: the chart is too large to show in Teams.")])
    if part.note:
        return Block([_subtle(f"📊 {title}: {part.note}")])
    if part.image_url and part.image_url.startswith("https://"):
        return Block([text_block(f"📊 {title}", weight="Bolder"),
                      {"type": "Image", "url": part.image_url, "altText": title, "size": "Stretch"}],
                     image=True)
    kind = f" ({part.chart_type})" if part.chart_type else ""
    elements = [_subtle(f"📊 {title}{kind}")]
    if part.sql:
        elements += code_block(readable_sql(part.sql), "sql")
    return Block(elements)


def _sql_blocks(part: SqlPart, index: int) -> list[Block]:
    sql = readable_sql(part.sql)
    if not sql:
        return []
    chunks = code_chunks(sql, SQL_CHUNK)
    label = "SQL" + (f" — {part.title}" if part.title else "")
    blocks = []
    for n, chunk in enumerate(chunks, 1):
        target = f"sql-{index}-{n}"
        title = f"Show {label}" + (f" (part {n} of {len(chunks)})" if len(chunks) > 1 else "")
        blocks.append(Block([
            {"type": "ActionSet", "actions": [{"type": "Action.ToggleVisibility", "title": title,
                                               "targetElements": [target]}]},
            {"type": "Container", "id": target, "isVisible": False,
             "items": code_block(chunk, "sql")},
        ]))
    return blocks


def _error(part: ErrorPart, run_id: str) -> list[Element]:
    ref = part.reference or run_id
    code = f" · code {part.code}" if part.code else ""
    return [{"type": "Container", "style": "attention", "items": [
        text_block(f"⚠️ {part.message}", weight="Bolder", color="Attention"),
        _subtle(f"Reference: {ref}{code}")]}]


# -- the running reply ---------------------------------------------------------------------
def render_progress(answer: Answer, run_id: str) -> dict[str, Any]:
    status = answer.status.text if answer.status and answer.status.text else "Working on it…"
    body: list[Element] = [text_block(f"⏳ {status}", weight="Bolder")]
    body += _steps_block(answer)
    for part in answer.parts:
        if isinstance(part, KnowledgePart) and part.entries:
            body += _knowledge(part)
    text = answer.text
    if text.strip():
        if len(text) > PROGRESS_TEXT:
            text = text[:PROGRESS_TEXT].rstrip() + " …"
        body += markdown_elements(text)
    actions = [{"type": "Action.Submit", "title": "Stop", "style": "destructive",
                "data": {"action": STOP_ACTION, "run_id": run_id}}]
    return adaptive_card(body, actions)


# -- the finished reply --------------------------------------------------------------------
def final_blocks(answer: Answer, run_id: str, images: dict[str, str | None]) -> list[Block]:
    blocks: list[Block] = []
    steps = _steps_block(answer)
    if steps:
        blocks.append(Block(steps))
    for part in answer.parts:
        if isinstance(part, KnowledgePart) and part.entries:
            blocks.append(Block(_knowledge(part)))
        elif isinstance(part, MetricPart):
            blocks.append(Block(_metric(part)))
    for part in answer.of_kind(PartKind.TEXT):
        assert isinstance(part, TextPart)
        blocks.extend(Block([e]) for e in markdown_elements(part.markdown))
    for part in answer.parts:
        if isinstance(part, TablePart):
            blocks.append(Block(_table(part)))
        elif isinstance(part, CodePart):
            blocks.append(Block(_code(part, running=False)))
    for part in answer.charts:
        blocks.append(_chart(part, images.get(part.id)))
    for index, part in enumerate(p for p in answer.parts if isinstance(p, SqlPart)):
        blocks.extend(_sql_blocks(part, index))
    for part in answer.errors:
        blocks.append(Block(_error(part, run_id)))
    if not blocks and answer.outcome is Outcome.DONE:
        blocks.append(Block([text_block("The analysis finished without an answer text.")]))
    return blocks


def trailer(answer: Answer, run_id: str, names: Names) -> list[Element]:
    """How the run ended; the run id doubles as the reference support can look up."""
    elements: list[Element] = []
    after = f" after {answer.elapsed:.0f} s" if answer.elapsed is not None else ""
    if answer.outcome is Outcome.STOPPED:
        who = names(answer.stopped_by) if answer.stopped_by else ""
        elements.append(text_block(f"⏹️ Stopped by {who}{after}." if who else f"⏹️ Stopped{after}.",
                                   weight="Bolder"))
    if answer.notice:
        elements.append(_subtle(answer.notice))
    if answer.outcome is Outcome.DONE:
        took = f"Answered in {answer.elapsed:.0f} s" if answer.elapsed is not None else "Answered"
        elements.append(_subtle(f"{took} · reference {run_id}"))
    elif answer.outcome is Outcome.STOPPED:
        elements.append(_subtle(f"Reference {run_id}"))
    return elements


def render_final(answer: Answer, run_id: str, images: dict[str, str | None], names: Names,
                 *, budget: int = CARD_BUDGET) -> list[dict[str, Any]]:
    """The finished reply as one or more cards, each under ``budget`` bytes and ≤ 1 image."""
    pages: list[list[Block]] = [[]]
    for block in final_blocks(answer, run_id, images):
        page = pages[-1]
        used = sum(b.size for b in page)
        if page and (used + block.size > budget or (block.image and any(b.image for b in page))):
            pages.append([])
        pages[-1].append(block)
    end = Block(trailer(answer, run_id, names))
    if end.elements:
        if pages[-1] and sum(b.size for b in pages[-1]) + end.size > budget:
            pages.append([])
        pages[-1].append(end)
    cards = []
    for n, page in enumerate(pages, 1):
        body = [e for b in page for e in b.elements]
        if n > 1:
            body.insert(0, _subtle(f"(continued {n}/{len(pages)})"))
        cards.append(adaptive_card(body))
    return cards


def chart_card(chart: ChartPart, image: str | None) -> dict[str, Any]:
    """A chart drawn after its answer went out, as a card of its own below the answer."""
    return adaptive_card(_chart(chart, image).elements)


def summary_text(answer: Answer) -> str:
    """The one line Teams shows in notifications and the chat list for a card."""
    if answer.errors:
        return f"Analysis failed: {answer.errors[0].message}"
    if answer.outcome is Outcome.STOPPED:
        return "Analysis stopped"
    return answer.text or (answer.status.text if answer.status else "") or "Analysis"


def plain_messages(answer: Answer, run_id: str, names: Names, *, limit: int = 8_000) -> list[str]:
    """Last resort when Teams refuses the cards: the same answer as Markdown text messages."""
    parts: list[str] = [answer.text]
    for part in answer.parts:
        if isinstance(part, SqlPart) and part.sql.strip():
            parts.append("SQL:\n```\n" + readable_sql(part.sql) + "\n```")
    for err in answer.errors:
        parts.append(f"⚠️ {err.message} (reference {err.reference or run_id})")
    for element in trailer(answer, run_id, names):
        parts.append(element.get("text", ""))
    text = "\n\n".join(p for p in parts if p and p.strip()) or "The analysis finished."
    return split_text(text, limit)
