"""Charts within Teams' inline image limits."""

from __future__ import annotations

import io
import os

from PIL import Image

from bot.teams.images import MAX_BYTES, MAX_SIDE, fit_png, png_size


def png(width: int, height: int, *, noise: bool = False) -> bytes:
    image = Image.frombytes("RGB", (width, height), os.urandom(width * height * 3)) if noise \
        else Image.new("RGB", (width, height), (255, 255, 255))
    out = io.BytesIO()
    image.save(out, format="PNG")
    return out.getvalue()


def test_png_size_reads_the_header() -> None:
    assert png_size(png(321, 123)) == (321, 123)
    assert png_size(b"GIF89a....") is None


def test_a_chart_that_fits_is_left_alone() -> None:
    data = png(720, 420)
    assert fit_png(data) is data


def test_a_2x_chart_is_scaled_to_1024_px() -> None:
    out = fit_png(png(1440, 840))
    assert out is not None
    width, height = png_size(out)
    assert max(width, height) == MAX_SIDE and abs(width / height - 1440 / 840) < 0.01
    assert len(out) <= MAX_BYTES


def test_a_heavy_image_is_compressed_or_shrunk_under_the_byte_limit() -> None:
    out = fit_png(png(900, 600, noise=True), max_bytes=120_000)
    assert out is not None and len(out) <= 120_000
    assert max(png_size(out)) <= MAX_SIDE


def test_not_a_png_is_refused() -> None:
    assert fit_png(b"not an image") is None
