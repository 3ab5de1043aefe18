"""Untrusted Vega-Lite → a static, bounded, network-free spec: a pure function, no rendering.

Backends (Wren's ``/generate_vega_chart`` above all) hand us Vega-Lite written by an LLM and
shaped for a browser: ``width: "container"``, hover ``params``, a Roboto font stack and an
unbounded ``data.values``. A chat image needs the opposite: fixed pixel size, a static look, a
font that exists here, bounded data and — because the spec is untrusted — no way to make the
renderer read a URL or a local file. :func:`prepare_spec` does that rewrite.

It runs inside the chart worker process (see :mod:`bot.charts.worker`), so a 2,000-row spec is
deep-copied and walked there, not on the bot's event loop. The bot itself only runs the cheap
checks of :func:`check_drawable` and :func:`spec_json` before sending a spec to a worker.
"""

from __future__ import annotations

import copy
import json
from typing import Any

from bot.charts.errors import (
    BAD_SEQUENCE, NO_MARKS, NOT_A_SPEC, NOT_INLINE, NOT_JSON, TOO_LARGE, ChartError,
)

# vl-convert bundles Liberation Sans as its generic "sans-serif"; a family that is not installed
# (Roboto, Arial on a slim image) renders *no text at all* unless a generic family follows it.
DEFAULT_FONT = "Roboto, Liberation Sans, DejaVu Sans, sans-serif"
_GENERIC_FAMILIES = {"sans-serif", "serif", "monospace", "cursive", "fantasy", "system-ui"}
# Inline data keys a data object may carry once URLs are gone.
_INLINE_DATA_KEYS = {"values", "name", "sequence", "sphere", "graticule"}
_MIN_SIZE = 50
_MAX_SIZE = 4000


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
    check_drawable(spec)
    spec_json(spec, max_spec_bytes)

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


def check_drawable(spec: Any) -> None:
    """Raise :class:`ChartError` unless ``spec`` is a dict with a drawable view (cheap: no walk)."""
    if not isinstance(spec, dict):
        raise ChartError(NOT_A_SPEC)
    if not _is_drawable(spec):
        raise ChartError(NO_MARKS)


def spec_json(spec: Any, max_spec_bytes: int) -> str:
    """``spec`` as JSON text (unknown types as strings), or :class:`ChartError` if too large.

    ``ensure_ascii`` keeps ``len(text)`` equal to its size in bytes, so the limit is in bytes.
    """
    try:
        text = json.dumps(spec, default=str)
    except (TypeError, ValueError, RecursionError) as exc:
        raise ChartError(NOT_JSON) from exc
    if len(text) > max_spec_bytes:
        raise ChartError(TOO_LARGE)
    return text


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
            raise ChartError(NOT_INLINE)
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
        raise ChartError(BAD_SEQUENCE) from exc
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

