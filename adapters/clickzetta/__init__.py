"""ClickZetta (Singdata) Analytics Agent Open API — "text2insight" — as an insightbot backend.

Modules: ``settings`` (configuration), ``client`` (HTTP + envelope), ``auth`` (login tokens),
``items`` (poll items → parts), ``poller`` (one question until it ends), ``warehouse`` /
``vega`` / ``charts`` (drawing ``echarts_plus`` charts from the operator's warehouse), and
``adapter`` (the Backend).
"""

from adapters.clickzetta.adapter import ClickZettaBackend
from adapters.clickzetta.settings import ClickZettaSettings

__all__ = ["ClickZettaBackend", "ClickZettaSettings"]
