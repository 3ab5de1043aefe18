"""The asker's language (a BCP 47 tag such as ``pt-BR``) as Wren AI's ``language`` value.

Wren passes ``language`` straight into the AI service's prompts (``configurations.language``);
when a request names none it uses the project's setting, ``WrenAILanguage[project.language]`` —
a language *name* such as ``"English"`` or ``"Traditional Chinese"`` (``wren-ui``
``models/adaptor.ts``; the stream's ``sql_generation_start`` echoes it). So we send the same
names, for the languages Wren itself offers. A language outside that list is not sent: the
project's language then applies, as it would in Wren's own UI.
"""

from __future__ import annotations

import re

# wren-ui WrenAILanguage: the languages a Wren project can be set to, by their value.
_NAMES = {
    "en": "English",
    "es": "Spanish",
    "fr": "French",
    "de": "German",
    "pt": "Portuguese",
    "ru": "Russian",
    "ja": "Japanese",
    "ko": "Korean",
    "it": "Italian",
    "fa": "Persian",
    "ar": "Arabic",
    "nl": "Dutch",
    "az": "Azerbaijani",
    "tr": "Turkish",
    "id": "Indonesian",
    "in": "Indonesian",  # the deprecated code some platforms still send
}
TRADITIONAL_CHINESE = "Traditional Chinese"
SIMPLIFIED_CHINESE = "Simplified Chinese"
_KNOWN_NAMES = {name.lower(): name for name in (*_NAMES.values(), TRADITIONAL_CHINESE, SIMPLIFIED_CHINESE)}
_TRADITIONAL_REGIONS = {"tw", "hk", "mo"}
_SEPARATORS = re.compile(r"[-_]")


def wren_language(tag: str | None) -> str | None:
    """``"pt-BR"`` → ``"Portuguese"``, ``"zh-TW"`` → ``"Traditional Chinese"``; ``None`` when
    the tag names no language Wren offers. One of Wren's own names is passed through."""
    if not tag or not tag.strip():
        return None
    text = tag.strip()
    known = _KNOWN_NAMES.get(text.lower())
    if known:
        return known
    subtags = [s.lower() for s in _SEPARATORS.split(text) if s]
    primary = subtags[0]
    if primary == "zh":
        rest = subtags[1:]
        if "hant" in rest:
            return TRADITIONAL_CHINESE
        if "hans" in rest:
            return SIMPLIFIED_CHINESE
        return TRADITIONAL_CHINESE if _TRADITIONAL_REGIONS & set(rest) else SIMPLIFIED_CHINESE
    return _NAMES.get(primary)
