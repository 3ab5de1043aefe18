"""What one answer has already shown: both TextQL streams re-send growing steps.

Legacy blocks and v2 cells come again and again with the same id as they grow. The tracker
turns each version into updates only for parts that actually changed, and downloads each
image once (per part id and URL), up to ``max_images`` per answer.
"""

from __future__ import annotations

from typing import AsyncIterator, Iterable

from adapters.answer import ChartPart, Part, PartUpsert, StatusPart, Update
from adapters.textql.blocks import STATUS_ID, ImageRef
from adapters.textql.images import ImageFetcher


class PartTracker:
    def __init__(self, images: ImageFetcher, max_images: int) -> None:
        self._images = images
        self._max_images = max_images
        self._shown: dict[str, Part] = {}
        self._image_urls: dict[str, str] = {}

    def changed(self, part: Part) -> bool:
        """True (and remembered) when ``part`` differs from what its id showed last."""
        if self._shown.get(part.id) == part:
            return False
        self._shown[part.id] = part
        return True

    def seen(self, part_id: str) -> bool:
        """True when a part with this id was shown already."""
        return part_id in self._shown

    def upserts(self, parts: Iterable[Part]) -> list[Update]:
        return [PartUpsert(part) for part in parts if self.changed(part)]

    async def fetch(self, refs: Iterable[ImageRef]) -> AsyncIterator[Update]:
        """Chart parts for images not fetched yet; a note once the per-answer cap is reached."""
        for ref in refs:
            if self._image_urls.get(ref.part_id) == ref.url:
                continue
            self._image_urls[ref.part_id] = ref.url
            if len(self._image_urls) > self._max_images:
                chart = ChartPart(ref.part_id, title=ref.title,
                                  note="Ana made more charts than are shown here.")
            else:
                yield PartUpsert(StatusPart(STATUS_ID, "Fetching Ana's chart…"))
                chart = await self._images.fetch(ref)
            if self.changed(chart):
                yield PartUpsert(chart)
