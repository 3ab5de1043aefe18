"""The edge of both HTTP surfaces (issue 12): replays, missing signatures, oversized bodies."""

from __future__ import annotations

import json
import time

from tests.integration.fuzz_support import signed_headers
from tests.integration.conftest import SIGNING_SECRET


async def test_stale_timestamp_is_refused_401(wren_bot) -> None:
    body = json.dumps({"type": "url_verification", "challenge": "c1"}).encode()
    stale = str(int(time.time()) - 5 * 60 - 5)
    resp = await wren_bot.client.post("/slack/events", data=body, headers=signed_headers(
        SIGNING_SECRET, body, "application/json", timestamp=stale))
    assert resp.status == 401


async def test_missing_or_wrong_signature_is_refused_401(wren_bot) -> None:
    body = json.dumps({"type": "url_verification", "challenge": "c1"}).encode()
    headers = signed_headers(SIGNING_SECRET, body, "application/json")
    for broken in ({"X-Slack-Signature": ""}, {"X-Slack-Signature": "v0=" + "0" * 64},
                   {"X-Slack-Signature": "v0=ünïcode"}, {"X-Slack-Request-Timestamp": "١٢٣"}):
        resp = await wren_bot.client.post("/slack/events", data=body, headers={**headers, **broken})
        assert resp.status == 401, broken
    unsigned = {k: v for k, v in headers.items() if k != "X-Slack-Signature"}
    resp = await wren_bot.client.post("/slack/events", data=body, headers=unsigned)
    assert resp.status == 401


async def test_url_verification_still_answers_the_challenge(wren_bot) -> None:
    resp = await wren_bot.post_signed(json.dumps({"type": "url_verification", "token": "legacy",
                                                  "challenge": "3eZbrw1aBm2rZgRNFdxV"}),
                                      "application/json")
    assert resp.status == 200
    assert "3eZbrw1aBm2rZgRNFdxV" in await resp.text()


async def test_oversized_slack_body_is_refused_413_unread(wren_bot) -> None:
    body = b'{"type":"event_callback","event":{"type":"app_mention","text":"' + b"x" * (2 << 20) + b'"}}'
    resp = await wren_bot.client.post("/slack/events", data=body,
                                      headers=signed_headers(SIGNING_SECRET, body, "application/json"))
    assert resp.status == 413
