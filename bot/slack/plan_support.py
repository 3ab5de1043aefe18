"""Whether a Slack workspace takes ``plan`` blocks (the agent's timeline outside a stream).

``plan`` and ``task_card`` are new Block Kit types. A workspace (or an Enterprise policy, or a
client) that refuses them would otherwise lose every progress edit and get only the plain-text
answer; once one is refused, that workspace's replies show the timeline as one context line.
"""

from __future__ import annotations

from typing import Any


class PlanSupport:
    def __init__(self) -> None:
        self._refused: set[str] = set()

    def takes_plans(self, workspace: str) -> bool:
        return workspace not in self._refused

    def refused(self, workspace: str) -> None:
        self._refused.add(workspace)


def has_plan(blocks: list[dict[str, Any]]) -> bool:
    return any(b.get("type") == "plan" for b in blocks)
