"""Words for people: Wren AI failures as short, useful chat messages.

Kept apart from the client (which only parses) and the adapter (which only decides), so the
wording can be read and reviewed in one place. Messages never contain the API key: vendor text
is passed through :func:`redact` before it is shown.
"""

from __future__ import annotations

from adapters.text import unescape_literal
from adapters.wren.client import WrenApiError, WrenProtocolError, WrenTransportError

_MAX_VENDOR_TEXT = 1500
_NO_CHART_TEXT_START = "The chart couldn't be generated"

# A friendly lead per documented GeneralErrorCodes value (backends.md §3.5). ``None`` means the
# vendor's own text is already written for end users and is shown alone.
_LEADS: dict[str, str | None] = {
    "NO_RELEVANT_DATA": None,
    "NON_SQL_QUERY": "Wren AI can't answer this with a query",
    "NO_RELEVANT_SQL": "Wren AI couldn't write a query for this question",
    "OTHERS": "Wren AI couldn't answer this question",
    "NO_DEPLOYMENT_FOUND": "The Wren AI project has no deployed model yet (deploy it in Wren AI, "
                           "and check WREN_PROJECT_ID points at the right project)",
    "INVALID_SQL_ERROR": "The query Wren AI wrote failed to run",
    "SQL_EXECUTION_ERROR": "The query Wren AI wrote failed to run",
    "INTERNAL_SERVER_ERROR": "Wren AI found the data but couldn't write the summary",
    "FAILED_TO_GENERATE_VEGA_SCHEMA": "Wren AI couldn't draw a chart",
}


def redact(text: str, secret: str) -> str:
    return text.replace(secret, "***") if secret else text


def vendor_text(text: str | None, secret: str = "") -> str:
    """Vendor text made presentable: unescaped, key removed, cut to a sane length."""
    clean = redact(unescape_literal(text or "").strip(), secret)
    if len(clean) > _MAX_VENDOR_TEXT:
        clean = clean[: _MAX_VENDOR_TEXT - 1].rstrip() + "…"
    return clean


def _join(lead: str, text: str) -> str:
    if not text:
        return lead + "."
    return f"{lead}: {text}"


def _seconds(value: float) -> str:
    return f"{max(1, round(value))} s"


def rate_limit_message(err: WrenApiError) -> str:
    """After the retries we allow: say when trying again makes sense."""
    quota = "quota" in (err.detail or "").lower() or (err.retry_after is None and err.reset_at)
    if quota:
        when = f" It resets at {err.reset_at}." if err.reset_at else ""
        return f"Wren AI's token quota for this API key is used up.{when}"
    if err.retry_after is not None:
        return f"Wren AI is rate limiting us. Please try again in {_seconds(err.retry_after)}."
    if err.reset_at:
        return f"Wren AI is rate limiting us. Please try again after {err.reset_at}."
    return "Wren AI is rate limiting us. Please try again in a minute."


def api_error_message(err: WrenApiError, secret: str = "") -> str:
    """The user-facing sentence for an error answer of ``/ask`` (or ``/stream/ask``)."""
    text = vendor_text(err.error, secret)
    if err.status == 401:
        return ("Wren AI rejected the API key"
                + (f" ({text})" if text else "")
                + ". Check WREN_API_KEY: it may be wrong, expired or revoked.")
    if err.status == 403:
        detail = vendor_text(err.detail, secret) or text
        return ("Wren AI refused access to this project"
                + (f" ({detail})" if detail else "")
                + ". Check WREN_PROJECT_ID and the key's access.")
    if err.status == 429:
        return rate_limit_message(err)
    if err.code == "POLLING_TIMEOUT":
        return ("Wren AI took too long (its 180 s limit) and gave up on this question. "
                "Try again, or ask something narrower.")
    if not err.is_json:
        if err.status >= 500:
            return f"Wren AI had a server problem (HTTP {err.status}). Please try again later."
        return f"Wren AI sent an unexpected answer (HTTP {err.status})."
    if err.code:
        lead = _LEADS.get(err.code, "Wren AI couldn't answer this question")
        if lead is None:
            return text or "Wren AI couldn't find data for this question."
        return _join(lead, text)
    # No code: validation ("Question is required"), "No SQL generated", or an unexpected 5xx.
    if err.status == 500 and err.detail == "Failed to validate API key":
        return "Wren AI could not check the API key (a server problem on its side). Please try again later."
    if err.status >= 500:
        return _join(f"Wren AI had a server problem (HTTP {err.status})", text)
    if err.status < 400:  # an in-band stream error without a code
        return _join("Wren AI couldn't answer this question", text)
    if text == "No SQL generated":
        return "Wren AI didn't come up with a query for this question. Try rephrasing it."
    return _join(f"Wren AI rejected the request (HTTP {err.status})", text)


def transport_message(err: WrenTransportError) -> str:
    if err.kind == "timeout":
        limit = f" within {_seconds(err.timeout)}" if err.timeout else ""
        return f"Wren AI did not answer{limit}. Please try again later."
    if err.kind == "connect":
        # no host in the reply (internal addresses are not the channel's business): it is logged
        return "Could not reach Wren AI. Check WREN_BASE_URL and that the server is up."
    if err.kind == "tls":  # no host: the certificate problem is the operator's to look up in the log
        return ("Could not open a secure (TLS) connection to Wren AI: its certificate is not trusted, "
                "or it does not speak HTTPS there. Check WREN_BASE_URL.")
    return "The connection to Wren AI broke off. Please try again."


def error_code(err: Exception) -> str:
    """The code shown next to a message: the vendor's code, else the HTTP status, else a kind."""
    if isinstance(err, WrenApiError):
        return err.code or str(err.status)
    if isinstance(err, WrenTransportError):
        return err.kind
    if isinstance(err, WrenProtocolError):
        return err.code
    return "internal"


def chart_note(err: Exception, secret: str = "") -> str:
    """A short, quiet reason for a missing chart."""
    return "No chart this time: " + _chart_reason(err, secret)


def _chart_reason(err: Exception, secret: str) -> str:
    if isinstance(err, WrenApiError):
        if err.status == 429:
            return "Wren AI is rate limiting us."
        if err.code == "POLLING_TIMEOUT":
            return "Wren AI took too long to design it."
        if err.code == "FAILED_TO_GENERATE_VEGA_SCHEMA":
            text = vendor_text(err.error, secret)
            if not text or text.startswith(_NO_CHART_TEXT_START):
                return "Wren AI didn't find a fitting chart for this result."
            return _short(text)
        if err.code == "INVALID_SQL_ERROR":
            return "the chart query failed to run."
        if not err.is_json:
            return f"unexpected answer from Wren AI (HTTP {err.status})."
        text = vendor_text(err.error, secret)
        return _short(text) if text else f"Wren AI answered HTTP {err.status}."
    if isinstance(err, WrenTransportError):
        return "the chart request timed out." if err.kind == "timeout" else "could not reach Wren AI."
    if isinstance(err, WrenProtocolError):
        if err.code == "too_large":
            return "Wren AI sent a chart too large to read."
        return "Wren AI sent an unreadable chart."
    return "something went wrong while drawing it."


def _short(text: str, limit: int = 200) -> str:
    text = " ".join(text.split())
    if len(text) > limit:
        text = text[: limit - 1].rstrip() + "…"
    return text if text.endswith((".", "!", "?", "…")) else text + "."
