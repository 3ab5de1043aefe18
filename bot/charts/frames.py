"""Length-prefixed frames between the bot and a chart worker, over a pair of pipes.

A frame is an 8-byte prefix ``>II`` (header length, body length), a UTF-8 JSON header (an
object) and a raw body: the spec's JSON in a request, the PNG in a reply. Raw bodies avoid
base64 for a few hundred KB of PNG; the JSON header keeps the protocol readable and easy to
extend. Lengths are bounded so that a corrupted stream is detected instead of making the bot
wait for (or allocate) gigabytes.

The bot side decodes incrementally (:class:`FrameDecoder`, fed from an asyncio pipe protocol);
the worker side uses the blocking :func:`read_frame` / :func:`write_frame` on raw fds.
"""

from __future__ import annotations

import json
import os
import struct
from typing import Any

PREFIX = struct.Struct(">II")
MAX_HEADER_BYTES = 1 << 20
MAX_BODY_BYTES = 1 << 28  # 256 MiB: far above any spec we send or PNG we accept

Frame = tuple[dict[str, Any], bytes]


class FrameError(Exception):
    """The byte stream is not a valid sequence of frames (the channel is unusable)."""


def encode_frame(header: dict[str, Any], body: bytes = b"") -> bytes:
    head = json.dumps(header, separators=(",", ":")).encode()
    if len(head) > MAX_HEADER_BYTES or len(body) > MAX_BODY_BYTES:
        raise FrameError("frame too large")
    return PREFIX.pack(len(head), len(body)) + head + body


def _check_lengths(head_len: int, body_len: int) -> None:
    if head_len > MAX_HEADER_BYTES or body_len > MAX_BODY_BYTES:
        raise FrameError(f"implausible frame lengths {head_len}/{body_len}")


def _decode_header(raw: bytes | bytearray | memoryview) -> dict[str, Any]:
    try:
        header = json.loads(bytes(raw))
    except ValueError as exc:
        raise FrameError("frame header is not JSON") from exc
    if not isinstance(header, dict):
        raise FrameError("frame header is not an object")
    return header


class FrameDecoder:
    """Turns a byte stream arriving in arbitrary chunks into whole frames."""

    def __init__(self) -> None:
        self._buf = bytearray()

    def feed(self, data: bytes) -> list[Frame]:
        """Add ``data``; return every frame it completed. Raises :class:`FrameError`."""
        self._buf += data
        frames: list[Frame] = []
        while len(self._buf) >= PREFIX.size:
            head_len, body_len = PREFIX.unpack_from(self._buf)
            _check_lengths(head_len, body_len)
            end = PREFIX.size + head_len + body_len
            if len(self._buf) < end:
                break
            view = memoryview(self._buf)
            try:
                header = _decode_header(view[PREFIX.size:PREFIX.size + head_len])
                body = bytes(view[PREFIX.size + head_len:end])
            finally:
                view.release()
            del self._buf[:end]
            frames.append((header, body))
        return frames

    @property
    def pending(self) -> int:
        """Bytes received that do not yet form a whole frame."""
        return len(self._buf)


def _read_exactly(fd: int, size: int, *, at_boundary: bool) -> bytes | None:
    chunks: list[bytes] = []
    got = 0
    while got < size:
        chunk = os.read(fd, min(size - got, 1 << 20))
        if not chunk:
            if got == 0 and at_boundary:
                return None
            raise FrameError("stream ended inside a frame")
        chunks.append(chunk)
        got += len(chunk)
    return b"".join(chunks)


def read_frame(fd: int) -> Frame | None:
    """Blocking read of one frame from ``fd``; ``None`` on a clean end of stream."""
    prefix = _read_exactly(fd, PREFIX.size, at_boundary=True)
    if prefix is None:
        return None
    head_len, body_len = PREFIX.unpack(prefix)
    _check_lengths(head_len, body_len)
    header = _decode_header(_read_exactly(fd, head_len, at_boundary=False) or b"")
    body = _read_exactly(fd, body_len, at_boundary=False) or b""
    return header, body


def write_frame(fd: int, header: dict[str, Any], body: bytes = b"") -> None:
    """Blocking write of one whole frame to ``fd``."""
    data = memoryview(encode_frame(header, body))
    while data:
        written = os.write(fd, data)
        data = data[written:]
