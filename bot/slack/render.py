"""Answer → Block Kit, under Slack's real limits.

Slack rejects a message with more than 50 blocks, a section over 3,000 characters, markdown
blocks over 12,000 characters in total, or ``text`` over roughly 4,000 characters. Rather than
truncating, the final answer is laid out as a list of blocks and then packed into as many thread
messages as needed: the first replaces the placeholder, the rest follow in the thread. Nothing
the backend said is dropped; very long SQL is also attached as a file.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from adapters.answer import (
    Answer, ChartPart, CodePart, ErrorPart, KnowledgePart, MetricPart, Outcome, PartKind,
    SqlPart, StepPart, StepState, SuggestionsPart, TablePart, TextPart,
)
from bot.delivery.sqlformat import readable_sql
from bot.delivery.tables import monospace_table
from bot.delivery.textsplit import shorten, split_text

SECTION_LIMIT = 3000
MARKDOWN_TOTAL = 11_000  # Slack's cumulative budget is 12,000; keep room for containers
MAX_BLOCKS = 45  # of 50, leaving room for the trailer blocks
TEXT_LIMIT = 3_000
SQL_INLINE_LINES = 40
STOP_ACTION = "stop_run"
FEEDBACK_ACTION = "feedback"
SUGGESTION_ACTION = "ask_suggestion"
MAX_SUGGESTIONS = 3

Block = dict[str, Any]


@dataclass
class SlackMessage:
    text: str
    blocks: list[Block] = field(default_factory=list)


@dataclass
class Attachment:
    """A file to upload into the thread (chart PNG, full SQL)."""

    filename: str
    content: bytes
    title: str
    alt_text: str = ""


@dataclass
class FinalReply:
    messages: list[SlackMessage]
    attachments: list[Attachment]


def _context(text: str) -> Block:
    return {"type": "context", "elements": [{"type": "mrkdwn", "text": shorten(text, 2900)}]}


def _section(text: str) -> Block:
    return {"type": "section", "text": {"type": "mrkdwn", "text": text[:SECTION_LIMIT]}}


def _markdown(text: str) -> Block:
    return {"type": "markdown", "text": text}


def _code_sections(code: str, lang: str = "") -> list[Block]:
    fence = "```"
    return [_section(chunk) for chunk in split_text(f"{fence}\n{code.strip()}\n{fence}",
                                                     SECTION_LIMIT - 10)]


def _mrkdwn_escape(text: str) -> str:
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def _step_icon(state: StepState) -> str:
    return {StepState.DONE: ":white_check_mark:", StepState.ERROR: ":x:",
            StepState.PENDING: ":white_circle:"}.get(state, ":hourglass_flowing_sand:")


def _knowledge_line(part: KnowledgePart) -> str:
    names = ", ".join(_mrkdwn_escape(e.title) for e in part.entries[:8])
    more = f" (+{len(part.entries) - 8} more)" if len(part.entries) > 8 else ""
    return f":books: Consulted: {names}{more}"


def _table_blocks(part: TablePart) -> list[Block]:
    headers = [c.name for c in part.columns]
    shown = min(len(part.rows), 15)
    total = part.total if part.total is not None else len(part.rows)
    table = monospace_table(headers, part.rows, max_rows=15)
    blocks = []
    if part.title:
        blocks.append(_section(f"*{_mrkdwn_escape(part.title)}*"))
    blocks.extend(_code_sections(table))
    types = ", ".join(f"{c.name} ({c.type})" for c in part.columns if c.type)
    note = f"Showing {shown} of {total} rows"
    blocks.append(_context(note + (f" · {_mrkdwn_escape(types)}" if types else "")))
    return blocks


def _sql_blocks(part: SqlPart, attachments: list[Attachment], *, running: bool) -> list[Block]:
    sql = readable_sql(part.sql)
    if not sql:
        return []
    lines = sql.splitlines()
    title = f"*SQL{(' — ' + _mrkdwn_escape(part.title)) if part.title else ''}*"
    if running:
        shown = "\n".join(lines[:12]) + ("\n…" if len(lines) > 12 else "")
        return [_section(title)] + _code_sections(shown[:1500])
    if len(lines) > SQL_INLINE_LINES or len(sql) > 2 * SECTION_LIMIT:
        attachments.append(Attachment(f"query-{part.id}.sql".replace(":", "-"), sql.encode(),
                                      part.title or "Full SQL"))
        shown = "\n".join(lines[:SQL_INLINE_LINES])
        return ([_section(title)] + _code_sections(shown)
                + [_context(f"{len(lines) - SQL_INLINE_LINES} more lines: the full SQL is attached below.")])
    return [_section(title)] + _code_sections(sql)


def _code_blocks(part: CodePart, *, running: bool) -> list[Block]:
    lines = part.source.strip().splitlines()
    keep = 8 if running else 15
    blocks = [_section(f"*Code* ({part.language}, {len(lines)} lines)")]
    shown = "\n".join(lines[:keep]) + (f"\n… ({len(lines) - keep} more lines)" if len(lines) > keep else "")
    blocks += _code_sections(shown)
    if part.output.strip():
        out = part.output.strip()
        blocks.append(_section("*Output*"))
        blocks += _code_sections(out if not running else out[:800])
    return blocks


def _chart_blocks(part: ChartPart) -> list[Block]:
    if part.png is not None:
        return []  # uploaded as a file into the thread
    title = _mrkdwn_escape(part.title) or "Chart"
    if part.note:
        blocks = [_context(f":bar_chart: {title}: {_mrkdwn_escape(part.note)}")]
    elif part.image_url:
        blocks = [_context(f":bar_chart: <{part.image_url}|{title}>")]
    else:
        kind = f" ({part.chart_type})" if part.chart_type else ""
        blocks = [_context(f":bar_chart: {title}{kind}")]
    if part.sql and not part.png:
        blocks += _code_sections(readable_sql(part.sql))
    return blocks


def _error_blocks(part: ErrorPart) -> list[Block]:
    ref = f"Reference: `{part.reference}`" if part.reference else ""
    code = f" · code `{part.code}`" if part.code else ""
    return [_section(f":warning: {_mrkdwn_escape(part.message)}"), _context((ref + code).strip(" ·") or "Error")]


def _text_blocks(answer: Answer, *, limit: int | None = None) -> list[Block]:
    blocks: list[Block] = []
    for part in answer.of_kind(PartKind.TEXT):
        assert isinstance(part, TextPart)
        body = part.markdown.strip()
        if not body:
            continue
        if limit is not None and len(body) > limit:
            body = body[:limit].rstrip() + " …"
        blocks.extend(_markdown(chunk) for chunk in split_text(body, SECTION_LIMIT))
    return blocks


def _body_blocks(answer: Answer, attachments: list[Attachment], *, running: bool) -> list[Block]:
    blocks: list[Block] = []
    steps = [p for p in answer.parts if isinstance(p, StepPart)]
    if steps:
        lines = [f"{_step_icon(s.state)} {_mrkdwn_escape(s.title)}" for s in steps[-10:]]
        blocks.append(_context("\n".join(lines)))
    for part in answer.parts:
        if isinstance(part, KnowledgePart) and part.entries:
            blocks.append(_context(_knowledge_line(part)))
        elif isinstance(part, MetricPart):
            desc = f" — {_mrkdwn_escape(part.description)}" if part.description else ""
            blocks.append(_context(f":straight_ruler: Metric: *{_mrkdwn_escape(part.name)}*{desc}"))
    blocks += _text_blocks(answer, limit=2500 if running else None)
    for part in answer.parts:
        if isinstance(part, TablePart):
            blocks += _table_blocks(part)
        elif isinstance(part, CodePart):
            blocks += _code_blocks(part, running=running)
    for part in answer.parts:
        if isinstance(part, SqlPart):
            blocks += _sql_blocks(part, attachments, running=running)
    for part in answer.parts:
        if isinstance(part, ChartPart):
            blocks += _chart_blocks(part)
    for part in answer.errors:
        blocks += _error_blocks(part)
    return blocks


def _fallback_text(answer: Answer) -> str:
    if answer.errors:
        return shorten(f"Analysis failed: {answer.errors[0].message}", 300)
    if answer.text:
        return shorten(answer.text, 300)
    status = answer.status.text if answer.status else ""
    return status or "Analysis"


def render_progress(answer: Answer, run_id: str) -> SlackMessage:
    """The placeholder while a run is going: status, what is known so far, and a Stop button."""
    blocks: list[Block] = []
    status = answer.status.text if answer.status and answer.status.text else "Working on it…"
    blocks.append(_context(f":hourglass_flowing_sand: {_mrkdwn_escape(status)}"))
    body = _body_blocks(answer, [], running=True)
    # keep the progress view small: it is replaced by the full answer at the end
    budget, kept, md = 40, [], 0
    for block in body:
        size = len(block.get("text", "")) if block["type"] == "markdown" else 0
        if len(kept) >= budget or md + size > 6000:
            break
        md += size
        kept.append(block)
    blocks += kept
    blocks.append({"type": "actions", "block_id": "run_controls", "elements": [{
        "type": "button", "action_id": STOP_ACTION, "style": "danger", "value": run_id,
        "text": {"type": "plain_text", "text": "Stop"}}]})
    return SlackMessage(text=shorten(status, 300), blocks=blocks)


def retired_pointer() -> SlackMessage:
    """What an old placeholder becomes when its answer had to be posted as a new message:
    one line, and no Stop button left behind."""
    text = "This analysis has finished: the answer is in the reply below."
    return SlackMessage(text=text, blocks=[_context(f":arrow_down: {text}")])


def _trailer(answer: Answer, run_id: str) -> list[Block]:
    blocks: list[Block] = []
    if answer.outcome is Outcome.STOPPED:
        who = f"<@{answer.stopped_by}>" if answer.stopped_by else "request"
        after = f" after {answer.elapsed:.0f} s" if answer.elapsed is not None else ""
        blocks.append(_section(f":black_square_for_stop: Stopped by {who}{after}."))
    if answer.notice:
        blocks.append(_context(_mrkdwn_escape(answer.notice)))
    if answer.outcome is Outcome.DONE:
        elapsed = f"Answered in {answer.elapsed:.0f} s" if answer.elapsed is not None else "Answered"
        blocks.append(_context(elapsed))
        blocks += _suggestion_blocks(answer)
        blocks.append({"type": "context_actions", "elements": [{
            "type": "feedback_buttons", "action_id": FEEDBACK_ACTION,
            "positive_button": {"text": {"type": "plain_text", "text": "Good"},
                                "accessibility_label": "Mark this answer as helpful",
                                "value": f"good:{run_id}"},
            "negative_button": {"text": {"type": "plain_text", "text": "Bad"},
                                "accessibility_label": "Mark this answer as not helpful",
                                "value": f"bad:{run_id}"}}]})
    return blocks


def _suggestion_blocks(answer: Answer) -> list[Block]:
    questions = [q for p in answer.parts if isinstance(p, SuggestionsPart) for q in p.questions
                 if q.strip()][:MAX_SUGGESTIONS]
    if not questions:
        return []
    # a button label is at most 75 characters; the value carries the whole question
    buttons = [{"type": "button", "action_id": f"{SUGGESTION_ACTION}:{i}",
                "text": {"type": "plain_text", "text": shorten(q, 75)}, "value": q[:2000]}
               for i, q in enumerate(questions)]
    return [_context("Ask next:"), {"type": "actions", "block_id": "suggestions", "elements": buttons}]


def render_final(answer: Answer, run_id: str) -> FinalReply:
    """The finished reply, packed into as many messages as Slack's limits require."""
    attachments: list[Attachment] = []
    body = _body_blocks(answer, attachments, running=False)
    if not body and answer.outcome is Outcome.DONE:
        body = [_section("The analysis finished without an answer text.")]
    trailer = _trailer(answer, run_id)
    messages: list[SlackMessage] = []
    current: list[Block] = []
    md_total = 0
    for block in body:
        size = len(block.get("text", "")) if block["type"] == "markdown" else 0
        if current and (len(current) >= MAX_BLOCKS or md_total + size > MARKDOWN_TOTAL):
            messages.append(SlackMessage(text="", blocks=current))
            current, md_total = [], 0
        current.append(block)
        md_total += size
    if current and len(current) + len(trailer) > 50:
        messages.append(SlackMessage(text="", blocks=current))
        current = []
    current += trailer
    messages.append(SlackMessage(text="", blocks=current))
    fallback = _fallback_text(answer)
    for i, msg in enumerate(messages):
        msg.text = fallback if i == 0 else f"(continued {i + 1}/{len(messages)})"
    attachments += chart_attachments(answer.charts, first=len(attachments) + 1)
    return FinalReply(messages=messages, attachments=attachments)


def chart_attachments(charts: list[ChartPart], *, first: int = 1) -> list[Attachment]:
    """The drawn charts as PNG files to upload into the thread."""
    out: list[Attachment] = []
    for chart in charts:
        if chart.png is not None:
            name = f"chart-{first + len(out)}.{image_extension(chart.png)}"
            out.append(Attachment(name, chart.png, chart.title or "Chart", chart.title or "Chart"))
    return out


def image_extension(data: bytes) -> str:
    """Backend images are usually PNG, but TextQL may hand over JPEG, GIF or WebP."""
    if data.startswith(b"\xff\xd8\xff"):
        return "jpg"
    if data[:6] in (b"GIF87a", b"GIF89a"):
        return "gif"
    if data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return "webp"
    return "png"


def plain_fallback(answer: Answer, run_id: str) -> list[SlackMessage]:
    """Last resort when Slack rejects the blocks: the same content as plain text messages."""
    parts: list[str] = [answer.text]
    for part in answer.parts:
        if isinstance(part, SqlPart) and part.sql:
            parts.append("SQL:\n```\n" + part.sql.strip() + "\n```")
    for err in answer.errors:
        parts.append(f":warning: {err.message} (reference {err.reference or run_id})")
    if answer.outcome is Outcome.STOPPED:
        parts.append(f"Stopped by <@{answer.stopped_by}>." if answer.stopped_by else "Stopped.")
    text = "\n\n".join(p for p in parts if p and p.strip()) or "The analysis finished."
    return [SlackMessage(text=chunk) for chunk in split_text(text, TEXT_LIMIT)]
