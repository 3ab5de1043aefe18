"""A one-line description of a chart for screen readers (Slack ``alt_txt``, Teams ``altText``).

Pure and cheap (it reads only the top level and layers, never the data), so it runs in the bot
process on the untrusted spec as the backend sent it.
"""

from __future__ import annotations

from typing import Any

_ALT_TEXT_LIMIT = 1000


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
