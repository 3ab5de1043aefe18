"""Chart PNGs that Teams will show inline.

Teams shows pictures of at most 1024×1024 px, and a card with an inline (base64) image has to
stay under the Bot Connector's payload ceiling (256 KB has been reported; base64 adds a third),
so charts are kept at ≤ 1024 px a side and, by default, ≤ 150 KB. Our own renderer draws at 2×
for sharp Slack uploads, so in practice most charts are scaled down here. Charts are flat
colours and compress best as a 256-colour palette PNG, which is tried before shrinking further.

Pillow does the resizing. Without it, a PNG that already fits is used as it is and one that does
not is left out (the card then says so) — the size check itself needs no Pillow.
"""

from __future__ import annotations

import base64
import io
import logging
import struct

log = logging.getLogger(__name__)

MAX_SIDE = 1024
MAX_BYTES = 150_000
MIN_SIDE = 240  # below this a chart is unreadable; give up instead
_PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def png_size(data: bytes) -> tuple[int, int] | None:
    """(width, height) from the IHDR chunk, or None if ``data`` is not a PNG."""
    if len(data) < 24 or not data.startswith(_PNG_MAGIC) or data[12:16] != b"IHDR":
        return None
    width, height = struct.unpack(">II", data[16:24])
    return width, height


def fits(data: bytes, *, max_side: int = MAX_SIDE, max_bytes: int = MAX_BYTES) -> bool:
    size = png_size(data)
    return size is not None and max(size) <= max_side and len(data) <= max_bytes


def fit_png(data: bytes, *, max_side: int = MAX_SIDE, max_bytes: int = MAX_BYTES) -> bytes | None:
    """``data`` shrunk to Teams' limits, or None when that is impossible (or not a PNG)."""
    if png_size(data) is None:
        return None
    if fits(data, max_side=max_side, max_bytes=max_bytes):
        return data
    try:
        from PIL import Image
    except ImportError:  # pragma: no cover - Pillow is in every environment we test
        log.warning("a chart is too large for Teams and Pillow is not installed to shrink it")
        return None
    try:
        with Image.open(io.BytesIO(data)) as img:
            img.load()
            image = img.convert("RGBA") if img.mode not in ("RGB", "RGBA") else img.copy()
    except Exception:  # a PNG header on a broken file
        log.warning("a chart PNG could not be decoded", exc_info=True)
        return None
    scale = min(1.0, max_side / max(image.size))
    while True:
        size = (max(1, round(image.width * scale)), max(1, round(image.height * scale)))
        resized = image if size == image.size else image.resize(size, Image.LANCZOS)
        for candidate in (_encode(resized), _encode(_palette(resized))):
            if len(candidate) <= max_bytes:
                return candidate
        if min(size) * 0.8 < MIN_SIDE:
            return None
        scale *= 0.8


def data_uri(png: bytes) -> str:
    return "data:image/png;base64," + base64.b64encode(png).decode("ascii")


def _encode(image: object) -> bytes:
    out = io.BytesIO()
    image.save(out, format="PNG", optimize=True)  # type: ignore[attr-defined]
    return out.getvalue()


def _palette(image: object) -> object:
    from PIL import Image

    return image.quantize(colors=256, method=Image.Quantize.FASTOCTREE)  # type: ignore[attr-defined]
