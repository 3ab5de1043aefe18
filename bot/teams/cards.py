"""Answer → Adaptive Cards for Teams.

The running reply is one card (status, steps, partial text, a Stop button) that is replaced in
place. The finished reply is the same message turned into the full answer: text, tables,
the chart as an inline PNG ``Image`` (a data URI — a message with text *and* an image attachment
is split by Teams into two messages it cannot update), the SQL behind a "Show SQL" toggle, what
the backend consulted, errors with their reference, and how the run ended.

Teams rejects messages over roughly 28 KB (inline images are counted apart), so the finished
answer is laid out as blocks and packed into as many cards as needed — the first replaces the
placeholder, the others follow — rather than cut. Each card carries at most one image.

What Teams shows around a message (``bots/how-to/bot-messages-ai-generated-content``,
``agents-in-teams/integrate-ai``) is set on the activity, not in the card:

* every message carrying the agent's work is marked **AI generated** (one ``AIEntity``;
  Teams refuses a message with two root ``Message`` entities);
* the final messages of an answered run carry Teams' native 👍/👎 **feedback** controls
  (``channelData.feedbackLoop``; never together with the legacy ``feedbackLoopEnabled``, which
  Teams refuses) — the only feedback UI: the cards have no feedback buttons of their own;
* **citations** bind to ``[n]`` markers in the activity *text*. A card-only message has no text
  (text and a card in one activity are split by Teams), and markers inside a card are a
  developer-preview feature that shows a literal "[1]" elsewhere, so cards keep the plain
  "Consulted:" list and only the Markdown-text rendering carries markers and citation entities.

Suggested follow-ups are ``Action.Submit`` buttons on the last card (``{"action": "ask",
"question": …}``): a click arrives as a message activity with that value in every scope.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any, Callable

from microsoft_agents.activity import Activity, Attachment
from microsoft_agents.activity.entity.ai_entity import (
    AIEntity, ClientCitation, ClientCitationAppearance,
)

from adapters.answer import (
    Answer, ChartPart, CodePart, ErrorPart, KnowledgeEntry, KnowledgePart, MetricPart, Outcome,
    PartKind, SqlPart, StepPart, StepState, SuggestionsPart, TablePart, TextPart,
)
from bot.delivery.sqlformat import readable_sql
from bot.delivery.tabular import showing_line
from bot.delivery.textsplit import shorten, split_text
from bot.textclean import clean
from bot.teams.markdown import (
    Element, code_block, code_chunks, markdown_elements, markdown_groups, text_block,
)
from bot.teams.tables import result_table

CARD_CONTENT_TYPE = "application/vnd.microsoft.card.adaptive"
CARD_VERSION = "1.5"
CARD_BUDGET = 24_000  # bytes of card JSON per message (Teams: ~28 KB, images not counted)
PROGRESS_TEXT = 2_500
SQL_CHUNK = 8_000  # a CodeBlock and its fallback double the bytes
CODE_LINES = 40
STOP_ACTION = "stop"
ASK_ACTION = "ask"  # a suggested follow-up: {"action": "ask", "question": …}
MAX_SUGGESTIONS = 3
SUGGESTION_TITLE = 80  # characters on the button; the question travels whole in its data
MAX_CITATIONS = 20  # Teams refuses a message with more
FEEDBACK_LOOP = {"type": "default"}  # Teams' own 👍/👎 form
AI_GENERATED = "AIGeneratedContent"

Names = Callable[[str], str]


class Files:
    """What this conversation can do with the CSV of a result that was cut."""

    OFFER = "offer"  # a personal chat: the file is offered below the answer (consent card)
    NOT_HERE = "not_here"  # channels and group chats: bots cannot send files there
    TOO_LARGE = "too_large"  # more than one upload can carry
    NONE = "none"  # no file at all (a rendering that cannot say where one would be)


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
        Attachment(content_type=CARD_CONTENT_TYPE, content=clean(card))])
    if summary:
        activity.summary = clean(shorten(summary, 200))
    return activity


def text_activity(text: str) -> Activity:
    return Activity(type="message", text=clean(text), text_format="markdown")


class AIMessageEntity(AIEntity):
    """The SDK's ``AIEntity`` as Teams documents it: ``"@id": ""`` (the SDK writes ``"id"``)."""

    at_id: str = ""


def mark_ai_generated(activity: Activity, citations: list[ClientCitation] | None = None) -> Activity:
    """The "AI generated" label (and the citations, if any), as the one root message entity."""
    # every field given explicitly: the connector serialises with ``exclude_unset``, and a
    # defaulted ``additionalType`` would be left out — no label
    fields: dict[str, Any] = {"at_id": "", "additional_type": [AI_GENERATED]}
    if citations:
        fields["citation"] = citations
    entity = AIMessageEntity(**fields)
    activity.entities = [e for e in (activity.entities or [])
                         if not isinstance(e, AIEntity)] + [entity]
    return activity


def with_feedback(activity: Activity) -> Activity:
    """Teams' native 👍/👎 controls under the message (answered as ``message/submitAction``)."""
    data = dict(activity.channel_data) if isinstance(activity.channel_data, dict) else {}
    data.pop("feedbackLoopEnabled", None)  # Teams refuses both at once
    data["feedbackLoop"] = dict(FEEDBACK_LOOP)
    activity.channel_data = data
    return activity


def has_ai_content(answer: Answer) -> bool:
    """Anything the agent produced: not our status line, an error of ours, or the step titles
    (ours too: "Understanding your question" above a failure is not AI-generated text)."""
    return any(p.kind not in (PartKind.STATUS, PartKind.STEP, PartKind.ERROR) for p in answer.parts)


def wants_feedback(answer: Answer) -> bool:
    return answer.outcome is Outcome.DONE


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

    return len(json.dumps(strip(elements), ensure_ascii=False).encode("utf-8", "surrogatepass"))


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


def _table_blocks(part: TablePart, files: dict[str, str]) -> list[Block]:
    """A result table: Table chunks (kept whole, one block each), then what was left out and
    where the rest is."""
    view = result_table(part)
    groups = [list(g) for g in view.chunks]
    if not groups:
        groups = [[_subtle("The query returned no rows.")]] if not part.columns else [[]]
    if part.title:
        groups[0].insert(0, text_block(part.title, weight="Bolder"))
    rule = files.get(part.id, Files.NONE)
    groups[-1].append(_subtle(_table_note(part, view.shown_rows, view.shown_columns, rule)))
    return [Block(g) for g in groups]


def _table_note(part: TablePart, shown: int, columns: int, files: str) -> str:
    note = showing_line(part, shown)
    hidden_columns = len(part.columns) - columns
    if hidden_columns > 0:
        note += f" · {hidden_columns} more column{'s' if hidden_columns != 1 else ''} not shown"
    cut_here = len(part.rows) > shown or hidden_columns > 0
    backend_cut = part.total is not None and part.total > len(part.rows)
    if not cut_here:
        return note + (" (all the backend returned)" if backend_cut else "")
    rows = (f"The {len(part.rows):,} rows the backend returned are" if backend_cut
            else f"All {len(part.rows):,} rows are")
    if files == Files.OFFER:
        return note + f". {rows} offered as a CSV file below."
    if files == Files.NOT_HERE:
        return note + (". Teams lets bots send files only in personal chats, so the full result "
                       "cannot be attached here; ask me in a personal chat to get it as a CSV file.")
    if files == Files.TOO_LARGE:
        return note + ". The full result is too large to send as a file in Teams."
    return note + "."


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
def intro_block(intro: str) -> Element:
    """Who asked a question that came from a click ("Ada asked: …"), so the thread reads well."""
    return text_block(f"💬 {intro}", isSubtle=True, spacing="None")


def render_progress(answer: Answer, run_id: str, *, intro: str = "") -> dict[str, Any]:
    status = answer.status.text if answer.status and answer.status.text else "Working on it…"
    body: list[Element] = [intro_block(intro)] if intro else []
    body.append(text_block(f"⏳ {status}", weight="Bolder"))
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
def final_blocks(answer: Answer, run_id: str, images: dict[str, str | None], *,
                 files: dict[str, str] | None = None) -> list[Block]:
    files = files or {}
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
        blocks.extend(Block(group) for group in markdown_groups(part.markdown))
    for part in answer.parts:
        if isinstance(part, TablePart):
            blocks.extend(_table_blocks(part, files))
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


def suggestions(answer: Answer) -> list[str]:
    """The follow-up questions to offer (finished answers only), without repeats."""
    if answer.outcome is not Outcome.DONE:
        return []
    seen: list[str] = []
    for part in answer.parts:
        if isinstance(part, SuggestionsPart):
            for question in part.questions:
                question = " ".join(question.split())
                if question and question not in seen:
                    seen.append(question)
    return seen[:MAX_SUGGESTIONS]


def suggestion_elements(answer: Answer) -> list[Element]:
    """"Ask next:" and one button per question, each on its own row so long questions read."""
    questions = suggestions(answer)
    if not questions:
        return []
    elements: list[Element] = [_subtle("Ask next:")]
    for question in questions:
        title = shorten(question, SUGGESTION_TITLE)
        action: Element = {"type": "Action.Submit", "title": title,
                           "data": {"action": ASK_ACTION, "question": question}}
        if title != question:
            action["tooltip"] = question  # the whole question on hover
        elements.append({"type": "ActionSet", "spacing": "Small", "actions": [action]})
    return elements


def render_final(answer: Answer, run_id: str, images: dict[str, str | None], names: Names,
                 *, budget: int = CARD_BUDGET, intro: str = "",
                 files: dict[str, str] | None = None) -> list[dict[str, Any]]:
    """The finished reply as one or more cards, each under ``budget`` bytes and ≤ 1 image."""
    pages: list[list[Block]] = [[]]
    blocks = final_blocks(answer, run_id, images, files=files)
    if intro:
        blocks.insert(0, Block([intro_block(intro)]))
    for block in blocks:
        page = pages[-1]
        used = sum(b.size for b in page)
        if page and (used + block.size > budget or (block.image and any(b.image for b in page))):
            pages.append([])
        pages[-1].append(block)
    end = Block(trailer(answer, run_id, names) + suggestion_elements(answer))
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


def plain_messages(answer: Answer, run_id: str, names: Names, *, limit: int = 8_000,
                   intro: str = "", files: dict[str, str] | None = None) -> list[str]:
    """Last resort when Teams refuses the cards: the same answer as Markdown text messages.
    What the agent consulted is listed with ``[n]`` markers (see :func:`citations`)."""
    parts: list[str] = [f"💬 {intro}"] if intro else []
    parts.append(answer.text)
    consulted = consulted_line(answer)
    if consulted:
        parts.append(consulted)
    for part in answer.parts:
        if isinstance(part, TablePart):
            total = part.total if part.total is not None else len(part.rows)
            name = part.title or "The result table"
            csv = " (its CSV file follows)" if (files or {}).get(part.id) == Files.OFFER else ""
            parts.append(f"📋 {name}: {total:,} row{'s' if total != 1 else ''}, not shown in this "
                         f"plain-text version{csv}.")
        elif isinstance(part, SqlPart) and part.sql.strip():
            parts.append("SQL:\n```\n" + readable_sql(part.sql) + "\n```")
    for err in answer.errors:
        parts.append(f"⚠️ {err.message} (reference {err.reference or run_id})")
    for element in trailer(answer, run_id, names):
        parts.append(element.get("text", ""))
    questions = suggestions(answer)
    if questions:
        parts.append("Ask next: " + " · ".join(f"“{q}”" for q in questions))
    text = "\n\n".join(p for p in parts if p and p.strip()) or "The analysis finished."
    return split_text(text, limit)


def plain_activities(answer: Answer, run_id: str, names: Names, *, intro: str = "",
                     files: dict[str, str] | None = None) -> list[Activity]:
    """:func:`plain_messages` as activities: AI label and feedback like the cards, and the
    citations on the message whose text carries their markers."""
    activities = []
    entries = consulted_entries(answer)
    for text in plain_messages(answer, run_id, names, intro=intro, files=files):
        activity = text_activity(text)
        cited = [c for c in citations(entries) if f"[{c.position}]" in text]
        if has_ai_content(answer):
            mark_ai_generated(activity, cited or None)
        if wants_feedback(answer):
            with_feedback(activity)
        activities.append(activity)
    return activities


def consulted_entries(answer: Answer) -> list[KnowledgeEntry]:
    entries: list[KnowledgeEntry] = []
    for part in answer.parts:
        if isinstance(part, KnowledgePart):
            entries.extend(e for e in part.entries if e.title.strip() and e not in entries)
    return entries


def consulted_line(answer: Answer) -> str:
    """"📚 Consulted: orders [1], payments [2]" — a marker for each of the first 20 entries."""
    entries = consulted_entries(answer)
    if not entries:
        return ""
    named = [f"{e.title} [{i}]" for i, e in enumerate(entries[:MAX_CITATIONS], 1)]
    more = f" (+{len(entries) - MAX_CITATIONS} more)" if len(entries) > MAX_CITATIONS else ""
    return "📚 Consulted: " + ", ".join(named) + more


def citations(entries: list[KnowledgeEntry]) -> list[ClientCitation]:
    """Teams citations for the markers of :func:`consulted_line` (title ≤ 80 characters,
    abstract ≤ 160, as Teams requires)."""
    out = []
    for position, entry in enumerate(entries[:MAX_CITATIONS], 1):
        fields = {"name": shorten(entry.title.strip(), 80)}
        if entry.detail.strip():
            fields["abstract"] = shorten(" ".join(entry.detail.split()), 160)
        appearance = ClientCitationAppearance(**fields)
        out.append(ClientCitation(position=position, appearance=appearance))
    return out
