"""Text clean-up shared by the backends."""

from __future__ import annotations

import json
import re

_ESCAPE = re.compile(r'\\(?:["\\/bfnrt]|u[0-9a-fA-F]{4})')


def unescape_literal(text: str | None) -> str:
    """Turn JSON escapes left in backend text (a literal ``\\n``, ``\\"``, ``\\u00e9``) into characters.

    Wren's summaries and ClickZetta's items are cut out of JSON with a regex on the server and
    keep their escapes. Text that has no escapes is returned unchanged; an escape sequence that
    is not valid JSON is left as it was rather than dropped.
    """
    if not text:
        return ""
    if "\\" not in text:
        return text

    def one(match: re.Match[str]) -> str:
        try:
            return json.loads('"' + match.group(0) + '"')
        except ValueError:
            return match.group(0)

    return _ESCAPE.sub(one, text)
