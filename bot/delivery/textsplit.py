"""Cut long text into pieces under a platform limit without breaking words or code fences."""

from __future__ import annotations


def split_text(text: str, limit: int) -> list[str]:
    """Split ``text`` into chunks of at most ``limit`` characters.

    Prefers paragraph breaks, then line breaks, then spaces; a single over-long word is cut
    hard. A chunk that ends inside a ``` fence is closed, and the next one reopens it, so a
    code block split in two still renders as code on both sides.
    """
    if limit < 16:
        raise ValueError("limit too small")
    text = text.strip("\n")
    if len(text) <= limit:
        return [text] if text else []
    chunks: list[str] = []
    rest = text
    reopen = ""
    while rest:
        budget = limit - len(reopen) - 4  # room to close a fence
        if len(rest) <= budget:
            chunks.append(reopen + rest)
            break
        window = rest[:budget]
        cut = -1
        for sep in ("\n\n", "\n", " "):
            cut = window.rfind(sep)
            if cut >= budget // 3:
                break
        if cut < budget // 3:
            cut = budget
        piece, rest = window[:cut], rest[cut:].lstrip(" ").lstrip("\n")
        piece = reopen + piece
        if piece.count("```") % 2 == 1:
            fence_line = piece[piece.rfind("```"):].split("\n", 1)[0]
            piece += "\n```"
            reopen = fence_line + "\n"
        else:
            reopen = ""
        chunks.append(piece)
    return [c for c in chunks if c.strip()]


def shorten(text: str, limit: int, ellipsis: str = "…") -> str:
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: max(0, limit - len(ellipsis))].rstrip() + ellipsis
