"""Wren AI / Legible (``osk-`` API) backend.

``WrenBackend(WrenSettings(base_url=..., api_key=..., project_id=...))`` answers questions via
``/api/v1/ask`` (or ``/api/v1/stream/ask``) and draws charts via ``/api/v1/generate_vega_chart``.
"""

from adapters.wren.adapter import WrenBackend
from adapters.wren.client import WrenApiError, WrenClient, WrenProtocolError, WrenTransportError
from adapters.wren.settings import WrenSettings

__all__ = [
    "WrenBackend", "WrenSettings", "WrenClient", "WrenApiError", "WrenTransportError",
    "WrenProtocolError",
]
