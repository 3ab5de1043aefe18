"""Ana's ``block`` JSON → answer parts.

Blocks are Haskell-aeson tagged unions (``{"tag": …, "contents": …, "id": …}``) and Ana re-sends a
block with the same ``id`` as it grows. Translation is therefore a pure function of one block:
every part id is derived from the block id (``<id>:text``, ``<id>:sql``, ``<id>:table``, …), so a
re-sent block replaces its earlier parts in place.

``OntologyBlock`` (seed 002) → knowledge (object, attributes), SQL (``sqlQuery``), a table
(``sqlResult``, else ``preview``: ``colNames``/``colTypes``/``resultVals``; every row, never cut
here; ``total`` only when TextQL gives a count, which the seed does not) and text
(``oai_output``, "Message for the user about the data loaded").

Only ``TextBlock`` and the shape of ``OntologyBlock``/``PythonBlock`` in the seed are documented;
the rest is guessed (backends.md §2.2). The parser therefore accepts ``contents`` as a string or an
object, tagged unions as ``{"tag", "contents"}`` or as a single-key object (``{"TextResult": …}``),
and turns anything it does not know into a progress line rather than an error.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from adapters.answer import (
    CodePart, Column, ErrorPart, KnowledgeEntry, KnowledgePart, Part, SqlPart, StatusPart,
    TablePart, TextPart,
)

STATUS_ID = "status"  # the relay's progress line: ours replaces its "working…" text

_COL_TYPES = {
    "StringCol": "string", "TextCol": "string", "NumCol": "number", "IntCol": "number",
    "FloatCol": "number", "DateCol": "date", "DateTimeCol": "datetime", "TimestampCol": "datetime",
    "BoolCol": "boolean",
}
Table = tuple[tuple[Column, ...], tuple[tuple[Any, ...], ...], int | None]  # columns, rows, full count
_TOTAL_KEYS = ("totalRows", "total_rows", "totalRowCount", "rowCount", "numRows", "total")


class BlockError(ValueError):
    """A ``block`` event whose data is not a JSON object."""


@dataclass(frozen=True)
class ImageRef:
    """An image Ana produced; the adapter downloads it into a chart part with this id."""

    part_id: str
    url: str
    title: str


@dataclass(frozen=True)
class BlockView:
    """What one version of a block means for the answer."""

    id: str
    tag: str
    parts: tuple[Part, ...]
    images: tuple[ImageRef, ...] = ()
    error: ErrorPart | None = None  # set for an ErrorBlock
    known: bool = True  # False: a tag (or result tag) this parser does not understand


# -- decoding ------------------------------------------------------------------------------
def decode_block(data: str) -> dict[str, Any]:
    """Parse a ``block`` event's data; raises :class:`BlockError` for anything but an object."""
    try:
        value = json.loads(data)
        if isinstance(value, str):  # tolerate a double-encoded block
            value = json.loads(value)
    except ValueError as exc:
        raise BlockError(f"block is not valid JSON ({exc.msg})") from None
    if not isinstance(value, dict):
        raise BlockError(f"block is a JSON {type(value).__name__}, not an object")
    return value


def untag(value: Any) -> tuple[str, Any]:
    """``(tag, contents)`` of a tagged union in either aeson encoding; ``("", value)`` if neither."""
    if isinstance(value, dict):
        if isinstance(value.get("tag"), str):
            return value["tag"], value.get("contents", value)
        if len(value) == 1:
            (key, inner), = value.items()
            if isinstance(key, str) and key[:1].isupper():
                return key, inner
    return "", value


def _text_of(value: Any, *keys: str) -> str:
    """A string from ``value`` itself or from the first of ``keys`` that holds one."""
    if isinstance(value, str):
        return value
    if isinstance(value, dict):
        for key in keys:
            found = value.get(key)
            if isinstance(found, str):
                return found
    return ""


def _object(value: Any) -> dict[str, Any]:
    """``contents`` as an object: as given, JSON-decoded from a string, or empty."""
    if isinstance(value, dict):
        return value
    if isinstance(value, str) and value.lstrip().startswith("{"):
        try:
            decoded = json.loads(value)
        except ValueError:
            return {}
        return decoded if isinstance(decoded, dict) else {}
    return {}


# -- translation ---------------------------------------------------------------------------
def translate_block(block: dict[str, Any], *, fallback_id: str) -> BlockView:
    """The parts (and images to fetch) for one version of one block."""
    tag, contents = untag(block)
    tag = tag or "Block"
    raw_id = block.get("id")
    block_id = str(raw_id) if isinstance(raw_id, str | int) and str(raw_id) else fallback_id
    if tag == "TextBlock":
        text = _text_of(contents, "text", "markdown", "content", "contents")
        return BlockView(block_id, tag, (TextPart(f"{block_id}:text", text),))
    if tag == "PythonBlock":
        return _python(block_id, block, contents)
    if tag == "OntologyBlock":
        return _ontology(block_id, contents)
    if tag == "ErrorBlock":
        message = _text_of(contents, "message", "error", "contents") or "Ana reported an error."
        error = ErrorPart(block_id, message.strip(), code="ana_error")
        return BlockView(block_id, tag, (error,), error=error)
    return BlockView(block_id, tag, (StatusPart(STATUS_ID, f"Ana is working ({_words(tag)})…"),),
                     known=False)


def _words(tag: str) -> str:
    """``SqlBlock`` → ``sql``: a tag as a few lowercase words for a progress line."""
    name = tag[:-5] if tag.endswith("Block") and len(tag) > 5 else tag
    out = "".join(f" {c.lower()}" if c.isupper() and i else c.lower() for i, c in enumerate(name))
    return out.strip() or "step"


def _python(block_id: str, block: dict[str, Any], contents: Any) -> BlockView:
    code = _text_of(contents, "code", "source", "contents")
    results = block.get("results")
    if results is None and isinstance(contents, dict):
        results = contents.get("results")
    outputs: list[str] = []
    images: list[ImageRef] = []
    known = True
    for item in results if isinstance(results, list) else []:
        rtag, payload = untag(item)
        if rtag == "TextResult":
            outputs.append(_text_of(payload, "text", "contents", "output"))
        elif rtag == "ImageUrlResult":
            url = _text_of(payload, "url", "imageUrl", "image_url", "src", "contents")
            if url:
                title = _text_of(payload, "title", "name") if isinstance(payload, dict) else ""
                n = len(images)
                images.append(ImageRef(f"{block_id}:image:{n}", url.strip(), title or f"Chart {n + 1}"))
        else:
            known = False
            text = _text_of(payload, "message", "text", "contents")
            if text:  # an error or another text-like result: better shown than lost
                outputs.append(text)
    parts: list[Part] = [CodePart(f"{block_id}:code", code, "python",
                                  "\n".join(o for o in outputs if o).rstrip())]
    if results is None:  # "results … only present when code execution is complete"
        parts.append(StatusPart(STATUS_ID, "Ana is running Python…"))
    return BlockView(block_id, "PythonBlock", tuple(parts), tuple(images), known=known)


def _ontology(block_id: str, contents: Any) -> BlockView:
    body = _object(contents)
    query = _text_of(body, "query") or (contents if isinstance(contents, str) and not body else "")
    _, result = untag(body.get("result"))
    result = _object(result)
    title = query.strip()
    parts: list[Part] = []
    knowledge = _consulted(result)
    if knowledge:
        parts.append(KnowledgePart(f"{block_id}:knowledge", knowledge))
    sql = _text_of(result, "sqlQuery")
    if sql.strip():
        parts.append(SqlPart(f"{block_id}:sql", sql, title=title))
    table = _table(result.get("sqlResult")) or _table(result.get("preview"))
    if table is not None:
        columns, rows, total = table
        parts.append(TablePart(f"{block_id}:table", columns, rows, total=total, title=title))
    # seed: "oai_output — Message for the user about the data loaded" ("Data from object Store
    # loaded into DataFrame df1 …"): Ana's own words, so answer text, after the table it describes
    note = _text_of(result, "oai_output") or _text_of(body, "oai_output")
    if note.strip():
        parts.append(TextPart(f"{block_id}:output", note.strip()))
    if not result.get("complete"):
        what = f": {title}" if title else ""
        parts.append(StatusPart(STATUS_ID, f"Ana is querying the data warehouse{what}…"))
    return BlockView(block_id, "OntologyBlock", tuple(parts))


def _consulted(result: dict[str, Any]) -> tuple[KnowledgeEntry, ...]:
    """The ontology object (and its table) and the attributes Ana selected."""
    entries: list[KnowledgeEntry] = []
    obj = result.get("object")
    selected = obj.get("selectedObject") if isinstance(obj, dict) else None
    inner = selected.get("innerUVal") if isinstance(selected, dict) else None
    if isinstance(inner, dict) and _text_of(inner, "objectName"):
        table = inner.get("backingTable")
        where = ""
        if isinstance(table, dict):
            where = ".".join(str(table[k]) for k in ("schema", "table") if table.get(k))
        entries.append(KnowledgeEntry(f"Object: {inner['objectName']}", where))
    names: list[str] = []
    for attr in result.get("selectedAttributes") or []:
        value = attr.get("innerUVal") if isinstance(attr, dict) else None
        name = _text_of(value, "attributeName")
        if name:
            names.append(name)
    if names:
        entries.append(KnowledgeEntry("Attributes", ", ".join(names)))
    return tuple(entries)


def _table_source(value: Any, depth: int = 0) -> tuple[dict[str, Any], list[dict[str, Any]]] | None:
    """The object holding ``colNames``/``resultVals`` (and its parents, for a total count)."""
    if depth > 4:
        return None
    if isinstance(value, dict) and "colNames" not in value and "resultVals" not in value:
        tag, inner = untag(value)
        if tag:
            value = inner
    if not isinstance(value, dict):
        return None
    if "colNames" in value or "resultVals" in value:
        return value, []
    for key in ("result", "contents", "data"):
        found = _table_source(value.get(key), depth + 1)
        if found is not None:
            return found[0], [value, *found[1]]
    return None


def _table(value: Any) -> Table | None:
    """Every row TextQL sent (platforms decide how many to show) and the full row count, if
    TextQL gives one: the seed's ``sqlResult`` has none, so ``total`` is usually None."""
    found = _table_source(value)
    if found is None:
        return None
    source, parents = found
    names = [str(n) for n in source.get("colNames") or []]
    types = [str(t) for t in source.get("colTypes") or []]
    columns = tuple(Column(n, _COL_TYPES.get(t, t.removesuffix("Col").lower()) if t else "")
                    for n, t in zip(names, types + [""] * (len(names) - len(types))))
    raw_rows = source.get("resultVals") or []
    rows: list[tuple[Any, ...]] = []
    for raw in raw_rows if isinstance(raw_rows, list) else []:
        if isinstance(raw, dict):
            raw = [raw.get(n) for n in names]
        if isinstance(raw, list):
            rows.append(tuple(None if v == "null" else v for v in raw))
    total: int | None = None
    for holder in (source, *reversed(parents)):
        counted = next((holder[k] for k in _TOTAL_KEYS
                        if isinstance(holder.get(k), int) and not isinstance(holder.get(k), bool)), None)
        if counted is not None:
            total = max(counted, len(rows))
            break
    if not columns and rows:
        columns = tuple(Column(f"column {i + 1}") for i in range(len(rows[0])))
    return columns, tuple(rows), total
