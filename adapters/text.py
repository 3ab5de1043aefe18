"""Text clean-up shared by the backends."""

from __future__ import annotations

import json
import re

_ESCAPE = re.compile(r'\\(?:["\\/bfnrt]|u[0-9a-fA-F]{4})')
# An astral character (an emoji, a rare CJK ideograph) is escaped as two UTF-16 halves,
# ``\ud83d\ude00``. Each escape decodes to one half; fix_surrogates then joins the halves. Left
# apart they are unpaired surrogates, which no UTF-8 encoder accepts.
_SURROGATE = re.compile(r"[\ud800-\udfff]")
_SURROGATE_RUN = re.compile(r"[\ud800-\udfff]+")
REPLACEMENT = "\ufffd"


def _pair_or_replace(match: re.Match[str]) -> str:
    """A run of surrogate code points: each high+low pair becomes its character, the rest U+FFFD."""
    run = match.group(0)
    out: list[str] = []
    i = 0
    while i < len(run):
        high = run[i]
        if "\ud800" <= high <= "\udbff" and i + 1 < len(run) and "\udc00" <= run[i + 1] <= "\udfff":
            low = run[i + 1]
            out.append(chr(0x10000 + ((ord(high) - 0xD800) << 10) + (ord(low) - 0xDC00)))
            i += 2
        else:
            out.append(REPLACEMENT)
            i += 1
    return "".join(out)


def fix_surrogates(text: str) -> str:
    """``text`` with adjacent surrogate halves joined and every unpaired one replaced by U+FFFD,
    so that it always encodes as UTF-8."""
    if not _SURROGATE.search(text):
        return text
    return _SURROGATE_RUN.sub(_pair_or_replace, text)


def unescape_literal(text: str | None) -> str:
    """Turn JSON escapes left in backend text (a literal ``\\n``, ``\\"``, ``\\u00e9``) into characters.

    Wren's summaries and ClickZetta's items are cut out of JSON with a regex on the server and
    keep their escapes. Text that has no escapes is returned unchanged; an escape sequence that
    is not valid JSON is left as it was rather than dropped. An escaped surrogate pair
    (``\\ud83d\\ude00``) becomes its one character; a surrogate without its other half — escaped
    or already in the string — becomes U+FFFD, so the result always encodes as UTF-8.
    """
    if not text:
        return ""
    if "\\" in text:

        def one(match: re.Match[str]) -> str:
            try:
                return json.loads('"' + match.group(0) + '"')
            except ValueError:
                return match.group(0)

        text = _ESCAPE.sub(one, text)
    return fix_surrogates(text)
