"""A Vega-Lite spec from chart rows plus ClickZetta's column metadata.

ClickZetta describes a chart only as a type hint (usually just ``ECHARTS``) and a column list
such as ``District (STRING), Total (10K CNY) (LONG)``. The picture is chosen from the column
roles: category + measure → bar, time + measure → line, two measures → point, a lone measure →
a big number. An explicit hint (bar, line, pie, scatter, area) wins when the columns allow it.

Data is inlined (``data.values``) under positional keys (``c0``, ``c1`` …) so that column names
with dots or brackets never need Vega field escaping; titles carry the readable names. Width
and height are numbers because the bot renders to PNG without a container.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any, Sequence

from adapters.answer import Column
from adapters.clickzetta.warehouse import QueryResult

SCHEMA = "https://vega.github.io/schema/vega-lite/v5.json"
WIDTH, HEIGHT = 560, 320
MAX_VERTICAL_BARS = 15

_NUMERIC = {"LONG", "INT", "INTEGER", "BIGINT", "SMALLINT", "TINYINT", "SHORT", "BYTE", "DOUBLE",
            "FLOAT", "REAL", "DECIMAL", "NUMERIC", "NUMBER", "INT8", "INT4", "INT2", "FLOAT8", "FLOAT4"}
_TEMPORAL = {"DATE", "DATETIME", "TIMESTAMP", "TIMESTAMP_LTZ", "TIMESTAMP_NTZ", "TIME", "TIMESTAMPTZ"}
_DATE_TEXT = re.compile(r"^\d{4}-\d{2}(-\d{2})?([ T]\d{2}:\d{2}(:\d{2}(\.\d+)?)?)?([+-]\d{2}:?\d{2}|Z)?$")
_YEARISH = re.compile(r"(year|yr|年份|年度|年)$", re.IGNORECASE)


class NotChartable(Exception):
    """The rows cannot make a chart; the text says why (shown as the chart's note)."""


@dataclass(frozen=True)
class Field:
    key: str  # "c0" …
    title: str
    role: str  # "quantitative" | "temporal" | "nominal" | "year"


def _base_type(sql_type: str) -> str:
    return re.split(r"[\s(<]", sql_type.strip().upper(), maxsplit=1)[0] if sql_type else ""


def _role(meta_type: str, title: str, values: list[Any]) -> str:
    """quantitative / temporal / year (an integer year column: an ordinal time axis) / nominal.

    The declared type decides when it is known; otherwise the values do. A column declared as
    text stays a category even when its values look numeric (district codes, for example).
    """
    base = _base_type(meta_type)
    present = [v for v in values if v is not None]
    numbers = bool(present) and all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in present)
    dates = bool(present) and all(isinstance(v, str) and _DATE_TEXT.match(v) for v in present)
    if base in _TEMPORAL or (base not in _NUMERIC and dates):
        return "temporal"
    if base in _NUMERIC or (not base and numbers):
        if numbers and _YEARISH.search(title.strip()) and all(
                isinstance(v, int) and 1800 <= v <= 2200 for v in present):
            return "year"
        return "quantitative" if numbers or not present else "nominal"
    return "nominal"


def _fields(columns: Sequence[Column], result: QueryResult) -> list[Field]:
    by_name = {c.name.lower(): c for c in columns}
    fields = []
    for i, name in enumerate(result.columns):
        meta = columns[i] if len(columns) == len(result.columns) else by_name.get(name.lower())
        title = meta.name if meta else name
        values = [row[i] for row in result.rows]
        fields.append(Field(key=f"c{i}", title=title, role=_role(meta.type if meta else "", title, values)))
    return fields


def _hint(chart_type: str) -> str:
    text = (chart_type or "").lower()
    for word, mark in (("pie", "arc"), ("donut", "arc"), ("ring", "arc"), ("line", "line"),
                       ("area", "area"), ("scatter", "point"), ("point", "point"), ("bar", "bar"),
                       ("column", "bar"), ("histogram", "bar")):
        if word in text:
            return mark
    return ""


def _axis(field: Field, role: str | None = None, **extra: Any) -> dict[str, Any]:
    kind = role or field.role
    if kind == "year":
        kind = "ordinal"
    return {"field": field.key, "type": kind, "title": field.title, **extra}


def _long_form(values: list[dict[str, Any]], keep: list[Field], measures: list[Field]) -> list[dict[str, Any]]:
    """Several measures become one ``value`` column plus a ``series`` label (pre-folded here so
    the legend shows readable titles)."""
    out = []
    for row in values:
        for m in measures:
            entry = {f.key: row[f.key] for f in keep}
            entry.update(series=m.title, value=row[m.key])
            out.append(entry)
    return out


def build_spec(title: str, columns: Sequence[Column], result: QueryResult, chart_type: str = "") -> dict[str, Any]:
    """The Vega-Lite spec, or :class:`NotChartable`."""
    if not result.rows:
        raise NotChartable("the chart query returned no rows")
    fields = _fields(columns, result)
    values = [{f.key: row[i] for i, f in enumerate(fields)} for row in result.rows]
    measures = [f for f in fields if f.role == "quantitative"]
    times = [f for f in fields if f.role in ("temporal", "year")]
    categories = [f for f in fields if f.role == "nominal"]
    if not measures:
        raise NotChartable("the chart query returned no numeric column to plot")
    hint = _hint(chart_type)
    spec: dict[str, Any] = {"$schema": SCHEMA, "width": WIDTH, "height": HEIGHT}
    if title:
        spec["title"] = title
    encoding: dict[str, Any]
    dimension = (times or categories or [None])[0]

    if dimension is None:
        if len(measures) >= 2:
            x, y = measures[0], measures[1]
            spec.update(mark={"type": "point", "filled": True, "tooltip": True},
                        encoding={"x": _axis(x), "y": _axis(y)})
        elif len(values) == 1:
            m = measures[0]
            spec.update(width=300, height=120,
                        mark={"type": "text", "fontSize": 48, "fontWeight": "bold"},
                        encoding={"text": {"field": m.key, "type": "quantitative", "format": ",",
                                           "title": m.title}})
            spec["title"] = title or m.title
        else:
            m = measures[0]
            spec.update(transform=[{"window": [{"op": "row_number", "as": "row"}]}],
                        mark={"type": "bar", "tooltip": True},
                        encoding={"x": {"field": "row", "type": "ordinal", "title": "#"}, "y": _axis(m)})
        spec["data"] = {"values": values}
        return spec

    others = [f for f in categories if f is not dimension]
    series = others[0] if others else None
    if len(measures) > 1:
        keep = [dimension] + ([series] if series else [])
        values = _long_form(values, keep, measures)
        measure = {"field": "value", "type": "quantitative", "title": ", ".join(m.title for m in measures)}
        color: dict[str, Any] | None = {"field": "series", "type": "nominal", "title": None}
    else:
        measure = _axis(measures[0])
        color = _axis(series) if series else None

    if hint == "arc" and dimension.role == "nominal" and len(measures) == 1:
        spec.update(width=HEIGHT, height=HEIGHT, mark={"type": "arc", "tooltip": True},
                    encoding={"theta": measure, "color": _axis(dimension)})
    elif hint == "point" and len(measures) >= 2 and dimension.role == "nominal" and not series:
        values = [{f.key: row[i] for i, f in enumerate(fields)} for row in result.rows]
        spec.update(mark={"type": "point", "filled": True, "tooltip": True},
                    encoding={"x": _axis(measures[0]), "y": _axis(measures[1]), "color": _axis(dimension)})
    elif hint in ("line", "area") or (not hint and dimension.role in ("temporal", "year")):
        mark = {"type": "area", "tooltip": True} if hint == "area" else {"type": "line", "point": True, "tooltip": True}
        encoding = {"x": _axis(dimension), "y": measure}
        if color:
            encoding["color"] = color
        spec.update(mark=mark, encoding=encoding)
    else:  # bar: the default for a category (and the fallback for hints the columns don't fit)
        many = len({row.get(dimension.key) for row in values}) > MAX_VERTICAL_BARS
        labels = {str(row.get(dimension.key)) for row in values}
        angle = 0 if len(labels) <= 8 and max(map(len, labels)) <= 10 else -40
        encoding = ({"y": _axis(dimension, sort="-x"), "x": measure} if many
                    else {"x": _axis(dimension, sort=None, axis={"labelAngle": angle}), "y": measure})
        if color:
            encoding["color"] = color
            if len(measures) > 1 or series:
                encoding["yOffset" if many else "xOffset"] = {"field": color["field"]}
        spec.update(mark={"type": "bar", "tooltip": True}, encoding=encoding)
        if many:
            spec["height"] = max(HEIGHT, 18 * len({row.get(dimension.key) for row in values}))
    spec["data"] = {"values": values}
    return spec
