"""The one exception chart code raises to callers, and the messages users may see.

Every message here is a fixed sentence: nothing from the (untrusted) spec or from vl-convert's
JavaScript stack traces ever reaches a chat user. The worker process sends these strings back
over its pipe, so they live in a module both sides import.
"""

from __future__ import annotations


class ChartError(Exception):
    """A chart could not be drawn; ``str(err)`` is safe to show to a chat user."""


COULD_NOT_DRAW = "The chart could not be drawn."
TOO_LONG = "The chart took too long to draw."
NOT_A_SPEC = "The chart could not be drawn: the backend did not return a chart spec."
NO_MARKS = "The chart could not be drawn: the chart spec has no marks or encodings."
NOT_JSON = "The chart could not be drawn: the chart spec is not valid JSON."
TOO_LARGE = "The chart could not be drawn: the chart spec is too large."
NOT_INLINE = "The chart could not be drawn: its data is not inline."
BAD_SEQUENCE = "The chart could not be drawn: its data sequence is invalid."
