"""Strings made valid Unicode before they are stored or sent, whichever platform they cross.

A lone UTF-16 surrogate (``\\udXXX`` in a JSON escape, or half of an emoji pair a backend
escaped) cannot be encoded as UTF-8, so storing or sending it fails; PostgreSQL also refuses
NUL characters. Inbound requests (Slack's and Teams' guards) and outbound cards pass through
here: a surrogate pair left as two halves becomes the character it encodes, a lone half becomes
U+FFFD, and NULs are dropped.
"""

from __future__ import annotations

from typing import Any


def clean(value: Any) -> Any:
    """``value`` with every string (dictionary keys too) encodable and storable."""
    if isinstance(value, str):
        return clean_text(value)
    if isinstance(value, dict):
        return {clean_text(k) if isinstance(k, str) else k: clean(v) for k, v in value.items()}
    if isinstance(value, list):
        return [clean(v) for v in value]
    return value


def clean_text(text: str) -> str:
    if text.isascii():
        return text.replace("\x00", "") if "\x00" in text else text
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        text = text.encode("utf-16", "surrogatepass").decode("utf-16", "replace")
    return text.replace("\x00", "") if "\x00" in text else text
