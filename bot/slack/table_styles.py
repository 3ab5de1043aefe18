"""Which table style each Slack workspace takes."""

from __future__ import annotations

from bot.slack.tables import TableStyle


class TableStyles:
    """The richest table style each workspace has taken: once Slack refused a ``data_table``
    there, answers start with the ``table`` block instead of being refused again first."""

    def __init__(self) -> None:
        self._best: dict[str, TableStyle] = {}

    def best(self, workspace: str) -> TableStyle:
        return self._best.get(workspace, TableStyle.DATA_TABLE)

    def refused(self, workspace: str, style: TableStyle | None) -> None:
        plainer = style.plainer() if style is not None else None
        if plainer is not None:
            self._best[workspace] = plainer
