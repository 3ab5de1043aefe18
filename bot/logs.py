"""Logging set-up with a filter that masks every configured secret, whatever logs it."""

from __future__ import annotations

import logging
import re
from typing import Iterable

# Slack tokens (rotating ones are ``xoxe.xoxb-…``, their refresh tokens ``xoxe-…``), app-level
# tokens, Wren keys
_TOKENISH = re.compile(r"\b(xoxe\.xox[abp]-[A-Za-z0-9-]{6,}|xox[abeprs]-[A-Za-z0-9-]{6,}"
                       r"|xapp-[A-Za-z0-9-]{6,}|osk-[0-9a-f]{8,}|psk-[0-9a-f]{8,})")
_AUTH = re.compile(r"(?i)(authorization['\"]?\s*[:=]\s*['\"]?)(bearer|basic)\s+[^\s'\",}]+")


class SecretFilter(logging.Filter):
    """Replaces secrets in the final message (after %-formatting) with ``***``."""

    def __init__(self, secrets: Iterable[str] = ()) -> None:
        super().__init__()
        self.secrets = sorted({s for s in secrets if s}, key=len, reverse=True)

    def redact(self, text: str) -> str:
        for secret in self.secrets:
            text = text.replace(secret, "***")
        text = _TOKENISH.sub("***", text)
        return _AUTH.sub(r"\1\2 ***", text)

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        clean = self.redact(message)
        if record.exc_info and not record.exc_text:
            record.exc_text = logging.Formatter().formatException(record.exc_info)
        if record.exc_text:
            record.exc_text = self.redact(record.exc_text)
        if clean != message:
            record.msg, record.args = clean, None
        return True


def setup_logging(level: str, secrets: Iterable[str]) -> SecretFilter:
    root = logging.getLogger()
    root.setLevel(level.upper())
    handler = logging.StreamHandler()
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    redactor = SecretFilter(secrets)
    handler.addFilter(redactor)
    for old in list(root.handlers):
        root.removeHandler(old)
    root.addHandler(handler)
    logging.getLogger("httpx").setLevel(logging.WARNING)  # it logs full URLs with query tokens
    logging.getLogger("alembic").setLevel(logging.WARNING)
    return redactor
