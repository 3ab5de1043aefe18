"""Vega-Lite → PNG for chat, treating every spec as untrusted input.

Backends (Wren's ``/generate_vega_chart`` above all) hand us Vega-Lite written by an LLM and
shaped for a browser: ``width: "container"``, hover ``params``, a Roboto font stack and an
unbounded ``data.values``. A chat image needs the opposite: fixed pixel size, a static look, a
font that exists here, bounded data and — because the spec is untrusted — no way to make the
renderer read a URL or a local file. :func:`prepare_spec` does that rewrite as a pure function;
:class:`ChartRenderer` runs vl-convert (a blocking Rust/Deno call) in a worker thread so the
event loop never stalls, with a timeout.

Defence in depth against data loads: :func:`prepare_spec` refuses data that is not inline and
drops every other ``url``; :func:`render_png_sync` additionally passes ``allowed_base_urls=[]``
so vl-convert itself refuses HTTP(S) loads (verified: it raises "External data url not
allowed"), and vl-convert's loader does not read ``file://`` URLs at all (verified: the chart
renders empty).
"""

from __future__ import annotations

import asyncio
import copy
import json
import logging
from collections.abc import Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import vl_convert

log = logging.getLogger(__name__)

# vl-convert bundles Liberation Sans as its generic "sans-serif"; a family that is not installed
# (Roboto, Arial on a slim image) renders *no text at all* unless a generic family follows it.
DEFAULT_FONT = "Roboto, Liberation Sans, DejaVu Sans, sans-serif"
_GENERIC_FAMILIES = {"sans-serif", "serif", "monospace", "cursive", "fantasy", "system-ui"}
# Inline data keys a data object may carry once URLs are gone.
_INLINE_DATA_KEYS = {"values", "name", "sequence", "sphere", "graticule"}
_MIN_SIZE = 50
_MAX_SIZE = 4000
_ALT_TEXT_LIMIT = 1000


class ChartError(Exception):
    """A chart could not be drawn; ``str(err)`` is safe to show to a chat user."""


# --------------------------------------------------------------------------- spec preparation


def prepare_spec(
    spec: Any,
    *,
    width: int = 720,
    height: int = 420,
    max_rows: int = 5000,
    max_spec_bytes: int = 5_000_000,
) -> dict[str, Any]:
    """Return a static, bounded, network-free copy of an untrusted Vega-Lite ``spec``.

    Raises :class:`ChartError` for anything that is not a drawable single or layered view
    (Wren can return a ``vegaSpec`` with no ``mark``/``encoding``), for data that is not inline,
    and for specs larger than ``max_spec_bytes`` of JSON.
    """
    if not isinstance(spec, dict):
        raise ChartError("The chart could not be drawn: the backend did not return a chart spec.")
    if not _is_drawable(spec):
        raise ChartError("The chart could not be drawn: the chart spec has no marks or encodings.")
    try:
        size = len(json.dumps(spec, default=str))
    except (TypeError, ValueError) as exc:
        raise ChartError("The chart could not be drawn: the chart spec is not valid JSON.") from exc
    if size > max_spec_bytes:
        raise ChartError("The chart could not be drawn: the chart spec is too large.")

    out = copy.deepcopy(spec)
    out.pop("$schema", None)
    _strip_urls(out)
    _cap_rows(out, max_rows)
    removed = _drop_interactive_params(out)
    if removed:
        _resolve_conditions(out, removed)
    _fix_sizes(out, width, height)
    out["autosize"] = {"type": "fit", "contains": "padding"}
    _fix_fonts(out)
    return out


def _is_drawable(spec: dict[str, Any]) -> bool:
    if spec.get("mark") and isinstance(spec.get("encoding"), dict) and spec["encoding"]:
        return True
    layer = spec.get("layer")
    return isinstance(layer, list) and any(
        isinstance(v, dict) and _is_drawable(v) for v in layer
    )


def _strip_urls(node: Any, parent_key: str = "") -> None:
    """Remove every ``url`` key; a data object that had only a URL is an error.

    Row objects inside ``values``/``datasets`` are data, not spec, so a column called ``url``
    survives.
    """
    if isinstance(node, list):
        for item in node:
            _strip_urls(item, parent_key)
        return
    if not isinstance(node, dict):
        return
    if "url" in node:
        del node["url"]
        if parent_key == "data" and not (_INLINE_DATA_KEYS & node.keys()):
            raise ChartError("The chart could not be drawn: its data is not inline.")
    for key, value in node.items():
        if key in ("values", "datasets"):
            continue
        _strip_urls(value, key)


def _cap_rows(node: Any, max_rows: int) -> None:
    """Bound every inline data source: ``values`` lists/CSV strings, ``datasets``, sequences."""
    if isinstance(node, list):
        for item in node:
            _cap_rows(item, max_rows)
        return
    if not isinstance(node, dict):
        return
    for key, value in list(node.items()):
        if key == "values":
            node[key] = _cap_values(value, max_rows)
        elif key == "datasets" and isinstance(value, dict):
            node[key] = {name: _cap_values(v, max_rows) for name, v in value.items()}
        elif key == "sequence" and isinstance(value, dict):
            _cap_sequence(value, max_rows)
        else:
            _cap_rows(value, max_rows)


def _cap_values(values: Any, max_rows: int) -> Any:
    if isinstance(values, list):
        return values[:max_rows]
    if isinstance(values, str):  # inline CSV/TSV: keep the header line plus max_rows
        return "\n".join(values.splitlines()[: max_rows + 1])
    return values


def _cap_sequence(seq: dict[str, Any], max_rows: int) -> None:
    try:
        start = float(seq.get("start", 0))
        step = float(seq.get("step", 1)) or 1.0
        stop = float(seq["stop"])
    except (KeyError, TypeError, ValueError) as exc:
        raise ChartError("The chart could not be drawn: its data sequence is invalid.") from exc
    if (stop - start) / step > max_rows:
        seq["stop"] = start + step * max_rows


def _drop_interactive_params(spec: dict[str, Any]) -> set[str]:
    """Remove selection params (hover/click) everywhere; return their names.

    Variable params stay (expressions may use them) but lose ``bind``: widgets mean nothing
    in a PNG.
    """
    removed: set[str] = set()

    def walk(node: Any) -> None:
        if isinstance(node, list):
            for item in node:
                walk(item)
        elif isinstance(node, dict):
            params = node.get("params")
            if isinstance(params, list):
                kept = []
                for p in params:
                    if isinstance(p, dict) and "select" in p:
                        removed.add(str(p.get("name", "")))
                        continue
                    if isinstance(p, dict):
                        p.pop("bind", None)
                    kept.append(p)
                if kept:
                    node["params"] = kept
                else:
                    del node["params"]
            for key, value in node.items():
                if key not in ("values", "datasets"):
                    walk(value)

    walk(spec)
    return removed


def _resolve_conditions(node: Any, removed: set[str]) -> None:
    """Replace conditions on removed selections with what the chart shows *at rest*.

    With nothing hovered a selection is empty, and an empty selection matches every datum
    unless the condition says ``empty: false``. So Wren's hover rule
    ``{"condition": {"param": "hover", "value": 1}, "value": 0.3}`` becomes ``{"value": 1}`` —
    full opacity, as in the browser before the mouse moves — not a washed-out 0.3.
    """
    if isinstance(node, list):
        for item in node:
            _resolve_conditions(item, removed)
        return
    if not isinstance(node, dict):
        return
    for key, value in list(node.items()):
        if key in ("values", "datasets"):
            continue
        if isinstance(value, dict) and "condition" in value:
            node[key] = _static_channel(value, removed)
            if not node[key]:
                del node[key]
                continue
        _resolve_conditions(node[key], removed)


def _static_channel(channel: dict[str, Any], removed: set[str]) -> dict[str, Any]:
    conds = channel["condition"]
    cond_list = conds if isinstance(conds, list) else [conds]
    kept = [c for c in cond_list if not (isinstance(c, dict) and c.get("param") in removed)]
    gone = [c for c in cond_list if isinstance(c, dict) and c.get("param") in removed]
    base = {k: v for k, v in channel.items() if k != "condition"}
    for cond in gone:
        if cond.get("empty", True) is not False:
            # The at-rest selection is empty and matches everything: the condition wins.
            winner = {k: v for k, v in cond.items() if k not in ("param", "empty")}
            base = {k: v for k, v in base.items() if k not in ("value", "field", "datum")}
            base.update(winner)
            kept = []  # earlier-listed conditions no longer matter once this one always holds
            break
    if kept:
        base["condition"] = kept if isinstance(conds, list) else kept[0]
    return base


def _fix_sizes(spec: dict[str, Any], width: int, height: int) -> None:
    """Fixed pixel size for the top-level view; nested layers inherit it.

    ``"container"`` has no container outside a browser, and ``{"step": n}`` on thousands of
    categories would make an enormous image, so the top level is always set and nested
    sizes are removed.
    """
    spec["width"] = max(_MIN_SIZE, min(int(width), _MAX_SIZE))
    spec["height"] = max(_MIN_SIZE, min(int(height), _MAX_SIZE))

    def strip(node: Any) -> None:
        if isinstance(node, list):
            for item in node:
                strip(item)
        elif isinstance(node, dict):
            node.pop("width", None)
            node.pop("height", None)
            for child in node.get("layer", []) or []:
                strip(child)

    for child in spec.get("layer", []) or []:
        strip(child)


def _fix_fonts(spec: dict[str, Any]) -> None:
    """Make every font setting end in a generic family, and give the chart a white background.

    A transparent PNG turns black axis text invisible in Slack's dark theme.
    """
    config = spec.get("config")
    if not isinstance(config, dict):
        config = spec["config"] = {}
    config.setdefault("font", DEFAULT_FONT)
    config.setdefault("background", "white")
    spec.setdefault("background", "white")

    def walk(node: Any) -> None:
        if isinstance(node, list):
            for item in node:
                walk(item)
        elif isinstance(node, dict):
            for key, value in node.items():
                if key in ("values", "datasets"):
                    continue
                if (key == "font" or key.endswith("Font")) and isinstance(value, str):
                    node[key] = _with_fallback(value)
                else:
                    walk(value)

    walk(spec)


def _with_fallback(font: str) -> str:
    families = [f.strip().strip("'\"").lower() for f in font.split(",")]
    if any(f in _GENERIC_FAMILIES for f in families):
        return font
    return f"{font}, sans-serif" if font.strip() else DEFAULT_FONT


# --------------------------------------------------------------------------- alt text


def chart_alt_text(spec: Any) -> str:
    """A one-line description for screen readers (Slack ``alt_txt``); never raises."""
    if not isinstance(spec, dict):
        return "Chart"
    title = _title_text(spec.get("title"))
    views = [spec] + [v for v in spec.get("layer", []) or [] if isinstance(v, dict)]
    marks: list[str] = []
    channels: list[str] = []
    for view in views:
        mark = _mark_type(view.get("mark"))
        if mark and mark not in marks:
            marks.append(mark)
        encoding = view.get("encoding")
        if isinstance(encoding, dict):
            for name in ("x", "y", "theta", "color", "size"):
                desc = _channel_text(encoding.get(name))
                entry = f"{_CHANNEL_NAMES[name]}: {desc}" if desc else ""
                if entry and entry not in channels:
                    channels.append(entry)
    kind = " and ".join(marks) if marks else "chart"
    text = f"{_MARK_NAMES.get(kind, kind.capitalize() + ' chart')}"
    if title:
        text += f": {title}"
    if channels:
        text += ". " + "; ".join(channels)
    text += "."
    return text if len(text) <= _ALT_TEXT_LIMIT else text[: _ALT_TEXT_LIMIT - 1] + "…"


_CHANNEL_NAMES = {"x": "X axis", "y": "Y axis", "theta": "Angle", "color": "Colour", "size": "Size"}
_MARK_NAMES = {
    "bar": "Bar chart", "line": "Line chart", "area": "Area chart", "arc": "Pie chart",
    "point": "Scatter plot", "circle": "Scatter plot", "rect": "Heatmap", "tick": "Tick chart",
}


def _title_text(title: Any) -> str:
    if isinstance(title, dict):
        title = title.get("text")
    if isinstance(title, list):
        title = " ".join(str(t) for t in title)
    return str(title).strip() if isinstance(title, str | int | float) else ""


def _mark_type(mark: Any) -> str:
    if isinstance(mark, dict):
        mark = mark.get("type")
    return mark if isinstance(mark, str) else ""


def _channel_text(channel: Any) -> str:
    if not isinstance(channel, dict):
        return ""
    field = channel.get("field")
    title = channel.get("title")
    if isinstance(field, dict):  # {"repeat": ...} and friends
        field = None
    if title and field and str(title) != str(field):
        return f"{title} ({field})"
    return str(title or field or "")


# --------------------------------------------------------------------------- rendering


def render_png_sync(spec: dict[str, Any], *, scale: float = 2.0) -> bytes:
    """Blocking vl-convert call with external data loading refused.

    Low-level: it does not sanitise ``spec``; use :class:`ChartRenderer` for untrusted input.
    ``allowed_base_urls=[]`` makes vl-convert reject every HTTP(S) data URL.
    """
    return vl_convert.vegalite_to_png(spec, scale=scale, allowed_base_urls=[])


def register_fonts(directories: Iterable[str]) -> None:
    """Make extra font directories (e.g. a Roboto install) known to vl-convert (process-wide)."""
    for directory in directories:
        vl_convert.register_font_directory(directory)


class ChartRenderer:
    """Renders untrusted Vega-Lite specs to PNG bytes in a small worker pool.

    One worker by default: vl-convert is CPU-bound and a chat bot renders a chart per answer,
    so queueing is better than starving the event loop's host of cores. On timeout the caller
    gets a :class:`ChartError`; the worker thread cannot be killed and finishes in the
    background, which is why the pool is bounded.
    """

    def __init__(
        self,
        *,
        width: int = 720,
        height: int = 420,
        scale: float = 2.0,
        max_data_rows: int = 5000,
        max_workers: int = 1,
        timeout: float = 20.0,
        max_spec_bytes: int = 5_000_000,
        font_dirs: Sequence[str] = (),
    ) -> None:
        self.width = width
        self.height = height
        self.scale = scale
        self.max_data_rows = max_data_rows
        self.timeout = timeout
        self.max_spec_bytes = max_spec_bytes
        self._pool = ThreadPoolExecutor(max_workers=max_workers, thread_name_prefix="chart")
        if font_dirs:
            register_fonts(font_dirs)

    def prepare(self, spec: Any) -> dict[str, Any]:
        return prepare_spec(
            spec,
            width=self.width,
            height=self.height,
            max_rows=self.max_data_rows,
            max_spec_bytes=self.max_spec_bytes,
        )

    async def render(self, spec: Any) -> bytes:
        """Sanitise ``spec`` and return PNG bytes; raises :class:`ChartError` on any failure."""
        safe = self.prepare(spec)
        loop = asyncio.get_running_loop()
        future = loop.run_in_executor(self._pool, _render_checked, safe, self.scale)
        try:
            return await asyncio.wait_for(future, self.timeout)
        except TimeoutError as exc:
            raise ChartError("The chart took too long to draw.") from exc
        except ChartError:
            raise
        except Exception as exc:  # vl-convert raises ValueError with JS stack traces
            log.warning("chart render failed: %s", str(exc)[:500])
            raise ChartError("The chart could not be drawn.") from exc

    def close(self) -> None:
        """Stop accepting work; a render still running finishes in its thread."""
        self._pool.shutdown(wait=False, cancel_futures=True)


def _render_checked(spec: dict[str, Any], scale: float) -> bytes:
    png = render_png_sync(spec, scale=scale)
    if not png.startswith(b"\x89PNG"):
        raise ChartError("The chart could not be drawn.")
    return png
