"""Block Kit building blocks, and what each one costs against Slack's per-message limits.

Slack rejects a message with more than 50 blocks, a section or context text over 3,000
characters, more than about 12,000 characters of block text (``msg_blocks_too_long``), more than
one table, or more than 10,000 characters across a message's table cells. Two costs are easy to
miss, and the packer in ``render.py`` counts both:

* a ``markdown`` block is *expanded* by Slack: each heading, horizontal rule and code fence
  becomes a block of its own (with the text around it split off), so one block can count as
  many (:func:`counted_blocks`);
* every kind of text counts, not only markdown: sections, contexts, headers, alt texts, button
  labels and table cells (:func:`text_size`).

Text is never cut to fit: :func:`sections` and :func:`markdown` split long text into several
blocks (which the packer may spread over several messages).
"""

from __future__ import annotations

import re
from typing import Any, Iterable

from bot.delivery.textsplit import shorten, split_text

Block = dict[str, Any]

SECTION_LIMIT = 3000
CONTEXT_LIMIT = 3000
HEADER_LIMIT = 150
MARKDOWN_CHUNK = 3000  # markdown blocks may hold 12,000, but small ones pack into messages better
MARKDOWN_SPLITS = 10  # headings, rules and fences per markdown block (each expands into blocks)

_HEADING = re.compile(r"^\s{0,3}#{1,6}\s+\S", re.MULTILINE)
_RULE = re.compile(r"^\s{0,3}([-*_])(\s*\1){2,}\s*$", re.MULTILINE)
_FENCE = re.compile(r"^\s*(```|~~~)", re.MULTILINE)
_TABLES = {"table", "data_table"}


def mrkdwn_escape(text: str) -> str:
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def context(text: str) -> Block:
    """A small grey line. Our own short notes only: shortened, never answer content."""
    return {"type": "context", "elements": [{"type": "mrkdwn", "text": shorten(text, CONTEXT_LIMIT - 100)}]}


def sections(text: str) -> list[Block]:
    """``text`` as mrkdwn sections, split (never cut) at Slack's 3,000 characters."""
    return [{"type": "section", "text": {"type": "mrkdwn", "text": chunk}}
            for chunk in split_text(text, SECTION_LIMIT)]


def code(text: str) -> list[Block]:
    """``text`` in code fences, split over sections where long (each chunk stays a fence)."""
    fenced = f"```\n{text.strip()}\n```"
    return sections(fenced)


def markdown(text: str) -> list[Block]:
    """``text`` as markdown blocks small enough to pack: at most ``MARKDOWN_CHUNK`` characters
    and ``MARKDOWN_SPLITS`` headings/rules/fences each (Slack expands every one into blocks)."""
    out: list[Block] = []
    for chunk in split_text(text, MARKDOWN_CHUNK):
        out += [{"type": "markdown", "text": piece} for piece in _by_headings(chunk)]
    return out


def _by_headings(text: str) -> list[str]:
    """Split ``text`` before a heading or rule (outside code fences) whenever the piece so far
    holds ``MARKDOWN_SPLITS`` of them already."""
    pieces: list[list[str]] = [[]]
    splits, fenced = 0, False
    for line in text.splitlines():
        marker = bool(_FENCE.match(line))
        if marker:
            fenced = not fenced
        heading = not fenced and not marker and bool(_HEADING.match(line) or _RULE.match(line))
        if heading and splits >= MARKDOWN_SPLITS and pieces[-1]:
            pieces.append([])
            splits = 0
        if heading or marker:
            splits += 1
        pieces[-1].append(line)
    return [joined for p in pieces if (joined := "\n".join(p)).strip()]


def button(text: str, action_id: str, value: str, *, style: str | None = None) -> Block:
    out: Block = {"type": "button", "action_id": action_id, "value": value,
                  "text": {"type": "plain_text", "text": shorten(text, 75)}}
    if style:
        out["style"] = style
    return out


def actions(*elements: Block, block_id: str | None = None) -> Block:
    out: Block = {"type": "actions", "elements": list(elements)}
    if block_id:
        out["block_id"] = block_id
    return out


# -- what a block costs ----------------------------------------------------------------------
def counted_blocks(block: Block) -> int:
    """How many blocks Slack counts this one as (a markdown block is expanded)."""
    if block.get("type") != "markdown":
        return 1
    text = str(block.get("text", ""))
    splits = len(_HEADING.findall(text)) + len(_RULE.findall(text)) + len(_FENCE.findall(text))
    return 1 + 2 * splits


def text_size(block: Block) -> int:
    """Every character of text the block carries."""
    return sum(len(s) for s in _strings(block))


def table_cells_size(block: Block) -> int:
    if block.get("type") not in _TABLES:
        return 0
    return sum(len(s) for row in block.get("rows") or [] for cell in row for s in _strings(cell))


def is_table(block: Block) -> bool:
    return block.get("type") in _TABLES


def _strings(node: Any) -> Iterable[str]:
    if isinstance(node, dict):
        for key, value in node.items():
            if key in ("text", "alt_text", "caption", "title") and isinstance(value, str):
                yield value
            elif key not in ("type", "action_id", "block_id", "value", "style", "url"):
                yield from _strings(value)
    elif isinstance(node, list):
        for item in node:
            yield from _strings(item)
