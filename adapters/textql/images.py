"""Downloading the images Ana produces, safely.

Image URLs come from the vendor's stream and usually point at signed object-storage URLs on
another host. So a download:

* sends the TextQL credentials only to the TextQL origin itself (scheme, host and port of
  ``base_url``), re-deciding on every redirect hop (redirects are followed by hand);
* is capped in size (``Content-Length`` checked first, then the bytes actually read) and in
  time (one deadline over all hops);
* takes ``data:image/…;base64`` URLs as they are, under the same checks;
* accepts only ``image/*`` responses whose bytes really are PNG, JPEG, GIF or WebP (no SVG:
  it is a document, not a picture, and chat platforms would upload it as a broken PNG);
* refuses, on every hop, hosts other than TextQL's own whose address — literal, or every
  address the name resolves to — is private, loopback, link-local or otherwise not public: a
  URL from the stream must not make the bot fetch from its own network (cloud metadata at
  169.254.169.254, internal services). ``TEXTQL_ALLOW_PRIVATE_IMAGES`` lifts that for
  deployments whose object storage is internal (and for tests on loopback). The check
  resolves before connecting; a name that re-resolves differently in between (DNS rebinding)
  is not caught.

A failed download never fails the answer: it becomes a chart part with a quiet ``note``. Logs
name the host only: signed URLs carry tokens in their query string.
"""

from __future__ import annotations

import asyncio
import base64
import ipaddress
import logging
import socket

import httpx

from adapters.answer import ChartPart
from adapters.textql.blocks import ImageRef

log = logging.getLogger(__name__)

_DEFAULT_PORTS = {"http": 80, "https": 443}
_MAX_REDIRECTS = 3


class ImageRefused(Exception):
    """The image was not fetched; ``str(exc)`` is a short reason fit for a chat note."""


def origin(url: httpx.URL) -> tuple[str, str, int | None]:
    return url.scheme, url.host.lower(), url.port or _DEFAULT_PORTS.get(url.scheme)


def sniff(data: bytes) -> str | None:
    """The picture format of ``data`` by its magic bytes, or None."""
    if data.startswith(b"\x89PNG\r\n\x1a\n"):
        return "png"
    if data.startswith(b"\xff\xd8\xff"):
        return "jpeg"
    if data.startswith((b"GIF87a", b"GIF89a")):
        return "gif"
    if data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return "webp"
    return None


class ImageFetcher:
    """Fetches image URLs into chart parts with one dedicated, credential-free HTTP client."""

    def __init__(self, client: httpx.AsyncClient, *, base_url: str, auth: httpx.Auth,
                 max_bytes: int, timeout: float, allow_private: bool = False) -> None:
        self._client = client
        self._allow_private = allow_private
        self._base = httpx.URL(base_url.rstrip("/") + "/")
        self._auth = auth
        self._max_bytes = max_bytes
        self._timeout = timeout

    async def fetch(self, ref: ImageRef) -> ChartPart:
        try:
            async with asyncio.timeout(self._timeout):
                data = await self.download(ref.url)
        except TimeoutError:
            reason = f"it took longer than {self._timeout:g} s"
        except ImageRefused as exc:
            reason = str(exc)
        except (httpx.HTTPError, httpx.InvalidURL, ValueError) as exc:
            reason = "it could not be downloaded"
            log.info("textql image download failed: %s", type(exc).__name__)
        else:
            return ChartPart(ref.part_id, title=ref.title, png=data)
        log.info("textql image not used (%s)", reason)
        return ChartPart(ref.part_id, title=ref.title, note=f"The chart image could not be shown: {reason}.")

    async def download(self, raw_url: str) -> bytes:
        if raw_url.strip().lower().startswith("data:"):
            return self._inline(raw_url.strip())
        url = self._base.join(raw_url.strip())
        for _ in range(_MAX_REDIRECTS + 1):
            if url.scheme not in _DEFAULT_PORTS or not url.host:
                raise ImageRefused("its address is not an http(s) URL")
            own = origin(url) == origin(self._base)
            if not own and not self._allow_private:
                await _refuse_private(url.host)
            auth = self._auth if own else None
            async with self._client.stream("GET", url, auth=auth, follow_redirects=False,
                                           headers={"Accept": "image/*"}) as response:
                if response.is_redirect and "location" in response.headers:
                    url = url.join(response.headers["location"])
                    continue
                return await self._read(response, url)
        raise ImageRefused("it redirected too many times")

    def _inline(self, data_url: str) -> bytes:
        """A ``data:image/…;base64,…`` URL: no network, same type and size checks."""
        header, _, payload = data_url.partition(",")
        if not header.lower().startswith("data:image/") or not header.lower().endswith(";base64"):
            raise ImageRefused("it is not a picture")
        if len(payload) * 3 // 4 > self._max_bytes:
            raise ImageRefused(f"it is larger than {self._limit_text()}")
        try:
            data = base64.b64decode(payload, validate=True)
        except ValueError:
            raise ImageRefused("its inline data is damaged") from None
        if sniff(data) is None:
            raise ImageRefused("it is not a PNG, JPEG, GIF or WebP picture")
        return data

    async def _read(self, response: httpx.Response, url: httpx.URL) -> bytes:
        if response.status_code != 200:
            raise ImageRefused(f"the image host ({url.host}) answered HTTP {response.status_code}")
        ctype = response.headers.get("content-type", "").partition(";")[0].strip().lower()
        if not ctype.startswith("image/") or ctype == "image/svg+xml":
            raise ImageRefused("it is not a picture")
        declared = response.headers.get("content-length", "")
        if declared.isdigit() and int(declared) > self._max_bytes:
            raise ImageRefused(f"it is larger than {self._limit_text()}")
        chunks: list[bytes] = []
        size = 0
        async for chunk in response.aiter_bytes():
            size += len(chunk)
            if size > self._max_bytes:
                raise ImageRefused(f"it is larger than {self._limit_text()}")
            chunks.append(chunk)
        data = b"".join(chunks)
        if sniff(data) is None:
            raise ImageRefused("it is not a PNG, JPEG, GIF or WebP picture")
        return data

    def _limit_text(self) -> str:
        mb = self._max_bytes / (1024 * 1024)
        return f"{mb:g} MB" if mb >= 1 else f"{self._max_bytes} bytes"


async def _refuse_private(host: str) -> None:
    """Raise :class:`ImageRefused` unless every address of ``host`` is a public one."""
    try:
        addresses = [ipaddress.ip_address(host.strip("[]"))]
    except ValueError:
        try:
            infos = await asyncio.get_running_loop().getaddrinfo(host, None, type=socket.SOCK_STREAM)
        except OSError:
            raise ImageRefused(f"its host ({host}) could not be resolved") from None
        addresses = [ipaddress.ip_address(info[4][0].split("%")[0]) for info in infos]
    if not addresses or any(not address.is_global for address in addresses):
        raise ImageRefused(f"its host ({host}) is on a private network")
