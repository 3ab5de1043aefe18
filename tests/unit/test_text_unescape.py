"""adapters.text.unescape_literal: JSON escapes left in backend text, emoji and all scripts.

Wren cuts its summaries out of the AI's JSON with a regex, so they arrive still escaped; an
astral character (an emoji, a rare CJK ideograph) then arrives as an escaped UTF-16 surrogate
*pair*. Decoding the two halves one by one leaves unpaired surrogates in the text, which no UTF-8
encoder accepts: storing or posting the answer then fails. Every output here must encode.
"""

from __future__ import annotations

import json

import pytest

from adapters.text import unescape_literal
from adapters.wren.stream import display_text

REPLACEMENT = "\ufffd"

SAMPLES = {
    "emoji": "Sales are up 😀 this quarter",
    "zwj-family": "Households: 👨‍👩‍👧‍👦 and 👩‍💻 teams",
    "skin-tones": "Thumbs 👍🏽 👋🏿 👏🏻",
    "flag": "Brazil 🇧🇷 leads",
    "cjk": "北京二手房成交额：朝阳区 1,034.9 亿元",
    "cjk-astral": "𠀀𪚥 (CJK extension B)",
    "japanese-korean": "売上高 — 매출액",
    "arabic": "مرحبا بالعالم: المبيعات ارتفعت ١٢٪",
    "hebrew": "שלום עולם — המכירות עלו",
    "rtl-marks": "\u200fعربي\u200e English \u202bעברית\u202c",
    "mixed": "SP 🇧🇷 São Paulo — 北京 — القاهرة — תל אביב 👍🏽\nnext line \"quoted\"",
}


def escaped(text: str) -> str:
    """As the server sends it: the inside of a JSON string with ASCII-only escapes."""
    return json.dumps(text, ensure_ascii=True)[1:-1]


def encodes(text: str) -> bool:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


@pytest.mark.parametrize("name", list(SAMPLES))
def test_escaped_text_round_trips(name: str) -> None:
    original = SAMPLES[name]
    wire = escaped(original)
    assert "\\u" in wire or "\\n" in wire  # the sample really is escaped on the wire
    result = unescape_literal(wire)
    assert result == original
    assert encodes(result)


@pytest.mark.parametrize("name", list(SAMPLES))
def test_raw_text_is_unchanged(name: str) -> None:
    original = SAMPLES[name].replace("\\", "")
    assert unescape_literal(original) == original


def test_escaped_pair_with_upper_case_hex() -> None:
    assert unescape_literal("ok \\uD83D\\uDE00!") == "ok 😀!"


def test_half_escaped_half_raw_mix() -> None:
    text = "raw 😀, escaped " + escaped("👍🏽") + ", raw 北京, escaped " + escaped("שלום")
    assert unescape_literal(text) == "raw 😀, escaped 👍🏽, raw 北京, escaped שלום"


@pytest.mark.parametrize("wire, expected", [
    ("a \\ud83d b", f"a {REPLACEMENT} b"),  # high surrogate with nothing after it
    ("a \\ude00 b", f"a {REPLACEMENT} b"),  # low surrogate alone
    ("end \\ud83d", f"end {REPLACEMENT}"),
    ("\\ud83d\\ud83d\\ude00", f"{REPLACEMENT}😀"),  # a high followed by a full pair
    ("\\ude00\\ud83d", REPLACEMENT * 2),  # halves in the wrong order
    ("\\ud83dx\\ude00", f"{REPLACEMENT}x{REPLACEMENT}"),
    ("\\ud83d\\n", f"{REPLACEMENT}\n"),
])
def test_lone_escaped_surrogates_become_replacement_characters(wire: str, expected: str) -> None:
    result = unescape_literal(wire)
    assert result == expected
    assert encodes(result)


@pytest.mark.parametrize("raw, expected", [
    ("a\ud83db", f"a{REPLACEMENT}b"),  # unpaired surrogates already in the string
    ("a\ude00", f"a{REPLACEMENT}"),
    ("\ud83d\ude00", "😀"),  # a pair as two code points (a UTF-16 decode gone half-way)
    ("\\n\ud83d", f"\n{REPLACEMENT}"),
])
def test_raw_surrogates_are_paired_or_replaced(raw: str, expected: str) -> None:
    result = unescape_literal(raw)
    assert result == expected
    assert encodes(result)


def test_escaped_high_then_raw_low_pair_up() -> None:
    assert unescape_literal("\\ud83d\ude00") == "😀"


@pytest.mark.parametrize("wire, expected", [
    ("\\x41", "\\x41"),  # not a JSON escape: left as it was
    ("C:\\\\temp", "C:\\temp"),
    ("\\\\ud83d", "\\ud83d"),  # an escaped backslash, then plain text
    ("\\u12", "\\u12"),
    ("", ""),
])
def test_other_escapes_keep_their_meaning(wire: str, expected: str) -> None:
    assert unescape_literal(wire) == expected


def test_none_is_empty() -> None:
    assert unescape_literal(None) == ""


# -- streamed deltas: a pair may be split between two deltas --------------------------------------

@pytest.mark.parametrize("name", list(SAMPLES))
def test_every_prefix_of_a_streamed_summary_is_clean(name: str) -> None:
    """Deltas split anywhere, even between the halves of a pair: no prefix may show a stray
    backslash or a replacement character, and every prefix must encode."""
    wire = escaped(SAMPLES[name])
    for cut in range(len(wire) + 1):
        shown = display_text(wire[:cut])
        assert encodes(shown), (name, cut)
        assert REPLACEMENT not in shown, (name, cut, wire[:cut])
        assert SAMPLES[name].startswith(shown), (name, cut, wire[:cut])
    assert display_text(wire) == SAMPLES[name]


def test_stream_holds_back_a_high_surrogate_until_its_pair_arrives() -> None:
    assert display_text("ok \\ud83d") == "ok "
    assert display_text("ok \\ud83d\\ude") == "ok "
    assert display_text("ok \\ud83d\\ude00") == "ok 😀"
    assert display_text("ok \\ude00") == f"ok {REPLACEMENT}"  # a lone low half cannot be completed
