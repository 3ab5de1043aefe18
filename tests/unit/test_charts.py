"""bot.charts: untrusted Vega-Lite → PNG, with no network or file access."""

from __future__ import annotations

import asyncio
import copy
import io

import pytest
import vl_convert
from aiohttp import web
from PIL import Image

from bot.charts import ChartError, ChartRenderer, chart_alt_text, prepare_spec, render_png_sync

PALETTE = ["#7763CF", "#444CE7", "#1570EF", "#0086C9", "#3E4784",
           "#E31B54", "#EC4A0A", "#EF8D0C", "#EBC405", "#5381AD"]
STATES = [("SP", 5218263.12), ("RJ", 2144379.69), ("MG", 1872257.26), ("RS", 890898.54),
          ("PR", 811156.38), ("SC", 623086.43), ("BA", 616645.82)]


def wren_spec() -> dict:
    """The shape Wren's /generate_vega_chart returns (backends.md §3.3)."""
    return {
        "$schema": "https://vega.github.io/schema/vega-lite/v5.json",
        "config": {
            "mark": {"tooltip": True},
            "font": "Roboto, Arial, Noto Sans, sans-serif",
            "padding": {"top": 30, "bottom": 20, "left": 0, "right": 0},
            "axisX": {"labelAngle": -45},
            "range": {"category": PALETTE},
        },
        "title": "Total Payments by Customer State",
        "data": {"values": [{"customer_state": s, "total_payment_value": v} for s, v in STATES]},
        "mark": {"type": "bar"},
        "width": "container",
        "height": "container",
        "autosize": {"type": "fit", "contains": "padding"},
        "encoding": {
            "x": {"field": "customer_state", "type": "nominal", "title": "State"},
            "y": {"field": "total_payment_value", "type": "quantitative", "title": "Total"},
            "color": {"field": "customer_state", "type": "nominal", "title": "State",
                      "scale": {"range": PALETTE}},
            "opacity": {"condition": {"param": "hover", "value": 1}, "value": 0.3},
        },
        "params": [{"name": "hover", "select": {"type": "point", "on": "mouseover",
                                                "clear": "mouseout", "fields": ["customer_state"]}}],
    }


def line_spec() -> dict:
    months = ["2024-01", "2024-02", "2024-03", "2024-04", "2024-05", "2024-06"]
    rows = [{"month": m, "region": r, "revenue": base + i * step}
            for r, base, step in (("North", 120, 15), ("South", 90, 22))
            for i, m in enumerate(months)]
    return {
        "title": "Monthly revenue by region",
        "data": {"values": rows},
        "mark": {"type": "line", "point": True},
        "width": "container",
        "height": "container",
        "encoding": {
            "x": {"field": "month", "type": "temporal", "title": "Month"},
            "y": {"field": "revenue", "type": "quantitative", "title": "Revenue (k$)"},
            "color": {"field": "region", "type": "nominal", "title": "Region"},
        },
    }


def png_size(png: bytes) -> tuple[int, int]:
    assert png[:8] == b"\x89PNG\r\n\x1a\n"
    return Image.open(io.BytesIO(png)).size


BAR_ENC = {"x": {"field": "a", "type": "nominal"}, "y": {"field": "b", "type": "quantitative"}}


# --------------------------------------------------------------------------- rendering


async def test_renders_wren_spec_at_requested_size() -> None:
    renderer = ChartRenderer(width=720, height=420, scale=2.0)
    try:
        png = await renderer.render(wren_spec())
    finally:
        await renderer.aclose()
    width, height = png_size(png)
    assert abs(width - 1440) <= 4 and abs(height - 840) <= 4
    with open("/tmp/insightbot_chart.png", "wb") as fh:  # for a human to look at
        fh.write(png)
    img = Image.open(io.BytesIO(png)).convert("RGB")
    assert img.getpixel((2, 2)) == (255, 255, 255)  # opaque white, readable in dark mode
    colours = img.getcolors(maxcolors=1_000_000) or []
    # bars in the Wren palette are present (SP is the tallest bar, #EC4A0A-ish orange)
    assert any(abs(r - 0xEC) < 12 and abs(g - 0x4A) < 12 and abs(b - 0x0A) < 12
               for _, (r, g, b) in colours)
    dark = sum(n for n, (r, g, b) in colours if r + g + b < 150)
    assert dark > 500  # axis labels and the title were drawn (a missing font draws no text)


async def test_renders_line_chart() -> None:
    renderer = ChartRenderer(width=640, height=360, scale=1.5)
    try:
        png = await renderer.render(line_spec())
    finally:
        await renderer.aclose()
    width, height = png_size(png)
    assert abs(width - 960) <= 4 and abs(height - 540) <= 4
    with open("/tmp/insightbot_line_chart.png", "wb") as fh:
        fh.write(png)


async def test_render_rejects_spec_without_mark() -> None:
    renderer = ChartRenderer()
    try:
        with pytest.raises(ChartError, match="no marks"):
            await renderer.render({"$schema": "x", "config": {}, "data": {"values": []}})
    finally:
        await renderer.aclose()


async def test_vl_convert_failure_is_user_safe() -> None:
    renderer = ChartRenderer()
    try:
        with pytest.raises(ChartError) as info:
            await renderer.render({"data": {"values": []}, "mark": "nonsense", "encoding": BAR_ENC})
    finally:
        await renderer.aclose()
    assert str(info.value) == "The chart could not be drawn."
    assert "jsdelivr" not in str(info.value)


async def test_timeout_becomes_chart_error() -> None:
    # The render runs in a worker process now, so a monkeypatched render_png_sync here would
    # never be called; the worker's test hook makes the render hang instead.
    renderer = ChartRenderer(timeout=0.05, warm_up=False, test_hooks=True)
    try:
        with pytest.raises(ChartError, match="too long"):
            await renderer.render(line_spec(), test_action="hang")
    finally:
        await renderer.aclose()


async def test_render_does_not_block_the_event_loop(monkeypatch: pytest.MonkeyPatch) -> None:
    """vl-convert holds the GIL, so the render must not run in this interpreter at all.

    (The loop's actual lag while a heavy chart renders: tests/unit/test_chart_workers.py.)
    """

    def in_this_interpreter(spec: dict, **kwargs) -> bytes:
        raise AssertionError("vl-convert was called in the bot's own interpreter")

    monkeypatch.setattr(vl_convert, "vegalite_to_png", in_this_interpreter)
    renderer = ChartRenderer(timeout=30)
    try:
        png = await renderer.render(line_spec())  # drawn elsewhere: the patch is not hit
    finally:
        await renderer.aclose()
    assert png_size(png) == (1440, 840)


# --------------------------------------------------------------------------- no data loading


async def test_low_level_render_does_not_read_local_files(tmp_path) -> None:
    secret = tmp_path / "secret.csv"
    secret.write_text("a,b\nx,1\ny,2\nz,3\n")
    empty = render_png_sync({"data": {"values": []}, "mark": "bar", "encoding": BAR_ENC}, scale=1)
    for url in (f"file://{secret}", "file:///etc/passwd"):
        spec = {"data": {"url": url, "format": {"type": "csv"}}, "mark": "bar", "encoding": BAR_ENC}
        try:
            png = render_png_sync(spec, scale=1)
        except ValueError:
            continue  # refused outright: fine
        assert png == empty, f"{url} was read"


async def test_low_level_render_makes_no_http_request() -> None:
    hits: list[str] = []

    async def serve(request: web.Request) -> web.Response:
        hits.append(request.path)
        return web.Response(text="a,b\nx,1\n")

    app = web.Application()
    app.router.add_get("/{tail:.*}", serve)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    try:
        for url in (f"http://127.0.0.1:{port}/x.csv", "data/cars.json"):
            spec = {"data": {"url": url}, "mark": "bar", "encoding": BAR_ENC}
            with pytest.raises(ValueError, match="not allowed"):
                await asyncio.to_thread(render_png_sync, spec, scale=1)
    finally:
        await runner.cleanup()
    assert hits == []


# --------------------------------------------------------------------------- prepare_spec


@pytest.mark.parametrize("bad", [None, [], "bar", {}, {"mark": "bar"}, {"encoding": BAR_ENC},
                                 {"mark": "bar", "encoding": {}}, {"layer": []},
                                 {"hconcat": [{"mark": "bar", "encoding": BAR_ENC}]}])
def test_prepare_rejects_undrawable(bad) -> None:
    with pytest.raises(ChartError):
        prepare_spec(bad)


def test_prepare_accepts_layer_and_fixes_nested_sizes() -> None:
    spec = {"data": {"values": [{"a": "x", "b": 1}]},
            "layer": [{"mark": "bar", "encoding": BAR_ENC, "width": "container"},
                      {"mark": "text", "encoding": {"text": {"field": "b"}}}]}
    out = prepare_spec(spec, width=500, height=300)
    assert out["width"] == 500 and out["height"] == 300
    assert "width" not in out["layer"][0]


def test_prepare_fixes_container_size_autosize_and_drops_schema() -> None:
    spec = wren_spec()
    out = prepare_spec(spec, width=640, height=400)
    assert (out["width"], out["height"]) == (640, 400)
    assert out["autosize"] == {"type": "fit", "contains": "padding"}
    assert "$schema" not in out
    assert spec == wren_spec()  # the input is not mutated


def test_prepare_replaces_step_width() -> None:
    spec = {"data": {"values": []}, "mark": "bar", "encoding": BAR_ENC, "width": {"step": 40}}
    assert prepare_spec(spec, width=700)["width"] == 700


def test_prepare_removes_hover_params_and_keeps_at_rest_look() -> None:
    out = prepare_spec(wren_spec())
    assert "params" not in out
    # an empty hover selection matches every bar, so the at-rest opacity is the condition's 1
    assert out["encoding"]["opacity"] == {"value": 1}
    assert out["encoding"]["color"]["field"] == "customer_state"


def test_prepare_condition_with_empty_false_keeps_static_value() -> None:
    spec = {"data": {"values": []}, "mark": "bar", "encoding": dict(
        BAR_ENC, color={"condition": {"param": "pick", "empty": False, "value": "red"},
                        "value": "grey"},
        size={"condition": {"test": "datum.b > 1", "value": 5}, "value": 1})}
    spec["params"] = [{"name": "pick", "select": "point"},
                      {"name": "k", "value": 3, "bind": {"input": "range"}}]
    out = prepare_spec(spec)
    assert out["encoding"]["color"] == {"value": "grey"}
    assert out["encoding"]["size"]["condition"] == {"test": "datum.b > 1", "value": 5}
    assert out["params"] == [{"name": "k", "value": 3}]


def test_prepare_strips_urls_but_keeps_url_columns() -> None:
    spec = {"data": {"values": [{"url": "https://x.test/", "b": 1}], "url": "https://evil.test/d.csv"},
            "mark": "image",
            "encoding": {"x": {"field": "b", "type": "quantitative"},
                         "url": {"field": "url", "type": "nominal"}}}
    out = prepare_spec(spec)
    assert "url" not in out["data"]
    assert "url" not in out["encoding"]
    assert out["data"]["values"][0]["url"] == "https://x.test/"


@pytest.mark.parametrize("data", [{"url": "file:///etc/passwd"},
                                  {"url": "http://127.0.0.1:9/x.csv", "format": {"type": "csv"}}])
def test_prepare_rejects_non_inline_data(data) -> None:
    with pytest.raises(ChartError, match="not inline"):
        prepare_spec({"data": data, "mark": "bar", "encoding": BAR_ENC})


def test_prepare_rejects_lookup_from_url() -> None:
    spec = {"data": {"values": [{"a": "x", "b": 1}]}, "mark": "bar", "encoding": BAR_ENC,
            "transform": [{"lookup": "a", "from": {"data": {"url": "http://e.test/"}, "key": "a"}}]}
    with pytest.raises(ChartError):
        prepare_spec(spec)


def test_prepare_caps_rows() -> None:
    rows = [{"a": str(i), "b": i} for i in range(50)]
    spec = {"data": {"values": rows}, "mark": "bar", "encoding": BAR_ENC,
            "datasets": {"d": rows}}
    out = prepare_spec(spec, max_rows=10)
    assert len(out["data"]["values"]) == 10
    assert len(out["datasets"]["d"]) == 10
    csv = "a,b\n" + "\n".join(f"{i},{i}" for i in range(50))
    out = prepare_spec({"data": {"values": csv, "format": {"type": "csv"}},
                        "mark": "bar", "encoding": BAR_ENC}, max_rows=10)
    assert out["data"]["values"].count("\n") == 10
    out = prepare_spec({"data": {"sequence": {"start": 0, "stop": 10**9}},
                        "mark": "bar", "encoding": BAR_ENC}, max_rows=10)
    assert out["data"]["sequence"]["stop"] == 10


def test_prepare_rejects_huge_spec() -> None:
    spec = {"data": {"values": [{"a": "x" * 1000}] * 100}, "mark": "bar", "encoding": BAR_ENC}
    with pytest.raises(ChartError, match="too large"):
        prepare_spec(spec, max_spec_bytes=10_000)


def test_prepare_gives_fonts_a_generic_fallback() -> None:
    spec = {"data": {"values": []}, "mark": "bar", "encoding": BAR_ENC,
            "config": {"font": "Roboto", "axis": {"labelFont": "Arial"}},
            "title": {"text": "t", "font": "Roboto, sans-serif"}}
    out = prepare_spec(spec)
    assert out["config"]["font"] == "Roboto, sans-serif"
    assert out["config"]["axis"]["labelFont"] == "Arial, sans-serif"
    assert out["title"]["font"] == "Roboto, sans-serif"
    plain = prepare_spec({"data": {"values": []}, "mark": "bar", "encoding": BAR_ENC})
    assert plain["config"]["font"].endswith("sans-serif")
    assert plain["background"] == "white"


def test_missing_font_without_fallback_would_draw_no_text() -> None:
    """Why the fallback matters: vl-convert draws nothing for an unknown family alone."""
    spec = {"data": {"values": [{"t": "Hello"}]}, "mark": {"type": "text", "fontSize": 30},
            "encoding": {"text": {"field": "t"}}, "width": 200, "height": 60,
            "background": "white"}

    def dark_pixels(font: str) -> int:
        png = render_png_sync(dict(copy.deepcopy(spec), config={"font": font}), scale=1)
        histogram = Image.open(io.BytesIO(png)).convert("L").histogram()
        return sum(histogram[:128])

    assert dark_pixels("NoSuchFontAnywhere") == 0
    assert dark_pixels(prepare_spec(dict(spec, config={"font": "NoSuchFontAnywhere"}))
                       ["config"]["font"]) > 50


# --------------------------------------------------------------------------- alt text


def test_alt_text_describes_the_chart() -> None:
    text = chart_alt_text(wren_spec())
    assert text.startswith("Bar chart: Total Payments by Customer State.")
    assert "X axis: State (customer_state)" in text
    assert "Y axis: Total (total_payment_value)" in text
    assert chart_alt_text(line_spec()).startswith("Line chart: Monthly revenue by region.")


@pytest.mark.parametrize("junk", [None, [], {}, {"mark": 3, "encoding": "x", "title": {"a": 1}},
                                  {"layer": [1, {"mark": {"type": "arc"}}]}])
def test_alt_text_never_raises(junk) -> None:
    assert isinstance(chart_alt_text(junk), str) and chart_alt_text(junk)


def test_alt_text_is_bounded() -> None:
    assert len(chart_alt_text({"mark": "bar", "title": "x" * 5000})) <= 1000
